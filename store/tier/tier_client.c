/* tier_client.c - what every part of the S3 tier shares: the client for a tier's bucket (URI,
 * credentials, retries), object keys under the prefix, logging, clocks and the upload bandwidth limit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_impl.h"

int64_t tier_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void tier_logf(struct tier *t, enum s3_log_level level, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!t->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->log(t->log_ctx, level, msg);
}

static int tier_vkey(const char *prefix, char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t off = 0;
	int n;

	if (prefix[0]) {
		n = snprintf(buf, size, "%s/", prefix);
		if (n < 0 || (size_t)n >= size)
			return -ENAMETOOLONG;
		off = (size_t)n;
	}
	n = vsnprintf(buf + off, size - off, fmt, ap);
	return n < 0 || (size_t)n >= size - off ? -ENAMETOOLONG : 0;
}

int tier_key(const struct tier *t, char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tier_vkey(t->prefix, buf, size, fmt, ap);
	va_end(ap);
	return rc;
}

int tier_gc_key(const char *prefix, char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tier_vkey(prefix, buf, size, fmt, ap);
	va_end(ap);
	return rc;
}

void tier_throttle(struct tier *t, uint64_t len)
{
	int64_t start, now;
	struct timespec ts;

	if (t->bandwidth == 0)
		return;
	pthread_mutex_lock(&t->lock);
	now = tier_now_ns();
	start = t->bw_next_ns > now ? t->bw_next_ns : now;
	t->bw_next_ns = start + (int64_t)((double)len * 1e9 / (double)t->bandwidth);
	pthread_mutex_unlock(&t->lock);
	/* Sleep in slices so that closing the tier is not held up by a long wait. */
	while ((now = tier_now_ns()) < start && !atomic_load(&t->stopping)) {
		int64_t d = start - now < 100000000 ? start - now : 100000000;
		ts.tv_sec = 0;
		ts.tv_nsec = d;
		nanosleep(&ts, NULL);
	}
}

void tier_s3_log(void *ctx, enum s3_log_level level, const char *msg)
{
	struct tier *t = ctx;

	/* Retries (warnings) are routine during an outage; the uploader reports the outage once itself.
	 * Where credentials came from is news (info); the line per request is for whoever asked for debug. */
	if (level != S3_LOG_WARN)
		tier_logf(t, level, "%s", msg);
}

/* The client's source of fresh credentials: the same chain as at start (environment, pecfs's
 * credentials file, web identity, the profile, instance metadata; s3_creds_chain.c), asked again
 * before temporary ones expire or when the server refuses them. ctx: the file's path or NULL. */
static int tier_creds_reload(void *ctx, struct s3_credentials *out)
{
	struct s3_chain chain = { .credentials_file = ctx };
	char err[512];

	return s3_chain_credentials(&chain, out, err, sizeof(err));
}

int tier_client_new(const struct tier_options *opt, unsigned max_connections,
		    void (*log)(void *ctx, enum s3_log_level level, const char *msg), void *log_ctx,
		    struct s3_client **out, char bucket[S3_BUCKET_MAX], char prefix[TIER_PREFIX_MAX], char *err,
		    size_t errsz)
{
	struct s3_credentials creds = { 0 };
	struct s3_client_config cc = { 0 };
	struct s3_chain chain = { .credentials_file = opt->credentials_file };
	char cerr[700] = "";
	int rc;

	if (!opt->uri || s3_uri_parse(opt->uri, bucket, prefix, TIER_PREFIX_MAX) < 0) {
		snprintf(err, errsz, "s3: '%.200s' is not s3://BUCKET[/PREFIX] with a valid bucket name",
			 opt->uri ? opt->uri : "");
		return -EINVAL;
	}
	rc = s3_chain_credentials(&chain, &creds, cerr, sizeof(cerr));
	if (rc < 0) {
		snprintf(err, errsz, "S3 credentials%s%s: %s", chain.source[0] ? " from " : "", chain.source, cerr);
		return -EINVAL;
	}
	/* Settings pecfs was not given come from the AWS environment and profile, as for any AWS tool. */
	cc.endpoint = opt->endpoint ? opt->endpoint : chain.endpoint_url[0] ? chain.endpoint_url : NULL;
	cc.region = opt->region ? opt->region : chain.region[0] ? chain.region : NULL;
	cc.bucket = bucket;
	cc.addressing = opt->addressing;
	cc.ca_file = opt->ca_file ? opt->ca_file : chain.ca_bundle[0] ? chain.ca_bundle : NULL;
	cc.creds = &creds;
	cc.max_connections = max_connections;
	cc.log = log;
	cc.log_ctx = log_ctx;
	cc.refresh_creds = tier_creds_reload;
	cc.refresh_ctx = (void *)opt->credentials_file;  /* the settings outlive every client */
	/* Few attempts per call by default: the uploader retries whole versions with its own backoff
	 * forever, and a short call keeps unmount and status changes prompt during an outage. Readers
	 * without a retry of their own ask for more (opt->max_attempts). */
	cc.max_attempts = opt->max_attempts ? opt->max_attempts : 4;
	cc.retry_max_ms = 4000;
	rc = s3_client_new(&cc, out, err, errsz);
	s3_creds_clear(&creds);
	if (rc == 0 && log) {
		char line[256];
		snprintf(line, sizeof(line), "S3 credentials from %s", chain.source);
		log(log_ctx, S3_LOG_INFO, line);
	}
	return rc;
}

/* idle re-publish at most this often */

int64_t tier_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
