/* cli.h - the `pecfs` command line: one function per subcommand, and what they share (usage errors,
 * finding pecfs mounts in /proc/self/mountinfo).
 *
 * Exit codes: 0 done, 1 the operation failed, 2 usage or configuration error. Errors are one line on
 * stderr, "pecfs: <what is wrong>". Only main.c calls these; they may print and read the terminal.
 */
#ifndef PECFS_CLI_H
#define PECFS_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* PECFS_VERSION_FULL ("0.2.0+g1a2b3c4", from project() and git describe) and PECFS_ROCKSDB_VERSION
 * come from fs/cli/CMakeLists.txt. */
void cli_print_version(FILE *out);

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Each takes the arguments after the subcommand name and returns the exit code. */
int cli_mount(int argc, char **argv);
int cli_umount(int argc, char **argv);
int cli_seal(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_fsck(int argc, char **argv);
int cli_gc(int argc, char **argv);
int cli_gc_remote(int argc, char **argv);
int cli_pin(int argc, char **argv);
int cli_unpin(int argc, char **argv);
int cli_restore(int argc, char **argv);
int cli_ping(int argc, char **argv);
/* `pecfs DATA_DIR MOUNTPOINT -o OPTIONS`, as mount(8) runs it (cli_mount_helper.c). */
int cli_mount_helper(int argc, char **argv);

/* Help texts (usage, every option, an example) to out. */
void cli_help_mount(FILE *out);
void cli_help_umount(FILE *out);
void cli_help_seal(FILE *out);
void cli_help_status(FILE *out);
void cli_help_fsck(FILE *out);
void cli_help_gc(FILE *out);
void cli_help_gc_remote(FILE *out);
void cli_help_pin(FILE *out);
void cli_help_restore(FILE *out);
void cli_help_ping(FILE *out);

/* "90", "90s", "30m", "2h", "1d" -> nanoseconds; -1 when malformed. */
int64_t cli_parse_duration(const char *s);

/* Prints "pecfs: <message>" to stderr; returns code (so `return cli_error(CLI_USAGE, ...)`). */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True for "-h" and "--help". */
bool cli_is_help(const char *arg);

/* A pecfs mount as /proc/self/mountinfo lists it. */
struct cli_mount {
	char mountpoint[PATH_MAX];
	char data_dir[PATH_MAX];   /* from the source "pecfs:DATA_DIR" */
	dev_t dev;
};

/* Every pecfs mount, in mount order; *out is malloc'ed (free it), possibly NULL with *n 0. */
int cli_mounts_list(struct cli_mount **out, size_t *n);

/* The pecfs mount whose device is dev / whose mount point is path / whose data folder is data_dir;
 * -ENOENT when there is none. */
int cli_mount_by_dev(dev_t dev, struct cli_mount *out);
/* Checks that path exists and is a directory on a pecfs mount, before a pecfs attribute is set on
 * it (another filesystem would store a user.* attribute silently); fills *m with that mount.
 * CLI_OK, or CLI_FAILED after printing why (not_dir: the reason when it is no directory). */
int cli_check_version_path(const char *path, const char *not_dir, struct cli_mount *m);
int cli_mount_by_mountpoint(const char *path, struct cli_mount *out);
int cli_mount_by_data_dir(const char *data_dir, struct cli_mount *out);

/* True when some mount (of any type) has path as its mount point. */
bool cli_is_mountpoint(const char *path);

/* Absolute, normalised form of path without touching path itself (only its parent is resolved), so
 * that it works on a dead mount point whose stat fails with ENOTCONN. */
int cli_abspath(const char *path, char *out, size_t size);

/* Pid written in DATA_DIR/LOCK by the process that has the store open; 0 when none can be read. */
pid_t cli_lock_pid(const char *data_dir);

/* True while a process holds DATA_DIR/LOCK (the store is open). */
bool cli_store_in_use(const char *data_dir);

/* True when process pid is gone or on its way out: killed, its main thread already a zombie while
 * the others finish exiting (they may still hold its files, the data folder's LOCK among them). */
bool cli_pid_exiting(pid_t pid);

/* Waits up to timeout_ms for DATA_DIR/LOCK to be released; true once it is. When tell is set and the
 * wait lasts over 2 s, says once on stderr what it is waiting for. */
bool cli_wait_store_free(const char *data_dir, long timeout_ms, const char *tell);

/* ---- how a daemon ended: DATA_DIR/last-exit (cli_last_exit.c, store/FORMAT.md section 1) ---- */
/* Removes the report of an earlier daemon (a daemon starting, holding the LOCK). */
void cli_last_exit_clear(const char *data_dir);
/* Writes this process's report: err 0 when everything buffered was stored and synced, else the
 * errno of the final write-out. Called by a daemon before it lets go of the LOCK. 0 or -errno. */
int cli_last_exit_write(const char *data_dir, int err);
/* Reads the report of daemon pid (of any daemon when pid is 0) into *err (0: everything stored).
 * -ENOENT when there is none from that pid. */
int cli_last_exit_read(const char *data_dir, pid_t pid, int *err);

/* ---- the S3 tier (cli_tier.c) ---- */
struct pecfs_config;
struct store;
struct tier;

/* Starts the tier on st when cfg->s3 is set (*out NULL otherwise). CLI_USAGE after printing the
 * reason for a bad setting or missing credentials, 0 when started or not configured. */
int cli_tier_start(const struct pecfs_config *cfg, struct store *st, struct tier **out);

/* mount --from: imports the bucket's committed versions into cfg->data_dir before the mount opens it
 * (nothing when cfg->from is ""). 0, or an exit code after printing the reason. */
int cli_tier_import(const struct pecfs_config *cfg);

struct tier_options;
/* The connection settings of cfg (s3 or else from, endpoint, region, addressing, CA, credentials). */
void cli_tier_options(const struct pecfs_config *cfg, struct tier_options *o);

/* The argument loop of commands that reach the bucket without a mount (restore, fsck --remote,
 * gc --remote): -c/--config FILE and --s3* settings (--s3-endpoint URL, --s3-region=R, ...) go into
 * cfg, -h/--help prints help, and every other argument goes to arg(ctx, argc, argv, &i), which
 * advances i past any value it takes and returns 0 or an exit code after printing why. Returns 0,
 * -1 after --help, or an exit code. */
int cli_s3_args(int argc, char **argv, struct pecfs_config *cfg, void (*help)(FILE *),
		int (*arg)(void *ctx, int argc, char **argv, int *i), void *ctx);

/* Waits until version_path (on mountpoint, just sealed) is committed in S3; a progress bar on a
 * terminal, each new upload failure on stderr. Gives up after timeout_ns (< 0: never). Returns the
 * exit code. */
int cli_seal_wait_upload(const char *version_path, const char *mountpoint, int64_t timeout_ns);

/* "\rlabel [####    ]  42.0% 12/30 MiB" to out. */
void cli_progress_bar(FILE *out, const char *label, uint64_t done, uint64_t total);

#endif
