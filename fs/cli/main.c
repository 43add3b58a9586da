/* main.c - the `pecfs` command: dispatches to the subcommands (cli_*.c).
 *
 * Exit status everywhere: 0 done, 1 the operation failed, 2 usage or configuration error, with one
 * line "pecfs: <what is wrong>" on stderr.
 */
#include <stdio.h>
#include <string.h>
#include <libgen.h>

#include "cli.h"

struct main_command {
	const char *name;
	int (*run)(int argc, char **argv);
	void (*help)(FILE *out);
	const char *summary;
};

static const struct main_command main_commands[] = {
	{ "mount", cli_mount, cli_help_mount, "serve DATA_DIR at MOUNTPOINT (a daemon unless -f)" },
	{ "umount", cli_umount, cli_help_umount, "unmount, and wait until everything is stored" },
	{ "seal", cli_seal, cli_help_seal, "make version directories durable and read-only" },
	{ "status", cli_status, cli_help_status, "show mounts, runs, versions, logical vs stored bytes" },
	{ "fsck", cli_fsck, cli_help_fsck, "verify every chunk and reference of a data folder" },
	{ "gc", cli_gc, cli_help_gc, "reclaim chunks that no file uses any more" },
	{ "pin", cli_pin, cli_help_pin, "keep versions whatever the run's retention" },
	{ "unpin", cli_unpin, cli_help_pin, "let retention remove pinned versions again" },
	{ "restore", cli_restore, cli_help_restore, "copy a version out of the S3 tier into a folder" },
	{ "ping", cli_ping, cli_help_ping, "is the daemon serving DATA_DIR alive (for liveness probes)" },
	{ NULL, NULL, NULL, NULL },
};

static void main_help(FILE *out)
{
	fprintf(out,
		"usage: pecfs COMMAND [options] [arguments]\n"
		"\n"
		"pecfs is a FUSE file system for training checkpoints: each directory of a run is a version,\n"
		"identical content is stored once, and sealed versions are immutable and durable.\n"
		"\n"
		"commands:\n");
	for (const struct main_command *c = main_commands; c->name != NULL; c++)
		fprintf(out, "  %-8s %s\n", c->name, c->summary);
	fprintf(out,
		"  help     this text, or `pecfs help COMMAND` for one command\n"
		"\n"
		"options:\n"
		"  -h, --help      this text; `pecfs COMMAND --help` for a command's options\n"
		"  -V, --version   print the version\n"
		"\n"
		"mount(8) form (mount -t fuse.pecfs, /etc/fstab; see pecfs mount --help for the settings):\n"
		"  pecfs DATA_DIR MOUNTPOINT -o SETTING[=VALUE][,...]\n"
		"\n"
		"example:\n"
		"  pecfs mount /var/lib/pecfs /mnt/ckpt && pecfs status /mnt/ckpt\n"
		"  mount -t fuse.pecfs /var/lib/pecfs /mnt/ckpt -o allow_other,chunk-size=1M\n");
}

static const struct main_command *main_find(const char *name)
{
	for (const struct main_command *c = main_commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* mount(8)'s form, `pecfs DATA_DIR MOUNTPOINT -o OPTIONS` (cli_mount_helper.c): two paths and -o,
 * or any arguments when run under a mount helper's name (mount.fuse.pecfs, mount.pecfs). A
 * mistyped command never gets here: it has no -o. */
static bool main_is_mount_helper(int argc, char **argv)
{
	if (strncmp(basename(argv[0]), "mount.", 6) == 0)
		return true;
	if (argc < 4 || argv[1][0] == '-' || argv[2][0] == '-')
		return false;
	for (int i = 3; i < argc; i++)
		if (strncmp(argv[i], "-o", 2) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const struct main_command *cmd;

	if (argc < 2)
		return cli_error(CLI_USAGE, "missing command (see pecfs --help)");
	if (cli_is_help(argv[1])) {
		main_help(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		cli_print_version(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			main_help(stdout);
			return CLI_OK;
		}
		cmd = main_find(argv[2]);
		if (cmd == NULL)
			return cli_error(CLI_USAGE, "unknown command '%s' (see pecfs --help)", argv[2]);
		cmd->help(stdout);
		return CLI_OK;
	}
	cmd = main_find(argv[1]);
	if (cmd == NULL && main_is_mount_helper(argc, argv))
		return cli_mount_helper(argc - 1, argv + 1);
	if (cmd == NULL) {
		if (argv[1][0] == '-')
			return cli_error(CLI_USAGE, "unknown option %s (see pecfs --help)", argv[1]);
		return cli_error(CLI_USAGE, "unknown command '%s' (see pecfs --help)", argv[1]);
	}
	return cmd->run(argc - 2, argv + 2);
}
