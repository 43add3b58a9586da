/* s3_request.c - one S3 request: sign (SigV4, fresh date on every attempt), send on a pooled curl
 * handle, classify the outcome, back off and retry, and turn a final failure into an errno and a
 * message that says what to fix. The only place that talks to libcurl.
 */
#include "s3_client_impl.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "s3_xml.h"

/* ---- handle pool ---- */

static CURL *s3_handle_get(struct s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	while (!c->nidle && c->nhandles >= c->max_connections)
		pthread_cond_wait(&c->pool_cond, &c->pool_lock);
	if (c->nidle) {
		h = c->idle[--c->nidle];
		pthread_mutex_unlock(&c->pool_lock);
		return h;
	}
	c->nhandles++;
	pthread_mutex_unlock(&c->pool_lock);
	h = curl_easy_init();
	if (!h) {
		pthread_mutex_lock(&c->pool_lock);
		c->nhandles--;
		pthread_cond_signal(&c->pool_cond);
		pthread_mutex_unlock(&c->pool_lock);
	}
	return h;
}

static void s3_handle_put(struct s3_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	assert(c->nidle < c->max_connections);
	c->idle[c->nidle++] = h;
	pthread_cond_signal(&c->pool_cond);
	pthread_mutex_unlock(&c->pool_lock);
}

/* ---- curl callbacks ---- */

struct s3_attempt {
	struct s3_req *r;
	CURL *h;
	size_t sent;   /* request body bytes handed to curl */
};

static size_t s3_on_read(char *buf, size_t size, size_t n, void *ud)
{
	struct s3_attempt *a = ud;
	size_t left = a->r->body_len - a->sent, len = size * n;

	if (len > left)
		len = left;
	if (len)
		memcpy(buf, (const char *)a->r->body + a->sent, len);
	a->sent += len;
	return len;
}

static int s3_on_seek(void *ud, curl_off_t off, int origin)
{
	struct s3_attempt *a = ud;

	if (origin != SEEK_SET || off < 0 || (size_t)off > a->r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	a->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t s3_on_body(char *p, size_t size, size_t n, void *ud)
{
	struct s3_attempt *a = ud;
	struct s3_req *r = a->r;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
	if ((r->dst || r->spans) && status >= 200 && status < 300) {
		if (len > r->dst_cap - r->dst_len) {
			r->overflow = true;
			return 0;          /* curl stops with CURLE_WRITE_ERROR */
		}
		if (!r->spans) {
			memcpy((char *)r->dst + r->dst_len, p, len);
			r->dst_len += len;
			return len;
		}
		for (size_t left = len; left > 0;) {
			if (r->span_off == r->spans[r->span].len) {
				if (r->span + 1 == r->nspans) {  /* not expected: dst_cap is their total */
					r->overflow = true;
					return 0;
				}
				r->span++;
				r->span_off = 0;
			}
			const struct s3_span *s = &r->spans[r->span];
			size_t k = s->len - r->span_off < left ? s->len - r->span_off : left;
			memcpy((char *)s->dst + r->span_off, p, k);
			p += k;
			left -= k;
			r->span_off += k;
		}
		r->dst_len += len;
		return len;
	}
	if (status >= 200 && status < 300 && len > r->resp_max - r->resp.len) {
		r->overflow = true;
		return 0;
	}
	s3_buf_append(&r->resp, p, len);
	return s3_buf_error(&r->resp) ? 0 : len;
}

static size_t s3_on_header(char *p, size_t size, size_t n, void *ud)
{
	struct s3_attempt *a = ud;
	size_t len = size * n, vlen;
	const char *v;

	if (len > 5 && !strncmp(p, "HTTP/", 5)) {       /* a new response (after 100 Continue) */
		a->r->etag[0] = '\0';
		a->r->content_length = -1;
		return len;
	}
	if (len > 15 && !strncasecmp(p, "content-length:", 15)) {
		char num[24];
		size_t n = len - 15 < sizeof(num) - 1 ? len - 15 : sizeof(num) - 1;

		memcpy(num, p + 15, n);
		num[n] = '\0';
		a->r->content_length = strtoll(num, NULL, 10);
		return len;
	}
	if (len < 5 || strncasecmp(p, "etag:", 5))
		return len;
	v = p + 5;
	vlen = len - 5;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen < S3_ETAG_MAX) {
		memcpy(a->r->etag, v, vlen);
		a->r->etag[vlen] = '\0';
	}
	return len;
}

/* ---- signing ---- */

#define S3_MAX_HEADERS 16

/* Appends "name: value" to *list; false (list unchanged) on allocation failure. */
static bool s3_slist_add(struct curl_slist **list, struct s3_buf *line, const char *name, const char *value)
{
	struct curl_slist *next;

	s3_buf_reset(line);
	s3_buf_printf(line, "%s: %s", name, value);
	next = s3_buf_error(line) ? NULL : curl_slist_append(*list, s3_buf_str(line));
	if (next)
		*list = next;
	return next != NULL;
}

/* Builds the header list of one attempt, signed now; *gen gets the generation of the credentials
 * it was signed with. NULL on allocation failure. */
static struct curl_slist *s3_signed_headers(struct s3_client *c, const struct s3_req *r,
					    const struct s3_target *t, const char *payload_hash, uint64_t *gen)
{
	struct s3_header h[S3_MAX_HEADERS];
	struct curl_slist *list = NULL;
	char date[S3_AMZ_DATE_LEN + 1], *auth;
	struct s3_buf line = S3_BUF_INIT;
	size_t n = 0, i;
	bool ok;

	assert(r->nheaders + 4 <= S3_MAX_HEADERS);
	s3_sigv4_amz_date((long long)time(NULL) + c->clock_offset_s, date);
	h[n++] = (struct s3_header){ "Host", t->host };
	h[n++] = (struct s3_header){ "x-amz-content-sha256", payload_hash };
	h[n++] = (struct s3_header){ "x-amz-date", date };
	for (i = 0; i < r->nheaders; i++)
		h[n++] = r->headers[i];

	pthread_mutex_lock(&c->creds_lock);
	*gen = c->creds_gen;
	if (c->creds.session_token && *c->creds.session_token)
		h[n++] = (struct s3_header){ "x-amz-security-token", c->creds.session_token };
	struct s3_sigv4_request sr = { r->method, t->canonical_uri, r->query, r->nquery, h, n, payload_hash };
	struct s3_sigv4_key k = { c->creds.access_key, c->creds.secret_key, c->region, "s3" };
	auth = s3_sigv4_authorization(&sr, &k, date);
	/* The token is copied into the list while the lock keeps it alive. */
	ok = auth != NULL;
	for (i = 0; i < n && ok; i++)
		ok = s3_slist_add(&list, &line, h[i].name, h[i].value);
	pthread_mutex_unlock(&c->creds_lock);
	ok = ok && s3_slist_add(&list, &line, "Authorization", auth);
	/* No "Expect: 100-continue" round trip: bodies are in memory and retried whole. */
	if (ok) {
		struct curl_slist *next = curl_slist_append(list, "Expect:");

		ok = next != NULL;
		list = next ? next : list;
	}
	if (line.p)
		explicit_bzero(line.p, line.cap);
	s3_buf_free(&line);
	free(auth);
	if (!ok) {
		curl_slist_free_all(list);
		return NULL;
	}
	return list;
}

/* ---- one attempt ---- */

static void s3_setup_handle(struct s3_client *c, struct s3_attempt *a, const struct s3_target *t,
			    struct curl_slist *headers, char *errbuf)
{
	CURL *h = a->h;
	struct s3_req *r = a->r;

	curl_easy_reset(h);     /* options only: the handle keeps its open connection */
	curl_easy_setopt(h, CURLOPT_URL, t->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);           /* keys may hold "..": send them as signed */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);             /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pecfs-s3/1");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)c->low_speed_bytes);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
		/* Upload mode for both (POST via CUSTOMREQUEST): curl adds no Content-Type of its own. */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, a);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, s3_on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, a);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		if (!strcmp(r->method, "POST"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
	} else if (strcmp(r->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
}

static bool s3_curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
}

static bool s3_http_retryable(long status, const char *code)
{
	if (status >= 500 || status == 429)
		return true;
	/* S3 answers 400 RequestTimeout when the body stalled: the next try may well get through. */
	return !strcmp(code, "RequestTimeout") || !strcmp(code, "SlowDown") || !strcmp(code, "InternalError");
}

/* The status an error code normally comes with, for an error document that came in a 200. */
static long s3_status_for_code(const char *code)
{
	if (!strcmp(code, "NoSuchUpload") || !strcmp(code, "NoSuchKey"))
		return 404;
	if (!strcmp(code, "InvalidPart") || !strcmp(code, "InvalidPartOrder") || !strcmp(code, "EntityTooSmall") ||
	    !strcmp(code, "MalformedXML") || !strcmp(code, "InvalidArgument"))
		return 400;
	if (!strcmp(code, "AccessDenied"))
		return 403;
	return 500;   /* InternalError, SlowDown and the unknown: worth another try */
}

/* Full jitter: uniform in [0, min(max, base * 2^retry)] milliseconds. */
static unsigned s3_backoff_ms(const struct s3_client *c, unsigned retry)
{
	uint64_t cap = (uint64_t)c->retry_base_ms << (retry < 20 ? retry : 20);
	uint32_t rnd = 0;

	if (cap > c->retry_max_ms)
		cap = c->retry_max_ms;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)time(NULL) * 2654435761u ^ (uint32_t)(uintptr_t)&rnd;
	return (unsigned)(rnd % (cap + 1));
}

static void s3_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void s3_log(struct s3_client *c, enum s3_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void s3_log(struct s3_client *c, enum s3_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!c->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->log(c->log_ctx, level, msg);
}

/* ---- messages ---- */

/* Replaces any copy of a secret in msg by "***": a server could echo what it was sent. */
static void s3_scrub(struct s3_client *c, char *msg)
{
	const char *secrets[2];
	size_t n;

	pthread_mutex_lock(&c->creds_lock);
	secrets[0] = c->creds.secret_key;
	secrets[1] = c->creds.session_token;
	for (int i = 0; i < 2; i++) {
		char *hit;

		if (!secrets[i] || (n = strlen(secrets[i])) < 4)
			continue;
		while ((hit = strstr(msg, secrets[i])) != NULL) {
			memcpy(hit, "***", 3);
			memmove(hit + 3, hit + n, strlen(hit + n) + 1);
		}
	}
	pthread_mutex_unlock(&c->creds_lock);
}

int s3_fail(struct s3_client *c, struct s3_result *res, int err, const char *fmt, ...)
{
	char msg[sizeof(((struct s3_result *)0)->message)];
	va_list ap;

	atomic_fetch_add(&c->failures, 1);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s3_scrub(c, msg);
	/* Debug only: a failure is the caller's to report (a missing key is often expected). */
	s3_log(c, S3_LOG_DEBUG, "%s", msg);
	if (res)
		memcpy(res->message, msg, sizeof(msg));
	return err;
}

/* The errno and message for a final HTTP error. */
static int s3_http_error(struct s3_client *c, const struct s3_req *r, const struct s3_xml_error *xe,
			 struct s3_result *res)
{
	char what[300], ak[64];
	const char *code = xe->code;
	long st = r->status;

	s3_client_describe(c, r->key, what, sizeof(what));
	pthread_mutex_lock(&c->creds_lock);
	snprintf(ak, sizeof(ak), "%s", c->creds.access_key);
	pthread_mutex_unlock(&c->creds_lock);

	if (!strcmp(code, "InvalidAccessKeyId"))
		return s3_fail(c, res, -EACCES, "S3 does not know access key id %s (InvalidAccessKeyId): check "
			       "AWS_ACCESS_KEY_ID or the credentials file", ak);
	if (!strcmp(code, "SignatureDoesNotMatch"))
		return s3_fail(c, res, -EACCES, "S3 rejected the request signature (SignatureDoesNotMatch): the "
			       "secret key is wrong for access key id %s", ak);
	if (!strcmp(code, "RequestTimeTooSkewed"))
		return s3_fail(c, res, -EACCES, "this machine's clock differs from the S3 server's by too much "
			       "(RequestTimeTooSkewed): set the clock right (NTP) and retry");
	if (!strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken"))
		return s3_fail(c, res, -EACCES, "the S3 session token is expired or invalid (%s): renew "
			       "AWS_SESSION_TOKEN", code);
	if (!strcmp(code, "NoSuchBucket") || (st == 404 && !r->key && !*code))
		return s3_fail(c, res, -ENXIO, "bucket %s does not exist at %s (NoSuchBucket)", c->bucket,
			       c->host_port);
	if (st == 403)
		return s3_fail(c, res, -EACCES, "access to %s denied (%s): the credentials of %s lack permission, "
			       "or are wrong", what, *code ? code : "HTTP 403", ak);
	if (st == 404)
		return s3_fail(c, res, -ENOENT, "%s not found (%s)", what, *code ? code : "HTTP 404");
	if (st == 412)
		return s3_fail(c, res, -EEXIST, "%s already exists (conditional create refused, 412)", what);
	if (st == 409 && (!strcmp(code, "BucketAlreadyOwnedByYou") || !strcmp(code, "BucketAlreadyExists")))
		return s3_fail(c, res, -EEXIST, "bucket %s already exists (%s)", c->bucket, code);
	if (st == 416)
		return s3_fail(c, res, -ERANGE, "%s: range starts past the end of the object (416)", what);
	if (!strcmp(code, "BadDigest") || !strcmp(code, "XAmzContentSHA256Mismatch"))
		return s3_fail(c, res, -EBADMSG, "%s: the server received a body that does not match its SHA-256 "
			       "(%s)", what, code);
	if (st == 400)
		return s3_fail(c, res, -EINVAL, "S3 %s %s refused (%s): %s", r->method, what, *code ? code : "HTTP 400",
			       xe->message);
	return s3_fail(c, res, -EIO, "S3 %s %s failed: HTTP %ld %s%s%s", r->method, what, st, code,
		       *xe->message ? ": " : "", xe->message);
}

static int s3_transport_error(struct s3_client *c, const struct s3_req *r, CURLcode cc, const char *errbuf,
			      struct s3_result *res)
{
	char what[300];
	const char *detail = *errbuf ? errbuf : curl_easy_strerror(cc);

	s3_client_describe(c, r->key, what, sizeof(what));
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return s3_fail(c, res, -EPROTO, "TLS certificate of S3 endpoint %s is not trusted (%s): give the "
			       "endpoint's CA file for a private endpoint", c->host_port, detail);
	case CURLE_WRITE_ERROR:
		if (r->overflow)
			return s3_fail(c, res, -EFBIG, "%s is larger than the %zu bytes expected", what,
				       r->dst || r->spans ? r->dst_cap : r->resp_max);
		return s3_fail(c, res, -ENOMEM, "%s: out of memory reading the answer", what);
	case CURLE_OUT_OF_MEMORY:
		return s3_fail(c, res, -ENOMEM, "%s: out of memory", what);
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return s3_fail(c, res, -EIO, "cannot reach S3 endpoint %s (%s)%s", c->host_port, detail,
			       res && res->attempts > 1 ? ", gave up after retries" : "");
	default:
		if (s3_curl_retryable(cc))
			return s3_fail(c, res, -EIO, "S3 %s %s: %s%s", r->method, what, detail,
				       res && res->attempts > 1 ? ", gave up after retries" : "");
		return s3_fail(c, res, -EPROTO, "S3 %s %s: %s", r->method, what, detail);
	}
}

/* ---- credentials that expire ---- */

bool s3_client_refresh_credentials(struct s3_client *c, uint64_t gen)
{
	struct s3_credentials fresh = { 0 };
	bool newer;
	int rc;

	if (!c->refresh_creds)
		return false;
	pthread_mutex_lock(&c->refresh_lock);
	pthread_mutex_lock(&c->creds_lock);
	newer = c->creds_gen != gen;  /* another request refreshed them while we waited */
	pthread_mutex_unlock(&c->creds_lock);
	if (!newer) {
		rc = c->refresh_creds(c->refresh_ctx, &fresh);
		if (rc == 0)
			rc = s3_client_set_credentials(c, &fresh);
		s3_creds_clear(&fresh);
		newer = rc == 0;
		s3_log(c, rc == 0 ? S3_LOG_INFO : S3_LOG_WARN, "S3 credentials %s%s", rc == 0 ? "renewed" :
		       "could not be renewed: ", rc == 0 ? "" : strerror(-rc));
	}
	pthread_mutex_unlock(&c->refresh_lock);
	return newer;
}

/* True for an answer that says the credentials in use are no longer good; with a session token in use
 * any 403 may be that (some servers answer AccessDenied for an expired token). */
static bool s3_creds_expired_answer(struct s3_client *c, long status, const char *code)
{
	bool token;

	if (!strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken") || !strcmp(code, "TokenRefreshRequired") ||
	    !strcmp(code, "ExpiredTokenException"))
		return true;
	if (status != 403)
		return false;
	pthread_mutex_lock(&c->creds_lock);
	token = c->creds.session_token && *c->creds.session_token;
	pthread_mutex_unlock(&c->creds_lock);
	return token;
}

/* Renews the credentials ahead of their known expiry. */
static void s3_creds_renew_ahead(struct s3_client *c)
{
	int64_t expires;
	uint64_t gen;

	pthread_mutex_lock(&c->creds_lock);
	expires = c->creds.expires_ns;
	gen = c->creds_gen;
	pthread_mutex_unlock(&c->creds_lock);
	if (expires <= 0 || ((int64_t)time(NULL) + c->clock_offset_s + S3_CREDS_REFRESH_AHEAD_S) * 1000000000 < expires)
		return;
	/* The source may not have new ones yet: ask it at most every 10 s, not once per request. */
	int64_t now = (int64_t)time(NULL) * 1000000000;
	pthread_mutex_lock(&c->refresh_lock);
	bool due = now - c->refresh_ahead_ns >= 10ll * 1000000000;
	if (due)
		c->refresh_ahead_ns = now;
	pthread_mutex_unlock(&c->refresh_lock);
	if (due)
		s3_client_refresh_credentials(c, gen);
}

/* ---- the retry loop ---- */

/* One attempt into the client's metrics, and one debug line. */
static void s3_count_attempt(struct s3_client *c, const struct s3_req *r, CURLcode cc, double secs,
			     unsigned attempt)
{
	int m = 0, o, b = 0;

	while (m < S3_M_METHODS - 1 && strcmp(s3_metric_method_names[m], r->method) != 0)
		m++;
	if (cc != CURLE_OK || r->status < 200 || r->status >= 600)
		o = S3_O_TRANSPORT;
	else
		o = (int)(r->status / 100) - 2;
	while (b < S3_LATENCY_BUCKETS - 1 && secs > s3_latency_bounds_s[b])
		b++;
	atomic_fetch_add(&c->m_requests[m][o], 1);
	atomic_fetch_add(&c->m_latency[m][b], 1);
	atomic_fetch_add(&c->m_latency_us[m], (uint64_t)(secs * 1e6));
	if (cc == CURLE_OK)
		s3_log(c, S3_LOG_DEBUG, "S3 %s %s/%s: HTTP %ld in %.1f ms (attempt %u)", r->method, c->bucket,
		       r->key ? r->key : "", r->status, secs * 1e3, attempt);
	else
		s3_log(c, S3_LOG_DEBUG, "S3 %s %s/%s: %s after %.1f ms (attempt %u)", r->method, c->bucket,
		       r->key ? r->key : "", curl_easy_strerror(cc), secs * 1e3, attempt);
}

static void s3_reset_response(struct s3_req *r)
{
	r->status = 0;
	r->dst_len = 0;
	r->span = r->span_off = 0;
	r->overflow = false;
	r->etag[0] = '\0';
	r->content_length = -1;
	s3_buf_reset(&r->resp);
}

int s3_request(struct s3_client *c, struct s3_req *r, struct s3_result *res)
{
	struct s3_result local;
	struct s3_target t;
	struct s3_xml_error xe;
	char hash[S3_SHA256_HEX_LEN + 1], errbuf[CURL_ERROR_SIZE];
	const char *payload_hash = r->payload_hash;
	CURLcode cc = CURLE_OK;
	unsigned attempt, max_attempts = c->max_attempts;
	bool renewed = false;
	uint64_t gen = 0;
	int rc;

	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (!r->resp_max)
		r->resp_max = S3_XML_MAX;
	/* Error documents must fit even when the caller expects a tiny body. */
	r->resp.limit = r->resp_max > S3_XML_MAX ? r->resp_max : S3_XML_MAX;
	if (!payload_hash) {
		s3_sha256_hex(r->body ? r->body : "", r->body_len, hash);
		payload_hash = hash;
	}
	rc = s3_target_build(&c->ep, c->bucket, c->path_style, r->key, r->query, r->nquery, &t);
	if (rc)
		return s3_fail(c, res, rc, "cannot build the S3 request for key '%s'", r->key ? r->key : "");

	for (attempt = 1;; attempt++) {
		struct s3_attempt a = { r, NULL, 0 };
		struct curl_slist *headers;
		bool retry;

		s3_reset_response(r);
		memset(&xe, 0, sizeof(xe));
		errbuf[0] = '\0';
		s3_creds_renew_ahead(c);
		a.h = s3_handle_get(c);
		headers = a.h ? s3_signed_headers(c, r, &t, payload_hash, &gen) : NULL;
		if (!headers) {
			if (a.h)
				s3_handle_put(c, a.h);
			rc = s3_fail(c, res, -ENOMEM, "out of memory preparing an S3 request");
			break;
		}
		s3_setup_handle(c, &a, &t, headers, errbuf);
		res->attempts = attempt;
		atomic_fetch_add(&c->requests, 1);
		if (attempt > 1)
			atomic_fetch_add(&c->retries, 1);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		cc = curl_easy_perform(a.h);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		curl_easy_getinfo(a.h, CURLINFO_RESPONSE_CODE, &r->status);
		s3_count_attempt(c, r, cc, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
				 attempt);
		long connects = 0;
		curl_easy_getinfo(a.h, CURLINFO_NUM_CONNECTS, &connects);
		atomic_fetch_add(&c->connects, (uint64_t)connects);
		curl_easy_setopt(a.h, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(headers);
		s3_handle_put(c, a.h);
		atomic_fetch_add(&c->bytes_sent, a.sent);
		atomic_fetch_add(&c->bytes_received, r->dst_len + r->resp.len);
		res->http_status = cc == CURLE_OK ? r->status : 0;

		if (cc == CURLE_OK && r->status >= 200 && r->status < 300) {
			if (!(r->error_in_200 && s3_xml_parse_error(r->resp.p, r->resp.len, &xe) == 0)) {
				s3_target_free(&t);
				return 0;
			}
			r->status = s3_status_for_code(xe.code);   /* an error document in a 200 */
		} else if (cc == CURLE_OK && r->resp.len) {
			s3_xml_parse_error(r->resp.p, r->resp.len, &xe);
		}
		snprintf(res->code, sizeof(res->code), "%s", xe.code);
		/* Expired credentials: renewed, the request goes again at once (one extra try, once a call). */
		if (cc == CURLE_OK && !renewed && s3_creds_expired_answer(c, r->status, xe.code) &&
		    s3_client_refresh_credentials(c, gen)) {
			renewed = true;
			max_attempts++;
			continue;
		}
		retry = cc == CURLE_OK ? s3_http_retryable(r->status, xe.code) : s3_curl_retryable(cc);
		if (!retry || attempt >= max_attempts)
			break;
		unsigned wait = s3_backoff_ms(c, attempt - 1);
		if (cc == CURLE_OK)
			s3_log(c, S3_LOG_WARN, "S3 %s %s/%s: HTTP %ld %s, attempt %u of %u, retrying in %u ms", r->method,
			       c->bucket, r->key ? r->key : "", r->status, xe.code, attempt, max_attempts, wait);
		else
			s3_log(c, S3_LOG_WARN, "S3 %s %s/%s: %s, attempt %u of %u, retrying in %u ms", r->method,
			       c->bucket, r->key ? r->key : "", *errbuf ? errbuf : curl_easy_strerror(cc), attempt,
			       max_attempts, wait);
		s3_sleep_ms(wait);
	}
	if (!rc)
		rc = cc != CURLE_OK ? s3_transport_error(c, r, cc, errbuf, res) : s3_http_error(c, r, &xe, res);
	s3_target_free(&t);
	return rc;
}
