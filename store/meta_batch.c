/* meta_batch.c - typed edits of a metadata write batch (applied by meta_batch_commit in meta.c).
 *
 * Each helper encodes one key (and value) exactly as store/FORMAT.md specifies. Nothing touches
 * the database until commit, except the two del_all helpers, which read which keys exist.
 */
#include "meta_db.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_codec.h"

void meta_batch_put_super(struct meta_batch *b, const struct meta_super *s)
{
	uint8_t key[META_KEY_MAX], val[META_SUPER_VAL_LEN];
	size_t kl = meta_key_super(key), vl = meta_val_super(val, s);

	meta_batch_raw_put(b, key, kl, val, vl);
}

void meta_batch_put_inode(struct meta_batch *b, const struct meta_inode *i)
{
	uint8_t key[META_KEY_MAX], val[META_INODE_VAL_MAX];
	size_t kl = meta_key_u64(key, META_KEY_INODE, i->ino), vl = meta_val_inode(val, i);

	assert(i->ino != 0);
	meta_batch_raw_put(b, key, kl, val, vl);
	meta_batch_note_inode(b, i->ino, i);
}

void meta_batch_del_inode(struct meta_batch *b, uint64_t ino)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64(key, META_KEY_INODE, ino);

	meta_batch_raw_del(b, key, kl);
	meta_batch_note_inode(b, ino, NULL);
}

void meta_batch_put_dirent(struct meta_batch *b, uint64_t parent, const char *name, uint64_t ino, uint32_t mode)
{
	uint8_t key[META_KEY_MAX], val[META_DIRENT_VAL_LEN];
	size_t kl, vl;

	assert(name[0] != '\0' && strnlen(name, META_NAME_MAX + 1) <= META_NAME_MAX);
	kl = meta_key_u64_name(key, META_KEY_DIRENT, parent, name);
	vl = meta_val_dirent(val, ino, mode & S_IFMT);
	meta_batch_raw_put(b, key, kl, val, vl);
}

void meta_batch_del_dirent(struct meta_batch *b, uint64_t parent, const char *name)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64_name(key, META_KEY_DIRENT, parent, name);

	meta_batch_raw_del(b, key, kl);
}

void meta_batch_put_extent(struct meta_batch *b, uint64_t ino, const struct meta_extent *e)
{
	uint8_t key[META_KEY_MAX], val[META_EXTENT_VAL_LEN];
	size_t kl = meta_key_u64_u64(key, META_KEY_EXTENT, ino, e->file_off);
	size_t vl = meta_val_extent(val, e);

	assert(e->len > 0);
	meta_batch_raw_put(b, key, kl, val, vl);
	meta_batch_note_extent(b, ino, e->file_off, &e->digest);
}

void meta_batch_del_extent(struct meta_batch *b, uint64_t ino, uint64_t file_off)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64_u64(key, META_KEY_EXTENT, ino, file_off);

	meta_batch_raw_del(b, key, kl);
	meta_batch_note_extent(b, ino, file_off, NULL);
}

void meta_batch_put_symlink(struct meta_batch *b, uint64_t ino, const char *target)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64(key, META_KEY_SYMLINK, ino);
	size_t n = strlen(target);
	uint8_t val[1 + 4096];

	/* PATH_MAX bounds a symlink target; the fs checks it before it gets here. */
	assert(n < sizeof(val));
	if (n >= sizeof(val))
		n = sizeof(val) - 1;
	val[0] = META_RECORD_V1;
	memcpy(val + 1, target, n);
	meta_batch_raw_put(b, key, kl, val, 1 + n);
}

void meta_batch_del_symlink(struct meta_batch *b, uint64_t ino)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64(key, META_KEY_SYMLINK, ino);

	meta_batch_raw_del(b, key, kl);
}

void meta_batch_put_link(struct meta_batch *b, uint64_t ino, uint64_t parent, const char *name)
{
	uint8_t key[META_KEY_MAX], ver = META_RECORD_V1;
	size_t kl = meta_key_u64_u64_name(key, META_KEY_LINK, ino, parent, name);

	assert(name[0] != '\0');
	meta_batch_raw_put(b, key, kl, &ver, 1);
}

void meta_batch_del_link(struct meta_batch *b, uint64_t ino, uint64_t parent, const char *name)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64_u64_name(key, META_KEY_LINK, ino, parent, name);

	meta_batch_raw_del(b, key, kl);
}

void meta_batch_put_xattr(struct meta_batch *b, uint64_t ino, const char *name, const void *val, size_t len)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64_name(key, META_KEY_XATTR, ino, name);
	uint8_t ver = META_RECORD_V1;

	/* Value = version byte + the bytes; put as two slices so large values are not copied twice. */
	meta_batch_raw_put2(b, key, kl, &ver, 1, val, len);
}

void meta_batch_del_xattr(struct meta_batch *b, uint64_t ino, const char *name)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64_name(key, META_KEY_XATTR, ino, name);

	meta_batch_raw_del(b, key, kl);
}

void meta_batch_put_chunk(struct meta_batch *b, const struct meta_chunk *c)
{
	uint8_t key[META_KEY_MAX], val[META_CHUNK_VAL_LEN];
	size_t kl = meta_key_chunk(key, &c->digest), vl = meta_val_chunk(val, c);

	meta_batch_raw_put(b, key, kl, val, vl);
}

void meta_batch_del_chunk(struct meta_batch *b, const struct digest *d)
{
	uint8_t key[META_KEY_MAX];

	meta_batch_raw_del(b, key, meta_key_chunk(key, d));
	/* Its mark of a copy in the bucket goes with it: nothing reads the mark of a chunk without a
	 * record, and a chunk stored again is checked with one HEAD. */
	meta_batch_raw_del(b, key, meta_key_remote(key, d));
}

void meta_batch_put_version(struct meta_batch *b, const struct meta_version *v)
{
	uint8_t key[META_KEY_MAX], val[META_VERSION_VAL_LEN];
	size_t kl = meta_key_u64_u64(key, META_KEY_VERSION, v->run_ino, v->ino);
	size_t vl = meta_val_version(val, v);

	meta_batch_raw_put(b, key, kl, val, vl);
}

void meta_batch_del_version(struct meta_batch *b, uint64_t run_ino, uint64_t ino)
{
	uint8_t key[META_KEY_MAX];

	meta_batch_raw_del(b, key, meta_key_u64_u64(key, META_KEY_VERSION, run_ino, ino));
	/* The upload record is the version's too (a version moved to another run is a new upload). */
	meta_batch_raw_del(b, key, meta_key_u64_u64(key, META_KEY_UPLOAD, run_ino, ino));
}

void meta_batch_put_orphan(struct meta_batch *b, uint64_t ino)
{
	uint8_t key[META_KEY_MAX], val = META_RECORD_V1;
	size_t kl = meta_key_u64(key, META_KEY_ORPHAN, ino);

	meta_batch_raw_put(b, key, kl, &val, 1);
}

void meta_batch_del_orphan(struct meta_batch *b, uint64_t ino)
{
	uint8_t key[META_KEY_MAX];
	size_t kl = meta_key_u64(key, META_KEY_ORPHAN, ino);

	meta_batch_raw_del(b, key, kl);
}

static int del_key_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	(void)v, (void)vlen;
	meta_batch_raw_del(arg, k, klen);
	return 0;
}

static int del_extent_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	(void)v, (void)vlen;
	if (klen != 17)
		return -EIO;  /* not an extent key */
	meta_batch_raw_del(arg, k, klen);
	meta_batch_note_extent(arg, meta_be64_get(k + 1), meta_be64_get(k + 9), NULL);
	return 0;
}

int meta_batch_del_all_extents(struct meta *m, struct meta_batch *b, uint64_t ino)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_EXTENT, ino);

	return meta_db_scan(m, prefix, plen, NULL, 0, del_extent_step, b);
}

int meta_batch_del_all_xattrs(struct meta *m, struct meta_batch *b, uint64_t ino)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_XATTR, ino);

	return meta_db_scan(m, prefix, plen, NULL, 0, del_key_step, b);
}
