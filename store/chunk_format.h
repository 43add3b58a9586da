/* chunk_format.h - the on-disk layout of one chunk file (private to chunk_*.c; spec in FORMAT.md).
 *
 * A 4096-byte header, then the payload. The header carries the payload length, the SHA-256, and
 * a CRC-32C per CRC block of payload, and ends with a CRC-32C of itself. The CRC block size is
 * fixed by the format (128 KiB: the smallest power-of-two multiple of 64 KiB whose table for a
 * CHUNK_MAX_SIZE chunk fits in the header) and also recorded, so readers never guess it.
 */
#ifndef PECFS_CHUNK_FORMAT_H
#define PECFS_CHUNK_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"

#define CHUNK_HDR_SIZE 4096u
#define CHUNK_MAGIC "PECCHNK1"
#define CHUNK_FORMAT_VERSION 1u
#define CHUNK_HDR_TABLE_OFF 64u
#define CHUNK_HDR_CRC_OFF (CHUNK_HDR_SIZE - 4u)
#define CHUNK_MAX_CRCS ((CHUNK_HDR_CRC_OFF - CHUNK_HDR_TABLE_OFF) / 4u)  /* 1007 */
#define CHUNK_CRC_BLOCK (128u << 10)

_Static_assert(CHUNK_MAX_SIZE / CHUNK_CRC_BLOCK <= CHUNK_MAX_CRCS, "CRC table must fit the header");
_Static_assert(CHUNK_MAX_SIZE / (CHUNK_CRC_BLOCK / 2) > CHUNK_MAX_CRCS, "smallest block size that fits");

/* A decoded, verified header. */
struct chunk_header {
	uint64_t payload_len;
	uint32_t block_size;
	uint32_t ncrcs;
	struct digest digest;
	uint32_t crcs[CHUNK_MAX_CRCS];
};

/* Fills hdr (CHUNK_HDR_SIZE bytes) for the payload data[0..len) named d. */
void chunk_header_encode(uint8_t *hdr, const struct digest *d, const void *data, size_t len);

/* Decodes and checks a header read from disk: magic, version, its own CRC, sane sizes, and that it
 * names the digest d. 0 or -EIO. */
int chunk_header_decode(const uint8_t *hdr, const struct digest *d, struct chunk_header *out);

#endif
