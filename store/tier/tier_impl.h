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

#include <jansson.h>

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

/* Node states (tier_node_state.c; FORMAT.md section 5, "Node state: head and segments"). */
#define TIER_NODE_SEG_HDR 32                 /* segment header bytes: one digest's room */
#define TIER_NODE_SEGMENTS_MAX 256           /* segments one head may name */
#define TIER_NODE_DIGESTS_MAX (1ull << 26)   /* digests one head's segments may hold together */
#define TIER_NODE_HEAD_MAX (1ull << 30)      /* a head (format 1 holds every digest as hex) */
#define TIER_NODE_READ_TRIES 5               /* head reads when a segment it names has gone */

/* A segment a head names. */
struct tier_node_seg {
	uint64_t gen;            /* key nodes/<id>/<gen as 16 hex>.seg */
	uint64_t count;          /* digests in it */
	uint8_t sha256[32];      /* of the whole object */
};

/* What this node last published to nodes/<id>.json and its segments (tier_gc.c). */
struct tier_node_pub {
	bool done;                      /* a head went up since the tier opened */
	uint64_t index_gen;             /* store_chunk_list's gen then */
	uint8_t vhash[32];              /* SHA-256 of the version list then */
	int64_t ns;                     /* tier_now_ns() then */
	struct digest *set;             /* P, the digests published: set[1..n], sorted, unique; set[0] is room
					   for a segment header */
	size_t n;
	struct tier_node_seg *segs;     /* the segments the head names, ascending gen */
	size_t nsegs;
	uint64_t listed;                /* their counts together */
	uint64_t last_gen;              /* the newest generation used */
};

struct tier_short_count {
	uint64_t run, ino;
	uint64_t listing;
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
	uint64_t pack_size;             /* chunk bytes one pack holds at most; 0: no packs */
	uint64_t cache_size;
	double cache_min_free;
	struct tier_lru *lru;           /* last reads, for eviction (tier_cache.c), own lock */
	struct tier_prefetch *prefetch; /* read-ahead queue and workers (tier_prefetch.c), own lock; NULL: off */
	int64_t evict_after_ns;         /* uploader thread only: next eviction pass while idle */
	unsigned nodes;                 /* node parts a version needs before COMMIT */
	struct tier_node_pub pub;       /* the node state last published (uploader thread only, tier_gc.c) */
	int64_t commit_check_ns;        /* uploader thread only: next look for versions awaiting nodes */
	/* Uploader thread only: versions whose parts were all read and fell short of this job's count,
	 * with a hash of the listing (keys and ETags) they were read at; tier_upload.c. */
	struct tier_short_count *short_counts;
	size_t nshort;
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;
	struct tier_persist_hook persist;  /* fn NULL: versions are uploaded as walked */

	pthread_mutex_t commit_lock;    /* protects the commit hook; held while it runs */
	void (*commit_fn)(void *arg, uint64_t run_ino, uint64_t version_ino);
	void *commit_arg;

	pthread_t uploader;
	atomic_bool stopping;

	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t wake;            /* tier_close, or scan_now set */
	bool scan_now;                  /* a version was sealed: the uploader scans without waiting */
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
	pthread_cond_t fetched;         /* a fetch finished, or a read-ahead buffer took chunks */
	uint64_t held_gen;              /* counts tier_fetch_held calls: waiters look at the buffers again */
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

/* ---- node states: nodes/<id>.json heads and nodes/<id>/<gen>.seg segments (tier_node_state.c,
 * tier_node_read.c; FORMAT.md section 5, "Node state: head and segments") ---- */
/* One node's published state: the versions it keeps and its chunk index. */
struct tier_node_state {
	int format;              /* 1: chunks holds the digests; 2: segs names the segments that do */
	char node[TIER_NODE_ID_MAX];
	int64_t updated_ns;
	char **versions;         /* "run/version" */
	size_t n_versions;
	uint64_t chunk_count;    /* as the head says (the set the node holds; segments may list more) */
	struct digest *chunks;   /* format 1: sorted as published */
	size_t n_chunks;
	struct tier_node_seg *segs;  /* format 2: ascending gen */
	size_t n_segs;
};

/* A growable array of digests (the collector's live set, a node's digests). */
struct tier_digest_vec {
	struct digest *d;
	size_t n, cap;
};
/* Makes room for n more digests beyond v->n (geometric growth). 0 or -ENOMEM. */
int tier_digest_vec_reserve(struct tier_digest_vec *v, size_t n);
int tier_digest_vec_add(struct tier_digest_vec *v, const struct digest *d, size_t n);
void tier_digest_vec_free(struct tier_digest_vec *v);
/* Sorts v and drops repeats. */
void tier_digest_vec_sort_unique(struct tier_digest_vec *v);

/* Writes a segment header for count digests into hdr (TIER_NODE_SEG_HDR bytes). */
void tier_node_segment_header(uint64_t count, uint8_t hdr[TIER_NODE_SEG_HDR]);
/* Checks a whole segment object (len bytes) against what its head says: header, count, length,
 * ascending digests without repeats, SHA-256. 0, or -EBADMSG with the reason in err. The digests are
 * at obj + TIER_NODE_SEG_HDR. */
int tier_node_segment_check(const uint8_t *obj, size_t len, const struct tier_node_seg *seg, char *err,
			    size_t errsz);
/* Digests of a (sorted, unique, na) that are not in b (sorted, unique, nb), in order, into out (room
 * for na); returns how many. One merge: O(na + nb). */
size_t tier_digests_minus(const struct digest *a, size_t na, const struct digest *b, size_t nb,
			  struct digest *out);  /* out NULL: only counts */

/* What a publish writes (tier_node_publish_plan). */
enum tier_node_plan { TIER_NODE_HEAD_ONLY, TIER_NODE_DELTA, TIER_NODE_FULL };
#define TIER_NODE_SEGMENTS_KEEP 64                       /* more: compact */
#define TIER_NODE_FULL_AGE_NS (24ll * 3600 * 1000000000) /* a full segment this old: compact */
/* have: something was published since the daemon started; nsegs, listed: segments the head names
 * and their digests together; now: digests the node holds; delta: of those, not published last
 * time; full_age_ns: how long ago the oldest named segment was written. */
enum tier_node_plan tier_node_publish_plan(bool have, size_t nsegs, uint64_t listed, uint64_t now, uint64_t delta,
					   int64_t full_age_ns);

/* Parses a head (format 1 or 2; bucket content: duplicate keys, malformed or out-of-range fields are
 * refused with -EINVAL and a reason in err). */
int tier_node_state_decode(const char *text, size_t len, struct tier_node_state *out, char *err, size_t errsz);
void tier_node_state_free(struct tier_node_state *s);
/* The text of a format 2 head (malloc'ed), or NULL for -ENOMEM. versions: a JSON array of [run,
 * version] (a reference is taken). */
char *tier_node_head_encode(const char *node, int64_t updated_ns, json_t *versions, uint64_t chunk_count,
			    const struct tier_node_seg *segs, size_t nsegs);
/* "PREFIX/nodes/<node>/<gen>.seg" from the head's key "PREFIX/nodes/<node>.json". -ENAMETOOLONG. */
int tier_node_segment_key(const char *head_key, uint64_t gen, char *buf, size_t size);
/* Reads a node's state from its head at key: the head, and for format 2 every segment it names, each
 * checked. Every digest of the state is appended to chunks (out->chunks stays empty); on failure
 * chunks is as it was. A missing segment makes it read the head again, up to TIER_NODE_READ_TRIES
 * times. -ENOENT: no head; -EBADMSG: refused (err says why, naming the key); else the client's error. */
int tier_node_state_get(struct s3_client *c, const char *key, struct tier_node_state *out,
			struct tier_digest_vec *chunks, char *err, size_t errsz);

/* Parses the text of gc/epoch (bucket content: duplicate keys, a negative epoch or a node name that
 * does not fit are refused). 0 or -EBADMSG. */
int tier_gc_epoch_decode(const char *text, size_t len, struct tier_gc_epoch *out);
/* An absent epoch object reads as epoch 0, not collecting. */
int tier_gc_epoch_get(struct s3_client *c, const char *prefix, struct tier_gc_epoch *out, struct s3_result *res);
int tier_gc_epoch_put(struct s3_client *c, const char *prefix, const struct tier_gc_epoch *ep, struct s3_result *res);
bool tier_gc_epoch_stale(const struct tier_gc_epoch *ep);
/* Writes nodes/<id>.json when the chunk index or the version list changed since the last time, when
 * forced, or when there are extra digests (those the node is about to name in a manifest, which a
 * persist selection may take from earlier uploads the local index no longer holds). Uploader
 * thread only. */
int tier_publish_node(struct tier *t, const struct digest *extra, size_t nextra, bool force, char *msg,
		      size_t msgsz);
/* Frees what tier_publish_node keeps (tier_close). */
void tier_node_pub_free(struct tier_node_pub *p);
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
/* Claims the fetch of d (1; *owner false when every slot is taken, so the caller fetches without
 * one), or waits while another reader's fetch of d is in flight: 0 once it ended, after which the
 * chunk file is normally there, or -EAGAIN as soon as a read-ahead buffer may hold d
 * (tier_fetch_held), so the caller serves the read from there instead of waiting for the chunk file
 * to be written, and calls again if d is not there. */
int tier_fetch_claim(struct tier *t, const struct digest *d, bool *owner);
/* Chunks whose fetch slots are still held are now readable from a read-ahead buffer: wakes their
 * waiters (tier_fetch_claim's -EAGAIN). */
void tier_fetch_held(struct tier *t);
void tier_fetch_release(struct tier *t, const struct digest *d);
/* A reusable buffer for one fetched object (or a run of pack members); tier_fetch_store grows it as
 * needed, its owner frees mem. */
struct tier_fetch_buf {
	void *mem;
	size_t cap;
};
/* Makes buf hold at least need bytes, dropping what it held: 0, or -ENOMEM (buf is then empty). A
 * buffer of 2 MiB or more is allocated in whole 2 MiB pages, huge pages where the kernel has them, so
 * filling it costs a few page faults rather than one per 4 KiB. */
int tier_fetch_buf_reserve(struct tier_fetch_buf *buf, size_t need);
#define TIER_FETCH_SLACK (TIER_CHUNK_HDR + 1 + 2 * 4096)  /* bytes a buffer needs beyond the payload */
/* Where the object goes in a buffer's mem so that its payload is 4 KiB-aligned. */
uint8_t *tier_fetch_place(void *mem);
/* Downloads and verifies chunk d into buf (NULL: a buffer of the calling thread, at most one chunk
 * per thread) and counts it (fetched_*). *payload (*len bytes) points into that buffer, valid until
 * its next use. -EIO for a corrupt or vanished object (counted and logged), or the client's error.
 * Call with d's fetch slot held. */
int tier_fetch_verified(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, const uint8_t **payload,
			size_t *len);
/* Stores a payload tier_fetch_verified returned as a local chunk file (a full disk only costs a later
 * fetch). */
void tier_fetch_keep(struct tier *t, const struct digest *d, const uint8_t *payload, size_t len);
/* tier_fetch_verified, then tier_fetch_keep. */
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
