/* pecgpu.h - checkpoint straight from GPU (or host) memory into a pecfs mount, so that only the
 * chunks the store does not already hold are copied off the device and written through FUSE.
 *
 * A file being saved is the concatenation of segments (a safetensors header in host memory, then
 * tensor buffers in device or host memory). It is cut into chunks at file offsets that are multiples
 * of the data folder's chunk size, exactly as the daemon cuts written files, and each chunk's SHA-256
 * is the digest the store names it by (store/FORMAT.md). For each chunk the library first asks the
 * daemon to link the stored chunk of that digest (a reference write, pecfs_ioctl.h); only chunks the
 * daemon does not hold are copied to host memory and written.
 *
 * Built with CUDA, device segments are hashed on the GPU and copied on a side stream into a pool of
 * pinned buffers; built without it, the same API hashes host segments on host threads and refuses
 * device segments with -ENODEV. Every call returns 0 (or a count) on success and a negative errno on
 * failure; a save keeps a message naming what failed (pecgpu_save_error).
 */
#ifndef PECGPU_H
#define PECGPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PECGPU_DIGEST_LEN 32

enum pecgpu_where {
	PECGPU_HOST = 0,  /* ptr is host memory (pageable or pinned) */
	PECGPU_CUDA = 1,  /* ptr is CUDA device memory of the current device */
};

struct pecgpu_segment {
	const void *ptr;
	uint64_t len;
	int where;  /* enum pecgpu_where */
};

/* "pecgpu X.Y.Z (cuda 11.8)" or "pecgpu X.Y.Z (no cuda)". */
const char *pecgpu_version(void);
/* 1 when built with CUDA and a device is usable, else 0. */
int pecgpu_cuda_available(void);

/* The chunk size of the pecfs data folder holding the open file fd (PECFS_IOC_INFO); -ENOTTY when
 * fd is not on a pecfs mount. */
int pecgpu_chunk_size(int fd, uint32_t *out);

/* ceil(total / chunk_size): the number of chunks of a file of total bytes. */
uint64_t pecgpu_chunk_count(uint64_t total, uint32_t chunk_size);

/* SHA-256 of each chunk of the concatenation of segs, chunk boundaries at multiples of chunk_size;
 * out holds pecgpu_chunk_count(total, chunk_size) digests. Host threads: threads (0: one per online
 * CPU). Blocks until done. -EINVAL (chunk_size 0), -ENODEV (a device segment without CUDA). */
int pecgpu_digests(const struct pecgpu_segment *segs, size_t nsegs, uint32_t chunk_size,
		   unsigned threads, uint8_t (*out)[PECGPU_DIGEST_LEN]);

/* One reference write: bytes [off, off + len) of the file are the chunk with this digest. */
struct pecgpu_ref {
	uint64_t off;
	uint32_t len;
	int32_t result;  /* out: 0 linked, -ENOENT not held (write the bytes), other -errno */
	uint8_t digest[PECGPU_DIGEST_LEN];
};

/* Issues the reference writes on fd (open for writing on a pecfs mount, inside an open version) in
 * batches of PECFS_REF_MAX, filling each result. Returns the number linked, or a negative errno for a
 * failure of the whole call (-EROFS sealed, -EPERM outside a version, -EBADF, -ENOTTY not pecfs). */
long pecgpu_ref(int fd, struct pecgpu_ref *refs, size_t n);

/* ---- asynchronous, deduplicating saves ---- */

struct pecgpu_options {
	uint64_t pool_bytes;     /* staging memory (pinned with CUDA): 0 = 256 MiB; less than two
				  * chunks is raised to two chunks */
	unsigned hash_threads;   /* host hashing threads: 0 = one per online CPU */
	/* Sharded save: world data-parallel ranks save identical content. A chunk is stored by the rank
	 * its digest names (the first 8 bytes, big-endian, modulo world), so ranks agree whatever their
	 * paths and one-chunk files spread; the other ranks link it once its owner has stored it, and
	 * write it themselves if that takes longer than owner_wait_ms. world 0 or 1: no sharding. */
	unsigned rank, world;
	unsigned owner_wait_ms;  /* 0 = 60000 */
};

struct pecgpu_ctx;
struct pecgpu_save;

/* opt may be NULL (all defaults). -EINVAL: world > 1 and rank >= world. */
int pecgpu_ctx_new(const struct pecgpu_options *opt, struct pecgpu_ctx **out);
/* Waits for every save of the context to finish, then frees it. */
void pecgpu_ctx_free(struct pecgpu_ctx *c);

/* Starts saving the concatenation of segs as the file path (created or truncated, mode 0644) and
 * returns at once. The segments must stay unmodified until pecgpu_save_wait_copied returns and
 * valid until then (the library keeps no pointer to them afterwards). Device work runs on streams of
 * the library that do not wait for the caller's: the kernels that produce device segments must be
 * complete (e.g. the producing stream synchronized) before this call. The device is the one current
 * in the calling thread. A path outside pecfs is written whole, in 4 MiB chunks, without sharding. */
int pecgpu_save_start(struct pecgpu_ctx *c, const char *path, const struct pecgpu_segment *segs,
		      size_t nsegs, struct pecgpu_save **out);
/* Returns when every byte the save needs from the segments has been hashed and copied or linked:
 * the caller may modify its tensors. 0 or the save's error. */
int pecgpu_save_wait_copied(struct pecgpu_save *s);
/* Returns when the file is complete and fsynced (durable, and sealable). 0 or the save's error. */
int pecgpu_save_wait_durable(struct pecgpu_save *s);

struct pecgpu_save_stats {
	uint64_t file_bytes;
	uint64_t chunks;             /* chunks of the file */
	uint64_t chunks_linked;      /* by reference write */
	uint64_t chunks_written;     /* copied and written through the mount */
	uint64_t chunks_owner_waits; /* sharded: linked after waiting for their owner */
	uint64_t bytes_copied;       /* device to host */
	uint64_t bytes_written;      /* through write(2) */
	double digest_s, copy_s, write_s, total_s;  /* wall time of each stage */
};
void pecgpu_save_stats(const struct pecgpu_save *s, struct pecgpu_save_stats *out);
/* What failed, naming the stage and path; "" while nothing failed. */
const char *pecgpu_save_error(const struct pecgpu_save *s);
/* Waits until durable (ignoring its error), then frees. */
void pecgpu_save_free(struct pecgpu_save *s);

#ifdef __cplusplus
}
#endif

#endif
