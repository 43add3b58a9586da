/* chunk_format.c - encoding and checking of chunk file headers (layout in FORMAT.md).
 *
 * Pure functions over a 4 KiB buffer. Integers are little-endian, written byte by byte.
 */
#include "chunk_format.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"

static void put_le32(uint8_t *p, uint32_t x)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static uint32_t crc_count(uint64_t len)
{
	return (uint32_t)((len + CHUNK_CRC_BLOCK - 1) / CHUNK_CRC_BLOCK);
}

void chunk_header_encode(uint8_t *hdr, const struct digest *d, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t n = crc_count(len);

	memset(hdr, 0, CHUNK_HDR_SIZE);
	memcpy(hdr, CHUNK_MAGIC, 8);
	put_le32(hdr + 8, CHUNK_FORMAT_VERSION);
	put_le32(hdr + 12, CHUNK_CRC_BLOCK);
	put_le64(hdr + 16, len);
	memcpy(hdr + 24, d->b, DIGEST_LEN);
	put_le32(hdr + 56, n);
	const void *bufs[CHUNK_MAX_CRCS] = { 0 };
	size_t lens[CHUNK_MAX_CRCS] = { 0 };
	uint32_t crcs[CHUNK_MAX_CRCS];
	for (uint32_t i = 0; i < n; i++) {
		size_t off = (size_t)i * CHUNK_CRC_BLOCK;

		bufs[i] = p + off;
		lens[i] = len - off < CHUNK_CRC_BLOCK ? len - off : CHUNK_CRC_BLOCK;
	}
	crc32c_many(bufs, lens, n, crcs);
	for (uint32_t i = 0; i < n; i++)
		put_le32(hdr + CHUNK_HDR_TABLE_OFF + 4 * i, crcs[i]);
	put_le32(hdr + CHUNK_HDR_CRC_OFF, crc32c(0, hdr, CHUNK_HDR_CRC_OFF));
}

int chunk_header_decode(const uint8_t *hdr, const struct digest *d, struct chunk_header *out)
{
	if (memcmp(hdr, CHUNK_MAGIC, 8) != 0)
		return -EIO;
	if (get_le32(hdr + CHUNK_HDR_CRC_OFF) != crc32c(0, hdr, CHUNK_HDR_CRC_OFF))
		return -EIO;
	if (get_le32(hdr + 8) != CHUNK_FORMAT_VERSION)
		return -EIO;
	out->block_size = get_le32(hdr + 12);
	out->payload_len = get_le64(hdr + 16);
	memcpy(out->digest.b, hdr + 24, DIGEST_LEN);
	out->ncrcs = get_le32(hdr + 56);
	/* Version 1 always uses CHUNK_CRC_BLOCK; anything else is damage, not a variant. */
	if (out->block_size != CHUNK_CRC_BLOCK || out->payload_len > CHUNK_MAX_SIZE ||
	    out->ncrcs != crc_count(out->payload_len))
		return -EIO;
	if (d && memcmp(out->digest.b, d->b, DIGEST_LEN) != 0)
		return -EIO;
	for (uint32_t i = 0; i < out->ncrcs; i++)
		out->crcs[i] = get_le32(hdr + CHUNK_HDR_TABLE_OFF + 4 * i);
	return 0;
}
