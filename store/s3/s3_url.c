/* s3_url.c - endpoints, s3:// URIs, bucket names, addressing, encoded paths and canonical queries.
 * Pure string work; see s3_url.h for the rules. */
#include "s3_url.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s3_host_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

int s3_endpoint_parse(const char *url, struct s3_endpoint *out)
{
	struct s3_endpoint ep = { 0 };
	const char *p, *host_end, *port_start = NULL;
	size_t host_len;

	if (!strncmp(url, "https://", 8)) {
		ep.https = true;
		p = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		p = url + 7;
	} else {
		return -EINVAL;
	}
	if (*p == '[') {                         /* [IPv6] */
		host_end = strchr(p, ']');
		if (!host_end || host_end == p + 1)
			return -EINVAL;
		for (const char *c = p + 1; c < host_end; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
				return -EINVAL;
		host_end++;
	} else {
		host_end = p;
		while (s3_host_char_ok(*host_end))
			host_end++;
		if (host_end == p)
			return -EINVAL;
	}
	host_len = (size_t)(host_end - p);
	if (host_len >= sizeof(ep.host))
		return -EINVAL;
	memcpy(ep.host, p, host_len);
	p = host_end;
	if (*p == ':') {
		unsigned long port = 0;

		port_start = ++p;
		while (isdigit((unsigned char)*p) && port <= 65535)
			port = port * 10 + (unsigned long)(*p++ - '0');
		if (p == port_start || port == 0 || port > 65535)
			return -EINVAL;
		ep.port = (unsigned)port;
		if (ep.port == (ep.https ? 443u : 80u))
			ep.port = 0;
	}
	if (*p == '/')
		p++;
	if (*p != '\0')
		return -EINVAL;
	*out = ep;
	return 0;
}

int s3_endpoint_for_region(const char *region, struct s3_endpoint *out)
{
	size_t n = strlen(region);

	if (n == 0 || n > 64)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)region[i]) && !isdigit((unsigned char)region[i]) && region[i] != '-')
			return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->https = true;
	snprintf(out->host, sizeof(out->host), "s3.%s.amazonaws.com", region);
	return 0;
}

bool s3_endpoint_is_aws(const struct s3_endpoint *ep)
{
	static const char suffix[] = ".amazonaws.com";
	size_t n = strlen(ep->host), s = sizeof(suffix) - 1;

	return n > s && !strcasecmp(ep->host + n - s, suffix);
}

bool s3_bucket_name_valid(const char *bucket)
{
	size_t n = strlen(bucket);

	if (n < 3 || n > 63)
		return false;
	if (!isalnum((unsigned char)bucket[0]) || !isalnum((unsigned char)bucket[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)bucket[i]) && bucket[i] != '.' && bucket[i] != '-' && bucket[i] != '_')
			return false;
	return true;
}

bool s3_bucket_virtual_ok(const char *bucket, bool https)
{
	size_t n = strlen(bucket);

	if (!s3_bucket_name_valid(bucket))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = bucket[i];

		if (c == '.') {
			/* Over https a dotted name leaves the *.endpoint certificate; empty labels never work. */
			if (https || bucket[i + 1] == '.' || bucket[i + 1] == '-' || (i && bucket[i - 1] == '-'))
				return false;
			continue;
		}
		if (!islower((unsigned char)c) && !isdigit((unsigned char)c) && c != '-')
			return false;
	}
	return true;
}

bool s3_use_path_style(enum s3_addressing a, const struct s3_endpoint *ep, const char *bucket)
{
	switch (a) {
	case S3_ADDRESSING_PATH:
		return true;
	case S3_ADDRESSING_VIRTUAL:
		return false;
	case S3_ADDRESSING_AUTO:
		break;
	}
	/* Private endpoints (RGW, MinIO, an IP address) rarely have wildcard DNS for bucket names. */
	return !(s3_endpoint_is_aws(ep) && s3_bucket_virtual_ok(bucket, ep->https));
}

int s3_uri_parse(const char *uri, char bucket[S3_BUCKET_MAX], char *prefix, size_t prefix_size)
{
	const char *b, *slash;
	size_t blen, plen;

	if (strncmp(uri, "s3://", 5))
		return -EINVAL;
	b = uri + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen >= S3_BUCKET_MAX)
		return -EINVAL;
	memcpy(bucket, b, blen);
	bucket[blen] = '\0';
	if (!s3_bucket_name_valid(bucket))
		return -EINVAL;
	b = slash ? slash : b + blen;
	while (*b == '/')
		b++;
	plen = strlen(b);
	while (plen && b[plen - 1] == '/')
		plen--;
	if (plen >= prefix_size)
		return -EINVAL;
	memcpy(prefix, b, plen);
	prefix[plen] = '\0';
	return 0;
}

struct s3_encoded_param {
	char *name;
	char *value;
};

static int s3_encoded_param_cmp(const void *a, const void *b)
{
	const struct s3_encoded_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static char *s3_encode_dup(const char *s)
{
	struct s3_buf b = S3_BUF_INIT;

	s3_buf_put_encoded(&b, s, strlen(s), false);
	return s3_buf_take(&b);
}

void s3_query_canonical(const struct s3_param *q, size_t n, struct s3_buf *out)
{
	struct s3_encoded_param *e;
	size_t i;

	if (n == 0)
		return;
	e = calloc(n, sizeof(*e));
	if (!e) {
		out->err = -ENOMEM;
		return;
	}
	for (i = 0; i < n; i++) {
		e[i].name = s3_encode_dup(q[i].name);
		e[i].value = s3_encode_dup(q[i].value ? q[i].value : "");
		if (!e[i].name || !e[i].value)
			out->err = -ENOMEM;
	}
	if (!out->err) {
		qsort(e, n, sizeof(*e), s3_encoded_param_cmp);
		for (i = 0; i < n; i++)
			s3_buf_printf(out, "%s%s=%s", i ? "&" : "", e[i].name, e[i].value);
	}
	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
	free(e);
}

void s3_target_free(struct s3_target *t)
{
	free(t->url);
	free(t->host);
	free(t->canonical_uri);
	free(t->query);
	memset(t, 0, sizeof(*t));
}

int s3_target_build(const struct s3_endpoint *ep, const char *bucket, bool path_style, const char *key,
		    const struct s3_param *q, size_t nq, struct s3_target *out)
{
	struct s3_buf host = S3_BUF_INIT, path = S3_BUF_INIT, query = S3_BUF_INIT, url = S3_BUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s3_bucket_name_valid(bucket))
		return -EINVAL;
	if (!path_style)
		s3_buf_printf(&host, "%s.", bucket);
	s3_buf_puts(&host, ep->host);
	if (ep->port)
		s3_buf_printf(&host, ":%u", ep->port);

	s3_buf_putc(&path, '/');
	if (path_style) {
		s3_buf_put_encoded(&path, bucket, strlen(bucket), false);
		if (key && *key)
			s3_buf_putc(&path, '/');
	}
	if (key)
		s3_buf_put_encoded(&path, key, strlen(key), true);

	s3_query_canonical(q, nq, &query);
	s3_buf_printf(&url, "%s://%s%s%s%s", ep->https ? "https" : "http", s3_buf_str(&host),
		      s3_buf_str(&path), query.len ? "?" : "", s3_buf_str(&query));

	rc = s3_buf_error(&host) ?: s3_buf_error(&path) ?: s3_buf_error(&query) ?: s3_buf_error(&url);
	out->host = s3_buf_take(&host);
	out->canonical_uri = s3_buf_take(&path);
	out->query = s3_buf_take(&query);
	out->url = s3_buf_take(&url);
	if (!rc && (!out->host || !out->canonical_uri || !out->query || !out->url))
		rc = -ENOMEM;
	if (rc)
		s3_target_free(out);
	return rc;
}
