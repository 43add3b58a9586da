/* meta_scan.c - range reads of the metadata: directory listings, extent lookups, xattr and
 * version lists, and the whole-database scans used by recovery, fsck and gc.
 *
 * Every scan is a RocksDB iterator bounded above by the successor of its key prefix, so it never
 * reads past the records it wants. Each call has its own iterator; a scan sees one snapshot.
 */
#include "meta_db.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "digest_table.h"
#include "meta_codec.h"

/* Runs an iterator over [lower, upper) and feeds cb; shared by the forward scans. */
static int meta_iter_run(rocksdb_iterator_t *it, const uint8_t *prefix, size_t plen, meta_db_scan_cb cb,
			 void *arg)
{
	char *err = NULL;
	int rc = 0;

	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);

		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;  /* defensive: the upper bound already ends the prefix */
		rc = cb(k, klen, v, vlen, arg);
		if (rc)
			return rc;
	}
	rocksdb_iter_get_error(it, &err);
	if (err)
		return meta_db_error(err, "scan");
	return 0;
}

/* A scan of one object's records (prefix of META_KEY_PREFIX_LEN bytes) may skip the table files
 * whose prefix filter says they hold none; any other scan must see every file in key order, which
 * with a prefix extractor set has to be asked for. */
static void scan_filter(rocksdb_readoptions_t *ro, size_t plen)
{
	if (plen == META_KEY_PREFIX_LEN)
		rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
	else
		rocksdb_readoptions_set_total_order_seek(ro, 1);
}

int meta_db_scan(struct meta *m, const uint8_t *prefix, size_t plen, const uint8_t *start,
		 size_t slen, meta_db_scan_cb cb, void *arg)
{
	uint8_t upper[META_KEY_MAX];
	size_t ulen = meta_key_successor(prefix, plen, upper);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	int rc;

	if (ulen)
		rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, ulen);
	scan_filter(ro, plen);
	it = rocksdb_create_iterator(m->db, ro);
	if (start)
		rocksdb_iter_seek(it, (const char *)start, slen);
	else
		rocksdb_iter_seek(it, (const char *)prefix, plen);
	rc = meta_iter_run(it, prefix, plen, cb, arg);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rc;
}

/* ---- directories ---- */

struct list_dir_arg {
	int (*cb)(const char *name, uint64_t ino, uint32_t mode, void *arg);
	void *arg;
	const char *after;
};

static int list_dir_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct list_dir_arg *a = arg;
	char name[META_NAME_MAX + 1];
	size_t n = klen - 9;
	uint64_t ino;
	uint32_t mode;
	int rc;

	if (n == 0 || n > META_NAME_MAX)
		return -EIO;
	memcpy(name, k + 9, n);
	name[n] = '\0';
	/* The seek lands on `after` itself when it still exists; the cursor means "strictly after". */
	if (a->after && strcmp(name, a->after) == 0)
		return 0;
	rc = meta_dec_dirent(v, vlen, &ino, &mode);
	if (rc)
		return rc;
	return a->cb(name, ino, mode, a->arg);
}

int meta_list_dir(struct meta *m, uint64_t parent, const char *after,
		  int (*cb)(const char *name, uint64_t ino, uint32_t mode, void *arg), void *arg)
{
	uint8_t prefix[META_KEY_MAX], start[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_DIRENT, parent), slen = 0;
	struct list_dir_arg a = { cb, arg, after };

	if (after) {
		if (strnlen(after, META_NAME_MAX + 1) > META_NAME_MAX)
			return -ENAMETOOLONG;
		slen = meta_key_u64_name(start, META_KEY_DIRENT, parent, after);
	}
	return meta_db_scan(m, prefix, plen, after ? start : NULL, slen, list_dir_step, &a);
}

static int stop_at_first(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	(void)k, (void)klen, (void)v, (void)vlen, (void)arg;
	return 1;
}

bool meta_dir_is_empty(struct meta *m, uint64_t parent)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_DIRENT, parent);

	/* An error reads as "not empty": rmdir then refuses rather than dropping entries. */
	return meta_db_scan(m, prefix, plen, NULL, 0, stop_at_first, NULL) == 0;
}

/* ---- extents ---- */

int meta_get_extents(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
		     int (*cb)(const struct meta_extent *e, void *arg), void *arg)
{
	uint8_t prefix[META_KEY_MAX], upper[META_KEY_MAX], target[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_EXTENT, ino);
	size_t ulen = meta_key_successor(prefix, plen, upper);
	size_t tlen = meta_key_u64_u64(target, META_KEY_EXTENT, ino, off);
	uint64_t end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	char *err = NULL;
	int rc = 0;

	if (len == 0)
		goto out;
	if (ulen)
		rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, ulen);
	/* Bounded below too: the step back must not walk through other inodes' deleted extents (a
	 * folder that removed many files holds many), which made each lookup cost all of them. */
	rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)prefix, plen);
	scan_filter(ro, plen);
	it = rocksdb_create_iterator(m->db, ro);
	/* Extents never overlap, so the only one starting before off that can reach into the range
	 * is the last one starting at or before off. */
	if (off == 0)
		rocksdb_iter_seek(it, (const char *)prefix, plen);  /* nothing starts before 0 */
	else
		rocksdb_iter_seek_for_prev(it, (const char *)target, tlen);
	if (off != 0 && rocksdb_iter_valid(it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (klen != 17 || memcmp(k, prefix, plen) != 0)
			rocksdb_iter_seek(it, (const char *)prefix, plen);
	} else if (off != 0) {
		rocksdb_iter_seek(it, (const char *)prefix, plen);
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
		struct meta_extent e;

		if (klen != 17 || memcmp(k, prefix, plen) != 0)
			break;
		rc = meta_dec_extent(meta_be64_get(k + 9), v, vlen, &e);
		if (rc)
			break;
		if (e.file_off >= end)
			break;
		if (e.file_off + e.len <= off)
			continue;
		rc = cb(&e, arg);
		if (rc)
			break;
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		if (err)
			rc = meta_db_error(err, "extent scan");
	}
	rocksdb_iter_destroy(it);
out:
	rocksdb_readoptions_destroy(ro);
	return rc;
}

struct file_chunks_arg {
	struct meta *m;
	struct digest_table *into;
};

static int file_chunk(const struct meta_extent *e, void *arg)
{
	struct file_chunks_arg *a = arg;
	struct meta_chunk ch;

	if (digest_table_has(a->into, &e->digest))
		return 0;  /* a digest seen before costs no read */
	int rc = meta_get_chunk(a->m, &e->digest, &ch);
	return rc < 0 ? rc : digest_table_add(a->into, &e->digest, ch.len, NULL);
}

int meta_add_file_chunks(struct meta *m, uint64_t ino, struct digest_table *into)
{
	struct file_chunks_arg a = { m, into };

	return meta_get_extents(m, ino, 0, UINT64_MAX, file_chunk, &a);
}

struct foreach_extent_arg {
	int (*cb)(uint64_t ino, const struct meta_extent *e, void *arg);
	void *arg;
};

static int foreach_extent_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct foreach_extent_arg *a = arg;
	struct meta_extent e;
	int rc;

	if (klen != 17)
		return -EIO;
	rc = meta_dec_extent(meta_be64_get(k + 9), v, vlen, &e);
	if (rc)
		return rc;
	return a->cb(meta_be64_get(k + 1), &e, a->arg);
}

int meta_foreach_extent(struct meta *m, int (*cb)(uint64_t ino, const struct meta_extent *e, void *arg),
			void *arg)
{
	uint8_t prefix = META_KEY_EXTENT;
	struct foreach_extent_arg a = { cb, arg };

	return meta_db_scan(m, &prefix, 1, NULL, 0, foreach_extent_step, &a);
}

/* ---- xattrs ---- */

struct list_xattr_arg {
	int (*cb)(const char *name, void *arg);
	void *arg;
};

static int list_xattr_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct list_xattr_arg *a = arg;
	char name[META_XATTR_NAME_MAX + 1];
	size_t n = klen - 9;

	(void)v, (void)vlen;
	if (n == 0 || n > META_XATTR_NAME_MAX)
		return -EIO;
	memcpy(name, k + 9, n);
	name[n] = '\0';
	return a->cb(name, a->arg);
}

int meta_list_xattrs(struct meta *m, uint64_t ino, int (*cb)(const char *name, void *arg), void *arg)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_XATTR, ino);
	struct list_xattr_arg a = { cb, arg };

	return meta_db_scan(m, prefix, plen, NULL, 0, list_xattr_step, &a);
}

/* ---- extra names (hard links) ---- */

struct list_link_arg {
	int (*cb)(uint64_t parent, const char *name, void *arg);
	void *arg;
};

static int list_link_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct list_link_arg *a = arg;
	char name[META_NAME_MAX + 1];
	size_t n = klen - 17;

	if (klen <= 17 || n > META_NAME_MAX || vlen != 1 || v[0] != META_RECORD_V1 || memchr(k + 17, '\0', n))
		return -EIO;
	memcpy(name, k + 17, n);
	name[n] = '\0';
	return a->cb(meta_be64_get(k + 9), name, a->arg);
}

int meta_list_links(struct meta *m, uint64_t ino, int (*cb)(uint64_t parent, const char *name, void *arg),
		    void *arg)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_LINK, ino);
	struct list_link_arg a = { cb, arg };

	return meta_db_scan(m, prefix, plen, NULL, 0, list_link_step, &a);
}

/* ---- versions ---- */

struct version_arg {
	int (*cb)(const struct meta_version *v, void *arg);
	void *arg;
};

static int version_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct version_arg *a = arg;
	struct meta_version ver;
	int rc;

	if (klen != 17)
		return -EIO;
	rc = meta_dec_version(meta_be64_get(k + 1), meta_be64_get(k + 9), v, vlen, &ver);
	if (rc)
		return rc;
	return a->cb(&ver, a->arg);
}

int meta_list_versions(struct meta *m, uint64_t run_ino,
		       int (*cb)(const struct meta_version *v, void *arg), void *arg)
{
	uint8_t prefix[META_KEY_MAX];
	size_t plen = meta_key_u64(prefix, META_KEY_VERSION, run_ino);
	struct version_arg a = { cb, arg };

	return meta_db_scan(m, prefix, plen, NULL, 0, version_step, &a);
}

/* ---- whole-database scans ---- */

struct inode_arg {
	int (*cb)(const struct meta_inode *i, void *arg);
	void *arg;
};

static int inode_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct inode_arg *a = arg;
	struct meta_inode i;
	int rc;

	if (klen != 9)
		return -EIO;
	rc = meta_dec_inode(meta_be64_get(k + 1), v, vlen, &i);
	if (rc)
		return rc;
	return a->cb(&i, a->arg);
}

int meta_foreach_inode(struct meta *m, int (*cb)(const struct meta_inode *i, void *arg), void *arg)
{
	uint8_t prefix = META_KEY_INODE;
	struct inode_arg a = { cb, arg };

	return meta_db_scan(m, &prefix, 1, NULL, 0, inode_step, &a);
}

struct chunk_arg {
	int (*cb)(const struct meta_chunk *c, void *arg);
	void *arg;
};

static int chunk_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct chunk_arg *a = arg;
	struct meta_chunk c;
	struct digest d;
	int rc;

	if (klen != 1 + DIGEST_LEN)
		return -EIO;
	memcpy(d.b, k + 1, DIGEST_LEN);
	rc = meta_dec_chunk(&d, v, vlen, &c);
	if (rc)
		return rc;
	return a->cb(&c, a->arg);
}

int meta_foreach_chunk(struct meta *m, int (*cb)(const struct meta_chunk *c, void *arg), void *arg)
{
	uint8_t prefix = META_KEY_CHUNK;
	struct chunk_arg a = { cb, arg };

	return meta_db_scan(m, &prefix, 1, NULL, 0, chunk_step, &a);
}

struct dirent_arg {
	int (*cb)(uint64_t parent, const char *name, uint64_t ino, uint32_t mode, void *arg);
	void *arg;
};

static int dirent_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct dirent_arg *a = arg;
	char name[META_NAME_MAX + 1];
	size_t n = klen - 9;
	uint64_t ino;
	uint32_t mode;
	int rc;

	if (klen <= 9 || n > META_NAME_MAX)
		return -EIO;
	memcpy(name, k + 9, n);
	name[n] = '\0';
	rc = meta_dec_dirent(v, vlen, &ino, &mode);
	if (rc)
		return rc;
	return a->cb(meta_be64_get(k + 1), name, ino, mode, a->arg);
}

int meta_foreach_dirent(struct meta *m,
			int (*cb)(uint64_t parent, const char *name, uint64_t ino, uint32_t mode, void *arg),
			void *arg)
{
	uint8_t prefix = META_KEY_DIRENT;
	struct dirent_arg a = { cb, arg };

	return meta_db_scan(m, &prefix, 1, NULL, 0, dirent_step, &a);
}

/* A scan of the records of one kind whose keys start with an inode, calling back once per inode. */
struct owner_arg {
	int (*cb)(uint64_t ino, void *arg);
	void *arg;
	size_t klen_min, klen_max;
	bool any;
	uint64_t last;
};

static int owner_step(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen, void *arg)
{
	struct owner_arg *a = arg;

	(void)v, (void)vlen;
	if (klen < a->klen_min || klen > a->klen_max)
		return -EIO;
	uint64_t ino = meta_be64_get(k + 1);
	if (a->any && ino == a->last)
		return 0;
	a->any = true;
	a->last = ino;
	return a->cb(ino, a->arg);
}

static int foreach_owner(struct meta *m, uint8_t kind, size_t klen_min, size_t klen_max,
			 int (*cb)(uint64_t ino, void *arg), void *arg)
{
	struct owner_arg a = { .cb = cb, .arg = arg, .klen_min = klen_min, .klen_max = klen_max };

	return meta_db_scan(m, &kind, 1, NULL, 0, owner_step, &a);
}

int meta_foreach_orphan(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg)
{
	return foreach_owner(m, META_KEY_ORPHAN, META_KEY_PREFIX_LEN, META_KEY_PREFIX_LEN, cb, arg);
}

int meta_foreach_symlink_owner(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg)
{
	return foreach_owner(m, META_KEY_SYMLINK, META_KEY_PREFIX_LEN, META_KEY_PREFIX_LEN, cb, arg);
}

int meta_foreach_xattr_owner(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg)
{
	/* Keys: the prefix, then a name of 1 to META_XATTR_NAME_MAX bytes. */
	return foreach_owner(m, META_KEY_XATTR, META_KEY_PREFIX_LEN + 1, META_KEY_PREFIX_LEN + META_XATTR_NAME_MAX,
			     cb, arg);
}
