/* pc_ops.h - the FUSE operations of pecfs-powercut and the helpers they share (private to it).
 *
 * Every operation that reads or changes the model runs between pc_power_enter and pc_power_leave,
 * under pc_fs.lock, and replies after leaving; forget and release run whatever the power, since
 * they change nothing durable. Names and attributes are answered with timeouts 0.
 */
#ifndef PC_OPS_H
#define PC_OPS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>

#include "pc_model.h"

/* An open regular file: its object, and the restores (epoch) it was opened in. */
struct pc_handle {
	struct pc_node *node;
	int fd;
	uint64_t epoch;
};

struct pc_fs *pc_fs_of(fuse_req_t req);

/* Takes the lock and waits while the power is cut. 0 with the lock held, or -EIO (the lock held
 * too) once the power is down. */
int pc_power_enter(struct pc_fs *fs);
void pc_power_leave(struct pc_fs *fs);

/* The node of ino if a cut did not drop it, else NULL. */
struct pc_node *pc_live_node(struct pc_fs *fs, fuse_ino_t ino);
/* The directory ino: 0, -ESTALE or -ENOTDIR. */
int pc_dir_of(struct pc_fs *fs, fuse_ino_t ino, struct pc_node **out);
/* The handle of fi if it was opened since the last restore (older ones died with the power): 0 or
 * -EIO. */
int pc_handle_of(struct pc_fs *fs, struct fuse_file_info *fi, struct pc_handle **out);

void pc_node_attr(const struct pc_node *n, struct stat *st);
/* Fills e for a reply that hands the kernel a reference to n (counted in n->nlookup). */
void pc_entry_of(struct pc_node *n, struct fuse_entry_param *e);
/* The node's mtime and ctime become now. */
void pc_touch(struct pc_node *n);
/* Sets a regular file's size through fd, saving the durable bytes that change. */
int pc_resize(struct pc_node *n, int fd, uint64_t size);
/* Creates a node of the given mode named name in parent and fills e (out: the node, may be NULL). */
int pc_make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_entry_param *e, struct pc_node **out);

/* pc_ops_ns.c: names and attributes */
void pc_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void pc_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void pc_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void pc_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void pc_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void pc_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void pc_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void pc_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags);
void pc_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void pc_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi);

/* pc_ops_file.c: open files and directories */
void pc_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi);
void pc_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void pc_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi);
void pc_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void pc_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi);
void pc_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void pc_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pc_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void pc_op_statfs(fuse_req_t req, fuse_ino_t ino);

#endif
