/* tier_gc.c - what the nodes and the bucket garbage collector tell each other through the bucket
 * (FORMAT.md section 5, "Bucket garbage collection"):
 *
 *   PREFIX/nodes/<node-id>.json  each node's state: the versions it keeps locally and every chunk
 *                                digest of its chunk index (chunks it holds, or has evicted and may
 *                                still read back). Rewritten by the uploader when either changes.
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

#define NODE_STATE_MAX (1024ull << 20)
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

static char *hex_digests(const struct digest *d, size_t n)
{
	char *s = malloc(n * DIGEST_HEX_LEN + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		digest_to_hex(&d[i], s + i * DIGEST_HEX_LEN);
	s[n * DIGEST_HEX_LEN] = '\0';
	return s;
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

/* The index's digests and extra ones, sorted, without repeats. */
static int published_chunks(struct tier *t, const struct digest *extra, size_t nextra, struct digest **out,
			    size_t *n, uint64_t *gen)
{
	struct digest *d = NULL, *all;
	size_t k = 0;
	int rc = store_chunk_list(t->st, &d, n, gen);

	if (rc < 0)
		return rc;
	all = realloc(d, (*n + nextra + 1) * sizeof(*all));
	if (!all) {
		free(d);
		return -ENOMEM;
	}
	if (nextra) {
		memcpy(all + *n, extra, nextra * sizeof(*all));
		qsort(all, *n + nextra, sizeof(*all), digest_cmp);
		for (size_t i = 0; i < *n + nextra; i++)
			if (k == 0 || memcmp(&all[k - 1], &all[i], DIGEST_LEN) != 0)
				all[k++] = all[i];
		*n = k;
	}
	*out = all;
	return 0;
}

int tier_publish_node(struct tier *t, const struct digest *extra, size_t nextra, bool force, char *msg,
		      size_t msgsz)
{
	struct digest *d = NULL;
	struct s3_result res = { 0 };
	uint8_t vhash[SHA256_DIGEST_LENGTH];
	char key[TIER_PREFIX_MAX + TIER_NODE_ID_MAX + 16], *vtext = NULL, *text = NULL, *hex = NULL;
	json_t *versions, *j = NULL;
	uint64_t gen;
	size_t n = 0;
	int rc;

	store_chunk_list(t->st, NULL, NULL, &gen);
	versions = node_versions(t);
	vtext = versions ? json_dumps(versions, JSON_COMPACT) : NULL;
	if (!vtext) {
		json_decref(versions);
		return -ENOMEM;
	}
	SHA256((const uint8_t *)vtext, strlen(vtext), vhash);
	free(vtext);
	/* Extra digests differ from one upload to the next: always published. */
	if (!force && nextra == 0 && t->published && gen == t->published_gen && memcmp(vhash, t->published_vhash, sizeof(vhash)) == 0) {
		json_decref(versions);
		return 0;
	}
	rc = published_chunks(t, extra, nextra, &d, &n, &gen);
	hex = rc == 0 ? hex_digests(d, n) : NULL;
	if (hex)
		j = json_pack("{s:i,s:s,s:I,s:o,s:I,s:s}", "format", 1, "node", t->node_id, "updated_ns",
			      (json_int_t)tier_wall_ns(), "versions", versions, "chunk_count", (json_int_t)n, "chunks", hex);
	else
		json_decref(versions);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	free(hex);
	free(d);
	if (!text)
		return -ENOMEM;
	rc = tier_key(t, key, sizeof(key), "nodes/%s.json", t->node_id);
	if (rc == 0)
		rc = s3_put(t->client, key, text, strlen(text), NULL, 0, &res);
	free(text);
	if (rc < 0) {
		snprintf(msg, msgsz, "publishing this node's state: %.300s", res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	t->published = true;
	t->published_gen = gen;
	t->published_ns = tier_now_ns();
	memcpy(t->published_vhash, vhash, sizeof(vhash));
	return 0;
}

int tier_node_state_decode(const char *text, size_t len, struct tier_node_state *out, char *err, size_t errsz)
{
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *node, *vs, *chunks, *upd;
	const char *hex;
	size_t hlen, i;
	json_t *v;

	memset(out, 0, sizeof(*out));
	node = json_object_get(j, "node");
	vs = json_object_get(j, "versions");
	chunks = json_object_get(j, "chunks");
	upd = json_object_get(j, "updated_ns");
	if (!json_is_string(node) || !json_is_array(vs) || !json_is_string(chunks) || !json_is_integer(upd) ||
	    json_string_length(chunks) % DIGEST_HEX_LEN != 0) {
		snprintf(err, errsz, "not a node state object");
		json_decref(j);
		return -EINVAL;
	}
	snprintf(out->node, sizeof(out->node), "%s", json_string_value(node));
	out->updated_ns = (int64_t)json_integer_value(upd);
	hex = json_string_value(chunks);
	hlen = json_string_length(chunks);
	out->n_chunks = hlen / DIGEST_HEX_LEN;
	out->chunks = malloc((out->n_chunks ? out->n_chunks : 1) * sizeof(*out->chunks));
	out->versions = calloc(json_array_size(vs) + 1, sizeof(*out->versions));
	if (!out->chunks || !out->versions) {
		json_decref(j);
		tier_node_state_free(out);
		return -ENOMEM;
	}
	for (i = 0; i < out->n_chunks; i++) {
		char one[DIGEST_HEX_LEN + 1];
		memcpy(one, hex + i * DIGEST_HEX_LEN, DIGEST_HEX_LEN);
		one[DIGEST_HEX_LEN] = '\0';
		if (digest_from_hex(one, &out->chunks[i]) < 0) {
			snprintf(err, errsz, "a chunk digest is not hexadecimal");
			json_decref(j);
			tier_node_state_free(out);
			return -EINVAL;
		}
	}
	json_array_foreach(vs, i, v) {
		const char *run = json_string_value(json_array_get(v, 0));
		const char *ver = json_string_value(json_array_get(v, 1));
		if (!run || !ver)
			continue;
		if (asprintf(&out->versions[out->n_versions], "%s/%s", run, ver) < 0) {
			json_decref(j);
			tier_node_state_free(out);
			return -ENOMEM;
		}
		out->n_versions++;
	}
	json_decref(j);
	return 0;
}

void tier_node_state_free(struct tier_node_state *s)
{
	for (size_t i = 0; i < s->n_versions; i++)
		free(s->versions[i]);
	free(s->versions);
	free(s->chunks);
	memset(s, 0, sizeof(*s));
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

	if (t->published && tier_now_ns() - t->published_ns < NODE_PUBLISH_MIN_NS)
		return;
	if (tier_publish_node(t, NULL, 0, false, msg, sizeof(msg)) < 0)
		tier_logf(t, S3_LOG_WARN, "S3 tier: %s", msg);
	else
		t->published_ns = tier_now_ns();
}
