/* s3_client.c - the S3 client object: configuration, credentials, the pool of curl handles (one per
 * concurrent request, each keeping its connection alive) and the curl share for DNS and TLS sessions.
 * Requests themselves are in s3_request.c; operations in s3_object.c, s3_multipart.c, s3_bucket.c.
 */
#include "s3_client_impl.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t s3_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s3_curl_init_rc;

/* curl_global_init is not thread-safe in every libcurl; run it once, and never clean it up, since
 * other clients (or libraries) may still use curl. */
static void s3_curl_global_init(void)
{
	s3_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void s3_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct s3_client *c = ud;

	(void)h;
	(void)access;
	pthread_mutex_lock(&c->share_locks[data]);
}

static void s3_share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	struct s3_client *c = ud;

	(void)h;
	pthread_mutex_unlock(&c->share_locks[data]);
}

static unsigned s3_or(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

static int s3_client_check_config(const struct s3_client_config *cfg, struct s3_endpoint *ep, char *err,
				  size_t errsz)
{
	const char *region = cfg->region ? cfg->region : "us-east-1";

	if (!cfg->bucket || !s3_bucket_name_valid(cfg->bucket)) {
		snprintf(err, errsz, "invalid S3 bucket name '%s' (3-63 letters, digits, '.', '-', '_')",
			 cfg->bucket ? cfg->bucket : "");
		return -EINVAL;
	}
	if (cfg->endpoint ? s3_endpoint_parse(cfg->endpoint, ep) : s3_endpoint_for_region(region, ep)) {
		snprintf(err, errsz, "invalid S3 endpoint '%s' (want http[s]://host[:port])",
			 cfg->endpoint ? cfg->endpoint : region);
		return -EINVAL;
	}
	if (!*region || strlen(region) > 64 || strpbrk(region, "/ \t\n")) {
		snprintf(err, errsz, "invalid S3 region '%s'", region);
		return -EINVAL;
	}
	if (!cfg->creds || !cfg->creds->access_key || !*cfg->creds->access_key || !cfg->creds->secret_key ||
	    !*cfg->creds->secret_key) {
		snprintf(err, errsz, "no S3 credentials (access key id and secret key)");
		return -EINVAL;
	}
	if (strlen(cfg->creds->secret_key) > S3_SECRET_MAX) {
		snprintf(err, errsz, "S3 secret key longer than %d characters", S3_SECRET_MAX);
		return -EINVAL;
	}
	if (cfg->addressing == S3_ADDRESSING_VIRTUAL && !s3_bucket_virtual_ok(cfg->bucket, ep->https)) {
		snprintf(err, errsz, "bucket '%s' cannot be addressed as a host name%s; use path-style addressing",
			 cfg->bucket, ep->https ? " over https" : "");
		return -EINVAL;
	}
	if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0) {
		snprintf(err, errsz, "CA file %s: %s", cfg->ca_file, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

int s3_client_new(const struct s3_client_config *cfg, struct s3_client **out, char *err, size_t errsz)
{
	struct s3_client *c;
	int rc, i;

	*out = NULL;
	pthread_once(&s3_curl_once, s3_curl_global_init);
	if (s3_curl_init_rc != CURLE_OK) {
		snprintf(err, errsz, "libcurl initialization failed: %s", curl_easy_strerror(s3_curl_init_rc));
		return -EIO;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = s3_client_check_config(cfg, &c->ep, err, errsz);
	if (rc) {
		free(c);
		return rc;
	}
	c->path_style = s3_use_path_style(cfg->addressing, &c->ep, cfg->bucket);
	c->bucket = strdup(cfg->bucket);
	c->region = strdup(cfg->region ? cfg->region : "us-east-1");
	c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	c->max_connections = s3_or(cfg->max_connections, 16);
	c->connect_timeout_ms = s3_or(cfg->connect_timeout_ms, 10000);
	c->low_speed_time_s = s3_or(cfg->low_speed_time_s, 30);
	c->low_speed_bytes = s3_or(cfg->low_speed_bytes, 1024);
	c->max_attempts = s3_or(cfg->max_attempts, 10);
	c->retry_base_ms = s3_or(cfg->retry_base_ms, 100);
	c->retry_max_ms = s3_or(cfg->retry_max_ms, 20000);
	c->clock_offset_s = cfg->clock_offset_s;
	if (c->ep.port)
		snprintf(c->host_port, sizeof(c->host_port), "%s:%u", c->ep.host, c->ep.port & 0xffffu);
	else
		snprintf(c->host_port, sizeof(c->host_port), "%s", c->ep.host);
	c->log = cfg->log;
	c->log_ctx = cfg->log_ctx;
	c->refresh_creds = cfg->refresh_creds;
	c->refresh_ctx = cfg->refresh_ctx;
	c->idle = calloc(c->max_connections, sizeof(*c->idle));
	c->share = curl_share_init();
	rc = s3_creds_copy(&c->creds, cfg->creds);
	if (rc || !c->bucket || !c->region || (cfg->ca_file && !c->ca_file) || !c->idle || !c->share) {
		s3_creds_clear(&c->creds);
		if (c->share)
			curl_share_cleanup(c->share);
		free(c->idle);
		free(c->bucket);
		free(c->region);
		free(c->ca_file);
		free(c);
		return -ENOMEM;
	}
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, s3_share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, s3_share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	pthread_mutex_init(&c->creds_lock, NULL);
	pthread_mutex_init(&c->refresh_lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_cond_init(&c->pool_cond, NULL);
	*out = c;
	return 0;
}

void s3_client_free(struct s3_client *c)
{
	int i;

	if (!c)
		return;
	/* Every request has returned its handle by now: the caller stops using the client first. */
	assert(c->nidle == c->nhandles);
	for (unsigned n = 0; n < c->nidle; n++)
		curl_easy_cleanup(c->idle[n]);
	curl_share_cleanup(c->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->creds_lock);
	pthread_mutex_destroy(&c->refresh_lock);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_cond_destroy(&c->pool_cond);
	s3_creds_clear(&c->creds);
	free(c->idle);
	free(c->bucket);
	free(c->region);
	free(c->ca_file);
	free(c);
}

int s3_client_set_credentials(struct s3_client *c, const struct s3_credentials *creds)
{
	struct s3_credentials copy, old;
	int rc;

	if (!creds->access_key || !*creds->access_key || !creds->secret_key || !*creds->secret_key ||
	    strlen(creds->secret_key) > S3_SECRET_MAX)
		return -EINVAL;
	rc = s3_creds_copy(&copy, creds);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->creds_lock);
	old = c->creds;
	c->creds = copy;
	c->creds_gen++;
	pthread_mutex_unlock(&c->creds_lock);
	s3_creds_clear(&old);
	return 0;
}

void s3_client_get_stats(struct s3_client *c, struct s3_client_stats *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
	out->failures = atomic_load(&c->failures);
	out->bytes_sent = atomic_load(&c->bytes_sent);
	out->bytes_received = atomic_load(&c->bytes_received);
	out->connects = atomic_load(&c->connects);
}

const double s3_latency_bounds_s[S3_LATENCY_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
							  5, 10, INFINITY };
const char *const s3_metric_method_names[S3_M_METHODS] = { "GET", "PUT", "HEAD", "DELETE", "POST" };
const char *const s3_metric_outcome_names[S3_O_OUTCOMES] = { "2xx", "3xx", "4xx", "5xx", "error" };

void s3_client_add_metrics(struct s3_client *c, struct s3_client_metrics *out)
{
	for (int m = 0; m < S3_M_METHODS; m++) {
		uint64_t cum = 0;
		for (int o = 0; o < S3_O_OUTCOMES; o++)
			out->requests[m][o] += atomic_load(&c->m_requests[m][o]);
		for (int b = 0; b < S3_LATENCY_BUCKETS; b++) {
			cum += atomic_load(&c->m_latency[m][b]);
			out->latency_le[m][b] += cum;
		}
		out->latency_count[m] += cum;
		out->latency_sum_s[m] += (double)atomic_load(&c->m_latency_us[m]) / 1e6;
	}
}

const char *s3_client_describe(struct s3_client *c, const char *key, char *buf, size_t size)
{
	snprintf(buf, size, "s3://%s/%s", c->bucket, key ? key : "");
	return buf;
}
