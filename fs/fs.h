/* fs.h - the filesystem proper: serves a data folder's store over FUSE (low-level API).
 *
 * The command line (fs/cli/) parses settings, daemonizes and opens the store; it then hands both to
 * pecfs_fs_serve, which mounts, answers requests until the file system is unmounted or the process
 * receives SIGINT/SIGTERM/SIGHUP, then writes out everything still buffered and returns.
 */
#ifndef PECFS_FS_H
#define PECFS_FS_H

#include "config.h"
#include "store.h"
#include "tier.h"

/* Mounts cfg->mountpoint and serves it; tier is the store's S3 tier, or NULL. on_mounted(arg) is
 * called once the mount is in place (the daemon uses it to tell the waiting parent that start-up
 * succeeded); on failure before that, a one-line message goes to stderr / the log and a negative
 * errno is returned. Returns 0 after a clean unmount with every buffered write stored. */
int pecfs_fs_serve(const struct pecfs_config *cfg, struct store *st, struct tier *tier,
		   void (*on_mounted)(void *arg), void *arg);

#endif
