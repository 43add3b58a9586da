/* test_pec_compose.c - composition resolution: the four-round table of policy/PEC.md, incomplete
 * versions, deleted and damaged versions, renamed expert files, steps from names or order, tensor-level
 * merges, and the manifest JSON round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pec_compose.h"

/* Test histories: up to 8 versions of up to 16 expert files, named the DeepSpeed way. */
struct hist {
	struct pec_version_in v[8];
	struct pec_unit_file files[8][16];
	char paths[8][16][64];
	struct pec_tokens *tokens[8];
	size_t n;
};

/* Appends a version that wrote the units in `units` ("1-0 3-1"). */
static void add_version(struct hist *h, const char *name, int64_t step, enum pec_vstate state, const char *units)
{
	size_t i = h->n++, k = 0;
	const char *s = units;
	unsigned layer, expert;
	int used;

	while (sscanf(s, " %u-%u%n", &layer, &expert, &used) == 2) {
		snprintf(h->paths[i][k], sizeof(h->paths[i][k]), "layer_%u_expert_%u_mp_rank_00_model_states.pt",
			 layer, expert);
		h->files[i][k] = (struct pec_unit_file){ { layer, expert }, h->paths[i][k] };
		k++;
		s += used;
	}
	h->v[i] = (struct pec_version_in){ name, step, state, h->files[i], k, NULL, NULL, 0 };
}

/* Attaches a token report to the last version added. */
static void add_tokens(struct hist *h, const char *json)
{
	char err[128];

	assert_int_equal(pec_tokens_parse(json, strlen(json), &h->tokens[h->n - 1], err, sizeof(err)), 0);
	h->v[h->n - 1].tokens = h->tokens[h->n - 1];
}

static void hist_free(struct hist *h)
{
	for (size_t i = 0; i < h->n; i++)
		pec_tokens_free(h->tokens[i]);
}

static const struct pec_comp_unit *unit_of(const struct pec_composition *c, uint32_t layer, uint32_t expert)
{
	const struct pec_comp_unit *u = pec_composition_find(c, (struct pec_unit){ layer, expert });

	assert_non_null(u);
	return u;
}

static void expect_source(const struct pec_composition *c, uint32_t layer, uint32_t expert, const char *source,
			  int64_t staleness)
{
	const struct pec_comp_unit *u = unit_of(c, layer, expert);

	assert_true(u->present);
	assert_string_equal(u->source, source);
	assert_int_equal(u->staleness, staleness);
}

#define TOKENS_ROUND "{\"top_k\":1,\"layers\":[{\"layer\":1,\"tokens\":100,\"experts\":[50,30,20]}," \
		     "{\"layer\":3,\"tokens\":100,\"experts\":[40,40,20]}]}"

/* The four rounds of policy/PEC.md: a full save, then K = 1 rotating. */
static void four_rounds(struct hist *h)
{
	add_version(h, "global_step100", 100, PEC_VSTATE_SEALED, "1-0 1-1 1-2 3-0 3-1 3-2");
	add_tokens(h, TOKENS_ROUND);
	add_version(h, "global_step200", 200, PEC_VSTATE_SEALED, "1-0 3-1");
	add_tokens(h, TOKENS_ROUND);
	add_version(h, "global_step300", 300, PEC_VSTATE_SEALED, "1-1 3-2");
	add_tokens(h, TOKENS_ROUND);
	add_version(h, "global_step400", 400, PEC_VSTATE_SEALED, "1-2 3-0");
	add_tokens(h, TOKENS_ROUND);
}

static void test_four_round_composition_table(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL;

	(void)state;
	four_rounds(&h);
	assert_int_equal(pec_compose_history(h.v, h.n, 3, NULL, &c), 0);
	assert_string_equal(c->name, "global_step400");
	assert_true(c->complete);
	assert_int_equal(c->n_units, 6);
	expect_source(c, 1, 0, "global_step200", 200);
	expect_source(c, 1, 1, "global_step300", 100);
	expect_source(c, 1, 2, "global_step400", 0);
	expect_source(c, 3, 0, "global_step400", 0);
	expect_source(c, 3, 1, "global_step200", 200);
	expect_source(c, 3, 2, "global_step300", 100);
	assert_true(unit_of(c, 1, 2)->written);
	assert_false(unit_of(c, 1, 0)->written);
	/* Lost tokens: 1-0 missed rounds 3 and 4 (50 + 50), 1-1 round 4 (30); 3-1 rounds 3, 4 (40 + 40),
	 * 3-2 round 4 (20). */
	assert_int_equal(unit_of(c, 1, 0)->lost_tokens, 100);
	assert_int_equal(unit_of(c, 1, 1)->lost_tokens, 30);
	assert_int_equal(unit_of(c, 1, 2)->lost_tokens, 0);
	assert_int_equal(unit_of(c, 3, 1)->lost_tokens, 80);
	assert_int_equal(unit_of(c, 3, 2)->lost_tokens, 20);
	assert_int_equal(c->layers[0].tokens, 400);
	assert_int_equal(c->layers[0].lost, 130);
	assert_int_equal(c->layers[1].lost, 100);
	assert_true(c->tokens_known);
	/* PLT = (130 / (400 * 1) + 100 / (400 * 1)) / 2 = 0.2875 */
	assert_float_equal(c->plt, 0.2875, 1e-12);
	/* Inherited files keep their source's path. */
	assert_int_equal(unit_of(c, 1, 0)->n_paths, 1);
	assert_string_equal(unit_of(c, 1, 0)->paths[0], "layer_1_expert_0_mp_rank_00_model_states.pt");
	pec_composition_free(c);

	/* Round 2 alone: everything but 1-0 and 3-1 comes from the full save. */
	assert_int_equal(pec_compose_history(h.v, h.n, 1, NULL, &c), 0);
	expect_source(c, 1, 1, "global_step100", 100);
	expect_source(c, 1, 0, "global_step200", 0);
	assert_float_equal(c->plt, ((30 + 20) / 200.0 + (40 + 20) / 200.0) / 2, 1e-12);
	pec_composition_free(c);
	hist_free(&h);
}

static void test_chained_composition_equals_history(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *chain = NULL, *next, *hist_c = NULL;
	char *a, *b;

	(void)state;
	four_rounds(&h);
	for (size_t i = 0; i < h.n; i++) {
		assert_int_equal(pec_compose_next(chain, &h.v[i], NULL, &next), 0);
		pec_composition_free(chain);
		chain = next;
	}
	assert_int_equal(pec_compose_history(h.v, h.n, 3, NULL, &hist_c), 0);
	assert_int_equal(pec_composition_to_json(chain, &a), 0);
	assert_int_equal(pec_composition_to_json(hist_c, &b), 0);
	assert_string_equal(a, b);
	free(a);
	free(b);
	pec_composition_free(chain);
	pec_composition_free(hist_c);
	hist_free(&h);
}

static void test_unit_never_written_makes_version_incomplete(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL;

	(void)state;
	/* The paper's Fig. 4 start: no full save, K = 1. */
	add_version(&h, "global_step1", 1, PEC_VSTATE_SEALED, "1-0 3-1 5-2 7-0");
	add_version(&h, "global_step2", 2, PEC_VSTATE_SEALED, "1-1 3-2 5-0 7-1");
	add_version(&h, "global_step3", 3, PEC_VSTATE_SEALED, "1-2 3-0 5-1 7-2");
	assert_int_equal(pec_compose_history(h.v, h.n, 0, NULL, &c), 0);
	assert_false(c->complete);
	/* Inferred layout: experts 0..highest seen per layer: 1:{0} 3:{0,1} 5:{0,1,2} 7:{0}. */
	assert_int_equal(c->n_units, 7);
	assert_int_equal(c->n_missing, 3);
	assert_false(unit_of(c, 3, 0)->present);
	assert_null(unit_of(c, 3, 0)->source);
	assert_int_equal(unit_of(c, 3, 0)->staleness, -1);
	pec_composition_free(c);

	/* With the layout known (3 experts everywhere), round 2 still misses 1-2, 3-0, 5-1, 7-2. */
	{
		struct pec_layout_layer ll[] = { { 1, 3 }, { 3, 3 }, { 5, 3 }, { 7, 3 } };
		struct pec_layout lo = { 4, ll };

		assert_int_equal(pec_compose_history(h.v, h.n, 1, &lo, &c), 0);
		assert_int_equal(c->n_units, 12);
		assert_int_equal(c->n_missing, 4);
		assert_false(c->complete);
		pec_composition_free(c);
		assert_int_equal(pec_compose_history(h.v, h.n, 2, &lo, &c), 0);
		assert_true(c->complete);
		expect_source(c, 1, 0, "global_step1", 2);
		expect_source(c, 7, 1, "global_step2", 1);
		pec_composition_free(c);
	}
	hist_free(&h);
}

static void test_gap_in_expert_numbers_is_incomplete(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL;

	(void)state;
	add_version(&h, "v0", 0, PEC_VSTATE_SEALED, "2-0 2-1 2-3");
	assert_int_equal(pec_compose_history(h.v, h.n, 0, NULL, &c), 0);
	assert_false(c->complete);
	assert_false(unit_of(c, 2, 2)->present);
	pec_composition_free(c);
	hist_free(&h);
}

static void test_deleted_version_is_no_longer_a_source_but_fixed_compositions_keep_it(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *fixed2 = NULL, *c = NULL;

	(void)state;
	four_rounds(&h);
	/* The composition of round 3 is fixed while round 2 still exists. */
	assert_int_equal(pec_compose_history(h.v, h.n, 2, NULL, &fixed2), 0);
	expect_source(fixed2, 1, 0, "global_step200", 100);

	/* Round 2 (global_step200) is removed. Recomputing round 4 from the history falls back to the
	 * full save for the units round 2 wrote... */
	h.v[1].state = PEC_VSTATE_DELETED;
	assert_int_equal(pec_compose_history(h.v, h.n, 3, NULL, &c), 0);
	expect_source(c, 1, 0, "global_step100", 300);
	expect_source(c, 3, 1, "global_step100", 300);
	expect_source(c, 1, 1, "global_step300", 100);
	/* ...and the tokens of the deleted round still count as lost. */
	assert_int_equal(unit_of(c, 1, 0)->lost_tokens, 150);
	assert_int_equal(c->layers[0].tokens, 400);
	pec_composition_free(c);

	/* Composing round 4 on the stored composition of round 3 keeps round 2 as the source: removing
	 * an older version never changes what a newer one presents. */
	h.v[3].tokens = h.tokens[3];
	assert_int_equal(pec_compose_next(fixed2, &h.v[3], NULL, &c), 0);
	expect_source(c, 1, 0, "global_step200", 200);
	assert_int_equal(unit_of(c, 1, 0)->lost_tokens, 100);
	pec_composition_free(c);
	pec_composition_free(fixed2);
	hist_free(&h);
}

static void test_open_and_damaged_versions_are_skipped_as_sources(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL;

	(void)state;
	add_version(&h, "step-10", 10, PEC_VSTATE_SEALED, "0-0 0-1");
	add_version(&h, "step-20", 20, PEC_VSTATE_DAMAGED, "0-0");
	add_version(&h, "step-30", 30, PEC_VSTATE_OPEN, "0-1");
	add_version(&h, "step-40", 40, PEC_VSTATE_OPEN, "");
	assert_int_equal(pec_compose_history(h.v, h.n, 3, NULL, &c), 0);
	expect_source(c, 0, 0, "step-10", 30);
	expect_source(c, 0, 1, "step-10", 30);
	assert_true(c->complete);
	assert_false(c->tokens_known);
	assert_int_equal(c->top_k, 0);
	assert_float_equal(c->plt, 0.0, 0.0);
	pec_composition_free(c);
	hist_free(&h);
}

static void test_renamed_expert_file_replaces_the_old_name(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL;
	const struct pec_comp_unit *u;

	(void)state;
	add_version(&h, "global_step1", 1, PEC_VSTATE_SEALED, "4-0 4-1");
	/* Round 2 saves expert 4-0 under another model-parallel rank's name. */
	add_version(&h, "global_step2", 2, PEC_VSTATE_SEALED, "");
	h.files[1][0] = (struct pec_unit_file){ { 4, 0 }, "layer_4_expert_0_mp_rank_01_model_states.pt" };
	h.v[1].n_files = 1;
	add_version(&h, "global_step3", 3, PEC_VSTATE_SEALED, "4-1");
	assert_int_equal(pec_compose_history(h.v, h.n, 2, NULL, &c), 0);
	u = unit_of(c, 4, 0);
	assert_string_equal(u->source, "global_step2");
	assert_int_equal(u->n_paths, 1);
	assert_string_equal(u->paths[0], "layer_4_expert_0_mp_rank_01_model_states.pt");
	pec_composition_free(c);
	hist_free(&h);
}

static void test_unit_in_several_files_inherits_all_of_them(void **state)
{
	struct pec_unit_file f[] = {
		{ { 1, 0 }, "layer_1_expert_0_mp_rank_01_model_states.pt" },
		{ { 1, 0 }, "layer_1_expert_0_mp_rank_00_model_states.pt" },
		{ { 1, 0 }, "layer_1_expert_0_mp_rank_00_model_states.pt" },
		{ { 1, 1 }, "layer_1_expert_1_mp_rank_00_model_states.pt" },
	};
	struct pec_version_in v0 = { "a", 0, PEC_VSTATE_SEALED, f, 4, NULL, NULL, 0 };
	struct pec_version_in v1 = { "b", 1, PEC_VSTATE_SEALED, &f[3], 1, NULL, NULL, 0 };
	struct pec_composition *c0 = NULL, *c1 = NULL;
	const struct pec_comp_unit *u;

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v0, NULL, &c0), 0);
	assert_int_equal(pec_compose_next(c0, &v1, NULL, &c1), 0);
	u = unit_of(c1, 1, 0);
	assert_int_equal(u->n_paths, 2); /* sorted, duplicates dropped */
	assert_string_equal(u->paths[0], "layer_1_expert_0_mp_rank_00_model_states.pt");
	assert_string_equal(u->paths[1], "layer_1_expert_0_mp_rank_01_model_states.pt");
	assert_int_equal(u->staleness, 1);
	pec_composition_free(c0);
	pec_composition_free(c1);
}

static void test_steps_fall_back_to_version_order(void **state)
{
	int64_t named[] = { 100, 200, 300 }, mixed[] = { 100, -1, 300 }, backwards[] = { 300, 200, 400 };
	struct hist h = { 0 };
	struct pec_composition *c = NULL;

	(void)state;
	assert_true(pec_steps_normalize(named, 3));
	assert_int_equal(named[2], 300);
	assert_false(pec_steps_normalize(mixed, 3));
	assert_int_equal(mixed[0], 0);
	assert_int_equal(mixed[2], 2);
	assert_false(pec_steps_normalize(backwards, 3));
	assert_int_equal(backwards[1], 1);

	add_version(&h, "first", -1, PEC_VSTATE_SEALED, "0-0 0-1");
	add_version(&h, "second", -1, PEC_VSTATE_SEALED, "0-1");
	add_version(&h, "third", -1, PEC_VSTATE_SEALED, "0-1");
	assert_int_equal(pec_compose_history(h.v, h.n, 2, NULL, &c), 0);
	expect_source(c, 0, 0, "first", 2); /* two versions behind */
	assert_int_equal(c->step, 2);
	pec_composition_free(c);
	hist_free(&h);
}

static void test_shared_shard_path_needs_a_tensor_merge(void **state)
{
	/* A safetensors shard holding experts 0 and 1 of layer 2; the next round rewrites the shard
	 * with expert 1 only. */
	struct pec_unit_file f0[] = { { { 2, 0 }, "model-00002.safetensors" }, { { 2, 1 }, "model-00002.safetensors" } };
	struct pec_unit_file f1[] = { { { 2, 1 }, "model-00002.safetensors" } };
	struct pec_version_in v0 = { "step-1", 1, PEC_VSTATE_SEALED, f0, 2, NULL, NULL, 0 };
	struct pec_version_in v1 = { "step-2", 2, PEC_VSTATE_SEALED, f1, 1, NULL, NULL, 0 };
	struct pec_composition *c0 = NULL, *c1 = NULL;

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v0, NULL, &c0), 0);
	assert_int_equal(pec_compose_next(c0, &v1, NULL, &c1), 0);
	assert_true(unit_of(c1, 2, 0)->needs_merge);
	assert_string_equal(unit_of(c1, 2, 0)->source, "step-1");
	assert_false(unit_of(c1, 2, 1)->needs_merge);
	assert_true(unit_of(c1, 2, 1)->written);
	pec_composition_free(c0);
	pec_composition_free(c1);
}

static void test_manifest_round_trips(void **state)
{
	struct hist h = { 0 };
	struct pec_composition *c = NULL, *back = NULL, *copy = NULL;
	char *a, *b, err[128];

	(void)state;
	four_rounds(&h);
	h.v[2].n_files = 0; /* leave 1-1 and 3-2 to the full save */
	assert_int_equal(pec_compose_history(h.v, h.n, 3, NULL, &c), 0);
	assert_int_equal(pec_composition_to_json(c, &a), 0);
	assert_non_null(strstr(a, "\"source\": \"global_step200\""));
	assert_int_equal(pec_composition_from_json(a, strlen(a), &back, err, sizeof(err)), 0);
	assert_int_equal(pec_composition_to_json(back, &b), 0);
	assert_string_equal(a, b);
	assert_true(back->plt == c->plt);
	assert_int_equal(back->n_units, 6);
	assert_int_equal(pec_composition_copy(c, &copy), 0);
	assert_string_equal(copy->units[0].source, c->units[0].source);
	free(a);
	free(b);
	pec_composition_free(c);
	pec_composition_free(back);
	pec_composition_free(copy);
	hist_free(&h);
}

static void test_file_problems_are_reported_in_the_manifest_only(void **state)
{
	const struct pec_file_problem prob[] = { { "model-00001.safetensors", "gap of 4 bytes before tensor \"x\"" } };
	struct pec_version_in v0 = { "a", 0, PEC_VSTATE_SEALED, NULL, 0, NULL, prob, 1 };
	struct pec_version_in v1 = { "b", 1, PEC_VSTATE_SEALED, NULL, 0, NULL, NULL, 0 };
	struct pec_composition *c0 = NULL, *c1 = NULL, *back = NULL;
	char *text;

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v0, NULL, &c0), 0);
	assert_int_equal(c0->n_problems, 1);
	assert_string_equal(c0->problem_paths[0], "model-00001.safetensors");
	assert_int_equal(pec_composition_to_json(c0, &text), 0);
	assert_non_null(strstr(text, "\"problem\": \"gap of 4 bytes before tensor \\\"x\\\"\""));
	assert_int_equal(pec_composition_from_json(text, strlen(text), &back, NULL, 0), 0);
	assert_int_equal(back->n_problems, 1);
	assert_string_equal(back->problems[0], prob[0].problem);
	/* A problem belongs to the version that wrote the file; the next one does not inherit it. */
	assert_int_equal(pec_compose_next(c0, &v1, NULL, &c1), 0);
	assert_int_equal(c1->n_problems, 0);
	free(text);
	pec_composition_free(c0);
	pec_composition_free(c1);
	pec_composition_free(back);
}

static void test_malformed_manifests_are_rejected(void **state)
{
	const char *bad[] = {
		"",
		"[]",
		"{\"format\": 2}",
		"{\"format\":1,\"version\":\"v\",\"step\":1,\"complete\":true,\"missing\":0,\"top_k\":0,"
		"\"tokens_known\":false,\"plt\":0.0,\"problems\":[],\"layers\":[],\"units\":[{\"layer\":1}]}",
		/* units out of order */
		"{\"format\":1,\"version\":\"v\",\"step\":1,\"complete\":true,\"missing\":0,\"top_k\":0,"
		"\"tokens_known\":false,\"plt\":0.0,\"problems\":[],\"layers\":[],\"units\":["
		"{\"layer\":1,\"expert\":1,\"present\":true,\"written\":true,\"source\":\"v\",\"source_step\":1,"
		"\"staleness\":0,\"lost_tokens\":0,\"needs_merge\":false,\"files\":[]},"
		"{\"layer\":1,\"expert\":0,\"present\":true,\"written\":true,\"source\":\"v\",\"source_step\":1,"
		"\"staleness\":0,\"lost_tokens\":0,\"needs_merge\":false,\"files\":[]}]}",
		/* complete, yet a unit is missing */
		"{\"format\":1,\"version\":\"v\",\"step\":1,\"complete\":true,\"missing\":0,\"top_k\":0,"
		"\"tokens_known\":false,\"plt\":0.0,\"problems\":[],\"layers\":[],\"units\":["
		"{\"layer\":1,\"expert\":0,\"present\":false,\"written\":false,\"source\":null,\"source_step\":-1,"
		"\"staleness\":-1,\"lost_tokens\":0,\"needs_merge\":false,\"files\":[]}]}",
	};
	const char *good = "{\"format\":1,\"version\":\"v\",\"step\":1,\"complete\":true,\"missing\":0,\"top_k\":0,"
			   "\"tokens_known\":false,\"plt\":0.0,\"problems\":[],\"layers\":[],\"units\":["
			   "{\"layer\":1,\"expert\":0,\"present\":true,\"written\":true,\"source\":\"v\",\"source_step\":1,"
			   "\"staleness\":0,\"lost_tokens\":0,\"needs_merge\":false,\"files\":[]}]}";
	struct pec_composition *c = NULL;
	char err[128];

	(void)state;
	assert_int_equal(pec_composition_from_json(good, strlen(good), &c, err, sizeof(err)), 0);
	assert_int_equal(c->n_units, 1);
	pec_composition_free(c);
	c = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pec_composition_from_json(bad[i], strlen(bad[i]), &c, err, sizeof(err)), -EINVAL);
		assert_null(c);
	}
}

static void test_invalid_input_is_rejected(void **state)
{
	struct pec_unit_file f[] = { { { 1, 0 }, NULL } };
	struct pec_version_in v = { "x", 0, PEC_VSTATE_SEALED, f, 1, NULL, NULL, 0 };
	struct pec_version_in unnamed = { NULL, 0, PEC_VSTATE_SEALED, NULL, 0, NULL, NULL, 0 };
	struct pec_composition *c = NULL;

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v, NULL, &c), -EINVAL);
	assert_int_equal(pec_compose_next(NULL, &unnamed, NULL, &c), -EINVAL);
	assert_int_equal(pec_compose_history(&v, 1, 1, NULL, &c), -EINVAL);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_four_round_composition_table),
		cmocka_unit_test(test_chained_composition_equals_history),
		cmocka_unit_test(test_unit_never_written_makes_version_incomplete),
		cmocka_unit_test(test_gap_in_expert_numbers_is_incomplete),
		cmocka_unit_test(test_deleted_version_is_no_longer_a_source_but_fixed_compositions_keep_it),
		cmocka_unit_test(test_open_and_damaged_versions_are_skipped_as_sources),
		cmocka_unit_test(test_renamed_expert_file_replaces_the_old_name),
		cmocka_unit_test(test_unit_in_several_files_inherits_all_of_them),
		cmocka_unit_test(test_steps_fall_back_to_version_order),
		cmocka_unit_test(test_shared_shard_path_needs_a_tensor_merge),
		cmocka_unit_test(test_manifest_round_trips),
		cmocka_unit_test(test_file_problems_are_reported_in_the_manifest_only),
		cmocka_unit_test(test_malformed_manifests_are_rejected),
		cmocka_unit_test(test_invalid_input_is_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
