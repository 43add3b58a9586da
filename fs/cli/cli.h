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
#include <time.h>

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

/* ---- the one parser of every subcommand (cli_args.c) ---- */

enum { CLI_NO_ARG = 0, CLI_ARG = 1, CLI_OPT_ARG = 2 };
struct cli_opt {
	const char *name;  /* the long name, without "--" */
	int short_name;    /* 'f' for -f, or 0 */
	int has_arg;       /* CLI_NO_ARG, CLI_ARG (--name VALUE or --name=VALUE), CLI_OPT_ARG (--name[=VALUE]) */
	int id;            /* for the handler */
};
/* What is left after the options: the arguments in order (argv[argc] is NULL). */
struct cli_args {
	int argc;
	char **argv;
};
/* Parses the arguments after the subcommand cmd with getopt_long: each option found goes to
 * handle(ctx, option, value) in order (a non-zero return stops with it); -h/--help prints help and
 * returns -1. Unknown options and missing values are usage errors. Returns 0 with the remaining
 * arguments in *pos (free with cli_args_free), -1 after help, or an exit code. */
int cli_parse_args(const char *cmd, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
		   void (*help)(FILE *), int (*handle)(void *ctx, const struct cli_opt *o, const char *arg),
		   void *ctx, struct cli_args *pos);
void cli_args_free(struct cli_args *a);
/* The handler of a subcommand without options of its own (only -h). */
int cli_no_options(void *ctx, const struct cli_opt *o, const char *arg);
/* The handler of a subcommand whose one option is a flag: sets *(bool *)ctx. */
int cli_flag_option(void *ctx, const struct cli_opt *o, const char *arg);
/* --json output: text lines (findings) as an array of strings; o printed as one line and freed
 * (CLI_OK, or CLI_FAILED when it could not be built). */
typedef struct json_t json_t;
json_t *cli_json_lines(const char *text, size_t len);
int cli_json_print(json_t *o);
/* A whole number from min to max (digits only: "8x", "-1", "" are errors); 0, or CLI_USAGE after
 * "pecfs: OPT: 'TEXT' is not a whole number from MIN to MAX". */
int cli_number(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* A duration (cli_parse_duration) from min_ns to max_ns; 0, or CLI_USAGE after saying why. */
int cli_duration(const char *opt, const char *text, int64_t min_ns, int64_t max_ns, int64_t *out);

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

/* Options of the commands that talk to the bucket without a mount: own (ids below CLI_S3_CONFIG_ID),
 * then -c/--config FILE and every s3* setting (--s3, --s3-endpoint, ...). The count, or -ENOMEM; free
 * *out. */
/* Read by mount, restore, fsck --remote and gc --remote unless -c names another file. */
#define CLI_SYSTEM_CONFIG "/etc/pecfs/pecfs.conf"
#define CLI_S3_CONFIG_ID 1000
#define CLI_S3_KEY_ID 1001
int cli_s3_opts(const struct cli_opt *own, size_t nown, struct cli_opt **out);
/* Applies o when cli_s3_opts added it: 1 done, 0 not one of them, CLI_USAGE after saying why. */
int cli_s3_apply(struct pecfs_config *cfg, const struct cli_opt *o, const char *arg);
/* cli_parse_args with those options: the s3 ones and --config go into cfg, the command's own to
 * handle. */
int cli_parse_s3_args(const char *cmd, int argc, char **argv, const struct cli_opt *own, size_t nown,
		      void (*help)(FILE *), int (*handle)(void *ctx, const struct cli_opt *o, const char *arg),
		      void *ctx, struct pecfs_config *cfg, struct cli_args *pos);

/* Waits until version_path (on mountpoint, just sealed) is committed in S3; a progress bar on a
 * terminal, each new upload failure on stderr. Gives up after timeout_ns (< 0: never). Returns the
 * exit code. */
int cli_seal_wait_upload(const char *version_path, const char *mountpoint, int64_t timeout_ns);

/* "\rlabel [####    ]  42.0% 12/30 MiB" to out. */
void cli_progress_bar(FILE *out, const char *label, uint64_t done, uint64_t total);
/* The same with the rate since cli_progress_begin and the time left at that rate (ETA). */
struct cli_progress {
	const char *label;
	const char *unit;  /* NULL: bytes (shown in MiB); else what is counted ("runs", "chunks") */
	struct timespec t0;
};
void cli_progress_begin(struct cli_progress *p, const char *label);
void cli_progress_begin_items(struct cli_progress *p, const char *label, const char *unit);
void cli_progress_show(FILE *out, const struct cli_progress *p, uint64_t done, uint64_t total);

#endif
