/* s3_buf.c - growable byte buffer with a sticky error (see s3_buf.h). */
#include "s3_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s3_buf_reserve(struct s3_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->err)
		return false;
	if (b->limit && b->len + extra > b->limit) {
		b->err = -EFBIG;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void s3_buf_append(struct s3_buf *b, const void *data, size_t len)
{
	if (!s3_buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void s3_buf_puts(struct s3_buf *b, const char *s)
{
	s3_buf_append(b, s, strlen(s));
}

void s3_buf_putc(struct s3_buf *b, char c)
{
	s3_buf_append(b, &c, 1);
}

void s3_buf_printf(struct s3_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	if (!s3_buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void s3_hex_encode(const void *in, size_t n, char *out, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool s3_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

void s3_buf_put_encoded(struct s3_buf *b, const char *s, size_t len, bool keep_slash)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4] = "%";

		if (s3_unreserved(c) || (keep_slash && c == '/')) {
			s3_buf_putc(b, (char)c);
			continue;
		}
		s3_hex_encode(&c, 1, esc + 1, true);
		s3_buf_append(b, esc, 3);
	}
}

int s3_buf_error(const struct s3_buf *b)
{
	return b->err;
}

const char *s3_buf_str(const struct s3_buf *b)
{
	return b->p ? b->p : "";
}

char *s3_buf_take(struct s3_buf *b)
{
	char *p = NULL;

	if (!b->err) {
		p = b->p ? b->p : strdup("");
		b->p = NULL;
	}
	s3_buf_free(b);
	return p;
}

void s3_buf_reset(struct s3_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

void s3_buf_free(struct s3_buf *b)
{
	size_t limit = b->limit;

	free(b->p);
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}
