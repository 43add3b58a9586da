/* s3_sigv4.h - AWS Signature Version 4 in the Authorization header (HMAC-SHA256, OpenSSL).
 *
 * The caller gives the encoded path and raw query (s3_url.h builds both the same way for the URL),
 * every header to sign, and the hex SHA-256 of the payload, which is also sent as
 * x-amz-content-sha256 (S3 and RGW check it against the body). UNSIGNED-PAYLOAD is never produced
 * here. Pure functions, thread-safe; the secret is only used as an HMAC key and never copied out.
 */
#ifndef PECFS_S3_SIGV4_H
#define PECFS_S3_SIGV4_H
#ifndef PECFS_S3_INTERNAL
#error "s3_sigv4.h is private to store/s3/: include s3_client.h"
#endif

#include <stddef.h>
#include <stdint.h>

#include "s3_url.h"

#define S3_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define S3_AMZ_DATE_LEN 16        /* "20150830T123600Z" */
#define S3_SHA256_HEX_LEN 64
#define S3_SECRET_MAX 256         /* longest secret key accepted (AWS's are 40 characters) */
/* SHA-256 of the empty string, the payload hash of requests without a body. */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_header {
	const char *name;   /* any case; signed lower-cased */
	const char *value;  /* signed trimmed, runs of spaces folded to one */
};

struct s3_sigv4_request {
	const char *method;               /* "GET", "PUT", ... */
	const char *canonical_uri;        /* encoded path ("/" at least) */
	const struct s3_param *query;     /* raw parameters, any order */
	size_t nquery;
	const struct s3_header *headers;  /* every header to sign, host and x-amz-date included; the same
					     name may repeat (values are joined with ',' in order) */
	size_t nheaders;
	const char *payload_hash;         /* 64 lower-case hex digits */
};

struct s3_sigv4_key {
	const char *access_key;
	const char *secret_key;
	const char *region;
	const char *service;              /* "s3" */
};

/* "YYYYMMDDTHHMMSSZ" for t (UTC) into out (S3_AMZ_DATE_LEN + 1 bytes). */
void s3_sigv4_amz_date(long long t, char out[S3_AMZ_DATE_LEN + 1]);

/* The canonical request (heap string for the caller to free), or NULL on allocation failure. */
char *s3_sigv4_canonical_request(const struct s3_sigv4_request *r);

/* The string to sign for a canonical request. Heap string, NULL on allocation failure. */
char *s3_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			      const char *canonical_request);

/* The derived signing key: HMAC chain over date (YYYYMMDD), region, service, "aws4_request".
 * -EINVAL for a secret longer than S3_SECRET_MAX. */
int s3_sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
			 const char *service, uint8_t out[32]);

/* The full Authorization header value:
 *   AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=...
 * amz_date must equal the x-amz-date header signed in r. Heap string, or NULL on allocation failure
 * or a malformed amz_date / payload hash. */
char *s3_sigv4_authorization(const struct s3_sigv4_request *r, const struct s3_sigv4_key *k,
			     const char *amz_date);

/* Lower-case hex SHA-256 of len bytes into out (S3_SHA256_HEX_LEN + 1 bytes). */
void s3_sha256_hex(const void *data, size_t len, char out[S3_SHA256_HEX_LEN + 1]);

#endif
