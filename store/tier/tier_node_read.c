/* tier_node_read.c - reading one node's GC state from the bucket (bucket gc and remote fsck): its head,
 * then every segment the head names, straight into the caller's digest array (a 10 million digest state
 * is 320 MB; it is not copied). A segment that has gone means the node compacted meanwhile and deleted
 * it after writing a newer head: the head is read again (FORMAT.md section 5, "Node state").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_impl.h"

/* The node name a head key "…/nodes/<node>.json" gives, into node. */
static void head_key_node(const char *key, char *node, size_t size)
{
	const char *base = strrchr(key, '/');
	size_t len;

	base = base ? base + 1 : key;
	len = strlen(base);
	snprintf(node, size, "%.*s", (int)(len >= 5 ? len - 5 : 0), base);
}

/* Appends segment seg of the head at key to chunks: -ENOENT when it is gone, -EBADMSG when refused. The
 * object is read one digest slot past the array's end so that its header lands in that slot, then the
 * digests move down over it. */
static int read_segment(struct s3_client *c, const char *key, const struct tier_node_seg *seg,
			struct tier_digest_vec *chunks, char *err, size_t errsz)
{
	char skey[TIER_PREFIX_MAX + 2 * TIER_NODE_ID_MAX + 48], why[160];
	size_t want = TIER_NODE_SEG_HDR + seg->count * DIGEST_LEN, got = 0;
	struct s3_result res = { 0 };
	uint8_t *dst;
	int rc;

	_Static_assert(TIER_NODE_SEG_HDR == sizeof(struct digest), "a segment header fills one digest slot");
	rc = tier_node_segment_key(key, seg->gen, skey, sizeof(skey));
	if (rc == 0)
		rc = tier_digest_vec_reserve(chunks, seg->count + 2);  /* header slot, and one byte past the end */
	if (rc < 0) {
		snprintf(err, errsz, "%.300s: %s", key, strerror(-rc));
		return rc;
	}
	dst = (uint8_t *)(chunks->d + chunks->n);
	rc = s3_get(c, skey, 0, want + 1, dst, &got, &res);
	if (rc == -ERANGE)
		got = 0;  /* an empty object */
	else if (rc < 0) {
		snprintf(err, errsz, "%.300s: %.300s", skey, res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	if (tier_node_segment_check(dst, got, seg, why, sizeof(why)) < 0) {
		snprintf(err, errsz, "%.300s: %s", skey, why);
		return -EBADMSG;
	}
	memmove(dst, dst + TIER_NODE_SEG_HDR, seg->count * DIGEST_LEN);
	chunks->n += seg->count;
	return 0;
}

/* One read of the head and its segments. -EAGAIN: a segment was missing (read the head again). */
static int read_once(struct s3_client *c, const char *key, struct tier_node_state *out,
		     struct tier_digest_vec *chunks, char *err, size_t errsz)
{
	struct s3_result res = { 0 };
	char *text = NULL, why[160], node[TIER_NODE_ID_MAX + 8];
	size_t len;
	int rc = s3_get_all(c, key, TIER_NODE_HEAD_MAX, (void **)&text, &len, &res);

	if (rc < 0) {
		snprintf(err, errsz, "%.300s: %.300s", key, res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	rc = tier_node_state_decode(text, len, out, why, sizeof(why));
	free(text);
	if (rc < 0) {
		snprintf(err, errsz, "%.300s: %s", key, why);
		return -EBADMSG;
	}
	head_key_node(key, node, sizeof(node));
	if (out->format == 2 && strcmp(node, out->node) != 0) {
		snprintf(err, errsz, "%.300s: names node '%s', not the one of its key", key, out->node);
		return -EBADMSG;
	}
	if (out->format == 1) {
		rc = tier_digest_vec_add(chunks, out->chunks, out->n_chunks);
		free(out->chunks);
		out->chunks = NULL;
		out->n_chunks = 0;
		return rc;
	}
	for (size_t i = 0; i < out->n_segs; i++) {
		rc = read_segment(c, key, &out->segs[i], chunks, err, errsz);
		if (rc == -ENOENT)
			return -EAGAIN;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int tier_node_state_get(struct s3_client *c, const char *key, struct tier_node_state *out,
			struct tier_digest_vec *chunks, char *err, size_t errsz)
{
	size_t n0 = chunks->n;
	int rc = -EAGAIN;

	memset(out, 0, sizeof(*out));
	for (int attempt = 0; attempt < TIER_NODE_READ_TRIES && rc == -EAGAIN; attempt++) {
		tier_node_state_free(out);
		chunks->n = n0;
		rc = read_once(c, key, out, chunks, err, errsz);
	}
	if (rc == -EAGAIN) {
		snprintf(err, errsz, "%.300s: names a segment that is missing, %d reads of the head in a row",
			 key, TIER_NODE_READ_TRIES);
		rc = -EBADMSG;
	}
	if (rc < 0) {
		chunks->n = n0;
		tier_node_state_free(out);
	}
	return rc;
}
