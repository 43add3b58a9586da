/* pc_ops_ns.c - names and attributes: lookup, forget, mknod, mkdir, unlink, rmdir, rename, link,
 * getattr, setattr. Every change of a name changes the live directory table only; pc_dir_sync
 * (fsyncdir) is what makes it durable.
 */
#include "pc_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>   /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <string.h>
#include <unistd.h>

void pc_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct fuse_entry_param e;
	struct pc_node *d;
	struct pc_dirent *de;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = pc_dir_of(fs, parent, &d);
	if (rc == 0) {
		de = pc_dir_find(&d->live, name);
		if (de)
			pc_entry_of(pc_node_get(fs, de->ino), &e);
		else
			rc = -ENOENT;
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void forget_one(struct pc_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct pc_node *n = pc_node_get(fs, ino);

	if (!n)
		return;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	pc_node_release_if_unused(fs, n);
}

/* Forgetting changes nothing durable: it runs whatever the power. */
void pc_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct pc_fs *fs = pc_fs_of(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

void pc_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct pc_fs *fs = pc_fs_of(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}



void pc_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct fuse_entry_param e;
	int rc = pc_power_enter(fs);

	(void)rdev;
	if (rc == 0) {
		/* Sockets (a daemon's control socket) and fifos are names only; devices are refused. */
		if (S_ISREG(mode) || S_ISSOCK(mode) || S_ISFIFO(mode))
			rc = pc_make_node(req, parent, name, mode & (S_IFMT | 07777), &e, NULL);
		else
			rc = -EPERM;
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

void pc_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct fuse_entry_param e;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = pc_make_node(req, parent, name, S_IFDIR | (mode & 07777), &e, NULL);
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static int do_remove(struct pc_fs *fs, fuse_ino_t parent, const char *name, bool dir)
{
	struct pc_dirent *de;
	struct pc_node *d, *t;
	int rc = pc_dir_of(fs, parent, &d);

	if (rc)
		return rc;
	de = pc_dir_find(&d->live, name);
	if (!de)
		return -ENOENT;
	t = pc_node_get(fs, de->ino);
	if (dir && !S_ISDIR(t->mode))
		return -ENOTDIR;
	if (!dir && S_ISDIR(t->mode))
		return -EISDIR;
	if (dir && t->live.n > 0)
		return -ENOTEMPTY;
	t->ctime = d->mtime;
	return pc_unlink(fs, d, name);
}

void pc_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pc_fs *fs = pc_fs_of(req);
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = do_remove(fs, parent, name, false);
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

void pc_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pc_fs *fs = pc_fs_of(req);
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = do_remove(fs, parent, name, true);
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

static int do_rename(struct pc_fs *fs, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	struct pc_node *d, *nd, *s, *t = NULL;
	struct pc_dirent *se, *te;
	int rc;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	rc = pc_dir_of(fs, parent, &d);
	if (rc == 0)
		rc = pc_dir_of(fs, newparent, &nd);
	if (rc)
		return rc;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	se = pc_dir_find(&d->live, name);
	if (!se)
		return -ENOENT;
	s = pc_node_get(fs, se->ino);
	te = pc_dir_find(&nd->live, newname);
	if (te)
		t = pc_node_get(fs, te->ino);
	if (flags & RENAME_EXCHANGE) {
		if (!t)
			return -ENOENT;
		return pc_exchange(fs, d, name, nd, newname);
	}
	if (t && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (t == s)
		return 0;  /* two names of one file: POSIX says do nothing */
	if (t && S_ISDIR(s->mode) && !S_ISDIR(t->mode))
		return -ENOTDIR;
	if (t && !S_ISDIR(s->mode) && S_ISDIR(t->mode))
		return -EISDIR;
	if (t && S_ISDIR(t->mode) && t->live.n > 0)
		return -ENOTEMPTY;
	rc = pc_rename(fs, d, name, nd, newname);
	if (rc == 0)
		s->ctime = nd->mtime;
	return rc;
}

void pc_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags)
{
	struct pc_fs *fs = pc_fs_of(req);
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = do_rename(fs, parent, name, newparent, newname, flags);
	pc_power_leave(fs);
	fuse_reply_err(req, -rc);
}

void pc_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct fuse_entry_param e;
	struct pc_node *n, *d;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = pc_dir_of(fs, newparent, &d);
	if (rc == 0) {
		n = pc_live_node(fs, ino);
		if (!n)
			rc = -ESTALE;
		else if (S_ISDIR(n->mode))
			rc = -EPERM;
		else if (strlen(newname) > NAME_MAX)
			rc = -ENAMETOOLONG;
		else if (pc_dir_find(&d->live, newname))
			rc = -EEXIST;
		else
			rc = pc_link(fs, d, newname, n);
		if (rc == 0) {
			clock_gettime(CLOCK_REALTIME, &n->ctime);
			pc_entry_of(n, &e);
		}
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/* ---- attributes ---- */

void pc_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct pc_node *n = NULL;
	struct stat st;
	int rc = pc_power_enter(fs);

	(void)fi;
	if (rc == 0) {
		n = pc_live_node(fs, ino);
		if (n)
			pc_node_attr(n, &st);
		else
			rc = -ESTALE;
	}
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}

static int do_setattr(struct pc_fs *fs, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi, struct stat *out)
{
	struct pc_node *n = pc_live_node(fs, ino);
	struct timespec ts;
	int rc = 0;

	if (!n)
		return -ESTALE;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		struct pc_handle *h = NULL;
		int fd;

		if (!S_ISREG(n->mode))
			return S_ISDIR(n->mode) ? -EISDIR : -EINVAL;
		if (fi && (rc = pc_handle_of(fs, fi, &h)) != 0)
			return rc;
		fd = h ? h->fd : pc_node_open_object(fs, n, O_RDWR);
		if (fd < 0)
			return fd;
		rc = pc_resize(n, fd, (uint64_t)attr->st_size);
		if (!h)
			close(fd);
		if (rc)
			return rc;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	if (to_set & FUSE_SET_ATTR_MODE)
		n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		n->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		n->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME)
		n->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		n->atime = ts;
	if (to_set & FUSE_SET_ATTR_MTIME)
		n->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		n->mtime = ts;
	n->ctime = ts;
	pc_node_attr(n, out);
	return 0;
}

void pc_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct pc_fs *fs = pc_fs_of(req);
	struct stat st;
	int rc = pc_power_enter(fs);

	if (rc == 0)
		rc = do_setattr(fs, ino, attr, to_set, fi, &st);
	pc_power_leave(fs);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}