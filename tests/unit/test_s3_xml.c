/* test_s3_xml.c - the S3 answers the client reads: Error documents (also inside a 200), upload ids,
 * ListObjectsV2 pages (entries, common prefixes, continuation, url-encoded keys) and upload listings;
 * malformed or endless pages are refused.
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

#include "s3_xml.h"

#define XMLDECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

static void test_error_document_gives_code_and_one_line_message(void **state)
{
	const char *doc = XMLDECL "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature\n"
			  "does not match</Message><RequestId>tx1</RequestId></Error>";
	struct s3_xml_error e;

	(void)state;
	assert_int_equal(s3_xml_parse_error(doc, strlen(doc), &e), 0);
	assert_string_equal(e.code, "SignatureDoesNotMatch");
	assert_string_equal(e.message, "The request signature does not match");
	doc = XMLDECL "<CompleteMultipartUploadResult><ETag>\"x\"</ETag></CompleteMultipartUploadResult>";
	assert_int_equal(s3_xml_parse_error(doc, strlen(doc), &e), -EINVAL);
	assert_int_equal(s3_xml_parse_error("not xml", 7, &e), -EINVAL);
	assert_int_equal(s3_xml_parse_error(NULL, 0, &e), -EINVAL);
}

static void test_upload_id(void **state)
{
	const char *doc = XMLDECL "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			  "<Bucket>b</Bucket><Key>k</Key><UploadId>2~abc.DEF</UploadId></InitiateMultipartUploadResult>";
	char *id = NULL;

	(void)state;
	assert_int_equal(s3_xml_parse_upload_id(doc, strlen(doc), &id), 0);
	assert_string_equal(id, "2~abc.DEF");
	free(id);
	doc = XMLDECL "<InitiateMultipartUploadResult></InitiateMultipartUploadResult>";
	assert_int_equal(s3_xml_parse_upload_id(doc, strlen(doc), &id), -EINVAL);
}

struct seen {
	char lines[8][128];
	int n;
	int stop_after;
};

static int collect(void *ctx, const struct s3_object *o)
{
	struct seen *s = ctx;

	snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s%s %llu %s", o->is_prefix ? "P:" : "", o->key,
		 (unsigned long long)o->size, o->etag);
	return s->stop_after && s->n >= s->stop_after ? 42 : 0;
}

static const char list_page[] = XMLDECL
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
	"<IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>"
	"<Contents><Key>runs/a%20b%2Bc</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
	"<ETag>&quot;e1&quot;</ETag><Size>12</Size></Contents>"
	"<Contents><Key>runs/z</Key><ETag>\"e2\"</ETag><Size>4294967296</Size></Contents>"
	"<CommonPrefixes><Prefix>runs/sub%2F/</Prefix></CommonPrefixes>"
	"<NextContinuationToken>tok/1+</NextContinuationToken></ListBucketResult>";

static void test_list_page_entries_prefixes_and_token(void **state)
{
	struct s3_xml_list_page page;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(s3_xml_parse_list(list_page, strlen(list_page), collect, &s, &page), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.lines[0], "runs/a b+c 12 \"e1\"");
	assert_string_equal(s.lines[1], "runs/z 4294967296 \"e2\"");
	assert_string_equal(s.lines[2], "P:runs/sub// 0 ");
	assert_true(page.truncated);
	assert_string_equal(page.next, "tok/1+");
	free(page.next);
	free(page.next_upload);
}

static void test_callback_stops_the_walk(void **state)
{
	struct s3_xml_list_page page;
	struct seen s = { .stop_after = 1 };

	(void)state;
	assert_int_equal(s3_xml_parse_list(list_page, strlen(list_page), collect, &s, &page), 42);
	assert_int_equal(s.n, 1);
	free(page.next);
	free(page.next_upload);
}

static void test_truncated_page_without_token_is_refused(void **state)
{
	const char *doc = XMLDECL "<ListBucketResult><IsTruncated>true</IsTruncated>"
			  "<Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>";
	const char *broken = XMLDECL "<ListBucketResult><Contents><Key>k</Key>";
	struct s3_xml_list_page page;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(s3_xml_parse_list(doc, strlen(doc), collect, &s, &page), -EINVAL);
	free(page.next);
	free(page.next_upload);
	assert_int_equal(s3_xml_parse_list(broken, strlen(broken), collect, &s, &page), -EINVAL);
	free(page.next);
	free(page.next_upload);
}

static int collect_upload(void *ctx, const char *key, const char *upload_id)
{
	struct seen *s = ctx;

	snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s=%s", key, upload_id);
	return 0;
}

static void test_upload_listing(void **state)
{
	const char *doc = XMLDECL "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
			  "<NextKeyMarker>big</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
			  "<Upload><Key>big</Key><UploadId>u1</UploadId></Upload>"
			  "<Upload><Key>big</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
	struct s3_xml_list_page page;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(s3_xml_parse_uploads(doc, strlen(doc), collect_upload, &s, &page), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.lines[0], "big=u1");
	assert_string_equal(s.lines[1], "big=u2");
	assert_true(page.truncated);
	assert_string_equal(page.next, "big");
	assert_string_equal(page.next_upload, "u2");
	free(page.next);
	free(page.next_upload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_document_gives_code_and_one_line_message),
		cmocka_unit_test(test_upload_id),
		cmocka_unit_test(test_list_page_entries_prefixes_and_token),
		cmocka_unit_test(test_callback_stops_the_walk),
		cmocka_unit_test(test_truncated_page_without_token_is_refused),
		cmocka_unit_test(test_upload_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
