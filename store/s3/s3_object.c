/* s3_object.c - object operations of the S3 client: PUT (plain and conditional), ranged GET, HEAD,
 * DELETE and ListObjectsV2 with pagination. Each is one s3_req handed to s3_request. */
#include "s3_client_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_xml.h"

static bool s3_key_ok(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	return n > 0 && n <= 1024;
}

static int s3_bad_key(struct s3_client *c, const char *key, struct s3_result *res)
{
	if (res)
		memset(res, 0, sizeof(*res));
	return s3_fail(c, res, -EINVAL, "invalid S3 key '%.64s' (1 to 1024 bytes)", key ? key : "");
}

int s3_put(struct s3_client *c, const char *key, const void *data, size_t len, const char *sha256_hex,
	   unsigned flags, struct s3_result *res)
{
	struct s3_header h[] = { { "If-None-Match", "*" } };
	struct s3_req r = { 0 };
	int rc;

	if (!s3_key_ok(key))
		return s3_bad_key(c, key, res);
	r.method = "PUT";
	r.key = key;
	r.body = data;
	r.body_len = len;
	r.payload_hash = sha256_hex;
	if (flags & S3_PUT_IF_ABSENT) {
		r.headers = h;
		r.nheaders = 1;
	}
	rc = s3_request(c, &r, res);
	s3_buf_free(&r.resp);
	return rc;
}

/* s3_get into dst, or across spans when spans is not NULL (len: their total). */
static int get_range(struct s3_client *c, const char *key, uint64_t off, size_t len, void *dst,
		     const struct s3_span *spans, size_t nspans, size_t *got, struct s3_result *res)
{
	char range[64];
	struct s3_header h[] = { { "Range", range } };
	struct s3_req r = { 0 };
	int rc;

	*got = 0;
	if (!s3_key_ok(key))
		return s3_bad_key(c, key, res);
	if (len == 0) {
		if (res)
			memset(res, 0, sizeof(*res));
		return 0;
	}
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	r.method = "GET";
	r.key = key;
	r.headers = h;
	r.nheaders = 1;
	r.dst = dst;
	r.dst_cap = len;
	r.spans = spans;
	r.nspans = nspans;
	rc = s3_request(c, &r, res);
	if (rc == -ERANGE && off == 0) {
		rc = 0;   /* only an empty object has no byte 0 */
		if (res)
			res->message[0] = '\0';
	} else if (!rc && r.status == 200 && off != 0) {
		/* The whole object came back from offset 0: the server ignored the Range header. */
		rc = s3_fail(c, res, -EPROTO, "S3 server ignored the Range header of a GET");
	} else if (!rc) {
		*got = r.dst_len;
	}
	s3_buf_free(&r.resp);
	return rc;
}

int s3_get(struct s3_client *c, const char *key, uint64_t off, size_t len, void *dst, size_t *got,
	   struct s3_result *res)
{
	return get_range(c, key, off, len, dst, NULL, 0, got, res);
}

int s3_get_spans(struct s3_client *c, const char *key, uint64_t off, const struct s3_span *spans, size_t nspans,
		 size_t *got, struct s3_result *res)
{
	size_t len = 0;

	for (size_t i = 0; i < nspans; i++) {
		if (spans[i].len == 0 || spans[i].len > SIZE_MAX - len) {
			*got = 0;
			return s3_fail(c, res, -EINVAL, "GET of %s: an empty or oversized span", key);
		}
		len += spans[i].len;
	}
	return get_range(c, key, off, len, NULL, spans, nspans, got, res);
}

int s3_get_all(struct s3_client *c, const char *key, size_t max_len, void **data, size_t *len,
	       struct s3_result *res)
{
	struct s3_req r = { 0 };
	int rc;

	*data = NULL;
	*len = 0;
	if (!s3_key_ok(key))
		return s3_bad_key(c, key, res);
	r.method = "GET";
	r.key = key;
	r.resp_max = max_len ? max_len : 1;
	rc = s3_request(c, &r, res);
	if (!rc) {
		*len = r.resp.len;
		*data = r.resp.p ? r.resp.p : calloc(1, 1);
		r.resp.p = NULL;
		if (!*data)
			rc = s3_fail(c, res, -ENOMEM, "out of memory");
	}
	s3_buf_free(&r.resp);
	return rc;
}

int s3_head(struct s3_client *c, const char *key, uint64_t *size, char etag[S3_ETAG_MAX], struct s3_result *res)
{
	struct s3_req r = { 0 };
	int rc;

	if (!s3_key_ok(key))
		return s3_bad_key(c, key, res);
	r.method = "HEAD";
	r.key = key;
	rc = s3_request(c, &r, res);
	if (!rc && r.content_length < 0)
		rc = s3_fail(c, res, -EPROTO, "S3 HEAD of %s gave no Content-Length", key);
	if (!rc) {
		if (size)
			*size = (uint64_t)r.content_length;
		if (etag)
			snprintf(etag, S3_ETAG_MAX, "%s", r.etag);
	}
	s3_buf_free(&r.resp);
	return rc;
}

int s3_delete(struct s3_client *c, const char *key, struct s3_result *res)
{
	struct s3_req r = { 0 };
	int rc;

	if (!s3_key_ok(key))
		return s3_bad_key(c, key, res);
	r.method = "DELETE";
	r.key = key;
	rc = s3_request(c, &r, res);
	s3_buf_free(&r.resp);
	return rc == -ENOENT ? 0 : rc;
}

int s3_list(struct s3_client *c, const char *prefix, const char *delimiter, unsigned page_size, s3_list_fn fn,
	    void *ctx, struct s3_result *res)
{
	char max_keys[16];
	char *token = NULL;
	int rc;

	snprintf(max_keys, sizeof(max_keys), "%u", page_size && page_size <= 1000 ? page_size : 1000);
	for (;;) {
		struct s3_param q[6];
		struct s3_xml_list_page page = { 0 };
		struct s3_req r = { 0 };
		size_t n = 0;

		q[n++] = (struct s3_param){ "list-type", "2" };
		q[n++] = (struct s3_param){ "max-keys", max_keys };
		q[n++] = (struct s3_param){ "encoding-type", "url" };
		q[n++] = (struct s3_param){ "prefix", prefix ? prefix : "" };
		if (delimiter && *delimiter)
			q[n++] = (struct s3_param){ "delimiter", delimiter };
		if (token)
			q[n++] = (struct s3_param){ "continuation-token", token };
		r.method = "GET";
		r.query = q;
		r.nquery = n;
		rc = s3_request(c, &r, res);
		if (!rc) {
			rc = s3_xml_parse_list(r.resp.p, r.resp.len, fn, ctx, &page);
			if (rc == -EINVAL)   /* the page, not a callback, was at fault: callbacks stop with their own */
				rc = s3_fail(c, res, -EPROTO, "malformed S3 listing of s3://%s/%s", c->bucket,
					     prefix ? prefix : "");
			free(token);
			token = page.next;
			free(page.next_upload);
		}
		s3_buf_free(&r.resp);
		if (rc || !page.truncated)
			break;
	}
	free(token);
	return rc;
}
