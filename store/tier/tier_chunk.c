/* tier_chunk.c - chunk objects in the bucket: key, header, and fetch with verification.
 *
 * An object is a 64-byte header (magic, format, payload length, SHA-256, CRC-32C of the header)
 * followed by the payload. A fetch checks the header and SHA-256(payload) against the name, so a
 * damaged or substituted object is refused (-EIO) and never reaches a reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "tier.h"

#define TIER_CHUNK_MAGIC "PECS3CK1"
#define TIER_CHUNK_FORMAT 1

int tier_chunk_key(const char *prefix, const struct digest *d, char *buf, size_t size)
{
	char hex[DIGEST_HEX_LEN + 1];
	int n;

	digest_to_hex(d, hex);
	n = snprintf(buf, size, "%s%schunks/%.2s/%s", prefix, prefix[0] ? "/" : "", hex, hex);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void tier_chunk_header(const struct digest *d, uint64_t len, uint8_t *hdr)
{
	memset(hdr, 0, TIER_CHUNK_HDR);
	memcpy(hdr, TIER_CHUNK_MAGIC, 8);
	put_le32(hdr + 8, TIER_CHUNK_FORMAT);
	put_le32(hdr + 12, TIER_CHUNK_HDR);
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (uint8_t)(len >> (8 * i));
	memcpy(hdr + 24, d->b, DIGEST_LEN);
	put_le32(hdr + 56, crc32c(0, hdr, 56));
}

/* Checks a whole object (header, then payload) against d: 0 or -EIO. */
static int chunk_object_check(const struct digest *d, const uint8_t *obj, size_t olen)
{
	struct digest got;
	uint64_t plen = 0;

	for (int i = 0; i < 8 && olen >= TIER_CHUNK_HDR; i++)
		plen |= (uint64_t)obj[16 + i] << (8 * i);
	if (olen < TIER_CHUNK_HDR || memcmp(obj, TIER_CHUNK_MAGIC, 8) != 0 ||
	    get_le32(obj + 8) != TIER_CHUNK_FORMAT || get_le32(obj + 12) != TIER_CHUNK_HDR ||
	    get_le32(obj + 56) != crc32c(0, obj, 56) || memcmp(obj + 24, d->b, DIGEST_LEN) != 0 ||
	    plen != olen - TIER_CHUNK_HDR)
		return -EIO;
	digest_compute(obj + TIER_CHUNK_HDR, (size_t)plen, &got);
	return digest_equal(&got, d) ? 0 : -EIO;
}

static int chunk_corrupt(const char *key, struct s3_result *res)
{
	if (res)
		snprintf(res->message, sizeof(res->message), "%.300s: chunk object is corrupt (header or SHA-256 mismatch)",
			 key);
	return -EIO;
}

int tier_chunk_fetch(struct s3_client *c, const char *prefix, const struct digest *d, void **payload,
		     size_t *len, struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 160];
	uint8_t *obj = NULL;
	size_t olen;
	int rc;

	rc = tier_chunk_key(prefix, d, key, sizeof(key));
	if (rc < 0)
		return rc;
	rc = s3_get_all(c, key, CHUNK_MAX_SIZE + TIER_CHUNK_HDR, (void **)&obj, &olen, res);
	if (rc < 0)
		return rc;
	if (chunk_object_check(d, obj, olen) < 0) {
		free(obj);
		return chunk_corrupt(key, res);
	}
	/* Hand out the payload alone: move it to the front instead of copying into a new buffer. */
	memmove(obj, obj + TIER_CHUNK_HDR, olen - TIER_CHUNK_HDR);
	*payload = obj;
	*len = olen - TIER_CHUNK_HDR;
	return 0;
}

int tier_chunk_fetch_into(struct s3_client *c, const char *prefix, const struct digest *d, uint64_t len, void *buf,
			  struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 160];
	size_t got = 0;
	int rc;

	rc = tier_chunk_key(prefix, d, key, sizeof(key));
	if (rc < 0)
		return rc;
	/* One byte more than expected, so that a longer object is seen (and refused) too. */
	rc = s3_get(c, key, 0, (size_t)len + TIER_CHUNK_HDR + 1, buf, &got, res);
	if (rc == -EFBIG)  /* a server that ignored the range, for an object longer than expected */
		return chunk_corrupt(key, res);
	if (rc < 0)
		return rc;
	if (got != len + TIER_CHUNK_HDR || chunk_object_check(d, buf, got) < 0)
		return chunk_corrupt(key, res);
	return 0;
}
