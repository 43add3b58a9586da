/* cli_mount.c - `pecfs mount`: settings, checks on the paths, the daemon's start-up.
 *
 * Order matters: everything that can be refused (options, paths, a busy data folder) is checked before
 * the fork, so the user gets the one-line error directly. The store is opened only in the process that
 * serves (RocksDB threads and the LOCK would not survive a fork), and the waiting parent returns once
 * the mount is in place. Start-up errors go to the user's terminal; once mounted, a daemon logs to
 * syslog. Under systemd (NOTIFY_SOCKET) it reports READY=1 once mounted and STOPPING=1 once
 * unmounted, for Type=notify units. At the end the daemon leaves a one-line report of its final write-out for `pecfs umount`
 * (cli_last_exit.c).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "ctl.h"
#include "fs.h"
#include "log.h"
#include "tier.h"

#define MOUNT_SYSTEM_CONFIG CLI_SYSTEM_CONFIG
#define MOUNT_MSG_MAX 1024

static const char *mount_placeholder(enum pecfs_config_kind kind)
{
	switch (kind) {
	case PECFS_CONFIG_SIZE: return " SIZE";
	case PECFS_CONFIG_COUNT: return " N";
	case PECFS_CONFIG_SECONDS: return " SECONDS";
	case PECFS_CONFIG_LEVEL: return " LEVEL";
	case PECFS_CONFIG_TEXT: return " TEXT";
	case PECFS_CONFIG_RATIO: return " RATIO";
	case PECFS_CONFIG_BOOL: break;
	}
	return "";
}

void cli_help_mount(FILE *out)
{
	fprintf(out,
		"usage: pecfs mount [-f] [-c FILE] [--SETTING VALUE ...] DATA_DIR MOUNTPOINT\n"
		"\n"
		"Serves the checkpoint store in DATA_DIR (created if missing) at MOUNTPOINT, an existing\n"
		"directory. Returns once the mount is in place; the daemon keeps running until `pecfs umount`.\n"
		"\n"
		"options:\n"
		"  -f, --foreground          stay in the foreground, log to stderr; Ctrl-C unmounts\n"
		"  -c, --config FILE         read settings from FILE (default: %s if it exists)\n"
		"  --check                   check the settings and the mount point, mount nothing\n"
		"  -h, --help                show this help\n"
		"\n"
		"settings (also `key = value` lines in the configuration file; the command line wins).\n"
		"A yes/no setting may be given as --NAME, --no-NAME or --NAME=yes|no:\n",
		MOUNT_SYSTEM_CONFIG);
	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name != NULL; k++)
		fprintf(out, "  --%s%s\n        %s (default %s)\n", k->name, mount_placeholder(k->kind), k->help,
			k->default_text);
	fprintf(out,
		"\n"
		"exit status: 0 mounted, 1 start-up failed, 2 bad option, configuration, mount point or a data\n"
		"folder already in use.\n"
		"\n"
		"example:\n"
		"  pecfs mount --chunk-size 1M /var/lib/pecfs /mnt/ckpt\n");
}

enum { MOUNT_CONFIG = 1, MOUNT_CHECK, MOUNT_KEY = 1000, MOUNT_NO_KEY = 2000 };

/* The options of `pecfs mount`: every setting (a yes/no one also as --no-NAME), -c, --check. */
struct mount_opts {
	struct cli_opt *v;
	char **names;  /* the "no-NAME" strings */
	size_t n, nnames;
};

static void mount_opts_free(struct mount_opts *mo)
{
	for (size_t i = 0; i < mo->nnames; i++)
		free(mo->names[i]);
	free(mo->names);
	free(mo->v);
}

static int mount_opts_build(struct mount_opts *mo)
{
	size_t nkeys = 0;

	memset(mo, 0, sizeof(*mo));
	while (pecfs_config_keys[nkeys].name)
		nkeys++;
	mo->v = calloc(2 * nkeys + 2, sizeof(*mo->v));
	mo->names = calloc(nkeys, sizeof(*mo->names));
	if (!mo->v || !mo->names)
		return -ENOMEM;
	mo->v[mo->n++] = (struct cli_opt){ "config", 'c', CLI_ARG, MOUNT_CONFIG };
	mo->v[mo->n++] = (struct cli_opt){ "check", 0, CLI_NO_ARG, MOUNT_CHECK };
	for (size_t i = 0; i < nkeys; i++) {
		const struct pecfs_config_key *k = &pecfs_config_keys[i];
		bool yn = k->kind == PECFS_CONFIG_BOOL;
		mo->v[mo->n++] = (struct cli_opt){ k->name, strcmp(k->name, "foreground") == 0 ? 'f' : 0,
						   yn ? CLI_OPT_ARG : CLI_ARG, MOUNT_KEY + (int)i };
		if (!yn)
			continue;
		char *no = malloc(strlen(k->name) + 4);
		if (!no)
			return -ENOMEM;
		sprintf(no, "no-%s", k->name);
		mo->names[mo->nnames++] = no;
		mo->v[mo->n++] = (struct cli_opt){ no, 0, CLI_NO_ARG, MOUNT_NO_KEY + (int)i };
	}
	return 0;
}

/* First pass: only -c FILE, since the file must be read before the options that override it. */
static int mount_config_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	if (o->id == MOUNT_CONFIG)
		*(const char **)ctx = arg;
	return 0;
}

struct mount_parse_state {
	struct pecfs_config *cfg;
	bool *check;
};

/* Second pass: every setting, in order. */
static int mount_setting_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct mount_parse_state *ps = ctx;
	char err[512];
	const char *name, *value;

	if (o->id == MOUNT_CONFIG)
		return 0;
	if (o->id == MOUNT_CHECK) {
		*ps->check = true;
		return 0;
	}
	if (o->id >= MOUNT_NO_KEY) {
		name = pecfs_config_keys[o->id - MOUNT_NO_KEY].name;
		value = "no";
	} else {
		name = pecfs_config_keys[o->id - MOUNT_KEY].name;
		value = arg ? arg : "yes";  /* a yes/no setting alone means yes */
	}
	if (pecfs_config_set(ps->cfg, name, value, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s", err);
	return 0;
}

/* Both passes, then the two positional arguments. */
static int mount_parse(int argc, char **argv, struct pecfs_config *cfg, const char **data_dir,
		       const char **mountpoint, bool *check)
{
	struct mount_parse_state ps = { cfg, check };
	struct mount_opts mo;
	struct cli_args pos = { 0 };
	const char *file = NULL;
	char err[PATH_MAX + 256];
	int rc;

	if (mount_opts_build(&mo) < 0) {
		mount_opts_free(&mo);
		return cli_error(CLI_FAILED, "out of memory");
	}
	rc = cli_parse_args("mount", argc, argv, mo.v, mo.n, cli_help_mount, mount_config_opt, &file, &pos);
	cli_args_free(&pos);
	if (rc == 0) {
		if (file == NULL && access(MOUNT_SYSTEM_CONFIG, F_OK) == 0)
			file = MOUNT_SYSTEM_CONFIG;
		if (file != NULL && pecfs_config_load(cfg, file, err, sizeof(err)) < 0)
			rc = cli_error(CLI_USAGE, "%s", err);
	}
	if (rc == 0)
		rc = cli_parse_args("mount", argc, argv, mo.v, mo.n, cli_help_mount, mount_setting_opt, &ps, &pos);
	mount_opts_free(&mo);
	if (rc != 0)
		return rc;
	if (pos.argc < 2)
		rc = cli_error(CLI_USAGE, "missing %s (usage: pecfs mount [options] DATA_DIR MOUNTPOINT)",
			       pos.argc == 0 ? "DATA_DIR and MOUNTPOINT" : "MOUNTPOINT");
	else if (pos.argc > 2)
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (see pecfs mount --help)", pos.argv[2]);
	else {
		*data_dir = pos.argv[0];
		*mountpoint = pos.argv[1];
	}
	cli_args_free(&pos);
	return rc;
}

/* fsync of the folder that holds path (path has no trailing slash). */
static int mount_sync_parent(const char *path)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else
		snprintf(parent, sizeof(parent), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* mkdir -p with mode 0700 for what is created: the data folder holds everyone's checkpoint bytes.
 * Each folder created is synced into its parent: a power cut could take an unsynced entry away,
 * and the data folder with every version sealed in it. */
static int mount_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len;
	int rc;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) == 0) {
			rc = mount_sync_parent(buf);
			if (rc)
				return rc;
		} else if (errno != EEXIST) {
			return -errno;
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

/* Resolves both paths into cfg and refuses a mount point that is missing, not a directory or busy. */
static int mount_check_paths(struct pecfs_config *cfg, const char *data_dir, const char *mountpoint)
{
	struct stat st, parent;
	char real[PATH_MAX], up[PATH_MAX + 4];
	size_t mlen;
	int rc;

	if (stat(mountpoint, &st) < 0) {
		if (errno == ENOTCONN)
			return cli_error(CLI_USAGE, "%s is busy (already mounted, and its daemon is gone: run "
					 "pecfs umount %s)", mountpoint, mountpoint);
		if (errno == ENOENT)
			return cli_error(CLI_USAGE, "mount point %s does not exist", mountpoint);
		return cli_error(CLI_USAGE, "mount point %s: %s", mountpoint, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return cli_error(CLI_USAGE, "mount point %s is not a directory", mountpoint);
	if (realpath(mountpoint, real) == NULL)
		return cli_error(CLI_USAGE, "mount point %s: %s", mountpoint, strerror(errno));
	snprintf(up, sizeof(up), "%s/..", real);
	if (stat(up, &parent) < 0)
		return cli_error(CLI_USAGE, "mount point %s: %s", mountpoint, strerror(errno));
	if (st.st_dev != parent.st_dev || st.st_ino == parent.st_ino || cli_is_mountpoint(real))
		return cli_error(CLI_USAGE, "%s is busy (already mounted)", mountpoint);
	snprintf(cfg->mountpoint, sizeof(cfg->mountpoint), "%s", real);

	rc = mount_mkdirs(data_dir);
	if (rc < 0)
		return cli_error(CLI_USAGE, "cannot create data folder %s: %s", data_dir, strerror(-rc));
	if (realpath(data_dir, real) == NULL)
		return cli_error(CLI_USAGE, "data folder %s: %s", data_dir, strerror(errno));
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_error(CLI_USAGE, "data folder %s is not a directory", data_dir);
	mlen = strlen(cfg->mountpoint);
	if (strncmp(real, cfg->mountpoint, mlen) == 0 && (real[mlen] == '/' || real[mlen] == '\0'))
		return cli_error(CLI_USAGE, "the data folder %s must not be inside the mount point %s", data_dir,
				 mountpoint);
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", real);
	return CLI_OK;
}

static int mount_busy_error(const char *data_dir, pid_t pid)
{
	struct cli_mount m;
	char holder[32] = "another process";

	if (pid > 0)
		snprintf(holder, sizeof(holder), "pid %ld", (long)pid);
	if (cli_mount_by_data_dir(data_dir, &m) == 0)
		return cli_error(CLI_USAGE, "%s is in use by %s (mounted at %s)", data_dir, holder, m.mountpoint);
	return cli_error(CLI_USAGE, "%s is in use by %s (not mounted: a pecfs fsck or gc may be running)",
			 data_dir, holder);
}

/* Start-up messages printed by the store and the filesystem are held back while they run, so that the
 * user gets exactly one line for one failure. */
struct mount_capture {
	int saved_fd;   /* the real stderr, -1 when not capturing */
	int mem_fd;
};

static void mount_capture_begin(struct mount_capture *c)
{
	fflush(stderr);
	c->mem_fd = memfd_create("pecfs-start", MFD_CLOEXEC);
	c->saved_fd = c->mem_fd < 0 ? -1 : fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (c->saved_fd < 0 || dup2(c->mem_fd, STDERR_FILENO) < 0) {
		if (c->saved_fd >= 0)
			close(c->saved_fd);
		if (c->mem_fd >= 0)
			close(c->mem_fd);
		c->saved_fd = c->mem_fd = -1;
	}
}

/* Restores stderr; the last non-empty captured line goes into last (may be ""), everything captured
 * is written to the real stderr when replay is set. */
static void mount_capture_end(struct mount_capture *c, char *last, size_t size, bool replay)
{
	char buf[8192], *line, *end;
	ssize_t n;

	if (last != NULL && size > 0)
		last[0] = '\0';
	if (c->saved_fd < 0)
		return;
	fflush(stderr);
	dup2(c->saved_fd, STDERR_FILENO);
	close(c->saved_fd);
	c->saved_fd = -1;
	for (off_t off = 0; (n = pread(c->mem_fd, buf, sizeof(buf) - 1, off)) > 0; off += n) {
		if (replay && write(STDERR_FILENO, buf, (size_t)n) < 0)
			replay = false;
		buf[n] = '\0';
		for (line = buf; *line != '\0'; line = end + (*end != '\0')) {
			end = line + strcspn(line, "\n");
			if (end > line && last != NULL)
				snprintf(last, size, "%.*s", (int)(end - line), line);
		}
	}
	close(c->mem_fd);
	c->mem_fd = -1;
}

struct mount_run {
	const struct pecfs_config *cfg;
	bool daemon;
	int status_fd;   /* daemon: pipe to the waiting parent, -1 once answered */
	bool mounted;
	struct mount_capture capture;
};

/* Called by the filesystem once the mount is in place. */
static void mount_on_mounted(void *arg)
{
	struct mount_run *run = arg;
	int null_fd;

	run->mounted = true;
	mount_capture_end(&run->capture, NULL, 0, !run->daemon);
	if (run->daemon) {
		pecfs_log_open(run->cfg->log_level, true);
		pecfs_log_set_json(run->cfg->log_json);
		null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null_fd >= 0) {
			dup2(null_fd, STDIN_FILENO);
			dup2(null_fd, STDOUT_FILENO);
			dup2(null_fd, STDERR_FILENO);
			close(null_fd);
		}
		if (pecfs_log_capture_stderr() < 0)
			pecfs_log_warn("library messages on stderr will be lost: cannot forward them to syslog");
	}
	pecfs_log_info("serving %s at %s", run->cfg->data_dir, run->cfg->mountpoint);
	/* systemd's Type=notify (a no-op without NOTIFY_SOCKET): the mount is up. */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s at %s\nMAINPID=%lu", run->cfg->data_dir, run->cfg->mountpoint,
		   (unsigned long)getpid());
	if (run->status_fd >= 0) {
		while (write(run->status_fd, "ok\n", 3) < 0 && errno == EINTR)
			;
		close(run->status_fd);
		run->status_fd = -1;
	}
}

/* Opens the store and serves the mount until it is unmounted. Returns the exit code. */
static int mount_serve(struct mount_run *run)
{
	const struct pecfs_config *cfg = run->cfg;
	struct store_options opt = { .chunk_size = cfg->chunk_size,
				     .reserve_free_bytes = cfg->reserve_free_bytes };
	struct ctl_server *ctl = NULL;
	struct store *st = NULL;
	struct tier *tier = NULL;
	char msg[MOUNT_MSG_MAX];
	pid_t busy_pid = 0;
	int rc;

	rc = cli_tier_import(cfg);
	if (rc != 0)
		return rc;
	mount_capture_begin(&run->capture);
	rc = store_open(cfg->data_dir, &opt, &st, &busy_pid);
	/* On success what the store said (recovery, a data folder made private) goes to the log. */
	mount_capture_end(&run->capture, msg, sizeof(msg), rc == 0);
	if (rc == -EBUSY)
		return mount_busy_error(cfg->data_dir, busy_pid);
	if (rc < 0) {
		if (strncmp(msg, "pecfs: ", 7) == 0)
			fprintf(stderr, "%s\n", msg);
		else
			cli_error(CLI_FAILED, "cannot open data folder %s: %s", cfg->data_dir,
				  msg[0] != '\0' ? msg : strerror(-rc));
		return rc == -EINVAL ? CLI_USAGE : CLI_FAILED;
	}
	cli_last_exit_clear(cfg->data_dir);
	rc = ctl_server_start(st, &ctl);
	if (rc < 0) {
		store_close(st);
		return cli_error(CLI_FAILED, "cannot start the control socket in %s: %s", cfg->data_dir,
				 strerror(-rc));
	}
	rc = cli_tier_start(cfg, st, &tier);
	if (rc != 0) {
		ctl_server_stop(ctl);
		store_close(st);
		return rc;
	}

	mount_capture_begin(&run->capture);
	rc = pecfs_fs_serve(cfg, st, tier, mount_on_mounted, run);
	if (run->mounted)
		sd_notifyf(0, "STOPPING=1\nSTATUS=%s unmounted, closing the data folder", cfg->mountpoint);
	if (!run->mounted) {
		mount_capture_end(&run->capture, msg, sizeof(msg), false);
		if (strncmp(msg, "pecfs: ", 7) == 0)
			fprintf(stderr, "%s\n", msg);
		else
			cli_error(CLI_FAILED, "cannot mount %s: %s", cfg->mountpoint,
				  msg[0] != '\0' ? msg : strerror(rc < 0 ? -rc : EIO));
	} else if (rc < 0) {
		pecfs_log_error("%s: stopped with an error: %s", cfg->mountpoint, strerror(-rc));
	} else {
		pecfs_log_info("%s unmounted, everything stored", cfg->mountpoint);
	}
	ctl_server_stop(ctl);
	tier_close(tier);
	/* `pecfs umount` reads this once the LOCK is free: whether everything buffered got stored. */
	if (run->mounted && cli_last_exit_write(cfg->data_dir, rc < 0 ? -rc : 0) < 0)
		pecfs_log_error("cannot write %s/last-exit: pecfs umount will report an unknown end",
				cfg->data_dir);
	store_close(st);
	return rc < 0 ? CLI_FAILED : CLI_OK;
}

/* Parent side of the daemon start: waits for "ok" or for the child to exit with its code. */
static int mount_wait_child(pid_t child, int status_fd)
{
	char buf[8];
	ssize_t n;
	int status;

	do
		n = read(status_fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	close(status_fd);
	if (n >= 2 && memcmp(buf, "ok", 2) == 0)
		return CLI_OK;
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			return cli_error(CLI_FAILED, "lost track of the daemon (pid %ld): %s", (long)child,
					 strerror(errno));
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : CLI_FAILED;
	return cli_error(CLI_FAILED, "the daemon died during start-up (%s)", strsignal(WTERMSIG(status)));
}

int cli_mount(int argc, char **argv)
{
	struct pecfs_config cfg;
	struct mount_run run = { .cfg = &cfg, .status_fd = -1 };
	const char *data_dir = NULL, *mountpoint = NULL;
	char err[512];
	bool check = false;
	struct stat sb;
	int rc, p[2];
	pid_t child;

	pecfs_config_defaults(&cfg);
	rc = mount_parse(argc, argv, &cfg, &data_dir, &mountpoint, &check);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (pecfs_config_validate(&cfg, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s", err);
	if (check) {
		if (stat(mountpoint, &sb) < 0 || !S_ISDIR(sb.st_mode))
			return cli_error(CLI_USAGE, "mount point %s is not a directory", mountpoint);
		printf("settings and mount point OK; nothing mounted\n");
		return CLI_OK;
	}
	rc = mount_check_paths(&cfg, data_dir, mountpoint);
	if (rc != CLI_OK)
		return rc;
	if (cli_store_in_use(cfg.data_dir))
		return mount_busy_error(cfg.data_dir, cli_lock_pid(cfg.data_dir));

	/* A client of the control socket that goes away must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.foreground) {
		pecfs_log_open(cfg.log_level, cfg.syslog);
		pecfs_log_set_json(cfg.log_json);
		return mount_serve(&run);
	}

	pecfs_log_open(cfg.log_level, false);   /* the terminal until mounted, then syslog */
	pecfs_log_set_json(cfg.log_json);
	if (pipe2(p, O_CLOEXEC) < 0)
		return cli_error(CLI_FAILED, "pipe: %s", strerror(errno));
	fflush(NULL);
	child = fork();
	if (child < 0)
		return cli_error(CLI_FAILED, "cannot start the daemon: %s", strerror(errno));
	if (child > 0) {
		close(p[1]);
		return mount_wait_child(child, p[0]);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)   /* so that the daemon does not keep the caller's directory busy */
		return cli_error(CLI_FAILED, "cannot start the daemon: chdir /: %s", strerror(errno));
	run.daemon = true;
	run.status_fd = p[1];
	return mount_serve(&run);
}
