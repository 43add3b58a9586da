/* tier_impl.h - the state behind struct tier and the helpers shared by tier*.c (private).
 *
 * One uploader thread picks pending versions in seal order and, for each, runs upload_threads
 * short-lived workers over the version's distinct chunks. tier.lock protects the status fields;
 * the rest is set at open and read-only afterwards.
 */
#ifndef PECFS_TIER_IMPL_H
#define PECFS_TIER_IMPL_H
#ifndef PECFS_TIER_INTERNAL
#error "tier_impl.h is private to store/tier/: include tier.h"
#endif

#include <pthread.h>
#include <stdatomic.h>

#include "tier_manifest.h"
#include "tier.h"

#define TIER_FETCH_SLOTS 64

/* A version whose upload failed: it waits for its own retry time, so that one version that cannot go
 * up (a local chunk with EIO, a name too long) never holds up the versions sealed after it. */
struct tier_vfail {
	uint64_t run, ino;
	uint32_t attempts;
	int64_t next_ns;          /* tier_now_ns() of the next try */
	bool seen;                /* still pending at the last scan */
	char error[400];          /* "run/version: what failed" */
};

struct tier {
	struct store *st;
	struct store_remote remote;     /* attached to st while the tier is open: reads reach the bucket */
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
	struct tier_prefetch *prefetch; /* read-ahead queue and workers (tier_prefetch.c), own lock; NULL: off */
	int64_t evict_after_ns;         /* uploader thread only: next eviction pass while idle */
	unsigned nodes;                 /* node parts a version needs before COMMIT */
	/* The node state last published (uploader thread only, tier_gc.c). */
	bool published;
	uint64_t published_gen;
	uint8_t published_vhash[32];
	int64_t published_ns;
	int64_t commit_check_ns;        /* uploader thread only: next look for versions awaiting nodes */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;
	struct tier_persist_hook persist;  /* fn NULL: versions are uploaded as walked */

	pthread_mutex_t commit_lock;    /* protects the commit hook; held while it runs */
	void (*commit_fn)(void *arg, uint64_t run_ino, uint64_t version_ino);
	void *commit_arg;

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
	struct tier_vfail *vfail;       /* versions whose last upload failed, each retried on its own backoff */
	size_t nvfail;
	struct digest fetching[TIER_FETCH_SLOTS];  /* read-through and prefetch fetches in flight, one per chunk */
	unsigned nfetching;
	pthread_cond_t fetched;         /* a fetch finished */
};

/* ---- shared by every part of the tier (tier_client.c) ---- */
/* "%s/%s" of prefix and rest, or rest alone when prefix is "". -ENAMETOOLONG. */
int tier_key(const struct tier *t, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void tier_logf(struct tier *t, enum s3_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t tier_now_ns(void);   /* monotonic */
int64_t tier_wall_ns(void);  /* real time, comparable with the bucket's and other nodes' clocks */
/* "%s/%s" of prefix and rest, or rest alone when prefix is "" (tier_key without a tier). */
int tier_gc_key(const char *prefix, char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The client's log callback for a tier: errors and worse go to the tier's log (ctx: the tier). */
void tier_s3_log(void *ctx, enum s3_log_level level, const char *msg);

/* Waits until len more bytes may be sent under the bandwidth limit (returns early when stopping). */
void tier_throttle(struct tier *t, uint64_t len);

/* ---- reads of chunks that are not local (store_remote callbacks, see store.h) ---- */
/* Read-through (tier_prefetch.c): a chunk known to be in the bucket is fetched, verified, stored locally
 * and copied out. -ENOENT when it is not known remote, -EIO (and fetch_corrupt) for a corrupt object,
 * or the client's error. */
int tier_read_through(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len);
/* Serves a read of chunk d from the read-ahead buffers when it was fetched moments ago and is still
 * there (tier_prefetch.c): 0, or -ENOENT when it is not held. */
int tier_prefetch_read(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len);
/* Records a read of chunk d for least-recently-used eviction (cheap; a no-op without a cache limit). */
void tier_cache_touch(struct tier *t, const struct digest *d);

/* Runs the commit hook (tier_set_commit_hook) for a version that just became committed (tier.c). */
void tier_note_committed(struct tier *t, uint64_t run_ino, uint64_t version_ino);

/* ---- building a version's manifest from the metadata (tier_walk.c) ---- */
int tier_walk_version(struct tier *t, const struct meta_version *v, struct tier_manifest *out);
/* Runs the persist hook, if any, on a walked manifest (tier_persist.c). On failure m is freed and msg
 * says why, naming the version. */
int tier_persist_apply(struct tier *t, const struct meta_version *v, struct tier_manifest *m, char *msg,
		       size_t msgsz);

/* ---- the local cache (tier_cache.c) ---- */
int tier_lru_new(struct tier_lru **out);
void tier_lru_free(struct tier_lru *l);
/* Removes uploaded chunk files, least recently read first, until the local bytes fit cache_size and
 * the free ratio is at least cache_min_free. Called by the uploader thread between versions. */
void tier_cache_evict(struct tier *t);

/* ---- bucket garbage collection protocol (tier_gc.c, tier_gc_sweep.c) ---- */
#define TIER_GC_STALE_NS (15ll * 60 * 1000000000)  /* a collector silent this long has died */

struct tier_gc_epoch {
	uint64_t epoch;
	bool collecting;
	int64_t updated_ns;
	char node[TIER_NODE_ID_MAX];
};

/* One node's published state: the versions it keeps and its chunk index. */
struct tier_node_state {
	char node[TIER_NODE_ID_MAX];
	int64_t updated_ns;
	char **versions;       /* "run/version" */
	size_t n_versions;
	struct digest *chunks; /* sorted as published */
	size_t n_chunks;
};

/* Parses the text of gc/epoch (bucket content: duplicate keys, a negative epoch or a node name that
 * does not fit are refused). 0 or -EBADMSG. */
int tier_gc_epoch_decode(const char *text, size_t len, struct tier_gc_epoch *out);
/* An absent epoch object reads as epoch 0, not collecting. */
int tier_gc_epoch_get(struct s3_client *c, const char *prefix, struct tier_gc_epoch *out, struct s3_result *res);
int tier_gc_epoch_put(struct s3_client *c, const char *prefix, const struct tier_gc_epoch *ep, struct s3_result *res);
bool tier_gc_epoch_stale(const struct tier_gc_epoch *ep);
int tier_node_state_decode(const char *text, size_t len, struct tier_node_state *out, char *err, size_t errsz);
void tier_node_state_free(struct tier_node_state *s);
/* Writes nodes/<id>.json when the chunk index or the version list changed since the last time, when
 * forced, or when there are extra digests (those the node is about to name in a manifest, which a
 * persist selection may take from earlier uploads the local index no longer holds). Uploader
 * thread only. */
int tier_publish_node(struct tier *t, const struct digest *extra, size_t nextra, bool force, char *msg,
		      size_t msgsz);
/* tier_publish_node at most every few seconds, for an idle uploader; failures are logged. */
void tier_publish_idle(struct tier *t);
/* Before relying on objects already in the bucket (skipping uploads, evicting): publishes the node
 * state and reads the epoch into *epoch. -EAGAIN (reason in msg) while a collection runs. */
int tier_gc_prepare(struct tier *t, const struct digest *extra, size_t nextra, uint64_t *epoch, char *msg,
		    size_t msgsz);

/* ---- fetching one chunk object into the local store (tier_fetch.c) ---- */
/* Fetch slots: a fetch of d is in flight / claim its slot without waiting (false when another fetch
 * of d runs or every slot is taken) / give it back and wake the readers waiting on it. */
bool tier_fetch_in_flight(struct tier *t, const struct digest *d);
bool tier_fetch_try_claim(struct tier *t, const struct digest *d);
/* Claims the fetch of d (true; *owner false when every slot is taken, so the caller fetches without
 * one), or waits for another reader's fetch of d and returns false, after which the chunk file is
 * normally there. */
bool tier_fetch_claim(struct tier *t, const struct digest *d, bool *owner);
void tier_fetch_release(struct tier *t, const struct digest *d);
/* A reusable buffer for one fetched object; tier_fetch_store grows it as needed, its owner frees mem. */
struct tier_fetch_buf {
	void *mem;
	size_t cap;
};
#define TIER_FETCH_SLACK (TIER_CHUNK_HDR + 1 + 2 * 4096)  /* bytes a buffer needs beyond the payload */
/* Where the object goes in a buffer's mem so that its payload is 4 KiB-aligned. */
uint8_t *tier_fetch_place(void *mem);
/* Downloads and verifies chunk d into buf (NULL: a buffer of the calling thread, at most one chunk
 * per thread), stores it as a local chunk file and counts it (fetched_*). *payload (*len bytes)
 * points into that buffer, valid until its next use. -EIO for a corrupt or vanished object (counted
 * and logged; nothing stored), or the client's error. Call with d's fetch slot held. */
int tier_fetch_store(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, const uint8_t **payload,
		     size_t *len);

/* ---- read-ahead (tier_prefetch.c) ---- */
/* Starts ceil(ahead / 2) workers (at most 16; the window is capped at 64 chunks). 0: read-ahead stays
 * off. */
int tier_prefetch_start(struct tier *t, unsigned ahead);
/* Sets t->stopping, lets each worker finish the fetch in hand and joins them. */
void tier_prefetch_stop(struct tier *t);
/* A read found chunk d local: counts a prefetch hit when d was prefetched and not read since. */
void tier_prefetch_note_read(struct tier *t, const struct digest *d);

/* ---- the uploader thread (tier_upload.c) ---- */
void *tier_upload_main(void *arg);

#endif
