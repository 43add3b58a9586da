/* data.h - file contents: write buffering, chunking, hashing off the request thread, reads through
 * extents.
 *
 * A file's bytes are cut at chunk boundaries (offset / chunk_size). Writes fill a chunk-sized buffer
 * taken from a pre-allocated pool; a full buffer (or any buffer at flush) goes to a worker thread that
 * hashes it, stores it through store_chunk_put (deduplicated, durable) and commits the extent that
 * replaces that chunk's range, unsynced, in one metadata batch. Writes into a chunk that already has
 * stored bytes read them back first (read-modify-write). Reads see buffered bytes, then extents, and
 * zeros where neither covers the file.
 *
 * The data module owns a file's size while its data_file exists; the caller persists it (inode
 * record) when it makes the file durable.
 *
 * A chunk that cannot be stored (ENOSPC, EIO) loses the bytes written into its buffer: the file's
 * extents there stay older bytes or a hole. The data_file remembers each such range and its error,
 * and every data_flush returns that error (so every fsync, close and seal fails) until the range is
 * written again and stored, or truncated away. Writes do not report it: they are how the range gets
 * rewritten. The memory lasts as long as the data_file; after a restart the file reads what was
 * stored, as after a crash.
 * All functions are thread-safe; a data_file may be used by many requests at once.
 */
#ifndef PECFS_DATA_H
#define PECFS_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

struct data_ctx;
struct data_file;

/* Starts hash_threads workers and allocates write_buffers chunk-sized buffers (touched up front). */
int data_ctx_new(struct store *st, uint32_t write_buffers, uint32_t hash_threads, struct data_ctx **out);
/* Stops the workers; every data_file must have been flushed and freed. */
void data_ctx_free(struct data_ctx *dc);

struct data_stats {
	uint64_t bytes_written;   /* accepted by data_write */
	uint64_t bytes_read;      /* returned by data_read */
	uint64_t chunks_flushed;  /* buffers handed to workers */
	uint64_t write_errors;    /* asynchronous failures */
	uint64_t bytes_linked;    /* declared by reference (data_link) instead of written */
	uint64_t chunks_linked;
	uint32_t buffers_in_use;
	uint32_t buffers_total;
};
void data_get_stats(struct data_ctx *dc, struct data_stats *out);

/* Content state of inode ino whose persisted size is size. created: the inode was made just now (by
 * the request that opens it), so it has no extents to check. */
struct data_file *data_file_new(struct data_ctx *dc, uint64_t ino, uint64_t size, bool created);
/* Flushes (ignoring errors, which the caller already had its chance to see) and frees. */
void data_file_free(struct data_file *df);

uint64_t data_file_size(struct data_file *df);
/* True while the file has buffered or in-flight bytes not yet committed as extents. */
bool data_file_dirty(struct data_file *df);
/* True while some written range of the file is lost (see above); cheap, takes no lock. */
bool data_file_failed(struct data_file *df);
/* The error of the oldest lost range still standing, 0 when none; does not flush. */
int data_file_error(struct data_file *df);

/* Writes size bytes at off. Returns size or a negative errno (-EIO reading back a chunk to modify,
 * -ENOMEM, -EFBIG). May wait for a free buffer. Bytes the workers then fail to store are reported
 * by data_flush, not here. */
ssize_t data_write(struct data_file *df, const void *buf, size_t size, uint64_t off);

/* Reads up to size bytes at off into buf; returns the count (0 at or past the end) or -EIO, also when
 * the range holds bytes a write accepted but storing them failed (data_file_failed). */
ssize_t data_read(struct data_file *df, void *buf, size_t size, uint64_t off);
/* Read-ahead from the local disk, in two steps so that the second needs no open file: the stored
 * pieces of file range [off, off + len) (its first DATA_AHEAD_MAX extents; none on an error), then
 * a start of the disk on each (store_chunk_prefetch). A hint: never fails, never waits on the disk. */
#define DATA_AHEAD_MAX 8
struct data_ahead {
	unsigned n;
	struct {
		struct digest d;
		uint64_t off;  /* in the chunk's payload */
		uint64_t len;
	} piece[DATA_AHEAD_MAX];
};
void data_ahead_plan(struct data_file *df, uint64_t off, uint64_t len, struct data_ahead *a);
void data_ahead_start(struct data_ctx *dc, const struct data_ahead *a);

/* A reference write: file bytes [off, off + len) become the stored chunk d, which must be len bytes
 * long and held locally (store_chunk_claim). off must be a multiple of the chunk size; len is the
 * chunk size, or less for the file's tail, which then ends the file at off + len (-EINVAL while the
 * file has bytes past that chunk). The extent is committed unsynced, like a stored write; a buffer
 * of that chunk is dropped. -EINVAL, -EFBIG, -ENOENT (not held: write the bytes), -EIO. */
int data_link(struct data_file *df, uint64_t off, uint32_t len, const struct digest *d);

/* Hands every buffer to the workers and waits until all of the file's extents are committed (not
 * synced: the caller syncs metadata). Returns 0, or the error of a lost range still standing
 * (data_file_error), which a later call returns again. */
int data_flush(struct data_file *df);

/* Sets the size: flushes, then drops or clips extents past it (committed), or extends with a hole.
 * Lost ranges past the new size are forgotten with the bytes. */
int data_truncate(struct data_file *df, uint64_t size);

/* Freeing a file: adds the deletion of every extent of ino to the caller's batch b (nothing on
 * failure) and keeps what they reference in *out until data_delete_done, after the commit of b, gives
 * the chunk references back (committed) or forgets them (b was not committed). The inode must have
 * no data_file. */
struct data_gone;
int data_delete_prepare(struct data_ctx *dc, struct meta_batch *b, uint64_t ino, struct data_gone **out);
void data_delete_done(struct data_ctx *dc, struct data_gone *g, bool committed);

/* Payload bytes of the distinct chunks the file's extents reference, added into a caller-kept set
 * so that a version's files can be summed without counting a chunk twice; see data_unique_*. */
struct data_unique;
struct data_unique *data_unique_new(void);
void data_unique_free(struct data_unique *u);
int data_unique_add_file(struct data_ctx *dc, struct data_unique *u, uint64_t ino);
uint64_t data_unique_bytes(const struct data_unique *u);

/* A content id for user.pec.digest: SHA-256 of the file's extent list (offset, length, chunk digest,
 * chunk offset for each), hex. Equal for byte-identical files written the same way. */
int data_content_id(struct data_ctx *dc, uint64_t ino, char hex[DIGEST_HEX_LEN + 1]);

#endif
