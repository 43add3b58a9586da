/* tier_impl.h - the state behind struct tier and the helpers shared by tier*.c (private).
 *
 * One uploader thread picks pending versions in seal order and, for each, runs upload_threads
 * short-lived workers over the version's distinct chunks. tier.lock protects the status fields;
 * the rest is set at open and read-only afterwards.
 */
#ifndef PECFS_TIER_IMPL_H
#define PECFS_TIER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "s3_manifest.h"
#include "tier.h"

#define TIER_FETCH_SLOTS 64

struct tier {
	struct store *st;
	struct meta *meta;
	struct s3_client *client;
	char bucket[S3_BUCKET_MAX];
	char prefix[TIER_PREFIX_MAX];   /* without trailing '/', may be "" */
	char uri[TIER_PREFIX_MAX];
	char node_id[TIER_NODE_ID_MAX];
	unsigned threads;
	uint64_t bandwidth;
	uint64_t cache_size;
	double cache_min_free;
	struct tier_lru *lru;           /* last reads, for eviction (tier_cache.c), own lock */
	int64_t evict_after_ns;         /* uploader thread only: next eviction pass while idle */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;

	pthread_t uploader;
	atomic_bool stopping;

	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t wake;            /* tier_close */
	struct tier_status status;
	uint64_t cur_run, cur_ino;      /* the version being uploaded, 0 when none */
	uint64_t cur_bytes;             /* its chunk bytes known in S3 so far */
	int64_t bw_next_ns;             /* bandwidth limit: when the next transfer may start */
	int64_t rate_t_ns;              /* rate sampling */
	uint64_t rate_bytes;
	struct digest fetching[TIER_FETCH_SLOTS];  /* read-through fetches in flight, one per chunk */
	unsigned nfetching;
	pthread_cond_t fetched;         /* a fetch finished */
};

/* "%s/%s" of prefix and rest, or rest alone when prefix is "". -ENAMETOOLONG. */
int tier_key(const struct tier *t, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void tier_logf(struct tier *t, enum s3_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t tier_now_ns(void);

/* Waits until len more bytes may be sent under the bandwidth limit (returns early when stopping). */
void tier_throttle(struct tier *t, uint64_t len);

/* ---- persistent records (tier_record.c; keys in FORMAT.md section 3) ---- */
struct tier_upload_record {
	uint64_t uploaded_bytes;  /* chunk bytes of the version in S3 at commit */
	uint64_t chunks;
	int64_t committed_ns;
};
int tier_record_get(struct meta *m, uint64_t run, uint64_t ino, struct tier_upload_record *out); /* -ENOENT */
int tier_record_put(struct meta *m, uint64_t run, uint64_t ino, const struct tier_upload_record *r);
bool tier_chunk_is_remote(struct meta *m, const struct digest *d);
int tier_chunk_mark_remote(struct meta *m, const struct digest *d);
/* The same two records as part of a larger batch (import). */
void tier_batch_mark_remote(struct meta_batch *b, const struct digest *d);
void tier_batch_put_record(struct meta_batch *b, uint64_t run, uint64_t ino, const struct tier_upload_record *r);

/* ---- building a version's manifest from the metadata (tier_walk.c) ---- */
int tier_walk_version(struct tier *t, const struct meta_version *v, struct s3_manifest *out);

/* ---- the local cache (tier_cache.c) ---- */
int tier_lru_new(struct tier_lru **out);
void tier_lru_free(struct tier_lru *l);
/* Removes uploaded chunk files, least recently read first, until the local bytes fit cache_size and
 * the free ratio is at least cache_min_free. Called by the uploader thread between versions. */
void tier_cache_evict(struct tier *t);

/* ---- the uploader thread (tier_upload.c) ---- */
void *tier_upload_main(void *arg);

#endif
