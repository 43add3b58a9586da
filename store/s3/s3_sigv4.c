/* s3_sigv4.c - AWS Signature Version 4: canonical request, string to sign, signing key, signature.
 * Follows the published algorithm step by step; the unit test replays AWS's own example requests. */
#include "s3_sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

void s3_sha256_hex(const void *data, size_t len, char out[S3_SHA256_HEX_LEN + 1])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	s3_hex_encode(md, sizeof(md), out, false);
}

void s3_sigv4_amz_date(long long t, char out[S3_AMZ_DATE_LEN + 1])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, S3_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* One signed header after canonicalization: lower-case name, folded value, input order kept. */
struct s3_canon_header {
	char *name;
	char *value;
	size_t order;
};

static int s3_canon_header_cmp(const void *a, const void *b)
{
	const struct s3_canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trims and folds runs of spaces and tabs into one space (SigV4 "Trimall"). */
static char *s3_fold_value(const char *v)
{
	size_t n = strlen(v), o = 0;
	char *out = malloc(n + 1);
	bool space = false;

	if (!out)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space && o)
			out[o++] = ' ';
		space = false;
		out[o++] = *v;
	}
	out[o] = '\0';
	return out;
}

/* Appends "name:value\n" lines to canon and "a;b;c" to signed_names, merging repeated names. */
static int s3_canonical_headers(const struct s3_sigv4_request *r, struct s3_buf *canon,
				struct s3_buf *signed_names)
{
	struct s3_canon_header *h;
	size_t i;
	int rc = 0;

	h = calloc(r->nheaders ? r->nheaders : 1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (i = 0; i < r->nheaders; i++) {
		h[i].name = strdup(r->headers[i].name);
		h[i].value = s3_fold_value(r->headers[i].value);
		h[i].order = i;
		if (!h[i].name || !h[i].value) {
			rc = -ENOMEM;
			goto out;
		}
		for (char *c = h[i].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	qsort(h, r->nheaders, sizeof(*h), s3_canon_header_cmp);
	for (i = 0; i < r->nheaders; i++) {
		bool same_as_prev = i && !strcmp(h[i].name, h[i - 1].name);

		if (same_as_prev) {
			s3_buf_printf(canon, ",%s", h[i].value);
			continue;
		}
		if (i) {
			s3_buf_putc(canon, '\n');
			s3_buf_putc(signed_names, ';');
		}
		s3_buf_printf(canon, "%s:%s", h[i].name, h[i].value);
		s3_buf_puts(signed_names, h[i].name);
	}
	if (r->nheaders)
		s3_buf_putc(canon, '\n');
out:
	for (i = 0; i < r->nheaders; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	return rc;
}

/* The canonical request and, separately, the signed header names (both heap strings). */
static int s3_canonical(const struct s3_sigv4_request *r, char **creq, char **signed_names)
{
	struct s3_buf c = S3_BUF_INIT, names = S3_BUF_INIT;
	int rc;

	s3_buf_printf(&c, "%s\n%s\n", r->method, r->canonical_uri);
	s3_query_canonical(r->query, r->nquery, &c);
	s3_buf_putc(&c, '\n');
	rc = s3_canonical_headers(r, &c, &names);
	s3_buf_printf(&c, "\n%s\n%s", s3_buf_str(&names), r->payload_hash);
	if (!rc)
		rc = s3_buf_error(&c) ?: s3_buf_error(&names);
	*creq = s3_buf_take(&c);
	*signed_names = s3_buf_take(&names);
	if (!rc && (!*creq || !*signed_names))
		rc = -ENOMEM;
	if (rc) {
		free(*creq);
		free(*signed_names);
		*creq = *signed_names = NULL;
	}
	return rc;
}

char *s3_sigv4_canonical_request(const struct s3_sigv4_request *r)
{
	char *creq, *names;

	if (s3_canonical(r, &creq, &names))
		return NULL;
	free(names);
	return creq;
}

char *s3_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			      const char *canonical_request)
{
	struct s3_buf b = S3_BUF_INIT;
	char hash[S3_SHA256_HEX_LEN + 1];

	s3_sha256_hex(canonical_request, strlen(canonical_request), hash);
	s3_buf_printf(&b, S3_SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date, region,
		      service, hash);
	return s3_buf_take(&b);
}

static void s3_hmac(const void *key, size_t key_len, const char *msg, uint8_t out[32])
{
	unsigned int len = 32;

	HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &len);
}

int s3_sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
			 const char *service, uint8_t out[32])
{
	size_t n = strlen(secret_key);
	char key[4 + S3_SECRET_MAX + 1];   /* on the stack, so the copy of the secret is wiped surely */
	uint8_t a[32], b[32];

	if (n > S3_SECRET_MAX)
		return -EINVAL;
	memcpy(key, "AWS4", 4);
	memcpy(key + 4, secret_key, n + 1);
	s3_hmac(key, n + 4, date8, a);
	s3_hmac(a, 32, region, b);
	s3_hmac(b, 32, service, a);
	s3_hmac(a, 32, "aws4_request", out);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static bool s3_amz_date_ok(const char *d)
{
	if (!d || strlen(d) != S3_AMZ_DATE_LEN || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	return true;
}

static bool s3_hash_ok(const char *h)
{
	if (!h || strlen(h) != S3_SHA256_HEX_LEN)
		return false;
	for (int i = 0; i < S3_SHA256_HEX_LEN; i++)
		if (!isdigit((unsigned char)h[i]) && !(h[i] >= 'a' && h[i] <= 'f'))
			return false;
	return true;
}

char *s3_sigv4_authorization(const struct s3_sigv4_request *r, const struct s3_sigv4_key *k,
			     const char *amz_date)
{
	char *creq = NULL, *names = NULL, *sts = NULL, *auth = NULL;
	char date8[9], sig_hex[65];
	uint8_t key[32], sig[32];
	struct s3_buf b = S3_BUF_INIT;

	if (!s3_amz_date_ok(amz_date) || !s3_hash_ok(r->payload_hash))
		return NULL;
	if (s3_canonical(r, &creq, &names))
		return NULL;
	sts = s3_sigv4_string_to_sign(amz_date, k->region, k->service, creq);
	if (!sts)
		goto out;
	memcpy(date8, amz_date, 8);
	date8[8] = '\0';
	if (s3_sigv4_signing_key(k->secret_key, date8, k->region, k->service, key))
		goto out;
	s3_hmac(key, sizeof(key), sts, sig);
	OPENSSL_cleanse(key, sizeof(key));
	s3_hex_encode(sig, sizeof(sig), sig_hex, false);
	s3_buf_printf(&b, S3_SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
		      k->access_key, date8, k->region, k->service, names, sig_hex);
	auth = s3_buf_take(&b);
out:
	free(creq);
	free(names);
	free(sts);
	return auth;
}
