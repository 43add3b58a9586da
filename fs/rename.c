/* rename.c - rename(2) with flags 0, RENAME_NOREPLACE and RENAME_EXCHANGE, as one metadata batch.
 *
 * Version rules: a directory keeps its place in the run/version hierarchy or the rename fails with
 * EXDEV (mv then copies): runs stay at the top, versions stay directly in a run (possibly another
 * run: the record moves with them), other directories stay in their version. Files, symlinks and
 * special files may move anywhere and take the version of their new directory, except a file with
 * other names (hard links), which stays in its version like them. Nothing moves into, out of
 * or within a sealed version, and a sealed version directory itself cannot be renamed (EROFS).
 * Renaming a temporary version directory into its final name seals it (seal_on_rename); when that
 * seal fails the rename is undone and fails with the seal's error.
 */
#include <errno.h>
#include <string.h>

#include "version_name.h"
#include "ctx.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

struct rn_side {
	struct fs_inode *ind;       /* referenced, or NULL */
	struct meta_inode mi;       /* snapshot, updated to its new place */
};

/* version_ino an inode gets in directory dir. */
static uint64_t placed_version(const struct meta_inode *mi, const struct meta_inode *dir)
{
	if (S_ISDIR(mi->mode) && fs_mi_is_run(dir))
		return mi->ino;
	return fs_mi_content_version(dir);
}

/* 0 if moving mi into dir keeps the version rules, -EXDEV otherwise. */
static int check_placement(const struct meta_inode *mi, const struct meta_inode *dir)
{
	if (!S_ISDIR(mi->mode))
		return mi->nlink > 1 && placed_version(mi, dir) != mi->version_ino ? -EXDEV : 0;
	bool was_run = fs_mi_is_run(mi), to_root = dir->ino == META_ROOT_INO;
	if (was_run != to_root)
		return -EXDEV;
	return placed_version(mi, dir) == mi->version_ino ? 0 : -EXDEV;
}

/* -EINVAL if directory ino is dir or inside it. */
static int check_not_inside(struct fs_ctx *ctx, uint64_t dir, uint64_t ino)
{
	struct meta_inode mi;
	for (uint64_t cur = ino; cur != 0 && cur != META_ROOT_INO; cur = mi.parent) {
		if (cur == dir)
			return -EINVAL;
		int rc = meta_get_inode(ctx->meta, cur, &mi);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int check_writable_inode(struct fs_ctx *ctx, const struct meta_inode *mi)
{
	return fs_mi_is_version(mi) ? fs_version_check_writable(ctx, mi->ino) : 0;
}

static int load_entry(struct fs_ctx *ctx, uint64_t dir, const char *name, struct rn_side *s)
{
	uint64_t ino;
	uint32_t mode;
	int rc = meta_get_dirent(ctx->meta, dir, name, &ino, &mode);
	if (rc < 0)
		return rc;
	rc = fs_inode_get(ctx, ino, &s->ind);
	if (rc < 0)
		return rc;
	fs_inode_snapshot(s->ind, &s->mi);
	return 0;
}

/* Moves side s from (from, from_name) to (dir, name) in the batch. A name other than the one the
 * inode records is an `N` record (hard links), which moves instead. */
static void place(struct meta_batch *b, struct rn_side *s, uint64_t from, const char *from_name,
		  const struct meta_inode *dir, const char *name, int64_t now)
{
	if (!S_ISDIR(s->mi.mode) && (s->mi.parent != from || strcmp(s->mi.name, from_name) != 0)) {
		meta_batch_del_link(b, s->mi.ino, from, from_name);
		meta_batch_put_link(b, s->mi.ino, dir->ino, name);
	} else {
		s->mi.parent = dir->ino;
		snprintf(s->mi.name, sizeof(s->mi.name), "%s", name);
	}
	s->mi.version_ino = placed_version(&s->mi, dir);
	s->mi.ctime_ns = now;
	meta_batch_put_dirent(b, dir->ino, name, s->mi.ino, s->mi.mode & S_IFMT);
	meta_batch_put_inode(b, &s->mi);
}

struct rn_req {
	struct fs_inode *p, *np;
	const char *name, *newname;
	unsigned int flags;
	uint64_t seal_vino;  /* out: version to seal after the rename */
};

static int rename_locked(struct fs_ctx *ctx, struct rn_req *r)
{
	struct meta_inode pm, npm;
	struct rn_side s = { 0 }, t = { 0 };
	struct meta_batch *b = NULL;
	struct fs_drop d;
	bool exchange = r->flags & RENAME_EXCHANGE, dropped = false;
	int rc;

	fs_inode_snapshot(r->p, &pm);
	fs_inode_snapshot(r->np, &npm);
	bool same_dir = pm.ino == npm.ino;
	struct meta_inode *pp = &pm, *npp = same_dir ? &pm : &npm;
	if (!S_ISDIR(pm.mode) || !S_ISDIR(npm.mode))
		return -ENOTDIR;
	if (pm.nlink == 0 || npm.nlink == 0)
		return -ENOENT;
	if (fs_ns_is_reserved(pp, r->name) || fs_ns_is_reserved(npp, r->newname))
		return -EPERM;
	rc = load_entry(ctx, pm.ino, r->name, &s);
	if (rc < 0)
		goto out;
	rc = load_entry(ctx, npm.ino, r->newname, &t);
	if (rc < 0 && rc != -ENOENT)
		goto out;
	rc = 0;
	if (exchange && !t.ind) {
		rc = -ENOENT;
		goto out;
	}
	if ((r->flags & RENAME_NOREPLACE) && t.ind) {
		rc = -EEXIST;
		goto out;
	}
	if (t.ind && t.ind == s.ind)
		goto out;  /* the same entry, or two names of one file: POSIX says nothing happens */

	if ((rc = fs_version_check_writable(ctx, fs_mi_content_version(pp))) < 0 ||
	    (rc = fs_version_check_writable(ctx, fs_mi_content_version(npp))) < 0 ||
	    (rc = check_writable_inode(ctx, &s.mi)) < 0 ||
	    (t.ind && (rc = check_writable_inode(ctx, &t.mi)) < 0))
		goto out;
	if (t.ind && !exchange) {
		if (S_ISDIR(s.mi.mode) && !S_ISDIR(t.mi.mode))
			rc = -ENOTDIR;
		else if (!S_ISDIR(s.mi.mode) && S_ISDIR(t.mi.mode))
			rc = -EISDIR;
		else if (S_ISDIR(t.mi.mode) && !meta_dir_is_empty(ctx->meta, t.mi.ino))
			rc = -ENOTEMPTY;
		if (rc < 0)
			goto out;
	}
	if (S_ISDIR(s.mi.mode) && (rc = check_not_inside(ctx, s.mi.ino, npm.ino)) < 0)
		goto out;
	if (exchange && S_ISDIR(t.mi.mode) && (rc = check_not_inside(ctx, t.mi.ino, pm.ino)) < 0)
		goto out;
	if ((rc = check_placement(&s.mi, npp)) < 0 || (exchange && (rc = check_placement(&t.mi, pp)) < 0))
		goto out;

	b = meta_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out;
	}
	int64_t now = fs_now_ns();
	if (t.ind && !exchange) {
		fs_ns_drop_prepare(ctx, b, npp, r->newname, t.ind, false, &d);
		dropped = true;
	}
	if (!exchange)
		meta_batch_del_dirent(b, pm.ino, r->name);
	place(b, &s, pm.ino, r->name, npp, r->newname, now);
	if (exchange)
		place(b, &t, npm.ino, r->newname, pp, r->name, now);
	if (!same_dir) {
		if (S_ISDIR(s.mi.mode)) {
			pp->nlink--;
			npp->nlink++;
		}
		if (exchange && S_ISDIR(t.mi.mode)) {
			npp->nlink--;
			pp->nlink++;
		}
	}
	if (fs_mi_is_version(&s.mi))
		fs_version_move_record(ctx, b, s.mi.ino, npm.ino, r->newname);
	if (exchange && fs_mi_is_version(&t.mi))
		fs_version_move_record(ctx, b, t.mi.ino, pm.ino, r->name);
	pp->mtime_ns = pp->ctime_ns = npp->mtime_ns = npp->ctime_ns = now;
	meta_batch_put_inode(b, pp);
	if (!same_dir)
		meta_batch_put_inode(b, npp);
	rc = meta_batch_commit(ctx->meta, b, false);
	if (rc < 0) {
		pecfs_log_error("cannot rename %s to %s: %s", r->name, r->newname, strerror(-rc));
		if (dropped)
			fs_ns_drop_abort(ctx, &d);
		goto out;
	}

	fs_inode_apply(r->p, pp);
	if (!same_dir)
		fs_inode_apply(r->np, npp);
	fs_inode_apply(s.ind, &s.mi);
	if (fs_mi_is_version(&s.mi))
		fs_version_moved(ctx, s.mi.ino, npm.ino, r->newname);
	if (exchange) {
		fs_inode_apply(t.ind, &t.mi);
		if (fs_mi_is_version(&t.mi))
			fs_version_moved(ctx, t.mi.ino, pm.ino, r->name);
	}
	if (dropped)
		fs_ns_drop_done(ctx, &d);
	if (ctx->cfg->seal_on_rename && fs_mi_is_version(&s.mi) && version_name_is_temporary(r->name) &&
	    !version_name_is_temporary(r->newname))
		r->seal_vino = s.mi.ino;
out:
	meta_batch_free(b);
	if (s.ind)
		fs_inode_put(ctx, s.ind);
	if (t.ind)
		fs_inode_put(ctx, t.ind);
	return rc;
}

/* The seal of a version renamed into place failed: the rename fails with the seal's error, so it is
 * taken back (the kernel, told of the failure, keeps the old name too). The final name then never
 * names a version that is not durable. Sealing first is no way out: the seal composes and orders
 * the version under its name. An empty directory the rename replaced stays gone, and if the way
 * back fails (say, the metadata disk is full too) the version stays open under its new name; both
 * are logged. Caller holds ns_lock. */
static void rename_undo(struct fs_ctx *ctx, const struct rn_req *r)
{
	struct rn_req back = { .p = r->np, .np = r->p, .name = r->newname, .newname = r->name,
			       .flags = r->flags & RENAME_EXCHANGE };
	int rc = rename_locked(ctx, &back);

	if (rc < 0)
		pecfs_log_error("seal of %s failed and it cannot be renamed back to %s (%s): it stays open "
				"under its new name", r->newname, r->name, strerror(-rc));
	else
		pecfs_log_warn("seal of %s failed: renamed back to %s, still open", r->newname, r->name);
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct rn_req r = { .name = name, .newname = newname, .flags = flags };
	int rc;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((rc = fs_check_name(name)) < 0 || (rc = fs_check_name(newname)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if ((rc = fs_inode_get(ctx, parent, &r.p)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if ((rc = fs_inode_get(ctx, newparent, &r.np)) < 0) {
		fs_inode_put(ctx, r.p);
		fuse_reply_err(req, -rc);
		return;
	}
	/* A temporary version renamed into place is sealed under ns_lock: what shared mappings stored
	 * in it is written back first, without the lock (fs_version_write_back_mapped). */
	if (ctx->cfg->seal_on_rename && version_name_is_temporary(name) && !version_name_is_temporary(newname)) {
		uint64_t vino;
		uint32_t vmode;
		struct fs_version fv;
		if (meta_get_dirent(ctx->meta, parent, name, &vino, &vmode) == 0 && S_ISDIR(vmode) &&
		    fs_version_get(ctx, vino, &fv) == 0)
			fs_version_write_back_mapped(ctx, vino);
	}
	pthread_mutex_lock(&ctx->ns_lock);
	rc = rename_locked(ctx, &r);
	if (rc == 0 && r.seal_vino) {
		rc = fs_version_seal_locked(ctx, r.seal_vino, "renamed into place");
		if (rc < 0)
			rename_undo(ctx, &r);
	}
	pthread_mutex_unlock(&ctx->ns_lock);
	fs_inode_put(ctx, r.np);
	fs_inode_put(ctx, r.p);
	fuse_reply_err(req, -rc);
}
