/* ops_ns.c - namespace operations: lookup, forget, getattr, setattr, mkdir, mknod, symlink, readlink,
 * unlink, rmdir, link, statfs, access, and the helpers that create and remove entries.
 *
 * Every change is one metadata batch committed (unsynced) before the reply, under ns_lock.
 * mknod makes regular files, fifos, sockets and device nodes; all but regular files are metadata only
 * (mode, owner, times, rdev), and the mount's `nodev` keeps a device node from opening a device.
 * Hard links: any non-directory may have several names, all in one version (EXDEV across versions,
 * as across file systems, so `ln` and `cp -al` fall back to copies). The inode record keeps one name;
 * each other name has an `N` record, and removing the recorded name promotes another one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "ctx.h"

bool fs_ns_is_reserved(const struct meta_inode *dir, const char *name)
{
	return strcmp(name, PEC_NAME) == 0 && (dir->ino == META_ROOT_INO || fs_mi_is_run(dir));
}

static void reply_entry_of(fuse_req_t req, struct fs_ctx *ctx, struct fs_inode *ind)
{
	struct fuse_entry_param e;
	fs_inode_entry(ctx, ind, &e);
	fs_inode_lookup_inc(ctx, ind);
	if (fuse_reply_entry(req, &e) != 0)
		fs_inode_forget(ctx, ind->ino, 1);  /* the kernel did not take the lookup */
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fuse_entry_param e;
	struct fs_inode *pind, *ind;
	uint64_t ino;
	uint32_t mode;
	int rc;

	if (strnlen(name, META_NAME_MAX + 1) > META_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (pec_is_virtual(parent)) {
		rc = pec_lookup(ctx, parent, name, &e, &ino);
		if (rc == 0 && ino) {
			/* A raw view shows the real inode: reply as for its own name. */
			rc = fs_inode_get(ctx, ino, &ind);
			if (rc == 0) {
				reply_entry_of(req, ctx, ind);
				fs_inode_put(ctx, ind);
				return;
			}
		}
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	if (strcmp(name, PEC_NAME) == 0) {
		rc = fs_inode_get(ctx, parent, &pind);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		bool reserved = fs_ns_is_reserved(&pind->mi, name);
		fs_inode_put(ctx, pind);
		if (reserved) {
			pec_dir_entry(ctx, parent, &e);
			fuse_reply_entry(req, &e);
			return;
		}
	}
	rc = meta_get_dirent(ctx->meta, parent, name, &ino, &mode);
	if (rc == 0)
		rc = fs_inode_get(ctx, ino, &ind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry_of(req, ctx, ind);
	fs_inode_put(ctx, ind);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(fs_ctx_of(req), ino, nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	for (size_t i = 0; i < count; i++)
		fs_inode_forget(ctx, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct stat st;
	struct fs_inode *ind;
	(void)fi;
	int rc = pec_is_virtual(ino) ? pec_getattr(ctx, ino, &st) : fs_inode_get_attr(ctx, ino, &ind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!pec_is_virtual(ino)) {
		fs_inode_stat(ctx, ind, &st);
		fs_inode_put(ctx, ind);
	}
	fuse_reply_attr(req, &st, pec_is_virtual(ino) ? 0 : ctx->cfg->attr_timeout);
}

/* Nanoseconds since the epoch, clamped to what an i64 holds (1677..2262), as a local file system
 * clamps a timestamp to its own range. */
static int64_t ns_of(const struct timespec *ts)
{
	const int64_t max_sec = INT64_MAX / 1000000000 - 1, min_sec = INT64_MIN / 1000000000 + 1;
	if (ts->tv_sec > max_sec)
		return INT64_MAX;
	if (ts->tv_sec < min_sec)
		return INT64_MIN;
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

int fs_check_name(const char *name)
{
	size_t len = strnlen(name, META_NAME_MAX + 1);
	if (len > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	return 0;
}

/* Which version an inode's own attributes belong to (a version directory's are its own). */
static uint64_t attr_version(const struct meta_inode *mi)
{
	return mi->version_ino;
}

static int setattr_locked(struct fs_ctx *ctx, struct fs_inode *ind, struct stat *attr, int to_set)
{
	int rc = fs_version_check_writable(ctx, attr_version(&ind->mi));
	if (rc < 0)
		return rc;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = fs_inode_truncate_locked(ctx, ind, (uint64_t)attr->st_size);
		if (rc < 0)
			return rc;
	}
	int64_t now = fs_now_ns();
	pthread_mutex_lock(&ind->lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		ind->mi.mode = (ind->mi.mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		ind->mi.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		ind->mi.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ind->mi.atime_ns = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ind->mi.atime_ns = ns_of(&attr->st_atim);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ind->mi.mtime_ns = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ind->mi.mtime_ns = ns_of(&attr->st_mtim);
	if (to_set & FUSE_SET_ATTR_CTIME)
		ind->mi.ctime_ns = ns_of(&attr->st_ctim);
	else
		ind->mi.ctime_ns = now;
	ind->meta_dirty = true;
	pthread_mutex_unlock(&ind->lock);

	return fs_inode_persist(ctx, ind, false);
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	struct stat st;
	(void)fi;
	if (pec_is_virtual(ino)) {
		int prc = pec_setattr(ctx, ino, to_set, &st);
		if (prc < 0)
			fuse_reply_err(req, -prc);
		else
			fuse_reply_attr(req, &st, 0);
		return;
	}
	int rc = fs_inode_get(ctx, ino, &ind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&ctx->ns_lock);
	rc = setattr_locked(ctx, ind, attr, to_set);
	pthread_mutex_unlock(&ctx->ns_lock);
	if (rc < 0) {
		if (rc != -EROFS)
			pecfs_log_error("setattr of inode %llu: %s", (unsigned long long)ino, strerror(-rc));
		fuse_reply_err(req, -rc);
	} else {
		fs_inode_stat(ctx, ind, &st);
		fuse_reply_attr(req, &st, ctx->cfg->attr_timeout);
	}
	fs_inode_put(ctx, ind);
}

/* 0 if directory pmi of version vino may get a new entry name: not .pec where that is virtual, the
 * version open, the name unused. */
static int new_name_check(struct fs_ctx *ctx, const struct meta_inode *pmi, uint64_t vino, const char *name)
{
	uint64_t eino;
	uint32_t emode;
	if (fs_ns_is_reserved(pmi, name))
		return -EEXIST;
	int rc = fs_version_check_writable(ctx, vino);
	if (rc < 0)
		return rc;
	rc = meta_get_dirent(ctx->meta, pmi->ino, name, &eino, &emode);
	return rc == 0 ? -EEXIST : rc == -ENOENT ? 0 : rc;
}

int fs_ns_make(struct fs_ctx *ctx, fuse_req_t req, struct fs_inode *parent, const char *name,
	       mode_t mode, dev_t rdev, const char *target, struct fs_inode **out)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct meta_inode pmi, mi;
	struct meta_version ver;
	int rc = fs_check_name(name);
	if (rc < 0)
		return rc;
	fs_inode_snapshot(parent, &pmi);
	if (!S_ISDIR(pmi.mode))
		return -ENOTDIR;
	if (parent->freed || pmi.nlink == 0)
		return -ENOENT;
	rc = new_name_check(ctx, &pmi, fs_mi_content_version(&pmi), name);
	if (rc < 0)
		return rc;
	if (target && strnlen(target, PATH_MAX) >= PATH_MAX)
		return -ENAMETOOLONG;

	int64_t now = fs_now_ns();
	memset(&mi, 0, sizeof(mi));
	mi.ino = ctx->sb.next_ino++;
	mi.parent = pmi.ino;
	mi.mode = (mode & S_IFMT) | (target ? 0777 : (mode & 07777 & ~fc->umask));
	mi.uid = fc->uid;
	mi.gid = fc->gid;
	/* BSD group semantics for set-group-ID directories, as ext4 does. */
	if (pmi.mode & S_ISGID) {
		mi.gid = pmi.gid;
		if (S_ISDIR(mode))
			mi.mode |= S_ISGID;
	}
	mi.nlink = S_ISDIR(mode) ? 2 : 1;
	mi.size = target ? strlen(target) : 0;
	mi.rdev = S_ISCHR(mode) || S_ISBLK(mode) ? (uint64_t)rdev : 0;
	mi.atime_ns = mi.mtime_ns = mi.ctime_ns = now;
	snprintf(mi.name, sizeof(mi.name), "%s", name);
	bool is_version = S_ISDIR(mode) && fs_mi_is_run(&pmi);
	mi.version_ino = is_version ? mi.ino : fs_mi_content_version(&pmi);

	struct meta_batch *b = meta_batch_new();
	if (!b) {
		ctx->sb.next_ino--;
		return -ENOMEM;
	}
	if (is_version)
		fs_version_new_record(ctx, b, pmi.ino, mi.ino, name, &ver);
	meta_batch_put_super(b, &ctx->sb);
	meta_batch_put_inode(b, &mi);
	meta_batch_put_dirent(b, pmi.ino, name, mi.ino, mi.mode & S_IFMT);
	if (target)
		meta_batch_put_symlink(b, mi.ino, target);
	if (S_ISDIR(mode))
		pmi.nlink++;
	pmi.mtime_ns = pmi.ctime_ns = now;
	meta_batch_put_inode(b, &pmi);
	rc = meta_batch_commit(ctx->meta, b, false);
	meta_batch_free(b);
	if (rc < 0) {
		/* Numbers handed out stay used: the superblock may be in the database or not, and
		 * skipping numbers is harmless. */
		pecfs_log_error("cannot create %s in inode %llu: %s", name, (unsigned long long)pmi.ino, strerror(-rc));
		return rc;
	}
	fs_inode_apply(parent, &pmi);
	if (is_version) {
		fs_version_insert(ctx, &ver, name);
		/* Empty, and nothing can be created in it before this reply: counted from here on. On
		 * failure its figures are walked for. */
		meta_tally_track(ctx->meta, ver.ino);
	}
	return fs_inode_get(ctx, mi.ino, out);
}

static void make_and_reply(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
			   const char *target)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *pind, *ind;
	int rc = fs_inode_get(ctx, parent, &pind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&ctx->ns_lock);
	rc = fs_ns_make(ctx, req, pind, name, mode, rdev, target, &ind);
	pthread_mutex_unlock(&ctx->ns_lock);
	fs_inode_put(ctx, pind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry_of(req, ctx, ind);
	fs_inode_put(ctx, ind);
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_and_reply(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	/* The kernel has checked the caller may make device nodes (CAP_MKNOD). */
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISBLK(mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	make_and_reply(req, parent, name, mode & (S_IFMT | 07777), rdev, NULL);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_and_reply(req, parent, name, S_IFLNK | 0777, 0, link);
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	char buf[PATH_MAX + 1];
	int rc = pec_is_virtual(ino) ? pec_readlink(ctx, ino, buf, sizeof(buf))
				     : meta_get_symlink(ctx->meta, ino, buf, sizeof(buf));
	if (rc >= 0 && !pec_is_virtual(ino) && fs_inode_get(ctx, ino, &ind) == 0) {
		fs_inode_touch_atime(ctx, ind);  /* every path walk through the link reads it */
		fs_inode_put(ctx, ind);
	}
	if (rc < 0)
		fuse_reply_err(req, -rc == ENOENT && !pec_is_virtual(ino) ? EINVAL : -rc);
	else
		fuse_reply_readlink(req, buf);
}

/* The last name of a file that no handle holds open goes with the file's records and extents, in
 * the batch that removes the name: one commit where fs_inode_reap would add two more. Marked freed
 * first, as fs_inode_reap does, so an open racing with the removal fails with ENOENT. Its data_file
 * goes first too (the last release stored what it held; freeing it waits for anything still in
 * flight, so no extent lands after the batch). false: nothing was added to b but perhaps part of
 * the xattr deletions, harmless for a file that is removed anyway; left to fs_inode_reap.
 * Such a file has no orphan key: that is written only when the link count reaches 0 while the file
 * is open, and this is its last name going. Only a symlink has a target record. */
static bool drop_free_now(struct fs_ctx *ctx, struct meta_batch *b, struct fs_inode *victim, mode_t mode,
			  struct fs_drop *d)
{
	pthread_mutex_lock(&victim->lock);
	if (victim->open_count != 0 || victim->freed) {
		pthread_mutex_unlock(&victim->lock);
		return false;
	}
	struct data_file *df = victim->df;
	victim->df = NULL;
	victim->freed = true;
	pthread_mutex_unlock(&victim->lock);
	data_file_free(df);
	if (data_delete_prepare(ctx->dc, b, victim->ino, &d->gone) == 0) {
		if (fs_inode_batch_delete(ctx, b, victim->ino, S_ISLNK(mode) ? FS_DEL_SYMLINK : 0) == 0) {
			d->freed_now = true;
			return true;
		}
		data_delete_done(ctx->dc, d->gone, false);
		d->gone = NULL;
	}
	pthread_mutex_lock(&victim->lock);
	victim->freed = false;
	pthread_mutex_unlock(&victim->lock);
	return false;
}

void fs_ns_drop_prepare(struct fs_ctx *ctx, struct meta_batch *b, struct meta_inode *pmi, const char *name,
			struct fs_inode *victim, bool del_dirent, struct fs_drop *d)
{
	struct meta_inode vmi;
	int64_t now = fs_now_ns();

	memset(d, 0, sizeof(*d));
	d->victim = victim;
	fs_inode_ref(ctx, victim);
	fs_inode_snapshot(victim, &vmi);
	if (del_dirent)
		meta_batch_del_dirent(b, pmi->ino, name);
	pmi->mtime_ns = pmi->ctime_ns = now;
	if (fs_version_damage_record(ctx, b, fs_mi_content_version(pmi)))
		d->damaged_vino = fs_mi_content_version(pmi);
	if (S_ISDIR(vmi.mode)) {
		/* An empty directory has nothing to keep: its records go in this batch. */
		pmi->nlink--;
		meta_batch_del_inode(b, vmi.ino);
		meta_batch_del_all_xattrs(ctx->meta, b, vmi.ino);
		if (fs_mi_is_version(&vmi)) {
			struct fs_version fv;
			if (fs_version_get(ctx, vmi.ino, &fv) == 0)
				meta_batch_del_version(b, fv.v.run_ino, vmi.ino);
			meta_batch_del_manifest(b, vmi.ino);
			d->removed_vino = vmi.ino;
		}
		if (fs_mi_is_run(&vmi)) {
			meta_batch_del_tokens(b, vmi.ino);
			meta_batch_del_restarts(b, vmi.ino);
			meta_batch_del_persist_base(b, vmi.ino);
		}
	} else if (vmi.nlink > 1) {
		/* One name of several goes; the inode stays with the others. */
		fs_ns_unname(ctx, b, &vmi, pmi->ino, name);
		vmi.nlink--;
		vmi.ctime_ns = now;
		meta_batch_put_inode(b, &vmi);
		d->kept = true;
		d->mi = vmi;
	} else if (!drop_free_now(ctx, b, victim, vmi.mode, d)) {
		/* The last name of a file, symlink or special file still open: unlinked now, freed by
		 * fs_inode_reap once unused; the orphan key lets the next mount finish that after a crash. */
		vmi.nlink = 0;
		vmi.ctime_ns = now;
		meta_batch_put_inode(b, &vmi);
		meta_batch_put_orphan(b, vmi.ino);
	}
	d->ctime_ns = now;
}

void fs_ns_drop_done(struct fs_ctx *ctx, struct fs_drop *d)
{
	struct fs_inode *v = d->victim;
	if (d->damaged_vino)
		fs_version_set_state(ctx, d->damaged_vino, META_VERSION_DAMAGED);
	if (d->removed_vino)
		fs_version_forget(ctx, d->removed_vino);
	if (d->kept) {
		fs_inode_apply(v, &d->mi);
		fs_inode_put(ctx, v);
		return;
	}
	data_delete_done(ctx->dc, d->gone, true);
	pthread_mutex_lock(&v->lock);
	v->mi.nlink = 0;
	v->mi.ctime_ns = d->ctime_ns;
	if (S_ISDIR(v->mi.mode))
		v->freed = true;
	pthread_mutex_unlock(&v->lock);
	fs_inode_reap(ctx, v);
	fs_inode_put(ctx, v);
}

void fs_ns_drop_abort(struct fs_ctx *ctx, struct fs_drop *d)
{
	if (d->freed_now) {
		data_delete_done(ctx->dc, d->gone, false);
		pthread_mutex_lock(&d->victim->lock);
		d->victim->freed = false;  /* its records are as they were */
		pthread_mutex_unlock(&d->victim->lock);
	}
	fs_inode_put(ctx, d->victim);
}

int fs_ns_remove_locked(struct fs_ctx *ctx, struct fs_inode *pind, const char *name, bool dir)
{
	struct meta_inode pmi;
	struct fs_inode *victim;
	struct fs_drop d;
	uint64_t ino;
	uint32_t mode;
	int rc = fs_check_name(name);
	if (rc < 0)
		return rc;
	fs_inode_snapshot(pind, &pmi);
	if (!S_ISDIR(pmi.mode))
		return -ENOTDIR;
	if (fs_ns_is_reserved(&pmi, name))
		return -EPERM;
	rc = meta_get_dirent(ctx->meta, pmi.ino, name, &ino, &mode);
	if (rc < 0)
		return rc;
	if (dir && !S_ISDIR(mode))
		return -ENOTDIR;
	if (!dir && S_ISDIR(mode))
		return -EISDIR;
	if (dir && !meta_dir_is_empty(ctx->meta, ino))
		return -ENOTEMPTY;
	rc = fs_inode_get(ctx, ino, &victim);
	if (rc < 0)
		return rc;
	struct meta_batch *b = meta_batch_new();
	if (!b) {
		fs_inode_put(ctx, victim);
		return -ENOMEM;
	}
	fs_ns_drop_prepare(ctx, b, &pmi, name, victim, true, &d);
	meta_batch_put_inode(b, &pmi);
	rc = meta_batch_commit(ctx->meta, b, false);
	meta_batch_free(b);
	if (rc < 0) {
		pecfs_log_error("cannot remove %s from inode %llu: %s", name, (unsigned long long)pmi.ino, strerror(-rc));
		fs_ns_drop_abort(ctx, &d);
	} else {
		fs_inode_apply(pind, &pmi);
		fs_ns_drop_done(ctx, &d);
	}
	fs_inode_put(ctx, victim);
	return rc;
}

static void remove_and_reply(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *pind;
	int rc = fs_inode_get(ctx, parent, &pind);
	if (rc == 0) {
		pthread_mutex_lock(&ctx->ns_lock);
		rc = fs_ns_remove_locked(ctx, pind, name, dir);
		pthread_mutex_unlock(&ctx->ns_lock);
		fs_inode_put(ctx, pind);
	}
	fuse_reply_err(req, -rc);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_and_reply(req, parent, name, false);
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_and_reply(req, parent, name, true);
}

struct first_link {
	uint64_t parent;
	char name[META_NAME_MAX + 1];
};

static int take_first_link(uint64_t parent, const char *name, void *arg)
{
	struct first_link *f = arg;
	f->parent = parent;
	snprintf(f->name, sizeof(f->name), "%s", name);
	return 1;
}

void fs_ns_unname(struct fs_ctx *ctx, struct meta_batch *b, struct meta_inode *mi, uint64_t parent,
		  const char *name)
{
	struct first_link f = { 0 };
	if (mi->parent != parent || strcmp(mi->name, name) != 0) {
		meta_batch_del_link(b, mi->ino, parent, name);
		return;
	}
	int rc = meta_list_links(ctx->meta, mi->ino, take_first_link, &f);
	if (rc != 1) {
		/* nlink said there were other names: the record keeps the old one, which fsck reports. */
		pecfs_log_error("inode %llu has %u links but no other name is recorded (%s)",
				(unsigned long long)mi->ino, mi->nlink, rc < 0 ? strerror(-rc) : "none found");
		return;
	}
	meta_batch_del_link(b, mi->ino, f.parent, f.name);
	mi->parent = f.parent;
	memcpy(mi->name, f.name, sizeof(mi->name));
}

/* ext4's limit; far beyond any checkpoint layout. */
#define FS_LINK_MAX 65000

static int link_locked(struct fs_ctx *ctx, struct fs_inode *ind, struct fs_inode *pind, const char *name)
{
	struct meta_inode mi, pmi;
	int rc = fs_check_name(name);
	if (rc < 0)
		return rc;
	fs_inode_snapshot(pind, &pmi);
	fs_inode_snapshot(ind, &mi);
	if (!S_ISDIR(pmi.mode))
		return -ENOTDIR;
	if (pind->freed || pmi.nlink == 0 || mi.nlink == 0)
		return -ENOENT;
	if (S_ISDIR(mi.mode))
		return -EPERM;
	/* Every name of an inode lies in its version: a seal freezes all of them, and a version's
	 * removal or upload sees the whole file. */
	if (fs_mi_content_version(&pmi) != mi.version_ino)
		return -EXDEV;
	rc = new_name_check(ctx, &pmi, mi.version_ino, name);
	if (rc < 0)
		return rc;
	if (mi.nlink >= FS_LINK_MAX)
		return -EMLINK;

	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	int64_t now = fs_now_ns();
	mi.nlink++;
	mi.ctime_ns = now;
	pmi.mtime_ns = pmi.ctime_ns = now;
	meta_batch_put_dirent(b, pmi.ino, name, mi.ino, mi.mode & S_IFMT);
	meta_batch_put_link(b, mi.ino, pmi.ino, name);
	meta_batch_put_inode(b, &mi);
	meta_batch_put_inode(b, &pmi);
	rc = meta_batch_commit(ctx->meta, b, false);
	meta_batch_free(b);
	if (rc < 0) {
		pecfs_log_error("cannot link inode %llu as %s: %s", (unsigned long long)mi.ino, name, strerror(-rc));
		return rc;
	}
	fs_inode_apply(pind, &pmi);
	fs_inode_apply(ind, &mi);
	return 0;
}

void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind, *pind;
	if (pec_is_virtual(ino) || pec_is_virtual(newparent)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = fs_inode_get(ctx, ino, &ind);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = fs_inode_get(ctx, newparent, &pind);
	if (rc < 0) {
		fs_inode_put(ctx, ind);
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&ctx->ns_lock);
	rc = link_locked(ctx, ind, pind, newname);
	pthread_mutex_unlock(&ctx->ns_lock);
	fs_inode_put(ctx, pind);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_entry_of(req, ctx, ind);
	fs_inode_put(ctx, ind);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct statvfs sv;
	(void)ino;
	if (statvfs(store_data_dir(ctx->st), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = META_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

void fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *ind;
	struct stat st;
	(void)mask;
	/* default_permissions: the kernel checked the mode bits; only existence is left. */
	int rc = pec_is_virtual(ino) ? pec_getattr(ctx, ino, &st) : fs_inode_get(ctx, ino, &ind);
	if (rc == 0 && !pec_is_virtual(ino))
		fs_inode_put(ctx, ind);
	fuse_reply_err(req, -rc);
}
