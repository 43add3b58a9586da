/* s3_client.h - a small S3 client for the pecfs tier: objects (PUT, ranged GET, HEAD, DELETE,
 * conditional create), ListObjectsV2 with pagination, multipart upload with abort, bucket create
 * and check. libcurl + OpenSSL, SigV4 in headers with the payload's SHA-256 signed.
 *
 * Thread-safe: any number of threads may call one client at once; at most max_connections requests
 * run at a time (the others wait), each on a pooled curl handle that keeps its connection open, with
 * DNS and TLS sessions shared. Every call retries by itself, with exponential backoff and full jitter,
 * on 5xx, 429, RequestTimeout, timeouts and broken connections; never on other 4xx (wrong key, clock
 * skew, missing bucket), whose message says what to fix. Messages and logs never hold a secret.
 *
 * Errors (negative errno, details in struct s3_result when given):
 *   -ENOENT  no such key (or upload)        -ENXIO   no such bucket
 *   -EACCES  refused credentials, clock skew, or no permission (403)
 *   -EEXIST  conditional create found the key (412), or the bucket exists (create)
 *   -EINVAL  request refused as malformed (400: part too small, bad part list)
 *   -ERANGE  range starts past the end of the object (416)
 *   -EBADMSG the server saw a body that does not match its signed SHA-256
 *   -EFBIG   the object is larger than the caller's buffer
 *   -EPROTO  TLS certificate not trusted, or an answer that is not S3
 *   -EIO     still failing after every retry (5xx, network), or another HTTP error
 *   -ENOMEM
 */
#ifndef PECFS_S3_CLIENT_H
#define PECFS_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3_creds.h"
#include "s3_url.h"

#define S3_ETAG_MAX 128
#define S3_PART_MIN (5u << 20)   /* S3's smallest part except the last */
#define S3_PARTS_MAX 10000

struct s3_client;

enum s3_log_level { S3_LOG_ERROR = 0, S3_LOG_WARN, S3_LOG_INFO, S3_LOG_DEBUG };

struct s3_client_config {
	const char *endpoint;          /* "https://host[:port]" or "http://..."; NULL: AWS's for region */
	const char *region;            /* signing region; NULL: "us-east-1" */
	const char *bucket;            /* required */
	enum s3_addressing addressing; /* path-style or virtual-hosted; AUTO picks (s3_url.h) */
	const char *ca_file;           /* PEM file of CAs to trust instead of the system's (private
					  endpoints); peers are always verified */
	const struct s3_credentials *creds;  /* required; copied */
	unsigned max_connections;      /* most requests at once (= connections kept); 0: 16 */
	unsigned connect_timeout_ms;   /* 0: 10000 */
	unsigned low_speed_time_s;     /* a transfer below low_speed_bytes per second for this long is cut
					  and retried (also a server that never answers); 0: 30 */
	unsigned low_speed_bytes;      /* 0: 1024 */
	unsigned max_attempts;         /* tries per call, the first included; 0: 10 */
	unsigned retry_base_ms;        /* backoff before retry n is random in [0, min(max, base * 2^n)]; 0: 100 */
	unsigned retry_max_ms;         /* 0: 20000 */
	long clock_offset_s;           /* added to this machine's clock when signing: for a host whose clock
					  cannot be fixed (and tests of skew); normally 0 */
	/* One line per event, from the calling thread: S3_LOG_WARN for each retry, S3_LOG_DEBUG for each
	   failure returned (reporting those is the caller's job); NULL: silent. */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;
	/* Where fresh credentials come from (e.g. the credentials file again, rewritten by a rotation
	   agent): called, one caller at a time, when the server says the ones in use expired
	   (ExpiredToken, InvalidToken, TokenRefreshRequired, or any 403 while a session token is in use)
	   and within S3_CREDS_REFRESH_AHEAD_S of their known expiry. The request is then sent again once
	   with them. Fills out and returns 0, or a negative errno. NULL: credentials never change. */
	int (*refresh_creds)(void *ctx, struct s3_credentials *out);
	void *refresh_ctx;
};

#define S3_CREDS_REFRESH_AHEAD_S 300

/* What happened to one call. Optional (NULL) in every call. */
struct s3_result {
	long http_status;     /* of the last response; 0 when none came */
	char code[64];        /* S3 error code of the last response ("NoSuchKey"), "" when none */
	char message[384];    /* when the call failed: one line saying what and why */
	unsigned attempts;    /* requests sent, retries included */
};

/* Creates a client; no request is sent (s3_bucket_check does). -EINVAL with a reason in err for a bad
 * endpoint, region, bucket name, missing credentials or an unreadable CA file; -ENOMEM. */
int s3_client_new(const struct s3_client_config *cfg, struct s3_client **out, char *err, size_t errsz);
void s3_client_free(struct s3_client *c);

/* Replaces the credentials (fixed keys, a renewed session token); later requests use them. */
int s3_client_set_credentials(struct s3_client *c, const struct s3_credentials *creds);

struct s3_client_stats {
	uint64_t requests;        /* HTTP requests sent, retries included */
	uint64_t retries;         /* requests that were retries */
	uint64_t failures;        /* calls that returned an error */
	uint64_t bytes_sent;      /* request bodies */
	uint64_t bytes_received;  /* response bodies */
	uint64_t connects;        /* connections opened (the rest reused an open one) */
};
void s3_client_get_stats(struct s3_client *c, struct s3_client_stats *out);

/* Every HTTP request sent (retries included), by method and outcome, with a latency histogram per
 * method: counted as they happen, for Prometheus. */
enum s3_metric_method { S3_M_GET, S3_M_PUT, S3_M_HEAD, S3_M_DELETE, S3_M_POST, S3_M_METHODS };
enum s3_metric_outcome { S3_O_2XX, S3_O_3XX, S3_O_4XX, S3_O_5XX, S3_O_TRANSPORT, S3_O_OUTCOMES };
#define S3_LATENCY_BUCKETS 12   /* upper bounds in s3_latency_bounds_s, the last one +Inf */
extern const double s3_latency_bounds_s[S3_LATENCY_BUCKETS];
extern const char *const s3_metric_method_names[S3_M_METHODS];      /* "GET", ... */
extern const char *const s3_metric_outcome_names[S3_O_OUTCOMES];    /* "2xx", ..., "error" */
struct s3_client_metrics {
	uint64_t requests[S3_M_METHODS][S3_O_OUTCOMES];
	uint64_t latency_le[S3_M_METHODS][S3_LATENCY_BUCKETS];  /* cumulative, as Prometheus wants */
	double latency_sum_s[S3_M_METHODS];
	uint64_t latency_count[S3_M_METHODS];
};
/* Adds this client's figures into out (so several clients can be summed). */
void s3_client_add_metrics(struct s3_client *c, struct s3_client_metrics *out);

/* "s3://bucket/key" for messages, into buf. */
const char *s3_client_describe(struct s3_client *c, const char *key, char *buf, size_t size);

/* ---- objects ---- */

#define S3_PUT_IF_ABSENT 1u   /* If-None-Match: *  -> -EEXIST when the key exists */

/* Stores len bytes at key. sha256_hex: the payload's SHA-256 (64 lower-case hex) when the caller
 * knows it (a chunk's digest), or NULL to have it computed. With S3_PUT_IF_ABSENT the key is created
 * only if absent; note that when an attempt's answer was lost and the retry finds the key, -EEXIST may
 * mean this very call created it (res->attempts > 1): compare contents when that matters. */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t len, const char *sha256_hex,
	   unsigned flags, struct s3_result *res);

/* Reads up to len bytes at offset off into dst; *got is how many came (fewer at the end of the
 * object). -ERANGE when off is at or past the end of a non-empty object. */
int s3_get(struct s3_client *c, const char *key, uint64_t off, size_t len, void *dst, size_t *got,
	   struct s3_result *res);

/* A piece of memory that receives the next len bytes of a body. */
struct s3_span {
	void *dst;
	size_t len;
};

/* s3_get of the sum of the spans' lengths, the body laid out across the spans in order: a ranged GET
 * of objects stored back to back (members of a pack) that puts each where it is to be used. */
int s3_get_spans(struct s3_client *c, const char *key, uint64_t off, const struct s3_span *spans, size_t nspans,
		 size_t *got, struct s3_result *res);

/* Reads a whole object of at most max_len bytes into a heap buffer (*data, NUL-terminated for
 * convenience, *len bytes). -EFBIG when larger. */
int s3_get_all(struct s3_client *c, const char *key, size_t max_len, void **data, size_t *len,
	       struct s3_result *res);

struct s3_object {
	const char *key;            /* the full key, or the prefix for a common prefix */
	uint64_t size;
	const char *etag;           /* quotes included, as S3 gives it; "" for a common prefix */
	const char *last_modified;  /* ISO 8601 as S3 gives it; "" for a common prefix */
	bool is_prefix;             /* a CommonPrefixes entry (listing with a delimiter) */
};

/* Size and ETag of an object (etag may be NULL). */
int s3_head(struct s3_client *c, const char *key, uint64_t *size, char etag[S3_ETAG_MAX], struct s3_result *res);

/* Deletes key; a key that does not exist is not an error (S3 semantics). */
int s3_delete(struct s3_client *c, const char *key, struct s3_result *res);

/* Called for each listed entry; the strings are valid during the call only. Non-zero stops the
 * listing, and s3_list returns that value. */
typedef int (*s3_list_fn)(void *ctx, const struct s3_object *o);

/* Lists keys under prefix ("" for all) in key order, following continuation tokens page by page
 * (page_size keys per request, 0: 1000). With a delimiter ("/"), keys below the next delimiter are
 * rolled into one is_prefix entry. */
int s3_list(struct s3_client *c, const char *prefix, const char *delimiter, unsigned page_size, s3_list_fn fn,
	    void *ctx, struct s3_result *res);

/* ---- multipart upload ---- */

struct s3_part {
	unsigned number;            /* 1..S3_PARTS_MAX */
	char etag[S3_ETAG_MAX];
};

/* Starts an upload; *upload_id is a heap string for the calls below. */
int s3_mpu_begin(struct s3_client *c, const char *key, char **upload_id, struct s3_result *res);

/* Uploads part number (1-based); etag receives the part's ETag for s3_mpu_complete. Parts other than
 * the last must be at least S3_PART_MIN bytes. sha256_hex as for s3_put. */
int s3_mpu_put_part(struct s3_client *c, const char *key, const char *upload_id, unsigned number,
		    const void *data, size_t len, const char *sha256_hex, char etag[S3_ETAG_MAX],
		    struct s3_result *res);

/* Joins the parts (in ascending number order) into the object. */
int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id, const struct s3_part *parts,
		    size_t nparts, struct s3_result *res);

/* Drops an upload and its parts. An upload that is already gone is not an error. */
int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id, struct s3_result *res);

typedef int (*s3_upload_fn)(void *ctx, const char *key, const char *upload_id);

/* Lists uploads in progress under prefix (to abort leftovers). Non-zero from fn stops and is returned. */
int s3_mpu_list(struct s3_client *c, const char *prefix, s3_upload_fn fn, void *ctx, struct s3_result *res);

/* Stores a large buffer as a multipart upload of part_size parts (at least S3_PART_MIN), sent by up
 * to `parallel` threads at once (0 or 1: one at a time). On any failure the upload is aborted, so
 * no parts are left behind, and the first error is returned. */
int s3_put_multipart(struct s3_client *c, const char *key, const void *data, size_t len, size_t part_size,
		     unsigned parallel, struct s3_result *res);

/* ---- the bucket ---- */

/* Creates the bucket (in the client's region). -EEXIST when it already exists. */
int s3_bucket_create(struct s3_client *c, struct s3_result *res);

/* Checks that the bucket exists and the credentials work (HEAD bucket): 0, -ENXIO, -EACCES, ... */
int s3_bucket_check(struct s3_client *c, struct s3_result *res);

#endif
