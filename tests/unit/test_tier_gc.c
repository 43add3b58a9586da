/* test_tier_gc.c - the objects bucket garbage collection reads (store/tier/tier_gc.c,
 * tier_node_state.c): a node's published state (a format 1 hex state, or a format 2 head naming
 * binary segments) decodes to its versions and chunk digests, and anything malformed is refused (a
 * collector that cannot read a node's state must delete nothing); a publish writes only the digests
 * new since the last one, and compacts when its segments list too much; a collector's epoch goes
 * stale only after TIER_GC_STALE_NS without a refresh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "tier_impl.h"

static void test_node_state_round(void **state)
{
	struct tier_node_state ns;
	struct digest a, b;
	char ha[DIGEST_HEX_LEN + 1], hb[DIGEST_HEX_LEN + 1], text[512], err[128];

	(void)state;
	digest_compute("a", 1, &a);
	digest_compute("b", 1, &b);
	digest_to_hex(&a, ha);
	digest_to_hex(&b, hb);
	snprintf(text, sizeof(text),
		 "{\"format\":1,\"node\":\"n1\",\"updated_ns\":5,\"versions\":[[\"run\",\"step-1\"],[\"run\",\"step-2\"]],"
		 "\"chunk_count\":2,\"chunks\":\"%s%s\"}", ha, hb);
	assert_int_equal(tier_node_state_decode(text, strlen(text), &ns, err, sizeof(err)), 0);
	assert_string_equal(ns.node, "n1");
	assert_int_equal(ns.updated_ns, 5);
	assert_int_equal(ns.n_versions, 2);
	assert_string_equal(ns.versions[0], "run/step-1");
	assert_string_equal(ns.versions[1], "run/step-2");
	assert_int_equal(ns.n_chunks, 2);
	assert_memory_equal(&ns.chunks[0], &a, sizeof(a));
	assert_memory_equal(&ns.chunks[1], &b, sizeof(b));
	tier_node_state_free(&ns);
}

static void test_node_state_refused(void **state)
{
	static const char *bad[] = {
		"",
		"[]",
		"{\"node\":\"n\",\"updated_ns\":1,\"versions\":[]}",                      /* no chunks */
		"{\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunks\":\"abc\"}",   /* not whole digests */
		"{\"node\":\"n\",\"updated_ns\":1,\"versions\":{},\"chunks\":\"\"}",      /* versions not a list */
		"{\"node\":1,\"updated_ns\":1,\"versions\":[],\"chunks\":\"\"}",          /* node not a string */
		"{\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunks\":"
		"\"zz00000000000000000000000000000000000000000000000000000000000000\"}", /* not hex */
	};
	struct tier_node_state ns;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(tier_node_state_decode(bad[i], strlen(bad[i]), &ns, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
}

/* ---- format 2: heads and segments ---- */

static int dcmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

/* n distinct digests (of the numbers base..base+n-1), sorted. */
static struct digest *digests(size_t base, size_t n)
{
	struct digest *d = malloc((n ? n : 1) * sizeof(*d));

	for (size_t i = 0; i < n; i++) {
		size_t v = base + i;
		digest_compute(&v, sizeof(v), &d[i]);
	}
	qsort(d, n, sizeof(*d), dcmp);
	return d;
}

/* A whole segment object of d[0..n) (header first), its length in *len and its entry in *seg. */
static uint8_t *segment(const struct digest *d, size_t n, size_t *len, struct tier_node_seg *seg)
{
	uint8_t *obj = malloc(TIER_NODE_SEG_HDR + n * DIGEST_LEN);

	tier_node_segment_header(n, obj);
	memcpy(obj + TIER_NODE_SEG_HDR, d, n * DIGEST_LEN);
	*len = TIER_NODE_SEG_HDR + n * DIGEST_LEN;
	seg->gen = 7;
	seg->count = n;
	SHA256(obj, *len, seg->sha256);
	return obj;
}

static void test_head_round(void **state)
{
	struct tier_node_seg segs[2] = { { .gen = 0x10, .count = 5 }, { .gen = 0x1234abcd5678ef00ull, .count = 2 } };
	json_t *versions = json_pack("[[s,s]]", "run", "step-9");
	struct tier_node_state ns;
	char err[128], *text;

	(void)state;
	memset(segs[0].sha256, 0xab, 32);
	memset(segs[1].sha256, 0x01, 32);
	text = tier_node_head_encode("n1", 42, versions, 6, segs, 2);
	json_decref(versions);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"gen\":\"0000000000000010\""));
	assert_int_equal(tier_node_state_decode(text, strlen(text), &ns, err, sizeof(err)), 0);
	assert_int_equal(ns.format, 2);
	assert_string_equal(ns.node, "n1");
	assert_int_equal(ns.updated_ns, 42);
	assert_int_equal(ns.chunk_count, 6);
	assert_int_equal(ns.n_chunks, 0);
	assert_int_equal(ns.n_versions, 1);
	assert_string_equal(ns.versions[0], "run/step-9");
	assert_int_equal(ns.n_segs, 2);
	assert_memory_equal(ns.segs, segs, sizeof(segs));
	tier_node_state_free(&ns);
	free(text);
}

static void test_head_refused(void **state)
{
	static const char *sha = "\"sha256\":\"abababababababababababababababababababababababababababababababab\"";
	static const char *bad[] = {
		"{\"format\":3,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunk_count\":0,\"segments\":[]}",
		"{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunk_count\":0}",        /* no segments */
		"{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"segments\":[]}",          /* no count */
		"{\"format\":2,\"node\":\"a/b\",\"updated_ns\":1,\"versions\":[],\"chunk_count\":0,\"segments\":[]}",
		"{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunk_count\":1,\"segments\":[]}",
		"{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],\"chunk_count\":0,\"segments\":[]"
		",\"node\":\"m\"}",                                                                          /* duplicate key */
	};
	static const char *bad_segs[] = {
		"{\"gen\":\"000000000000000G\",\"count\":1,%s}",                  /* not hex */
		"{\"gen\":\"000000000000000A\",\"count\":1,%s}",                  /* not lowercase */
		"{\"gen\":\"0001\",\"count\":1,%s}",                              /* short */
		"{\"gen\":\"0000000000000001\",\"count\":0,%s}",                  /* empty */
		"{\"gen\":\"0000000000000001\",\"count\":67108865,%s}",           /* over the cap */
		"{\"gen\":\"0000000000000002\",\"count\":1,%s},{\"gen\":\"0000000000000001\",\"count\":1,%s}",
		"{\"gen\":\"0000000000000002\",\"count\":1,%s},{\"gen\":\"0000000000000002\",\"count\":1,%s}",
		"{\"gen\":\"0000000000000001\",\"count\":40000000,%s},{\"gen\":\"0000000000000002\",\"count\":40000000,%s}",
		"{\"gen\":\"0000000000000001\",\"count\":1,\"sha256\":\"abab\"}%.0s",
	};
	struct tier_node_state ns;
	char err[128], text[1024], segs[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(tier_node_state_decode(bad[i], strlen(bad[i]), &ns, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
	for (size_t i = 0; i < sizeof(bad_segs) / sizeof(bad_segs[0]); i++) {
		snprintf(segs, sizeof(segs), bad_segs[i], sha, sha);
		snprintf(text, sizeof(text), "{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],"
			 "\"chunk_count\":1,\"segments\":[%s]}", segs);
		err[0] = '\0';
		assert_int_equal(tier_node_state_decode(text, strlen(text), &ns, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
	/* The same with a sound entry is accepted (the cases above fail for the reason given). */
	snprintf(text, sizeof(text), "{\"format\":2,\"node\":\"n\",\"updated_ns\":1,\"versions\":[],"
		 "\"chunk_count\":1,\"segments\":[{\"gen\":\"0000000000000001\",\"count\":1,%s}]}", sha);
	assert_int_equal(tier_node_state_decode(text, strlen(text), &ns, err, sizeof(err)), 0);
	tier_node_state_free(&ns);
}

static void test_segment_round(void **state)
{
	struct digest *d = digests(0, 100);
	struct tier_node_seg seg;
	char err[128];
	size_t len;
	uint8_t *obj = segment(d, 100, &len, &seg);

	(void)state;
	assert_int_equal(len, 32 + 100 * 32);
	assert_memory_equal(obj, "PECNSEG1", 8);
	assert_int_equal(tier_node_segment_check(obj, len, &seg, err, sizeof(err)), 0);
	assert_memory_equal(obj + TIER_NODE_SEG_HDR, d, 100 * DIGEST_LEN);
	free(obj);
	free(d);
}

/* Checks obj after damage: refused with -EBADMSG and a reason. */
static void assert_segment_refused(const uint8_t *obj, size_t len, const struct tier_node_seg *seg)
{
	char err[128] = "";

	assert_int_equal(tier_node_segment_check(obj, len, seg, err, sizeof(err)), -EBADMSG);
	assert_true(err[0] != '\0');
}

static void test_segment_refused(void **state)
{
	struct digest *d = digests(0, 10);
	struct tier_node_seg seg, other;
	size_t len;
	uint8_t *obj = segment(d, 10, &len, &seg), *copy = malloc(len + 32);
	struct digest tmp;

	(void)state;
	memcpy(copy, obj, len);
	copy[0] = 'X';                                       /* bad magic */
	assert_segment_refused(copy, len, &seg);
	memcpy(copy, obj, len);
	copy[20] ^= 1;                                       /* count changed: header CRC */
	assert_segment_refused(copy, len, &seg);
	other = seg;
	other.count = 9;                                     /* the head says another count */
	assert_segment_refused(obj, len, &other);
	assert_segment_refused(obj, len - 32, &seg);         /* truncated by a digest */
	assert_segment_refused(obj, len - 1, &seg);          /* truncated mid-digest */
	assert_segment_refused(obj, 16, &seg);               /* shorter than a header */
	memcpy(copy, obj, len);
	memset(copy + len, 0, 32);
	assert_segment_refused(copy, len + 32, &seg);        /* a digest more than counted */
	other = seg;
	other.sha256[0] ^= 1;                                /* the head's SHA-256 differs */
	assert_segment_refused(obj, len, &other);
	memcpy(copy, obj, len);
	copy[len - 1] ^= 1;                                  /* a digest changed: SHA-256 */
	assert_segment_refused(copy, len, &seg);
	/* Out of order and repeated, each with a SHA-256 that matches, so that only the order fails. */
	tmp = d[3];
	d[3] = d[4];
	d[4] = tmp;
	free(copy);
	copy = segment(d, 10, &len, &other);
	assert_segment_refused(copy, len, &other);
	free(copy);
	d[4] = d[3];
	copy = segment(d, 10, &len, &other);
	assert_segment_refused(copy, len, &other);
	free(copy);
	free(obj);
	free(d);
}

static void test_digests_minus(void **state)
{
	struct digest *a = digests(0, 8), *out = malloc(8 * sizeof(*out));
	struct digest b[3] = { a[1], a[4], a[7] };
	struct digest *far = digests(100, 2);

	(void)state;
	assert_int_equal(tier_digests_minus(a, 8, b, 3, out), 5);
	assert_memory_equal(&out[0], &a[0], DIGEST_LEN);
	assert_memory_equal(&out[1], &a[2], DIGEST_LEN);
	assert_memory_equal(&out[4], &a[6], DIGEST_LEN);
	assert_int_equal(tier_digests_minus(a, 8, b, 3, NULL), 5);  /* counting only */
	assert_int_equal(tier_digests_minus(a, 8, a, 8, out), 0);
	assert_int_equal(tier_digests_minus(a, 8, NULL, 0, out), 8);
	assert_int_equal(tier_digests_minus(NULL, 0, a, 8, out), 0);
	assert_int_equal(tier_digests_minus(a, 8, far, 2, out), 8);  /* b has only other digests */
	free(a);
	free(out);
	free(far);
}

static void test_publish_plan(void **state)
{
	(void)state;
	/* First publish after a start: full, whatever the numbers. */
	assert_int_equal(tier_node_publish_plan(false, 3, 10, 10, 0, 0), TIER_NODE_FULL);
	/* Nothing new: the head alone. */
	assert_int_equal(tier_node_publish_plan(true, 1, 100, 100, 0, 0), TIER_NODE_HEAD_ONLY);
	/* A few new digests: one delta segment. */
	assert_int_equal(tier_node_publish_plan(true, 1, 100, 101, 1, 0), TIER_NODE_DELTA);
	/* The segments would list more than twice the set: compact. */
	assert_int_equal(tier_node_publish_plan(true, 2, 150, 100, 50, 0), TIER_NODE_DELTA);
	assert_int_equal(tier_node_publish_plan(true, 2, 150, 100, 51, 0), TIER_NODE_FULL);
	/* The set shrank (local gc): compact even with nothing new. */
	assert_int_equal(tier_node_publish_plan(true, 2, 100, 40, 0, 0), TIER_NODE_FULL);
	/* Too many segments. */
	assert_int_equal(tier_node_publish_plan(true, TIER_NODE_SEGMENTS_KEEP - 1, 100, 100, 1, 0), TIER_NODE_DELTA);
	assert_int_equal(tier_node_publish_plan(true, TIER_NODE_SEGMENTS_KEEP, 100, 100, 1, 0), TIER_NODE_FULL);
	/* The oldest segment a day old. */
	assert_int_equal(tier_node_publish_plan(true, 1, 100, 100, 0, TIER_NODE_FULL_AGE_NS), TIER_NODE_FULL);
}

/* Publishes a run of changing sets the way tier_publish_node does (plan, delta by one merge, full
 * segments on compaction) and checks after each that the union of the listed segments holds the set,
 * and that the segments never list more than the plan allows. */
static void test_incremental_union_holds_every_set(void **state)
{
	struct tier_digest_vec listed = { 0 };  /* union of the segments, with repeats */
	struct digest *prev = NULL, *cur, *delta;
	size_t nprev = 0, nsegs = 0, deltas = 0, fulls = 0;

	(void)state;
	for (size_t round = 0; round < 40; round++) {
		/* Rounds add 30 digests and drop the 20 oldest; every tenth drops most of the set. */
		size_t lo = round % 10 == 9 ? round * 20 + 100 : round * 20, hi = 100 + round * 30, n = hi - lo;
		enum tier_node_plan plan;
		cur = digests(lo, n);
		delta = malloc(n * sizeof(*delta));
		size_t nd = round ? tier_digests_minus(cur, n, prev, nprev, delta) : n;
		plan = tier_node_publish_plan(round > 0, nsegs, listed.n, n, nd, 0);
		if (plan == TIER_NODE_FULL) {
			listed.n = 0;
			nsegs = 1;
			fulls++;
			assert_int_equal(tier_digest_vec_add(&listed, cur, n), 0);
		} else if (plan == TIER_NODE_DELTA) {
			nsegs++;
			deltas++;
			assert_int_equal(tier_digest_vec_add(&listed, delta, nd), 0);
		}
		assert_true(listed.n <= 2 * n);
		struct tier_digest_vec u = { 0 };
		assert_int_equal(tier_digest_vec_add(&u, listed.d, listed.n), 0);
		tier_digest_vec_sort_unique(&u);
		assert_int_equal(tier_digests_minus(cur, n, u.d, u.n, NULL), 0);  /* every digest of the set is listed */
		tier_digest_vec_free(&u);
		free(delta);
		free(prev);
		prev = cur;
		nprev = n;
	}
	assert_true(deltas > 20);  /* mostly small segments */
	assert_true(fulls > 1);    /* and compactions */
	free(prev);
	tier_digest_vec_free(&listed);
}

static void test_epoch_staleness(void **state)
{
	struct tier_gc_epoch ep = { .epoch = 3, .collecting = true };

	(void)state;
	ep.updated_ns = tier_wall_ns();
	assert_false(tier_gc_epoch_stale(&ep));
	ep.updated_ns = tier_wall_ns() - TIER_GC_STALE_NS / 2;
	assert_false(tier_gc_epoch_stale(&ep));
	ep.updated_ns = tier_wall_ns() - TIER_GC_STALE_NS - 1000000000;
	assert_true(tier_gc_epoch_stale(&ep));
}

static void test_gc_key(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(tier_gc_key("team", buf, sizeof(buf), "nodes/%s.json", "n1"), 0);
	assert_string_equal(buf, "team/nodes/n1.json");
	assert_int_equal(tier_gc_key("", buf, sizeof(buf), "gc/epoch"), 0);
	assert_string_equal(buf, "gc/epoch");
	assert_int_equal(tier_gc_key("p", buf, 8, "gc/epoch"), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_state_round),
		cmocka_unit_test(test_node_state_refused),
		cmocka_unit_test(test_head_round),
		cmocka_unit_test(test_head_refused),
		cmocka_unit_test(test_segment_round),
		cmocka_unit_test(test_segment_refused),
		cmocka_unit_test(test_digests_minus),
		cmocka_unit_test(test_publish_plan),
		cmocka_unit_test(test_incremental_union_holds_every_set),
		cmocka_unit_test(test_epoch_staleness),
		cmocka_unit_test(test_gc_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
