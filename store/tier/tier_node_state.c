/* tier_node_state.c - the node state objects bucket garbage collection reads (FORMAT.md section 5, "Node
 * state: head and segments"): the JSON head nodes/<id>.json (format 2 names segments, format 1 of older
 * releases holds every digest as hex) and the binary segments nodes/<id>/<gen>.seg, plus the set
 * arithmetic a publish needs (what changed, whether to compact). Pure: no I/O. Everything decoded here
 * comes from a bucket others can write, so every size is checked against caps before it is used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "crc32c.h"
#include "tier_impl.h"

#define SEG_MAGIC "PECNSEG1"
#define SEG_FORMAT 1
#define GEN_HEX 16

/* ---- digest arrays ---- */

int tier_digest_vec_reserve(struct tier_digest_vec *v, size_t n)
{
	struct digest *d;
	size_t cap;

	if (v->n + n <= v->cap)
		return 0;
	cap = v->cap * 2 > v->n + n ? v->cap * 2 : v->n + n;
	d = realloc(v->d, (cap ? cap : 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	v->d = d;
	v->cap = cap;
	return 0;
}

int tier_digest_vec_add(struct tier_digest_vec *v, const struct digest *d, size_t n)
{
	int rc = tier_digest_vec_reserve(v, n);

	if (rc == 0 && n) {
		memcpy(v->d + v->n, d, n * sizeof(*d));
		v->n += n;
	}
	return rc;
}

void tier_digest_vec_free(struct tier_digest_vec *v)
{
	free(v->d);
	memset(v, 0, sizeof(*v));
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

void tier_digest_vec_sort_unique(struct tier_digest_vec *v)
{
	size_t k = 0;

	if (v->n < 2)
		return;
	qsort(v->d, v->n, sizeof(*v->d), digest_cmp);
	for (size_t i = 0; i < v->n; i++)
		if (k == 0 || memcmp(&v->d[k - 1], &v->d[i], DIGEST_LEN) != 0)
			v->d[k++] = v->d[i];
	v->n = k;
}

size_t tier_digests_minus(const struct digest *a, size_t na, const struct digest *b, size_t nb,
			  struct digest *out)
{
	size_t i = 0, j = 0, k = 0;

	while (i < na) {
		int c = j < nb ? memcmp(&a[i], &b[j], DIGEST_LEN) : -1;
		if (c < 0) {
			if (out)
				out[k] = a[i];
			k++, i++;
		}
		else if (c > 0)
			j++;
		else
			i++, j++;
	}
	return k;
}

enum tier_node_plan tier_node_publish_plan(bool have, size_t nsegs, uint64_t listed, uint64_t now, uint64_t delta,
					   int64_t full_age_ns)
{
	if (!have || full_age_ns >= TIER_NODE_FULL_AGE_NS)
		return TIER_NODE_FULL;
	/* Listed digests beyond twice the set: digests the node dropped keep too many chunks alive. */
	if (listed + delta > 2 * now || (delta && nsegs + 1 > TIER_NODE_SEGMENTS_KEEP))
		return TIER_NODE_FULL;
	return delta ? TIER_NODE_DELTA : TIER_NODE_HEAD_ONLY;
}

/* ---- segments ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

void tier_node_segment_header(uint64_t count, uint8_t hdr[TIER_NODE_SEG_HDR])
{
	memset(hdr, 0, TIER_NODE_SEG_HDR);
	memcpy(hdr, SEG_MAGIC, 8);
	put_le32(hdr + 8, SEG_FORMAT);
	put_le32(hdr + 12, TIER_NODE_SEG_HDR);
	put_le64(hdr + 16, count);
	put_le32(hdr + 24, crc32c(0, hdr, 24));
}

static int seg_refuse(char *err, size_t errsz, const char *why)
{
	snprintf(err, errsz, "%s", why);
	return -EBADMSG;
}

int tier_node_segment_check(const uint8_t *obj, size_t len, const struct tier_node_seg *seg, char *err,
			    size_t errsz)
{
	const struct digest *d = (const struct digest *)(obj + TIER_NODE_SEG_HDR);
	uint8_t sha[SHA256_DIGEST_LENGTH];

	if (len < TIER_NODE_SEG_HDR || memcmp(obj, SEG_MAGIC, 8) != 0)
		return seg_refuse(err, errsz, "not a node state segment (bad magic)");
	if (get_le32(obj + 8) != SEG_FORMAT || get_le32(obj + 12) != TIER_NODE_SEG_HDR ||
	    get_le32(obj + 24) != crc32c(0, obj, 24) || get_le32(obj + 28) != 0)
		return seg_refuse(err, errsz, "segment header damaged or of another format");
	if (get_le64(obj + 16) != seg->count)
		return seg_refuse(err, errsz, "segment holds another number of digests than its head says");
	if ((len - TIER_NODE_SEG_HDR) % DIGEST_LEN != 0 || (len - TIER_NODE_SEG_HDR) / DIGEST_LEN != seg->count)
		return seg_refuse(err, errsz, "segment length does not match its digest count");
	for (size_t i = 1; i < seg->count; i++)
		if (memcmp(&d[i - 1], &d[i], DIGEST_LEN) >= 0)
			return seg_refuse(err, errsz, "segment digests out of order or repeated");
	SHA256(obj, len, sha);
	if (memcmp(sha, seg->sha256, sizeof(sha)) != 0)
		return seg_refuse(err, errsz, "segment SHA-256 differs from its head's");
	return 0;
}

int tier_node_segment_key(const char *head_key, uint64_t gen, char *buf, size_t size)
{
	size_t len = strlen(head_key);
	int n;

	if (len < 5 || strcmp(head_key + len - 5, ".json") != 0)
		return -EINVAL;
	n = snprintf(buf, size, "%.*s/%016llx.seg", (int)(len - 5), head_key, (unsigned long long)gen);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ---- heads ---- */

static void hex_lower(const uint8_t *b, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = x[b[i] >> 4];
		out[2 * i + 1] = x[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Exactly 2 n lowercase hex digits into n bytes. */
static bool unhex_lower(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < 2 * n; i++) {
		int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
		if (v < 0)
			return false;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return true;
}

char *tier_node_head_encode(const char *node, int64_t updated_ns, json_t *versions, uint64_t chunk_count,
			    const struct tier_node_seg *segs, size_t nsegs)
{
	json_t *arr = json_array(), *j;
	char *text = NULL;

	for (size_t i = 0; arr && i < nsegs; i++) {
		char gen[GEN_HEX + 1], sha[2 * SHA256_DIGEST_LENGTH + 1];
		snprintf(gen, sizeof(gen), "%016llx", (unsigned long long)segs[i].gen);
		hex_lower(segs[i].sha256, sizeof(segs[i].sha256), sha);
		if (json_array_append_new(arr, json_pack("{s:s,s:I,s:s}", "gen", gen, "count",
							 (json_int_t)segs[i].count, "sha256", sha)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	j = arr ? json_pack("{s:i,s:s,s:I,s:O,s:I,s:o}", "format", 2, "node", node, "updated_ns",
			    (json_int_t)updated_ns, "versions", versions, "chunk_count", (json_int_t)chunk_count,
			    "segments", arr) : NULL;
	if (j)
		text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return text;
}

static int decode_refuse(struct tier_node_state *out, json_t *j, char *err, size_t errsz, const char *why)
{
	snprintf(err, errsz, "%s", why);
	json_decref(j);
	tier_node_state_free(out);
	return -EINVAL;
}

static int decode_versions(json_t *vs, struct tier_node_state *out)
{
	size_t i;
	json_t *v;

	out->versions = calloc(json_array_size(vs) + 1, sizeof(*out->versions));
	if (!out->versions)
		return -ENOMEM;
	json_array_foreach(vs, i, v) {
		const char *run = json_string_value(json_array_get(v, 0));
		const char *ver = json_string_value(json_array_get(v, 1));
		if (!run || !ver)
			continue;
		if (asprintf(&out->versions[out->n_versions], "%s/%s", run, ver) < 0)
			return -ENOMEM;
		out->n_versions++;
	}
	return 0;
}

/* Format 1: every digest as hex in "chunks". */
static const char *decode_hex_chunks(json_t *chunks, struct tier_node_state *out)
{
	const char *hex = json_string_value(chunks);

	if (json_string_length(chunks) % DIGEST_HEX_LEN != 0)
		return "not a node state object";
	out->n_chunks = json_string_length(chunks) / DIGEST_HEX_LEN;
	out->chunk_count = out->n_chunks;
	out->chunks = malloc((out->n_chunks ? out->n_chunks : 1) * sizeof(*out->chunks));
	if (!out->chunks)
		return "out of memory";
	for (size_t i = 0; i < out->n_chunks; i++) {
		char one[DIGEST_HEX_LEN + 1];
		memcpy(one, hex + i * DIGEST_HEX_LEN, DIGEST_HEX_LEN);
		one[DIGEST_HEX_LEN] = '\0';
		if (digest_from_hex(one, &out->chunks[i]) < 0)
			return "a chunk digest is not hexadecimal";
	}
	return NULL;
}

/* One entry of format 2's "segments"; prev: the entry before it (NULL for the first). */
static const char *decode_segment(json_t *e, const struct tier_node_seg *prev, struct tier_node_seg *s)
{
	json_t *gen = json_object_get(e, "gen"), *count = json_object_get(e, "count"), *sha = json_object_get(e, "sha256");
	uint8_t g[GEN_HEX / 2];

	if (!json_is_string(gen) || !json_is_integer(count) || !json_is_string(sha))
		return "a segment entry lacks gen, count or sha256";
	if (!unhex_lower(json_string_value(gen), g, sizeof(g)) ||
	    !unhex_lower(json_string_value(sha), s->sha256, sizeof(s->sha256)))
		return "a segment's gen or sha256 is not lowercase hex of the right length";
	s->gen = 0;
	for (size_t i = 0; i < sizeof(g); i++)
		s->gen = s->gen << 8 | g[i];
	if (json_integer_value(count) < 1 || (uint64_t)json_integer_value(count) > TIER_NODE_DIGESTS_MAX)
		return "a segment's count is out of range";
	s->count = (uint64_t)json_integer_value(count);
	if (prev && prev->gen >= s->gen)
		return "segments out of order or repeated";
	return NULL;
}

/* Format 2: "chunk_count" and "segments". */
static const char *decode_segments(json_t *j, struct tier_node_state *out)
{
	json_t *segs = json_object_get(j, "segments"), *cc = json_object_get(j, "chunk_count"), *e;
	uint64_t total = 0;
	const char *why;
	size_t i;

	if (!json_is_array(segs) || !json_is_integer(cc) || json_integer_value(cc) < 0)
		return "not a node state object (format 2 needs segments and chunk_count)";
	if (json_array_size(segs) > TIER_NODE_SEGMENTS_MAX)
		return "too many segments";
	out->segs = calloc(json_array_size(segs) + 1, sizeof(*out->segs));
	if (!out->segs)
		return "out of memory";
	json_array_foreach(segs, i, e) {
		why = decode_segment(e, i ? &out->segs[i - 1] : NULL, &out->segs[i]);
		if (why)
			return why;
		total += out->segs[i].count;
		out->n_segs++;
	}
	out->chunk_count = (uint64_t)json_integer_value(cc);
	if (total > TIER_NODE_DIGESTS_MAX || out->chunk_count > total)
		return "segment counts out of range for the chunk count";
	return NULL;
}

int tier_node_state_decode(const char *text, size_t len, struct tier_node_state *out, char *err, size_t errsz)
{
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *node = json_object_get(j, "node"), *vs = json_object_get(j, "versions");
	json_t *upd = json_object_get(j, "updated_ns"), *fmt = json_object_get(j, "format");
	const char *why;

	memset(out, 0, sizeof(*out));
	if (!json_is_string(node) || !json_is_array(vs) || !json_is_integer(upd) || (fmt && !json_is_integer(fmt)))
		return decode_refuse(out, j, err, errsz, "not a node state object");
	out->format = fmt ? (int)json_integer_value(fmt) : 1;
	if (out->format != 1 && out->format != 2)
		return decode_refuse(out, j, err, errsz, "a node state of a format this release does not know");
	if (json_string_length(node) == 0 || json_string_length(node) >= sizeof(out->node) ||
	    strchr(json_string_value(node), '/'))
		return decode_refuse(out, j, err, errsz, "a node name that is empty, too long or holds '/'");
	snprintf(out->node, sizeof(out->node), "%s", json_string_value(node));
	out->updated_ns = (int64_t)json_integer_value(upd);
	if (out->format == 1)
		why = json_is_string(json_object_get(j, "chunks")) ? decode_hex_chunks(json_object_get(j, "chunks"), out)
								    : "not a node state object";
	else
		why = decode_segments(j, out);
	if (!why && decode_versions(vs, out) < 0)
		why = "out of memory";
	if (why)
		return decode_refuse(out, j, err, errsz, why);
	json_decref(j);
	return 0;
}

void tier_node_state_free(struct tier_node_state *s)
{
	for (size_t i = 0; i < s->n_versions; i++)
		free(s->versions[i]);
	free(s->versions);
	free(s->chunks);
	free(s->segs);
	memset(s, 0, sizeof(*s));
}
