/* fuse_init_ext.c - asks the kernel for FUSE_DIRECT_IO_ALLOW_MMAP, which libfuse 3.14 cannot express.
 *
 * Files opened for writing use FUSE direct I/O (2-3x the page cache's speed for large sequential
 * writes), and the kernel refuses a shared mmap of a direct-I/O file unless the INIT reply carries
 * FUSE_DIRECT_IO_ALLOW_MMAP: init flag bit 36, bit 4 of fuse_init_out.flags2, which libfuse 3.14's
 * 32-bit conn->want cannot hold. So the session's device gets read and writev hooks
 * (fuse_session_custom_io, on the descriptor fuse_session_mount opened): read notes the INIT request
 * (its unique, and whether the kernel offered FUSE_INIT_EXT and the flag), writev adds the flag to
 * the reply with that unique. Every other message is a plain read() or writev() after one branch.
 * Without the flag (an older kernel, or direct-io-mmap off) ops_file.c falls back to the page cache.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "ctx.h"

/* Kernel FUSE ABI 7.39 (Linux 6.6, include/uapi/linux/fuse.h, first named FUSE_DIRECT_IO_RELAX, same
 * bit): allow shared mmap of FOPEN_DIRECT_IO files. Init flag bits 32..63 travel in flags2, which the
 * kernel reads only when flags has FUSE_INIT_EXT. Debian 12's <linux/fuse.h> (7.38) predates it. */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif
#define INIT_FLAGS2_ALLOW_MMAP ((uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32))

static void note_request(struct fs_init_ext *x, const void *buf, size_t n)
{
	struct fuse_in_header h;
	struct fuse_init_in in;

	if (n < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	if (h.opcode != FUSE_INIT)
		return;
	/* Kernels before 7.36 send a shorter fuse_init_in, without flags2: missing fields read 0. */
	memset(&in, 0, sizeof(in));
	n -= sizeof(h);
	memcpy(&in, (const char *)buf + sizeof(h), n < sizeof(in) ? n : sizeof(in));
	x->unique = h.unique;
	x->seen = true;
	x->mmap_offered = (in.flags & FUSE_INIT_EXT) && (in.flags2 & INIT_FLAGS2_ALLOW_MMAP);
}

static ssize_t init_ext_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs_init_ext *x = &((struct fs_ctx *)userdata)->init_ext;
	ssize_t n = read(fd, buf, len);

	/* note_request leaves errno alone, which libfuse reads after a failed read */
	if (n > 0 && !atomic_load_explicit(&x->replied, memory_order_relaxed))
		note_request(x, buf, (size_t)n);
	return n;
}

/* libfuse sends a reply as the out header in iov[0] and, unless it is an error, its argument in
 * iov[1]. */
static bool is_init_reply(const struct fs_init_ext *x, const struct iovec *iov, int count)
{
	struct fuse_out_header h;

	if (!x->seen || count < 1 || iov[0].iov_len != sizeof(h))
		return false;
	memcpy(&h, iov[0].iov_base, sizeof(h));
	return h.unique == x->unique;
}

/* Writes the INIT reply with the flag added; libfuse's own copy stays untouched. */
static ssize_t write_init_reply(struct fs_ctx *ctx, int fd, const struct iovec *iov)
{
	struct fuse_init_out out;
	size_t len = iov[1].iov_len;

	if (len < offsetof(struct fuse_init_out, flags2) + sizeof(out.flags2) || len > sizeof(out)) {
		/* A reply shorter than 7.36's cannot carry flags2: answer as libfuse meant, and open
		 * files for writing as if the kernel had not offered the flag. */
		pecfs_log_warn("INIT reply of %zu bytes has no room for FUSE_DIRECT_IO_ALLOW_MMAP: files opened "
			       "O_RDWR use the page cache", len);
		ctx->direct_io_mmap = false;
		return writev(fd, iov, 2);
	}
	memcpy(&out, iov[1].iov_base, len);
	if (!(out.flags & FUSE_INIT_EXT)) {
		/* libfuse asked for nothing above bit 31, so whatever flags2 holds means nothing yet */
		out.flags |= FUSE_INIT_EXT;
		out.flags2 = 0;
	}
	out.flags2 |= INIT_FLAGS2_ALLOW_MMAP;
	struct iovec v[2] = { iov[0], { .iov_base = &out, .iov_len = len } };
	return writev(fd, v, 2);
}

static ssize_t init_ext_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fs_ctx *ctx = userdata;
	struct fs_init_ext *x = &ctx->init_ext;

	if (atomic_load_explicit(&x->replied, memory_order_relaxed) || !is_init_reply(x, iov, count))
		return writev(fd, iov, count);
	/* fs_op_init has decided whether to ask; an error reply (count 1) goes out as it is */
	ssize_t n = ctx->direct_io_mmap && count == 2 ? write_init_reply(ctx, fd, iov) : writev(fd, iov, count);
	atomic_store_explicit(&x->replied, true, memory_order_relaxed);
	return n;
}

int fs_init_ext_install(struct fs_ctx *ctx)
{
	/* No splice hooks: libfuse then never splices from or to the device through them, and pecfs
	 * turns splice off in init anyway. */
	static const struct fuse_custom_io io = { .read = init_ext_read, .writev = init_ext_writev };

	/* Installed after fuse_session_mount, before the request loop: fuse_session_custom_io only
	 * stores the hooks and sets the session's descriptor, here to the one it already has, and
	 * fuse_session_unmount / fuse_session_destroy go on to unmount and close it as before. The
	 * hooks receive the session's userdata, ctx. */
	int rc = fuse_session_custom_io(ctx->se, &io, fuse_session_fd(ctx->se));
	if (rc < 0)
		pecfs_log_warn("cannot hook the FUSE device (%s): files opened O_RDWR use the page cache",
			       strerror(-rc));
	ctx->init_ext.hooked = rc == 0;
	return rc;
}

bool fs_init_ext_direct_io_mmap(struct fs_ctx *ctx, bool want)
{
	const struct fs_init_ext *x = &ctx->init_ext;
	bool on = want && x->hooked && x->mmap_offered;

	if (on)
		pecfs_log_info("files opened for writing keep direct I/O and can be mapped shared "
			       "(FUSE_DIRECT_IO_ALLOW_MMAP)");
	else if (!want)
		pecfs_log_info("direct-io-mmap is off: files opened O_RDWR use the page cache");
	else if (x->hooked)  /* when not, fs_init_ext_install said why */
		pecfs_log_warn("the kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP: files opened O_RDWR use the "
			       "page cache, so that they can be mapped shared");
	return on;
}
