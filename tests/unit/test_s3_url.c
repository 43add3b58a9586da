/* test_s3_url.c - where S3 requests go: endpoint and s3:// URI parsing, bucket name rules, path-style
 * versus virtual-hosted addressing, and the encoded path and canonical query shared by URL and
 * signature (one encoding, sorted parameters, "name=" for empty values).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "s3_url.h"

static void test_endpoints_parse_scheme_host_and_port(void **state)
{
	struct s3_endpoint ep;

	(void)state;
	assert_int_equal(s3_endpoint_parse("http://127.0.0.1:7480", &ep), 0);
	assert_false(ep.https);
	assert_string_equal(ep.host, "127.0.0.1");
	assert_int_equal(ep.port, 7480);
	assert_int_equal(s3_endpoint_parse("https://s3.example.com/", &ep), 0);
	assert_true(ep.https);
	assert_string_equal(ep.host, "s3.example.com");
	assert_int_equal(ep.port, 0);
	/* the scheme's own port is the same endpoint, and must not appear in the signed Host */
	assert_int_equal(s3_endpoint_parse("https://s3.example.com:443", &ep), 0);
	assert_int_equal(ep.port, 0);
	assert_int_equal(s3_endpoint_parse("http://[::1]:9000", &ep), 0);
	assert_string_equal(ep.host, "[::1]");
	assert_int_equal(ep.port, 9000);
}

static void test_endpoints_with_more_than_a_host_are_refused(void **state)
{
	struct s3_endpoint ep;

	(void)state;
	assert_int_equal(s3_endpoint_parse("ftp://host", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("host:9000", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://user:pw@host", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://host/path", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://host:0", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://host:70000", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://[]:80", &ep), -EINVAL);
}

static void test_region_endpoint_is_aws(void **state)
{
	struct s3_endpoint ep;

	(void)state;
	assert_int_equal(s3_endpoint_for_region("eu-west-3", &ep), 0);
	assert_true(ep.https);
	assert_string_equal(ep.host, "s3.eu-west-3.amazonaws.com");
	assert_true(s3_endpoint_is_aws(&ep));
	assert_int_equal(s3_endpoint_for_region("bad/region", &ep), -EINVAL);
	assert_int_equal(s3_endpoint_parse("http://127.0.0.1:7480", &ep), 0);
	assert_false(s3_endpoint_is_aws(&ep));
}

static void test_s3_uri_splits_bucket_and_prefix(void **state)
{
	char bucket[S3_BUCKET_MAX], prefix[64];

	(void)state;
	assert_int_equal(s3_uri_parse("s3://ckpt-bucket/team/run1/", bucket, prefix, sizeof(prefix)), 0);
	assert_string_equal(bucket, "ckpt-bucket");
	assert_string_equal(prefix, "team/run1");
	assert_int_equal(s3_uri_parse("s3://ckpt-bucket", bucket, prefix, sizeof(prefix)), 0);
	assert_string_equal(prefix, "");
	assert_int_equal(s3_uri_parse("http://ckpt-bucket/x", bucket, prefix, sizeof(prefix)), -EINVAL);
	assert_int_equal(s3_uri_parse("s3://a/x", bucket, prefix, sizeof(prefix)), -EINVAL);
	assert_int_equal(s3_uri_parse("s3://bucket/0123456789012345678901234567890123456789012345678901234567890123456789",
				      bucket, prefix, sizeof(prefix)), -EINVAL);
}

static void test_bucket_names(void **state)
{
	(void)state;
	assert_true(s3_bucket_name_valid("my-bucket.1"));
	assert_false(s3_bucket_name_valid("ab"));
	assert_false(s3_bucket_name_valid("-bucket"));
	assert_false(s3_bucket_name_valid("bucket/x"));
	assert_true(s3_bucket_virtual_ok("my-bucket", true));
	assert_true(s3_bucket_virtual_ok("my.bucket", false));
	/* *.s3.amazonaws.com certificates cover one label only */
	assert_false(s3_bucket_virtual_ok("my.bucket", true));
	assert_false(s3_bucket_virtual_ok("My_Bucket", false));
}

static void test_auto_addressing_is_virtual_only_on_aws(void **state)
{
	struct s3_endpoint aws, rgw;

	(void)state;
	assert_int_equal(s3_endpoint_for_region("us-east-1", &aws), 0);
	assert_int_equal(s3_endpoint_parse("http://127.0.0.1:7480", &rgw), 0);
	assert_false(s3_use_path_style(S3_ADDRESSING_AUTO, &aws, "ckpt"));
	assert_true(s3_use_path_style(S3_ADDRESSING_AUTO, &aws, "ckpt.dotted"));
	assert_true(s3_use_path_style(S3_ADDRESSING_AUTO, &rgw, "ckpt"));
	assert_false(s3_use_path_style(S3_ADDRESSING_VIRTUAL, &rgw, "ckpt"));
	assert_true(s3_use_path_style(S3_ADDRESSING_PATH, &aws, "ckpt"));
}

static void test_path_style_target_encodes_the_key_once(void **state)
{
	struct s3_endpoint ep;
	struct s3_target t;

	(void)state;
	assert_int_equal(s3_endpoint_parse("http://127.0.0.1:7480", &ep), 0);
	assert_int_equal(s3_target_build(&ep, "ckpt", true, "runs/a b/c+d$%\xc3\xa9~", NULL, 0, &t), 0);
	assert_string_equal(t.host, "127.0.0.1:7480");
	assert_string_equal(t.canonical_uri, "/ckpt/runs/a%20b/c%2Bd%24%25%C3%A9~");
	assert_string_equal(t.url, "http://127.0.0.1:7480/ckpt/runs/a%20b/c%2Bd%24%25%C3%A9~");
	assert_string_equal(t.query, "");
	s3_target_free(&t);
}

static void test_virtual_hosted_target_puts_the_bucket_in_the_host(void **state)
{
	struct s3_endpoint ep;
	struct s3_target t;
	struct s3_param q[] = { { "partNumber", "2" }, { "uploadId", "a/b=c" } };

	(void)state;
	assert_int_equal(s3_endpoint_for_region("us-west-2", &ep), 0);
	assert_int_equal(s3_target_build(&ep, "ckpt", false, "chunks/ab/abcd", q, 2, &t), 0);
	assert_string_equal(t.host, "ckpt.s3.us-west-2.amazonaws.com");
	assert_string_equal(t.canonical_uri, "/chunks/ab/abcd");
	assert_string_equal(t.query, "partNumber=2&uploadId=a%2Fb%3Dc");
	assert_string_equal(t.url, "https://ckpt.s3.us-west-2.amazonaws.com/chunks/ab/abcd?partNumber=2&uploadId=a%2Fb%3Dc");
	s3_target_free(&t);
}

static void test_bucket_requests_and_empty_query_values(void **state)
{
	struct s3_endpoint ep;
	struct s3_target t;
	struct s3_param q[] = { { "uploads", "" }, { "prefix", "runs/" }, { "list-type", "2" } };

	(void)state;
	assert_int_equal(s3_endpoint_parse("https://minio.internal:9000", &ep), 0);
	assert_int_equal(s3_target_build(&ep, "ckpt", true, NULL, q, 3, &t), 0);
	assert_string_equal(t.canonical_uri, "/ckpt");
	assert_string_equal(t.query, "list-type=2&prefix=runs%2F&uploads=");
	assert_string_equal(t.url, "https://minio.internal:9000/ckpt?list-type=2&prefix=runs%2F&uploads=");
	s3_target_free(&t);
	assert_int_equal(s3_target_build(&ep, "ckpt", false, NULL, NULL, 0, &t), 0);
	assert_string_equal(t.host, "ckpt.minio.internal:9000");
	assert_string_equal(t.canonical_uri, "/");
	s3_target_free(&t);
	assert_int_equal(s3_target_build(&ep, "x", true, "k", NULL, 0, &t), -EINVAL);
}

static void test_canonical_query_sorts_by_encoded_name_then_value(void **state)
{
	struct s3_param q[] = { { "b", "2" }, { "a", "z" }, { "a", "Z" }, { "A", "" }, { "c d", "e&f" } };
	struct s3_buf b = S3_BUF_INIT;

	(void)state;
	s3_query_canonical(q, 5, &b);
	assert_int_equal(s3_buf_error(&b), 0);
	assert_string_equal(s3_buf_str(&b), "A=&a=Z&a=z&b=2&c%20d=e%26f");
	s3_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints_parse_scheme_host_and_port),
		cmocka_unit_test(test_endpoints_with_more_than_a_host_are_refused),
		cmocka_unit_test(test_region_endpoint_is_aws),
		cmocka_unit_test(test_s3_uri_splits_bucket_and_prefix),
		cmocka_unit_test(test_bucket_names),
		cmocka_unit_test(test_auto_addressing_is_virtual_only_on_aws),
		cmocka_unit_test(test_path_style_target_encodes_the_key_once),
		cmocka_unit_test(test_virtual_hosted_target_puts_the_bucket_in_the_host),
		cmocka_unit_test(test_bucket_requests_and_empty_query_values),
		cmocka_unit_test(test_canonical_query_sorts_by_encoded_name_then_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
