/* cli_common.c - what the subcommands share: error lines, pecfs mounts from /proc/self/mountinfo,
 * paths of mount points that may be dead, the data folder's LOCK.
 *
 * A pecfs mount is recognised by its type "fuse.pecfs" and its source "pecfs:DATA_DIR" (the daemon
 * mounts with fsname=pecfs:DATA_DIR, DATA_DIR absolute).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define CLI_FSNAME_PREFIX "pecfs:"

int cli_error(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("pecfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void cli_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* Parses one mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPER".
 * Fills the fields a caller needs; -EINVAL for a line of another shape. */
static int cli_parse_mountinfo(char *line, dev_t *dev, char **mountpoint, char **fstype, char **source)
{
	char *fields[6], *save = NULL, *tok;
	unsigned maj, min;
	int i = 0;

	for (tok = strtok_r(line, " \n", &save); tok != NULL && i < 6; tok = strtok_r(NULL, " \n", &save))
		fields[i++] = tok;
	if (i < 6 || sscanf(fields[2], "%u:%u", &maj, &min) != 2)
		return -EINVAL;
	while (tok != NULL && strcmp(tok, "-") != 0)
		tok = strtok_r(NULL, " \n", &save);
	if (tok == NULL || (*fstype = strtok_r(NULL, " \n", &save)) == NULL ||
	    (*source = strtok_r(NULL, " \n", &save)) == NULL)
		return -EINVAL;
	*dev = makedev(maj, min);
	*mountpoint = fields[4];
	cli_unescape(*mountpoint);
	cli_unescape(*source);
	return 0;
}

/* Calls cb for each mount (any type); stops when cb returns non-zero and returns that value. */
static int cli_foreach_mount(int (*cb)(dev_t dev, const char *mountpoint, const char *fstype,
				       const char *source, void *arg), void *arg)
{
	char *line = NULL, *mountpoint, *fstype, *source;
	size_t cap = 0;
	dev_t dev;
	FILE *f;
	int rc = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return -errno;
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		if (cli_parse_mountinfo(line, &dev, &mountpoint, &fstype, &source) == 0)
			rc = cb(dev, mountpoint, fstype, source, arg);
	}
	free(line);
	fclose(f);
	return rc;
}

struct cli_mount_list {
	struct cli_mount *items;
	size_t n, cap;
};

static int cli_collect_pecfs(dev_t dev, const char *mountpoint, const char *fstype, const char *source,
			     void *arg)
{
	struct cli_mount_list *l = arg;
	struct cli_mount *grown;

	if (strcmp(fstype, "fuse.pecfs") != 0 ||
	    strncmp(source, CLI_FSNAME_PREFIX, strlen(CLI_FSNAME_PREFIX)) != 0)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		grown = realloc(l->items, l->cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->items = grown;
	}
	snprintf(l->items[l->n].mountpoint, PATH_MAX, "%s", mountpoint);
	snprintf(l->items[l->n].data_dir, PATH_MAX, "%s", source + strlen(CLI_FSNAME_PREFIX));
	l->items[l->n].dev = dev;
	l->n++;
	return 0;
}

int cli_mounts_list(struct cli_mount **out, size_t *n)
{
	struct cli_mount_list l = { 0 };
	int rc = cli_foreach_mount(cli_collect_pecfs, &l);

	if (rc < 0) {
		free(l.items);
		return rc;
	}
	*out = l.items;
	*n = l.n;
	return 0;
}

enum cli_match { CLI_BY_DEV, CLI_BY_MOUNTPOINT, CLI_BY_DATA_DIR };

/* The last matching mount wins: a later mount on the same point hides the earlier one. */
static int cli_mount_find(enum cli_match how, dev_t dev, const char *path, struct cli_mount *out)
{
	struct cli_mount *all;
	size_t n;
	int rc = cli_mounts_list(&all, &n), found = -ENOENT;

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		bool hit = (how == CLI_BY_DEV && all[i].dev == dev) ||
			   (how == CLI_BY_MOUNTPOINT && strcmp(all[i].mountpoint, path) == 0) ||
			   (how == CLI_BY_DATA_DIR && strcmp(all[i].data_dir, path) == 0);
		if (hit) {
			*out = all[i];
			found = 0;
		}
	}
	free(all);
	return found;
}

int cli_mount_by_dev(dev_t dev, struct cli_mount *out)
{
	return cli_mount_find(CLI_BY_DEV, dev, NULL, out);
}

int cli_mount_by_mountpoint(const char *path, struct cli_mount *out)
{
	return cli_mount_find(CLI_BY_MOUNTPOINT, 0, path, out);
}

int cli_mount_by_data_dir(const char *data_dir, struct cli_mount *out)
{
	return cli_mount_find(CLI_BY_DATA_DIR, 0, data_dir, out);
}

static int cli_match_mountpoint(dev_t dev, const char *mountpoint, const char *fstype, const char *source,
				void *arg)
{
	(void)dev;
	(void)fstype;
	(void)source;
	return strcmp(mountpoint, arg) == 0;
}

bool cli_is_mountpoint(const char *path)
{
	return cli_foreach_mount(cli_match_mountpoint, (void *)path) == 1;
}

int cli_abspath(const char *path, char *out, size_t size)
{
	char copy[PATH_MAX], parent[PATH_MAX], *slash, *base;
	size_t len;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	if (len == 0)
		return -ENOENT;
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		base = copy;
		if (realpath(".", parent) == NULL)
			return -errno;
	} else {
		base = slash + 1;
		*slash = '\0';
		if (realpath(slash == copy ? "/" : copy, parent) == NULL)
			return -errno;
	}
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || base[0] == '\0')
		return realpath(path, out) != NULL ? 0 : -errno;   /* "/", ".", "..": no last name to keep */
	if (snprintf(out, size, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, base) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

pid_t cli_lock_pid(const char *data_dir)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	long pid;
	int fd;

	if (snprintf(path, sizeof(path), "%s/LOCK", data_dir) >= (int)sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

bool cli_store_in_use(const char *data_dir)
{
	char path[PATH_MAX];
	bool busy;
	int fd;

	if (snprintf(path, sizeof(path), "%s/LOCK", data_dir) >= (int)sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* A shared lock never blocks the owner's exclusive one for longer than this probe. */
	busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return busy;
}

bool cli_pid_exiting(pid_t pid)
{
	char path[64], buf[512], *close_paren;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return true;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')' (comm may hold one). */
	close_paren = strrchr(buf, ')');
	return close_paren && (close_paren[1] == ' ') && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

static long cli_elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

bool cli_wait_store_free(const char *data_dir, long timeout_ms, const char *tell)
{
	struct timespec start, pause = { .tv_nsec = 50 * 1000000L };

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (cli_store_in_use(data_dir)) {
		if (cli_elapsed_ms(&start) > timeout_ms)
			return false;
		if (tell != NULL && cli_elapsed_ms(&start) > 2000) {
			fprintf(stderr, "pecfs: %s\n", tell);
			tell = NULL;
		}
		nanosleep(&pause, NULL);
	}
	return true;
}

int cli_check_version_path(const char *path, const char *not_dir, struct cli_mount *m)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return cli_error(CLI_FAILED, "%s: %s", path, strerror(errno));
	if (cli_mount_by_dev(st.st_dev, m) < 0)
		return cli_error(CLI_FAILED, "%s: not on a pecfs mount", path);
	if (!S_ISDIR(st.st_mode))
		return cli_error(CLI_FAILED, "%s: %s", path, not_dir);
	return CLI_OK;
}

int64_t cli_parse_duration(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || v > 3650.0 * 86400)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		v *= 60;
		break;
	case 'h':
		v *= 3600;
		break;
	case 'd':
		v *= 86400;
		break;
	default:
		return -1;
	}
	if (*end && end[1])
		return -1;
	return (int64_t)(v * 1e9);
}
