/* fuzz_s3_xml.c - libFuzzer target for the S3 client's XML readers (store/s3/s3_xml.c): every answer
 * body comes from the network (STS's too). The input is tried as each document the client reads; a parse must
 * either fail cleanly or hand out NUL-terminated strings of sane length. Crashes, leaks and
 * sanitizer reports are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3_xml.h"

static int on_object(void *ctx, const struct s3_object *o)
{
	(void)ctx;
	if (!o->key || strlen(o->key) > (1u << 20))
		abort();
	return 0;
}

static int on_upload(void *ctx, const char *key, const char *upload_id)
{
	(void)ctx;
	if (!key || !upload_id)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct s3_xml_error e;
	struct s3_xml_list_page page = { 0 };
	char *id = NULL;

	if (s3_xml_parse_error(body, size, &e) == 0 &&
	    (strnlen(e.code, sizeof(e.code)) == sizeof(e.code) || strnlen(e.message, sizeof(e.message)) == sizeof(e.message)))
		abort();
	if (s3_xml_parse_upload_id(body, size, &id) == 0 && !id)
		abort();
	free(id);
	s3_xml_parse_list(body, size, on_object, NULL, &page);
	free(page.next);
	free(page.next_upload);
	memset(&page, 0, sizeof(page));
	s3_xml_parse_uploads(body, size, on_upload, NULL, &page);
	free(page.next);
	free(page.next_upload);
	/* STS: every part or nothing */
	struct s3_credentials c = { 0 };
	if (s3_xml_parse_sts_credentials(body, size, &c, &e) == 0 &&
	    (!c.access_key || !c.secret_key || !c.session_token || c.expires_ns <= 0))
		abort();
	s3_creds_clear(&c);
	return 0;
}
