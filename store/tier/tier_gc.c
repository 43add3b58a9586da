/* tier_gc.c - what the nodes and the bucket garbage collector tell each other through the bucket
 * (FORMAT.md section 5, "Bucket garbage collection"):
 *
 *   PREFIX/nodes/<node-id>.json  each node's state: the versions it keeps locally and every chunk
 *                                digest of its chunk index (chunks it holds, or has evicted and may
 *                                still read back), as a head naming binary segments; a publish adds
 *                                one segment of the digests new since the last one, or compacts
 *                                (tier_node_state.c has the formats).
 *   PREFIX/gc/epoch              {"epoch": N, "collecting": bool, ...}: a collector raises N and
 *                                sets collecting before it reads any node state, and clears it
 *                                when its deletions are over.
 *   PREFIX/gc/lock               one collector at a time (created with If-None-Match).
 *
 * The rule that keeps uploads safe: before it relies on an object already being in the bucket, a
 * node publishes its state (so a collector that starts later sees its chunks) and reads the epoch; an
 * 'R' mark confirmed in an older epoch is re-checked with a HEAD, and while a collection is running
 * (and not stale) the node waits. Eviction follows the same rule, so a chunk is never removed locally
 * after the collector decided it was unreferenced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "tier_impl.h"

#define NODE_PUBLISH_MIN_NS (30ll * 1000000000)  /* ---- gc/epoch ---- */

int tier_gc_epoch_decode(const char *text, size_t len, struct tier_gc_epoch *out)
{
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *e, *col, *upd, *node;
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	e = json_object_get(j, "epoch");
	col = json_object_get(j, "collecting");
	upd = json_object_get(j, "updated_ns");
	node = json_object_get(j, "node");
	if (json_is_integer(e) && json_integer_value(e) >= 0 && json_is_boolean(col) && json_is_integer(upd) &&
	    (!node || (json_is_string(node) && strlen(json_string_value(node)) < sizeof(out->node)))) {
		out->epoch = (uint64_t)json_integer_value(e);
		out->collecting = json_is_true(col);
		out->updated_ns = (int64_t)json_integer_value(upd);
		snprintf(out->node, sizeof(out->node), "%s", node ? json_string_value(node) : "");
		rc = 0;
	}
	json_decref(j);
	return rc;
}

int tier_gc_epoch_get(struct s3_client *c, const char *prefix, struct tier_gc_epoch *out, struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 32], *text = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = tier_gc_key(prefix, key, sizeof(key), "gc/epoch");
	if (rc == 0)
		rc = s3_get_all(c, key, 4096, (void **)&text, &len, res);
	if (rc == -ENOENT)
		return 0;  /* never collected: epoch 0 */
	if (rc < 0)
		return rc;
	rc = tier_gc_epoch_decode(text, len, out);
	free(text);
	if (rc < 0) {
		snprintf(res->message, sizeof(res->message), "%.300s: not a garbage collection epoch object", key);
		return -EIO;
	}
	return 0;
}

int tier_gc_epoch_put(struct s3_client *c, const char *prefix, const struct tier_gc_epoch *ep, struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 32], *text;
	json_t *j;
	int rc;

	rc = tier_gc_key(prefix, key, sizeof(key), "gc/epoch");
	if (rc < 0)
		return rc;
	j = json_pack("{s:i,s:I,s:b,s:s,s:I}", "format", 1, "epoch", (json_int_t)ep->epoch, "collecting",
		      ep->collecting, "node", ep->node, "updated_ns", (json_int_t)ep->updated_ns);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	rc = s3_put(c, key, text, strlen(text), NULL, 0, res);
	free(text);
	return rc;
}

bool tier_gc_epoch_stale(const struct tier_gc_epoch *ep)
{
	return tier_wall_ns() - ep->updated_ns > TIER_GC_STALE_NS;
}

/* ---- nodes/<id>.json ---- */

struct vlist {
	struct tier *t;
	json_t *arr;
	char run[META_NAME_MAX + 1];
	int rc;
};

static int vlist_version(const struct meta_version *v, void *arg)
{
	struct vlist *l = arg;
	struct meta_inode vi;

	if (meta_get_inode(l->t->meta, v->ino, &vi) < 0)
		return 0;  /* removed while listing */
	if (json_array_append_new(l->arr, json_pack("[s,s]", l->run, vi.name)) < 0)
		return -ENOMEM;
	return 0;
}

static int vlist_run(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct vlist *l = arg;

	if (!S_ISDIR(mode))
		return 0;
	snprintf(l->run, sizeof(l->run), "%s", name);
	return meta_list_versions(l->t->meta, ino, vlist_version, l);
}

/* The node's versions as a JSON array of [run, version]. */
static json_t *node_versions(struct tier *t)
{
	struct vlist l = { .t = t, .arr = json_array() };

	if (!l.arr)
		return NULL;
	if (meta_list_dir(t->meta, META_ROOT_INO, NULL, vlist_run, &l) < 0) {
		json_decref(l.arr);
		return NULL;
	}
	return l.arr;
}

/* The index's digests and extra ones, sorted, without repeats, at (*out)[1..*n]: (*out)[0] is room for a
 * segment header, so that a full segment goes up without a copy. */
static int published_chunks(struct tier *t, const struct digest *extra, size_t nextra, struct digest **out,
			    size_t *n, uint64_t *gen)
{
	struct tier_digest_vec v = { 0 };
	int rc = store_chunk_list(t->st, &v.d, &v.n, gen);

	if (rc < 0)
		return rc;
	v.cap = v.n;
	rc = tier_digest_vec_reserve(&v, nextra + 1);
	if (rc < 0) {
		tier_digest_vec_free(&v);
		return rc;
	}
	if (nextra) {
		tier_digest_vec_add(&v, extra, nextra);  /* room reserved: cannot fail */
		tier_digest_vec_sort_unique(&v);
	}
	memmove(v.d + 1, v.d, v.n * sizeof(*v.d));
	*out = v.d;
	*n = v.n;
	return 0;
}

/* A generation above every one this node used, from the wall clock so that it also stays above those
 * of its earlier runs. */
static uint64_t next_gen(struct tier *t)
{
	uint64_t now = (uint64_t)tier_wall_ns();

	t->pub.last_gen = now > t->pub.last_gen ? now : t->pub.last_gen + 1;
	return t->pub.last_gen;
}

/* PUTs obj (a segment of count digests, header slot included) under a new generation, into *seg. */
static int put_segment(struct tier *t, const char *head_key, uint8_t *obj, uint64_t count,
		       struct tier_node_seg *seg, struct s3_result *res)
{
	size_t len = TIER_NODE_SEG_HDR + count * DIGEST_LEN;
	char key[TIER_PREFIX_MAX + 2 * TIER_NODE_ID_MAX + 48], hex[DIGEST_HEX_LEN + 1];
	int rc = -EEXIST;

	tier_node_segment_header(count, obj);
	seg->count = count;
	SHA256(obj, len, seg->sha256);
	digest_to_hex((const struct digest *)seg->sha256, hex);
	/* Created only if absent: a segment a head names is never replaced (a clock set back could reuse a
	   generation of an earlier run). */
	for (int attempt = 0; attempt < 3 && rc == -EEXIST; attempt++) {
		seg->gen = next_gen(t);
		rc = tier_node_segment_key(head_key, seg->gen, key, sizeof(key));
		if (rc == 0)
			rc = s3_put(t->client, key, obj, len, hex, S3_PUT_IF_ABSENT, res);
	}
	return rc;
}

/* Deletes the segments a compaction dropped, once the head that no longer names them is in place. */
static void drop_segments(struct tier *t, const char *head_key, const struct tier_node_seg *segs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char key[TIER_PREFIX_MAX + 2 * TIER_NODE_ID_MAX + 48];
		struct s3_result res = { 0 };
		if (tier_node_segment_key(head_key, segs[i].gen, key, sizeof(key)) == 0 &&
		    s3_delete(t->client, key, &res) < 0)
			tier_logf(t, S3_LOG_WARN, "S3 tier: deleting %s, a compacted node state segment: %s "
				  "(gc --remote removes it)", key, res.message);
	}
}

/* One publish: what it writes, and the segment list the new head names. */
struct pub_step {
	struct digest *cur;     /* S at cur[1..n] (published_chunks) */
	size_t n;
	enum tier_node_plan plan;
	struct tier_node_seg *segs;
	size_t nsegs;
	uint64_t listed;
};

/* Decides what to write and writes the segment, if any; fills st->segs. */
static int publish_segment(struct tier *t, const char *head_key, struct pub_step *st, struct s3_result *res)
{
	struct tier_node_pub *p = &t->pub;
	size_t nd = p->done ? tier_digests_minus(st->cur + 1, st->n, p->set + 1, p->n, NULL) : st->n;
	int64_t age = p->nsegs ? tier_wall_ns() - (int64_t)p->segs[0].gen : 0;
	struct digest *delta;
	int rc;

	st->plan = tier_node_publish_plan(p->done, p->nsegs, p->listed, st->n, nd, age);
	st->segs = malloc((p->nsegs + 1) * sizeof(*st->segs));
	if (!st->segs)
		return -ENOMEM;
	if (st->plan != TIER_NODE_FULL) {
		memcpy(st->segs, p->segs, p->nsegs * sizeof(*st->segs));
		st->nsegs = p->nsegs;
		st->listed = p->listed;
	}
	if (st->plan == TIER_NODE_DELTA) {
		delta = malloc((nd + 1) * sizeof(*delta));
		if (!delta)
			return -ENOMEM;
		tier_digests_minus(st->cur + 1, st->n, p->set + 1, p->n, delta + 1);
		rc = put_segment(t, head_key, (uint8_t *)delta, nd, &st->segs[st->nsegs], res);
		free(delta);
	} else if (st->plan == TIER_NODE_FULL && st->n) {
		rc = put_segment(t, head_key, (uint8_t *)st->cur, st->n, &st->segs[st->nsegs], res);
	} else {
		return 0;  /* the head alone (an empty set has no segment) */
	}
	if (rc == 0)
		st->listed += st->segs[st->nsegs++].count;
	return rc;
}

/* The head is in place: what it names becomes what this node published. */
static void publish_done(struct tier *t, const char *head_key, struct pub_step *st, uint64_t gen,
			 const uint8_t vhash[SHA256_DIGEST_LENGTH])
{
	struct tier_node_pub *p = &t->pub;

	if (st->plan == TIER_NODE_FULL)
		drop_segments(t, head_key, p->segs, p->nsegs);
	free(p->set);
	free(p->segs);
	p->set = st->cur;
	p->n = st->n;
	p->segs = st->segs;
	p->nsegs = st->nsegs;
	p->listed = st->listed;
	st->cur = NULL;
	st->segs = NULL;
	p->done = true;
	p->index_gen = gen;
	p->ns = tier_now_ns();
	memcpy(p->vhash, vhash, sizeof(p->vhash));
}

/* The version list into *versions, and the SHA-256 of its text. */
static int versions_hash(struct tier *t, json_t **versions, uint8_t vhash[SHA256_DIGEST_LENGTH])
{
	char *vtext;

	*versions = node_versions(t);
	vtext = *versions ? json_dumps(*versions, JSON_COMPACT) : NULL;
	if (!vtext) {
		json_decref(*versions);
		return -ENOMEM;
	}
	SHA256((const uint8_t *)vtext, strlen(vtext), vhash);
	free(vtext);
	return 0;
}

int tier_publish_node(struct tier *t, const struct digest *extra, size_t nextra, bool force, char *msg,
		      size_t msgsz)
{
	struct pub_step st = { 0 };
	struct s3_result res = { 0 };
	uint8_t vhash[SHA256_DIGEST_LENGTH];
	char key[TIER_PREFIX_MAX + TIER_NODE_ID_MAX + 16], *text = NULL;
	json_t *versions;
	uint64_t gen;
	int rc;

	store_chunk_list(t->st, NULL, NULL, &gen);
	if (versions_hash(t, &versions, vhash) < 0)
		return -ENOMEM;
	/* Extra digests differ from one upload to the next: always published. */
	if (!force && nextra == 0 && t->pub.done && gen == t->pub.index_gen &&
	    memcmp(vhash, t->pub.vhash, sizeof(vhash)) == 0) {
		json_decref(versions);
		return 0;
	}
	rc = tier_key(t, key, sizeof(key), "nodes/%s.json", t->node_id);
	if (rc == 0)
		rc = published_chunks(t, extra, nextra, &st.cur, &st.n, &gen);
	if (rc == 0)
		rc = publish_segment(t, key, &st, &res);
	if (rc == 0) {
		/* The segments are up: only now may a head name them. */
		text = tier_node_head_encode(t->node_id, tier_wall_ns(), versions, st.n, st.segs, st.nsegs);
		rc = text ? s3_put(t->client, key, text, strlen(text), NULL, 0, &res) : -ENOMEM;
	}
	json_decref(versions);
	free(text);
	if (rc == 0)
		publish_done(t, key, &st, gen, vhash);
	free(st.cur);
	free(st.segs);
	if (rc < 0)
		snprintf(msg, msgsz, "publishing this node's state: %.300s", res.message[0] ? res.message : strerror(-rc));
	return rc;
}

void tier_node_pub_free(struct tier_node_pub *p)
{
	free(p->set);
	free(p->segs);
	memset(p, 0, sizeof(*p));
}

/* ---- the uploader's side ---- */

int tier_gc_prepare(struct tier *t, const struct digest *extra, size_t nextra, uint64_t *epoch, char *msg,
		    size_t msgsz)
{
	struct tier_gc_epoch ep;
	struct s3_result res = { 0 };
	int rc = tier_publish_node(t, extra, nextra, false, msg, msgsz);

	if (rc < 0)
		return rc;
	rc = tier_gc_epoch_get(t->client, t->prefix, &ep, &res);
	if (rc < 0) {
		snprintf(msg, msgsz, "reading the garbage collection epoch: %.300s",
			 res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	if (ep.collecting && !tier_gc_epoch_stale(&ep)) {
		snprintf(msg, msgsz, "waiting for the bucket garbage collection of node %.64s to finish", ep.node);
		return -EAGAIN;
	}
	*epoch = ep.epoch;
	return 0;
}

void tier_publish_idle(struct tier *t)
{
	char msg[400];

	if (t->pub.done && tier_now_ns() - t->pub.ns < NODE_PUBLISH_MIN_NS)
		return;
	if (tier_publish_node(t, NULL, 0, false, msg, sizeof(msg)) < 0)
		tier_logf(t, S3_LOG_WARN, "S3 tier: %s", msg);
	else
		t->pub.ns = tier_now_ns();
}
