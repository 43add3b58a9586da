/* s3_xml.c - reads the S3 XML answers the client needs with expat (see s3_xml.h for why expat).
 * A small walker keeps the element path ("ListBucketResult/Contents/Key") and the text of the
 * current leaf, and hands each finished element to a document-specific handler.
 */
#include "s3_xml.h"

#include <errno.h>
#include <expat.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_buf.h"

#define S3_XML_TEXT_MAX (64u << 10)   /* longest element text kept (keys are at most 1 KiB) */

struct s3_xml_walk {
	struct s3_buf path;    /* element names from the root, '/'-separated */
	struct s3_buf text;    /* character data since the last start or end tag */
	int (*on_end)(void *ctx, const char *path, const char *text);
	void *ctx;
	int rc;                /* first error or stop value from on_end */
	XML_Parser p;
};

static void s3_xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct s3_xml_walk *w = ud;

	(void)attrs;
	if (w->path.len)
		s3_buf_putc(&w->path, '/');
	s3_buf_puts(&w->path, name);
	s3_buf_reset(&w->text);
}

static void s3_xml_end(void *ud, const XML_Char *name)
{
	struct s3_xml_walk *w = ud;
	char *slash;

	(void)name;
	if (!w->rc && (s3_buf_error(&w->path) || s3_buf_error(&w->text)))
		w->rc = -EINVAL;
	if (!w->rc)
		w->rc = w->on_end(w->ctx, s3_buf_str(&w->path), s3_buf_str(&w->text));
	if (w->rc) {
		XML_StopParser(w->p, XML_FALSE);
		return;
	}
	slash = w->path.p ? strrchr(w->path.p, '/') : NULL;
	w->path.len = slash ? (size_t)(slash - w->path.p) : 0;
	if (w->path.p)
		w->path.p[w->path.len] = '\0';
	s3_buf_reset(&w->text);
}

static void s3_xml_chars(void *ud, const XML_Char *s, int len)
{
	struct s3_xml_walk *w = ud;

	s3_buf_append(&w->text, s, (size_t)len);
}

/* Walks a document; returns the first non-zero on_end result, or -EINVAL when it is not well formed. */
static int s3_xml_walk(const char *body, size_t len, int (*on_end)(void *, const char *, const char *), void *ctx)
{
	struct s3_xml_walk w = { S3_BUF_INIT, S3_BUF_INIT, on_end, ctx, 0, NULL };
	enum XML_Status st;

	if (!body || !len || len > (size_t)1 << 30)
		return -EINVAL;
	w.text.limit = S3_XML_TEXT_MAX;
	w.p = XML_ParserCreate("UTF-8");
	if (!w.p)
		return -ENOMEM;
	XML_SetUserData(w.p, &w);
	XML_SetElementHandler(w.p, s3_xml_start, s3_xml_end);
	XML_SetCharacterDataHandler(w.p, s3_xml_chars);
	st = XML_Parse(w.p, body, (int)len, XML_TRUE);
	if (!w.rc && st != XML_STATUS_OK)
		w.rc = -EINVAL;
	XML_ParserFree(w.p);
	s3_buf_free(&w.path);
	s3_buf_free(&w.text);
	return w.rc;
}

/* ---- Error ---- */

struct s3_xml_error_ctx {
	struct s3_xml_error *out;
	bool is_error;
};

static int s3_xml_error_end(void *ud, const char *path, const char *text)
{
	struct s3_xml_error_ctx *e = ud;

	if (!strcmp(path, "Error"))
		e->is_error = true;
	else if (!strcmp(path, "Error/Code"))
		snprintf(e->out->code, sizeof(e->out->code), "%s", text);
	else if (!strcmp(path, "Error/Message"))
		snprintf(e->out->message, sizeof(e->out->message), "%s", text);
	return 0;
}

int s3_xml_parse_error(const char *body, size_t len, struct s3_xml_error *out)
{
	struct s3_xml_error_ctx e = { out, false };

	memset(out, 0, sizeof(*out));
	if (s3_xml_walk(body, len, s3_xml_error_end, &e) || !e.is_error) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	/* Messages are one line in pecfs logs. */
	for (char *p = out->message; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return 0;
}

/* ---- InitiateMultipartUploadResult ---- */

static int s3_xml_upload_id_end(void *ud, const char *path, const char *text)
{
	char **id = ud;

	if (strcmp(path, "InitiateMultipartUploadResult/UploadId") || *id)
		return 0;
	*id = strdup(text);
	return *id ? 0 : -ENOMEM;
}

int s3_xml_parse_upload_id(const char *body, size_t len, char **upload_id)
{
	char *id = NULL;
	int rc = s3_xml_walk(body, len, s3_xml_upload_id_end, &id);

	if (!rc && (!id || !*id))
		rc = -EINVAL;
	if (rc) {
		free(id);
		return rc;
	}
	*upload_id = id;
	return 0;
}

/* ---- ListBucketResult (ListObjectsV2) and ListMultipartUploadsResult ---- */

struct s3_xml_list_ctx {
	s3_list_fn list_cb;
	s3_upload_fn upload_cb;
	void *ctx;
	struct s3_xml_list_page *page;
	bool url_encoded;         /* EncodingType url: keys and prefixes come percent-encoded */
	struct s3_buf key, etag, modified, upload_id;
	uint64_t size;
};

/* Decodes %XX in place ('+' stays: S3 encodes a space as %20). */
static void s3_url_decode(struct s3_buf *b)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < b->len; i++) {
		if (b->p[i] == '%' && i + 2 < b->len &&
		    (hi = OPENSSL_hexchar2int((unsigned char)b->p[i + 1])) >= 0 && (lo = OPENSSL_hexchar2int((unsigned char)b->p[i + 2])) >= 0) {
			b->p[o++] = (char)(hi << 4 | lo);
			i += 2;
			continue;
		}
		b->p[o++] = b->p[i];
	}
	b->len = o;
	if (b->p)
		b->p[o] = '\0';
}

static int s3_set_text(struct s3_buf *b, const char *text)
{
	s3_buf_reset(b);
	s3_buf_puts(b, text);
	return s3_buf_error(b);
}

static int s3_xml_dup(char **dst, const char *text)
{
	free(*dst);
	*dst = strdup(text);
	return *dst ? 0 : -ENOMEM;
}

static int s3_xml_list_entry(struct s3_xml_list_ctx *l, bool is_prefix)
{
	struct s3_object o;

	if (l->url_encoded)
		s3_url_decode(&l->key);
	o.key = s3_buf_str(&l->key);
	o.size = is_prefix ? 0 : l->size;
	o.etag = is_prefix ? "" : s3_buf_str(&l->etag);
	o.last_modified = is_prefix ? "" : s3_buf_str(&l->modified);
	o.is_prefix = is_prefix;
	if (!*o.key)
		return -EINVAL;
	return l->list_cb(l->ctx, &o);
}

static int s3_xml_list_end(void *ud, const char *path, const char *text)
{
	struct s3_xml_list_ctx *l = ud;
	const char *p;

	if (strncmp(path, "ListBucketResult/", 17))
		return 0;
	p = path + 17;
	if (!strcmp(p, "IsTruncated"))
		l->page->truncated = !strcmp(text, "true");
	else if (!strcmp(p, "NextContinuationToken"))
		return s3_xml_dup(&l->page->next, text);
	else if (!strcmp(p, "EncodingType"))
		l->url_encoded = !strcmp(text, "url");
	else if (!strcmp(p, "Contents/Key") || !strcmp(p, "CommonPrefixes/Prefix"))
		return s3_set_text(&l->key, text);
	else if (!strcmp(p, "Contents/ETag"))
		return s3_set_text(&l->etag, text);
	else if (!strcmp(p, "Contents/LastModified"))
		return s3_set_text(&l->modified, text);
	else if (!strcmp(p, "Contents/Size"))
		l->size = strtoull(text, NULL, 10);
	else if (!strcmp(p, "Contents") || !strcmp(p, "CommonPrefixes")) {
		int rc = s3_xml_list_entry(l, !strcmp(p, "CommonPrefixes"));

		s3_buf_reset(&l->key);
		s3_buf_reset(&l->etag);
		s3_buf_reset(&l->modified);
		l->size = 0;
		return rc;
	}
	return 0;
}

static int s3_xml_uploads_end(void *ud, const char *path, const char *text)
{
	struct s3_xml_list_ctx *l = ud;
	const char *p;

	if (strncmp(path, "ListMultipartUploadsResult/", 27))
		return 0;
	p = path + 27;
	if (!strcmp(p, "IsTruncated"))
		l->page->truncated = !strcmp(text, "true");
	else if (!strcmp(p, "NextKeyMarker"))
		return s3_xml_dup(&l->page->next, text);
	else if (!strcmp(p, "NextUploadIdMarker"))
		return s3_xml_dup(&l->page->next_upload, text);
	else if (!strcmp(p, "EncodingType"))
		l->url_encoded = !strcmp(text, "url");
	else if (!strcmp(p, "Upload/Key"))
		return s3_set_text(&l->key, text);
	else if (!strcmp(p, "Upload/UploadId"))
		return s3_set_text(&l->upload_id, text);
	else if (!strcmp(p, "Upload")) {
		int rc;

		if (l->url_encoded)
			s3_url_decode(&l->key);
		rc = l->key.len && l->upload_id.len ? l->upload_cb(l->ctx, s3_buf_str(&l->key), s3_buf_str(&l->upload_id))
						    : -EINVAL;
		s3_buf_reset(&l->key);
		s3_buf_reset(&l->upload_id);
		return rc;
	}
	return 0;
}

static int s3_xml_parse_listing(const char *body, size_t len, struct s3_xml_list_ctx *l,
				int (*on_end)(void *, const char *, const char *))
{
	int rc;

	memset(l->page, 0, sizeof(*l->page));
	rc = s3_xml_walk(body, len, on_end, l);
	s3_buf_free(&l->key);
	s3_buf_free(&l->etag);
	s3_buf_free(&l->modified);
	s3_buf_free(&l->upload_id);
	/* A truncated page must say where to go on, or the listing would loop forever. */
	if (!rc && l->page->truncated && (!l->page->next || !*l->page->next))
		rc = -EINVAL;
	return rc;
}

int s3_xml_parse_list(const char *body, size_t len, s3_list_fn cb, void *ctx, struct s3_xml_list_page *page)
{
	struct s3_xml_list_ctx l = { .list_cb = cb, .ctx = ctx, .page = page };

	return s3_xml_parse_listing(body, len, &l, s3_xml_list_end);
}

int s3_xml_parse_uploads(const char *body, size_t len, s3_upload_fn cb, void *ctx, struct s3_xml_list_page *page)
{
	struct s3_xml_list_ctx l = { .upload_cb = cb, .ctx = ctx, .page = page };

	return s3_xml_parse_listing(body, len, &l, s3_xml_uploads_end);
}

/* ---- STS AssumeRoleWithWebIdentity ---- */

struct s3_xml_sts_ctx {
	struct s3_credentials *out;
	struct s3_xml_error *err;
	int rc;
};

static int s3_xml_sts_set(char **field, const char *text)
{
	char *v = strdup(text);

	if (!v)
		return -ENOMEM;
	if (*field) {
		OPENSSL_cleanse(*field, strlen(*field));
		free(*field);
	}
	*field = v;
	return 0;
}

static int s3_xml_sts_end(void *ud, const char *path, const char *text)
{
	static const char creds[] = "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/";
	struct s3_xml_sts_ctx *c = ud;
	const char *leaf;

	if (!strncmp(path, "ErrorResponse/Error/", 20)) {
		if (!strcmp(path + 20, "Code"))
			snprintf(c->err->code, sizeof(c->err->code), "%s", text);
		else if (!strcmp(path + 20, "Message"))
			snprintf(c->err->message, sizeof(c->err->message), "%s", text);
		return 0;
	}
	if (strncmp(path, creds, sizeof(creds) - 1) != 0)
		return 0;
	leaf = path + sizeof(creds) - 1;
	if (!strcmp(leaf, "AccessKeyId"))
		return s3_xml_sts_set(&c->out->access_key, text);
	if (!strcmp(leaf, "SecretAccessKey"))
		return s3_xml_sts_set(&c->out->secret_key, text);
	if (!strcmp(leaf, "SessionToken"))
		return s3_xml_sts_set(&c->out->session_token, text);
	if (!strcmp(leaf, "Expiration")) {
		c->out->expires_ns = s3_creds_parse_time(text);
		return c->out->expires_ns < 0 ? -EINVAL : 0;
	}
	return 0;
}

int s3_xml_parse_sts_credentials(const char *body, size_t len, struct s3_credentials *out, struct s3_xml_error *err)
{
	struct s3_xml_sts_ctx c = { out, err, 0 };
	int rc;

	memset(err, 0, sizeof(*err));
	rc = s3_xml_walk(body, len, s3_xml_sts_end, &c);
	if (!rc && (!out->access_key || !out->secret_key || !out->session_token || out->expires_ns <= 0))
		rc = -EINVAL;  /* an ErrorResponse, or credentials that lack a part */
	return rc;
}
