/* tier.h - the S3 tier of a store: background upload of sealed versions, their status, and the
 * chunk object format shared with restore.
 *
 * tier_open attaches a tier to an open store and starts its threads; from then on every sealed
 * version of the data folder is uploaded (chunks, then this node's manifest, then COMMIT; layout and
 * order in store/FORMAT.md section 5). The queue is the metadata itself (sealed versions without an
 * upload record), so it survives restarts. Writers are never blocked: uploads only read chunks.
 * Failures (server down, refused credentials) are logged once per change, shown in tier_status,
 * and retried with backoff until they succeed or the tier is closed. All functions are thread-safe.
 */
#ifndef PECFS_TIER_H
#define PECFS_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "s3_client.h"
#include "store.h"

#define TIER_NODE_ID_MAX 64
#define TIER_PREFIX_MAX 512

struct tier;

struct tier_options {
	const char *uri;              /* s3://BUCKET[/PREFIX], required */
	const char *endpoint;         /* http(s)://host[:port]; NULL: AWS's for the region */
	const char *region;           /* NULL: us-east-1 */
	enum s3_addressing addressing;
	const char *ca_file;          /* NULL: the system's CAs */
	const char *credentials_file; /* used when AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are unset */
	const char *node_id;          /* NULL or "": the data folder's node id (hex) */
	unsigned upload_threads;      /* chunks sent at once; 0: 8 */
	uint64_t upload_bandwidth;    /* bytes per second, 0: unlimited */
	uint64_t cache_size;          /* local chunk bytes kept; beyond, uploaded chunks are evicted LRU;
					 0: unlimited */
	double cache_min_free;        /* also evict while the data disk's free ratio is below this */
	/* One line per event (state changes of the uploader, completed versions); NULL: silent. */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;
};

/* Starts the tier on st. Refuses (-EINVAL, reason in err) a bad URI, endpoint or missing
 * credentials; does not wait for the server (a server that is down is retried in the background).
 * -EEXIST when st already has a tier. */
int tier_open(struct store *st, const struct tier_options *opt, struct tier **out, char *err, size_t errsz);

/* Stops the threads (an upload in progress is abandoned where it is and resumes at the next open),
 * detaches the tier from its store and frees it. */
void tier_close(struct tier *t);

enum tier_state { TIER_IDLE = 0, TIER_UPLOADING, TIER_RETRYING };

struct tier_status {
	char uri[TIER_PREFIX_MAX];
	char node_id[TIER_NODE_ID_MAX];
	enum tier_state state;
	char error[400];              /* the last failure while state is TIER_RETRYING, else "" */
	uint64_t versions_pending;    /* sealed versions not yet committed in S3 */
	uint64_t bytes_pending;       /* stored bytes of those versions not yet known in S3 */
	uint64_t versions_uploaded;   /* committed by this node since open */
	uint64_t bytes_uploaded;      /* chunk bytes sent since open (objects already there not counted) */
	uint64_t chunks_uploaded, chunks_skipped;  /* sent / found in the bucket already, since open */
	double rate_bytes_per_s;      /* recent upload rate */
	uint64_t failures;            /* failed attempts since open */
	uint64_t fetched_chunks, fetched_bytes;  /* read-through fetches from S3 since open */
	uint64_t fetch_corrupt;       /* fetches refused for a digest mismatch (reads got EIO) */
	uint64_t evicted_chunks, evicted_bytes;  /* uploaded chunk files removed since open */
	uint64_t local_bytes;         /* chunk file bytes on local disk, at the last eviction pass */
};

/* The tier attached to st, or NULL. */
struct tier *store_tier(struct store *st);

/* Fills out for the tier of st; -ENODEV when st has none. */
int store_tier_status(struct store *st, struct tier_status *out);

/* Upload state of one version: *uploaded_bytes (chunk bytes of the version known to be in S3) and
 * *uploaded (COMMIT written by this node). -ENODEV when st has no tier. */
int store_tier_version_status(struct store *st, uint64_t run_ino, uint64_t version_ino, uint64_t *uploaded_bytes,
			      bool *uploaded);

/* True when the chunk's object is recorded as present in the bucket (its 'R' record): a missing
 * local file of such a chunk is evicted or not yet fetched, not lost. Works without a tier open. */
bool tier_chunk_in_bucket(struct meta *m, const struct digest *d);

/* Read-through (called by store_chunk_read when the local chunk file is absent): a chunk known to be
 * in the bucket is fetched, verified, stored locally and copied out. -ENOENT when it is not known
 * remote, -EIO (and fetch_corrupt) for a corrupt object, or the client's error. */
int tier_read_through(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len);

/* Records a read of chunk d for least-recently-used eviction (cheap; a no-op without a cache limit). */
void tier_cache_touch(struct tier *t, const struct digest *d);

/* Imports every committed version of the bucket that the data folder does not have yet, as sealed
 * versions whose chunks are remote (records and extents present, chunk files absent, marked in
 * the bucket): reads then fetch lazily. All node manifests of a version become one version. Runs
 * before the store serves anything; the caller reopens the store afterwards so that its chunk
 * index includes the imported chunks. *imported counts the versions added. One line per version
 * to progress when not NULL. */
int tier_import(struct store *st, const struct tier_options *opt, FILE *progress, uint64_t *imported, char *err,
		size_t errsz);

/* ---- chunk objects: a 64-byte header, then the payload (FORMAT.md section 5) ---- */
#define TIER_CHUNK_HDR 64

/* Key of a chunk's object under prefix ("" for none) into buf. -ENAMETOOLONG. */
int tier_chunk_key(const char *prefix, const struct digest *d, char *buf, size_t size);

/* Writes the header for a payload of len bytes named d into hdr (TIER_CHUNK_HDR bytes). */
void tier_chunk_header(const struct digest *d, uint64_t len, uint8_t *hdr);

/* Downloads the chunk object of d and checks its header and SHA-256(payload) == d. *payload
 * (malloc'ed) and *len on success; -EIO (digest or header mismatch: the object is corrupt),
 * -ENOENT (no such object) or the client's error. */
int tier_chunk_fetch(struct s3_client *c, const char *prefix, const struct digest *d, void **payload,
		     size_t *len, struct s3_result *res);

/* Splits an s3:// URI and makes a client for the options' server (credentials from the environment
 * or options->credentials_file; opt->log is not used, the client logs to log/log_ctx, which may be
 * NULL). -EINVAL with a reason in err. */
int tier_client_new(const struct tier_options *opt, unsigned max_connections,
		    void (*log)(void *ctx, enum s3_log_level level, const char *msg), void *log_ctx,
		    struct s3_client **out, char bucket[S3_BUCKET_MAX], char prefix[TIER_PREFIX_MAX], char *err,
		    size_t errsz);

#endif
