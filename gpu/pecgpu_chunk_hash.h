/* pecgpu_chunk_hash.h - what one thread of the digest kernel does: SHA-256 of file bytes [off, end)
 * gathered from a table of non-empty segments sorted by file offset.
 *
 * __host__ __device__ like pecgpu_sha256.h, so the unit tests run the kernel's segment walk on the
 * host. On the device, whole blocks of 16-byte-aligned runs are read as four 16-byte loads, one block
 * ahead; the unit tests run that path too, with host loads (PECGPU_HOST_ALIGNED_PATH).
 */
#ifndef PECGPU_CHUNK_HASH_H
#define PECGPU_CHUNK_HASH_H

#include <stdint.h>

#include "pecgpu_sha256.h"

struct pecgpu_chunk_segment {
	const uint8_t *p;  /* the segment's bytes (device memory in the kernel) */
	uint64_t start;    /* its file offset */
	uint64_t len;      /* > 0 */
};

/* The device's aligned path; a host test defines PECGPU_HOST_ALIGNED_PATH to run it with host loads. */
#if defined(__CUDA_ARCH__)
#define PECGPU_ALIGNED_PATH 1
#define PECGPU_LOAD16(q) __ldg(q)
#define PECGPU_BSWAP(x) __byte_perm((x), 0, 0x0123)
#define PECGPU_DEV __device__ __forceinline__
typedef uint4 pecgpu_u4;
#elif defined(PECGPU_HOST_ALIGNED_PATH)
#include <string.h>
#define PECGPU_ALIGNED_PATH 1
#define PECGPU_LOAD16(q) pecgpu_load16_host(q)
#define PECGPU_BSWAP(x) __builtin_bswap32(x)
#define PECGPU_DEV static inline
typedef struct { uint32_t x, y, z, w; } pecgpu_u4;
static inline pecgpu_u4 pecgpu_load16_host(const pecgpu_u4 *q)
{
	pecgpu_u4 v;
	memcpy(&v, q, sizeof(v));
	return v;
}
#endif

#ifdef PECGPU_ALIGNED_PATH
/* The whole blocks of a 16-byte-aligned run, as 16-byte loads; the next block's loads are issued
 * before the current block is compressed, so their latency hides behind it (a chunk's thread is
 * often the only warp on its scheduler). Returns the rest of the run; *n becomes its length. */
PECGPU_DEV const uint8_t *pecgpu_chunk_hash_aligned(struct pecgpu_sha256 *h, const uint8_t *p,
						    uint64_t *n)
{
	const pecgpu_u4 *q = (const pecgpu_u4 *)(const void *)p;
	uint64_t blocks = *n / 64;
	pecgpu_u4 x0 = PECGPU_LOAD16(q), x1 = PECGPU_LOAD16(q + 1), x2 = PECGPU_LOAD16(q + 2),
		  x3 = PECGPU_LOAD16(q + 3);
	for (uint64_t b = 0; b < blocks; b++) {
		uint32_t w[16] = {
			PECGPU_BSWAP(x0.x), PECGPU_BSWAP(x0.y), PECGPU_BSWAP(x0.z), PECGPU_BSWAP(x0.w),
			PECGPU_BSWAP(x1.x), PECGPU_BSWAP(x1.y), PECGPU_BSWAP(x1.z), PECGPU_BSWAP(x1.w),
			PECGPU_BSWAP(x2.x), PECGPU_BSWAP(x2.y), PECGPU_BSWAP(x2.z), PECGPU_BSWAP(x2.w),
			PECGPU_BSWAP(x3.x), PECGPU_BSWAP(x3.y), PECGPU_BSWAP(x3.z), PECGPU_BSWAP(x3.w),
		};
		if (b + 1 < blocks) {
			const pecgpu_u4 *nq = q + 4 * (b + 1);
			x0 = PECGPU_LOAD16(nq);
			x1 = PECGPU_LOAD16(nq + 1);
			x2 = PECGPU_LOAD16(nq + 2);
			x3 = PECGPU_LOAD16(nq + 3);
		}
		pecgpu_sha256_compress(h->h, w);
	}
	h->total += blocks * 64;
	*n -= blocks * 64;
	return p + blocks * 64;
}
#endif

PECGPU_HD void pecgpu_chunk_hash(const struct pecgpu_chunk_segment *segs, unsigned nsegs,
				 uint64_t off, uint64_t end, uint8_t out[32])
{
	struct pecgpu_sha256 h;
	unsigned lo = 0, hi = nsegs;  /* the last segment starting at or before off */
	pecgpu_sha256_init(&h);
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (segs[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	for (unsigned k = lo; off < end && k < nsegs; k++) {
		uint64_t seg_end = segs[k].start + segs[k].len;
		uint64_t n = (end < seg_end ? end : seg_end) - off;
		const uint8_t *p = segs[k].p + (off - segs[k].start);
		off += n;
#ifdef PECGPU_ALIGNED_PATH
		if (h.buflen == 0 && ((uintptr_t)p & 15) == 0 && n >= 64)
			p = pecgpu_chunk_hash_aligned(&h, p, &n);
#endif
		pecgpu_sha256_update(&h, p, n);
	}
	pecgpu_sha256_final(&h, out);
}

#endif
