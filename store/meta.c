/* meta.c - opening the metadata database, error mapping, point reads and commits.
 *
 * RocksDB with one column family; keys and values are encoded by meta_codec.c, range reads live
 * in meta_scan.c. Commits are atomic write batches; "sync" commits wait for the write-ahead log to
 * reach the disk, which is the durability point of fsync and seal.
 *
 * The logical bytes (the sizes of all regular files with a link) are counted at open with one pass
 * over the inode records and then kept by every commit: a batch notes the inode records it puts or
 * deletes, and its commit adds the difference each makes against the record it replaces
 * (meta_tally.c, which keeps open versions' figures the same way). Inode records change under fs's
 * namespace lock, so no two commits race on one inode.
 */
#include "meta_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_codec.h"

struct meta_batch {
	rocksdb_writebatch_t *wb;
	struct meta_notes notes;
};

struct meta_notes *meta_batch_notes(struct meta_batch *b)
{
	return &b->notes;
}

static int sum_contrib(const struct meta_inode *i, void *arg)
{
	*(uint64_t *)arg += meta_inode_logical(i);
	return 0;
}

uint64_t meta_logical_bytes(struct meta *m)
{
	if (__atomic_load_n(&m->logical_stale, __ATOMIC_ACQUIRE)) {
		uint64_t sum = 0;
		if (meta_foreach_inode(m, sum_contrib, &sum) == 0) {
			__atomic_store_n(&m->logical_bytes, (int64_t)sum, __ATOMIC_RELAXED);
			__atomic_store_n(&m->logical_stale, false, __ATOMIC_RELEASE);
		}
	}
	int64_t v = __atomic_load_n(&m->logical_bytes, __ATOMIC_RELAXED);
	return v > 0 ? (uint64_t)v : 0;
}

int meta_db_error(char *err, const char *what)
{
	int rc = -EIO;

	if (err && (strstr(err, "No space") || strstr(err, "no space")))
		rc = -ENOSPC;
	fprintf(stderr, "pecfs: metadata: %s: %s\n", what, err ? err : "unknown error");
	rocksdb_free(err);
	return rc;
}

/* The LOCK file of another process (or of this one) makes rocksdb_open fail with an I/O error
 * whose text names the lock; nothing else in RocksDB's open path does. */
static int meta_open_error_is_busy(const char *err)
{
	return strstr(err, "/LOCK") != NULL &&
	       (strstr(err, "Resource temporarily unavailable") || strstr(err, "lock hold") ||
		strstr(err, "No locks available") || strstr(err, "already held"));
}

/* The prefix the table files' filters hold: a key's first META_KEY_PREFIX_LEN bytes, or the whole
 * key when shorter (the superblock's is one byte). RocksDB's fixed prefix transform is undefined for
 * short keys, and an iterator stepping back from a file's first extent applies the transform to
 * whatever key it meets before the lower bound: with it, the step onto the superblock's key aborted
 * in RocksDB's InDomain assertion. This one is total, the same as RocksDB's capped prefix transform,
 * whose name it carries so that RocksDB's tools read the filters the same way. */
static char *prefix_of(void *state, const char *key, size_t len, size_t *plen)
{
	(void)state;
	*plen = len < META_KEY_PREFIX_LEN ? len : META_KEY_PREFIX_LEN;
	return (char *)key;
}

static void prefix_state_free(void *state)
{
	(void)state;  /* none: RocksDB calls this unconditionally */
}

static unsigned char prefix_in_domain(void *state, const char *key, size_t len)
{
	(void)state, (void)key, (void)len;
	return 1;
}

static unsigned char prefix_in_range(void *state, const char *key, size_t len)
{
	(void)state, (void)key, (void)len;
	return 0;
}

static const char *prefix_name(void *state)
{
	(void)state;
	return "rocksdb.CappedPrefix.9";
}

_Static_assert(META_KEY_PREFIX_LEN == 9, "prefix_name spells the length");

int meta_open(const char *dir, struct meta **out)
{
	struct meta *m;
	char *err = NULL;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->sync_mu, NULL);
	pthread_cond_init(&m->sync_cv, NULL);
	pthread_mutex_init(&m->tally_mu, NULL);
	pthread_rwlock_init(&m->commit_rw, NULL);
	m->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(m->opts, 1);
	/* Metadata is small next to the data: a 4 GiB checkpoint has ~1000 extents of ~70 bytes, so
	 * 8 MiB of memtable absorbs many checkpoints between flushes. Kept small on purpose: RocksDB
	 * preallocates each write-ahead log file at about 1.1x this size, disk that a nearly full
	 * data disk needs for chunks. */
	rocksdb_options_set_write_buffer_size(m->opts, 8u << 20);
	rocksdb_options_set_compression(m->opts, rocksdb_lz4_compression);
	rocksdb_options_set_keep_log_file_num(m->opts, 3);
	rocksdb_options_set_max_log_file_size(m->opts, 8u << 20);
	rocksdb_options_increase_parallelism(m->opts, 2);
	m->table_opts = rocksdb_block_based_options_create();
	m->cache = rocksdb_cache_create_lru(64u << 20);
	rocksdb_block_based_options_set_block_cache(m->table_opts, m->cache);
	rocksdb_block_based_options_set_filter_policy(m->table_opts, rocksdb_filterpolicy_create_bloom(10));
	/* The filters also hold each key's prefix (prefix_of), so a scan of one object's records (a
	 * file's extents, its xattrs, a directory's entries) skips every table file that has none;
	 * gets still use the whole keys. Table files written without them, or with another transform
	 * (by older builds), read the same (store/FORMAT.md section 3). The options take ownership of
	 * the transform. */
	rocksdb_options_set_prefix_extractor(m->opts, rocksdb_slicetransform_create(NULL, prefix_state_free, prefix_of,
										  prefix_in_domain, prefix_in_range,
										  prefix_name));
	rocksdb_options_set_block_based_table_factory(m->opts, m->table_opts);

	m->db = rocksdb_open(m->opts, dir, &err);
	if (err) {
		if (meta_open_error_is_busy(err)) {
			fprintf(stderr, "pecfs: metadata: %s is in use by another process\n", dir);
			rocksdb_free(err);
			rc = -EBUSY;
		} else {
			rc = meta_db_error(err, "open");
		}
		m->db = NULL;
		goto out_err;
	}
	m->ropts = rocksdb_readoptions_create();
	m->wopts = rocksdb_writeoptions_create();
	m->wopts_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(m->wopts_sync, 1);
	m->logical_stale = true;  /* counted on first use, then kept by commits */
	*out = m;
	return 0;

out_err:
	meta_close(m);
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	if (m->db)
		rocksdb_close(m->db);
	if (m->ropts)
		rocksdb_readoptions_destroy(m->ropts);
	if (m->wopts)
		rocksdb_writeoptions_destroy(m->wopts);
	if (m->wopts_sync)
		rocksdb_writeoptions_destroy(m->wopts_sync);
	if (m->opts)
		rocksdb_options_destroy(m->opts);
	if (m->table_opts)
		rocksdb_block_based_options_destroy(m->table_opts);
	if (m->cache)
		rocksdb_cache_destroy(m->cache);
	pthread_cond_destroy(&m->sync_cv);
	pthread_mutex_destroy(&m->sync_mu);
	meta_tallies_free(m);
	pthread_mutex_destroy(&m->tally_mu);
	pthread_rwlock_destroy(&m->commit_rw);
	free(m);
}

static int meta_sync_wal(struct meta *m)
{
	char *err = NULL;

	rocksdb_flush_wal(m->db, 1, &err);
	if (err)
		return meta_db_error(err, "sync");
	return 0;
}

/* Group commit. A caller needs a WAL sync that starts after it arrives: every commit it made is in
 * the log by then. The round numbered sync_started + 1 is the first to start after this call, so it
 * covers the caller, whoever runs it; the first caller to find no round running runs the next one,
 * and all who arrived before it share its result. N concurrent fsyncs cost about two syncs, not N. */
int meta_sync(struct meta *m)
{
	pthread_mutex_lock(&m->sync_mu);
	uint64_t mine = m->sync_started + 1;
	while (m->sync_done < mine) {
		if (m->syncing) {
			pthread_cond_wait(&m->sync_cv, &m->sync_mu);
			continue;
		}
		uint64_t round = ++m->sync_started;
		m->syncing = true;
		pthread_mutex_unlock(&m->sync_mu);
		int rc = meta_sync_wal(m);
		pthread_mutex_lock(&m->sync_mu);
		m->sync_rc[round % META_SYNC_RING] = rc;
		if (rc < 0) {
			m->sync_failed = round;
			m->sync_failed_rc = rc;
		}
		m->sync_done = round;
		m->syncing = false;
		pthread_cond_broadcast(&m->sync_cv);
	}
	int rc;
	if (m->sync_done - mine < META_SYNC_RING)
		rc = m->sync_rc[mine % META_SYNC_RING];
	else  /* woke too late to read its own round: any failure since counts */
		rc = m->sync_failed >= mine ? m->sync_failed_rc : 0;
	pthread_mutex_unlock(&m->sync_mu);
	return rc;
}

int meta_db_get(struct meta *m, const uint8_t *key, size_t klen, char **val, size_t *len)
{
	char *err = NULL;

	*val = rocksdb_get(m->db, m->ropts, (const char *)key, klen, len, &err);
	if (err)
		return meta_db_error(err, "read");
	if (!*val)
		return -ENOENT;
	return 0;
}

int meta_get_super(struct meta *m, struct meta_super *out)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_super(key), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_super((const uint8_t *)val, len, out);
	rocksdb_free(val);
	if (rc)
		fprintf(stderr, "pecfs: metadata: unreadable superblock record\n");
	return rc;
}

int meta_get_inode(struct meta *m, uint64_t ino, struct meta_inode *out)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64(key, META_KEY_INODE, ino), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_inode(ino, (const uint8_t *)val, len, out);
	rocksdb_free(val);
	if (rc)
		fprintf(stderr, "pecfs: metadata: unreadable inode record %llu\n", (unsigned long long)ino);
	return rc;
}

int meta_get_dirent(struct meta *m, uint64_t parent, const char *name, uint64_t *ino, uint32_t *mode)
{
	uint8_t key[META_KEY_MAX];
	size_t klen, len;
	char *val;
	int rc;

	if (strnlen(name, META_NAME_MAX + 1) > META_NAME_MAX)
		return -ENAMETOOLONG;
	klen = meta_key_u64_name(key, META_KEY_DIRENT, parent, name);
	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_dirent((const uint8_t *)val, len, ino, mode);
	rocksdb_free(val);
	return rc;
}

int meta_get_symlink(struct meta *m, uint64_t ino, char *buf, size_t size)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64(key, META_KEY_SYMLINK, ino), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	if (len < 1 || val[0] != META_RECORD_V1) {
		rc = -EIO;
	} else if (len - 1 + 1 > size) {
		rc = -ERANGE;
	} else {
		memcpy(buf, val + 1, len - 1);
		buf[len - 1] = '\0';
		rc = (int)(len - 1);
	}
	rocksdb_free(val);
	return rc;
}

int meta_get_link(struct meta *m, uint64_t ino, uint64_t parent, const char *name)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64_u64_name(key, META_KEY_LINK, ino, parent, name), len;
	char *val;
	int rc = meta_db_get(m, key, klen, &val, &len);

	if (rc)
		return rc;
	rc = len == 1 && val[0] == META_RECORD_V1 ? 0 : -EIO;
	rocksdb_free(val);
	return rc;
}

int meta_get_xattr(struct meta *m, uint64_t ino, const char *name, void *buf, size_t size)
{
	uint8_t key[META_KEY_MAX];
	size_t klen, len;
	char *val;
	int rc;

	if (strnlen(name, META_XATTR_NAME_MAX + 1) > META_XATTR_NAME_MAX)
		return -ENODATA;
	klen = meta_key_u64_name(key, META_KEY_XATTR, ino, name);
	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc == -ENOENT ? -ENODATA : rc;
	if (len < 1 || val[0] != META_RECORD_V1) {
		rc = -EIO;
	} else {
		size_t n = len - 1;

		if (size > 0)
			memcpy(buf, val + 1, n < size ? n : size);
		rc = (int)n;
	}
	rocksdb_free(val);
	return rc;
}

int meta_get_chunk(struct meta *m, const struct digest *d, struct meta_chunk *out)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_chunk(key, d), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_chunk(d, (const uint8_t *)val, len, out);
	rocksdb_free(val);
	return rc;
}

int meta_get_extent(struct meta *m, uint64_t ino, uint64_t file_off, struct meta_extent *out)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64_u64(key, META_KEY_EXTENT, ino, file_off), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_extent(file_off, (const uint8_t *)val, len, out);
	rocksdb_free(val);
	return rc;
}

int meta_get_version(struct meta *m, uint64_t run_ino, uint64_t ino, struct meta_version *out)
{
	uint8_t key[META_KEY_MAX];
	size_t klen = meta_key_u64_u64(key, META_KEY_VERSION, run_ino, ino), len;
	char *val;
	int rc;

	rc = meta_db_get(m, key, klen, &val, &len);
	if (rc)
		return rc;
	rc = meta_dec_version(run_ino, ino, (const uint8_t *)val, len, out);
	rocksdb_free(val);
	return rc;
}

/* ---- batches ---- */

struct meta_batch *meta_batch_new(void)
{
	struct meta_batch *b = malloc(sizeof(*b));

	if (!b)
		return NULL;
	*b = (struct meta_batch){ .wb = rocksdb_writebatch_create() };
	return b;
}

void meta_batch_free(struct meta_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	meta_notes_free(&b->notes);
	free(b);
}

void meta_batch_clear(struct meta_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
	meta_notes_clear(&b->notes);
}

int meta_batch_commit(struct meta *m, struct meta_batch *b, bool sync)
{
	struct meta_tally_delta d;
	char *err = NULL;

	if (!sync && rocksdb_writebatch_count(b->wb) == 0) {
		meta_notes_clear(&b->notes);
		return 0;  /* nothing to write (a file opened with no extents past its size to drop) */
	}
	/* A batch of inode records may move a file to another version, and its prepare counts the file's
	 * extents as they are: no extent commit may come between that count and the write. Extent-only
	 * batches (the data writers') run side by side. */
	bool inodes = b->notes.ninodes > 0;
	if (inodes)
		pthread_rwlock_wrlock(&m->commit_rw);
	else
		pthread_rwlock_rdlock(&m->commit_rw);
	meta_notes_prepare(m, &b->notes, &d);
	rocksdb_write(m->db, sync ? m->wopts_sync : m->wopts, b->wb, &err);
	if (!err)
		meta_notes_apply(m, &d);
	pthread_rwlock_unlock(&m->commit_rw);
	rocksdb_writebatch_clear(b->wb);
	meta_notes_clear(&b->notes);
	meta_tally_delta_free(&d);
	if (err)
		return meta_db_error(err, "commit");
	return 0;
}

/* Shared by the put/del helpers in meta_batch.c. */
void meta_batch_raw_put(struct meta_batch *b, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, vl);
}

void meta_batch_raw_put2(struct meta_batch *b, const uint8_t *k, size_t kl, const void *v1, size_t l1,
			 const void *v2, size_t l2)
{
	const char *key = (const char *)k;
	const char *parts[2] = { v1, v2 };
	size_t sizes[2] = { l1, l2 };

	rocksdb_writebatch_putv(b->wb, 1, &key, &kl, 2, parts, sizes);
}

void meta_batch_raw_del(struct meta_batch *b, const uint8_t *k, size_t kl)
{
	rocksdb_writebatch_delete(b->wb, (const char *)k, kl);
}
