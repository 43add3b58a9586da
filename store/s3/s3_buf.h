/* s3_buf.h - a growable byte buffer for the S3 client: URLs, canonical requests, response bodies.
 *
 * Appends never fail loudly: the first failure sets `err` and every later append is a
 * no-op, so a sequence of appends is checked once at the end (s3_buf_error). The contents are always
 * NUL-terminated after the last byte (not counted in len). Not thread-safe; one owner at a time.
 */
#ifndef PECFS_S3_BUF_H
#define PECFS_S3_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct s3_buf {
	char *p;       /* NULL until the first append */
	size_t len;
	size_t cap;
	int err;       /* 0, or -ENOMEM / -EFBIG (limit passed): contents are incomplete */
	size_t limit;  /* most bytes accepted; 0 means no limit */
};

#define S3_BUF_INIT { NULL, 0, 0, 0, 0 }

void s3_buf_append(struct s3_buf *b, const void *data, size_t len);
void s3_buf_puts(struct s3_buf *b, const char *s);
void s3_buf_putc(struct s3_buf *b, char c);
void s3_buf_printf(struct s3_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s with every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX (upper-case hex),
 * as SigV4 and S3 require; '/' is kept as is when keep_slash. */
void s3_buf_put_encoded(struct s3_buf *b, const char *s, size_t len, bool keep_slash);

/* The client's one hex encoder (signatures, payload hashes, percent-encoding): n bytes of in as 2n
 * lower-case (or upper-case) hex digits and a NUL into out. (Decoding is OpenSSL's
 * OPENSSL_hexchar2int.) */
void s3_hex_encode(const void *in, size_t n, char *out, bool upper);

/* 0, or -ENOMEM (allocation failed) / -EFBIG (limit passed). */
int s3_buf_error(const struct s3_buf *b);

/* The string ("" when empty); valid until the next append. */
const char *s3_buf_str(const struct s3_buf *b);

/* Hands the heap string to the caller (NULL after an error); the buffer is empty afterwards. */
char *s3_buf_take(struct s3_buf *b);

void s3_buf_reset(struct s3_buf *b);   /* len = 0, keeps memory and limit, clears err */
void s3_buf_free(struct s3_buf *b);    /* frees and reinitializes (the limit is kept) */

#endif
