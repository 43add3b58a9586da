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
#include "tier_manifest.h"

#define TIER_NODE_ID_MAX 64
#define TIER_PREFIX_MAX 512

struct tier;

/* Tries per request for a reader that has no retry of its own: ~20 s of backoff rides out a blip. */
#define TIER_READER_ATTEMPTS 10

struct tier_options {
	const char *uri;              /* s3://BUCKET[/PREFIX], required */
	const char *endpoint;         /* http(s)://host[:port]; NULL: AWS_ENDPOINT_URL(_S3), the profile's
					 endpoint_url, else AWS's for the region */
	const char *region;           /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the profile's, else us-east-1 */
	enum s3_addressing addressing;
	const char *ca_file;          /* NULL: AWS_CA_BUNDLE, the profile's ca_bundle, else the system's CAs */
	const char *credentials_file; /* tried after the environment, before the rest of the AWS chain
					 (s3_creds_chain.c) */
	const char *node_id;          /* NULL or "": the data folder's node id (hex) */
	unsigned nodes;               /* node parts (manifests) a version needs before its COMMIT; 0: 1 */
	unsigned upload_threads;      /* chunks sent at once; 0: 8 */
	unsigned max_attempts;        /* tries per S3 request (tier_client_new); 0: 4, for the uploader, which
					 retries whole versions itself; a reader with no retry of its own
					 (restore, import, fsck --remote) wants TIER_READER_ATTEMPTS */
	uint64_t upload_bandwidth;    /* bytes per second, 0: unlimited */
	uint64_t pack_size;           /* chunk bytes uploaded together in one pack object; 0 (or at most one
					 chunk): an object per chunk (FORMAT.md section 5, "Packs") */
	unsigned prefetch;            /* chunks fetched ahead of a sequential reader of remote chunks, half
					 of them at a time; 0: no read-ahead (tier_readahead) */
	uint64_t cache_size;          /* local chunk bytes kept; beyond, uploaded chunks are evicted LRU;
					 0: unlimited */
	double cache_min_free;        /* also evict while the data disk's free ratio is below this */
	/* One line per event (state changes of the uploader, completed versions); NULL: silent. */
	void (*log)(void *ctx, enum s3_log_level level, const char *msg);
	void *log_ctx;
	/* Persist selection (see tier_persist_fn), copied by tier_open; NULL: every version is uploaded as
	 * walked. Once tier_open succeeds the tier owns persist->ctx and frees it in tier_close. */
	const struct tier_persist_hook *persist;
	/* tier_import: called after each run is looked at (runs done, of total); NULL: none. */
	void (*import_progress)(void *ctx, uint64_t done, uint64_t total);
	void *import_progress_ctx;
};

/* ---- persist selection: a hook between walking a version and uploading it ---- */
struct tier_manifest;

/* What the hook is given besides the manifest; everything belongs to the tier. */
struct tier_persist_call {
	struct s3_client *client;         /* the tier's client (thread-safe) */
	const char *prefix;               /* the bucket key prefix without trailing '/', may be "" */
	const char *node_id;
	struct meta *meta;                /* the store's metadata, to read the version's records */
	const struct meta_version *version;
};

/* Called by the uploader thread for each version after its manifest m was walked from the metadata
 * and before any chunk is sent. It may rewrite m in place: give an entry the extents of a copy already
 * in the bucket (tier_manifest_set_extents) and name that copy's version (tier_manifest_set_source). The
 * uploader then makes sure every chunk the rewritten manifest names is in the bucket (those already
 * there are only checked), so a rewrite can make an upload smaller but never leave a reference to a
 * missing object. It may read and create objects under prefix. 0, or a negative errno with a message
 * in msg (the version is then retried later, like any failed upload). */
typedef int (*tier_persist_fn)(void *ctx, const struct tier_persist_call *call, struct tier_manifest *m, char *msg,
			       size_t msgsz);

struct tier_persist_hook {
	tier_persist_fn fn;
	void *ctx;
	void (*free)(void *ctx);          /* NULL: nothing to free */
};

/* Starts the tier on st. Refuses (-EINVAL, reason in err) a bad URI, endpoint or missing
 * credentials; does not wait for the server (a server that is down is retried in the background).
 * -EEXIST when st already has a tier. */
int tier_open(struct store *st, const struct tier_options *opt, struct tier **out, char *err, size_t errsz);

/* Stops the threads (an upload in progress is abandoned where it is and resumes at the next open),
 * detaches the tier from its store and frees it. */
void tier_close(struct tier *t);
/* A version was just sealed: the uploader looks for it now rather than at its next scan (within a
 * second). Cheap; any thread. */
void tier_note_sealed(struct tier *t);

enum tier_state { TIER_IDLE = 0, TIER_UPLOADING, TIER_RETRYING };

struct tier_status {
	char uri[TIER_PREFIX_MAX];
	char node_id[TIER_NODE_ID_MAX];
	enum tier_state state;
	char error[400];              /* the last failure while state is TIER_RETRYING, else "" */
	uint64_t versions_pending;    /* sealed versions not yet committed in S3 */
	uint64_t bytes_pending;       /* stored bytes of those versions not yet known in S3 */
	uint64_t versions_awaiting_nodes; /* this node's part uploaded, COMMIT waits for other nodes' parts */
	uint64_t versions_uploaded;   /* committed by this node since open */
	uint64_t bytes_uploaded;      /* chunk bytes sent since open (objects already there not counted) */
	uint64_t chunks_uploaded, chunks_skipped;  /* sent / found in the bucket already, since open */
	uint64_t packs_uploaded;      /* pack objects sent (each holds several of chunks_uploaded) */
	double rate_bytes_per_s;      /* recent upload rate */
	uint64_t failures;            /* failed attempts since open */
	uint64_t versions_failing;    /* pending versions whose last attempt failed (error names the latest) */
	uint64_t fetched_chunks, fetched_bytes;  /* read-through fetches from S3 since open */
	uint64_t fetch_corrupt;       /* fetches refused for a digest mismatch (reads got EIO) */
	uint64_t prefetched_chunks;   /* of fetched_chunks, those fetched ahead of a sequential reader */
	uint64_t prefetch_hits;       /* prefetched chunks that a read then found local (or waited for) */
	uint64_t evicted_chunks, evicted_bytes;  /* uploaded chunk files removed since open */
	uint64_t local_bytes;         /* chunk file bytes on local disk, at the last eviction pass */
};

/* Fills out for tier t; -ENODEV when t is NULL (no tier). */
int tier_get_status(struct tier *t, struct tier_status *out);
/* The S3 client's request figures (s3_client.h), counted as requests happen; -ENODEV without a tier. */
int tier_get_request_metrics(struct tier *t, struct s3_client_stats *stats, struct s3_client_metrics *m);

/* Upload state of one version: *uploaded_bytes (chunk bytes of the version known to be in S3) and
 * *uploaded (COMMIT written by this node). -ENODEV when t is NULL. */
int tier_version_status(struct tier *t, uint64_t run_ino, uint64_t version_ino, uint64_t *uploaded_bytes,
			bool *uploaded);

/* Why the last upload attempt of a version failed, into error ("" and 0 when it did not, or there was
 * none yet): the number of failed attempts in a row. 0 also when t is NULL. */
unsigned tier_version_error(struct tier *t, uint64_t run_ino, uint64_t version_ino, char *error, size_t errsz);

/* Calls fn(arg, run_ino, version_ino) from the uploader thread each time one of the data folder's
 * versions becomes committed in S3 (after its upload record says so), so that what waited for the
 * commit (retention) can run. fn NULL detaches. Returns once no call of the previous fn is running,
 * so the caller may free arg afterwards; must not be called from inside fn. A no-op when t is NULL. */
void tier_set_commit_hook(struct tier *t, void (*fn)(void *arg, uint64_t run_ino, uint64_t version_ino),
			  void *arg);

/* The job id on inode ino (a run's user.pec.job setting, or a sealed version's copy of it; FORMAT.md
 * "Jobs") into job, TIER_JOB_MAX + 1 bytes: 0, -ENODATA when none is set, -EINVAL when the value is
 * not a job id, or the metadata's error. job is "" whenever the result is not 0. */
int tier_job_read(struct meta *m, uint64_t ino, char *job);

/* A sequential reader of inode ino entered the chunk of the file at off (read_pattern_note): queues
 * background fetches of the remote, locally absent chunks among the next `prefetch` chunks of the
 * file (verified and stored like read-through; a demand read of a chunk being fetched waits for that
 * fetch). Never waits for the network. A no-op when t is NULL or its prefetch is 0. */
void tier_readahead(struct tier *t, uint64_t ino, uint64_t off);

/* Imports every committed version of the bucket that the data folder does not have yet, as sealed
 * versions whose chunks are remote (records and extents present, chunk files absent, marked in
 * the bucket): reads then fetch lazily. The parts a version's COMMIT names become one version
 * (tier_version_load, tier_version_merge). A run or version name in a key that is not a valid name,
 * or a version that is refused, stops the import (-EBADMSG). Runs before the store serves anything;
 * the caller reopens the store afterwards so that its chunk index includes the imported chunks.
 * *imported counts the versions added. One line per version to progress when not NULL. */
int tier_import(struct store *st, const struct tier_options *opt, FILE *progress, uint64_t *imported, char *err,
		size_t errsz);

/* ---- bucket garbage collection (tier_gc_sweep.c; protocol in FORMAT.md section 5) ---- */
/* An upload without COMMIT that no node keeps goes once its newest object is this many grace
 * periods old. */
#define TIER_GC_ABANDON_GRACES 4
/* A node state segment with no head at all goes only when this old too (and past the grace period):
 * a new node writes its first segment just before its first head. */
#define TIER_GC_HEADLESS_SEGMENT_NS (3600ll * 1000000000)
struct tier_gc_options {
	uint32_t keep;            /* committed versions kept per run, newest first; 0: every version */
	int64_t grace_ns;         /* objects younger than this are never deleted */
	bool dry_run;             /* report what would go, delete nothing */
	const char *forget_node;  /* drop this node's published state first (a node gone for good) */
	/* Called from the calling thread as manifests are read ("reading", manifests) and chunk and pack
	   objects deleted ("deleting", objects): done of total; NULL: none. */
	void (*progress)(void *ctx, const char *what, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct tier_gc_report {
	uint64_t epoch;           /* the collection's epoch */
	uint64_t nodes;           /* node states read */
	uint64_t versions, uncommitted, versions_retired;
	uint64_t uploads_abandoned; /* versions without COMMIT that no node keeps, retired once old */
	uint64_t objects_deleted; /* COMMIT and manifest objects */
	uint64_t chunks, chunks_live, chunks_recent;  /* chunk objects seen / referenced / within grace */
	uint64_t chunks_deleted, bytes_deleted;
	uint64_t packs, packs_live, packs_recent;  /* objects under packs/ seen / kept for a manifest or a live
						      member / within grace */
	uint64_t packs_deleted, pack_bytes_deleted;  /* packs and objects under packs/ that are no pack */
	uint64_t segments_deleted;  /* node state segments no head names (and, with forget_node, its own) */
};

/* Collects the bucket of opt: retires committed versions beyond the newest o->keep of each run that
 * no node keeps, and deletes chunk objects no node and no remaining manifest references, and pack
 * objects no remaining manifest names holding no chunk that is referenced so, leaving anything
 * younger than the grace period. One line per retired version and node to progress (may be
 * NULL). -EBUSY when another collection runs; other failures with a reason in err. */
int tier_bucket_gc(const struct tier_options *opt, const struct tier_gc_options *o, FILE *progress,
		   struct tier_gc_report *out, char *err, size_t errsz);

/* ---- checking the bucket (tier_fsck.c, `pecfs fsck --remote`; FORMAT.md section 5, Remote check) ---- */
struct tier_fsck_options {
	bool quick;               /* chunk objects: listed with the right size is enough, nothing downloaded */
	unsigned jobs;            /* requests at once; 0: 8 */
	FILE *out;                /* problem lines, then notes; NULL: stdout */
	/* Called now and then from the calling thread while chunks are verified (payload bytes done, of
	   total); NULL: none. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct tier_fsck_report {
	uint64_t versions;        /* committed versions */
	uint64_t uncommitted;     /* versions with manifests but no COMMIT (an upload under way or cut short,
				     parts waiting for other nodes): not an error */
	uint64_t manifests, node_states;
	uint64_t chunks;          /* distinct chunk objects named by manifests (one chunk at two locations:
				     its own object, a pack, counts twice) */
	uint64_t packs;           /* distinct pack objects named by manifests */
	uint64_t objects;         /* objects checked: COMMITs, manifests, node states, chunks, packs */
	uint64_t bytes;           /* chunk payload bytes verified (quick: chunk object bytes listed) */
	uint64_t problems;        /* damage found, one printed line each */
	uint64_t missing, corrupt;  /* of problems: chunk objects */
	uint64_t unreferenced, unreferenced_bytes;  /* chunk objects no manifest names: not an error */
	uint64_t unreferenced_packs, unreferenced_pack_bytes;  /* pack objects no manifest names: not an error */
	uint64_t unexpected;      /* other objects under the prefix ("note:" lines): not an error */
	uint64_t unreadable;      /* objects that could not be read (network, permission): check incomplete */
};

/* Checks the bucket and prefix of opt, reading only: every COMMIT and manifest parses and names the
 * version it is stored under, every COMMIT has its manifests, every chunk object a manifest names
 * exists with the right size (a pack: long enough to hold the member at the offset named) and, unless
 * o->quick, has a sound header and SHA-256 (tier_chunk_fetch_into), and every pack named has a member
 * table that parses.
 * One line per problem to o->out, naming the object's key and, for a chunk, the files (run/version/path)
 * that use it. 0 when the check ran to the end (findings in r), -EINVAL for bad options, -EAGAIN while a
 * bucket garbage collection runs or when one ran meanwhile, else the error that stopped the check
 * (server unreachable, credentials refused); a reason in err unless 0. */
int tier_fsck(const struct tier_options *opt, const struct tier_fsck_options *o, struct tier_fsck_report *r,
	      char *err, size_t errsz);

/* ---- reading manifests and COMMITs from the bucket (tier_manifest_load.c) ----
 * Everything read from the bucket is untrusted: these functions are the only way the tier and the
 * command line read manifests and COMMITs, and each object must name the place it is stored at. */
struct tier_manifest;
struct tier_manifest_entry;
struct tier_commit;

/* Node manifests of one version. */
struct tier_manifest_set {
	struct tier_manifest *m;
	size_t n;
};

/* True when key has the shape of a manifest key: ...runs/<run>/<version>/<node>.manifest. */
bool tier_manifest_key_ok(const char *key);

/* Parses the text of the manifest object stored at key into m and checks that it names that place
 * (its run, version and node). -EBADMSG (or -EINVAL for a key of another shape) with a reason in msg
 * (without the key); m holds nothing to free on failure. */
int tier_manifest_parse(const char *key, const char *text, size_t len, struct tier_manifest *m, char *msg,
			size_t msgsz);

/* Downloads the manifest object at key and parses it as tier_manifest_parse does. The client's error
 * (-ENOENT when it is gone) or -EBADMSG, with a reason that names the key in msg. */
int tier_manifest_get(struct s3_client *c, const char *key, struct tier_manifest *m, char *msg, size_t msgsz);

/* Reads every manifest stored under run/version under prefix ("" for none) into out, in key order
 * (empty when the version has none), whether COMMIT names it or not: for bucket gc, which must keep
 * every chunk any manifest names. Any manifest that cannot be read or parsed fails the whole load,
 * with a reason in msg. */
int tier_manifests_load(struct s3_client *c, const char *prefix, const char *run, const char *version,
			struct tier_manifest_set *out, char *msg, size_t msgsz);
void tier_manifest_set_free(struct tier_manifest_set *s);

/* Parses the text of the COMMIT object of run/version (tier_commit_decode) and checks that it names
 * that version. -EBADMSG with a reason in msg; c holds nothing to free on failure. */
int tier_commit_parse(const char *run, const char *version, const char *text, size_t len, struct tier_commit *c,
		      char *msg, size_t msgsz);

/* Downloads and parses the COMMIT of run/version under prefix. -ENOENT when there is none (not
 * committed), -EBADMSG, or the client's error, with a reason that names the key in msg. */
int tier_commit_get(struct s3_client *c, const char *prefix, const char *run, const char *version,
		    struct tier_commit *out, char *msg, size_t msgsz);

/* A committed version as restore and import read it: its COMMIT in *commit and the manifests of
 * the parts that COMMIT names in out, in node name byte order, each checked to carry the seal id
 * COMMIT gives its part (manifests beside it that COMMIT does not name are not read). A COMMIT
 * written before seal ids names no parts: every manifest stored beside it is then a part. -ENOENT
 * when the version has no COMMIT; -EBADMSG when COMMIT or a part is malformed, missing or of another
 * upload; or the client's error; a reason in msg. Free with tier_commit_free and
 * tier_manifest_set_free (both empty on failure). */
int tier_version_load(struct s3_client *c, const char *prefix, const char *run, const char *version,
		      struct tier_commit *commit, struct tier_manifest_set *out, char *msg, size_t msgsz);

/* One version's entries from all its parts: each path once, in manifest order (tier_manifest_path_cmp).
 * The entries point into the set it was made from. */
struct tier_merged {
	const struct tier_manifest_entry **e;
	size_t n;
};

/* Merges the parts of a version (set in node name order, as tier_version_load gives it): a path that
 * several parts list keeps the entry of the first part, directories included (mode, mtime). A path
 * that is a directory in one part and a file or symlink in another makes the version refused
 * (-EBADMSG, the path and both nodes in msg), so that nothing can end up below a file; -ENOMEM.
 * The one implementation of the rule, for restore and import alike. Pure. */
int tier_version_merge(const struct tier_manifest_set *set, struct tier_merged *out, char *msg, size_t msgsz);
void tier_merged_free(struct tier_merged *m);

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

/* The same for a chunk whose payload length len the caller knows (a manifest names it): the object is
 * read straight into buf (at least len + TIER_CHUNK_HDR + 1 bytes), header first, payload at
 * buf + TIER_CHUNK_HDR, with no allocation or copy. loc NULL or not packed: its own object; packed:
 * the member at loc->off of the pack (one ranged GET). -EIO also when the object's length differs,
 * or when what lies at the location is not this chunk. */
int tier_chunk_fetch_into(struct s3_client *c, const char *prefix, const struct digest *d,
			  const struct tier_loc *loc, uint64_t len, void *buf, struct s3_result *res);

/* Checks one chunk object of olen bytes (header, then payload) already in memory against d, as
 * tier_chunk_fetch_into does after its GET: magic, format, header CRC, digest, a payload length of
 * exactly olen - TIER_CHUNK_HDR, and SHA-256 of the payload. For a reader that fetched several
 * members of a pack with one GET. 0 or -EIO. Pure, thread-safe. */
int tier_chunk_check(const struct digest *d, const void *obj, size_t olen);

/* Whether the object of a chunk of payload length len is at loc (NULL: its own object), by one HEAD:
 * 0 when it is there at the size the chunk needs (a pack: long enough to hold the member), -ENOENT
 * when not, or the client's error. */
int tier_loc_head(struct s3_client *c, const char *prefix, const struct digest *d, const struct tier_loc *loc,
		  uint64_t len, struct s3_result *res);
/* Whether an object of size bytes at loc (NULL: the chunk's own object) is of the size a chunk of
 * payload length len needs there (tier_loc_head's test). */
bool tier_loc_fits(const struct tier_loc *loc, uint64_t len, uint64_t size);

/* ---- packs: several chunk objects in one object (FORMAT.md section 5, "Packs") ---- */
#define TIER_PACK_HDR_FIXED 32     /* magic, format, header length, count */
#define TIER_PACK_ENTRY 40         /* a member's SHA-256 and payload length in the table */
#define TIER_PACK_MEMBERS_MAX 256  /* members of one pack */

/* Key of a pack's object under prefix into buf. -ENAMETOOLONG. */
int tier_pack_key(const char *prefix, const struct digest *pack, char *buf, size_t size);
/* Key of the object holding a chunk: its pack's when loc is packed, else its own. */
int tier_loc_key(const char *prefix, const struct digest *d, const struct tier_loc *loc, char *buf, size_t size);
/* Writes the header of a pack of members d[0..n) with payload lengths len[0..n) (n at most
 * TIER_PACK_MEMBERS_MAX) into hdr (TIER_PACK_HDR_FIXED + n * TIER_PACK_ENTRY bytes, the length
 * returned) and its name (SHA-256 of the table) into *name. Member i's chunk object starts at the
 * header's length plus the objects before it (TIER_CHUNK_HDR + len each). */
size_t tier_pack_header(const struct digest *d, const uint64_t *len, size_t n, uint8_t *hdr, struct digest *name);

/* A member of a pack, as its header lists it. */
struct tier_pack_member {
	struct digest d;
	uint64_t len;   /* payload bytes */
	uint64_t off;   /* where its chunk object starts in the pack */
};
/* Parses the first olen bytes of the pack object called name (bucket content): magic, format, a count
 * of 1 to TIER_PACK_MEMBERS_MAX, the header's length, zero padding, lengths of 1 to CHUNK_MAX_SIZE,
 * and the table's SHA-256 equal to the name. out has room for TIER_PACK_MEMBERS_MAX. 0, -EPROTONOSUPPORT
 * for a pack's magic with another format (written by a later release), or -EBADMSG (also when olen
 * does not hold the whole header). */
int tier_pack_parse(const uint8_t *obj, size_t olen, const struct digest *name, struct tier_pack_member *out,
		    size_t *n);

/* Splits an s3:// URI and makes a client for the options' server (credentials from the environment
 * or options->credentials_file, read again when the server refuses temporary ones or they near their
 * expiry, so opt->credentials_file must outlive the client; opt->log is not used, the client logs to log/log_ctx, which may be
 * NULL). -EINVAL with a reason in err. */
int tier_client_new(const struct tier_options *opt, unsigned max_connections,
		    void (*log)(void *ctx, enum s3_log_level level, const char *msg), void *log_ctx,
		    struct s3_client **out, char bucket[S3_BUCKET_MAX], char prefix[TIER_PREFIX_MAX], char *err,
		    size_t errsz);

#endif
