/* test_s3_sigv4.c - the SigV4 signer against the signatures AWS publishes: the Signature Version 4
 * test suite (credential AKIDEXAMPLE, region us-east-1, service "service", 20150830T123600Z) and
 * the examples of the S3 API reference (examplebucket, AKIAIOSFODNN7EXAMPLE, 20130524T000000Z).
 * Paths and queries go through s3_url.h exactly as the client builds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3_sigv4.h"
#include "s3_url.h"

#define SUITE_DATE "20150830T123600Z"
#define S3_DATE "20130524T000000Z"

static const struct s3_sigv4_key suite_key = {
	"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
};
static const struct s3_sigv4_key s3doc_key = {
	"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3",
};

/* Signs and returns the Signature= part of the Authorization value (static buffer). */
static const char *sign(const struct s3_sigv4_key *k, const char *date, const char *method, const char *raw_path,
			const struct s3_param *q, size_t nq, const struct s3_header *extra, size_t nextra,
			const char *host, const char *body)
{
	static char sig[65];
	struct s3_header h[8];
	struct s3_buf path = S3_BUF_INIT;
	char hash[S3_SHA256_HEX_LEN + 1];
	char *auth;
	const char *p;
	size_t n = 0;

	assert_true(nextra + 2 <= 8);
	h[n++] = (struct s3_header){ "Host", host };
	h[n++] = (struct s3_header){ "X-Amz-Date", date };
	for (size_t i = 0; i < nextra; i++)
		h[n++] = extra[i];
	s3_sha256_hex(body, strlen(body), hash);
	s3_buf_put_encoded(&path, raw_path, strlen(raw_path), true);
	struct s3_sigv4_request r = { method, s3_buf_str(&path), q, nq, h, n, hash };
	auth = s3_sigv4_authorization(&r, k, date);
	assert_non_null(auth);
	p = strstr(auth, "Signature=");
	assert_non_null(p);
	snprintf(sig, sizeof(sig), "%s", p + 10);
	free(auth);
	s3_buf_free(&path);
	return sig;
}

#define SUITE(method, path, q, nq, h, nh, body) \
	sign(&suite_key, SUITE_DATE, method, path, q, nq, h, nh, "example.amazonaws.com", body)

static void test_suite_get_vanilla_full_authorization(void **state)
{
	struct s3_header h[] = { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", SUITE_DATE } };
	struct s3_sigv4_request r = { "GET", "/", NULL, 0, h, 2, S3_EMPTY_SHA256 };
	char *creq = s3_sigv4_canonical_request(&r);
	char *sts = s3_sigv4_string_to_sign(SUITE_DATE, "us-east-1", "service", creq);
	char *auth = s3_sigv4_authorization(&r, &suite_key, SUITE_DATE);

	(void)state;
	assert_string_equal(creq, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
				  "host;x-amz-date\n" S3_EMPTY_SHA256);
	assert_string_equal(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
				 "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
	assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
				  "SignedHeaders=host;x-amz-date, "
				  "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	free(creq);
	free(sts);
	free(auth);
}

static void test_suite_query_is_sorted_and_encoded(void **state)
{
	static const char unreserved[] = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	struct s3_param key_case[] = { { "Param2", "value2" }, { "Param1", "value1" } };
	struct s3_param same_key_value_case[] = { { "Param1", "value2" }, { "Param1", "Value1" } };
	struct s3_param same_key[] = { { "Param1", "value2" }, { "Param1", "value1" } };
	struct s3_param one[] = { { "Param1", "value1" } };
	struct s3_param unres[] = { { unreserved, unreserved } };
	struct s3_param utf8[] = { { "\xe1\x88\xb4", "bar" } };

	(void)state;
	/* get-vanilla-query-order-key-case */
	assert_string_equal(SUITE("GET", "/", key_case, 2, NULL, 0, ""),
			    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	/* get-vanilla-query-order-key: the same name twice, sorted by value ("Value1" < "value2") */
	assert_string_equal(SUITE("GET", "/", same_key_value_case, 2, NULL, 0, ""),
			    "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1");
	assert_string_equal(SUITE("GET", "/", same_key, 2, NULL, 0, ""),
			    "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694");
	/* get-vanilla-empty-query-key, post-vanilla-query */
	assert_string_equal(SUITE("GET", "/", one, 1, NULL, 0, ""),
			    "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
	assert_string_equal(SUITE("POST", "/", one, 1, NULL, 0, ""),
			    "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
	/* get-vanilla-query-unreserved, get-vanilla-utf8-query */
	assert_string_equal(SUITE("GET", "/", unres, 1, NULL, 0, ""),
			    "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
	assert_string_equal(SUITE("GET", "/", utf8, 1, NULL, 0, ""),
			    "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

static void test_suite_path_is_encoded_once(void **state)
{
	(void)state;
	/* get-unreserved, get-utf8 */
	assert_string_equal(SUITE("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
				  NULL, 0, NULL, 0, ""),
			    "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
	assert_string_equal(SUITE("GET", "/\xe1\x88\xb4", NULL, 0, NULL, 0, ""),
			    "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

static void test_suite_headers_are_canonicalized(void **state)
{
	struct s3_header dup[] = { { "My-Header1", "value2" }, { "My-Header1", "value2" }, { "My-Header1", "value1" } };
	struct s3_header order[] = { { "My-Header1", "value4" }, { "My-Header1", "value1" },
				     { "My-Header1", "value3" }, { "My-Header1", "value2" } };
	struct s3_header trim[] = { { "My-Header1", " value1" }, { "My-Header2", " \"a   b   c\"" } };
	struct s3_header sort[] = { { "My-Header1", "value1" } };
	struct s3_header value_case[] = { { "My-Header1", "VALUE1" } };

	(void)state;
	/* get-header-key-duplicate, get-header-value-order: repeated names join in order */
	assert_string_equal(SUITE("GET", "/", NULL, 0, dup, 3, ""),
			    "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
	assert_string_equal(SUITE("GET", "/", NULL, 0, order, 4, ""),
			    "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01");
	/* get-header-value-trim: leading spaces dropped, inner runs folded */
	assert_string_equal(SUITE("GET", "/", NULL, 0, trim, 2, ""),
			    "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
	/* post-header-key-sort, post-header-value-case: names lower-cased, values kept */
	assert_string_equal(SUITE("POST", "/", NULL, 0, sort, 1, ""),
			    "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c");
	assert_string_equal(SUITE("POST", "/", NULL, 0, value_case, 1, ""),
			    "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
}

static void test_suite_post_with_payload(void **state)
{
	struct s3_header form[] = { { "Content-Type", "application/x-www-form-urlencoded" } };
	struct s3_header form_charset[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf8" } };

	(void)state;
	/* post-vanilla, post-x-www-form-urlencoded, post-x-www-form-urlencoded-parameters */
	assert_string_equal(SUITE("POST", "/", NULL, 0, NULL, 0, ""),
			    "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	assert_string_equal(SUITE("POST", "/", NULL, 0, form, 1, "Param1=value1"),
			    "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
	assert_string_equal(SUITE("POST", "/", NULL, 0, form_charset, 1, "Param1=value1"),
			    "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe");
}

static void test_signing_key_matches_the_documented_derivation(void **state)
{
	uint8_t key[32];
	char hex[65];

	(void)state;
	assert_int_equal(s3_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1",
					      "iam", key), 0);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

#define S3DOC(method, key, q, nq, h, nh, body) \
	sign(&s3doc_key, S3_DATE, method, key, q, nq, h, nh, "examplebucket.s3.amazonaws.com", body)

static void test_s3_get_object_range_example(void **state)
{
	struct s3_header h[] = { { "Host", "examplebucket.s3.amazonaws.com" }, { "Range", "bytes=0-9" },
				 { "x-amz-content-sha256", S3_EMPTY_SHA256 }, { "x-amz-date", S3_DATE } };
	struct s3_sigv4_request r = { "GET", "/test.txt", NULL, 0, h, 4, S3_EMPTY_SHA256 };
	char *creq = s3_sigv4_canonical_request(&r);
	char *sts = s3_sigv4_string_to_sign(S3_DATE, "us-east-1", "s3", creq);
	char *auth = s3_sigv4_authorization(&r, &s3doc_key, S3_DATE);

	(void)state;
	assert_string_equal(creq, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
				  "x-amz-content-sha256:" S3_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
				  "host;range;x-amz-content-sha256;x-amz-date\n" S3_EMPTY_SHA256);
	assert_string_equal(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
				 "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
				  "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
				  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(creq);
	free(sts);
	free(auth);
}

static void test_s3_put_object_example_encodes_the_key(void **state)
{
	const char *body = "Welcome to Amazon S3.";
	char hash[S3_SHA256_HEX_LEN + 1];
	struct s3_header h[] = { { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
				 { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
				 { "x-amz-content-sha256", hash } };

	(void)state;
	s3_sha256_hex(body, strlen(body), hash);
	assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	assert_string_equal(S3DOC("PUT", "/test$file.text", NULL, 0, h, 3, body),
			    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_s3_bucket_subresource_and_list_examples(void **state)
{
	struct s3_header h[] = { { "x-amz-content-sha256", S3_EMPTY_SHA256 } };
	struct s3_param lifecycle[] = { { "lifecycle", "" } };
	struct s3_param list[] = { { "prefix", "J" }, { "max-keys", "2" } };

	(void)state;
	assert_string_equal(S3DOC("GET", "/", lifecycle, 1, h, 1, ""),
			    "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	assert_string_equal(S3DOC("GET", "/", list, 2, h, 1, ""),
			    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_malformed_inputs_are_refused(void **state)
{
	struct s3_header h[] = { { "Host", "example.amazonaws.com" } };
	struct s3_sigv4_request r = { "GET", "/", NULL, 0, h, 1, "not-a-hash" };
	struct s3_sigv4_request ok = { "GET", "/", NULL, 0, h, 1, S3_EMPTY_SHA256 };

	(void)state;
	assert_null(s3_sigv4_authorization(&r, &suite_key, SUITE_DATE));
	assert_null(s3_sigv4_authorization(&ok, &suite_key, "2015-08-30"));
}

static void test_amz_date_is_utc(void **state)
{
	char d[S3_AMZ_DATE_LEN + 1];

	(void)state;
	s3_sigv4_amz_date(1440938160LL, d);
	assert_string_equal(d, SUITE_DATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_get_vanilla_full_authorization),
		cmocka_unit_test(test_suite_query_is_sorted_and_encoded),
		cmocka_unit_test(test_suite_path_is_encoded_once),
		cmocka_unit_test(test_suite_headers_are_canonicalized),
		cmocka_unit_test(test_suite_post_with_payload),
		cmocka_unit_test(test_signing_key_matches_the_documented_derivation),
		cmocka_unit_test(test_s3_get_object_range_example),
		cmocka_unit_test(test_s3_put_object_example_encodes_the_key),
		cmocka_unit_test(test_s3_bucket_subresource_and_list_examples),
		cmocka_unit_test(test_malformed_inputs_are_refused),
		cmocka_unit_test(test_amz_date_is_utc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
