/* cli_pin.c - `pecfs pin` and `pecfs unpin`: keep a version out of retention's reach, or let it go.
 * A pin is the user.pec.pin attribute of the version directory, set and removed through the mount
 * (allowed on sealed versions); the next seal in the run applies retention again.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define PIN_XATTR "user.pec.pin"

void cli_help_pin(FILE *out)
{
	fprintf(out,
		"usage: pecfs pin PATH...\n"
		"       pecfs unpin PATH...\n"
		"\n"
		"pin keeps each version directory PATH (a directory directly inside a run) whatever the run's\n"
		"retention setting (user.pec.keep on the run directory); unpin lets retention remove it again\n"
		"at the run's next seal. Pinning a pinned version, or unpinning an unpinned one, does nothing.\n"
		"\n"
		"options:\n"
		"  -h, --help   show this help\n"
		"\n"
		"exit status: 0 done, 1 a PATH could not be changed, 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs pin /mnt/ckpt/llama-moe/global_step1200\n");
}

static const char *pin_reason(int err)
{
	switch (err) {
	case EINVAL:
		return "not a version directory (a version is a directory directly inside a run)";
	case EPERM:
	case EACCES:
		return "permission denied";
	case ENOTSUP:
		return "this mount does not support pins (no extended attributes)";
	default:
		return strerror(err);
	}
}

static int pin_run(int argc, char **argv, bool pin)
{
	const char *cmd = pin ? "pin" : "unpin";
	struct cli_args pos;
	struct cli_mount m;
	int rc = cli_parse_args(cmd, argc, argv, NULL, 0, cli_help_pin, cli_no_options, NULL, &pos);

	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (pos.argc == 0) {
		cli_args_free(&pos);
		return cli_error(CLI_USAGE, "missing PATH (usage: pecfs %s PATH...)", cmd);
	}
	for (int i = 0; i < pos.argc; i++) {
		const char *path = pos.argv[i];
		if (cli_check_version_path(path, pin_reason(EINVAL), &m) != CLI_OK) {
			rc = CLI_FAILED;
			continue;
		}
		int r = pin ? setxattr(path, PIN_XATTR, "1", 1, 0) : removexattr(path, PIN_XATTR);
		if (r < 0 && !(errno == ENODATA && !pin)) {
			rc = cli_error(CLI_FAILED, "%s: %s", path, pin_reason(errno));
			continue;
		}
		printf("%s %s\n", pin ? "pinned" : "unpinned", path);
	}
	cli_args_free(&pos);
	return rc;
}

int cli_pin(int argc, char **argv)
{
	return pin_run(argc, argv, true);
}

int cli_unpin(int argc, char **argv)
{
	return pin_run(argc, argv, false);
}
