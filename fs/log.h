/* log.h - the daemon's messages: levels, to stderr or syslog.
 *
 * One process-wide sink, like stderr itself, set by main (pecfs_log_open; a daemon switches to syslog
 * once mounted). pecfs_log may be called from any thread. Messages are single lines without a trailing
 * newline; say what failed, on which path, and what to do.
 */
#ifndef PECFS_LOG_H
#define PECFS_LOG_H

#include <stdbool.h>

#include "config.h"

/* Logs messages at level and above (more severe) to syslog (facility daemon, ident "pecfs") or to
 * stderr ("pecfs: warn: ..."). Before it is called, everything at info and above goes to stderr. */
void pecfs_log_open(enum pecfs_log_level level, bool use_syslog);

/* Sends whatever is written to file descriptor 2 from now on (messages of libraries that print to
 * stderr) to syslog, one message per line, through a pipe and a reader thread; for a daemon whose
 * stderr would otherwise go nowhere. 0 or -errno. */
int pecfs_log_capture_stderr(void);

/* log-format json: each message as one JSON object {"time", "level", "pid", "msg"} (either sink). */
void pecfs_log_set_json(bool json);

bool pecfs_log_enabled(enum pecfs_log_level level);

void pecfs_log(enum pecfs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pecfs_log_error(...) pecfs_log(PECFS_LOG_ERROR, __VA_ARGS__)
#define pecfs_log_warn(...) pecfs_log(PECFS_LOG_WARN, __VA_ARGS__)
#define pecfs_log_info(...) pecfs_log(PECFS_LOG_INFO, __VA_ARGS__)
#define pecfs_log_debug(...) pecfs_log(PECFS_LOG_DEBUG, __VA_ARGS__)

#endif
