/* pecgpu_impl.h - what the files of libpecgpu share and nobody else sees: the layout of a file as
 * segments (where each file byte lives) and the host digest path.
 *
 * A layout owns a copy of the segment table (never of the bytes) plus each segment's file offset.
 */
#ifndef PECGPU_IMPL_H
#define PECGPU_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pecgpu.h"

struct pecgpu_layout {
	struct pecgpu_segment *segs;
	uint64_t *start;  /* start[i]: file offset of segs[i]; start[nsegs] = total */
	size_t nsegs;
	uint64_t total;
	int has_device;   /* some non-empty segment is PECGPU_CUDA */
};

/* -EINVAL for a NULL pointer with a non-zero length or an unknown where; -ENOMEM. */
int pecgpu_layout_init(struct pecgpu_layout *l, const struct pecgpu_segment *segs, size_t nsegs);
void pecgpu_layout_free(struct pecgpu_layout *l);
/* Index of the segment holding file byte off (off < total); empty segments are never answered. */
size_t pecgpu_layout_find(const struct pecgpu_layout *l, uint64_t off);

/* Walks the pieces of file range [off, off + len) in order: for each, seg is its segment, p points at
 * its first byte and n is its length. Usage:
 *   for (struct pecgpu_piece pc = pecgpu_piece_first(l, off, len); pc.n; pecgpu_piece_next(l, &pc))
 */
struct pecgpu_piece {
	size_t seg;
	const uint8_t *p;
	uint64_t n;
	uint64_t off, left;  /* this piece's file offset; bytes of the range from it on */
};
struct pecgpu_piece pecgpu_piece_first(const struct pecgpu_layout *l, uint64_t off, uint64_t len);
void pecgpu_piece_next(const struct pecgpu_layout *l, struct pecgpu_piece *pc);

/* Host SHA-256 (OpenSSL) of every chunk of a host-only layout on threads threads (0: online CPUs). */
int pecgpu_host_digests(const struct pecgpu_layout *l, uint32_t chunk_size, unsigned threads,
			uint8_t (*out)[PECGPU_DIGEST_LEN]);
/* Device digests when the layout has device segments (-ENODEV without CUDA), else host digests. */
int pecgpu_layout_digests(const struct pecgpu_layout *l, uint32_t chunk_size, unsigned threads,
			  uint8_t (*out)[PECGPU_DIGEST_LEN]);

#endif
