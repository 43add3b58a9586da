/* inode.c - the in-memory inode table: loaded inodes by number, their kernel lookup counts and
 * references, cached records, data_files, and the freeing of unlinked files.
 *
 * An entry is loaded from the database on first use and dropped when the kernel has forgotten it and
 * no request or handle holds it, unless its data_file has lost written bytes: that entry stays, so
 * the loss keeps failing fsync, close and the version's seal until the file is rewritten, truncated
 * or removed. A file's data_file lives from its first open until the entry goes. Inode numbers are
 * never reused, so a stale entry can never be mistaken for a new inode.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

#define FS_TABLE_BUCKETS 1024u  /* to start with: table_grow doubles it */

int fs_table_init(struct fs_ctx *ctx)
{
	ctx->nbuckets = FS_TABLE_BUCKETS;
	ctx->bucket_bits = (unsigned)__builtin_ctzll(FS_TABLE_BUCKETS);
	ctx->buckets = calloc(ctx->nbuckets, sizeof(*ctx->buckets));
	return ctx->buckets ? 0 : -ENOMEM;
}

static void inode_destroy(struct fs_inode *ind)
{
	pthread_mutex_destroy(&ind->lock);
	free(ind);
}

void fs_table_free(struct fs_ctx *ctx)
{
	for (size_t i = 0; ctx->buckets && i < ctx->nbuckets; i++) {
		struct fs_inode *ind = ctx->buckets[i];
		while (ind) {
			struct fs_inode *next = ind->hnext;
			assert(!ind->df);
			inode_destroy(ind);
			ind = next;
		}
	}
	free(ctx->buckets);
	ctx->buckets = NULL;
}

/* Fibonacci hashing: the top bits of the product. (Its middle bits put 100k consecutive inode
 * numbers in an eighth of 65536 buckets, 13 to a chain.) */
static size_t bucket_of(struct fs_ctx *ctx, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> (64 - ctx->bucket_bits));
}

/* Doubles the table once it holds two inodes a bucket, so chains stay short however many files the
 * kernel keeps; without memory it stays as it is. Caller holds table_lock. */
static void table_grow(struct fs_ctx *ctx)
{
	size_t n = ctx->nbuckets * 2;
	struct fs_inode **nb;

	if (ctx->ninodes <= 2 * ctx->nbuckets || ctx->bucket_bits >= 40 || !(nb = calloc(n, sizeof(*nb))))
		return;
	struct fs_inode **old = ctx->buckets;
	size_t oldn = ctx->nbuckets;
	ctx->buckets = nb;
	ctx->nbuckets = n;
	ctx->bucket_bits++;
	for (size_t i = 0; i < oldn; i++)
		for (struct fs_inode *ind = old[i], *next; ind; ind = next) {
			size_t b = bucket_of(ctx, ind->ino);
			next = ind->hnext;
			ind->hnext = nb[b];
			nb[b] = ind;
		}
	free(old);
}

static struct fs_inode *table_find(struct fs_ctx *ctx, uint64_t ino)
{
	for (struct fs_inode *ind = ctx->buckets[bucket_of(ctx, ino)]; ind; ind = ind->hnext)
		if (ind->ino == ino)
			return ind;
	return NULL;
}

/* fs_inode_get, and with removed_dir_ok also a directory removed while the kernel still holds it. */
static int inode_get(struct fs_ctx *ctx, uint64_t ino, struct fs_inode **out, bool removed_dir_ok)
{
	if (pec_is_virtual(ino))
		return -EPERM;
	pthread_mutex_lock(&ctx->table_lock);
	struct fs_inode *ind = table_find(ctx, ino);
	if (ind)
		ind->refs++;
	pthread_mutex_unlock(&ctx->table_lock);

	if (!ind) {
		/* Load outside the table lock; another thread may load the same inode meanwhile, in
		 * which case its entry wins and ours is discarded. */
		struct fs_inode *fresh = calloc(1, sizeof(*fresh));
		if (!fresh)
			return -ENOMEM;
		int rc = meta_get_inode(ctx->meta, ino, &fresh->mi);
		if (rc < 0) {
			free(fresh);
			return rc;
		}
		fresh->ino = ino;
		fresh->refs = 1;
		fresh->freed = fresh->mi.nlink == 0 && !S_ISDIR(fresh->mi.mode);
		pthread_mutex_init(&fresh->lock, NULL);
		pthread_mutex_lock(&ctx->table_lock);
		ind = table_find(ctx, ino);
		if (ind) {
			ind->refs++;
		} else {
			size_t b = bucket_of(ctx, ino);
			fresh->hnext = ctx->buckets[b];
			ctx->buckets[b] = fresh;
			ctx->ninodes++;
			table_grow(ctx);
			ind = fresh;
			fresh = NULL;
		}
		pthread_mutex_unlock(&ctx->table_lock);
		if (fresh)
			inode_destroy(fresh);
	}

	pthread_mutex_lock(&ind->lock);
	bool freed = ind->freed && !(removed_dir_ok && S_ISDIR(ind->mi.mode));
	pthread_mutex_unlock(&ind->lock);
	if (freed) {
		fs_inode_put(ctx, ind);
		return -ENOENT;
	}
	*out = ind;
	return 0;
}

int fs_inode_get(struct fs_ctx *ctx, uint64_t ino, struct fs_inode **out)
{
	return inode_get(ctx, ino, out, false);
}

int fs_inode_get_attr(struct fs_ctx *ctx, uint64_t ino, struct fs_inode **out)
{
	return inode_get(ctx, ino, out, true);
}

void fs_inode_ref(struct fs_ctx *ctx, struct fs_inode *ind)
{
	pthread_mutex_lock(&ctx->table_lock);
	assert(ind->refs > 0 || ind->nlookup > 0);
	ind->refs++;
	pthread_mutex_unlock(&ctx->table_lock);
}

/* Removes ind from the table if nothing holds it; returns true if the caller must finish it. A file
 * whose data_file lost written bytes stays: forgetting it would forget the loss. (With no reference
 * left, nothing can clear or free df meanwhile; the next holder's last put looks again.) */
static bool table_unlink_if_unused(struct fs_ctx *ctx, struct fs_inode *ind)
{
	if (ind->refs || ind->nlookup)
		return false;
	if (ind->df && !ind->freed && data_file_failed(ind->df))
		return false;
	struct fs_inode **pp = &ctx->buckets[bucket_of(ctx, ind->ino)];
	while (*pp != ind)
		pp = &(*pp)->hnext;
	*pp = ind->hnext;
	ctx->ninodes--;
	return true;
}

/* Last holder gone: write back what the data_file still owns, free it, and free an unlinked file. */
static void inode_finish(struct fs_ctx *ctx, struct fs_inode *ind)
{
	if (ind->df) {
		int rc = data_flush(ind->df);
		if (rc < 0)
			pecfs_log_error("flush of inode %llu failed while dropping it: %s",
			       (unsigned long long)ind->ino, strerror(-rc));
		if (!ind->freed && ind->meta_dirty)
			fs_inode_persist(ctx, ind, false);
	}
	fs_inode_reap(ctx, ind);
	if (ind->df) {
		data_file_free(ind->df);
		ind->df = NULL;
	}
	inode_destroy(ind);
}

void fs_inode_put(struct fs_ctx *ctx, struct fs_inode *ind)
{
	pthread_mutex_lock(&ctx->table_lock);
	assert(ind->refs > 0);
	ind->refs--;
	bool finish = table_unlink_if_unused(ctx, ind);
	pthread_mutex_unlock(&ctx->table_lock);
	if (finish)
		inode_finish(ctx, ind);
}

void fs_inode_lookup_inc(struct fs_ctx *ctx, struct fs_inode *ind)
{
	pthread_mutex_lock(&ctx->table_lock);
	ind->nlookup++;
	pthread_mutex_unlock(&ctx->table_lock);
}

void fs_inode_forget(struct fs_ctx *ctx, uint64_t ino, uint64_t n)
{
	if (pec_is_virtual(ino))
		return;
	pthread_mutex_lock(&ctx->table_lock);
	struct fs_inode *ind = table_find(ctx, ino);
	bool finish = false;
	if (ind) {
		ind->nlookup = ind->nlookup > n ? ind->nlookup - n : 0;
		finish = table_unlink_if_unused(ctx, ind);
	}
	pthread_mutex_unlock(&ctx->table_lock);
	if (finish)
		inode_finish(ctx, ind);
}

int fs_inode_loaded_files(struct fs_ctx *ctx, uint64_t version_ino, struct fs_inode ***out, size_t *n)
{
	size_t cap = 0, cnt = 0;
	struct fs_inode **arr = NULL;
	int rc = 0;
	pthread_mutex_lock(&ctx->table_lock);
	for (size_t i = 0; i < ctx->nbuckets && rc == 0; i++) {
		for (struct fs_inode *ind = ctx->buckets[i]; ind; ind = ind->hnext) {
			/* df and mi.version_ino are read without ind->lock: df is only set by threads that
			 * hold a reference and is cleared only in inode_finish, after the entry left the
			 * table, by fs_inode_reap once the file is unlinked (nlink 0), or by the removal
			 * of its last name under ns_lock (ops_ns.c, drop_free_now). nlink and
			 * version_ino change only under ns_lock, which the callers that race with
			 * releases (seal) hold, so a file collected here keeps its data_file. */
			if (!ind->df || ind->freed)
				continue;
			if (version_ino != UINT64_MAX && (ind->mi.version_ino != version_ino || ind->mi.nlink == 0))
				continue;
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct fs_inode **na = realloc(arr, ncap * sizeof(*arr));
				if (!na) {
					rc = -ENOMEM;
					break;
				}
				arr = na;
				cap = ncap;
			}
			ind->refs++;
			arr[cnt++] = ind;
		}
	}
	pthread_mutex_unlock(&ctx->table_lock);
	if (rc < 0) {
		for (size_t i = 0; i < cnt; i++)
			fs_inode_put(ctx, arr[i]);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

bool fs_inode_version_has_unlinked(struct fs_ctx *ctx, uint64_t version_ino)
{
	bool found = false;
	pthread_mutex_lock(&ctx->table_lock);
	for (size_t i = 0; i < ctx->nbuckets && !found; i++)
		for (struct fs_inode *ind = ctx->buckets[i]; ind && !found; ind = ind->hnext)
			found = ind->df && !ind->freed && ind->mi.version_ino == version_ino && ind->mi.nlink == 0;
	pthread_mutex_unlock(&ctx->table_lock);
	return found;
}

int fs_inode_peek_size(struct fs_ctx *ctx, uint64_t ino, uint64_t *size)
{
	pthread_mutex_lock(&ctx->table_lock);
	struct fs_inode *ind = table_find(ctx, ino);
	if (ind)
		ind->refs++;
	pthread_mutex_unlock(&ctx->table_lock);
	if (!ind)
		return -ENOENT;
	pthread_mutex_lock(&ind->lock);
	*size = fs_inode_size_locked(ind);
	pthread_mutex_unlock(&ind->lock);
	fs_inode_put(ctx, ind);
	return 0;
}

uint64_t fs_inode_size_locked(struct fs_inode *ind)
{
	return ind->df ? data_file_size(ind->df) : ind->mi.size;
}

void fs_inode_snapshot(struct fs_inode *ind, struct meta_inode *out)
{
	pthread_mutex_lock(&ind->lock);
	*out = ind->mi;
	out->size = fs_inode_size_locked(ind);
	pthread_mutex_unlock(&ind->lock);
}

static void timespec_of(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += 1000000000;
	}
}

void fs_inode_stat(struct fs_ctx *ctx, struct fs_inode *ind, struct stat *st)
{
	struct meta_inode mi;
	fs_inode_snapshot(ind, &mi);
	memset(st, 0, sizeof(*st));
	st->st_ino = mi.ino;
	st->st_mode = mi.mode;
	st->st_nlink = mi.nlink;
	st->st_rdev = (dev_t)mi.rdev;
	st->st_uid = mi.uid;
	st->st_gid = mi.gid;
	st->st_size = (off_t)mi.size;
	/* Blocks are logical (what the file would occupy undeduplicated), like the size: du shows what
	 * a checkpoint is, .pec/versions what it costs. */
	st->st_blocks = (blkcnt_t)((mi.size + 511) / 512);
	st->st_blksize = ctx->chunk_size < (1u << 20) ? ctx->chunk_size : (1u << 20);
	timespec_of(mi.atime_ns, &st->st_atim);
	timespec_of(mi.mtime_ns, &st->st_mtim);
	timespec_of(mi.ctime_ns, &st->st_ctim);
}

void fs_inode_entry(struct fs_ctx *ctx, struct fs_inode *ind, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ind->ino;
	fs_inode_stat(ctx, ind, &e->attr);
	e->generation = ind->mi.generation;
	e->attr_timeout = ctx->cfg->attr_timeout;
	e->entry_timeout = ctx->cfg->attr_timeout;
}

void fs_inode_open_data_locked(struct fs_ctx *ctx, struct fs_inode *ind, bool created)
{
	assert(S_ISREG(ind->mi.mode));
	if (!ind->df)
		ind->df = data_file_new(ctx->dc, ind->ino, ind->mi.size, created);
}

void fs_inode_persist_locked(struct fs_ctx *ctx, struct fs_inode *ind, struct meta_batch *b)
{
	(void)ctx;
	pthread_mutex_lock(&ind->lock);
	if (ind->df)
		ind->mi.size = data_file_size(ind->df);
	if (!ind->freed)
		meta_batch_put_inode(b, &ind->mi);
	ind->meta_dirty = false;
	pthread_mutex_unlock(&ind->lock);
}

bool fs_inode_dirty(struct fs_inode *ind)
{
	pthread_mutex_lock(&ind->lock);
	bool dirty = !ind->freed && (ind->meta_dirty || (ind->df && data_file_size(ind->df) != ind->mi.size));
	pthread_mutex_unlock(&ind->lock);
	return dirty;
}

int fs_inode_persist(struct fs_ctx *ctx, struct fs_inode *ind, bool sync)
{
	int rc = 0;
	pthread_mutex_lock(&ctx->ns_lock);
	pthread_mutex_lock(&ind->lock);
	bool dirty = ind->meta_dirty && !ind->freed;
	pthread_mutex_unlock(&ind->lock);
	if (dirty) {
		struct meta_batch *b = meta_batch_new();
		if (!b) {
			rc = -ENOMEM;
			goto out;
		}
		fs_inode_persist_locked(ctx, ind, b);
		rc = meta_batch_commit(ctx->meta, b, false);
		meta_batch_free(b);
		if (rc < 0) {
			pthread_mutex_lock(&ind->lock);
			ind->meta_dirty = true;
			pthread_mutex_unlock(&ind->lock);
		}
	}
out:
	pthread_mutex_unlock(&ctx->ns_lock);
	/* The sync outside ns_lock: one fsync must not stall every create and close on the mount, and
	 * concurrent fsyncs share one WAL sync (meta_sync's group commit). */
	if (rc == 0 && sync)
		rc = meta_sync(ctx->meta);
	if (rc < 0)
		pecfs_log_error("cannot write inode %llu: %s", (unsigned long long)ind->ino, strerror(-rc));
	return rc;
}

int fs_inode_delete_records(struct fs_ctx *ctx, uint64_t ino)
{
	struct data_gone *gone = NULL;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	int rc = data_delete_prepare(ctx->dc, b, ino, &gone);
	if (rc == 0)
		rc = fs_inode_batch_delete(ctx, b, ino, FS_DEL_ANY);  /* an orphan key is there; no mode at recovery */
	if (rc == 0)
		rc = meta_batch_commit(ctx->meta, b, false);
	data_delete_done(ctx->dc, gone, rc == 0);
	meta_batch_free(b);
	return rc;
}

int fs_inode_batch_delete(struct fs_ctx *ctx, struct meta_batch *b, uint64_t ino, unsigned what)
{
	int rc = meta_batch_del_all_xattrs(ctx->meta, b, ino);
	if (rc == 0) {
		if (what & FS_DEL_SYMLINK)
			meta_batch_del_symlink(b, ino);
		meta_batch_del_inode(b, ino);
		if (what & FS_DEL_ORPHAN)
			meta_batch_del_orphan(b, ino);
	}
	return rc;
}

void fs_inode_reap(struct fs_ctx *ctx, struct fs_inode *ind)
{
	pthread_mutex_lock(&ind->lock);
	if (ind->freed || ind->mi.nlink != 0 || ind->open_count != 0 || S_ISDIR(ind->mi.mode)) {
		pthread_mutex_unlock(&ind->lock);
		return;
	}
	if (ind->df) {
		data_file_free(ind->df);
		ind->df = NULL;
	}
	/* Marked first: a failure below leaves the orphan key, and the next mount finishes the job. */
	ind->freed = true;
	pthread_mutex_unlock(&ind->lock);
	int rc = fs_inode_delete_records(ctx, ind->ino);
	if (rc < 0)
		pecfs_log_error("cannot free unlinked inode %llu (left for the next mount): %s",
		       (unsigned long long)ind->ino, strerror(-rc));
}

#define ATIME_REFRESH_NS (24ll * 3600 * 1000000000)

void fs_inode_touch_atime(struct fs_ctx *ctx, struct fs_inode *ind)
{
	int64_t now = fs_now_ns();
	pthread_mutex_lock(&ind->lock);
	const struct meta_inode *mi = &ind->mi;
	bool due = !ind->freed && (mi->atime_ns <= mi->mtime_ns || mi->atime_ns <= mi->ctime_ns ||
				   now - mi->atime_ns >= ATIME_REFRESH_NS);
	uint64_t vino = mi->version_ino;
	pthread_mutex_unlock(&ind->lock);
	if (!due || fs_version_check_writable(ctx, vino) < 0)
		return;
	pthread_mutex_lock(&ind->lock);
	ind->mi.atime_ns = now;
	ind->meta_dirty = true;
	pthread_mutex_unlock(&ind->lock);
}

int fs_inode_truncate_locked(struct fs_ctx *ctx, struct fs_inode *ind, uint64_t size)
{
	if (S_ISDIR(ind->mi.mode))
		return -EISDIR;
	if (!S_ISREG(ind->mi.mode))
		return -EINVAL;
	pthread_mutex_lock(&ind->lock);
	fs_inode_open_data_locked(ctx, ind, false);
	struct data_file *df = ind->df;
	pthread_mutex_unlock(&ind->lock);
	if (!df)
		return -ENOMEM;
	int rc = data_truncate(df, size);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&ind->lock);
	int64_t now = fs_now_ns();
	ind->mi.mtime_ns = ind->mi.ctime_ns = now;
	/* Set-id bits: the kernel sends their clearing with the truncate's setattr; open(O_TRUNC)
	 * clears them itself (fs_setid_to_drop). */
	ind->meta_dirty = true;
	pthread_mutex_unlock(&ind->lock);
	return fs_inode_persist(ctx, ind, false);
}

void fs_inode_apply(struct fs_inode *ind, const struct meta_inode *snap)
{
	pthread_mutex_lock(&ind->lock);
	ind->mi.parent = snap->parent;
	ind->mi.version_ino = snap->version_ino;
	ind->mi.nlink = snap->nlink;
	ind->mi.ctime_ns = snap->ctime_ns;
	memcpy(ind->mi.name, snap->name, sizeof(ind->mi.name));
	if (S_ISDIR(ind->mi.mode))
		ind->mi.mtime_ns = snap->mtime_ns;
	pthread_mutex_unlock(&ind->lock);
}
