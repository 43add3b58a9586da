/* pc_ops.c - what the operations of pecfs-powercut share: entering under power, finding nodes and
 * handles, attributes, resizing a file, creating a node.
 */
#include "pc_ops.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

struct pc_fs *pc_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Takes the lock and waits while the power is cut. 0 with the lock held, or -EIO (the lock held
 * too) once the power is down. Every operation that reads or changes the model starts here. */
int pc_power_enter(struct pc_fs *fs)
{
	int rc;

	pthread_mutex_lock(&fs->lock);
	fs->waiting++;
	while (fs->power == PC_CUT)
		pthread_cond_wait(&fs->power_changed, &fs->lock);
	fs->waiting--;
	if (fs->waiting == 0)
		pthread_cond_broadcast(&fs->power_changed);  /* a restore may wait for us */
	rc = fs->power == PC_ON ? 0 : -EIO;
	return rc;
}

void pc_power_leave(struct pc_fs *fs)
{
	pthread_mutex_unlock(&fs->lock);
}

/* The node of ino if a cut did not drop it. */
struct pc_node *pc_live_node(struct pc_fs *fs, fuse_ino_t ino)
{
	struct pc_node *n = pc_node_get(fs, ino);

	return n && !n->gone ? n : NULL;
}

int pc_dir_of(struct pc_fs *fs, fuse_ino_t ino, struct pc_node **out)
{
	struct pc_node *d = pc_live_node(fs, ino);

	if (!d)
		return -ESTALE;
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	*out = d;
	return 0;
}

/* The handle of fi if it was opened since the last restore: older ones died with the power. */
int pc_handle_of(struct pc_fs *fs, struct fuse_file_info *fi, struct pc_handle **out)
{
	struct pc_handle *h = (struct pc_handle *)(uintptr_t)fi->fh;

	if (h->epoch != fs->epoch || h->node->gone)
		return -EIO;
	*out = h;
	return 0;
}

void pc_node_attr(const struct pc_node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : n->live_links;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = S_ISREG(n->mode) ? (off_t)n->size : S_ISDIR(n->mode) ? 4096 : 0;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim = n->atime;
	st->st_mtim = n->mtime;
	st->st_ctim = n->ctime;
}

void pc_entry_of(struct pc_node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->attr_timeout = 0;
	e->entry_timeout = 0;
	pc_node_attr(n, &e->attr);
	n->nlookup++;
}

void pc_touch(struct pc_node *n)
{
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
}

/* Bytes [min(old, new), max(old, new)) change when a file's size does: saves the durable ones. */
int pc_resize(struct pc_node *n, int fd, uint64_t size)
{
	uint64_t lo = size < n->size ? size : n->size, hi = size < n->size ? n->size : size;
	int rc;

	if (n->durable_size > hi)
		hi = n->durable_size;
	rc = pc_file_before_change(n, fd, lo, hi - lo);
	if (rc)
		return rc;
	if (ftruncate(fd, (off_t)size) != 0)
		return -errno;
	n->size = size;
	pc_touch(n);
	return 0;
}

int pc_make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_entry_param *e, struct pc_node **out)
{
	struct pc_fs *fs = pc_fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct pc_node *d, *n;
	int rc = pc_dir_of(fs, parent, &d);

	if (rc)
		return rc;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (pc_dir_find(&d->live, name))
		return -EEXIST;
	n = pc_node_new(fs, mode, ctx->uid, ctx->gid);
	if (!n)
		return -errno;
	rc = pc_link(fs, d, name, n);
	if (rc) {
		pc_node_release_if_unused(fs, n);
		return rc;
	}
	pc_entry_of(n, e);
	if (out)
		*out = n;
	return 0;
}