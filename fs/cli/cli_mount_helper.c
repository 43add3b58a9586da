/* cli_mount_helper.c - the form mount(8) uses: `pecfs DATA_DIR MOUNTPOINT -o OPT[,OPT...]`, which
 * mount.fuse3 runs for `mount -t fuse.pecfs DATA_DIR MOUNTPOINT -o ...` and for an /etc/fstab line
 * of type fuse.pecfs. Every mount setting is an option (`chunk-size=1M` or `chunk_size=1M`; a yes/no
 * setting alone means yes, `no-NAME` or `NAME=no` no), `config=FILE` names a configuration file,
 * and the options mount(8) and mount.fuse3 add for every file system are accepted and ignored
 * (pecfs mounts are always nosuid, nodev; times are kept as written). `ro` is refused: a pecfs mount
 * is where checkpoints are written. The result is an ordinary `pecfs mount`. Run as a mount helper
 * itself (mount.fuse.pecfs), it also takes mount(8)'s -t, -n, -s, -v and -f (fake: check, mount nothing).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Options every file system gets from mount(8) or mount.fuse3 that change nothing here. */
static bool helper_generic(const char *opt)
{
	static const char *const ignored[] = {
		"rw", "defaults", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async",
		"atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime", "diratime",
		"nodiratime", "lazytime", "nolazytime", "iversion", "noiversion", "mand", "nomand", "silent",
		"loud", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail",
		"default_permissions",
	};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (strcmp(opt, ignored[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

/* Appends the `pecfs mount` argument for one -o option to out[*n] (malloc'ed). */
static int helper_option(const char *opt, char **out, int *n)
{
	if (*opt == '\0' || helper_generic(opt))
		return CLI_OK;
	if (strcmp(opt, "ro") == 0)
		return cli_error(CLI_USAGE, "option ro: pecfs mounts are writable (sealed versions are read-only)");
	if (strcmp(opt, "sync") == 0 || strcmp(opt, "dirsync") == 0)
		return cli_error(CLI_USAGE, "option %s is not supported: fsync or seal make data durable", opt);
	size_t len = strlen(opt);
	char *arg = malloc(len + 3);
	if (!arg)
		return cli_error(CLI_FAILED, "out of memory");
	/* name=value -> --name=value with '_' as '-' in the name only */
	arg[0] = arg[1] = '-';
	bool in_name = true;
	for (size_t i = 0; i <= len; i++) {
		char c = opt[i];
		if (c == '=')
			in_name = false;
		arg[i + 2] = in_name && c == '_' ? '-' : c;
	}
	out[(*n)++] = arg;
	return CLI_OK;
}

int cli_mount_helper(int argc, char **argv)
{
	/* at most: every -o option split, plus --, the two paths and --check */
	int cap = 4, n = 0, rc = CLI_OK;
	const char *pos[2];
	int npos = 0;
	bool fake = false;

	for (int i = 0; i < argc; i++)
		cap += (int)strlen(argv[i]) + 1;
	char **args = calloc((size_t)cap + 1, sizeof(*args));
	if (!args)
		return cli_error(CLI_FAILED, "out of memory");
	for (int i = 0; i < argc && rc == CLI_OK; i++) {
		const char *a = argv[i], *list = NULL;
		if (strcmp(a, "-o") == 0) {
			if (i + 1 >= argc) {
				rc = cli_error(CLI_USAGE, "option -o needs a list of options");
				break;
			}
			list = argv[++i];
		} else if (strncmp(a, "-o", 2) == 0) {
			list = a + 2;
		} else if (strcmp(a, "-t") == 0 && i + 1 < argc) {
			i++;  /* the type mount(8) names a helper by: fuse.pecfs or pecfs */
			continue;
		} else if (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0 || strcmp(a, "-v") == 0) {
			continue;  /* mount(8)'s no-mtab, sloppy, verbose: nothing to do */
		} else if (strcmp(a, "-f") == 0) {
			fake = true;  /* mount(8)'s fake: check everything, mount nothing */
			continue;
		} else if (a[0] == '-') {
			rc = cli_error(CLI_USAGE, "unknown option %s (usage: pecfs DATA_DIR MOUNTPOINT -o OPTIONS)", a);
			break;
		} else if (npos == 2) {
			rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs DATA_DIR MOUNTPOINT -o OPTIONS)", a);
			break;
		} else {
			pos[npos++] = a;
			continue;
		}
		char *copy = strdup(list), *save = NULL;
		if (!copy) {
			rc = cli_error(CLI_FAILED, "out of memory");
			break;
		}
		for (char *opt = strtok_r(copy, ",", &save); opt && rc == CLI_OK; opt = strtok_r(NULL, ",", &save))
			rc = helper_option(opt, args, &n);
		free(copy);
	}
	if (rc == CLI_OK && npos < 2)
		rc = cli_error(CLI_USAGE, "missing %s (usage: pecfs DATA_DIR MOUNTPOINT -o OPTIONS)",
			       npos == 0 ? "DATA_DIR and MOUNTPOINT" : "MOUNTPOINT");
	if (rc == CLI_OK) {
		if (fake)
			args[n++] = strdup("--check");
		/* after "--", so a path that starts with '-' stays a path */
		args[n++] = strdup("--");
		args[n++] = strdup(pos[0]);
		args[n++] = strdup(pos[1]);
		rc = cli_mount(n, args);
	}
	for (int i = 0; i < n; i++)
		free(args[i]);
	free(args);
	return rc;
}
