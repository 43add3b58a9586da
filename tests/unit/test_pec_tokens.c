/* test_pec_tokens.c - the .pec/tokens report: accepted schema, every rejection, folding reports, and the
 * PLT formula on hand-computed cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "pec_plt.h"
#include "pec_tokens.h"

static struct pec_tokens *parse_ok(const char *json)
{
	struct pec_tokens *t = NULL;
	char err[256] = "";

	if (pec_tokens_parse(json, strlen(json), &t, err, sizeof(err)) != 0)
		fail_msg("rejected: %s", err);
	return t;
}

static void expect_rejected(const char *json, const char *reason_part)
{
	struct pec_tokens *t = (struct pec_tokens *)0x1;
	char err[256] = "";

	assert_int_equal(pec_tokens_parse(json, strlen(json), &t, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(t, (struct pec_tokens *)0x1); /* untouched */
	if (strstr(err, reason_part) == NULL)
		fail_msg("reason \"%s\" does not mention \"%s\"", err, reason_part);
}

static void test_valid_report_is_parsed_and_sorted_by_layer(void **state)
{
	struct pec_tokens *t = parse_ok("{\"top_k\": 2, \"step\": 1200, \"layers\": ["
					"{\"layer\": 3, \"tokens\": 100, \"experts\": [50, 50, 100]},"
					"{\"layer\": 1, \"tokens\": 100, \"experts\": [120, 40, 40]}]}");

	(void)state;
	assert_int_equal(t->top_k, 2);
	assert_int_equal(t->step, 1200);
	assert_int_equal(t->n_layers, 2);
	assert_int_equal(t->layers[0].layer, 1);
	assert_int_equal(t->layers[1].layer, 3);
	assert_int_equal(t->layers[1].n_experts, 3);
	assert_int_equal(pec_tokens_count(t, (struct pec_unit){ 1, 0 }), 120);
	assert_int_equal(pec_tokens_count(t, (struct pec_unit){ 3, 2 }), 100);
	assert_int_equal(pec_tokens_count(t, (struct pec_unit){ 3, 9 }), 0);
	assert_int_equal(pec_tokens_count(t, (struct pec_unit){ 2, 0 }), 0);
	assert_null(pec_tokens_find(t, 2));
	pec_tokens_free(t);
}

static void test_step_is_optional(void **state)
{
	struct pec_tokens *t = parse_ok("{\"top_k\":1,\"layers\":[{\"layer\":0,\"tokens\":5,\"experts\":[2,3]}]}");

	(void)state;
	assert_int_equal(t->step, -1);
	pec_tokens_free(t);
}

static void test_malformed_reports_are_rejected_with_einval(void **state)
{
	(void)state;
	expect_rejected("", "not valid JSON");
	expect_rejected("{\"top_k\": 2, \"layers\": [", "not valid JSON");
	expect_rejected("[1, 2]", "JSON object");
	expect_rejected("{\"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,3]}]}", "top_k");
	expect_rejected("{\"top_k\": 0, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,3]}]}", "top_k");
	expect_rejected("{\"top_k\": 1.5, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,3]}]}", "top_k");
	expect_rejected("{\"top_k\": 1, \"layer\": []}", "unknown key \"layer\"");
	expect_rejected("{\"top_k\": 1, \"layers\": []}", "layers");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[]}]}", "experts");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,-3]}]}", "experts[1]");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,\"3\"]}]}", "experts[1]");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":-1,\"tokens\":5,\"experts\":[2,3]}]}", "layer");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":70000,\"tokens\":5,\"experts\":[2,3]}]}", "layer");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"experts\":[2,3]}]}", "tokens");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[2,3],\"x\":1}]}",
			"unknown key \"x\"");
	/* 6 assignments from 5 tokens routed to 1 expert each is impossible. */
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[3,3]}]}", "more than");
	expect_rejected("{\"top_k\": 3, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[3,3]}]}", "exceeds");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[1,1]},"
			"{\"layer\":0,\"tokens\":5,\"experts\":[1,1]}]}", "twice");
	expect_rejected("{\"top_k\": 1, \"top_k\": 2, \"layers\": []}", "not valid JSON");
	expect_rejected("{\"top_k\": 1, \"layers\": [{\"layer\":0,\"tokens\":9007199254740993,\"experts\":[1]}]}",
			"tokens");
	expect_rejected("{\"top_k\": 1, \"step\": -4, \"layers\": [{\"layer\":0,\"tokens\":5,\"experts\":[1]}]}", "step");
}

static void test_oversized_report_is_rejected(void **state)
{
	struct pec_tokens *t = NULL;
	char err[128];

	(void)state;
	assert_int_equal(pec_tokens_parse("{}", PEC_TOKENS_MAX_BYTES + 1, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
}

static void test_reports_sum_per_expert(void **state)
{
	struct pec_tokens *a = parse_ok("{\"top_k\":1,\"step\":10,\"layers\":[{\"layer\":1,\"tokens\":10,\"experts\":[4,6]}]}");
	struct pec_tokens *b = parse_ok("{\"top_k\":1,\"layers\":[{\"layer\":1,\"tokens\":9,\"experts\":[1,2,6]},"
					"{\"layer\":2,\"tokens\":3,\"experts\":[3]}]}");
	struct pec_tokens *c = parse_ok("{\"top_k\":2,\"layers\":[{\"layer\":1,\"tokens\":1,\"experts\":[1,1]}]}");
	struct pec_tokens *s = NULL;
	struct pec_layout lo = { 0, NULL };

	(void)state;
	assert_int_equal(pec_tokens_sum(a, b, &s), 0);
	assert_int_equal(s->step, 10);
	assert_int_equal(s->n_layers, 2);
	assert_int_equal(s->layers[0].tokens, 19);
	assert_int_equal(s->layers[0].n_experts, 3);
	assert_int_equal(pec_tokens_count(s, (struct pec_unit){ 1, 0 }), 5);
	assert_int_equal(pec_tokens_count(s, (struct pec_unit){ 1, 1 }), 8);
	assert_int_equal(pec_tokens_count(s, (struct pec_unit){ 1, 2 }), 6);
	assert_int_equal(pec_tokens_count(s, (struct pec_unit){ 2, 0 }), 3);
	assert_int_equal(pec_tokens_layout(s, &lo), 0);
	assert_int_equal(lo.n_layers, 2);
	assert_int_equal(lo.layers[0].n_experts, 3);
	pec_layout_free(&lo);
	pec_tokens_free(s);
	assert_int_equal(pec_tokens_sum(a, c, &s), -EINVAL);
	assert_int_equal(pec_tokens_sum(NULL, NULL, &s), 0);
	assert_null(s);
	pec_tokens_free(a);
	pec_tokens_free(b);
	pec_tokens_free(c);
}

static void test_plt_matches_the_hand_computation(void **state)
{
	/* Two MoE layers, top-2 routing. Layer A: 1000 tokens, 150 assignments lost -> 150 / 2000 = 7.5 %.
	 * Layer B: 1000 tokens, 50 lost -> 2.5 %. PLT = (7.5 % + 2.5 %) / 2 = 5 %. */
	const struct pec_plt_layer l[] = { { 150, 1000 }, { 50, 1000 } };
	/* One layer, top-1, 3 experts with 40/35/25 tokens of 100, the 35-token expert unsaved:
	 * 35 / (100 * 1) = 35 %. */
	const struct pec_plt_layer one[] = { { 35, 100 } };

	(void)state;
	assert_float_equal(pec_plt(l, 2, 2), 0.05, 1e-12);
	assert_float_equal(pec_plt(one, 1, 1), 0.35, 1e-12);
}

static void test_plt_of_layers_without_tokens_is_zero(void **state)
{
	const struct pec_plt_layer l[] = { { 0, 0 }, { 10, 100 } };

	(void)state;
	assert_float_equal(pec_plt(l, 2, 1), 0.05, 1e-12);
	assert_float_equal(pec_plt(l, 0, 1), 0.0, 0.0);
	assert_float_equal(pec_plt(l, 2, 0), 0.0, 0.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_report_is_parsed_and_sorted_by_layer),
		cmocka_unit_test(test_step_is_optional),
		cmocka_unit_test(test_malformed_reports_are_rejected_with_einval),
		cmocka_unit_test(test_oversized_report_is_rejected),
		cmocka_unit_test(test_reports_sum_per_expert),
		cmocka_unit_test(test_plt_matches_the_hand_computation),
		cmocka_unit_test(test_plt_of_layers_without_tokens_is_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
