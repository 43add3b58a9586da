/* config.h - pecfs settings: defaults, the configuration file, command-line options.
 *
 * Every setting has one name used both as a long option (--chunk-size 4M) and as a key in the
 * configuration file (chunk-size = 4M). The file is read first, options override it. The format and
 * every key are documented in deploy/pecfs.conf.example.
 */
#ifndef PECFS_CONFIG_H
#define PECFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pecfs_log_level { PECFS_LOG_ERROR = 0, PECFS_LOG_WARN, PECFS_LOG_INFO, PECFS_LOG_DEBUG };

#define PECFS_PACK_SIZE_MAX (256ull << 20)

struct pecfs_config {
	char data_dir[PATH_MAX];
	char mountpoint[PATH_MAX];
	char config_file[PATH_MAX];   /* "" when none */

	bool foreground;              /* -f: stay in the foreground, log to stderr */
	bool allow_other;             /* let other users use the mount (needs user_allow_other for non-root) */
	bool fuse_debug;              /* libfuse request tracing */
	enum pecfs_log_level log_level;
	bool syslog;                  /* log to syslog instead of stderr (default when daemonized) */

	uint32_t chunk_size;          /* bytes, power of two, 64 KiB .. 64 MiB; default 4 MiB */
	uint32_t write_buffers;       /* chunk-sized write buffers in the pool; default 32 */
	uint32_t hash_threads;        /* threads hashing and storing chunks; default 4 */
	uint32_t fuse_threads;        /* most FUSE request threads; default 16 */
	uint64_t reserve_free_bytes;  /* keep this much of the data disk free; default 256 MiB */
	uint64_t read_ahead_bytes;    /* the kernel's read-ahead window for the mount; 0: its own 128 KiB */
	uint64_t gc_garbage_bytes;    /* collect unreferenced chunks in the background past this; 0: never */
	double attr_timeout;          /* seconds the kernel caches attributes and entries; default 1.0 */
	bool direct_io_mmap;          /* ask the kernel to let direct-I/O files be mapped shared, so files
					 opened for writing keep direct I/O; default on (fs/fuse_init_ext.c) */
	bool sealed_direct_io;        /* read-only opens of sealed files use direct I/O (fs/ops_file.c) */

	bool seal_on_tracker;         /* a written `latest` / `latest_checkpointed_iteration.txt` seals the
					 version it names; default on */
	bool seal_on_rename;          /* renaming a temporary version directory into place seals it; on */
	bool seal_on_next_version;    /* the first file created in a newer version seals older versions of the
					 run that have no open files; default off */

	/* The S3 tier (store/tier/tier.h): off while s3 is "" (local disk alone). */
	char s3[512];                 /* s3://BUCKET[/PREFIX] */
	char s3_endpoint[512];        /* http(s)://host[:port]; "": AWS's endpoint for s3_region */
	char s3_region[64];           /* "": us-east-1 */
	char s3_addressing[16];       /* "", "path" or "virtual" */
	char s3_ca_file[PATH_MAX];
	char s3_credentials_file[PATH_MAX];
	char node_id[64];             /* "": the data folder's own random id */
	uint32_t s3_nodes;            /* node parts a version needs before COMMIT; default 1 */
	char s3_job[129];             /* the job a version is sealed by when its run sets none; "" none */
	uint32_t upload_threads;      /* chunks uploaded at once; default 8 */
	uint64_t upload_bandwidth;    /* bytes per second, 0 unlimited */
	uint64_t s3_pack_size;        /* chunk bytes uploaded in one S3 object (a pack), 0: an object per chunk */
	uint64_t cache_size;          /* local bytes of uploaded chunks kept, 0 unlimited */
	double cache_min_free;        /* evict uploaded chunks while the data disk has less free (ratio) */
	uint32_t s3_prefetch;         /* chunks read ahead from S3 for a sequential reader; 0 off; default 8 */
	char s3_persist[8];           /* "full" (or ""): every sealed version in full; "pec": non-expert state
					 plus s3_k_persist experts per layer (fs/tier_persist.h) */
	uint32_t s3_k_persist;        /* experts per layer an uploaded version adds under "pec"; default 1 */
	bool log_json;                /* log-format json */
	char metrics_listen[80];      /* HOST:PORT of the Prometheus endpoint, "" for none */
	char from[512];               /* mount --from s3://...: import the bucket's versions */
};

/* The settings, for --help and option parsing: pecfs_config_keys is terminated by a NULL name. */
enum pecfs_config_kind {
	PECFS_CONFIG_BOOL,     /* yes/no/true/false/on/off/1/0; as an option also --NAME / --no-NAME */
	PECFS_CONFIG_SIZE,     /* bytes with an optional K, M, G, T suffix (powers of 1024) */
	PECFS_CONFIG_COUNT,    /* a positive whole number */
	PECFS_CONFIG_SECONDS,  /* a non-negative decimal number of seconds */
	PECFS_CONFIG_LEVEL,    /* error|warn|info|debug */
	PECFS_CONFIG_TEXT,     /* a string (a URL, a path, a name) */
	PECFS_CONFIG_RATIO,    /* a decimal number from 0 to 1 */
};
struct pecfs_config_key {
	const char *name;
	enum pecfs_config_kind kind;
	const char *default_text;  /* the default as it would be written in the file */
	const char *help;          /* one line */
};
extern const struct pecfs_config_key pecfs_config_keys[];

/* The table entry for a setting name, or NULL when there is no such setting. */
const struct pecfs_config_key *pecfs_config_find(const char *name);

/* Fills cfg with the defaults. */
void pecfs_config_defaults(struct pecfs_config *cfg);

/* Applies one setting by its name ("chunk-size") and textual value ("4M", "yes", "0.5").
 * Returns 0, or -EINVAL with a one-line reason in err (size errsz). Boolean settings accept
 * yes/no/true/false/on/off/1/0; sizes accept K, M, G, T suffixes (powers of 1024). */
int pecfs_config_set(struct pecfs_config *cfg, const char *name, const char *value, char *err, size_t errsz);

/* Reads a configuration file: `key = value` lines, `#` comments, blank lines. -EINVAL with
 * "FILE:LINE: reason" in err on the first bad line, -errno if it cannot be read. */
int pecfs_config_load(struct pecfs_config *cfg, const char *path, char *err, size_t errsz);

/* Cross-checks settings (chunk size a power of two in range, counts non-zero...). */
/* 0 when listen is a HOST:PORT the metrics endpoint can take (metrics_http.c), else -EINVAL. */
int metrics_http_validate(const char *listen);

int pecfs_config_validate(const struct pecfs_config *cfg, char *err, size_t errsz);

#endif
