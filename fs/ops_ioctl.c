/* ops_ioctl.c - the ioctls of pecfs_ioctl.h: PECFS_IOC_INFO (the chunk size) on any open file or
 * directory, and PECFS_IOC_REF (reference writes) on a file open for writing inside an open version.
 * A linked chunk goes through the same gate and version check as a write and marks the handle
 * written, so size, mtime, fsync, seal and the seal triggers treat it as written bytes. Other
 * commands get ENOTTY, as on a file system without ioctls; 32-bit callers get ENOSYS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pecfs_ioctl.h"
#include "ctx.h"

static void reply_info(fuse_req_t req, struct fs_ctx *ctx, size_t out_bufsz)
{
	struct pecfs_ioc_info info = { .abi = PECFS_IOC_ABI, .chunk_size = store_chunk_size(ctx->st) };

	if (out_bufsz < sizeof(info))
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_ioctl(req, 0, &info, sizeof(info));
}

/* Links each entry of b into the file; whole-call errors are returned, per-entry ones recorded. */
static int ref_batch(struct fs_ctx *ctx, fuse_req_t req, struct fs_file *fh, struct pecfs_ref_batch *b)
{
	struct fs_inode *ind = fh->ind;

	if (b->abi != PECFS_IOC_ABI || b->count == 0 || b->count > PECFS_REF_MAX)
		return -EINVAL;
	if (!fh->writable)
		return -EBADF;
	pthread_mutex_lock(&ind->lock);
	uint64_t vino = ind->mi.version_ino;
	pthread_mutex_unlock(&ind->lock);
	if (vino == 0)
		return -EPERM;

	uint64_t gate;
	int rc = fs_version_write_begin(ctx, vino, &gate);  /* no gate on failure: its end does nothing */
	b->linked = 0;
	b->chunk_size = store_chunk_size(ctx->st);
	for (uint32_t i = 0; i < b->count && rc == 0; i++) {
		struct pecfs_ref_entry *e = &b->e[i];
		struct digest d;

		memcpy(d.b, e->digest, sizeof(d.b));
		e->result = data_link(ind->df, e->off, e->len, &d);
		if (e->result == 0)
			b->linked++;
		else if (e->result != -ENOENT && e->result != -EINVAL && e->result != -EFBIG)
			rc = e->result;  /* -EIO, -ENOMEM: the metadata database failed, stop here */
	}
	fs_version_write_end(ctx, gate);
	if (b->linked > 0) {
		fs_file_wrote(ctx, req, fh);
		/* The kernel learns sizes from writes; of these bytes it knows nothing. */
		if (ctx->se)
			fuse_lowlevel_notify_inval_inode(ctx->se, ind->ino, 0, 0);
	}
	return rc;
}

void fs_op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		 unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct fs_ctx *ctx = fs_ctx_of(req);

	(void)arg;
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (cmd == PECFS_IOC_INFO) {
		reply_info(req, ctx, out_bufsz);
		return;
	}
	if (cmd != PECFS_IOC_REF) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if (in_bufsz != sizeof(struct pecfs_ref_batch) || out_bufsz != sizeof(struct pecfs_ref_batch)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((flags & FUSE_IOCTL_DIR) || pec_is_virtual(ino)) {
		fuse_reply_err(req, EPERM);  /* directories and .pec files are not files of a version */
		return;
	}
	struct pecfs_ref_batch *b = malloc(sizeof(*b));
	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(b, in_buf, sizeof(*b));
	int rc = ref_batch(ctx, req, (struct fs_file *)(uintptr_t)fi->fh, b);
	if (rc < 0) {
		if (rc != -EROFS && rc != -EPERM && rc != -EBADF && rc != -EINVAL)
			pecfs_log_error("reference write to inode %llu: %s", (unsigned long long)ino, strerror(-rc));
		fuse_reply_err(req, -rc);
	} else {
		fuse_reply_ioctl(req, 0, b, sizeof(*b));
	}
	free(b);
}
