/* passthrough.c - the benchmark's fair FUSE baseline: mirrors a directory through the libfuse3
 * low-level API with direct I/O on every open, 1 MiB max_write and the multithreaded loop, so that
 * pecfs is compared with "FUSE plus a plain filesystem" and not only with the raw disk.
 * Deliberately minimal: files and directories only (no symlinks, xattrs, hard links, locks); one
 * user (no permission switching). Usage: passthrough [-f] [-d] SOURCE_DIR MOUNTPOINT
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <fuse_lowlevel.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* One known inode of the source tree, held open with O_PATH. */
struct pt_inode {
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;            /* protected by pt.lock */
	struct pt_inode *next;       /* protected by pt.lock: the hash bucket's chain */
};

/* Known inodes by (dev, ino), as a real passthrough keeps them: a lookup costs the same for the
 * millionth inode as for the first. */
#define PT_BUCKETS (1u << 20)

struct pt {
	pthread_mutex_t lock;
	struct pt_inode root;        /* not in the table */
	struct pt_inode **table;     /* PT_BUCKETS chains */
	double timeout;
};

static struct pt_inode **pt_bucket(struct pt *pt, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 32)) * 0x9E3779B97F4A7C15ull;
	return &pt->table[h >> (64 - 20)];
}

static struct pt *pt_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pt_inode *pt_inode(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &pt_of(req)->root;
	return (struct pt_inode *)(uintptr_t)ino;
}

static int pt_fd(fuse_req_t req, fuse_ino_t ino)
{
	return pt_inode(req, ino)->fd;
}

static void pt_proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/* Finds or creates the inode for name in parent and fills e; returns 0 or an errno. */
static int pt_do_lookup(fuse_req_t req, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in, *found = NULL;
	int fd, err;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = e->entry_timeout = pt->timeout;
	fd = openat(pt_fd(req, parent), name, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		err = errno;
		close(fd);
		return err;
	}
	pthread_mutex_lock(&pt->lock);
	struct pt_inode **head = pt_bucket(pt, e->attr.st_dev, e->attr.st_ino);
	for (in = *head; in; in = in->next) {
		if (in->ino == e->attr.st_ino && in->dev == e->attr.st_dev) {
			found = in;
			break;
		}
	}
	if (found) {
		found->nlookup++;
		close(fd);
	} else {
		found = calloc(1, sizeof(*found));
		if (!found) {
			pthread_mutex_unlock(&pt->lock);
			close(fd);
			return ENOMEM;
		}
		found->fd = fd;
		found->dev = e->attr.st_dev;
		found->ino = e->attr.st_ino;
		found->nlookup = 1;
		found->next = *head;
		*head = found;
	}
	pthread_mutex_unlock(&pt->lock);
	e->ino = (uintptr_t)found;
	return 0;
}

static void pt_forget_one(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);

	if (in == &pt->root)
		return;
	pthread_mutex_lock(&pt->lock);
	assert(in->nlookup >= n);
	in->nlookup -= n;
	if (in->nlookup == 0) {
		struct pt_inode **pp = pt_bucket(pt, in->dev, in->ino);
		while (*pp != in)
			pp = &(*pp)->next;
		*pp = in->next;
		close(in->fd);
		free(in);
	}
	pthread_mutex_unlock(&pt->lock);
}

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = 1u << 20;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = pt_do_lookup(req, parent, name, &e);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pt_forget_one(req, ino, nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		pt_forget_one(req, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (fstatat(pt_fd(req, ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, pt_of(req)->timeout);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi)
{
	char path[64];
	int fd = pt_fd(req, ino);

	pt_proc_path(path, sizeof(path), fd);
	if ((valid & FUSE_SET_ATTR_MODE) && chmod(path, attr->st_mode) < 0)
		goto out_err;
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto out_err;
	}
	if ((valid & FUSE_SET_ATTR_SIZE) &&
	    (fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(path, attr->st_size)) < 0)
		goto out_err;
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (utimensat(AT_FDCWD, path, tv, 0) < 0)
			goto out_err;
	}
	pt_getattr(req, ino, fi);
	return;
out_err:
	fuse_reply_err(req, errno);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	int err = 0;

	if (mkdirat(pt_fd(req, parent), name, mode) < 0)
		err = errno;
	else
		err = pt_do_lookup(req, parent, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(pt_fd(req, parent), name, 0) < 0 ? errno : 0);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(pt_fd(req, parent), name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	int r = renameat2(pt_fd(req, parent), name, pt_fd(req, newparent), newname, flags);

	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int fd, err;

	fd = openat(pt_fd(req, parent), name, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	err = pt_do_lookup(req, parent, name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->direct_io = 1;
	fuse_reply_create(req, &e, fi);
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[64];
	int fd;

	pt_proc_path(path, sizeof(path), pt_fd(req, ino));
	fd = open(path, fi->flags & ~O_NOFOLLOW);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a dup reports delayed write errors as a local close would */
	int d = dup((int)fi->fh), r = d < 0 ? d : close(d);

	(void)ino;
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);

	(void)ino;
	fuse_reply_err(req, r < 0 ? errno : 0);
}

/* Reads into a per-thread buffer kept for the life of the thread: allocating (and first touching)
 * 1 MiB per request is slow enough in a VM to dominate the read path. */
static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	static __thread char *buf;
	static __thread size_t cap;
	ssize_t n;

	(void)ino;
	if (cap < size) {
		free(buf);
		cap = 0;
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		cap = size;
	}
	n = pread((int)fi->fh, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void pt_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n = pwrite((int)fi->fh, data, size, off);

	(void)ino;
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

struct pt_dir {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	int fd;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(pt_fd(req, ino), ".", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	fuse_reply_open(req, fi);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t left = size;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		struct stat st = { 0 };
		size_t len;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry)
				break;
		}
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)d->entry->d_type << 12;
		len = fuse_add_direntry(req, p, left, d->entry->d_name, &st, d->entry->d_off);
		if (len > left)
			break;  /* no room: this entry goes first in the next reply */
		p += len;
		left -= len;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	fuse_reply_buf(req, buf, size - left);
	free(buf);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(pt_fd(req, ino), &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.create = pt_create,
	.open = pt_open,
	.release = pt_release,
	.flush = pt_flush,
	.fsync = pt_fsync,
	.read = pt_read,
	.write = pt_write,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.statfs = pt_statfs,
};

/* Every inode the kernel knows holds an O_PATH descriptor: raise the soft limit to the hard one (a
 * benchmark of many files drops the kernel's caches before it reaches that). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct pt pt = { .timeout = 1.0 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	const char *src = NULL, *mnt = NULL;
	int foreground = 0, debug = 0, ret = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0)
			foreground = 1;
		else if (strcmp(argv[i], "-d") == 0)
			debug = foreground = 1;
		else if (!src)
			src = argv[i];
		else if (!mnt)
			mnt = argv[i];
	}
	if (!src || !mnt) {
		fprintf(stderr, "usage: %s [-f] [-d] SOURCE_DIR MOUNTPOINT\n", argv[0]);
		return 2;
	}
	raise_fd_limit();
	pthread_mutex_init(&pt.lock, NULL);
	pt.table = calloc(PT_BUCKETS, sizeof(*pt.table));
	if (!pt.table) {
		perror("calloc");
		return 2;
	}
	pt.root.nlookup = 2;
	pt.root.fd = open(src, O_PATH);
	if (pt.root.fd < 0) {
		perror(src);
		return 2;
	}
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "default_permissions,fsname=passthrough") ||
	    (debug && fuse_opt_add_arg(&args, "-d")))
		goto out;
	se = fuse_session_new(&args, &pt_ops, sizeof(pt_ops), &pt);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) || fuse_session_mount(se, mnt))
		goto out;
	if (fuse_daemonize(foreground))
		goto out_unmount;
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(loop, 16);
	ret = fuse_session_loop_mt(se, loop) ? 1 : 0;
	fuse_loop_cfg_destroy(loop);
out_unmount:
	fuse_session_unmount(se);
out:
	if (se) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	fuse_opt_free_args(&args);
	close(pt.root.fd);
	free(pt.table);
	return ret;
}
