/* tier_chunk.c - chunk objects in the bucket: key, header, and fetch with verification.
 *
 * An object is a 64-byte header (magic, format, payload length, SHA-256, CRC-32C of the header)
 * followed by the payload. It is stored on its own (chunks/) or as a member of a pack (packs/, the
 * pack's table first, then its members' chunk objects back to back: FORMAT.md section 5, "Packs").
 * A fetch checks the header and SHA-256(payload) against the name wherever the object lies, so a
 * damaged or substituted object, or a location that points elsewhere, is refused (-EIO) and never
 * reaches a reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "tier.h"

#define TIER_CHUNK_MAGIC "PECS3CK1"
#define TIER_CHUNK_FORMAT 1
#define TIER_PACK_MAGIC "PECS3PK1"
#define TIER_PACK_FORMAT 1

/* "PREFIX/<dir>/<hex[0:2]>/<hex>": where chunk objects and packs are kept, by name. */
static int digest_key(const char *prefix, const char *dir, const struct digest *d, char *buf, size_t size)
{
	char hex[DIGEST_HEX_LEN + 1];
	int n;

	digest_to_hex(d, hex);
	n = snprintf(buf, size, "%s%s%s/%.2s/%s", prefix, prefix[0] ? "/" : "", dir, hex, hex);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int tier_chunk_key(const char *prefix, const struct digest *d, char *buf, size_t size)
{
	return digest_key(prefix, "chunks", d, buf, size);
}

int tier_pack_key(const char *prefix, const struct digest *pack, char *buf, size_t size)
{
	return digest_key(prefix, "packs", pack, buf, size);
}

int tier_loc_key(const char *prefix, const struct digest *d, const struct tier_loc *loc, char *buf, size_t size)
{
	return loc && loc->packed ? tier_pack_key(prefix, &loc->pack, buf, size) : tier_chunk_key(prefix, d, buf, size);
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

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

size_t tier_pack_header(const struct digest *d, const uint64_t *len, size_t n, uint8_t *hdr, struct digest *name)
{
	size_t hlen = TIER_PACK_HDR_FIXED + n * TIER_PACK_ENTRY;

	memset(hdr, 0, TIER_PACK_HDR_FIXED);
	memcpy(hdr, TIER_PACK_MAGIC, 8);
	put_le32(hdr + 8, TIER_PACK_FORMAT);
	put_le32(hdr + 12, (uint32_t)hlen);
	put_le32(hdr + 16, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = hdr + TIER_PACK_HDR_FIXED + i * TIER_PACK_ENTRY;
		memcpy(e, d[i].b, DIGEST_LEN);
		put_le64(e + DIGEST_LEN, len[i]);
	}
	digest_compute(hdr + TIER_PACK_HDR_FIXED, n * TIER_PACK_ENTRY, name);
	return hlen;
}

int tier_pack_parse(const uint8_t *obj, size_t olen, const struct digest *name, struct tier_pack_member *out,
		    size_t *n)
{
	struct digest got;
	uint64_t off;
	uint32_t count, hlen;

	if (olen < TIER_PACK_HDR_FIXED || memcmp(obj, TIER_PACK_MAGIC, 8) != 0)
		return -EBADMSG;
	if (get_le32(obj + 8) != TIER_PACK_FORMAT)
		return -EPROTONOSUPPORT;  /* a later release's pack: not to be judged (or deleted) by this one */
	count = get_le32(obj + 16);
	hlen = get_le32(obj + 12);
	if (count < 1 || count > TIER_PACK_MEMBERS_MAX || hlen != TIER_PACK_HDR_FIXED + count * TIER_PACK_ENTRY ||
	    olen < hlen)
		return -EBADMSG;
	for (int i = 20; i < TIER_PACK_HDR_FIXED; i++)
		if (obj[i] != 0)
			return -EBADMSG;
	digest_compute(obj + TIER_PACK_HDR_FIXED, (size_t)count * TIER_PACK_ENTRY, &got);
	if (!digest_equal(&got, name))
		return -EBADMSG;
	off = hlen;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = obj + TIER_PACK_HDR_FIXED + (size_t)i * TIER_PACK_ENTRY;
		memcpy(out[i].d.b, e, DIGEST_LEN);
		out[i].len = get_le64(e + DIGEST_LEN);
		if (out[i].len < 1 || out[i].len > CHUNK_MAX_SIZE)
			return -EBADMSG;
		out[i].off = off;
		off += TIER_CHUNK_HDR + out[i].len;
	}
	*n = count;
	return 0;
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

int tier_chunk_check(const struct digest *d, const void *obj, size_t olen)
{
	return chunk_object_check(d, obj, olen);
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

int tier_loc_head(struct s3_client *c, const char *prefix, const struct digest *d, const struct tier_loc *loc,
		  uint64_t len, struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 160];
	uint64_t size = 0;
	int rc = tier_loc_key(prefix, d, loc, key, sizeof(key));

	if (rc == 0)
		rc = s3_head(c, key, &size, NULL, res);
	if (rc < 0)
		return rc;
	return tier_loc_fits(loc, len, size) ? 0 : -ENOENT;
}

bool tier_loc_fits(const struct tier_loc *loc, uint64_t len, uint64_t size)
{
	if (loc && loc->packed)
		return size >= loc->off + TIER_CHUNK_HDR + len;
	return size == len + TIER_CHUNK_HDR;
}

int tier_chunk_fetch_into(struct s3_client *c, const char *prefix, const struct digest *d,
			  const struct tier_loc *loc, uint64_t len, void *buf, struct s3_result *res)
{
	char key[TIER_PREFIX_MAX + 160];
	bool packed = loc && loc->packed;
	size_t got = 0;
	int rc;

	rc = tier_loc_key(prefix, d, loc, key, sizeof(key));
	if (rc < 0)
		return rc;
	/* An object of its own: one byte more than expected, so that a longer object is seen (and refused)
	 * too. A pack member ends where the next begins, so exactly its length; the member's header says
	 * how long its payload is, and a location that points elsewhere fails its check. */
	rc = s3_get(c, key, packed ? loc->off : 0, (size_t)len + TIER_CHUNK_HDR + (packed ? 0 : 1), buf, &got, res);
	/* -EFBIG: a server that ignored the range, for an object longer than expected; -ERANGE: a member
	 * placed past the end of its pack. */
	if (rc == -EFBIG || (packed && rc == -ERANGE))
		return chunk_corrupt(key, res);
	if (rc < 0)
		return rc;
	if (got != len + TIER_CHUNK_HDR || chunk_object_check(d, buf, got) < 0)
		return chunk_corrupt(key, res);
	return 0;
}
