/* s3_creds.h - S3 credentials: the standard AWS_* environment variables or a credentials file that
 * only its owner may read (AWS's INI format: [profile] sections, aws_access_key_id = ...).
 *
 * Secrets never leave this struct except into the SigV4 HMAC: error messages name files, lines and
 * variables, never values. s3_creds_clear wipes the memory. Not thread-safe per struct; the S3 client
 * keeps its own copy under a lock.
 */
#ifndef PECFS_S3_CREDS_H
#define PECFS_S3_CREDS_H

#include <stddef.h>
#include <stdint.h>

struct s3_credentials {
	char *access_key;     /* AWS_ACCESS_KEY_ID: an identifier, may appear in messages */
	char *secret_key;     /* AWS_SECRET_ACCESS_KEY: secret */
	char *session_token;  /* AWS_SESSION_TOKEN: secret; NULL when none */
	int64_t expires_ns;   /* when temporary credentials expire (AWS_CREDENTIAL_EXPIRATION, UTC);
				 0 when unknown */
};

/* From AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN and the ISO 8601 time
 * AWS_CREDENTIAL_EXPIRATION when set, as `aws configure export-credentials` writes them). -ENOENT
 * when either of the first two is unset or empty; -EINVAL for an expiration that does not parse;
 * -ENOMEM. */
int s3_creds_from_env(struct s3_credentials *out);

/* From a credentials file, section [profile] (or [profile NAME]; keys before any section count as
 * [default]); profile NULL means "default". Refused with -EPERM when the file may be read or written
 * by group or others, or belongs to another user than the caller or root. -ENOENT when the profile
 * has no key pair, -EINVAL for a malformed line, -errno when unreadable. err gets one line, e.g.
 * "FILE: readable by group or others (mode 0644); run chmod 600 FILE". */
int s3_creds_from_file(const char *path, const char *profile, struct s3_credentials *out, char *err,
		       size_t errsz);

/* The environment first; the file (when not NULL) if the environment has no key pair. */
int s3_creds_load(const char *path, const char *profile, struct s3_credentials *out, char *err, size_t errsz);

/* "2026-12-05T23:59:59Z" (fractions of a second and a numeric zone allowed) -> ns since the epoch;
 * -1 when it does not parse or lies outside 1970-01-02..2262 (what ns since the epoch can hold). */
int64_t s3_creds_parse_time(const char *iso8601);

/* Deep copy. -ENOMEM. */
int s3_creds_copy(struct s3_credentials *dst, const struct s3_credentials *src);

/* Wipes and frees the strings; the struct is empty afterwards. */
void s3_creds_clear(struct s3_credentials *c);

/* ---- the AWS credential chain (s3_creds_chain.c): every source every AWS tool reads ---- */

struct s3_chain {
	const char *credentials_file;  /* in: pecfs's s3-credentials-file, tried after the environment */
	const char *profile;           /* in: NULL for $AWS_PROFILE, else "default" */
	char source[96];               /* out: where the credentials came from, for messages */
	char region[64];               /* out: AWS_REGION, AWS_DEFAULT_REGION, the profile's region; "" */
	char endpoint_url[512];        /* out: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url */
	char ca_bundle[4096];          /* out: AWS_CA_BUNDLE, the profile's ca_bundle */
};

/* Fills the region, endpoint and CA bundle of c (each "" when no source names one). */
void s3_chain_settings(struct s3_chain *c);

/* Credentials from the first source that has them (see s3_creds_chain.c for the order), and
 * s3_chain_settings. -ENOENT when no source has any, another negative errno when the source that
 * should have them failed (a refused role, an unreadable file); err says which and why. */
int s3_chain_credentials(struct s3_chain *c, struct s3_credentials *out, char *err, size_t errsz);

#endif
