/* log.c - levelled messages to stderr or syslog, and capture of a daemon's stderr into syslog.
 * When stderr is systemd's journal (JOURNAL_STREAM names it), each line starts with its syslog
 * priority as "<N>", so journald files it at that priority.
 *
 * The sink is process-wide state, as stderr is. It is atomic because a daemon switches it once, from
 * the terminal to syslog, when the mount is up and threads are already running. Each message is
 * formatted into one buffer and written with a single call, so concurrent lines never interleave.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static _Atomic int log_level = PECFS_LOG_INFO;
static _Atomic bool log_to_syslog;
static _Atomic bool log_to_journal;

static const char *const log_names[] = { "error", "warn", "info", "debug" };
static const int log_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

/* True when stderr is the stream systemd connected to the journal ("DEV:INO" in JOURNAL_STREAM). */
static bool log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pecfs_log_open(enum pecfs_log_level level, bool use_syslog)
{
	log_to_journal = !use_syslog && log_stderr_is_journal();
	if (use_syslog)
		openlog("pecfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_level = level;
	log_to_syslog = use_syslog;
}

bool pecfs_log_enabled(enum pecfs_log_level level)
{
	return (int)level <= log_level;
}

void pecfs_log(enum pecfs_log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	int saved_errno = errno;   /* callers often log, then return -errno */
	va_list ap;

	if (!pecfs_log_enabled(level))
		return;
	if ((unsigned)level > PECFS_LOG_DEBUG)
		level = PECFS_LOG_DEBUG;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_to_syslog)
		syslog(log_priorities[level], "%s", line);
	else if (log_to_journal)
		fprintf(stderr, "<%d>pecfs: %s: %s\n", log_priorities[level], log_names[level], line);
	else
		fprintf(stderr, "pecfs: %s: %s\n", log_names[level], line);
	errno = saved_errno;
}

/* Forwards the pipe's lines to syslog until every writer has closed it (process exit). */
static void *log_stderr_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[LOG_LINE_MAX];
	size_t used = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		for (char *nl; (nl = memchr(buf, '\n', used)) != NULL;) {
			*nl = '\0';
			if (nl > buf)
				syslog(LOG_WARNING, "%s", buf);
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used);
		}
		if (used == sizeof(buf) - 1) {   /* an over-long line: log it in pieces */
			buf[used] = '\0';
			syslog(LOG_WARNING, "%s", buf);
			used = 0;
		}
	}
	close(fd);
	return NULL;
}

int pecfs_log_capture_stderr(void)
{
	pthread_t thread;
	int p[2], rc;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (dup2(p[1], STDERR_FILENO) < 0) {
		rc = -errno;
		goto out_close;
	}
	close(p[1]);
	rc = pthread_create(&thread, NULL, log_stderr_reader, (void *)(intptr_t)p[0]);
	if (rc != 0) {
		close(p[0]);
		return -rc;
	}
	pthread_detach(thread);
	return 0;
out_close:
	close(p[0]);
	close(p[1]);
	return rc;
}
