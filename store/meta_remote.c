/* meta_remote.c - the S3 tier's two record kinds in the metadata database (FORMAT.md section 3):
 *   'U' run ino, version ino -> the version is committed in S3 by this node (the upload queue is
 *                               "sealed versions without a U record", so it survives restarts)
 *   'R' chunk SHA-256         -> the chunk's object is known to be in the bucket, confirmed in the
 *                               bucket's garbage collection epoch stored in the value (store/tier/tier_gc.c),
 *                               and where: its own object, or a pack and the offset in it
 * store/tier/ writes them; the local tier reads 'R' to tell an evicted chunk file from a lost one.
 */
#include <errno.h>
#include <stdlib.h>

#include "meta_codec.h"
#include "meta_db.h"

int meta_get_upload(struct meta *m, uint64_t run, uint64_t ino, struct meta_upload *out)
{
	uint8_t k[META_KEY_MAX];
	size_t klen = meta_key_u64_u64(k, META_KEY_UPLOAD, run, ino), len;
	char *v;
	int rc = meta_db_get(m, k, klen, &v, &len);

	if (rc < 0)
		return rc;
	rc = meta_dec_upload((const uint8_t *)v, len, out);
	rocksdb_free(v);
	return rc;
}

void meta_batch_put_upload(struct meta_batch *b, uint64_t run, uint64_t ino, const struct meta_upload *r)
{
	uint8_t k[META_KEY_MAX], v[META_UPLOAD_VAL_LEN];
	size_t klen = meta_key_u64_u64(k, META_KEY_UPLOAD, run, ino);

	meta_batch_raw_put(b, k, klen, v, meta_val_upload(v, r));
}

int meta_put_upload(struct meta *m, uint64_t run, uint64_t ino, const struct meta_upload *r)
{
	struct meta_batch *b = meta_batch_new();
	int rc;

	if (!b)
		return -ENOMEM;
	meta_batch_put_upload(b, run, ino, r);
	/* Synced: a lost record would only cost a repeated (idempotent) upload, but the state shown
	 * to users (`seal --wait-upload`) must not go back after a crash. */
	rc = meta_batch_commit(m, b, true);
	meta_batch_free(b);
	return rc;
}

int meta_chunk_remote_get(struct meta *m, const struct digest *d, struct meta_remote *out)
{
	uint8_t k[META_KEY_MAX];
	size_t klen = meta_key_remote(k, d), len;
	char *v;
	int rc = meta_db_get(m, k, klen, &v, &len);

	if (rc < 0)
		return rc;
	rc = meta_dec_remote((const uint8_t *)v, len, out);
	rocksdb_free(v);
	return rc;
}

bool meta_chunk_is_remote(struct meta *m, const struct digest *d)
{
	struct meta_remote r;

	return meta_chunk_remote_get(m, d, &r) == 0;
}

void meta_batch_mark_remote(struct meta_batch *b, const struct digest *d, const struct meta_remote *r)
{
	uint8_t k[META_KEY_MAX], v[META_REMOTE_PACKED_VAL_LEN];
	size_t klen = meta_key_remote(k, d);

	meta_batch_raw_put(b, k, klen, v, meta_val_remote(v, r));
}

/* Not synced: losing a mark in a crash only costs a HEAD that finds the object again. */
static int remote_commit(struct meta *m, const struct digest *d, const struct meta_remote *mark)
{
	uint8_t k[META_KEY_MAX];
	struct meta_batch *b = meta_batch_new();
	int rc;

	if (!b)
		return -ENOMEM;
	if (mark)
		meta_batch_mark_remote(b, d, mark);
	else
		meta_batch_raw_del(b, k, meta_key_remote(k, d));
	rc = meta_batch_commit(m, b, false);
	meta_batch_free(b);
	return rc;
}

int meta_chunk_mark_remote(struct meta *m, const struct digest *d, const struct meta_remote *r)
{
	return remote_commit(m, d, r);
}

int meta_chunk_unmark_remote(struct meta *m, const struct digest *d)
{
	return remote_commit(m, d, NULL);
}
