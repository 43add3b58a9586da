/* meta_codec.c - encoding and decoding of metadata keys and values (layout in store/FORMAT.md).
 *
 * Pure functions over byte buffers: no RocksDB, no allocation. Integers in keys are big-endian
 * (ordering), in values little-endian (the host order of every machine we run on, written
 * byte by byte anyway so the format does not depend on it).
 */
#include "meta_codec.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static uint8_t *be64_put(uint8_t *p, uint64_t x)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(x >> (8 * i));
	return p;
}

uint64_t meta_be64_get(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static uint8_t *le_put(uint8_t *p, uint64_t x, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*p++ = (uint8_t)(x >> (8 * i));
	return p;
}

static uint64_t le_get(const uint8_t **pp, int bytes)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;

	for (int i = bytes - 1; i >= 0; i--)
		x = x << 8 | p[i];
	*pp = p + bytes;
	return x;
}

size_t meta_key_super(uint8_t *key)
{
	key[0] = META_KEY_SUPER;
	return 1;
}

size_t meta_key_u64(uint8_t *key, char prefix, uint64_t a)
{
	key[0] = (uint8_t)prefix;
	be64_put(key + 1, a);
	return 9;
}

size_t meta_key_u64_u64(uint8_t *key, char prefix, uint64_t a, uint64_t b)
{
	key[0] = (uint8_t)prefix;
	be64_put(be64_put(key + 1, a), b);
	return 17;
}

size_t meta_key_u64_name(uint8_t *key, char prefix, uint64_t a, const char *name)
{
	size_t n = strnlen(name, META_NAME_MAX + 1);

	assert(n <= META_NAME_MAX);
	if (n > META_NAME_MAX)
		n = META_NAME_MAX;
	key[0] = (uint8_t)prefix;
	be64_put(key + 1, a);
	memcpy(key + 9, name, n);
	return 9 + n;
}

size_t meta_key_u64_u64_name(uint8_t *key, char prefix, uint64_t a, uint64_t b, const char *name)
{
	size_t n = strnlen(name, META_NAME_MAX + 1);

	assert(n <= META_NAME_MAX);
	if (n > META_NAME_MAX)
		n = META_NAME_MAX;
	key[0] = (uint8_t)prefix;
	be64_put(be64_put(key + 1, a), b);
	memcpy(key + 17, name, n);
	return 17 + n;
}

size_t meta_key_chunk(uint8_t *key, const struct digest *d)
{
	key[0] = META_KEY_CHUNK;
	memcpy(key + 1, d->b, DIGEST_LEN);
	return 1 + DIGEST_LEN;
}

size_t meta_key_remote(uint8_t *key, const struct digest *d)
{
	key[0] = META_KEY_REMOTE;
	memcpy(key + 1, d->b, DIGEST_LEN);
	return 1 + DIGEST_LEN;
}

size_t meta_key_successor(const uint8_t *prefix, size_t len, uint8_t *out)
{
	memcpy(out, prefix, len);
	while (len > 0) {
		if (out[len - 1] != 0xff) {
			out[len - 1]++;
			return len;
		}
		len--;  /* 0xff cannot be incremented: drop it and carry into the byte before */
	}
	return 0;
}

size_t meta_val_super(uint8_t *v, const struct meta_super *s)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, s->format_version, 4);
	p = le_put(p, s->chunk_size, 4);
	p = le_put(p, s->next_ino, 8);
	p = le_put(p, s->next_seq, 8);
	memcpy(p, s->node_id, 16);
	p += 16;
	assert((size_t)(p - v) == META_SUPER_VAL_LEN);
	return (size_t)(p - v);
}

int meta_dec_super(const uint8_t *v, size_t len, struct meta_super *s)
{
	const uint8_t *p = v + 1;

	if (len != META_SUPER_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	s->format_version = (uint32_t)le_get(&p, 4);
	s->chunk_size = (uint32_t)le_get(&p, 4);
	s->next_ino = le_get(&p, 8);
	s->next_seq = le_get(&p, 8);
	memcpy(s->node_id, p, 16);
	return 0;
}

size_t meta_val_inode(uint8_t *v, const struct meta_inode *i)
{
	size_t n = strnlen(i->name, META_NAME_MAX);
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, i->parent, 8);
	p = le_put(p, i->version_ino, 8);
	p = le_put(p, i->mode, 4);
	p = le_put(p, i->uid, 4);
	p = le_put(p, i->gid, 4);
	p = le_put(p, i->nlink, 4);
	p = le_put(p, i->size, 8);
	p = le_put(p, (uint64_t)i->atime_ns, 8);
	p = le_put(p, (uint64_t)i->mtime_ns, 8);
	p = le_put(p, (uint64_t)i->ctime_ns, 8);
	p = le_put(p, i->generation, 8);
	p = le_put(p, n, 2);
	memcpy(p, i->name, n);
	p += n;
	/* Only device nodes carry the trailing device number: every other record keeps its size. */
	if (i->rdev != 0)
		p = le_put(p, i->rdev, 8);
	assert((size_t)(p - v) == META_INODE_VAL_FIXED + n + (i->rdev != 0 ? 8 : 0));
	return (size_t)(p - v);
}

int meta_dec_inode(uint64_t ino, const uint8_t *v, size_t len, struct meta_inode *i)
{
	const uint8_t *p = v + 1;
	size_t n;

	if (len < META_INODE_VAL_FIXED || v[0] != META_RECORD_V1)
		return -EIO;
	i->ino = ino;
	i->parent = le_get(&p, 8);
	i->version_ino = le_get(&p, 8);
	i->mode = (uint32_t)le_get(&p, 4);
	i->uid = (uint32_t)le_get(&p, 4);
	i->gid = (uint32_t)le_get(&p, 4);
	i->nlink = (uint32_t)le_get(&p, 4);
	i->size = le_get(&p, 8);
	i->atime_ns = (int64_t)le_get(&p, 8);
	i->mtime_ns = (int64_t)le_get(&p, 8);
	i->ctime_ns = (int64_t)le_get(&p, 8);
	i->generation = le_get(&p, 8);
	n = (size_t)le_get(&p, 2);
	if (n > META_NAME_MAX || (len != META_INODE_VAL_FIXED + n && len != META_INODE_VAL_FIXED + n + 8))
		return -EIO;
	memcpy(i->name, p, n);
	i->name[n] = '\0';
	p += n;
	i->rdev = len == META_INODE_VAL_FIXED + n + 8 ? le_get(&p, 8) : 0;
	if (len == META_INODE_VAL_FIXED + n + 8 && (i->rdev == 0 || !(S_ISCHR(i->mode) || S_ISBLK(i->mode))))
		return -EIO;
	return 0;
}

size_t meta_val_dirent(uint8_t *v, uint64_t ino, uint32_t mode)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, ino, 8);
	p = le_put(p, mode, 4);
	return (size_t)(p - v);
}

int meta_dec_dirent(const uint8_t *v, size_t len, uint64_t *ino, uint32_t *mode)
{
	const uint8_t *p = v + 1;

	if (len != META_DIRENT_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	*ino = le_get(&p, 8);
	*mode = (uint32_t)le_get(&p, 4);
	return 0;
}

size_t meta_val_extent(uint8_t *v, const struct meta_extent *e)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, e->len, 8);
	memcpy(p, e->digest.b, DIGEST_LEN);
	p += DIGEST_LEN;
	p = le_put(p, e->chunk_off, 8);
	return (size_t)(p - v);
}

int meta_dec_extent(uint64_t file_off, const uint8_t *v, size_t len, struct meta_extent *e)
{
	const uint8_t *p = v + 1;

	if (len != META_EXTENT_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	e->file_off = file_off;
	e->len = le_get(&p, 8);
	memcpy(e->digest.b, p, DIGEST_LEN);
	p += DIGEST_LEN;
	e->chunk_off = le_get(&p, 8);
	return 0;
}

size_t meta_val_chunk(uint8_t *v, const struct meta_chunk *c)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, c->len, 8);
	p = le_put(p, c->flags, 4);
	return (size_t)(p - v);
}

int meta_dec_chunk(const struct digest *d, const uint8_t *v, size_t len, struct meta_chunk *c)
{
	const uint8_t *p = v + 1;

	if (len != META_CHUNK_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	c->digest = *d;
	c->len = le_get(&p, 8);
	c->flags = (uint32_t)le_get(&p, 4);
	return 0;
}

size_t meta_val_version(uint8_t *v, const struct meta_version *ver)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, ver->state, 4);
	p = le_put(p, (uint64_t)ver->step, 8);
	p = le_put(p, ver->create_seq, 8);
	p = le_put(p, ver->seal_seq, 8);
	p = le_put(p, (uint64_t)ver->sealed_ns, 8);
	p = le_put(p, ver->files, 8);
	p = le_put(p, ver->logical_bytes, 8);
	p = le_put(p, ver->stored_bytes, 8);
	assert((size_t)(p - v) == META_VERSION_VAL_LEN);
	return (size_t)(p - v);
}

int meta_dec_version(uint64_t run_ino, uint64_t ino, const uint8_t *v, size_t len,
		     struct meta_version *ver)
{
	const uint8_t *p = v + 1;

	if (len != META_VERSION_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	ver->run_ino = run_ino;
	ver->ino = ino;
	ver->state = (uint32_t)le_get(&p, 4);
	ver->step = (int64_t)le_get(&p, 8);
	ver->create_seq = le_get(&p, 8);
	ver->seal_seq = le_get(&p, 8);
	ver->sealed_ns = (int64_t)le_get(&p, 8);
	ver->files = le_get(&p, 8);
	ver->logical_bytes = le_get(&p, 8);
	ver->stored_bytes = le_get(&p, 8);
	return 0;
}

size_t meta_val_upload(uint8_t *v, const struct meta_upload *u)
{
	uint8_t *p = v;

	*p++ = META_RECORD_V1;
	p = le_put(p, u->uploaded_bytes, 8);
	p = le_put(p, u->chunks, 8);
	p = le_put(p, (uint64_t)u->committed_ns, 8);
	return (size_t)(p - v);
}

size_t meta_val_remote(uint8_t *v, const struct meta_remote *r)
{
	uint8_t *p = v + 1;

	v[0] = META_RECORD_V1;
	p = le_put(p, r->epoch, 8);
	if (!r->packed)
		return META_REMOTE_VAL_LEN;
	memcpy(p, r->pack.b, DIGEST_LEN);
	p = le_put(p + DIGEST_LEN, r->pack_off, 8);
	return (size_t)(p - v);
}

int meta_dec_upload(const uint8_t *v, size_t len, struct meta_upload *u)
{
	if (len < META_UPLOAD_VAL_LEN || v[0] != META_RECORD_V1)
		return -EIO;
	v++;
	u->uploaded_bytes = le_get(&v, 8);
	u->chunks = le_get(&v, 8);
	u->committed_ns = (int64_t)le_get(&v, 8);
	return 0;
}

int meta_dec_remote(const uint8_t *v, size_t len, struct meta_remote *r)
{
	const uint8_t *p = v + 1;

	memset(r, 0, sizeof(*r));
	if (len == 1)
		return 0;
	if (len != META_REMOTE_VAL_LEN && len != META_REMOTE_PACKED_VAL_LEN)
		return -EIO;
	r->epoch = le_get(&p, 8);
	if (len == META_REMOTE_VAL_LEN)
		return 0;
	r->packed = true;
	memcpy(r->pack.b, p, DIGEST_LEN);
	p += DIGEST_LEN;
	r->pack_off = le_get(&p, 8);
	return 0;
}
