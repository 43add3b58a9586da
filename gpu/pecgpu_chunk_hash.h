/* pecgpu_chunk_hash.h - what one thread of the digest kernel does: SHA-256 of file bytes [off, end)
 * gathered from a table of non-empty segments sorted by file offset.
 *
 * __host__ __device__ like pecgpu_sha256.h, so the unit tests run the kernel's segment walk on the
 * host. On the device, whole 16-byte-aligned blocks are read as four 16-byte loads.
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
#ifdef __CUDA_ARCH__
		if (h.buflen == 0 && ((uintptr_t)p & 15) == 0) {
			uint4 block[4];
			for (; n >= 64; n -= 64, p += 64) {
				for (int j = 0; j < 4; j++)
					block[j] = __ldg((const uint4 *)p + j);
				pecgpu_sha256_block(h.h, (const uint8_t *)block);
				h.total += 64;
			}
		}
#endif
		pecgpu_sha256_update(&h, p, n);
	}
	pecgpu_sha256_final(&h, out);
}

#endif
