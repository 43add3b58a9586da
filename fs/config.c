/* config.c - pecfs settings: the table of keys, parsing of values, the configuration file.
 *
 * One table (pecfs_config_keys) names every setting, its kind, default and help line; the command line,
 * --help and deploy/pecfs.conf.example follow it. Values are parsed strictly: a typo must be an error
 * naming the setting, never a silently different filesystem. No I/O except reading the file.
 */
#include "config.h"
#include "tier_manifest.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CFG_MIN_CHUNK (64u << 10)
#define CFG_MAX_CHUNK (64u << 20)
#define CFG_MAX_LINE 4096

const struct pecfs_config_key pecfs_config_keys[] = {
	{ "foreground", PECFS_CONFIG_BOOL, "no", "stay in the foreground and log to stderr (-f)" },
	{ "allow-other", PECFS_CONFIG_BOOL, "no",
	  "let other users use the mount (non-root needs user_allow_other in /etc/fuse.conf)" },
	{ "fuse-debug", PECFS_CONFIG_BOOL, "no", "trace every FUSE request on stderr (use with -f)" },
	{ "log-level", PECFS_CONFIG_LEVEL, "info", "least severe message logged: error, warn, info or debug" },
	{ "log-format", PECFS_CONFIG_TEXT, "text", "text, or json: one JSON object per message for log shippers" },
	{ "syslog", PECFS_CONFIG_BOOL, "no", "log to syslog instead of stderr (always so when daemonized)" },
	{ "chunk-size", PECFS_CONFIG_SIZE, "4M",
	  "deduplication unit, a power of two from 64K to 64M; fixed when the data folder is created" },
	{ "write-buffers", PECFS_CONFIG_COUNT, "32", "chunk-sized write buffers kept allocated for writers" },
	{ "hash-threads", PECFS_CONFIG_COUNT, "4",
	  "threads that hash and store full chunks (each waits on its chunk's syncs: more than the cores pay)" },
	{ "fuse-threads", PECFS_CONFIG_COUNT, "16", "most threads answering FUSE requests" },
	{ "reserve-free", PECFS_CONFIG_SIZE, "256M", "writes fail with ENOSPC when the data disk has less free" },
	{ "read-ahead", PECFS_CONFIG_SIZE, "4M",
	  "the kernel's read-ahead window for sequential readers (FUSE's default is 128K); 0: leave it" },
	{ "gc-garbage", PECFS_CONFIG_SIZE, "1G",
	  "collect chunks nothing references in the background past this many bytes (or when the disk runs low); 0: only pecfs gc" },
	{ "attr-timeout", PECFS_CONFIG_SECONDS, "1.0", "seconds the kernel may cache attributes and names" },
	{ "direct-io-mmap", PECFS_CONFIG_BOOL, "yes",
	  "files opened for writing keep direct I/O when mapped shared (kernel 6.6+); no: O_RDWR opens use the page cache" },
	{ "sealed-direct-io", PECFS_CONFIG_BOOL, "yes",
	  "read-only opens of sealed files use direct I/O (kernel 6.6+): one copy fewer, cached once" },
	{ "seal-on-tracker", PECFS_CONFIG_BOOL, "yes",
	  "writing latest / latest_checkpointed_iteration.txt seals the version it names" },
	{ "seal-on-rename", PECFS_CONFIG_BOOL, "yes",
	  "renaming a temporary version directory (step-100.tmp) into place seals it" },
	{ "seal-on-next-version", PECFS_CONFIG_BOOL, "no",
	  "the first file created in a newer version seals older versions with no open files" },
	{ "s3", PECFS_CONFIG_TEXT, "", "attach the S3 tier: upload sealed versions to s3://BUCKET/PREFIX" },
	{ "s3-endpoint", PECFS_CONFIG_TEXT, "", "S3 server URL, http(s)://host[:port] (default: AWS for s3-region)" },
	{ "s3-region", PECFS_CONFIG_TEXT, "", "region requests are signed for (default: AWS_REGION, the AWS profile's, else us-east-1)" },
	{ "s3-addressing", PECFS_CONFIG_TEXT, "auto", "bucket addressing: path, virtual or auto" },
	{ "s3-ca-file", PECFS_CONFIG_TEXT, "", "PEM file of CAs to trust for the S3 endpoint (private servers)" },
	{ "s3-credentials-file", PECFS_CONFIG_TEXT, "",
	  "AWS-style credentials file (mode 0600) used when AWS_ACCESS_KEY_ID is not set" },
	{ "node-id", PECFS_CONFIG_TEXT, "", "this node's name in the bucket (default: the data folder's random id)" },
	{ "s3-nodes", PECFS_CONFIG_COUNT, "1",
	  "nodes that each upload a part of every version; COMMIT waits for all their manifests" },
	{ "s3-job", PECFS_CONFIG_TEXT, "",
	  "the job (one launch of the trainer) that seals versions, when a run sets no user.pec.job: "
	  "COMMIT counts only the parts of one job" },
	{ "upload-threads", PECFS_CONFIG_COUNT, "8", "chunks uploaded to S3 at once" },
	{ "upload-bandwidth", PECFS_CONFIG_SIZE, "0", "most bytes per second sent to S3, 0 for unlimited" },
	{ "s3-pack-size", PECFS_CONFIG_SIZE, "16M",
	  "chunks uploaded together in one S3 object up to this many bytes (0 to 256M; 0: an object per chunk)" },
	{ "cache-size", PECFS_CONFIG_SIZE, "0", "local bytes of uploaded chunks to keep, 0 for unlimited" },
	{ "cache-min-free", PECFS_CONFIG_RATIO, "0", "evict uploaded chunks while the data disk has less free" },
	{ "s3-prefetch", PECFS_CONFIG_COUNT, "8",
	  "chunks fetched from S3 ahead of a sequential reader, half of them at a time (0 to 64; 0: off)" },
	{ "s3-persist", PECFS_CONFIG_TEXT, "full",
	  "what a sealed version uploads: full, or pec (non-expert state + s3-k-persist experts per layer)" },
	{ "s3-k-persist", PECFS_CONFIG_COUNT, "1", "with s3-persist pec: experts per MoE layer each upload adds" },
	{ "metrics-listen", PECFS_CONFIG_TEXT, "", "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9567)" },
	{ "from", PECFS_CONFIG_TEXT, "", "import the committed versions of s3://BUCKET/PREFIX (mount on a fresh node)" },
	{ NULL, 0, NULL, NULL },
};

static_assert(sizeof(((struct pecfs_config *)0)->s3_job) == TIER_JOB_MAX + 1, "s3-job holds a job id");

/* Writes a one-line reason into err (which may be NULL) and returns -EINVAL. */
static int cfg_fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfg_fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

const struct pecfs_config_key *pecfs_config_find(const char *name)
{
	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

void pecfs_config_defaults(struct pecfs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = PECFS_LOG_INFO;
	cfg->chunk_size = 4u << 20;
	cfg->write_buffers = 32;
	cfg->hash_threads = 4;
	cfg->fuse_threads = 16;
	cfg->reserve_free_bytes = 256ull << 20;
	cfg->gc_garbage_bytes = 1ull << 30;
	cfg->read_ahead_bytes = 4ull << 20;
	cfg->attr_timeout = 1.0;
	cfg->direct_io_mmap = true;
	cfg->sealed_direct_io = true;
	cfg->seal_on_tracker = true;
	cfg->seal_on_rename = true;
	cfg->upload_threads = 8;
	cfg->s3_pack_size = 16ull << 20;
	cfg->s3_nodes = 1;
	cfg->s3_prefetch = 8;
	snprintf(cfg->s3_persist, sizeof(cfg->s3_persist), "full");
	cfg->s3_k_persist = 1;
}

static int cfg_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* "4M" -> 4194304. Accepts a whole number, then optionally K/M/G/T (any case), optionally followed by
 * "B" or "iB" ("4MiB"). */
static int cfg_parse_size(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long n;
	unsigned shift = 0;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift != 0 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end != '\0' || (shift != 0 && n > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

static int cfg_parse_count(const char *v, uint64_t max, uint32_t *out)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > max)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

static int cfg_parse_level(const char *v, enum pecfs_log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(v, names[i]) == 0) {
			*out = (enum pecfs_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool cfg_chunk_size_ok(uint64_t n)
{
	return n >= CFG_MIN_CHUNK && n <= CFG_MAX_CHUNK && (n & (n - 1)) == 0;
}

static bool *cfg_bool_field(struct pecfs_config *cfg, const char *name)
{
	if (strcmp(name, "foreground") == 0)
		return &cfg->foreground;
	if (strcmp(name, "allow-other") == 0)
		return &cfg->allow_other;
	if (strcmp(name, "fuse-debug") == 0)
		return &cfg->fuse_debug;
	if (strcmp(name, "syslog") == 0)
		return &cfg->syslog;
	if (strcmp(name, "direct-io-mmap") == 0)
		return &cfg->direct_io_mmap;
	if (strcmp(name, "sealed-direct-io") == 0)
		return &cfg->sealed_direct_io;
	if (strcmp(name, "seal-on-tracker") == 0)
		return &cfg->seal_on_tracker;
	if (strcmp(name, "seal-on-rename") == 0)
		return &cfg->seal_on_rename;
	if (strcmp(name, "seal-on-next-version") == 0)
		return &cfg->seal_on_next_version;
	return NULL;
}

static uint32_t *cfg_count_field(struct pecfs_config *cfg, const char *name, uint64_t *max)
{
	if (strcmp(name, "write-buffers") == 0) {
		*max = 65536;
		return &cfg->write_buffers;
	}
	if (strcmp(name, "hash-threads") == 0) {
		*max = 256;
		return &cfg->hash_threads;
	}
	if (strcmp(name, "fuse-threads") == 0) {
		*max = 1024;
		return &cfg->fuse_threads;
	}
	if (strcmp(name, "upload-threads") == 0) {
		*max = 64;
		return &cfg->upload_threads;
	}
	if (strcmp(name, "s3-nodes") == 0) {
		*max = 4096;
		return &cfg->s3_nodes;
	}
	if (strcmp(name, "s3-prefetch") == 0) {  /* the one count where 0 means off */
		*max = 64;
		return &cfg->s3_prefetch;
	}
	if (strcmp(name, "s3-k-persist") == 0) {
		*max = 65536;
		return &cfg->s3_k_persist;
	}
	return NULL;
}

/* The S3 settings that are strings; values are checked where they are used (tier_open), except
 * those with a fixed set of words. */
static int cfg_set_text(struct pecfs_config *cfg, const char *name, const char *value, char *err, size_t errsz)
{
	struct { const char *name; char *field; size_t size; } f[] = {
		{ "s3", cfg->s3, sizeof(cfg->s3) },
		{ "s3-endpoint", cfg->s3_endpoint, sizeof(cfg->s3_endpoint) },
		{ "s3-region", cfg->s3_region, sizeof(cfg->s3_region) },
		{ "s3-addressing", cfg->s3_addressing, sizeof(cfg->s3_addressing) },
		{ "s3-ca-file", cfg->s3_ca_file, sizeof(cfg->s3_ca_file) },
		{ "s3-credentials-file", cfg->s3_credentials_file, sizeof(cfg->s3_credentials_file) },
		{ "node-id", cfg->node_id, sizeof(cfg->node_id) },
		{ "s3-job", cfg->s3_job, sizeof(cfg->s3_job) },
		{ "from", cfg->from, sizeof(cfg->from) },
		{ "metrics-listen", cfg->metrics_listen, sizeof(cfg->metrics_listen) },
		{ "s3-persist", cfg->s3_persist, sizeof(cfg->s3_persist) },
	};

	if (strcmp(name, "s3-addressing") == 0 && value[0] && strcmp(value, "path") != 0 &&
	    strcmp(value, "virtual") != 0 && strcmp(value, "auto") != 0)
		return cfg_fail(err, errsz, "s3-addressing: '%s' is not path, virtual or auto", value);
	if (strcmp(name, "s3-persist") == 0 && value[0] && strcmp(value, "full") != 0 && strcmp(value, "pec") != 0)
		return cfg_fail(err, errsz, "s3-persist: '%s' is not full or pec", value);
	if (strcmp(name, "s3-job") == 0 && value[0] && !tier_job_ok(value))
		return cfg_fail(err, errsz, "s3-job: '%s' is not a job id (1-%d letters, digits or ._-:@+=)", value,
				TIER_JOB_MAX);
	if ((strcmp(name, "s3") == 0 || strcmp(name, "from") == 0) && value[0] && strncmp(value, "s3://", 5) != 0)
		return cfg_fail(err, errsz, "%s: '%s' is not s3://BUCKET/PREFIX", name, value);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (strcmp(name, f[i].name) != 0)
			continue;
		if (strlen(value) >= f[i].size)
			return cfg_fail(err, errsz, "%s: value longer than %zu bytes", name, f[i].size - 1);
		memcpy(f[i].field, value, strlen(value) + 1);
		return 0;
	}
	return cfg_fail(err, errsz, "%s: unsupported kind of setting", name);
}

int pecfs_config_set(struct pecfs_config *cfg, const char *name, const char *value, char *err, size_t errsz)
{
	const struct pecfs_config_key *key = pecfs_config_find(name);
	uint64_t size, max = 0;
	uint32_t *count;
	char *end;
	double secs;

	if (key == NULL)
		return cfg_fail(err, errsz, "unknown setting '%s'", name);
	/* A text setting may be set to "" (`s3 =`): the feature stays off, as by default. */
	if (value == NULL || (value[0] == '\0' && key->kind != PECFS_CONFIG_TEXT))
		return cfg_fail(err, errsz, "%s: missing value", name);

	switch (key->kind) {
	case PECFS_CONFIG_BOOL:
		if (cfg_parse_bool(value, cfg_bool_field(cfg, name)) < 0)
			return cfg_fail(err, errsz, "%s: '%s' is not yes or no", name, value);
		return 0;
	case PECFS_CONFIG_LEVEL:
		if (cfg_parse_level(value, &cfg->log_level) < 0)
			return cfg_fail(err, errsz, "%s: '%s' is not error, warn, info or debug", name, value);
		return 0;
	case PECFS_CONFIG_COUNT:
		count = cfg_count_field(cfg, name, &max);
		assert(count != NULL);
		if (strcmp(name, "s3-prefetch") == 0 && strcmp(value, "0") == 0) {
			*count = 0;
			return 0;
		}
		if (cfg_parse_count(value, max, count) < 0)
			return cfg_fail(err, errsz, "%s: '%s' is not a whole number from %d to %llu", name, value,
					strcmp(name, "s3-prefetch") == 0 ? 0 : 1, (unsigned long long)max);
		return 0;
	case PECFS_CONFIG_SECONDS:
		errno = 0;
		secs = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' || !isfinite(secs) || secs < 0 || secs > 86400)
			return cfg_fail(err, errsz, "%s: '%s' is not a number of seconds from 0 to 86400", name,
					value);
		cfg->attr_timeout = secs;
		return 0;
	case PECFS_CONFIG_SIZE:
		if (cfg_parse_size(value, &size) < 0)
			return cfg_fail(err, errsz, "%s: '%s' is not a size (a number with an optional K, M, G or T suffix)",
					name, value);
		if (strcmp(name, "chunk-size") == 0) {
			if (!cfg_chunk_size_ok(size))
				return cfg_fail(err, errsz, "chunk-size: '%s' is not a power of two from 64K to 64M",
						value);
			cfg->chunk_size = (uint32_t)size;
		} else if (strcmp(name, "upload-bandwidth") == 0) {
			cfg->upload_bandwidth = size;
		} else if (strcmp(name, "s3-pack-size") == 0) {
			if (size > PECFS_PACK_SIZE_MAX)
				return cfg_fail(err, errsz, "s3-pack-size: '%s' is more than 256M", value);
			cfg->s3_pack_size = size;
		} else if (strcmp(name, "cache-size") == 0) {
			cfg->cache_size = size;
		} else if (strcmp(name, "gc-garbage") == 0) {
			cfg->gc_garbage_bytes = size;
		} else if (strcmp(name, "read-ahead") == 0) {
			cfg->read_ahead_bytes = size;
		} else {
			cfg->reserve_free_bytes = size;
		}
		return 0;
	case PECFS_CONFIG_TEXT:
		if (strcmp(name, "log-format") == 0) {
			if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
				return cfg_fail(err, errsz, "log-format: '%s' is not text or json", value);
			cfg->log_json = strcmp(value, "json") == 0;
			return 0;
		}
		return cfg_set_text(cfg, name, value, err, errsz);
	case PECFS_CONFIG_RATIO:
		errno = 0;
		secs = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' || !isfinite(secs) || secs < 0 || secs > 1)
			return cfg_fail(err, errsz, "%s: '%s' is not a ratio from 0 to 1", name, value);
		cfg->cache_min_free = secs;
		return 0;
	}
	return cfg_fail(err, errsz, "%s: unsupported kind of setting", name);
}

/* Trims leading and trailing white space in place. */
static char *cfg_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Applies one line; 1 when it was blank or a comment, 0 when it set something, -EINVAL. */
static int cfg_apply_line(struct pecfs_config *cfg, char *line, char *err, size_t errsz)
{
	char *hash = strchr(line, '#'), *eq, *key, *value;

	if (hash != NULL)
		*hash = '\0';   /* no value contains '#', so a comment may also end a line */
	line = cfg_trim(line);
	if (*line == '\0')
		return 1;
	eq = strchr(line, '=');
	if (eq == NULL)
		return cfg_fail(err, errsz, "expected 'key = value', got '%.64s'", line);
	*eq = '\0';
	key = cfg_trim(line);
	value = cfg_trim(eq + 1);
	if (*key == '\0')
		return cfg_fail(err, errsz, "missing key before '='");
	return pecfs_config_set(cfg, key, value, err, errsz);
}

int pecfs_config_load(struct pecfs_config *cfg, const char *path, char *err, size_t errsz)
{
	char line[CFG_MAX_LINE], reason[512];
	unsigned lineno = 0;
	size_t len;
	int rc = 0;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL) {
		rc = -errno;
		cfg_fail(err, errsz, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			rc = cfg_fail(err, errsz, "%s:%u: line longer than %d bytes", path, lineno, CFG_MAX_LINE - 2);
			goto out;
		}
		rc = cfg_apply_line(cfg, line, reason, sizeof(reason));
		if (rc < 0) {
			cfg_fail(err, errsz, "%s:%u: %s", path, lineno, reason);
			goto out;
		}
		rc = 0;
	}
	if (ferror(f))
		rc = cfg_fail(err, errsz, "cannot read %s: %s", path, strerror(EIO));
	else
		snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", path);
out:
	fclose(f);
	return rc;
}

int pecfs_config_validate(const struct pecfs_config *cfg, char *err, size_t errsz)
{
	long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
	uint64_t pool = (uint64_t)cfg->write_buffers * cfg->chunk_size;

	if (!cfg_chunk_size_ok(cfg->chunk_size))
		return cfg_fail(err, errsz, "chunk-size: %u is not a power of two from 64K to 64M", cfg->chunk_size);
	if (cfg->write_buffers < 1 || cfg->hash_threads < 1 || cfg->fuse_threads < 1)
		return cfg_fail(err, errsz, "write-buffers, hash-threads and fuse-threads must be at least 1");
	if (cfg->read_ahead_bytes > (1ull << 30))
		return cfg_fail(err, errsz, "read-ahead must be at most 1G");
	if (cfg->log_level > PECFS_LOG_DEBUG)
		return cfg_fail(err, errsz, "log-level: unknown level %d", (int)cfg->log_level);
	if (!isfinite(cfg->attr_timeout) || cfg->attr_timeout < 0)
		return cfg_fail(err, errsz, "attr-timeout: must be a number of seconds >= 0");
	if (cfg->metrics_listen[0] && metrics_http_validate(cfg->metrics_listen) < 0)
		return cfg_fail(err, errsz, "metrics-listen: '%s' is not HOST:PORT (127.0.0.1:9567, [::1]:9567)",
				cfg->metrics_listen);
	/* The write buffers are allocated and touched up front: refuse a pool that cannot fit. */
	if (pages > 0 && page_size > 0 && pool > (uint64_t)pages * (uint64_t)page_size / 2)
		return cfg_fail(err, errsz,
				"write-buffers x chunk-size is %llu MiB, more than half of this machine's memory",
				(unsigned long long)(pool >> 20));
	return 0;
}
