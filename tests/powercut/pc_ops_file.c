/* pc_ops_file.c - open files and directories: open, create, read, write, flush, release, fsync,
 * fallocate, opendir, readdir, releasedir, fsyncdir, statfs. Every open uses direct I/O, so the
 * kernel caches no file data that could outlive a cut; changes save the durable bytes they
 * overwrite first (pc_file_before_change), and fsync/fsyncdir make the live state durable.
 */
#include "pc_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- files ---- */

/* Opens node n for fi: a handle on its object, direct I/O, O_TRUNC applied. */
static int do_open(struct pc_fs *fs, struct pc_node *n, struct fuse_file_info *fi)
{
	struct pc_handle *h;
	int rc;

	if (S_ISDIR(n->mode))
		return -EISDIR;
	if (!S_ISREG(n->mode))
		return -ENXIO;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = pc_node_open_object(fs, n, O_RDWR);
	if (h->fd < 0) {
		rc = h->fd;
		free(h);
		return rc;
	}
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
		rc = pc_resize(n, h->fd, 0);
		if (rc) {
			close(h->fd);
			free(h);
			return rc;
		}
	}
	h->node = n;
	h->epoch = fs->epoch;
	n->nopen++;
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;  /* no page cache: nothing cached can survive a cut */
	fi->keep_cache = 0;
	return 0;
}

void pc_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_node *n;
	int rc = pc_power_enter(fs);

	if (rc == 0) {
		n = pc_live_node(fs, ino);
		rc = n ? do_open(fs, n, fi) : -ESTALE;
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_open(req, fi);
}

void pc_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct fuse_entry_param e;
	struct pc_node *d, *n = NULL;
	struct pc_dirent *de;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = pc_dir_of(fs, parent, &d);
	if (rc == 0) {
		de = pc_dir_find(&d->live, name);
		if (de && (fi->flags & O_EXCL)) {
			rc = -EEXIST;
		} else if (de) {
			n = pc_node_get(fs, de->ino);
			rc = do_open(fs, n, fi);
			if (rc == 0)
				pc_entry_of(n, &e);
		} else {
			rc = pc_make_node(req, parent, name, S_IFREG | (mode & 07777), &e, &n);
			if (rc == 0) {
				rc = do_open(fs, n, fi);
				if (rc) {  /* give the lookup back; the name stays, as after a failed open */
					n->nlookup--;
				}
			}
		}
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_create(req, &e, fi);
}

void pc_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_handle *h;
	char *buf = malloc(size ? size : 1);
	ssize_t got = 0;
	int rc = pc_power_enter(fs);

	(void)ino;
	if (rc == 0)
		rc = buf ? pc_handle_of(fs, fi, &h) : -ENOMEM;
	while (rc == 0 && (size_t)got < size) {
		ssize_t r = pread(h->fd, buf + got, size - (size_t)got, off + got);

		if (r < 0 && errno != EINTR)
			rc = -errno;
		else if (r == 0)
			break;
		else if (r > 0)
			got += r;
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

void pc_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_handle *h;
	size_t done = 0;
	int rc = pc_power_enter(fs);

	(void)ino;
	if (rc == 0)
		rc = pc_handle_of(fs, fi, &h);
	if (rc == 0)
		rc = pc_file_before_change(h->node, h->fd, (uint64_t)off, size);
	while (rc == 0 && done < size) {
		ssize_t r = pwrite(h->fd, buf + done, size - done, off + (off_t)done);

		if (r < 0 && errno != EINTR)
			rc = -errno;
		else if (r > 0)
			done += (size_t)r;
	}
	if (done > 0) {
		if ((uint64_t)off + done > h->node->size)
			h->node->size = (uint64_t)off + done;
		pc_touch(h->node);
	}
	pc_power_leave(fs);
	if (rc && done == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, done);
}

void pc_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);  /* closing persists nothing */
}

/* Runs whatever the power: the handle goes, nothing durable changes. */
void pc_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_handle *h = (struct pc_handle *)(uintptr_t)fi->fh;

	(void)ino;
	pthread_mutex_lock(&fs->lock);
	close(h->fd);
	h->node->nopen--;
	pc_node_release_if_unused(fs, h->node);
	pthread_mutex_unlock(&fs->lock);
	free(h);
	fuse_reply_err(req, 0);
}

void pc_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_handle *h;
	int rc = pc_power_enter(fs);

	(void)ino;
	(void)datasync;  /* size is data here: fdatasync keeps what fsync keeps */
	if (rc == 0)
		rc = pc_handle_of(fs, fi, &h);
	if (rc == 0)
		pc_file_sync(fs, h->node);
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

void pc_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		     struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_handle *h;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	int rc = pc_power_enter(fs);

	(void)ino;
	if (rc == 0)
		rc = pc_handle_of(fs, fi, &h);
	if (rc == 0 && (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
		rc = -EOPNOTSUPP;
	if (rc == 0) {
		struct pc_node *n = h->node;

		/* Zeroed ranges change bytes; a growing size turns bytes past the old end into zeros. */
		if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
			rc = pc_file_before_change(n, h->fd, (uint64_t)off, (uint64_t)len);
		if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > n->size)
			rc = pc_file_before_change(n, h->fd, n->size, end - n->size);
		if (rc == 0 && fallocate(h->fd, mode, off, len) != 0)
			rc = -errno;
		if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > n->size)
			n->size = end;
	}
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

/* An open directory: the entries as of the last read from offset 0. */
struct pc_dirhandle {
	struct pc_snap {
		char *name;
		uint64_t ino;
		mode_t mode;
	} *v;
	size_t n;
};

static void snap_clear(struct pc_dirhandle *dh)
{
	for (size_t i = 0; i < dh->n; i++)
		free(dh->v[i].name);
	free(dh->v);
	dh->v = NULL;
	dh->n = 0;
}

/* The entries of d, with "." and "..", as a reader sees them until it rewinds. */
static int snap_take(struct pc_fs *fs, struct pc_node *d, struct pc_dirhandle *dh)
{
	snap_clear(dh);
	dh->v = calloc(d->live.n + 2, sizeof(*dh->v));
	if (!dh->v)
		return -ENOMEM;
	for (size_t i = 0; i < d->live.n + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." : d->live.v[i - 2].name;
		uint64_t ino = i < 2 ? d->ino : d->live.v[i - 2].ino;

		dh->v[i].name = strdup(name);
		if (!dh->v[i].name) {
			snap_clear(dh);
			return -ENOMEM;
		}
		dh->v[i].ino = ino;
		dh->v[i].mode = pc_node_get(fs, ino)->mode;
		dh->n++;
	}
	return 0;
}

void pc_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_dirhandle *dh = NULL;
	struct pc_node *d;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = pc_dir_of(fs, ino, &d);
	if (rc == 0) {
		dh = calloc(1, sizeof(*dh));
		rc = dh ? 0 : -ENOMEM;
	}
	pc_power_leave(fs);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)dh;
	fuse_reply_open(req, fi);
}

void pc_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_dirhandle *dh = (struct pc_dirhandle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	struct pc_node *d;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = buf ? pc_dir_of(fs, ino, &d) : -ENOMEM;
	if (rc == 0 && off == 0)
		rc = snap_take(fs, d, dh);
	pc_power_leave(fs);
	for (size_t i = (size_t)off; rc == 0 && i < dh->n; i++) {
		struct stat st = { .st_ino = dh->v[i].ino, .st_mode = dh->v[i].mode };
		size_t len = fuse_add_direntry(req, buf + pos, size - pos, dh->v[i].name, &st, (off_t)(i + 1));

		if (len > size - pos)
			break;
		pos += len;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

void pc_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pc_dirhandle *dh = (struct pc_dirhandle *)(uintptr_t)fi->fh;

	(void)ino;
	snap_clear(dh);
	free(dh);
	fuse_reply_err(req, 0);
}

void pc_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_node *d;
	int rc = pc_power_enter(fs);

	(void)datasync;
	(void)fi;
	if (rc == 0)
		rc = pc_dir_of(fs, ino, &d);
	if (rc == 0)
		rc = pc_dir_sync(fs, d);
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

void pc_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct statvfs sv;
	int rc = pc_power_enter(fs);

	(void)ino;
	if (rc == 0 && fstatvfs(fs->backing_fd, &sv) != 0)
		rc = -errno;
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}