/* nodestate_bench.c - the cost of a node's GC state (nodes/<id>.json and its segments, FORMAT.md section
 * 5) against a real S3 server, for a synthetic node of N random digests. Not pass/fail: driven by
 * bench_nodestate.py, which starts the server and prints medians.
 *
 *   pecfs-nodestate-bench publish PREFIX N   format 2: a full publish (one segment of N digests, then the
 *                                            head), then an incremental one of 1000 new digests; format 1
 *                                            (every digest as hex in one JSON object, as the previous
 *                                            release wrote it). Prints time and bytes of each, and the
 *                                            in-memory encode time.
 *   pecfs-nodestate-bench read KEY           the collector's read of the head at KEY (tier_node_state_get:
 *                                            head, segments checked, digests into one array) and its sort;
 *                                            prints time, digests and this process's peak RSS.
 * The publish steps do what tier_publish_node does (the set as a sorted array, one merge for the
 * delta, segment before head) without a data folder, so that N can be 10 million.
 * Server and credentials: PECS3_ENDPOINT, PECS3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/sha.h>

#include "s3_creds.h"
#include "tier_impl.h"

#define INCREMENT 1000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dcmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

/* n pseudo-random digests (xorshift, seeded), sorted, at d[1..n]; d[0] is room for a segment header. */
static struct digest *synth(size_t n, uint64_t seed)
{
	struct digest *d = malloc((n + 1) * sizeof(*d));

	for (size_t i = 1; d && i <= n; i++)
		for (size_t k = 0; k < DIGEST_LEN; k += 8) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			memcpy(d[i].b + k, &seed, 8);
		}
	if (d)
		qsort(d + 1, n, sizeof(*d), dcmp);
	return d;
}

static int put(struct s3_client *c, const char *key, const void *data, size_t len)
{
	struct s3_result res = { 0 };
	int rc = s3_put(c, key, data, len, NULL, 0, &res);

	if (rc < 0)
		fprintf(stderr, "PUT %s: %s\n", key, res.message);
	return rc;
}

/* One segment (obj[0] is its header slot) and a head naming segs; returns bytes sent, or -1. */
static long long publish_v2(struct s3_client *c, const char *head, struct digest *obj, size_t n,
			    struct tier_node_seg *segs, size_t nsegs, uint64_t total, double *encode_s)
{
	char key[1024], *text;
	double t0 = now_s();
	json_t *versions = json_array();
	long long bytes;

	segs[nsegs - 1].gen = (uint64_t)tier_wall_ns();
	segs[nsegs - 1].count = n;
	tier_node_segment_header(n, (uint8_t *)obj);
	SHA256((const uint8_t *)obj, TIER_NODE_SEG_HDR + n * DIGEST_LEN, segs[nsegs - 1].sha256);
	text = tier_node_head_encode("bench", tier_wall_ns(), versions, total, segs, nsegs);
	json_decref(versions);
	*encode_s = now_s() - t0;
	tier_node_segment_key(head, segs[nsegs - 1].gen, key, sizeof(key));
	if (!text || put(c, key, obj, TIER_NODE_SEG_HDR + n * DIGEST_LEN) < 0 || put(c, head, text, strlen(text)) < 0) {
		free(text);
		return -1;
	}
	bytes = (long long)(TIER_NODE_SEG_HDR + n * DIGEST_LEN + strlen(text));
	free(text);
	return bytes;
}

/* The previous release's format: every digest as hex in one JSON object. */
static long long publish_v1(struct s3_client *c, const char *head, const struct digest *d, size_t n,
			    double *encode_s)
{
	double t0 = now_s();
	char *hex = malloc(n * DIGEST_HEX_LEN + 1), *text;
	json_t *j;
	long long bytes;

	if (!hex)
		return -1;
	for (size_t i = 0; i < n; i++)
		digest_to_hex(&d[i], hex + i * DIGEST_HEX_LEN);
	hex[n * DIGEST_HEX_LEN] = '\0';
	j = json_pack("{s:i,s:s,s:I,s:[],s:I,s:s}", "format", 1, "node", "bench", "updated_ns",
		      (json_int_t)tier_wall_ns(), "versions", "chunk_count", (json_int_t)n, "chunks", hex);
	free(hex);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	*encode_s = now_s() - t0;
	if (!text || put(c, head, text, strlen(text)) < 0) {
		free(text);
		return -1;
	}
	bytes = (long long)strlen(text);
	free(text);
	return bytes;
}

static int cmd_publish(struct s3_client *c, const char *prefix, size_t n)
{
	struct tier_node_seg segs[2];
	char head2[512], head1[512];
	struct digest *set = synth(n, 0x9e3779b97f4a7c15ull), *add = synth(INCREMENT, (uint64_t)tier_wall_ns() | 1);
	struct digest *merged = malloc((n + INCREMENT + 1) * sizeof(*merged)), *delta = malloc((INCREMENT + 1) *
											  sizeof(*delta));
	double t0, enc, set_s;
	long long b;
	size_t nd;

	if (!set || !add || !merged || !delta)
		return -ENOMEM;
	snprintf(head2, sizeof(head2), "%s/nodes/bench.json", prefix);
	snprintf(head1, sizeof(head1), "%s/nodes/bench-v1.json", prefix);
	t0 = now_s();
	b = publish_v2(c, head2, set, n, segs, 1, n, &enc);
	printf("v2_full_s %.3f v2_full_bytes %lld v2_full_encode_s %.3f\n", now_s() - t0, b, enc);
	/* 1000 new digests: the set becomes set + add (a merge), the delta is what the last set lacks. */
	t0 = now_s();
	memcpy(merged + 1, set + 1, n * sizeof(*set));
	memcpy(merged + 1 + n, add + 1, INCREMENT * sizeof(*add));
	qsort(merged + 1, n + INCREMENT, sizeof(*merged), dcmp);
	nd = tier_digests_minus(merged + 1, n + INCREMENT, set + 1, n, delta + 1);
	set_s = now_s() - t0;  /* building the new set (here a sort; the node gets it sorted) and the merge */
	t0 = now_s();
	b = publish_v2(c, head2, delta, nd, segs, 2, n + nd, &enc);
	printf("v2_incr_s %.3f v2_incr_bytes %lld v2_incr_digests %zu v2_incr_set_s %.3f\n", now_s() - t0, b, nd,
	       set_s);
	t0 = now_s();
	b = publish_v1(c, head1, set + 1, n, &enc);
	printf("v1_full_s %.3f v1_full_bytes %lld v1_full_encode_s %.3f\n", now_s() - t0, b, enc);
	free(set);
	free(add);
	free(merged);
	free(delta);
	return b < 0 ? -EIO : 0;
}

static int cmd_read(struct s3_client *c, const char *key)
{
	struct tier_digest_vec v = { 0 };
	struct tier_node_state st;
	struct rusage ru;
	char err[800];
	double t0 = now_s(), t1;
	int rc = tier_node_state_get(c, key, &st, &v, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return rc;
	}
	t1 = now_s();
	qsort(v.d, v.n, sizeof(*v.d), dcmp);  /* as the collector sorts its live set */
	getrusage(RUSAGE_SELF, &ru);
	printf("read_s %.3f sort_s %.3f digests %zu format %d peak_rss_mib %.1f\n", t1 - t0, now_s() - t1, v.n,
	       st.format, ru.ru_maxrss / 1024.0);
	tier_node_state_free(&st);
	tier_digest_vec_free(&v);
	return 0;
}

int main(int argc, char **argv)
{
	struct s3_client_config cfg = { .endpoint = getenv("PECS3_ENDPOINT"), .bucket = getenv("PECS3_BUCKET"),
					.addressing = S3_ADDRESSING_PATH, .low_speed_time_s = 600 };
	struct s3_credentials creds = { 0 };
	struct s3_client *c;
	char err[400];
	int rc;

	if (argc < 3 || (strcmp(argv[1], "publish") == 0 && argc < 4)) {
		fprintf(stderr, "usage: %s publish PREFIX N | read KEY\n", argv[0]);
		return 2;
	}
	if (s3_creds_load(NULL, NULL, &creds, err, sizeof(err)) != 0) {
		fprintf(stderr, "credentials: %s\n", err);
		return 2;
	}
	cfg.creds = &creds;
	rc = s3_client_new(&cfg, &c, err, sizeof(err));
	s3_creds_clear(&creds);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	rc = strcmp(argv[1], "publish") == 0 ? cmd_publish(c, argv[2], strtoull(argv[3], NULL, 10))
					     : cmd_read(c, argv[2]);
	s3_client_free(c);
	return rc < 0 ? 1 : 0;
}
