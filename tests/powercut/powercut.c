/* powercut.c - pecfs-powercut: a FUSE file system (libfuse3 low-level API) for power-loss tests.
 * Programs see an ordinary file system; at a simulated power cut it forgets every write, create,
 * rename and unlink that no fsync/fdatasync of the file or of its directory made durable.
 *
 * The model (pc_model.h) is POSIX's weakest persistence: fsync of a file makes its bytes and size
 * durable, not its name; fsync of a directory makes its entries durable (as they are at that
 * moment), not the files' bytes. A restore may also let a random prefix of each file's and each
 * directory's unsynced changes survive, for programs that go wrong that way. Every open uses
 * direct I/O, so the kernel caches no file data that could outlive a cut; names and attributes are
 * never cached either (timeouts 0). One lock serializes all operations, so a cut falls between two
 * of them. Deliberately missing: symbolic links, extended attributes, device nodes, mmap of files,
 * locks held across processes (the kernel keeps flock and POSIX locks locally); attributes (mode,
 * owner, times) are not reverted.
 * The power is switched through a control socket (pc_control.c); the operations are in pc_ops*.c,
 * the model in pc_model.c. See README.md.
 *
 * Usage: pecfs-powercut [-d] --control SOCKET BACKING_DIR MOUNTPOINT   (stays in the foreground)
 */
#include "pc_ops.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pc_control.h"

static void pc_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = 1u << 20;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  /* every write reaches the model before it returns */
}

static const struct fuse_lowlevel_ops pc_ops = {
	.init = pc_op_init,
	.lookup = pc_op_lookup,
	.forget = pc_op_forget,
	.forget_multi = pc_op_forget_multi,
	.getattr = pc_op_getattr,
	.setattr = pc_op_setattr,
	.mknod = pc_op_mknod,
	.mkdir = pc_op_mkdir,
	.unlink = pc_op_unlink,
	.rmdir = pc_op_rmdir,
	.rename = pc_op_rename,
	.link = pc_op_link,
	.open = pc_op_open,
	.create = pc_op_create,
	.read = pc_op_read,
	.write = pc_op_write,
	.flush = pc_op_flush,
	.release = pc_op_release,
	.fsync = pc_op_fsync,
	.fallocate = pc_op_fallocate,
	.opendir = pc_op_opendir,
	.readdir = pc_op_readdir,
	.releasedir = pc_op_releasedir,
	.fsyncdir = pc_op_fsyncdir,
	.statfs = pc_op_statfs,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	const char *control = NULL, *backing = NULL, *mnt = NULL;
	struct pc_control ctl = { .fd = -1 };
	struct pc_fs fs;
	int debug = 0, ret = 1, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-d") == 0)
			debug = 1;
		else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc)
			control = argv[++i];
		else if (!backing)
			backing = argv[i];
		else if (!mnt)
			mnt = argv[i];
		else
			backing = NULL;
	}
	if (!control || !backing || !mnt) {
		fprintf(stderr, "usage: %s [-d] --control SOCKET BACKING_DIR MOUNTPOINT\n", argv[0]);
		return 2;
	}
	rc = pc_fs_init(&fs, backing);
	if (rc) {
		fprintf(stderr, "pecfs-powercut: %s: %s\n", backing,
			rc == -ENOTEMPTY ? "the backing folder must be empty" : strerror(-rc));
		return 2;
	}
	if (pc_control_start(&ctl, &fs, control) != 0)
		goto out;
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "fsname=pecfs-powercut,subtype=powercut") ||
	    (debug && fuse_opt_add_arg(&args, "-d")))
		goto out;
	se = fuse_session_new(&args, &pc_ops, sizeof(pc_ops), &fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) || fuse_session_mount(se, mnt))
		goto out;
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	/* Operations wait while the power is cut: leave threads for the ones that follow. */
	fuse_loop_cfg_set_max_threads(loop, 64);
	ret = fuse_session_loop_mt(se, loop) ? 1 : 0;
	fuse_loop_cfg_destroy(loop);
out_unmount:
	fuse_session_unmount(se);
out:
	pc_control_stop(&ctl);
	if (se) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	fuse_opt_free_args(&args);
	pc_fs_destroy(&fs);
	return ret;
}
