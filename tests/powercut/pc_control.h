/* pc_control.h - the power switch of pecfs-powercut: a Unix socket that takes one command per
 * connection and answers one line ("ok ..." or "error: ...").
 *
 *   cut      the power goes: operations in progress finish, every later one waits
 *   down     the waiting operations and every later one fail with EIO (so killed clients can exit)
 *   restore  the power comes back: the file system becomes its durable state (pc_fs_restore);
 *            sound only once every client that used it before the cut is gone.
 *            "restore keep=F seed=N" (F from 0 to 1) lets some unsynced changes survive too
 *   stats    counters: syncs, cuts, and what the restores reverted
 */
#ifndef PC_CONTROL_H
#define PC_CONTROL_H

#include <pthread.h>

#include "pc_model.h"

struct pc_control {
	int fd;             /* listening socket, -1 when not started */
	pthread_t thread;
	struct pc_fs *fs;
	char path[108];
};

/* Listens on path (replacing a stale socket there) and serves commands on a thread of its own.
 * 0 or -1 with a message on stderr. */
int pc_control_start(struct pc_control *c, struct pc_fs *fs, const char *path);

/* Stops serving and removes the socket. Harmless on a control that never started. */
void pc_control_stop(struct pc_control *c);

#endif
