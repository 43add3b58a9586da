/* test_pec_retain.c - retention (newest N complete versions plus pinned and held ones) and persist
 * selection for the S3 tier (non-expert files always, K_persist experts per layer, stalest persisted
 * copy first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pec_retain.h"

#define S PEC_VSTATE_SEALED

static void expect_retained(const struct pec_retain_version *v, size_t n, uint32_t keep, const char *want,
			    size_t want_retired)
{
	bool retain[16];
	char got[17];

	assert_int_equal(pec_retain_select(v, n, keep, retain), want_retired);
	for (size_t i = 0; i < n; i++)
		got[i] = retain[i] ? 'K' : '-';
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void test_keeps_newest_n_complete_versions(void **state)
{
	const struct pec_retain_version v[] = {
		{ S, true, false, false }, { S, true, false, false }, { S, true, false, false },
		{ S, true, false, false }, { S, true, false, false },
	};

	(void)state;
	expect_retained(v, 5, 3, "--KKK", 2);
	expect_retained(v, 5, 5, "KKKKK", 0);
	expect_retained(v, 5, 1, "----K", 4);
}

static void test_incomplete_versions_do_not_count_toward_n(void **state)
{
	/* Rotation start: two incomplete versions, then complete ones, then a fresh incomplete one. */
	const struct pec_retain_version v[] = {
		{ S, false, false, false }, { S, false, false, false }, { S, true, false, false },
		{ S, true, false, false },  { S, false, false, false }, { S, true, false, false },
	};

	(void)state;
	/* The two newest complete ones are 3 and 5; the incomplete 4 between them stays too. */
	expect_retained(v, 6, 2, "---KKK", 3);
}

static void test_pinned_and_open_versions_stay(void **state)
{
	const struct pec_retain_version v[] = {
		{ S, true, true, false },  { S, true, false, false }, { PEC_VSTATE_OPEN, false, false, false },
		{ S, true, false, false }, { S, true, false, false },
	};

	(void)state;
	expect_retained(v, 5, 1, "K-K-K", 2);
}

static void test_damaged_and_deleted_versions(void **state)
{
	const struct pec_retain_version v[] = {
		{ PEC_VSTATE_DAMAGED, true, false, false }, { PEC_VSTATE_DELETED, true, false, false },
		{ S, true, false, false }, { PEC_VSTATE_DAMAGED, true, false, false }, { S, true, false, false },
	};

	(void)state;
	/* Damaged versions never count as complete; deleted ones are never retained nor counted as
	 * retired again. */
	expect_retained(v, 5, 2, "--KKK", 1);
	expect_retained(v, 5, 3, "K-KKK", 0);
}

static void test_too_few_complete_versions_or_keep_zero_retires_nothing(void **state)
{
	const struct pec_retain_version v[] = {
		{ S, false, false, false }, { S, true, false, false }, { S, false, false, false },
	};

	(void)state;
	expect_retained(v, 3, 2, "KKK", 0);
	expect_retained(v, 3, 0, "KKK", 0);
}

static void test_held_versions_stay_but_count_toward_n(void **state)
{
	/* An S3 outage: the three oldest are not committed yet, the two newest are. */
	struct pec_retain_version v[] = {
		{ S, true, false, true }, { S, true, false, true }, { S, true, false, true },
		{ S, true, false, false }, { S, true, false, false },
	};

	(void)state;
	expect_retained(v, 5, 1, "KKK-K", 1);
	/* Once the oldest is committed it goes; the held ones still count as the newest complete. */
	v[0].held = false;
	expect_retained(v, 5, 3, "-KKKK", 1);
	v[1].held = v[2].held = false;
	expect_retained(v, 5, 1, "----K", 4);
}

/* A composition of layer 0 (4 experts) and layer 1 (4 experts) in which the version wrote `written`
 * ("0-1 1-2"); inherited units come from "old" at step 0. */
static struct pec_composition *comp_writing(const char *name, int64_t step, const char *written)
{
	static char paths[8][48];
	struct pec_unit_file f[8];
	struct pec_unit_file all[8];
	struct pec_composition *base = NULL, *c = NULL;
	unsigned layer, expert;
	size_t n = 0;
	int used;

	for (uint32_t i = 0; i < 8; i++) {
		snprintf(paths[i], sizeof(paths[i]), "layer_%u_expert_%u_x", i / 4, i % 4);
		all[i] = (struct pec_unit_file){ { i / 4, i % 4 }, paths[i] };
	}
	while (sscanf(written, " %u-%u%n", &layer, &expert, &used) == 2) {
		f[n++] = all[layer * 4 + expert];
		written += used;
	}
	struct pec_version_in v0 = { "old", 0, PEC_VSTATE_SEALED, all, 8, NULL, NULL, 0 };
	struct pec_version_in v1 = { name, step, PEC_VSTATE_SEALED, f, n, NULL, NULL, 0 };
	assert_int_equal(pec_compose_next(NULL, &v0, NULL, &base), 0);
	assert_int_equal(pec_compose_next(base, &v1, NULL, &c), 0);
	pec_composition_free(base);
	return c;
}

static void test_persist_picks_k_of_the_written_experts_per_layer(void **state)
{
	struct pec_composition *c = comp_writing("global_step10", 10, "0-0 0-1 0-2 1-1 1-3");
	struct pec_persist *p = NULL;

	(void)state;
	/* Nothing persisted yet: rotation decides, layer 0 from expert 0, layer 1 from expert 1. */
	assert_int_equal(pec_persist_select(c, NULL, 1, &p), 0);
	assert_int_equal(p->n_units, 2);
	assert_true(pec_persist_has(p, (struct pec_unit){ 0, 0 }));
	assert_true(pec_persist_has(p, (struct pec_unit){ 1, 1 }));
	pec_persist_free(p);

	/* K_persist beyond what was written persists everything written, never inherited units. */
	assert_int_equal(pec_persist_select(c, NULL, 8, &p), 0);
	assert_int_equal(p->n_units, 5);
	assert_false(pec_persist_has(p, (struct pec_unit){ 0, 3 }));
	pec_persist_free(p);

	assert_int_equal(pec_persist_select(c, NULL, 0, &p), 0);
	assert_int_equal(p->n_units, 0);
	pec_persist_free(p);
	pec_composition_free(c);
}

static void test_persist_prefers_the_stalest_persisted_copy(void **state)
{
	/* In the persisted composition, 0-0 and 0-1 are from step 5 (newer), 0-2 from step 0. */
	struct pec_composition *persisted = comp_writing("global_step5", 5, "0-0 0-1");
	struct pec_composition *c = comp_writing("global_step10", 10, "0-0 0-1 0-2");
	struct pec_persist *p = NULL;

	(void)state;
	assert_int_equal(pec_persist_select(c, persisted, 1, &p), 0);
	assert_int_equal(p->n_units, 1);
	assert_true(pec_persist_has(p, (struct pec_unit){ 0, 2 }));
	pec_persist_free(p);
	assert_int_equal(pec_persist_select(NULL, NULL, 1, &p), -EINVAL);
	pec_composition_free(persisted);
	pec_composition_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keeps_newest_n_complete_versions),
		cmocka_unit_test(test_incomplete_versions_do_not_count_toward_n),
		cmocka_unit_test(test_pinned_and_open_versions_stay),
		cmocka_unit_test(test_damaged_and_deleted_versions),
		cmocka_unit_test(test_too_few_complete_versions_or_keep_zero_retires_nothing),
		cmocka_unit_test(test_held_versions_stay_but_count_toward_n),
		cmocka_unit_test(test_persist_picks_k_of_the_written_experts_per_layer),
		cmocka_unit_test(test_persist_prefers_the_stalest_persisted_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
