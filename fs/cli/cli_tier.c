/* cli_tier.c - the S3 tier seen from the command line: starting it with the daemon's store from
 * the settings, its log lines into the daemon's log, and `pecfs seal --wait-upload`, which polls
 * RUN/.pec/versions (so it needs nothing but read access to the mount).
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tier_persist.h"
#include "tier.h"

static void cli_tier_log(void *ctx, enum s3_log_level level, const char *msg)
{
	(void)ctx;
	pecfs_log((enum pecfs_log_level)level, "%s", msg);
}

static const char *nz(const char *s)
{
	return s[0] ? s : NULL;
}

void cli_tier_options(const struct pecfs_config *cfg, struct tier_options *o)
{
	memset(o, 0, sizeof(*o));
	o->uri = cfg->s3[0] ? cfg->s3 : cfg->from;
	o->endpoint = nz(cfg->s3_endpoint);
	o->region = nz(cfg->s3_region);
	o->addressing = strcmp(cfg->s3_addressing, "path") == 0      ? S3_ADDRESSING_PATH :
			strcmp(cfg->s3_addressing, "virtual") == 0 ? S3_ADDRESSING_VIRTUAL :
								     S3_ADDRESSING_AUTO;
	o->ca_file = nz(cfg->s3_ca_file);
	o->credentials_file = nz(cfg->s3_credentials_file);
}

int cli_s3_opts(const struct cli_opt *own, size_t nown, struct cli_opt **out)
{
	size_t n = 0, cap = nown + 1;

	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name; k++)
		cap += strncmp(k->name, "s3", 2) == 0;
	struct cli_opt *v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, own, nown * sizeof(*v));
	n = nown;
	v[n++] = (struct cli_opt){ "config", 'c', CLI_ARG, CLI_S3_CONFIG_ID };
	int i = 0;
	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name; k++, i++)
		if (strncmp(k->name, "s3", 2) == 0)
			v[n++] = (struct cli_opt){ k->name, 0, CLI_ARG, CLI_S3_KEY_ID + i };
	*out = v;
	return (int)n;
}

int cli_s3_apply(struct pecfs_config *cfg, const struct cli_opt *o, const char *arg)
{
	char err[512];

	if (o->id == CLI_S3_CONFIG_ID) {
		if (pecfs_config_load(cfg, arg, err, sizeof(err)) < 0)
			return cli_error(CLI_USAGE, "%s", err);
		return 1;
	}
	if (o->id < CLI_S3_KEY_ID)
		return 0;
	if (pecfs_config_set(cfg, o->name, arg, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s", err);
	return 1;
}

struct s3_parse {
	struct pecfs_config *cfg;
	int (*handle)(void *ctx, const struct cli_opt *o, const char *arg);
	void *ctx;
};

static int s3_parse_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct s3_parse *p = ctx;
	int r = cli_s3_apply(p->cfg, o, arg);

	if (r)
		return r == 1 ? 0 : r;
	return p->handle(p->ctx, o, arg);
}

static int s3_config_seen(void *ctx, const struct cli_opt *o, const char *arg)
{
	(void)arg;
	if (o->id == CLI_S3_CONFIG_ID)
		*(bool *)ctx = true;
	return 0;
}

int cli_parse_s3_args(const char *cmd, int argc, char **argv, const struct cli_opt *own, size_t nown,
		      void (*help)(FILE *), int (*handle)(void *ctx, const struct cli_opt *o, const char *arg),
		      void *ctx, struct pecfs_config *cfg, struct cli_args *pos)
{
	struct s3_parse p = { cfg, handle, ctx };
	struct cli_opt *opts;
	bool given = false;
	char err[PATH_MAX + 256];
	int n = cli_s3_opts(own, nown, &opts);

	if (n < 0)
		return cli_error(CLI_FAILED, "out of memory");
	/* Like mount: the system's configuration file unless -c names another (a first pass finds out). */
	int rc = cli_parse_args(cmd, argc, argv, opts, (size_t)n, help, s3_config_seen, &given, pos);
	cli_args_free(pos);
	if (rc == 0 && !given && access(CLI_SYSTEM_CONFIG, F_OK) == 0 &&
	    pecfs_config_load(cfg, CLI_SYSTEM_CONFIG, err, sizeof(err)) < 0)
		rc = cli_error(CLI_USAGE, "%s", err);
	if (rc == 0)
		rc = cli_parse_args(cmd, argc, argv, opts, (size_t)n, help, s3_parse_opt, &p, pos);
	free(opts);
	return rc;
}

static void import_progress(void *ctx, uint64_t done, uint64_t total)
{
	cli_progress_show(stderr, ctx, done, total);
}

int cli_tier_import(const struct pecfs_config *cfg)
{
	struct store_options so = { .chunk_size = cfg->chunk_size, .reserve_free_bytes = cfg->reserve_free_bytes };
	struct tier_options o;
	struct store *st;
	uint64_t n = 0;
	char err[512] = "";
	int rc;

	if (!cfg->from[0])
		return 0;
	cli_tier_options(cfg, &o);
	o.uri = cfg->from;
	if (store_open(cfg->data_dir, &so, &st, NULL) < 0)
		return 0;  /* the mount's own open reports why */
	struct cli_progress bar;
	bool tty = isatty(STDERR_FILENO);
	if (tty) {
		cli_progress_begin_items(&bar, "importing", "runs");
		o.import_progress = import_progress;
		o.import_progress_ctx = &bar;
	}
	rc = tier_import(st, &o, cfg->foreground && !tty ? stderr : NULL, &n, err, sizeof(err));
	if (tty)
		fputc('\n', stderr);
	store_close(st);
	if (rc < 0)
		return cli_error(CLI_FAILED, "mount --from %s: %s", cfg->from, err[0] ? err : strerror(-rc));
	return 0;
}

int cli_tier_start(const struct pecfs_config *cfg, struct store *st, struct tier **out)
{
	struct tier_persist_hook persist;
	struct tier_options o;
	char err[512] = "";
	int rc;

	*out = NULL;
	if (!cfg->s3[0] && !cfg->from[0])
		return 0;
	cli_tier_options(cfg, &o);
	o.upload_threads = cfg->upload_threads;
	o.nodes = cfg->s3_nodes;
	o.node_id = nz(cfg->node_id);
	o.upload_bandwidth = cfg->upload_bandwidth;
	o.pack_size = cfg->s3_pack_size;
	o.cache_size = cfg->cache_size;
	o.cache_min_free = cfg->cache_min_free;
	o.prefetch = cfg->s3_prefetch;
	o.log = cli_tier_log;
	rc = tier_persist_hook_new(cfg, &persist);
	if (rc < 0)
		return cli_error(CLI_FAILED, "S3 tier %s: %s", o.uri, strerror(-rc));
	o.persist = &persist;  /* once open, the tier owns persist.ctx */
	rc = tier_open(st, &o, out, err, sizeof(err));
	if (rc < 0) {
		persist.free(persist.ctx);
		return cli_error(CLI_USAGE, "S3 tier %s: %s", o.uri, err[0] ? err : strerror(-rc));
	}
	pecfs_log_info("S3 tier: uploading sealed versions to %s", o.uri);
	return 0;
}

/* The entry of version name in RUN/.pec/versions: 1 uploaded, 0 not yet, -errno. error gets the
 * last upload failure ("" when none). */
static int seal_upload_state(const char *run, const char *name, uint64_t *done, uint64_t *total, char *error,
			     size_t errsz)
{
	char path[PATH_MAX + 32];
	json_error_t jerr;
	json_t *root, *vs, *v;
	size_t i;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "%s/.pec/versions", run);
	root = json_load_file(path, 0, &jerr);
	if (!root)
		return -EIO;
	vs = json_object_get(root, "versions");
	json_array_foreach(vs, i, v) {
		if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) != 0)
			continue;
		*done = (uint64_t)json_integer_value(json_object_get(v, "uploaded_bytes"));
		*total = (uint64_t)json_integer_value(json_object_get(v, "stored_bytes"));
		snprintf(error, errsz, "%s", json_string_value(json_object_get(v, "upload_error")) ?: "");
		rc = json_is_true(json_object_get(v, "uploaded")) ? 1 : 0;
		break;
	}
	json_decref(root);
	return rc;
}

static bool mount_has_tier(const char *mountpoint)
{
	char path[PATH_MAX + 32];
	json_t *root;
	bool yes;

	snprintf(path, sizeof(path), "%s/.pec/stats", mountpoint);
	root = json_load_file(path, 0, NULL);
	yes = root && json_is_object(json_object_get(root, "s3"));
	json_decref(root);
	return yes;
}

void cli_progress_begin(struct cli_progress *p, const char *label)
{
	p->label = label;
	p->unit = NULL;
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

void cli_progress_begin_items(struct cli_progress *p, const char *label, const char *unit)
{
	cli_progress_begin(p, label);
	p->unit = unit;
}

/* "[####      ]  40.0% " */
static void progress_head(FILE *out, const char *label, uint64_t done, uint64_t total)
{
	/* nothing to do is all done */
	double part = total ? (double)done / (double)total : 1.0;
	int width = 30, fill = (int)(part * width);

	if (fill > width)
		fill = width;
	fprintf(out, "\r%s [%.*s%*s] %5.1f%% ", label, fill, "##############################", width - fill, "",
		100.0 * part);
}

void cli_progress_show(FILE *out, const struct cli_progress *p, uint64_t done, uint64_t total)
{
	struct timespec now;
	char eta[32] = "";

	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = (double)(now.tv_sec - p->t0.tv_sec) + (double)(now.tv_nsec - p->t0.tv_nsec) / 1e9;
	double rate = secs > 0.5 ? (double)done / secs : 0;
	if (rate > 0 && total > done) {
		uint64_t left = (uint64_t)((double)(total - done) / rate + 0.5);
		snprintf(eta, sizeof(eta), " ETA %llu:%02llu:%02llu", (unsigned long long)(left / 3600),
			 (unsigned long long)(left / 60 % 60), (unsigned long long)(left % 60));
	}
	progress_head(out, p->label, done, total);
	/* the trailing spaces wipe a longer line of an earlier call */
	if (p->unit)
		fprintf(out, "%llu/%llu %s %.1f/s%s   ", (unsigned long long)done, (unsigned long long)total, p->unit,
			rate, eta);
	else
		fprintf(out, "%llu/%llu MiB %.1f MiB/s%s   ", (unsigned long long)(done >> 20),
			(unsigned long long)(total >> 20), rate / (1 << 20), eta);
	fflush(out);
}

void cli_progress_bar(FILE *out, const char *label, uint64_t done, uint64_t total)
{
	progress_head(out, label, done, total);
	fprintf(out, "%llu/%llu MiB", (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
	fflush(out);
}

int cli_seal_wait_upload(const char *version_path, const char *mountpoint, int64_t timeout_ns)
{
	char buf[PATH_MAX], run[PATH_MAX], name[PATH_MAX], error[400] = "", said[400] = "";
	bool tty = isatty(STDERR_FILENO);
	uint64_t done = 0, total = 0;
	struct timespec t0, now;
	struct cli_progress prog;
	int rc;

	if (!mount_has_tier(mountpoint))
		return CLI_OK;  /* local disk alone: sealed is as far as a version goes */
	snprintf(buf, sizeof(buf), "%s", version_path);
	snprintf(name, sizeof(name), "%s", basename(buf));
	snprintf(buf, sizeof(buf), "%s", version_path);
	snprintf(run, sizeof(run), "%s", dirname(buf));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cli_progress_begin(&prog, "uploading");
	for (;;) {
		rc = seal_upload_state(run, name, &done, &total, error, sizeof(error));
		if (rc < 0)
			return cli_error(CLI_FAILED, "%s: cannot read its upload state: %s", version_path, strerror(-rc));
		if (tty)
			cli_progress_show(stderr, &prog, rc == 1 ? total : done, total);
		if (rc == 1)
			break;
		if (error[0] && strcmp(error, said) != 0) {  /* each new failure once; the daemon retries it */
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "pecfs: %s: upload failed, retrying: %s\n", version_path, error);
			snprintf(said, sizeof(said), "%s", error);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout_ns >= 0 && (now.tv_sec - t0.tv_sec) * 1000000000ll + (now.tv_nsec - t0.tv_nsec) >= timeout_ns) {
			if (tty)
				fputc('\n', stderr);
			return cli_error(CLI_FAILED, "%s: sealed, but not uploaded within the timeout%s%s (the daemon goes "
					 "on trying)", version_path, error[0] ? "; last error: " : "", error);
		}
		struct timespec ts = { 0, 50000000 };  /* a small version commits in tens of milliseconds */
		nanosleep(&ts, NULL);
	}
	if (tty)
		fputc('\n', stderr);
	printf("uploaded %s\n", version_path);
	return CLI_OK;
}
