/* tier.c - attaching the S3 tier to a store: client set-up, the uploader thread's life, status,
 * logging once per state change, and the bandwidth limit shared by all upload workers.
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

static void tier_s3_log(void *ctx, enum s3_log_level level, const char *msg)
{
	struct tier *t = ctx;

	/* Retries are routine during an outage; the uploader reports the outage once itself. */
	if (level <= S3_LOG_ERROR)
		tier_logf(t, level, "%s", msg);
}

int tier_client_new(const struct tier_options *opt, unsigned max_connections,
		    void (*log)(void *ctx, enum s3_log_level level, const char *msg), void *log_ctx,
		    struct s3_client **out, char bucket[S3_BUCKET_MAX], char prefix[TIER_PREFIX_MAX], char *err,
		    size_t errsz)
{
	struct s3_credentials creds = { 0 };
	struct s3_client_config cc = { 0 };
	char cerr[256] = "";
	int rc;

	if (!opt->uri || s3_uri_parse(opt->uri, bucket, prefix, TIER_PREFIX_MAX) < 0) {
		snprintf(err, errsz, "s3: '%.200s' is not s3://BUCKET[/PREFIX] with a valid bucket name",
			 opt->uri ? opt->uri : "");
		return -EINVAL;
	}
	rc = s3_creds_load(opt->credentials_file, NULL, &creds, cerr, sizeof(cerr));
	if (rc < 0) {
		if (cerr[0])
			snprintf(err, errsz, "S3 credentials: %s", cerr);
		else
			snprintf(err, errsz, "S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
				 "s3-credentials-file");
		return -EINVAL;
	}
	cc.endpoint = opt->endpoint;
	cc.region = opt->region;
	cc.bucket = bucket;
	cc.addressing = opt->addressing;
	cc.ca_file = opt->ca_file;
	cc.creds = &creds;
	cc.max_connections = max_connections;
	cc.log = log;
	cc.log_ctx = log_ctx;
	/* Few attempts per call by default: the uploader retries whole versions with its own backoff
	 * forever, and a short call keeps unmount and status changes prompt during an outage. Readers
	 * without a retry of their own ask for more (opt->max_attempts). */
	cc.max_attempts = opt->max_attempts ? opt->max_attempts : 4;
	cc.retry_max_ms = 4000;
	rc = s3_client_new(&cc, out, err, errsz);
	s3_creds_clear(&creds);
	return rc;
}

/* What tier_open allocated; the threads are stopped (or never started). */
static void tier_free(struct tier *t)
{
	s3_client_free(t->client);
	tier_lru_free(t->lru);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->fetched);
	free(t);
}

/* The store_remote callbacks: the store reads through these once the tier is attached. */
static int remote_read_held(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	return tier_prefetch_read(ctx, d, off, dst, len);
}

static int remote_read_through(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	return tier_read_through(ctx, d, off, dst, len);
}

static void remote_touch(void *ctx, const struct digest *d)
{
	tier_cache_touch(ctx, d);
}

int tier_open(struct store *st, const struct tier_options *opt, struct tier **out, char *err, size_t errsz)
{
	struct meta_super sb;
	struct tier *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->st = st;
	t->meta = store_meta(st);
	t->threads = opt->upload_threads ? opt->upload_threads : 8;
	t->nodes = opt->nodes ? opt->nodes : 1;
	t->bandwidth = opt->upload_bandwidth;
	t->cache_size = opt->cache_size;
	t->cache_min_free = opt->cache_min_free;
	t->log = opt->log;
	t->log_ctx = opt->log_ctx;
	if (opt->persist)
		t->persist = *opt->persist;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	pthread_cond_init(&t->fetched, NULL);
	if (t->cache_size || t->cache_min_free > 0) {
		rc = tier_lru_new(&t->lru);
		if (rc < 0)
			goto out_err;
	}
	/* Connections: the upload workers, the uploader's own requests, demand reads and read-ahead. */
	rc = tier_client_new(opt, t->threads + 2 + (opt->prefetch < 32 ? (opt->prefetch + 1) / 2 : 16), tier_s3_log, t,
			     &t->client, t->bucket, t->prefix, err, errsz);
	if (rc < 0)
		goto out_err;
	snprintf(t->uri, sizeof(t->uri), "%s", opt->uri);
	if (opt->node_id && opt->node_id[0]) {
		if (strlen(opt->node_id) >= sizeof(t->node_id) || strpbrk(opt->node_id, "/\\ ") != NULL) {
			snprintf(err, errsz, "node-id: '%.80s' must be under 64 characters without '/' or spaces",
				 opt->node_id);
			rc = -EINVAL;
			goto out_err;
		}
		snprintf(t->node_id, sizeof(t->node_id), "%s", opt->node_id);
	} else {
		rc = meta_get_super(t->meta, &sb);
		if (rc < 0) {
			snprintf(err, errsz, "cannot read the data folder's node id: %s", strerror(-rc));
			goto out_err;
		}
		for (int i = 0; i < 16; i++)
			snprintf(t->node_id + 2 * i, 3, "%02x", sb.node_id[i]);
	}
	snprintf(t->status.uri, sizeof(t->status.uri), "%s", t->uri);
	snprintf(t->status.node_id, sizeof(t->status.node_id), "%s", t->node_id);
	t->rate_t_ns = tier_now_ns();
	rc = tier_prefetch_start(t, opt->prefetch);
	if (rc < 0) {
		snprintf(err, errsz, "cannot start the read-ahead threads: %s", strerror(-rc));
		goto out_err;
	}
	t->remote = (struct store_remote){ .read_held = remote_read_held, .read_through = remote_read_through,
					   .touch = remote_touch, .ctx = t };
	if (store_attach_remote(st, &t->remote) < 0) {
		tier_prefetch_stop(t);
		snprintf(err, errsz, "the store already has an S3 tier");
		rc = -EEXIST;
		goto out_err;
	}
	rc = -pthread_create(&t->uploader, NULL, tier_upload_main, t);
	if (rc < 0) {
		store_detach_remote(st);
		tier_prefetch_stop(t);
		snprintf(err, errsz, "cannot start the uploader: %s", strerror(-rc));
		goto out_err;
	}
	*out = t;
	return 0;

out_err:
	tier_free(t);
	return rc;
}

void tier_close(struct tier *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stopping, true);
	pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->uploader, NULL);
	tier_prefetch_stop(t);
	if (t->persist.free)
		t->persist.free(t->persist.ctx);  /* the only user of the hook was the uploader */
	store_detach_remote(t->st);
	tier_free(t);
}

int tier_get_status(struct tier *t, struct tier_status *out)
{
	int64_t now;

	if (!t)
		return -ENODEV;
	pthread_mutex_lock(&t->lock);
	now = tier_now_ns();
	/* The rate over the time since the previous look (at least a second, at most a minute). */
	if (now - t->rate_t_ns >= 1000000000) {
		double dt = (double)(now - t->rate_t_ns) / 1e9;
		t->status.rate_bytes_per_s = (double)(t->status.bytes_uploaded - t->rate_bytes) / dt;
		t->rate_bytes = t->status.bytes_uploaded;
		t->rate_t_ns = now;
	}
	*out = t->status;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int tier_version_status(struct tier *t, uint64_t run_ino, uint64_t version_ino, uint64_t *uploaded_bytes,
			bool *uploaded)
{
	struct meta_upload r;

	if (!t)
		return -ENODEV;
	*uploaded = false;
	*uploaded_bytes = 0;
	if (meta_get_upload(t->meta, run_ino, version_ino, &r) == 0) {
		*uploaded = r.committed_ns != 0;  /* 0: our part is up, COMMIT waits for other nodes */
		*uploaded_bytes = r.uploaded_bytes;
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	if (t->cur_run == run_ino && t->cur_ino == version_ino)
		*uploaded_bytes = t->cur_bytes;
	pthread_mutex_unlock(&t->lock);
	return 0;
}
