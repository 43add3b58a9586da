/* cli_gc_remote.c - `pecfs gc --remote`: bucket garbage collection (store/tier/tier_gc_sweep.c) from the
 * command line, with no mount and no data folder. Meant for a cron job or systemd timer on one node;
 * a second collection started meanwhile refuses (exit 1) rather than waits.
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tier.h"

#define GC_DEFAULT_GRACE_S (60 * 60)

void cli_help_gc_remote(FILE *out)
{
	fprintf(out,
		"usage: pecfs gc --remote [options]\n"
		"\n"
		"Collects the S3 tier's bucket under --s3 s3://BUCKET/PREFIX: retires committed versions beyond the\n"
		"newest --keep of each run that no node keeps locally, then deletes chunk objects that no node's\n"
		"chunk index and no remaining manifest references, and pack objects (several chunks in one) that\n"
		"no remaining manifest names and that hold no such chunk. Uploads that never got their COMMIT and\n"
		"that no node keeps go once their newest object is 4 grace periods old. Objects younger than\n"
		"--grace are never deleted, and mounted nodes pause uploads and evictions while a collection runs,\n"
		"so an upload in progress is never cut from under. One collection at a time per prefix (gc/lock in\n"
		"the bucket).\n"
		"\n"
		"options:\n"
		"  --s3 s3://BUCKET/PREFIX    the bucket and prefix (required)\n"
		"  --s3-endpoint URL          S3 server, http(s)://host[:port] (default: AWS)\n"
		"  --s3-region R, --s3-addressing path|virtual, --s3-ca-file F, --s3-credentials-file F\n"
		"  --keep N                   committed versions kept per run, newest first (default 0: all)\n"
		"  --grace DURATION           leave objects younger than this: 90s, 30m, 2h, 1d (default 1h)\n"
		"  --forget-node ID           drop the published state of a node that is gone for good\n"
		"  --dry-run                  print what would be deleted and delete nothing\n"
		"  --json                     print the result as one JSON object (what was retired in \"log\")\n"
		"  -c, --config FILE          read the s3* settings from a pecfs configuration file\n"
		"  -h, --help                 show this help\n"
		"\n"
		"exit status: 0 collected, 1 failed (another collection runs, server error), 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs gc --remote --s3 s3://ckpt/team --s3-endpoint http://10.0.0.5:7480 --keep 5 --grace 2h\n");
}

enum { GC_REMOTE = 1, GC_DRY_RUN, GC_KEEP, GC_GRACE, GC_FORGET, GC_JSON };

struct gc_remote_args {
	struct tier_gc_options *o;
	bool json;
};

static int gc_remote_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct gc_remote_args *ga = ctx;
	struct tier_gc_options *g = ga->o;
	uint64_t n;

	switch (o->id) {
	case GC_JSON:
		ga->json = true;
		return 0;
	case GC_DRY_RUN:
		g->dry_run = true;
		return 0;
	case GC_KEEP:
		if (cli_number("--keep", arg, 0, 1000000, &n) != 0)
			return CLI_USAGE;
		g->keep = (uint32_t)n;
		return 0;
	case GC_GRACE:
		return cli_duration("--grace", arg, 0, INT64_MAX, &g->grace_ns);
	case GC_FORGET:
		g->forget_node = arg;  /* argv's string: lives as long as the command */
		return 0;
	default:
		return 0;
	}
}

static int gc_remote_parse(int argc, char **argv, struct pecfs_config *cfg, struct gc_remote_args *ga)
{
	static const struct cli_opt own[] = {
		{ "remote", 0, CLI_NO_ARG, GC_REMOTE }, { "dry-run", 0, CLI_NO_ARG, GC_DRY_RUN },
		{ "keep", 0, CLI_ARG, GC_KEEP },        { "grace", 0, CLI_ARG, GC_GRACE },
		{ "forget-node", 0, CLI_ARG, GC_FORGET }, { "json", 0, CLI_NO_ARG, GC_JSON },
	};
	struct cli_args pos;
	int rc = cli_parse_s3_args("gc", argc, argv, own, 6, cli_help_gc_remote, gc_remote_opt, ga, cfg, &pos);

	if (rc != 0)
		return rc;
	if (pos.argc > 0)
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs gc --remote [options])", pos.argv[0]);
	cli_args_free(&pos);
	if (rc != 0)
		return rc;
	if (!cfg->s3[0])
		return cli_error(CLI_USAGE, "missing --s3 s3://BUCKET/PREFIX");
	return 0;
}

/* A bar per phase on a terminal: manifests read, then chunk objects deleted. */
struct gc_bar {
	struct cli_progress p;
	const char *what;
	bool shown;
};

static void gc_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	struct gc_bar *b = ctx;

	if (!b->what || strcmp(b->what, what) != 0) {
		if (b->shown)
			fputc('\n', stderr);
		cli_progress_begin_items(&b->p, what, strcmp(what, "reading") == 0 ? "versions" : "chunks");
		b->what = what;
	}
	cli_progress_show(stderr, &b->p, done, total);
	b->shown = true;
}

int cli_gc_remote(int argc, char **argv)
{
	struct tier_gc_options o = { .grace_ns = (int64_t)GC_DEFAULT_GRACE_S * 1000000000 };
	struct pecfs_config cfg;
	struct tier_options to;
	struct tier_gc_report r;
	struct gc_remote_args ga = { &o, false };
	char err[512] = "", *log = NULL;
	size_t log_len = 0;
	FILE *progress = stdout;
	int rc;

	pecfs_config_defaults(&cfg);
	rc = gc_remote_parse(argc, argv, &cfg, &ga);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	cli_tier_options(&cfg, &to);
	to.node_id = cfg.node_id[0] ? cfg.node_id : NULL;
	struct gc_bar bar = { { 0 }, NULL, false };
	if (isatty(STDERR_FILENO) && !ga.json) {
		o.progress = gc_progress;
		o.progress_ctx = &bar;
	}
	/* --json: the lines of what was retired go into the JSON object */
	if (ga.json && !(progress = open_memstream(&log, &log_len)))
		return cli_error(CLI_FAILED, "out of memory");
	rc = tier_bucket_gc(&to, &o, progress, &r, err, sizeof(err));
	if (bar.shown)
		fputc('\n', stderr);
	if (ga.json)
		fclose(progress);
	if (rc < 0)
		free(log);
	if (rc == -EINVAL)
		return cli_error(CLI_USAGE, "%s", err[0] ? err : strerror(-rc));
	if (rc < 0)
		return cli_error(CLI_FAILED, "gc --remote %s: %s", cfg.s3, err[0] ? err : strerror(-rc));
	if (ga.json) {
		json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
				      "s:I, s:I, s:I, s:I, s:I, s:o}", "uri",
				      cfg.s3, "dry_run", o.dry_run, "epoch", (json_int_t)r.epoch, "nodes",
				      (json_int_t)r.nodes, "versions", (json_int_t)r.versions, "uncommitted",
				      (json_int_t)r.uncommitted, "versions_retired", (json_int_t)r.versions_retired,
				      "uploads_abandoned", (json_int_t)r.uploads_abandoned, "objects_deleted",
				      (json_int_t)r.objects_deleted, "chunks", (json_int_t)r.chunks, "chunks_live",
				      (json_int_t)r.chunks_live, "chunks_recent", (json_int_t)r.chunks_recent,
				      "chunks_deleted", (json_int_t)r.chunks_deleted, "bytes_deleted",
				      (json_int_t)r.bytes_deleted, "packs", (json_int_t)r.packs, "packs_live",
				      (json_int_t)r.packs_live, "packs_recent", (json_int_t)r.packs_recent,
				      "packs_deleted", (json_int_t)r.packs_deleted, "pack_bytes_deleted",
				      (json_int_t)r.pack_bytes_deleted, "node_segments_deleted",
				      (json_int_t)r.segments_deleted, "log", cli_json_lines(log, log_len));
		free(log);
		return cli_json_print(j);
	}
	printf("%s%s: epoch %llu, %llu node%s, %llu versions (%llu uncommitted), %llu retired, %llu abandoned uploads "
	       "(%llu objects); "
	       "chunks: %llu seen, %llu referenced, %llu within the grace period, %llu deleted (%.1f MiB); "
	       "packs: %llu seen, %llu referenced, %llu within the grace period, %llu deleted (%.1f MiB); "
	       "node state segments: %llu deleted\n",
	       o.dry_run ? "dry run, nothing deleted: " : "", cfg.s3, (unsigned long long)r.epoch,
	       (unsigned long long)r.nodes, r.nodes == 1 ? "" : "s", (unsigned long long)r.versions,
	       (unsigned long long)r.uncommitted, (unsigned long long)r.versions_retired,
	       (unsigned long long)r.uploads_abandoned,
	       (unsigned long long)r.objects_deleted, (unsigned long long)r.chunks, (unsigned long long)r.chunks_live,
	       (unsigned long long)r.chunks_recent, (unsigned long long)r.chunks_deleted,
	       (double)r.bytes_deleted / (1 << 20), (unsigned long long)r.packs, (unsigned long long)r.packs_live,
	       (unsigned long long)r.packs_recent, (unsigned long long)r.packs_deleted,
	       (double)r.pack_bytes_deleted / (1 << 20), (unsigned long long)r.segments_deleted);
	return CLI_OK;
}
