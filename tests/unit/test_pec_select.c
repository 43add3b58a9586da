/* test_pec_select.c - the next-version plan: the paper's Fig. 4 sequence, balance across ranks,
 * load-aware ranking, dynamic-K doubling against the PLT budget, and the plan JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pec_select.h"

static struct pec_tokens *tokens(const char *json)
{
	struct pec_tokens *t = NULL;
	char err[128];

	assert_int_equal(pec_tokens_parse(json, strlen(json), &t, err, sizeof(err)), 0);
	return t;
}

/* Seals a version that saved exactly the plan, composing it on *chain. */
static void save_plan(struct pec_composition **chain, const struct pec_plan *p, const char *name, int64_t step,
		      const struct pec_layout *lo)
{
	struct pec_unit_file files[64];
	static char paths[64][64];
	size_t n = 0;
	struct pec_composition *next;

	for (size_t i = 0; i < p->n_layers; i++)
		for (uint32_t j = 0; j < p->layers[i].k; j++) {
			snprintf(paths[n], sizeof(paths[n]), "layer_%u_expert_%u_mp_rank_00_model_states.pt",
				 p->layers[i].layer, p->layers[i].experts[j]);
			files[n] = (struct pec_unit_file){ { p->layers[i].layer, p->layers[i].experts[j] }, paths[n] };
			n++;
		}
	struct pec_version_in v = { name, step, PEC_VSTATE_SEALED, files, n, NULL, NULL, 0 };
	assert_int_equal(pec_compose_next(*chain, &v, lo, &next), 0);
	pec_composition_free(*chain);
	*chain = next;
}

/* The plan as "1-0 3-1 ..." for comparison. */
static void plan_str(const struct pec_plan *p, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n_layers; i++)
		for (uint32_t j = 0; j < p->layers[i].k; j++)
			at += (size_t)snprintf(buf + at, len - at, "%s%u-%u", at ? " " : "", p->layers[i].layer,
					       p->layers[i].experts[j]);
}

static void test_sequential_reproduces_paper_fig4(void **state)
{
	/* MoE layers 1, 3, 5, 7 with 3 experts each (one per expert-parallel rank), K = 1. */
	struct pec_layout_layer ll[] = { { 1, 3 }, { 3, 3 }, { 5, 3 }, { 7, 3 } };
	struct pec_layout lo = { 4, ll };
	const char *expected[] = { "1-0 3-1 5-2 7-0", "1-1 3-2 5-0 7-1", "1-2 3-0 5-1 7-2", "1-0 3-1 5-2 7-0" };
	struct pec_plan_config cfg;
	struct pec_composition *chain = NULL;
	char buf[128], name[32];

	(void)state;
	pec_plan_config_default(&cfg);
	for (uint64_t r = 0; r < 4; r++) {
		struct pec_plan *p = NULL;
		unsigned per_rank[3] = { 0, 0, 0 };

		assert_int_equal(pec_plan_next(chain, NULL, &lo, r, &cfg, &p), 0);
		plan_str(p, buf, sizeof(buf));
		assert_string_equal(buf, expected[r]);
		assert_int_equal(p->k, 1);
		assert_int_equal(p->version_index, r);
		/* Interleaving across layers: no rank saves more than 2 of the 4 experts of a round. */
		for (size_t i = 0; i < p->n_layers; i++)
			per_rank[p->layers[i].experts[0]]++;
		for (int k = 0; k < 3; k++)
			assert_true(per_rank[k] <= 2);
		snprintf(name, sizeof(name), "global_step%u", (unsigned)(r + 1));
		save_plan(&chain, p, name, (int64_t)r + 1, &lo);
		pec_plan_free(p);
	}
	/* After three rounds every expert was saved once: the version is complete. */
	assert_true(chain->complete);
	pec_composition_free(chain);
}

static void test_sequential_with_k2_gives_each_rank_one_expert(void **state)
{
	/* 4 layers x 8 experts, K = 2: each round each of the 8 ranks saves exactly one expert, and in 4
	 * rounds every expert is saved once. */
	struct pec_layout_layer ll[] = { { 0, 8 }, { 1, 8 }, { 2, 8 }, { 3, 8 } };
	struct pec_layout lo = { 4, ll };
	struct pec_plan_config cfg;
	struct pec_composition *chain = NULL;
	unsigned saved[4][8] = { { 0 } };

	(void)state;
	pec_plan_config_default(&cfg);
	cfg.k = 2;
	for (uint64_t r = 0; r < 4; r++) {
		struct pec_plan *p = NULL;
		unsigned per_rank[8] = { 0 };

		assert_int_equal(pec_plan_next(chain, NULL, &lo, r, &cfg, &p), 0);
		for (size_t i = 0; i < p->n_layers; i++) {
			assert_int_equal(p->layers[i].k, 2);
			for (uint32_t j = 0; j < 2; j++) {
				per_rank[p->layers[i].experts[j]]++;
				saved[i][p->layers[i].experts[j]]++;
			}
		}
		for (int k = 0; k < 8; k++)
			assert_int_equal(per_rank[k], 1);
		save_plan(&chain, p, r == 0 ? "a" : r == 1 ? "b" : r == 2 ? "c" : "d", (int64_t)r, &lo);
		pec_plan_free(p);
	}
	for (int i = 0; i < 4; i++)
		for (int e = 0; e < 8; e++)
			assert_int_equal(saved[i][e], 1);
	pec_composition_free(chain);
}

static void test_load_aware_saves_the_busiest_experts_first(void **state)
{
	struct pec_tokens *pending = tokens("{\"top_k\":1,\"layers\":[{\"layer\":2,\"tokens\":100,"
					    "\"experts\":[10,70,5,15]}]}");
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;
	char buf[64];

	(void)state;
	pec_plan_config_default(&cfg);
	cfg.strategy = PEC_SELECT_LOAD_AWARE;
	cfg.k = 2;
	cfg.dynamic_k = false;
	assert_int_equal(pec_plan_next(NULL, pending, NULL, 0, &cfg, &p), 0);
	plan_str(p, buf, sizeof(buf));
	assert_string_equal(buf, "2-1 2-3");
	/* Unsaved: 10 + 5 of 100 tokens, top-1. */
	assert_true(p->plt_known);
	assert_float_equal(p->plt_projected, 0.15, 1e-12);
	assert_true(pec_plan_has(p, (struct pec_unit){ 2, 3 }));
	assert_false(pec_plan_has(p, (struct pec_unit){ 2, 0 }));
	pec_plan_free(p);

	/* Sequential ignores the load. */
	cfg.strategy = PEC_SELECT_SEQUENTIAL;
	assert_int_equal(pec_plan_next(NULL, pending, NULL, 0, &cfg, &p), 0);
	plan_str(p, buf, sizeof(buf));
	assert_string_equal(buf, "2-0 2-1");
	pec_plan_free(p);
	pec_tokens_free(pending);
}

static void test_load_aware_counts_updates_since_the_last_save(void **state)
{
	/* Round 1 saved experts 0 and 1; 2 and 3 have carried their tokens since. */
	struct pec_tokens *t1 = tokens("{\"top_k\":1,\"layers\":[{\"layer\":0,\"tokens\":100,\"experts\":[40,30,20,10]}]}");
	struct pec_tokens *t2 = tokens("{\"top_k\":1,\"layers\":[{\"layer\":0,\"tokens\":100,\"experts\":[25,25,25,25]}]}");
	struct pec_unit_file f[] = { { { 0, 0 }, "layer_0_expert_0_x" }, { { 0, 1 }, "layer_0_expert_1_x" },
				     { { 0, 2 }, "layer_0_expert_2_x" }, { { 0, 3 }, "layer_0_expert_3_x" } };
	struct pec_version_in v0 = { "s0", 0, PEC_VSTATE_SEALED, f, 4, NULL, NULL, 0 };
	struct pec_version_in v1 = { "s1", 1, PEC_VSTATE_SEALED, f, 2, t1, NULL, 0 };
	struct pec_composition *c0 = NULL, *c1 = NULL;
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;
	char buf[64];

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v0, NULL, &c0), 0);
	assert_int_equal(pec_compose_next(c0, &v1, NULL, &c1), 0);
	pec_plan_config_default(&cfg);
	cfg.strategy = PEC_SELECT_LOAD_AWARE;
	cfg.dynamic_k = false;
	cfg.k = 2;
	/* Unsaved now: 0: 25, 1: 25, 2: 20 + 25 = 45, 3: 10 + 25 = 35. */
	assert_int_equal(pec_plan_next(c1, t2, NULL, 2, &cfg, &p), 0);
	plan_str(p, buf, sizeof(buf));
	assert_string_equal(buf, "0-2 0-3");
	/* Lost if restarting after it: 25 + 25 of 200 tokens. */
	assert_float_equal(p->plt_projected, 50.0 / 200.0, 1e-12);
	pec_plan_free(p);
	pec_composition_free(c0);
	pec_composition_free(c1);
	pec_tokens_free(t1);
	pec_tokens_free(t2);
}

/* Two layers of 8 experts, top-2. A full save after 14000 tokens, then 1000 tokens spread evenly
 * (250 assignments per expert). With K experts saved, each layer loses (8 - K) * 250 of
 * (14000 + 1000) * 2 = 30000 assignments: K=1 5.83 %, K=2 5 %, K=4 3.33 %, K=8 0 %. */
#define DK_E3500 "[3500,3500,3500,3500,3500,3500,3500,3500]"
#define DK_E250 "[250,250,250,250,250,250,250,250]"
#define DK_FULL "{\"top_k\":2,\"layers\":[{\"layer\":0,\"tokens\":14000,\"experts\":" DK_E3500 "}," \
		"{\"layer\":1,\"tokens\":14000,\"experts\":" DK_E3500 "}]}"
#define DK_PENDING "{\"top_k\":2,\"layers\":[{\"layer\":0,\"tokens\":1000,\"experts\":" DK_E250 "}," \
		   "{\"layer\":1,\"tokens\":1000,\"experts\":" DK_E250 "}]}"

static struct pec_composition *dk_full_save(struct pec_tokens *t)
{
	static char paths[16][64];
	struct pec_unit_file f[16];
	struct pec_composition *c = NULL;

	for (uint32_t i = 0; i < 16; i++) {
		snprintf(paths[i], sizeof(paths[i]), "layer_%u_expert_%u_x", i / 8, i % 8);
		f[i] = (struct pec_unit_file){ { i / 8, i % 8 }, paths[i] };
	}
	struct pec_version_in v = { "full", 0, PEC_VSTATE_SEALED, f, 16, t, NULL, 0 };
	assert_int_equal(pec_compose_next(NULL, &v, NULL, &c), 0);
	return c;
}

static void test_dynamic_k_doubles_until_the_budget_holds(void **state)
{
	struct pec_tokens *full = tokens(DK_FULL), *pending = tokens(DK_PENDING);
	struct pec_composition *c = dk_full_save(full);
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;

	(void)state;
	pec_plan_config_default(&cfg);
	assert_int_equal(pec_plan_next(c, pending, NULL, 1, &cfg, &p), 0);
	assert_int_equal(p->k_configured, 1);
	assert_int_equal(p->k, 4); /* 1 -> 2 -> 4 */
	assert_int_equal(p->layers[0].k, 4);
	assert_int_equal(p->layers[1].k, 4);
	assert_float_equal(p->plt_projected, 1000.0 / 30000.0, 1e-12);
	pec_plan_free(p);

	/* PLT already spent on an earlier restart leaves less room: all 8 experts. */
	cfg.plt_spent = 0.01;
	assert_int_equal(pec_plan_next(c, pending, NULL, 1, &cfg, &p), 0);
	assert_int_equal(p->k, 8);
	assert_float_equal(p->plt_projected, 0.0, 0.0);
	pec_plan_free(p);

	/* Without dynamic-K the plan keeps K and reports the overrun. */
	cfg.plt_spent = 0.0;
	cfg.dynamic_k = false;
	assert_int_equal(pec_plan_next(c, pending, NULL, 1, &cfg, &p), 0);
	assert_int_equal(p->k, 1);
	assert_float_equal(p->plt_projected, 1750.0 / 30000.0, 1e-12);
	pec_plan_free(p);
	pec_composition_free(c);
	pec_tokens_free(full);
	pec_tokens_free(pending);
}

static void test_dynamic_k_without_token_counts_keeps_k(void **state)
{
	struct pec_composition *c = dk_full_save(NULL);
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;

	(void)state;
	pec_plan_config_default(&cfg);
	assert_int_equal(pec_plan_next(c, NULL, NULL, 1, &cfg, &p), 0);
	assert_false(p->plt_known);
	assert_int_equal(p->k, 1);
	pec_plan_free(p);
	pec_composition_free(c);
}

static void test_plan_json_lists_experts_per_layer(void **state)
{
	struct pec_tokens *full = tokens(DK_FULL), *pending = tokens(DK_PENDING);
	struct pec_composition *c = dk_full_save(full);
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;
	json_t *root, *layer0;
	json_error_t jerr;
	char *text;

	(void)state;
	pec_plan_config_default(&cfg);
	assert_int_equal(pec_plan_next(c, pending, NULL, 1, &cfg, &p), 0);
	assert_int_equal(pec_plan_to_json(p, &text), 0);
	root = json_loads(text, 0, &jerr);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "format")), 1);
	assert_int_equal(json_integer_value(json_object_get(root, "version_index")), 1);
	assert_string_equal(json_string_value(json_object_get(root, "strategy")), "sequential");
	assert_int_equal(json_integer_value(json_object_get(root, "k")), 4);
	assert_int_equal(json_integer_value(json_object_get(root, "k_configured")), 1);
	assert_true(json_is_true(json_object_get(root, "dynamic_k")));
	assert_float_equal(json_real_value(json_object_get(root, "plt_budget")), 0.0375, 1e-12);
	assert_non_null(strstr(text, "\"plt_budget\": 0.0375"));
	layer0 = json_array_get(json_object_get(root, "layers"), 0);
	assert_int_equal(json_integer_value(json_object_get(layer0, "layer")), 0);
	assert_int_equal(json_integer_value(json_object_get(layer0, "experts_total")), 8);
	assert_int_equal(json_integer_value(json_object_get(layer0, "k")), 4);
	assert_int_equal(json_array_size(json_object_get(layer0, "experts")), 4);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(layer0, "experts"), 0)), 0);
	json_decref(root);
	free(text);
	pec_plan_free(p);

	/* Unknown PLT is null, not 0. */
	assert_int_equal(pec_plan_next(NULL, NULL, NULL, 0, &cfg, &p), 0);
	assert_int_equal(p->n_layers, 0);
	assert_int_equal(pec_plan_to_json(p, &text), 0);
	assert_non_null(strstr(text, "\"plt_projected\": null"));
	free(text);
	pec_plan_free(p);
	pec_composition_free(c);
	pec_tokens_free(full);
	pec_tokens_free(pending);
}

static void test_invalid_plan_config_is_rejected(void **state)
{
	struct pec_plan_config cfg;
	struct pec_plan *p = NULL;
	enum pec_select_strategy s;

	(void)state;
	pec_plan_config_default(&cfg);
	cfg.k = 0;
	assert_int_equal(pec_plan_next(NULL, NULL, NULL, 0, &cfg, &p), -EINVAL);
	cfg.k = 1;
	cfg.plt_budget = 0.0;
	assert_int_equal(pec_plan_next(NULL, NULL, NULL, 0, &cfg, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(pec_select_strategy_parse("load-aware", &s), 0);
	assert_int_equal(s, PEC_SELECT_LOAD_AWARE);
	assert_int_equal(pec_select_strategy_parse("random", &s), -EINVAL);
	assert_string_equal(pec_select_strategy_name(PEC_SELECT_SEQUENTIAL), "sequential");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential_reproduces_paper_fig4),
		cmocka_unit_test(test_sequential_with_k2_gives_each_rank_one_expert),
		cmocka_unit_test(test_load_aware_saves_the_busiest_experts_first),
		cmocka_unit_test(test_load_aware_counts_updates_since_the_last_save),
		cmocka_unit_test(test_dynamic_k_doubles_until_the_budget_holds),
		cmocka_unit_test(test_dynamic_k_without_token_counts_keeps_k),
		cmocka_unit_test(test_plan_json_lists_experts_per_layer),
		cmocka_unit_test(test_invalid_plan_config_is_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
