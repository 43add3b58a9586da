/* test_pec_expert.c - expert unit recognition: default DeepSpeed file names, safetensors tensor names,
 * custom per-run patterns, malformed patterns, and model layouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "pec_expert.h"

static void expect_path_unit(const char *path, uint32_t layer, uint32_t expert)
{
	struct pec_unit u = { 99, 99 };

	assert_int_equal(pec_expert_match_path(pec_patterns_default(), path, &u), 1);
	assert_int_equal(u.layer, layer);
	assert_int_equal(u.expert, expert);
}

static void expect_not_expert_path(const char *path)
{
	struct pec_unit u;

	assert_int_equal(pec_expert_match_path(pec_patterns_default(), path, &u), 0);
}

static void test_deepspeed_layer_expert_files_are_units(void **state)
{
	(void)state;
	expect_path_unit("layer_3_expert_7_mp_rank_00_model_states.pt", 3, 7);
	expect_path_unit("layer_0_expert_0_mp_rank_01_model_states.pt", 0, 0);
	expect_path_unit("layer_12_expert_127_mp_rank_00_model_states.pt", 12, 127);
}

static void test_files_in_subdirectories_match_by_name(void **state)
{
	(void)state;
	expect_path_unit("experts/layer_5_expert_2_mp_rank_00_model_states.pt", 5, 2);
}

static void test_older_deepspeed_expert_files_are_units_on_layer_zero(void **state)
{
	(void)state;
	expect_path_unit("expert_4_mp_rank_00_model_states.pt", 0, 4);
}

static void test_non_expert_files_are_not_units(void **state)
{
	(void)state;
	expect_not_expert_path("mp_rank_00_model_states.pt");
	expect_not_expert_path("zero_pp_rank_0_mp_rank_00_optim_states.pt");
	expect_not_expert_path("latest");
	expect_not_expert_path("model-00001-of-00004.safetensors");
	/* No digits where the numbers go. */
	expect_not_expert_path("layer_x_expert_1_mp_rank_00_model_states.pt");
	/* The pattern must match the whole name, not a part of it. */
	expect_not_expert_path("old_layer_1_expert_1_mp_rank_00_model_states.pt");
}

static void test_numbers_beyond_the_limits_are_not_units(void **state)
{
	(void)state;
	expect_not_expert_path("layer_70000_expert_1_mp_rank_00_model_states.pt");
	expect_not_expert_path("layer_1_expert_99999999999_mp_rank_00_model_states.pt");
}

static void test_default_tensor_patterns(void **state)
{
	struct pec_unit u;

	(void)state;
	assert_int_equal(pec_expert_match_tensor(pec_patterns_default(), "model.layers.11.mlp.experts.5.down_proj.weight", &u), 1);
	assert_int_equal(u.layer, 11);
	assert_int_equal(u.expert, 5);
	assert_int_equal(pec_expert_match_tensor(pec_patterns_default(),
						 "model.layers.2.block_sparse_moe.experts.7.w1.weight", &u), 1);
	assert_int_equal(u.layer, 2);
	assert_int_equal(u.expert, 7);
	assert_int_equal(pec_expert_match_tensor(pec_patterns_default(), "model.layers.2.mlp.gate.weight", &u), 0);
	assert_int_equal(pec_expert_match_tensor(pec_patterns_default(),
						 "model.layers.2.mlp.shared_experts.gate_proj.weight", &u), 0);
	assert_int_equal(pec_expert_match_tensor(pec_patterns_default(), "model.embed_tokens.weight", &u), 0);
}

static void test_custom_patterns_are_tried_in_order(void **state)
{
	const char *files[] = { "blocks/{L}/moe_{E}.bin", "e{E}-l{L}.pt" };
	const struct pec_patterns p = { files, 2, NULL, 0 };
	struct pec_unit u;

	(void)state;
	assert_int_equal(pec_patterns_validate(&p, NULL, 0), 0);
	/* A pattern with '/' matches the whole relative path. */
	assert_int_equal(pec_expert_match_path(&p, "blocks/4/moe_9.bin", &u), 1);
	assert_int_equal(u.layer, 4);
	assert_int_equal(u.expert, 9);
	assert_int_equal(pec_expert_match_path(&p, "x/blocks/4/moe_9.bin", &u), 0);
	/* Layer after expert in the name. */
	assert_int_equal(pec_expert_match_path(&p, "e12-l3.pt", &u), 1);
	assert_int_equal(u.layer, 3);
	assert_int_equal(u.expert, 12);
}

static void test_star_does_not_cross_directories(void **state)
{
	struct pec_unit u;

	(void)state;
	assert_int_equal(pec_pattern_match("a/*/e{E}", "a/b/e1", &u), 1);
	assert_int_equal(pec_pattern_match("a/*/e{E}", "a/b/c/e1", &u), 0);
}

static void test_numbers_read_longest_first(void **state)
{
	struct pec_unit u;

	(void)state;
	assert_int_equal(pec_pattern_match("expert_{E}*", "expert_123abc", &u), 1);
	assert_int_equal(u.expert, 123);
}

static void test_malformed_patterns_are_rejected(void **state)
{
	const char *bad[] = { "layer_{L}_only", "{E}{L}", "x_{E}_{E}", "{L}_{L}_{E}", "x_{Q}_{E}", "", "a{E}}" };
	char err[256] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct pec_patterns p = { &bad[i], 1, NULL, 0 };

		assert_int_equal(pec_pattern_match(bad[i], "x", NULL), -EINVAL);
		assert_int_equal(pec_patterns_validate(&p, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "file pattern"));
	}
	assert_int_equal(pec_patterns_validate(pec_patterns_default(), err, sizeof(err)), 0);
}

static void test_layout_grows_to_cover_units(void **state)
{
	struct pec_layout lo = { 0, NULL }, other = { 0, NULL };

	(void)state;
	assert_int_equal(pec_layout_add(&lo, (struct pec_unit){ 5, 2 }), 0);
	assert_int_equal(pec_layout_add(&lo, (struct pec_unit){ 1, 0 }), 0);
	assert_int_equal(pec_layout_add(&lo, (struct pec_unit){ 5, 0 }), 0);
	assert_int_equal(lo.n_layers, 2);
	assert_int_equal(lo.layers[0].layer, 1);
	assert_int_equal(lo.layers[0].n_experts, 1);
	assert_int_equal(lo.layers[1].layer, 5);
	assert_int_equal(lo.layers[1].n_experts, 3);
	assert_int_equal(pec_layout_add(&other, (struct pec_unit){ 3, 7 }), 0);
	assert_int_equal(pec_layout_add(&other, (struct pec_unit){ 1, 3 }), 0);
	assert_int_equal(pec_layout_merge(&lo, &other), 0);
	assert_int_equal(lo.n_layers, 3);
	assert_int_equal(pec_layout_find(&lo, 3), 1);
	assert_int_equal(pec_layout_find(&lo, 4), -1);
	assert_int_equal(pec_layout_units(&lo), 4 + 8 + 3);
	pec_layout_free(&lo);
	pec_layout_free(&other);
	assert_int_equal(lo.n_layers, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deepspeed_layer_expert_files_are_units),
		cmocka_unit_test(test_files_in_subdirectories_match_by_name),
		cmocka_unit_test(test_older_deepspeed_expert_files_are_units_on_layer_zero),
		cmocka_unit_test(test_non_expert_files_are_not_units),
		cmocka_unit_test(test_numbers_beyond_the_limits_are_not_units),
		cmocka_unit_test(test_default_tensor_patterns),
		cmocka_unit_test(test_custom_patterns_are_tried_in_order),
		cmocka_unit_test(test_star_does_not_cross_directories),
		cmocka_unit_test(test_numbers_read_longest_first),
		cmocka_unit_test(test_malformed_patterns_are_rejected),
		cmocka_unit_test(test_layout_grows_to_cover_units),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
