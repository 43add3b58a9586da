/* tier_record.c - the tier's two record kinds in the metadata database (FORMAT.md section 3):
 *   'U' run ino, version ino -> the version is committed in S3 by this node (the upload queue is
 *                               "sealed versions without a U record", so it survives restarts)
 *   'R' chunk SHA-256         -> the chunk's object is known to be in the bucket, confirmed in the
 *                               bucket's garbage collection epoch stored in the value (tier_gc.c)
 * Raw keys through meta_db.h: these records are the tier's own, the rest of meta.h never reads them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_db.h"
#include "tier_impl.h"

#define TIER_KEY_UPLOAD 'U'
#define TIER_KEY_REMOTE 'R'
#define TIER_RECORD_V1 1
#define TIER_UPLOAD_VAL_LEN (1 + 8 + 8 + 8)

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static size_t upload_key(uint8_t *k, uint64_t run, uint64_t ino)
{
	k[0] = TIER_KEY_UPLOAD;
	be64_put(k + 1, run);
	be64_put(k + 9, ino);
	return 17;
}

int tier_record_get(struct meta *m, uint64_t run, uint64_t ino, struct tier_upload_record *out)
{
	uint8_t k[17];
	size_t klen = upload_key(k, run, ino), len;
	char *v;
	int rc = meta_db_get(m, k, klen, &v, &len);

	if (rc < 0)
		return rc;
	if (len < TIER_UPLOAD_VAL_LEN || (uint8_t)v[0] != TIER_RECORD_V1) {
		rocksdb_free(v);
		return -EIO;
	}
	out->uploaded_bytes = le64_get((const uint8_t *)v + 1);
	out->chunks = le64_get((const uint8_t *)v + 9);
	out->committed_ns = (int64_t)le64_get((const uint8_t *)v + 17);
	rocksdb_free(v);
	return 0;
}

int tier_record_put(struct meta *m, uint64_t run, uint64_t ino, const struct tier_upload_record *r)
{
	uint8_t k[17], v[TIER_UPLOAD_VAL_LEN];
	size_t klen = upload_key(k, run, ino);
	struct meta_batch *b = meta_batch_new();
	int rc;

	if (!b)
		return -ENOMEM;
	v[0] = TIER_RECORD_V1;
	le64_put(v + 1, r->uploaded_bytes);
	le64_put(v + 9, r->chunks);
	le64_put(v + 17, (uint64_t)r->committed_ns);
	meta_batch_raw_put(b, k, klen, v, sizeof(v));
	/* Synced: a lost record would only cost a repeated (idempotent) upload, but the state shown
	 * to users (`seal --wait-upload`) must not go back after a crash. */
	rc = meta_batch_commit(m, b, true);
	meta_batch_free(b);
	return rc;
}

static void remote_key(uint8_t *k, const struct digest *d)
{
	k[0] = TIER_KEY_REMOTE;
	memcpy(k + 1, d->b, DIGEST_LEN);
}

int tier_chunk_remote_epoch(struct meta *m, const struct digest *d, uint64_t *epoch)
{
	uint8_t k[1 + DIGEST_LEN];
	size_t len;
	char *v;
	int rc;

	remote_key(k, d);
	rc = meta_db_get(m, k, sizeof(k), &v, &len);
	if (rc < 0)
		return rc;
	/* A one-byte value predates bucket garbage collection: confirmed in epoch 0. */
	*epoch = len >= 1 + 8 ? le64_get((const uint8_t *)v + 1) : 0;
	rocksdb_free(v);
	return 0;
}

bool tier_chunk_is_remote(struct meta *m, const struct digest *d)
{
	uint64_t epoch;

	return tier_chunk_remote_epoch(m, d, &epoch) == 0;
}

void tier_batch_mark_remote(struct meta_batch *b, const struct digest *d, uint64_t epoch)
{
	uint8_t k[1 + DIGEST_LEN], v[1 + 8];

	remote_key(k, d);
	v[0] = TIER_RECORD_V1;
	le64_put(v + 1, epoch);
	meta_batch_raw_put(b, k, sizeof(k), v, sizeof(v));
}

/* Not synced: losing a mark in a crash only costs a HEAD that finds the object again. */
static int remote_commit(struct meta *m, const struct digest *d, bool mark, uint64_t epoch)
{
	uint8_t k[1 + DIGEST_LEN];
	struct meta_batch *b = meta_batch_new();
	int rc;

	if (!b)
		return -ENOMEM;
	if (mark) {
		tier_batch_mark_remote(b, d, epoch);
	} else {
		remote_key(k, d);
		meta_batch_raw_del(b, k, sizeof(k));
	}
	rc = meta_batch_commit(m, b, false);
	meta_batch_free(b);
	return rc;
}

int tier_chunk_mark_remote(struct meta *m, const struct digest *d, uint64_t epoch)
{
	return remote_commit(m, d, true, epoch);
}

int tier_chunk_unmark_remote(struct meta *m, const struct digest *d)
{
	return remote_commit(m, d, false, 0);
}

void tier_batch_put_record(struct meta_batch *b, uint64_t run, uint64_t ino, const struct tier_upload_record *r)
{
	uint8_t k[17], v[TIER_UPLOAD_VAL_LEN];
	size_t klen = upload_key(k, run, ino);

	v[0] = TIER_RECORD_V1;
	le64_put(v + 1, r->uploaded_bytes);
	le64_put(v + 9, r->chunks);
	le64_put(v + 17, (uint64_t)r->committed_ns);
	meta_batch_raw_put(b, k, klen, v, sizeof(v));
}

bool tier_chunk_in_bucket(struct meta *m, const struct digest *d)
{
	return tier_chunk_is_remote(m, d);
}
