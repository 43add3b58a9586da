/* metrics.c - the Prometheus text format (version 0.0.4) of /.pec/metrics and of the metrics-listen
 * HTTP endpoint: the local tier (files, chunks, bytes written, linked and read, write buffers, seal
 * durations) and the S3 tier (upload queue, bytes and objects up and down, evictions, read-ahead hits,
 * requests by method and outcome with a latency histogram per method, retries, failures). Every
 * figure is a counter kept as things happen, or a gauge read from one: a scrape scans nothing.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "s3_client.h"
#include "tier.h"

/* Upper bounds of the seal-duration buckets, seconds; the last is +Inf. */
static const double seal_bounds_s[12] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, INFINITY };

void fs_metrics_seal(struct fs_ctx *ctx, double seconds, bool ok)
{
	int b = 0;

	if (!ok) {
		__atomic_add_fetch(&ctx->seal_failures, 1, __ATOMIC_RELAXED);
		return;
	}
	while (b < 11 && seconds > seal_bounds_s[b])
		b++;
	__atomic_add_fetch(&ctx->seal_hist[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ctx->seal_sum_us, (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

struct text {
	char *p;
	size_t len, cap;
	int err;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->err = -EINVAL;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t ncap = t->cap * 2 + (size_t)n;
		char *np = realloc(t->p, ncap);
		if (!np) {
			t->err = -ENOMEM;
			return;
		}
		t->p = np;
		t->cap = ncap;
	}
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct text *t, const char *name, const char *type, const char *help, double v)
{
	head(t, name, type, help);
	put(t, "%s %.17g\n", name, v);
}

/* "le" label of a bucket bound. */
static const char *le(double bound, char *buf, size_t size)
{
	if (isinf(bound))
		return "+Inf";
	snprintf(buf, size, "%g", bound);
	return buf;
}

static void local_metrics(struct text *t, struct fs_ctx *ctx, const struct pecgen_figures *f)
{
	char b[32];

	one(t, "pecfs_chunk_size_bytes", "gauge", "Chunk size of the data folder.", ctx->chunk_size);
	one(t, "pecfs_runs", "gauge", "Run directories.", (double)f->runs);
	one(t, "pecfs_versions", "gauge", "Version directories.", (double)f->versions);
	one(t, "pecfs_sealed_versions", "gauge", "Sealed (or damaged) versions.", (double)f->sealed_versions);
	one(t, "pecfs_logical_bytes", "gauge", "Sum of the sizes of all files.", (double)f->logical_bytes);
	one(t, "pecfs_written_bytes_total", "counter", "Bytes accepted by writes since mount.",
	    (double)f->ds.bytes_written);
	one(t, "pecfs_linked_bytes_total", "counter", "Bytes declared by reference writes since mount.",
	    (double)f->ds.bytes_linked);
	one(t, "pecfs_linked_chunks_total", "counter", "Chunks linked by reference writes since mount.",
	    (double)f->ds.chunks_linked);
	one(t, "pecfs_read_bytes_total", "counter", "Bytes returned by reads since mount.", (double)f->ds.bytes_read);
	one(t, "pecfs_stored_bytes", "gauge", "Payload bytes of the stored chunks.", (double)f->ss.stored_bytes);
	one(t, "pecfs_chunks", "gauge", "Stored chunks.", (double)f->ss.chunks);
	one(t, "pecfs_dedup_ratio", "gauge", "Logical bytes per stored byte.", f->dedup_ratio);
	one(t, "pecfs_dedup_hits_total", "counter", "Chunk puts that found the chunk already stored.",
	    (double)f->ss.dedup_hits);
	one(t, "pecfs_corrupt_reads_total", "counter", "Reads refused because a chunk failed its checksum.",
	    (double)f->ss.corrupt_reads);
	one(t, "pecfs_write_errors_total", "counter", "Failed background chunk stores.", (double)f->ds.write_errors);
	one(t, "pecfs_free_disk_bytes", "gauge", "Free space on the data disk.", (double)f->ss.free_disk_bytes);
	one(t, "pecfs_write_buffers_in_use", "gauge", "Chunk write buffers in use.", (double)f->ds.buffers_in_use);
	one(t, "pecfs_write_buffers", "gauge", "Chunk write buffers in the pool.", (double)f->ds.buffers_total);
	one(t, "pecfs_inodes_loaded", "gauge", "Inodes held in memory (the kernel's lookups, open files, requests).",
	    (double)f->inodes_loaded);

	head(t, "pecfs_seal_duration_seconds", "histogram", "Time to seal a version (flush, compose, sync).");
	uint64_t cum = 0;
	for (int i = 0; i < 12; i++) {
		cum += __atomic_load_n(&ctx->seal_hist[i], __ATOMIC_RELAXED);
		put(t, "pecfs_seal_duration_seconds_bucket{le=\"%s\"} %llu\n", le(seal_bounds_s[i], b, sizeof(b)),
		    (unsigned long long)cum);
	}
	put(t, "pecfs_seal_duration_seconds_sum %.6f\n",
	    (double)__atomic_load_n(&ctx->seal_sum_us, __ATOMIC_RELAXED) / 1e6);
	put(t, "pecfs_seal_duration_seconds_count %llu\n", (unsigned long long)cum);
	one(t, "pecfs_seal_failures_total", "counter", "Seals that failed (the version stayed open).",
	    (double)__atomic_load_n(&ctx->seal_failures, __ATOMIC_RELAXED));
}

static void s3_requests(struct text *t, const struct s3_client_metrics *m)
{
	char b[32];

	head(t, "pecfs_s3_requests_total", "counter", "HTTP requests sent to S3 (retries included) by method and outcome.");
	for (int i = 0; i < S3_M_METHODS; i++)
		for (int o = 0; o < S3_O_OUTCOMES; o++)
			put(t, "pecfs_s3_requests_total{method=\"%s\",status=\"%s\"} %llu\n", s3_metric_method_names[i],
			    s3_metric_outcome_names[o], (unsigned long long)m->requests[i][o]);
	head(t, "pecfs_s3_request_duration_seconds", "histogram", "Time of one S3 HTTP request, by method.");
	for (int i = 0; i < S3_M_METHODS; i++) {
		for (int k = 0; k < S3_LATENCY_BUCKETS; k++)
			put(t, "pecfs_s3_request_duration_seconds_bucket{method=\"%s\",le=\"%s\"} %llu\n",
			    s3_metric_method_names[i], le(s3_latency_bounds_s[k], b, sizeof(b)),
			    (unsigned long long)m->latency_le[i][k]);
		put(t, "pecfs_s3_request_duration_seconds_sum{method=\"%s\"} %.6f\n", s3_metric_method_names[i],
		    m->latency_sum_s[i]);
		put(t, "pecfs_s3_request_duration_seconds_count{method=\"%s\"} %llu\n", s3_metric_method_names[i],
		    (unsigned long long)m->latency_count[i]);
	}
}

static void tier_metrics(struct text *t, struct tier *tier)
{
	struct tier_status s;
	struct s3_client_stats cs;
	struct s3_client_metrics m;

	if (tier_get_status(tier, &s) < 0 || tier_get_request_metrics(tier, &cs, &m) < 0)
		return;
	one(t, "pecfs_s3_retrying", "gauge", "1 while the uploader retries after a failure.", s.state == TIER_RETRYING);
	one(t, "pecfs_s3_versions_pending", "gauge", "Sealed versions not yet committed in S3 (the upload queue).",
	    (double)s.versions_pending);
	one(t, "pecfs_s3_bytes_pending", "gauge", "Stored bytes of pending versions not yet in S3.",
	    (double)s.bytes_pending);
	one(t, "pecfs_s3_versions_awaiting_nodes", "gauge", "Versions whose COMMIT waits for other nodes' parts.",
	    (double)s.versions_awaiting_nodes);
	one(t, "pecfs_s3_versions_failing", "gauge", "Pending versions whose last upload attempt failed.",
	    (double)s.versions_failing);
	one(t, "pecfs_s3_versions_uploaded_total", "counter", "Versions committed by this node since mount.",
	    (double)s.versions_uploaded);
	one(t, "pecfs_s3_uploaded_bytes_total", "counter", "Chunk bytes uploaded since mount.",
	    (double)s.bytes_uploaded);
	one(t, "pecfs_s3_uploaded_chunks_total", "counter", "Chunks uploaded since mount, in packs or on their own.",
	    (double)s.chunks_uploaded);
	one(t, "pecfs_s3_uploaded_packs_total", "counter", "Pack objects (several chunks in one) uploaded since mount.",
	    (double)s.packs_uploaded);
	one(t, "pecfs_s3_skipped_chunks_total", "counter", "Chunks found in the bucket already (not sent).",
	    (double)s.chunks_skipped);
	one(t, "pecfs_s3_upload_failures_total", "counter", "Failed upload attempts since mount.", (double)s.failures);
	one(t, "pecfs_s3_fetched_bytes_total", "counter", "Chunk bytes read through from S3 since mount.",
	    (double)s.fetched_bytes);
	one(t, "pecfs_s3_fetched_chunks_total", "counter", "Chunks read through from S3 since mount.",
	    (double)s.fetched_chunks);
	one(t, "pecfs_s3_fetch_corrupt_total", "counter", "Fetched chunks refused for a digest mismatch.",
	    (double)s.fetch_corrupt);
	one(t, "pecfs_s3_prefetched_chunks_total", "counter", "Chunks fetched ahead of a sequential reader.",
	    (double)s.prefetched_chunks);
	one(t, "pecfs_s3_prefetch_hits_total", "counter", "Prefetched chunks a read then used (cache hits).",
	    (double)s.prefetch_hits);
	one(t, "pecfs_s3_evicted_chunks_total", "counter", "Uploaded chunk files removed from local disk.",
	    (double)s.evicted_chunks);
	one(t, "pecfs_s3_evicted_bytes_total", "counter", "Bytes of uploaded chunk files removed from local disk.",
	    (double)s.evicted_bytes);
	one(t, "pecfs_s3_local_chunk_bytes", "gauge", "Chunk file bytes on local disk at the last eviction pass.",
	    (double)s.local_bytes);
	one(t, "pecfs_s3_retries_total", "counter", "S3 requests that were retries.", (double)cs.retries);
	one(t, "pecfs_s3_errors_total", "counter", "S3 calls that failed after their retries.", (double)cs.failures);
	one(t, "pecfs_s3_sent_bytes_total", "counter", "Request body bytes sent to S3.", (double)cs.bytes_sent);
	one(t, "pecfs_s3_received_bytes_total", "counter", "Response body bytes received from S3.",
	    (double)cs.bytes_received);
	one(t, "pecfs_s3_connections_total", "counter", "Connections opened to S3.", (double)cs.connects);
	s3_requests(t, &m);
}

int pecgen_metrics(struct fs_ctx *ctx, char **out, size_t *len)
{
	struct pecgen_figures f;
	struct text t = { .cap = 16384 };
	int rc = pecgen_gather(ctx, &f);

	if (rc < 0)
		return rc;
	if (!(t.p = malloc(t.cap)))
		return -ENOMEM;
	local_metrics(&t, ctx, &f);
	if (ctx->tier)
		tier_metrics(&t, ctx->tier);
	if (t.err) {
		free(t.p);
		return t.err;
	}
	*out = t.p;
	*len = t.len;
	return 0;
}
