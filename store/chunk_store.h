/* chunk_store.h - the local chunk store: one immutable file per chunk, named by its SHA-256.
 *
 * Layout and file format are specified in store/FORMAT.md (DATA_DIR/chunks/<hex[0:2]>/<hex>, a 4 KiB
 * header with per-block CRC-32C, then the payload). A put is durable when it returns (write to a
 * temporary file, fdatasync, rename, fsync of the directory), so metadata may reference the chunk
 * right after. Reads verify the CRC of every block they touch and return -EIO on a mismatch: the
 * store never hands out wrong bytes. It knows nothing of files, references or metadata.
 * All functions are thread-safe.
 */
#ifndef PECFS_CHUNK_STORE_H
#define PECFS_CHUNK_STORE_H

#include <stdint.h>
#include <stddef.h>

#include "digest.h"

#define CHUNK_MAX_SIZE (64u << 20)  /* largest configurable chunk size */

struct chunk_store;

/* Opens (creating if needed) the chunk store under dir (DATA_DIR/chunks), removes leftover temporary
 * files. reserve_free_bytes: puts fail with -ENOSPC while the file system holding dir has less free
 * space than this, so metadata always has room to record the failure. */
int chunk_store_open(const char *dir, uint64_t reserve_free_bytes, struct chunk_store **out);
void chunk_store_close(struct chunk_store *cs);

/* Stores len bytes (len <= CHUNK_MAX_SIZE) whose SHA-256 the caller computed as d. Durable on return.
 * Idempotent: a chunk already present is left as it is. -ENOSPC when the disk (or the reserve) is
 * full; -EIO on other write failures. The temporary file is removed on any failure. */
int chunk_store_put(struct chunk_store *cs, const struct digest *d, const void *data, size_t len);

/* Copies len bytes from payload offset off into dst. Verifies the CRC of every block touched.
 * Returns 0, -ENOENT (no such chunk), -EIO (corrupt header or block, short file), -EINVAL (range
 * beyond the payload). */
int chunk_store_read(struct chunk_store *cs, const struct digest *d, uint64_t off, void *dst, size_t len);

/* Asks the kernel to start reading payload bytes [off, off + len) of chunk d into its page cache,
 * and keeps the file open for the reads that follow. A hint: absent chunks and errors are ignored. */
void chunk_store_prefetch(struct chunk_store *cs, const struct digest *d, uint64_t off, size_t len);

/* Payload length of a present chunk; -ENOENT if absent, -EIO if the header is corrupt. */
int chunk_store_stat(struct chunk_store *cs, const struct digest *d, uint64_t *payload_len);

/* Reads the whole chunk and checks header, every block CRC and that SHA-256(payload) == d.
 * Returns 0, -ENOENT or -EIO. */
int chunk_store_verify(struct chunk_store *cs, const struct digest *d);

/* Removes the chunk file (0 or -ENOENT). Callers make sure nothing references it. */
int chunk_store_delete(struct chunk_store *cs, const struct digest *d);

/* Modification time of the chunk file (ns since the epoch): when its put finished. 0, -ENOENT or
 * -EIO. Garbage collection leaves young files alone. */
int chunk_store_mtime(struct chunk_store *cs, const struct digest *d, int64_t *mtime_ns);

/* Calls cb for every chunk file present (in no particular order) with its digest and the file's size
 * on disk. Stops and returns cb's value when it is non-zero; returns 0 after the last one. */
int chunk_store_foreach(struct chunk_store *cs,
			int (*cb)(const struct digest *d, uint64_t file_bytes, void *arg), void *arg);

/* Free bytes on the file system holding the store (statvfs f_bavail * f_frsize). */
uint64_t chunk_store_free_bytes(struct chunk_store *cs);

#endif
