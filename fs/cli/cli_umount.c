/* cli_umount.c - `pecfs umount`: unmounts, then waits until the daemon has stored everything.
 *
 * The kernel forgets the mount at once, but the daemon still writes out buffered data and closes the
 * store afterwards; umount returns once the data folder's LOCK is released, and then reads the report
 * the daemon left just before (DATA_DIR/last-exit): exit 0 means "everything is on disk", and a
 * write-out that failed, or a daemon that died without a report, exits 1. A mount whose daemon died
 * (ENOTCONN) can only be detached lazily.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UMOUNT_WAIT_S 60

void cli_help_umount(FILE *out)
{
	fprintf(out,
		"usage: pecfs umount MOUNTPOINT\n"
		"\n"
		"Unmounts a pecfs mount and waits (up to %d s) until its daemon has written out every buffered\n"
		"byte and closed the data folder. A mount whose daemon is gone (\"Transport endpoint is not\n"
		"connected\") is detached lazily. As root the mount is removed with umount(2), otherwise with\n"
		"fusermount3 -u.\n"
		"\n"
		"options:\n"
		"  -h, --help   show this help\n"
		"\n"
		"exit status: 0 unmounted and flushed, 1 busy (files open), the daemon did not finish in time,\n"
		"or it could not store everything (a full or failing data disk: bytes written since the last\n"
		"successful fsync may be lost; see its log), 2 not a pecfs mount point.\n"
		"\n"
		"example:\n"
		"  pecfs umount /mnt/ckpt\n",
		UMOUNT_WAIT_S);
}

/* Runs fusermount3 -u [-z] path; its complaint (one line) goes into msg. 0 or -1. */
static int umount_fusermount(const char *path, bool lazy, char *msg, size_t size)
{
	int p[2], status;
	ssize_t n;
	pid_t pid;

	msg[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", "--", path, (char *)NULL);
		dprintf(STDERR_FILENO, "cannot run fusermount3: %s", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], msg, size - 1);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int umount_detach(const char *path, bool lazy)
{
	char msg[512];

	if (geteuid() == 0) {
		if (umount2(path, lazy ? MNT_DETACH : 0) == 0)
			return CLI_OK;
		if (errno == EBUSY)
			return cli_error(CLI_FAILED, "%s is busy: a process has a file or its working directory "
					 "there (see fuser -vm %s)", path, path);
		return cli_error(CLI_FAILED, "cannot unmount %s: %s", path, strerror(errno));
	}
	if (umount_fusermount(path, lazy, msg, sizeof(msg)) == 0)
		return CLI_OK;
	return cli_error(CLI_FAILED, "cannot unmount %s: %s", path, msg[0] ? msg : "fusermount3 failed");
}

/* Waits until the daemon has closed the data folder, then reads how its final write-out went. A
 * daemon that was gone before the unmount has no report (the caller told the user already); one
 * that ended on its own meanwhile may have left one. */
static int umount_wait_daemon(const struct cli_mount *m, pid_t pid, bool gone)
{
	char tell[128];
	int err;

	snprintf(tell, sizeof(tell), "waiting for the daemon (pid %ld) to store buffered data...", (long)pid);
	if (!cli_wait_store_free(m->data_dir, UMOUNT_WAIT_S * 1000L, tell))
		return cli_error(CLI_FAILED, "%s is unmounted, but its daemon (pid %ld) is still writing out data "
				 "after %d s; it will finish on its own", m->mountpoint, (long)pid, UMOUNT_WAIT_S);
	if (cli_last_exit_read(m->data_dir, pid, &err) < 0) {
		if (gone)
			return CLI_OK;
		return cli_error(CLI_FAILED, "%s is unmounted, but its daemon (pid %ld) ended without saying whether "
				 "it stored everything (it may have crashed); run pecfs fsck %s", m->mountpoint,
				 (long)pid, m->data_dir);
	}
	if (err != 0)
		return cli_error(CLI_FAILED, "%s is unmounted, but its daemon could not store everything: %s; bytes "
				 "written since their file's last successful fsync may be lost (see its log)",
				 m->mountpoint, strerror(err));
	return CLI_OK;
}

int cli_umount(int argc, char **argv)
{
	struct cli_mount m;
	char path[PATH_MAX], real[PATH_MAX];
	struct stat st;
	bool dead, gone;
	pid_t pid;
	int rc;

	struct cli_args pos;
	rc = cli_parse_args("umount", argc, argv, NULL, 0, cli_help_umount, cli_no_options, NULL, &pos);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	const char *arg = pos.argc == 1 ? pos.argv[0] : NULL;
	if (pos.argc != 1)
		rc = pos.argc == 0 ? cli_error(CLI_USAGE, "missing MOUNTPOINT (usage: pecfs umount MOUNTPOINT)")
				   : cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs umount MOUNTPOINT)",
					       pos.argv[1]);
	else if ((rc = cli_abspath(arg, path, sizeof(path))) < 0)
		rc = cli_error(CLI_USAGE, "%s: %s", arg, strerror(-rc));
	else if (cli_mount_by_mountpoint(path, &m) < 0 &&
		 (realpath(arg, real) == NULL || cli_mount_by_mountpoint(real, &m) < 0))
		rc = cli_error(CLI_USAGE, "%s is not a pecfs mount point", arg);
	cli_args_free(&pos);
	if (rc != 0)
		return rc;

	pid = cli_lock_pid(m.data_dir);
	dead = stat(m.mountpoint, &st) < 0 && errno == ENOTCONN;
	/* The kernel may not have noticed yet; and a killed daemon's main thread can be a zombie while its
	 * other threads still hold the data folder's LOCK on their way out. */
	gone = dead || !cli_store_in_use(m.data_dir) || cli_pid_exiting(pid);
	rc = umount_detach(m.mountpoint, dead);
	if (rc != CLI_OK)
		return rc;
	if (gone)
		printf("%s: its daemon was gone; %s. Run pecfs fsck %s before mounting it again if in doubt.\n",
		       m.mountpoint, dead ? "detached the dead mount (lazy unmount)" : "unmounted", m.data_dir);
	return umount_wait_daemon(&m, pid, gone);
}
