/* s3_client_impl.h - the S3 client's insides, shared by s3_client.c (configuration, handle pool),
 * s3_request.c (signing, the retry loop, error messages), s3_object.c, s3_multipart.c and s3_bucket.c.
 * Not for use outside store/s3/.
 */
#ifndef PECFS_S3_CLIENT_IMPL_H
#define PECFS_S3_CLIENT_IMPL_H
#ifndef PECFS_S3_INTERNAL
#error "s3_client_impl.h is private to store/s3/: include s3_client.h"
#endif

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>

#include "s3_buf.h"
#include "s3_client.h"
#include "s3_sigv4.h"

#define S3_XML_MAX (32u << 20)   /* largest XML answer accepted (a listing page is ~300 KiB) */

struct s3_client {
	struct s3_endpoint ep;
	bool path_style;
	char *bucket;
	char *region;
	char *ca_file;                  /* NULL: system CAs */
	unsigned max_connections, connect_timeout_ms, low_speed_time_s, low_speed_bytes;
	unsigned max_attempts, retry_base_ms, retry_max_ms;
	long clock_offset_s;
	char host_port[S3_HOST_MAX + 16];  /* the endpoint as messages name it */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;

	pthread_mutex_t creds_lock;
	struct s3_credentials creds;    /* protected by creds_lock */
	uint64_t creds_gen;             /* protected by creds_lock: bumped by every change of creds */
	int (*refresh_creds)(void *ctx, struct s3_credentials *out);
	void *refresh_ctx;
	pthread_mutex_t refresh_lock;   /* one refresh at a time */
	int64_t refresh_ahead_ns;       /* refresh_lock: when a renewal ahead of expiry was last tried */

	CURLSH *share;                  /* DNS cache and TLS sessions, shared by all handles */
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;       /* signalled when a handle comes back */
	CURL **idle;                    /* protected by pool_lock: handles not in use */
	unsigned nidle, nhandles;       /* protected by pool_lock */

	atomic_uint_fast64_t requests, retries, failures, bytes_sent, bytes_received, connects;
	atomic_uint_fast64_t m_requests[S3_M_METHODS][S3_O_OUTCOMES];
	atomic_uint_fast64_t m_latency[S3_M_METHODS][S3_LATENCY_BUCKETS];  /* per bucket, not cumulative */
	atomic_uint_fast64_t m_latency_us[S3_M_METHODS];                   /* sum, microseconds */
};

/* Asks refresh_creds for new credentials unless another thread replaced them since generation gen
 * was signed with: true when the client has credentials newer than gen afterwards. */
bool s3_client_refresh_credentials(struct s3_client *c, uint64_t gen);

/* One logical request; s3_request sends it (again on retry) and fills the response part. */
struct s3_req {
	const char *method;                   /* GET PUT POST DELETE HEAD */
	const char *key;                      /* NULL: the bucket itself */
	const struct s3_param *query;
	size_t nquery;
	const struct s3_header *headers;      /* extra headers, all signed (range, if-none-match, ...) */
	size_t nheaders;
	const void *body;                     /* request body (may be NULL with body_len 0) */
	size_t body_len;
	const char *payload_hash;             /* hex SHA-256 of body; NULL: computed */
	void *dst;                            /* 2xx body goes here when not NULL (cap dst_cap)... */
	size_t dst_cap;
	const struct s3_span *spans;          /* ...or, when not NULL, across these (dst_cap: their total) */
	size_t nspans;
	size_t resp_max;                      /* ...else into resp, up to this many bytes (0: S3_XML_MAX) */
	bool error_in_200;                    /* a 200 may carry an <Error> document (CompleteMultipartUpload):
						 treated like that error, retried when it is retryable */

	/* response, reset before each attempt */
	long status;
	size_t dst_len;
	size_t span, span_off;                /* with spans: where the next body byte goes */
	struct s3_buf resp;                   /* the body when not into dst, and every error body */
	char etag[S3_ETAG_MAX];               /* ETag header, quotes kept; "" when none */
	int64_t content_length;               /* Content-Length header; -1 when none */
	bool overflow;                        /* the 2xx body did not fit in dst (or resp_max) */
};

/* Sends r, retrying as the header describes. 0 for a 2xx answer (the caller still checks bodies
 * such as CompleteMultipartUpload's), else -errno with res filled. r->resp is the caller's to free
 * (s3_buf_free) either way. */
int s3_request(struct s3_client *c, struct s3_req *r, struct s3_result *res);

/* Sets res->message (and the failure counter) for an error found by a caller after a 2xx. */
int s3_fail(struct s3_client *c, struct s3_result *res, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
