/* ops_dir.c - directory listings: opendir, readdir, readdirplus, releasedir, fsyncdir.
 *
 * opendir snapshots the listing into the handle and offsets index that snapshot, so entries added or
 * removed during a listing never make it skip or repeat a name; reading from offset 0 again
 * (rewinddir) takes a fresh snapshot. The virtual .pec entry is never listed (rm -r and cp -r of a run
 * must not see it); it is reachable by name only.
 *
 * A READDIRPLUS reply carries each entry's attributes and takes a lookup of it: every entry loads its
 * inode. The kernel (readdirplus "auto") asks for one at offset 0 of every listing, and for later
 * batches only once the program has looked entries up (ls -l, du). Its requests are 1 MiB on this
 * kernel, some 6500 entries, so a plain listing of a large directory (ls, os.listdir, a loader
 * globbing its shards) loaded thousands of inodes it never used: 51 ms of a 70 ms listing of 100k
 * entries. The reply at offset 0 therefore stops after FS_READDIRPLUS_FIRST entries; a directory that
 * small still comes whole with its attributes, and for a larger one the kernel chooses plus or plain
 * for the rest as the program shows it needs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

#define FS_READDIRPLUS_FIRST 1024  /* entries of a READDIRPLUS reply at offset 0, . and .. besides */

struct dir_ent {
	uint64_t ino;
	uint32_t mode;
	size_t name;  /* offset of its NUL-terminated name in the handle's names */
};

struct dir_handle {
	pthread_mutex_t lock;
	struct dir_ent *ents;
	size_t n, cap;
	char *names;  /* every name of the snapshot, one after the other: one allocation, not one each */
	size_t names_len, names_cap;
	bool read_once;
};

static void dir_clear(struct dir_handle *dh)
{
	dh->n = 0;
	dh->names_len = 0;
}

static void dir_free(struct dir_handle *dh)
{
	free(dh->ents);
	free(dh->names);
	pthread_mutex_destroy(&dh->lock);
	free(dh);
}

static const char *ent_name(const struct dir_handle *dh, const struct dir_ent *de)
{
	return dh->names + de->name;
}

static int dir_add(struct dir_handle *dh, const char *name, uint64_t ino, uint32_t mode)
{
	size_t len = strlen(name) + 1;
	if (dh->n == dh->cap) {
		size_t ncap = dh->cap ? dh->cap * 2 : 32;
		struct dir_ent *ne = realloc(dh->ents, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		dh->ents = ne;
		dh->cap = ncap;
	}
	if (dh->names_len + len > dh->names_cap) {
		size_t ncap = dh->names_cap ? dh->names_cap * 2 : 1024;
		while (ncap < dh->names_len + len)
			ncap *= 2;
		char *nn = realloc(dh->names, ncap);
		if (!nn)
			return -ENOMEM;
		dh->names = nn;
		dh->names_cap = ncap;
	}
	memcpy(dh->names + dh->names_len, name, len);
	dh->ents[dh->n++] = (struct dir_ent){ .ino = ino, .mode = mode, .name = dh->names_len };
	dh->names_len += len;
	return 0;
}

static int dir_add_cb(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	return dir_add(arg, name, ino, mode);
}

static int dir_snapshot(struct fs_ctx *ctx, uint64_t ino, struct dir_handle *dh)
{
	struct meta_inode mi;
	dir_clear(dh);
	int rc = meta_get_inode(ctx->meta, ino, &mi);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(mi.mode))
		return -ENOTDIR;
	if ((rc = dir_add(dh, ".", ino, S_IFDIR)) < 0 ||
	    (rc = dir_add(dh, "..", mi.parent ? mi.parent : ino, S_IFDIR)) < 0)
		return rc;
	return meta_list_dir(ctx->meta, ino, NULL, dir_add_cb, dh);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	if (pec_is_virtual(ino)) {
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
	struct dir_handle *dh = calloc(1, sizeof(*dh));
	if (!dh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&dh->lock, NULL);
	int rc = dir_snapshot(ctx, ino, dh);
	if (rc < 0) {
		dir_free(dh);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)dh;
	if (fuse_reply_open(req, fi) != 0)
		dir_free(dh);
}

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	if (pec_is_virtual(ino)) {
		pec_readdir(req, ino, size, off, plus);
		return;
	}
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	int rc = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&dh->lock);
	if (off == 0 && dh->read_once)
		rc = dir_snapshot(ctx, ino, dh);
	dh->read_once = true;
	if (off == 0) {
		struct fs_inode *dind;
		if (fs_inode_get(ctx, ino, &dind) == 0) {
			fs_inode_touch_atime(ctx, dind);
			fs_inode_put(ctx, dind);
		}
	}
	size_t end = dh->n;
	if (plus && off == 0 && end > FS_READDIRPLUS_FIRST + 2)
		end = FS_READDIRPLUS_FIRST + 2;
	for (size_t i = (size_t)off; rc == 0 && i < end; i++) {
		struct dir_ent *de = &dh->ents[i];
		size_t len;
		if (plus) {
			struct fuse_entry_param e = { 0 };
			struct fs_inode *ind = NULL;
			if (is_dot(ent_name(dh, de))) {
				/* No lookup is taken for . and ..: ino 0 tells the kernel so. */
				e.attr.st_ino = de->ino;
				e.attr.st_mode = de->mode;
			} else if (fs_inode_get(ctx, de->ino, &ind) == 0) {
				fs_inode_entry(ctx, ind, &e);
			} else {
				continue;  /* removed since the snapshot */
			}
			len = fuse_add_direntry_plus(req, buf + used, size - used, ent_name(dh, de), &e, (off_t)i + 1);
			if (ind) {
				if (len <= size - used)
					fs_inode_lookup_inc(ctx, ind);
				fs_inode_put(ctx, ind);
			}
		} else {
			struct stat st = { .st_ino = de->ino, .st_mode = de->mode };
			len = fuse_add_direntry(req, buf + used, size - used, ent_name(dh, de), &st, (off_t)i + 1);
		}
		if (len > size - used)
			break;
		used += len;
	}
	pthread_mutex_unlock(&dh->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	if (dh)
		dir_free(dh);
	fuse_reply_err(req, 0);
}

void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	/* Entries are committed before each reply; making them durable is syncing the log. */
	fuse_reply_err(req, -meta_sync(fs_ctx_of(req)->meta));
}
