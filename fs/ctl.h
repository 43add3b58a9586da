/* ctl.h - the control socket DATA_DIR/ctl.sock: maintenance requests to a mounted data folder.
 *
 * A data folder has one owner (store LOCK), so `pecfs fsck` and `pecfs gc` on a mounted folder ask the
 * daemon to run them, and `pecfs ping` asks whether it is alive. Protocol: the client sends one line
 * ("fsck", "gc" or "ping"); the daemon answers with report lines, then a final "ok <exit-code>" or
 * "error <errno> <message>", and closes. One fsck or gc runs at a time; a ping is answered at once,
 * even while one runs. The socket is mode 0600: only its owner (and root) may connect.
 */
#ifndef PECFS_CTL_H
#define PECFS_CTL_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

#define CTL_SOCKET_NAME "ctl.sock"

struct ctl_server;

/* Runs a maintenance command on an open store, writing its report to out; an fsck calls progress
 * (may be NULL) as it verifies chunks ("fsck progress" over the socket: "progress DONE TOTAL" lines,
 * which ctl_request hands to its own progress). Returns the command's exit
 * code (fsck: 0 clean, 1 problems found; gc: 0; ping: 0), or -EINVAL for an unknown command, or the negative
 * errno that stopped the command from running. Used by both the daemon and the command line. */
struct ctl_progress {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};
int ctl_execute(struct store *st, const char *cmd, FILE *out, const struct ctl_progress *progress);

/* Removes a stale DATA_DIR/ctl.sock, listens on a fresh one and serves requests from a thread. */
int ctl_server_start(struct store *st, struct ctl_server **out);

/* Stops serving (after the request in progress, if any) and removes the socket. */
void ctl_server_stop(struct ctl_server *cs);

/* Client: sends cmd to the daemon owning data_dir and copies its report to out. Returns the command's
 * exit code (an "error" answer is printed to stderr as "pecfs: <message>" and gives 1), or -errno when
 * no daemon answered (-ENOENT: no socket, -ECONNREFUSED: nobody listening, -ECONNRESET: it hung up
 * before the final line, as a daemon does that is being killed or is exiting). */
int ctl_request(const char *data_dir, const char *cmd, FILE *out, const struct ctl_progress *progress);
/* The same with a limit on each wait for the daemon (0: none); a daemon too slow gives -EAGAIN. */
int ctl_request_timeout(const char *data_dir, const char *cmd, FILE *out, unsigned timeout_ms,
			const struct ctl_progress *progress);

#endif
