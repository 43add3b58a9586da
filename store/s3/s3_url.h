/* s3_url.h - where an S3 request goes: endpoints, s3:// URIs, bucket names, path-style and
 * virtual-hosted addressing, and the encoded path and query that both the URL and the SigV4
 * canonical request use (so what is signed is byte for byte what is sent).
 *
 * Keys are encoded once, byte by byte: everything but A-Z a-z 0-9 - . _ ~ and '/' becomes %XX, as S3
 * requires (no double encoding, no dot-segment removal). All functions are pure and thread-safe.
 */
#ifndef PECFS_S3_URL_H
#define PECFS_S3_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "s3_buf.h"

#define S3_HOST_MAX 256
#define S3_BUCKET_MAX 64      /* 3-63 characters, plus the NUL */

/* One query parameter, raw (not encoded). A parameter without a value ("?uploads") has value ""
 * and is written "uploads=", as SigV4 wants. */
struct s3_param {
	const char *name;
	const char *value;
};

enum s3_addressing {
	S3_ADDRESSING_AUTO = 0,  /* virtual-hosted on AWS endpoints when the bucket name allows, else path */
	S3_ADDRESSING_PATH,      /* scheme://endpoint/bucket/key */
	S3_ADDRESSING_VIRTUAL,   /* scheme://bucket.endpoint/key */
};

struct s3_endpoint {
	bool https;
	char host[S3_HOST_MAX];  /* as written in the URL: a name, an IPv4 address or [IPv6] */
	unsigned port;           /* 0: the scheme's default (443 or 80) */
};

/* Parses "http://host[:port]" or "https://host[:port]" (a trailing '/' is allowed, any other path,
 * query, user or password is refused). -EINVAL with nothing written for anything else. */
int s3_endpoint_parse(const char *url, struct s3_endpoint *out);

/* The AWS endpoint of a region: https://s3.REGION.amazonaws.com. -EINVAL for a bad region name. */
int s3_endpoint_for_region(const char *region, struct s3_endpoint *out);

/* True for an endpoint of AWS itself (a host ending in .amazonaws.com). */
bool s3_endpoint_is_aws(const struct s3_endpoint *ep);

/* Splits "s3://BUCKET[/PREFIX]" into the bucket and the prefix (without leading or trailing '/',
 * possibly empty). -EINVAL for another scheme, a bad bucket name or a prefix that does not fit. */
int s3_uri_parse(const char *uri, char bucket[S3_BUCKET_MAX], char *prefix, size_t prefix_size);

/* A bucket name S3-compatible servers accept in a path: 3-63 of a-z 0-9 . - _ and upper case,
 * starting and ending with a letter or digit. */
bool s3_bucket_name_valid(const char *bucket);

/* Whether a bucket can be addressed as a host name: lower case letters, digits and '-' in
 * dot-separated labels, and, over https, no dot at all (the wildcard certificate covers one label). */
bool s3_bucket_virtual_ok(const char *bucket, bool https);

/* Resolves S3_ADDRESSING_AUTO for this endpoint and bucket; true means path-style. */
bool s3_use_path_style(enum s3_addressing a, const struct s3_endpoint *ep, const char *bucket);

/* Appends the canonical query: parameters encoded, sorted by name then value, joined by '&'. */
void s3_query_canonical(const struct s3_param *q, size_t n, struct s3_buf *out);

/* One request's destination. Strings are owned by the target (s3_target_free). */
struct s3_target {
	char *url;            /* scheme://host[:port]/encoded-path[?canonical-query] */
	char *host;           /* the Host header: host[:port] (port only when not the default) */
	char *canonical_uri;  /* the encoded path, exactly as in url */
	char *query;          /* the canonical query, exactly as in url ("" when none) */
};

/* key may be NULL or "" for requests on the bucket itself. -ENOMEM, or -EINVAL for an invalid
 * bucket name. */
int s3_target_build(const struct s3_endpoint *ep, const char *bucket, bool path_style, const char *key,
		    const struct s3_param *q, size_t nq, struct s3_target *out);
void s3_target_free(struct s3_target *t);

#endif
