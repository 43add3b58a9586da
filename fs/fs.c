/* fs.c - pecfs_fs_serve: builds the mount context, finishes what a crash left (files unlinked while
 * open), mounts with libfuse's low-level API and serves requests on its multithreaded loop; at the end
 * writes out every buffered file, syncs the metadata and unmounts.
 *
 * No writeback cache and no splice: files opened for writing use direct I/O, which measured fastest
 * here (shared/notes/fuse-here.md), and the data module owns all buffering. They can still be mapped
 * shared and writable: fuse_init_ext.c has the kernel grant FUSE_DIRECT_IO_ALLOW_MMAP, and the kernel
 * then writes mapped pages back as ordinary writes (msync, fsync, close, munmap) and keeps direct
 * reads and writes coherent with the mapping. Without it, O_RDWR opens use the page cache (ops_file.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "compose.h"
#include "ctx.h"
#include "fs.h"
#include "log.h"

#define FS_MAX_IO (1u << 20)
/* Read-ahead requests the kernel keeps in flight at once. Each sequential reader of a cached file
 * has read-ahead / FS_MAX_IO of them out (4 with the default 4 MiB), so the kernel's default of 12
 * serves three readers; 64 serves 16 (data-parallel ranks loading their files). The kernel marks the
 * connection congested at 3/4 of it, as its own defaults do. */
#define FS_MAX_BACKGROUND 64

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;

	ctx->direct_io_mmap = fs_init_ext_direct_io_mmap(ctx, ctx->cfg->direct_io_mmap);
	conn->max_write = FS_MAX_IO;
	/* The kernel applies the smaller of this and the mount's read_ahead_kb, which
	 * fs_set_read_ahead raised before the loop served this INIT: ask for all of it. */
	conn->max_readahead = ctx->cfg->read_ahead_bytes > FS_MAX_IO ? (unsigned)ctx->cfg->read_ahead_bytes : FS_MAX_IO;
	conn->max_background = FS_MAX_BACKGROUND;
	conn->congestion_threshold = FS_MAX_BACKGROUND * 3 / 4;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.readlink = fs_op_readlink,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.fsync = fs_op_fsync,
	.fallocate = fs_op_fallocate,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.fsyncdir = fs_op_fsyncdir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.access = fs_op_access,
	.create = fs_op_create,
	.ioctl = fs_op_ioctl,
};

static int collect_orphan(uint64_t ino, void *arg)
{
	struct { uint64_t *v; size_t n, cap; } *list = arg;
	if (list->n == list->cap) {
		size_t ncap = list->cap ? list->cap * 2 : 16;
		uint64_t *nv = realloc(list->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		list->v = nv;
		list->cap = ncap;
	}
	list->v[list->n++] = ino;
	return 0;
}

/* Files unlinked while open when the last daemon stopped (or crashed): free them now. */
static int fs_recover_orphans(struct fs_ctx *ctx)
{
	struct { uint64_t *v; size_t n, cap; } list = { 0 };
	int rc = meta_foreach_orphan(ctx->meta, collect_orphan, &list);
	for (size_t i = 0; rc == 0 && i < list.n; i++) {
		rc = fs_inode_delete_records(ctx, list.v[i]);
		if (rc < 0)
			pecfs_log_error("cannot free unlinked inode %llu: %s", (unsigned long long)list.v[i], strerror(-rc));
	}
	free(list.v);
	return rc;
}

static int fs_ctx_open(struct fs_ctx *ctx, const struct pecfs_config *cfg, struct store *st, struct tier *tier)
{
	pthread_mutexattr_t ma;

	ctx->cfg = cfg;
	ctx->st = st;
	ctx->tier = tier;
	ctx->meta = store_meta(st);
	ctx->chunk_size = store_chunk_size(st);
	/* ns_lock is recursive: dropping the last reference of an inode (possible inside any namespace
	 * operation, when a forget raced with it) writes its record back, which takes ns_lock. */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ctx->ns_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&ctx->table_lock, NULL);
	pthread_mutex_init(&ctx->ver_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);  /* fs_version_wait_older_idle's deadline */
	pthread_cond_init(&ctx->ver_cond, &ca);
	pthread_condattr_destroy(&ca);

	int rc = meta_get_super(ctx->meta, &ctx->sb);
	if (rc < 0) {
		pecfs_log_error("cannot read the superblock of %s: %s", cfg->data_dir, strerror(-rc));
		return rc;
	}
	rc = fs_table_init(ctx);
	if (rc < 0)
		return rc;
	rc = data_ctx_new(st, cfg->write_buffers, cfg->hash_threads, &ctx->dc);
	if (rc < 0) {
		pecfs_log_error("cannot set up %u write buffers of %u bytes: %s", cfg->write_buffers, ctx->chunk_size,
		       strerror(-rc));
		return rc;
	}
	rc = fs_recover_orphans(ctx);
	if (rc == 0)
		rc = fs_versions_load(ctx);
	if (rc < 0)
		pecfs_log_error("cannot load the namespace of %s: %s", cfg->data_dir, strerror(-rc));
	return rc;
}

/* Writes out every loaded file (the kernel sends no release for files still open at unmount) and frees
 * the handles no release reached, frees files that were unlinked while open, and makes the metadata
 * durable. */
static int fs_flush_all(struct fs_ctx *ctx)
{
	struct fs_inode **files = NULL;
	size_t n = 0;
	int rc = fs_inode_loaded_files(ctx, UINT64_MAX, &files, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct fs_inode *ind = files[i];
		int frc = data_flush(ind->df);
		if (frc < 0) {
			pecfs_log_error("cannot write out inode %llu at unmount: %s", (unsigned long long)ind->ino,
			       strerror(-frc));
			rc = rc ? rc : frc;
		}
		pthread_mutex_lock(&ind->lock);
		ind->meta_dirty = true;
		pthread_mutex_unlock(&ind->lock);
		fs_file_free_unreleased(ctx, ind);
		frc = fs_inode_persist(ctx, ind, false);
		rc = rc ? rc : frc;
		fs_inode_reap(ctx, ind);
		pthread_mutex_lock(&ind->lock);
		if (ind->df) {
			data_file_free(ind->df);
			ind->df = NULL;
		}
		pthread_mutex_unlock(&ind->lock);
		fs_inode_put(ctx, ind);
	}
	free(files);
	int src = meta_sync(ctx->meta);
	return rc ? rc : src;
}

static void fs_ctx_close(struct fs_ctx *ctx)
{
	fs_autogc_stop(ctx);
	fs_versions_free(ctx);
	fs_table_free(ctx);
	if (ctx->dc)
		data_ctx_free(ctx->dc);
	pthread_mutex_destroy(&ctx->ns_lock);
	pthread_mutex_destroy(&ctx->table_lock);
	pthread_mutex_destroy(&ctx->ver_lock);
	pthread_cond_destroy(&ctx->ver_cond);
}

/* "-o" value with libfuse's escaping of ',' and '\' inside option values. nodev: a device node in a
 * checkpoint (made by mknod, or imported from a bucket) is a name, never a way into a device. */
static int build_options(const struct pecfs_config *cfg, char *buf, size_t size)
{
	size_t o = 0;
	const char *prefix = "fsname=pecfs:";
	for (const char *p = prefix; *p && o + 1 < size; p++)
		buf[o++] = *p;
	for (const char *p = cfg->data_dir; *p; p++) {
		if (o + 3 >= size)
			return -ENAMETOOLONG;
		if (*p == ',' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = *p;
	}
	buf[o] = '\0';
	int n = snprintf(buf + o, size - o, ",subtype=pecfs,default_permissions,nodev%s",
			 cfg->allow_other ? ",allow_other" : "");
	return n < 0 || (size_t)n >= size - o ? -ENAMETOOLONG : 0;
}

int pecfs_fs_serve(const struct pecfs_config *cfg, struct store *st, struct tier *tier, void (*on_mounted)(void *arg),
		   void *arg)
{
	struct fs_ctx *ctx = calloc(1, sizeof(*ctx));
	struct metrics_http *mh = NULL;
	char opts[2 * PATH_MAX + 128];
	struct stat mst;
	int rc;

	if (!ctx)
		return -ENOMEM;
	rc = stat(cfg->mountpoint, &mst) < 0 ? -errno : S_ISDIR(mst.st_mode) ? 0 : -ENOTDIR;
	if (rc < 0) {
		pecfs_log_error("mount point %s: %s", cfg->mountpoint, strerror(-rc));
		free(ctx);
		return rc;
	}
	rc = fs_ctx_open(ctx, cfg, st, tier);
	if (rc < 0)
		goto out_ctx;
	fs_autogc_start(ctx);
	/* Versions retention held for the tier may go once it commits them. */
	tier_set_commit_hook(tier, fs_retain_on_commit, ctx);
	rc = build_options(cfg, opts, sizeof(opts));
	if (rc < 0) {
		pecfs_log_error("data folder path too long: %s", cfg->data_dir);
		goto out_ctx;
	}

	/* Before mounting: a metrics port that cannot be had fails the mount, not a scrape later. */
	rc = metrics_http_start(ctx, cfg->metrics_listen, &mh);
	if (rc < 0)
		goto out_ctx;

	char *argv[] = { "pecfs", "-o", opts, cfg->fuse_debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(cfg->fuse_debug ? 4 : 3, argv);
	ctx->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), ctx);
	fuse_opt_free_args(&args);
	if (!ctx->se) {
		pecfs_log_error("cannot create the FUSE session");
		rc = -EINVAL;
		goto out_ctx;
	}
	if (fuse_set_signal_handlers(ctx->se) != 0) {
		pecfs_log_error("cannot install signal handlers");
		rc = -EIO;
		goto out_session;
	}
	char abs_mnt[PATH_MAX];
	if (!realpath(cfg->mountpoint, abs_mnt))  /* before mounting: afterwards it would ask this daemon */
		snprintf(abs_mnt, sizeof(abs_mnt), "%s", cfg->mountpoint);
	errno = 0;
	if (fuse_session_mount(ctx->se, cfg->mountpoint) != 0) {
		rc = errno ? -errno : -EIO;
		pecfs_log_error("cannot mount %s: %s", cfg->mountpoint, strerror(-rc));
		goto out_signals;
	}
	fs_init_ext_install(ctx);  /* without it, files opened O_RDWR use the page cache */
	fs_set_read_ahead(abs_mnt, cfg->read_ahead_bytes);
	if (on_mounted)
		on_mounted(arg);

	/* fuse-threads bounds the threads answering requests (max_threads); as many may stay idle. */
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int lrc = -ENOMEM;
	if (lc) {
		fuse_loop_cfg_set_clone_fd(lc, 0);
		fuse_loop_cfg_set_max_threads(lc, cfg->fuse_threads);
		fuse_loop_cfg_set_idle_threads(lc, cfg->fuse_threads);
		lrc = fuse_session_loop_mt(ctx->se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	if (lrc < 0)
		pecfs_log_error("request loop failed: %s", strerror(-lrc));

	tier_set_commit_hook(tier, NULL, NULL);
	rc = fs_flush_all(ctx);
	if (rc < 0)
		pecfs_log_error("not every buffered write could be stored: %s", strerror(-rc));
	fuse_session_unmount(ctx->se);
out_signals:
	fuse_remove_signal_handlers(ctx->se);
out_session:
	fuse_session_destroy(ctx->se);
out_ctx:
	metrics_http_stop(mh);
	tier_set_commit_hook(tier, NULL, NULL);  /* no retention from the uploader once ctx is gone */
	fs_ctx_close(ctx);
	free(ctx);
	return rc;
}
