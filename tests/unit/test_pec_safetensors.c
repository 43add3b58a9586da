/* test_pec_safetensors.c - safetensors headers: valid parsing, every malformed case the merge must
 * refuse, expert tensor matching, and merge plans checked by assembling the merged bytes from the
 * plan's pieces and reading every tensor back.
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

#include "pec_safetensors.h"

/* A tensor to put into a test file: F32 of n elements, every byte equal to fill. */
struct spec {
	const char *name;
	uint32_t n;
	uint8_t fill;
};

/* Builds a whole safetensors file; *len receives its size. Tensors are laid out in the given order. */
static uint8_t *build_file(const struct spec *s, size_t n, const char *meta, size_t *len)
{
	char json[8192];
	size_t at = 0, data = 0, jlen;
	uint8_t *buf;

	at += (size_t)snprintf(json + at, sizeof(json) - at, "{");
	if (meta != NULL)
		at += (size_t)snprintf(json + at, sizeof(json) - at, "\"__metadata__\":%s", meta);
	for (size_t i = 0; i < n; i++) {
		at += (size_t)snprintf(json + at, sizeof(json) - at,
				       "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%u],\"data_offsets\":[%zu,%zu]}",
				       (i > 0 || meta != NULL) ? "," : "", s[i].name, s[i].n, data, data + 4 * s[i].n);
		data += 4 * s[i].n;
	}
	at += (size_t)snprintf(json + at, sizeof(json) - at, "}");
	jlen = at;
	*len = 8 + jlen + data;
	buf = malloc(*len);
	assert_non_null(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)jlen >> (8 * i));
	memcpy(buf + 8, json, jlen);
	data = 8 + jlen;
	for (size_t i = 0; i < n; i++) {
		memset(buf + data, s[i].fill, 4 * s[i].n);
		data += 4 * s[i].n;
	}
	return buf;
}

static int parse_bytes(const uint8_t *buf, size_t len, struct pec_st_header **h, char *err, size_t errsz)
{
	uint64_t n;
	int rc = pec_st_header_len(buf, len, &n, err, errsz);

	if (rc != 0)
		return rc;
	return pec_st_parse((const char *)buf + 8, n, len, h, err, errsz);
}

/* A file of size 8 + strlen(json) + data_len whose header is json. */
static int parse_json(const char *json, uint64_t data_len, char *err, size_t errsz)
{
	struct pec_st_header *h = NULL;
	int rc = pec_st_parse(json, strlen(json), 8 + strlen(json) + data_len, &h, err, errsz);

	if (rc == 0)
		pec_st_free(h);
	else
		assert_null(h);
	return rc;
}

static void expect_invalid(const char *json, uint64_t data_len, const char *reason_part)
{
	char err[256] = "";

	assert_int_equal(parse_json(json, data_len, err, sizeof(err)), -EINVAL);
	if (strstr(err, reason_part) == NULL)
		fail_msg("reason \"%s\" does not mention \"%s\"", err, reason_part);
}

static void test_valid_header_is_parsed_in_data_order(void **state)
{
	const char *json = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[4,16]},"
			   "\"__metadata__\":{\"format\":\"pt\"},"
			   "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4],\"extra\":1},"
			   "\"empty\":{\"dtype\":\"F64\",\"shape\":[0,5],\"data_offsets\":[16,16]}}   ";
	struct pec_st_header *h = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(pec_st_parse(json, strlen(json), 8 + strlen(json) + 16, &h, err, sizeof(err)), 0);
	assert_int_equal(h->n_tensors, 3);
	assert_string_equal(h->tensors[0].name, "a");
	assert_int_equal(h->tensors[0].ndim, 0);
	assert_string_equal(h->tensors[1].name, "b");
	assert_int_equal(h->tensors[1].shape[1], 3);
	assert_int_equal(h->tensors[1].end, 16);
	assert_string_equal(h->tensors[2].name, "empty");
	assert_int_equal(h->n_meta, 1);
	assert_string_equal(h->meta_keys[0], "format");
	assert_string_equal(h->meta_values[0], "pt");
	assert_int_equal(h->data_start, 8 + strlen(json));
	assert_int_equal(h->data_len, 16);
	pec_st_free(h);
}

static void test_header_length_is_checked(void **state)
{
	uint8_t p[8] = { 0 };
	uint64_t n;
	char err[256];

	(void)state;
	assert_int_equal(pec_st_header_len(p, 7, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "shorter"));
	p[0] = 1;
	assert_int_equal(pec_st_header_len(p, 100, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too small"));
	p[0] = 200;
	assert_int_equal(pec_st_header_len(p, 100, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "past the end"));
	/* 100,000,001 bytes: over the limit even in a file big enough to hold it. */
	p[0] = 0x01;
	p[1] = 0xe1;
	p[2] = 0xf5;
	p[3] = 0x05;
	assert_int_equal(pec_st_header_len(p, 1ull << 40, &n, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "limit"));
	p[0] = 0x00; /* exactly 100,000,000 is allowed */
	assert_int_equal(pec_st_header_len(p, 1ull << 40, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 100000000);
	/* A huge length must not wrap around. */
	memset(p, 0xff, sizeof(p));
	assert_int_equal(pec_st_header_len(p, 1ull << 40, &n, err, sizeof(err)), -EFBIG);
}

static void test_malformed_headers_are_rejected(void **state)
{
	(void)state;
	expect_invalid("[]", 0, "start with '{'");
	expect_invalid(" {}", 0, "start with '{'");
	expect_invalid("{\"a\":", 0, "not valid JSON");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "not valid JSON");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "needs dtype");
	expect_invalid("{\"a\":[1,2]}", 0, "needs dtype");
	expect_invalid("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "data_offsets");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
		       "overflows");
	expect_invalid("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
		       "more than");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlaps");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "run past");
	expect_invalid("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, "trailing");
	expect_invalid("{\"__metadata__\":{\"n\":1}}", 0, "not a string");
	expect_invalid("{\"__metadata__\":[]}", 0, "not an object");
}

static void test_parse_checks_its_own_length_arguments(void **state)
{
	struct pec_st_header *h = NULL;
	char err[128];

	(void)state;
	assert_int_equal(pec_st_parse("{}", 2, 9, &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(pec_st_parse("{}", PEC_ST_MAX_HEADER + 1, 1ull << 40, &h, err, sizeof(err)), -EFBIG);
	assert_int_equal(pec_st_parse("{}", 2, 10, &h, err, sizeof(err)), 0);
	assert_int_equal(h->n_tensors, 0);
	pec_st_free(h);
}

static void test_expert_tensors_are_matched_to_units(void **state)
{
	const struct spec s[] = {
		{ "model.layers.3.mlp.experts.1.up_proj.weight", 2, 1 },
		{ "model.layers.3.mlp.experts.1.down_proj.weight", 2, 2 },
		{ "model.layers.3.mlp.gate.weight", 1, 3 },
		{ "model.layers.0.block_sparse_moe.experts.7.w2.weight", 1, 4 },
	};
	struct pec_st_header *h = NULL;
	struct pec_unit *u = NULL;
	size_t len, n;
	uint8_t *buf = build_file(s, 4, NULL, &len);

	(void)state;
	assert_int_equal(parse_bytes(buf, len, &h, NULL, 0), 0);
	assert_int_equal(pec_st_classify(h, pec_patterns_default()), 0);
	assert_true(h->tensors[0].is_expert);
	assert_int_equal(h->tensors[0].unit.layer, 3);
	assert_int_equal(h->tensors[0].unit.expert, 1);
	assert_false(h->tensors[2].is_expert);
	assert_int_equal(pec_st_units(h, &u, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(u[0].layer, 0);
	assert_int_equal(u[0].expert, 7);
	assert_int_equal(u[1].layer, 3);
	free(u);
	pec_st_free(h);
	free(buf);
}

/* Assembles the merged file from the plan and the input files. */
static uint8_t *assemble(const struct pec_st_merge *m, uint8_t *const *files)
{
	uint8_t *out = malloc(m->file_size);
	uint64_t at = m->header_len;

	assert_non_null(out);
	memcpy(out, m->header, m->header_len);
	for (size_t i = 0; i < m->n_pieces; i++) {
		assert_int_equal(m->pieces[i].dest, at);
		memcpy(out + at, files[m->pieces[i].src] + m->pieces[i].src_off, m->pieces[i].len);
		at += m->pieces[i].len;
	}
	assert_int_equal(at, m->file_size);
	return out;
}

/* Checks that tensor `name` of the parsed merged file holds n floats of byte `fill`. */
static void expect_tensor(const struct pec_st_header *h, const uint8_t *file, const char *name, uint32_t n,
			  uint8_t fill)
{
	for (size_t i = 0; i < h->n_tensors; i++) {
		if (strcmp(h->tensors[i].name, name) != 0)
			continue;
		assert_int_equal(h->tensors[i].end - h->tensors[i].begin, 4 * n);
		for (uint64_t b = h->tensors[i].begin; b < h->tensors[i].end; b++)
			assert_int_equal(file[h->data_start + b], fill);
		return;
	}
	fail_msg("tensor %s missing from the merged file", name);
}

static void expect_no_tensor(const struct pec_st_header *h, const char *name)
{
	for (size_t i = 0; i < h->n_tensors; i++)
		if (strcmp(h->tensors[i].name, name) == 0)
			fail_msg("tensor %s should not be in the merged file", name);
}

#define E(l, e, part) "model.layers." #l ".mlp.experts." #e "." part

static void test_merge_inherits_missing_expert_tensors_by_extent(void **state)
{
	/* The round rewrote the shard with the norm and expert 1 only (new bytes 0xA*); the base
	 * version's logical shard had the norm and experts 0, 1, 2 (old bytes 0x1*). */
	const struct spec now[] = { { "model.norm.weight", 4, 0xA0 }, { E(3, 1, "w"), 3, 0xA1 },
				    { E(3, 1, "v"), 1, 0xA2 } };
	const struct spec old[] = { { E(3, 0, "w"), 2, 0x10 }, { E(3, 0, "v"), 2, 0x11 },
				    { "model.norm.weight", 4, 0x12 }, { E(3, 1, "w"), 3, 0x13 },
				    { E(3, 2, "w"), 5, 0x14 }, { "model.layers.3.mlp.gate.weight", 1, 0x15 } };
	size_t len0, len1;
	uint8_t *files[2] = { build_file(now, 3, "{\"format\":\"pt\"}", &len0), build_file(old, 6, NULL, &len1) };
	struct pec_st_header *h0 = NULL, *h1 = NULL, *merged = NULL;
	const struct pec_st_header *in[2];
	struct pec_st_merge *m = NULL;
	uint8_t *out;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse_bytes(files[0], len0, &h0, NULL, 0), 0);
	assert_int_equal(parse_bytes(files[1], len1, &h1, NULL, 0), 0);
	assert_int_equal(pec_st_classify(h0, pec_patterns_default()), 0);
	assert_int_equal(pec_st_classify(h1, pec_patterns_default()), 0);
	in[0] = h0;
	in[1] = h1;
	assert_int_equal(pec_st_plan_merge(in, 2, &m, err, sizeof(err)), 0);
	assert_int_equal(m->header_len % 8, 0);
	assert_int_equal(m->n_tensors, 6);
	assert_int_equal(m->n_inherited, 3);
	assert_int_equal(m->n_units_inherited, 2);
	assert_int_equal(m->units_inherited[0].expert, 0);
	assert_int_equal(m->units_inherited[1].expert, 2);
	/* Round's three tensors are one piece; old 3-0 (w, v) is one piece; old 3-2 another. */
	assert_int_equal(m->n_pieces, 3);
	assert_int_equal(m->pieces[0].src, 0);
	assert_int_equal(m->pieces[0].src_off, h0->data_start);
	assert_int_equal(m->pieces[0].len, 32);
	assert_int_equal(m->pieces[1].src, 1);
	assert_int_equal(m->pieces[1].src_off, h1->data_start);
	assert_int_equal(m->pieces[1].len, 16);
	assert_int_equal(m->pieces[2].src_off, h1->data_start + 16 + 16 + 12);
	assert_int_equal(m->pieces[2].len, 20);

	out = assemble(m, files);
	assert_int_equal(parse_bytes(out, m->file_size, &merged, err, sizeof(err)), 0);
	assert_int_equal(merged->n_tensors, 6);
	expect_tensor(merged, out, "model.norm.weight", 4, 0xA0);
	expect_tensor(merged, out, E(3, 1, "w"), 3, 0xA1);
	expect_tensor(merged, out, E(3, 1, "v"), 1, 0xA2);
	expect_tensor(merged, out, E(3, 0, "w"), 2, 0x10);
	expect_tensor(merged, out, E(3, 0, "v"), 2, 0x11);
	expect_tensor(merged, out, E(3, 2, "w"), 5, 0x14);
	/* Non-expert tensors are never inherited. */
	expect_no_tensor(merged, "model.layers.3.mlp.gate.weight");
	assert_int_equal(merged->n_meta, 1);
	assert_string_equal(merged->meta_values[0], "pt");
	/* The JSON is followed by fewer than 8 spaces of padding. */
	{
		uint64_t end = m->header_len;

		while (end > 8 && out[end - 1] == ' ')
			end--;
		assert_int_equal(out[8], '{');
		assert_int_equal(out[end - 1], '}');
		assert_true(m->header_len - end < 8);
	}

	free(out);
	pec_st_merge_free(m);
	pec_st_free(merged);
	pec_st_free(h0);
	pec_st_free(h1);
	free(files[0]);
	free(files[1]);
}

static void test_merge_takes_each_unit_from_the_newest_input_holding_it(void **state)
{
	const struct spec now[] = { { E(1, 0, "w"), 1, 0xA0 } };
	const struct spec mid[] = { { E(1, 1, "w"), 1, 0xB1 } };
	const struct spec old[] = { { E(1, 1, "w"), 1, 0xC1 }, { E(1, 1, "extra"), 1, 0xC2 },
				    { E(1, 2, "w"), 1, 0xC3 } };
	size_t l0, l1, l2;
	uint8_t *files[3] = { build_file(now, 1, NULL, &l0), build_file(mid, 1, NULL, &l1),
			      build_file(old, 3, NULL, &l2) };
	struct pec_st_header *h[3] = { NULL, NULL, NULL }, *merged = NULL;
	struct pec_st_merge *m = NULL;
	uint8_t *out;

	(void)state;
	assert_int_equal(parse_bytes(files[0], l0, &h[0], NULL, 0), 0);
	assert_int_equal(parse_bytes(files[1], l1, &h[1], NULL, 0), 0);
	assert_int_equal(parse_bytes(files[2], l2, &h[2], NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pec_st_classify(h[i], pec_patterns_default()), 0);
	assert_int_equal(pec_st_plan_merge((const struct pec_st_header *const *)h, 3, &m, NULL, 0), 0);
	out = assemble(m, files);
	assert_int_equal(parse_bytes(out, m->file_size, &merged, NULL, 0), 0);
	assert_int_equal(merged->n_tensors, 3);
	expect_tensor(merged, out, E(1, 0, "w"), 1, 0xA0);
	expect_tensor(merged, out, E(1, 1, "w"), 1, 0xB1);
	expect_tensor(merged, out, E(1, 2, "w"), 1, 0xC3);
	/* Unit 1-1 belongs to the middle input as a whole: the oldest copy's extra tensor is not mixed in. */
	expect_no_tensor(merged, E(1, 1, "extra"));
	free(out);
	pec_st_merge_free(m);
	pec_st_free(merged);
	for (int i = 0; i < 3; i++) {
		pec_st_free(h[i]);
		free(files[i]);
	}
}

static void test_merge_with_nothing_to_inherit_reports_zero(void **state)
{
	const struct spec now[] = { { E(1, 0, "w"), 1, 0xA0 }, { "x", 2, 1 } };
	size_t l0;
	uint8_t *file = build_file(now, 2, NULL, &l0);
	struct pec_st_header *h = NULL;
	const struct pec_st_header *in[1];
	struct pec_st_merge *m = NULL;

	(void)state;
	assert_int_equal(parse_bytes(file, l0, &h, NULL, 0), 0);
	assert_int_equal(pec_st_classify(h, pec_patterns_default()), 0);
	in[0] = h;
	assert_int_equal(pec_st_plan_merge(in, 1, &m, NULL, 0), 0);
	assert_int_equal(m->n_inherited, 0);
	assert_int_equal(m->n_tensors, 2);
	assert_int_equal(m->n_pieces, 1);
	pec_st_merge_free(m);
	assert_int_equal(pec_st_plan_merge(in, 0, &m, NULL, 0), -EINVAL);
	pec_st_free(h);
	free(file);
}

static void test_dtype_sizes(void **state)
{
	(void)state;
	assert_int_equal(pec_st_dtype_size("BF16"), 2);
	assert_int_equal(pec_st_dtype_size("F8_E4M3"), 1);
	assert_int_equal(pec_st_dtype_size("I64"), 8);
	assert_int_equal(pec_st_dtype_size("f32"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_header_is_parsed_in_data_order),
		cmocka_unit_test(test_header_length_is_checked),
		cmocka_unit_test(test_malformed_headers_are_rejected),
		cmocka_unit_test(test_parse_checks_its_own_length_arguments),
		cmocka_unit_test(test_expert_tensors_are_matched_to_units),
		cmocka_unit_test(test_merge_inherits_missing_expert_tensors_by_extent),
		cmocka_unit_test(test_merge_takes_each_unit_from_the_newest_input_holding_it),
		cmocka_unit_test(test_merge_with_nothing_to_inherit_reports_zero),
		cmocka_unit_test(test_dtype_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
