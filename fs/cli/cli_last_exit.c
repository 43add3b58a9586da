/* cli_last_exit.c - how a daemon ended, for `pecfs umount`: DATA_DIR/last-exit, one line written by
 * the daemon just before it lets go of the data folder's LOCK, "<pid> ok" or "<pid> failed <errno>
 * <message>". umount waits for the LOCK to be free, so the line is there when it looks. It is a
 * report, not state: nothing else reads it, a starting daemon removes it, and a missing or foreign
 * one only means the daemon that was waited for never said (it died).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAST_EXIT_NAME "last-exit"

static int last_exit_path(const char *data_dir, const char *suffix, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s%s", data_dir, LAST_EXIT_NAME, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

void cli_last_exit_clear(const char *data_dir)
{
	char path[PATH_MAX];

	if (last_exit_path(data_dir, "", path, sizeof(path)) == 0)
		unlink(path);
}

int cli_last_exit_write(const char *data_dir, int err)
{
	char path[PATH_MAX], tmp[PATH_MAX], line[256];
	int fd, n, rc = 0;

	if (err == 0)
		n = snprintf(line, sizeof(line), "%ld ok\n", (long)getpid());
	else
		n = snprintf(line, sizeof(line), "%ld failed %d %s\n", (long)getpid(), err, strerror(err));
	if (last_exit_path(data_dir, "", path, sizeof(path)) < 0 || last_exit_path(data_dir, ".tmp", tmp, sizeof(tmp)) < 0)
		return -ENAMETOOLONG;
	/* A new file renamed over the old one: a reader never sees half a line. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, line, (size_t)n);
	if (w < 0)
		rc = -errno;
	else if (w != n)
		rc = -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int cli_last_exit_read(const char *data_dir, pid_t pid, int *err)
{
	char path[PATH_MAX], line[256], word[16];
	long who;
	int fd, e = 0;
	ssize_t n;

	if (last_exit_path(data_dir, "", path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	line[n] = '\0';
	if (sscanf(line, "%ld %15s %d", &who, word, &e) < 2 || (pid > 0 && who != (long)pid))
		return -ENOENT;
	if (strcmp(word, "ok") == 0)
		*err = 0;
	else if (strcmp(word, "failed") == 0)
		*err = e > 0 ? e : EIO;
	else
		return -ENOENT;
	return 0;
}
