/* store.h - a data folder as one object: the lock, the metadata database, the chunk store and the
 * in-memory chunk reference counts that deduplication and garbage collection rest on.
 *
 * DATA_DIR/LOCK   flock()ed while a process has the store open (one daemon per data folder)
 * DATA_DIR/meta/  RocksDB (meta.h)
 * DATA_DIR/chunks/ chunk files (chunk_store.h)
 *
 * Reference counts are not stored: store_open derives them from the extents in the database (an
 * extent is one reference), so a crash can never leave a count wrong. A chunk with no reference is
 * garbage that store_gc reclaims. All functions are thread-safe.
 */
#ifndef PECFS_STORE_H
#define PECFS_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "chunk_store.h"
#include "digest.h"
#include "meta.h"

#define STORE_DEFAULT_CHUNK_SIZE (4u << 20)

struct store;

struct store_options {
	uint32_t chunk_size;          /* used when the data folder is created; an existing one keeps its own */
	uint64_t reserve_free_bytes;  /* chunk puts fail with -ENOSPC below this much free disk */
};

/* Opens DATA_DIR, creating its layout (and the root directory inode, owned by uid/gid of the caller,
 * mode 0755) when new. -EBUSY when another process has it open (holder's pid in *busy_pid if not
 * NULL), -EINVAL for a folder that is not a pecfs data folder or has an unknown format version,
 * -EIO on database failure. Prints the reason to stderr on failure. */
int store_open(const char *data_dir, const struct store_options *opt, struct store **out, pid_t *busy_pid);
void store_close(struct store *st);

struct meta *store_meta(struct store *st);
struct chunk_store *store_chunks(struct store *st);
uint32_t store_chunk_size(struct store *st);
const char *store_data_dir(struct store *st);

/* Hashes data, and either finds the chunk already stored or stores it durably (chunk file, then its
 * meta_chunk record). Either way takes one reference for the caller, who must then commit an extent
 * naming *out (the reference is that extent) or give it back with store_chunk_unref. Concurrent puts
 * of the same bytes store them once. *was_new (may be NULL) tells whether bytes were written.
 * -ENOSPC, -EIO. Called from worker threads, never the FUSE request thread (it hashes and syncs). */
int store_chunk_put(struct store *st, const void *data, size_t len, struct digest *out, bool *was_new);

/* Takes a reference on a chunk that must already be stored (composition, or a client that declares
 * content by digest). -ENOENT if it is not. */
int store_chunk_ref(struct store *st, const struct digest *d);

/* store_chunk_ref for a client that declares bytes by digest (a reference write): also checks that
 * the chunk is len bytes long and that its file is here with a sound header. -ENOENT otherwise (the
 * client then writes the bytes), never a reference to a chunk this folder cannot read locally. */
int store_chunk_claim(struct store *st, const struct digest *d, uint64_t len);

/* Gives back one reference (after the extent naming it was deleted, or a put was not used). */
void store_chunk_unref(struct store *st, const struct digest *d);

uint64_t store_chunk_refcount(struct store *st, const struct digest *d);

/* Reads chunk bytes (see chunk_store_read); counts -EIO in the corruption counter. With a remote
 * attached, a chunk it holds in memory is served from there and an absent chunk file is read through it. */
int store_chunk_read(struct store *st, const struct digest *d, uint64_t off, void *dst, size_t len);

/* Starts reading chunk bytes [off, off + len) of d from the local disk ahead of their reader
 * (chunk_store_prefetch); nothing for a chunk that is not on the local disk. */
void store_chunk_prefetch(struct store *st, const struct digest *d, uint64_t off, size_t len);

/* ---- a tier below the local one ----
 * The S3 tier (store/tier/) attaches itself here so that reads of chunks whose file is not on local
 * disk reach it; the store knows nothing of S3. Each function may be called from any thread. */
struct store_remote {
	/* Serves bytes of chunk d from memory when the remote holds it there (fetched ahead of a
	 * reader): 0, or -ENOENT. */
	int (*read_held)(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len);
	/* The local file of chunk d is absent: fetch, verify and store it, then copy the bytes out.
	 * -ENOENT when the remote does not have it either, -EIO for a corrupt copy. */
	int (*read_through)(void *ctx, const struct digest *d, uint64_t off, void *dst, size_t len);
	/* Chunk d was read from its local file (an eviction order is kept from these). */
	void (*touch)(void *ctx, const struct digest *d);
	void *ctx;
};

/* Attaches r (which must stay valid until store_detach_remote returns): -EEXIST when one is attached
 * already. Detaching must not race with store_chunk_read callers that could still use r. */
int store_attach_remote(struct store *st, const struct store_remote *r);
void store_detach_remote(struct store *st);

/* Every digest the chunk index holds (referenced or awaiting gc, local or evicted), sorted, in a
 * malloc'ed array; *gen changes whenever the set does (cheap to poll with a NULL out). 0 or -ENOMEM. */
int store_chunk_list(struct store *st, struct digest **out, size_t *n, uint64_t *gen);

struct store_stats {
	uint64_t chunks;              /* chunks stored */
	uint64_t stored_bytes;        /* their payload bytes */
	uint64_t referenced_bytes;    /* payload bytes of chunks with at least one reference */
	uint64_t logical_put_bytes;   /* bytes passed to store_chunk_put since open */
	uint64_t dedup_hits;          /* puts that found the chunk already stored, since open */
	uint64_t new_chunks;          /* puts that wrote a new chunk, since open */
	uint64_t corrupt_reads;       /* reads refused with EIO for a checksum mismatch, since open */
	uint64_t put_errors;          /* failed puts (ENOSPC, EIO), since open */
	uint64_t free_disk_bytes;     /* free space on the data disk now */
};
void store_get_stats(struct store *st, struct store_stats *out);

/* ---- maintenance; safe while the filesystem is mounted and being written ---- */

struct store_gc_report {
	uint64_t chunks_removed;
	uint64_t bytes_removed;
	uint64_t files_removed;   /* stray chunk files with no record (a crash between file and record) */
	uint64_t chunks_kept;
};
/* Removes every chunk with no reference: its record, then its file. A concurrent put of the same
 * bytes either finds the chunk before it is claimed for removal or stores it anew after. */
int store_gc(struct store *st, struct store_gc_report *out);
/* The same, calling progress(ctx, unreferenced chunks removed, of total) between batches. */
int store_gc_progress(struct store *st, struct store_gc_report *out,
		      void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx);
/* Only the unreferenced chunks, without the walk of every chunk file for strays: what a background
 * collection runs. */
int store_gc_garbage(struct store *st, struct store_gc_report *out);
/* Payload bytes of stored chunks no extent references (what a collection would free). */
uint64_t store_garbage_bytes(struct store *st);

struct store_fsck_report {
	uint64_t inodes, extents, chunks;
	uint64_t corrupt_chunks;     /* digest or checksum mismatch */
	uint64_t missing_chunks;     /* referenced by an extent, or recorded, but no file */
	uint64_t namespace_errors;   /* dangling entries, inodes without entries, bad link counts, records of
				      * missing inodes */
	uint64_t unreferenced_chunks;/* harmless: garbage for store_gc */
	uint64_t problems;           /* corrupt + missing + namespace_errors + extent_errors */
	uint64_t extent_errors;      /* extents of no inode, outside their chunk, or overlapping in one file */
};
/* Checks every chunk's digest and checksums, every extent's reference and range, and the namespace.
 * Writes one line per problem to report (e.g. "corrupt chunk <hex>: used by /run/v1/file.bin") and a
 * summary. Returns 0 when it ran (inspect out->problems), negative errno when it could not run.
 * Changes nothing. */
int store_fsck(struct store *st, FILE *report, struct store_fsck_report *out);
/* The same, calling progress(ctx, bytes verified, of total) now and then while chunks are verified
 * (the longest part: every chunk is read), from the calling thread. */
int store_fsck_progress(struct store *st, FILE *report, struct store_fsck_report *out,
			void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx);

/* Path of an inode from the root ("/run/v1/a.bin") into buf; -ENOENT / -ERANGE. */
int store_inode_path(struct store *st, uint64_t ino, char *buf, size_t size);

#endif
