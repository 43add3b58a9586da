/* test_tier_gc.c - the objects bucket garbage collection reads (store/tier/tier_gc.c): a node's published
 * state decodes to its versions and chunk digests, and anything malformed is refused (a collector
 * that cannot read a node's state must delete nothing); a collector's epoch goes stale only after
 * TIER_GC_STALE_NS without a refresh.
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
		cmocka_unit_test(test_epoch_staleness),
		cmocka_unit_test(test_gc_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
