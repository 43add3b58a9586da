/* cli_maint.c - `pecfs seal`, `pecfs fsck`, `pecfs gc`.
 *
 * seal is a setxattr on the version directory, answered by the mounted filesystem. fsck and gc open the
 * data folder themselves when it is not mounted, and otherwise ask its daemon over the control socket
 * (only one process may have a data folder open); either way the same code (ctl_execute) runs.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "ctl.h"
#include "../store/store.h"

#define SEAL_XATTR "user.pec.seal"
#define MAINT_ATTEMPTS 3
#define MAINT_GRACE_MS 10000

void cli_help_seal(FILE *out)
{
	fprintf(out,
		"usage: pecfs seal [--wait-upload] PATH...\n"
		"\n"
		"Seals each version directory PATH (a directory directly inside a run, e.g. MNT/run1/step-100):\n"
		"writes out its files, makes it durable and read-only, and eligible as the run's latest.\n"
		"Returns once the version is durable on local disk. Sealing a sealed version does nothing.\n"
		"\n"
		"options:\n"
		"  --wait-upload   also wait until the version is committed in the S3 tier (a progress bar\n"
		"                  on a terminal); on a mount without --s3 it returns right after the seal\n"
		"  -h, --help      show this help\n"
		"\n"
		"exit status: 0 sealed, 1 a PATH could not be sealed, 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs seal /mnt/ckpt/llama-moe/global_step1200\n");
}

static const char *seal_reason(int err)
{
	switch (err) {
	case EINVAL:
		return "not a version directory (a version is a directory directly inside a run)";
	case EROFS:
		return "read-only: this version can no longer be sealed (damaged, or the mount is read-only)";
	case EPERM:
	case EACCES:
		return "permission denied (sealing needs write permission on the version directory)";
	case ENOTSUP:
		return "this mount does not support sealing (no extended attributes)";
	case ENOSPC:
		return "the data disk is full; the version stays open (free space and seal again)";
	case EIO:
		return "an I/O error stopped the seal; the version stays open (see the daemon's log)";
	default:
		return strerror(err);
	}
}

int cli_seal(int argc, char **argv)
{
	struct cli_mount m;
	int rc = CLI_OK, first = 0;
	bool wait_upload = false;

	for (; first < argc && argv[first][0] == '-'; first++) {
		if (cli_is_help(argv[first])) {
			cli_help_seal(stdout);
			return CLI_OK;
		}
		if (strcmp(argv[first], "--") == 0) {
			first++;
			break;
		}
		if (strcmp(argv[first], "--wait-upload") != 0)
			return cli_error(CLI_USAGE, "unknown option %s (see pecfs seal --help)", argv[first]);
		wait_upload = true;
	}
	if (first >= argc)
		return cli_error(CLI_USAGE, "missing PATH (usage: pecfs seal [--wait-upload] PATH...)");

	for (int i = first; i < argc; i++) {
		const char *path = argv[i];

		if (cli_check_version_path(path, seal_reason(EINVAL), &m) != CLI_OK) {
			rc = CLI_FAILED;
			continue;
		}
		if (setxattr(path, SEAL_XATTR, "1", 1, 0) < 0) {
			rc = cli_error(CLI_FAILED, "%s: %s", path, seal_reason(errno));
			continue;
		}
		printf("sealed %s\n", path);
		if (wait_upload && cli_seal_wait_upload(path, m.mountpoint) != CLI_OK)
			rc = CLI_FAILED;
	}
	return rc;
}

static void cli_help_maint(FILE *out, const char *cmd, const char *what, const char *status,
			   const char *example)
{
	fprintf(out,
		"usage: pecfs %s DATA_DIR\n"
		"\n"
		"%s\n"
		"Works on a mounted data folder too: the daemon serving it runs the %s and reports here.\n"
		"\n"
		"options:\n"
		"  -h, --help   show this help\n"
		"\n"
		"exit status: %s\n"
		"\n"
		"example:\n"
		"  %s\n",
		cmd, what, cmd, status, example);
}

void cli_help_fsck(FILE *out)
{
	cli_help_maint(out, "fsck",
		       "Checks a data folder: every chunk's SHA-256 and checksums, every file's references to\n"
		       "chunks, the directory tree. Prints one line per problem (a corrupt or missing chunk is\n"
		       "named with every file that uses it) and a summary. Changes nothing.",
		       "0 no problems, 1 problems found or the check could not run, 2 bad usage\n"
		       "or not a data folder.",
		       "pecfs fsck /var/lib/pecfs");
}

void cli_help_gc(FILE *out)
{
	cli_help_maint(out, "gc",
		       "Reclaims disk space: removes the chunks no file references any more (after files were\n"
		       "deleted or overwritten) and stray chunk files left by a crash. The file system stays\n"
		       "mounted and writable meanwhile.",
		       "0 done, 1 failed, 2 bad usage or not a data folder.",
		       "pecfs gc /var/lib/pecfs");
}

/* Runs cmd on a store this process opened, and closes it. */
static int cli_maint_here(struct store *st, const char *cmd, const char *data_dir)
{
	int rc = ctl_execute(st, cmd, stdout);

	fflush(stdout);
	store_close(st);
	if (rc < 0)
		return cli_error(CLI_FAILED, "%s of %s failed: %s", cmd, data_dir, strerror(-rc));
	return rc;
}

/* fsck or gc: in the daemon when the data folder is mounted, else here. */
static int cli_maint(const char *cmd, int argc, char **argv, void (*help)(FILE *))
{
	struct store_options opt = { .chunk_size = STORE_DEFAULT_CHUNK_SIZE };
	char data_dir[PATH_MAX], meta[PATH_MAX + 8];
	struct store *st;
	struct stat sb;
	pid_t pid = 0;
	int rc;

	if (argc >= 1 && cli_is_help(argv[0])) {
		help(stdout);
		return CLI_OK;
	}
	if (argc < 1)
		return cli_error(CLI_USAGE, "missing DATA_DIR (usage: pecfs %s DATA_DIR)", cmd);
	if (argv[0][0] == '-')
		return cli_error(CLI_USAGE, "unknown option %s (see pecfs %s --help)", argv[0], cmd);
	if (argc > 1)
		return cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs %s DATA_DIR)", argv[1], cmd);
	if (realpath(argv[0], data_dir) == NULL)
		return cli_error(CLI_USAGE, "data folder %s: %s", argv[0], strerror(errno));
	/* Opening would create a data folder: an fsck must never do that. */
	snprintf(meta, sizeof(meta), "%s/meta", data_dir);
	if (stat(meta, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return cli_error(CLI_USAGE, "%s is not a pecfs data folder (it has no meta/ database)", argv[0]);

	/* The folder's owner may be on its way out (unmounting, or killed a moment ago: its socket can
	 * still accept a connection until its last thread is gone), so a holder that does not answer
	 * gets a grace period, then the folder is opened here. */
	for (int attempt = 0; attempt < MAINT_ATTEMPTS; attempt++) {
		if (!cli_store_in_use(data_dir)) {
			rc = store_open(data_dir, &opt, &st, &pid);
			if (rc == 0)
				return cli_maint_here(st, cmd, argv[0]);
			if (rc != -EBUSY)
				return cli_error(CLI_FAILED, "cannot open data folder %s: %s", argv[0], strerror(-rc));
		}
		rc = ctl_request(data_dir, cmd, stdout);
		if (rc >= 0)
			return rc;
		if (!cli_wait_store_free(data_dir, MAINT_GRACE_MS, NULL))
			break;
	}
	pid = pid > 0 ? pid : cli_lock_pid(data_dir);
	return cli_error(CLI_FAILED, "%s is in use by pid %ld, which does not answer on %s/%s: %s", argv[0],
			 (long)pid, data_dir, CTL_SOCKET_NAME, strerror(-rc));
}

int cli_fsck(int argc, char **argv)
{
	return cli_maint("fsck", argc, argv, cli_help_fsck);
}

int cli_gc(int argc, char **argv)
{
	return cli_maint("gc", argc, argv, cli_help_gc);
}
