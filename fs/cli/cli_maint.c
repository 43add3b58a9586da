/* cli_maint.c - `pecfs seal`, `pecfs fsck` (and `fsck --remote`, the S3 tier's bucket), `pecfs gc`.
 *
 * seal is a setxattr on the version directory, answered by the mounted filesystem. fsck and gc open the
 * data folder themselves when it is not mounted, and otherwise ask its daemon over the control socket
 * (only one process may have a data folder open); either way the same code (ctl_execute) runs.
 */
#include "cli.h"

#include <jansson.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "store.h"
#include "tier.h"

#define SEAL_XATTR "user.pec.seal"
#define MAINT_ATTEMPTS 3
#define MAINT_GRACE_MS 10000

void cli_help_seal(FILE *out)
{
	fprintf(out,
		"usage: pecfs seal [--wait-upload [--timeout DURATION]] PATH...\n"
		"\n"
		"Seals each version directory PATH (a directory directly inside a run, e.g. MNT/run1/step-100):\n"
		"writes out its files, makes it durable and read-only, and eligible as the run's latest.\n"
		"Returns once the version is durable on local disk. Sealing a sealed version does nothing.\n"
		"\n"
		"options:\n"
		"  --wait-upload   also wait until the version is committed in the S3 tier (a progress bar\n"
		"                  on a terminal, each upload failure as it happens); on a mount without --s3\n"
		"                  it returns right after the seal\n"
		"  --timeout D     with --wait-upload: give up after D (90s, 30m, 2h), exit 1 with the\n"
		"                  version's last upload error; the daemon keeps trying\n"
		"  -h, --help      show this help\n"
		"\n"
		"exit status: 0 sealed (and uploaded, with --wait-upload), 1 a PATH could not be sealed (or\n"
		"not uploaded in time), 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs seal /mnt/ckpt/llama-moe/global_step1200\n");
}

static const char *seal_reason(int err)
{
	switch (err) {
	case EINVAL:
		return "not a version directory (a version is a directory directly inside a run)";
	case EROFS:
		return "read-only: this version can no longer be sealed (damaged, or the mount is read-only)";
	case EPERM:
	case EACCES:
		return "permission denied (sealing needs write permission on the version directory)";
	case ENOTSUP:
		return "this mount does not support sealing (no extended attributes)";
	case ENOSPC:
		return "the data disk is full, or was when a file of the version was written (write that file "
		       "again); the version stays open (free space and seal again)";
	case EIO:
		return "an I/O error stopped the seal or lost bytes of a file of the version (see the daemon's "
		       "log); the version stays open";
	default:
		return strerror(err);
	}
}

enum { SEAL_WAIT = 1, SEAL_TIMEOUT };

struct seal_args {
	bool wait_upload;
	int64_t timeout_ns;
};

static int seal_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct seal_args *sa = ctx;

	if (o->id == SEAL_WAIT) {
		sa->wait_upload = true;
		return 0;
	}
	return cli_duration("--timeout", arg, 0, INT64_MAX, &sa->timeout_ns);
}

int cli_seal(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "wait-upload", 0, CLI_NO_ARG, SEAL_WAIT },
		{ "timeout", 0, CLI_ARG, SEAL_TIMEOUT },
	};
	struct seal_args sa = { false, -1 };
	struct cli_args pos;
	struct cli_mount m;
	int rc = cli_parse_args("seal", argc, argv, opts, 2, cli_help_seal, seal_opt, &sa, &pos);

	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (sa.timeout_ns >= 0 && !sa.wait_upload)
		rc = cli_error(CLI_USAGE, "--timeout goes with --wait-upload");
	else if (pos.argc == 0)
		rc = cli_error(CLI_USAGE, "missing PATH (usage: pecfs seal [--wait-upload [--timeout D]] PATH...)");
	if (rc != 0) {
		cli_args_free(&pos);
		return rc;
	}
	for (int i = 0; i < pos.argc; i++) {
		const char *path = pos.argv[i];

		if (cli_check_version_path(path, seal_reason(EINVAL), &m) != CLI_OK) {
			rc = CLI_FAILED;
			continue;
		}
		if (setxattr(path, SEAL_XATTR, "1", 1, 0) < 0) {
			rc = cli_error(CLI_FAILED, "%s: %s", path, seal_reason(errno));
			continue;
		}
		printf("sealed %s\n", path);
		if (sa.wait_upload && cli_seal_wait_upload(path, m.mountpoint, sa.timeout_ns) != CLI_OK)
			rc = CLI_FAILED;
	}
	cli_args_free(&pos);
	return rc;
}

static void cli_help_maint(FILE *out, const char *cmd, const char *what, const char *status,
			   const char *example)
{
	fprintf(out,
		"usage: pecfs %s [--json] DATA_DIR\n"
		"\n"
		"%s\n"
		"Works on a mounted data folder too: the daemon serving it runs the %s and reports here.\n"
		"\n"
		"options:\n"
		"  --json       print the result as one JSON object\n"
		"  -h, --help   show this help\n"
		"\n"
		"exit status: %s\n"
		"\n"
		"example:\n"
		"  %s\n",
		cmd, what, cmd, status, example);
}

void cli_help_fsck(FILE *out)
{
	fprintf(out,
		"usage: pecfs fsck [--json] DATA_DIR\n"
		"       pecfs fsck --remote [options] [DATA_DIR]\n"
		"\n"
		"Checks a data folder: every chunk's SHA-256 and checksums, every file's references to\n"
		"chunks, the directory tree. Prints one line per problem (a corrupt or missing chunk is\n"
		"named with every file that uses it) and a summary. Changes nothing.\n"
		"Works on a mounted data folder too: the daemon serving it runs the fsck and reports here.\n"
		"\n"
		"With --remote it checks the S3 tier's bucket under s3://BUCKET/PREFIX, with no mount (and DATA_DIR\n"
		"first, when given): every COMMIT and manifest parses, every COMMIT has its manifests, and every\n"
		"chunk object a manifest names (on its own or in a pack at the offset given) exists and has a sound\n"
		"header, length and SHA-256, and every pack's member table parses (this downloads every referenced\n"
		"chunk; --quick checks existence and size only). A bad object is printed with its key and the files\n"
		"(run/version/path) that use it. Chunk objects and packs no manifest names are counted, not errors\n"
		"(`pecfs gc --remote` removes them). Changes nothing.\n"
		"\n"
		"options:\n"
		"  --json                     print each check's result as one JSON object per line (local first),\n"
		"                             its findings in \"report\"\n"
		"options with --remote:\n"
		"  --s3 s3://BUCKET/PREFIX    the bucket and prefix (required here or in the configuration file)\n"
		"  --s3-endpoint URL          S3 server, http(s)://host[:port] (default: AWS)\n"
		"  --s3-region R, --s3-addressing path|virtual, --s3-ca-file F, --s3-credentials-file F\n"
		"  --quick                    chunk objects: listed with the right size is enough, no download\n"
		"  --jobs N                   requests at once, 1 to 64 (default: upload-threads, 8)\n"
		"  -c, --config FILE          read the s3* settings from a pecfs configuration file\n"
		"  -h, --help                 show this help\n"
		"\n"
		"exit status: 0 no problems; 1 problems found, or the local check could not run; 2 bad usage, not a\n"
		"data folder, or the remote check could not run or finish (server unreachable, credentials\n"
		"refused, objects unreadable, a bucket garbage collection running).\n"
		"\n"
		"examples:\n"
		"  pecfs fsck /var/lib/pecfs\n"
		"  pecfs fsck --remote -c /etc/pecfs/pecfs.conf\n"
		"  pecfs fsck --remote --s3 s3://ckpt/team --s3-endpoint http://10.0.0.5:7480 --jobs 32\n");
}

void cli_help_gc(FILE *out)
{
	cli_help_maint(out, "gc",
		       "Reclaims disk space: removes the chunks no file references any more (after files were\n"
		       "deleted or overwritten) and stray chunk files left by a crash. The file system stays\n"
		       "mounted and writable meanwhile. `pecfs gc --remote --help`: the S3 tier's bucket.",
		       "0 done, 1 failed, 2 bad usage or not a data folder.",
		       "pecfs gc /var/lib/pecfs");
}

/* A local fsck's bar on a terminal: chunk bytes verified, here or in the daemon. */
struct maint_bar {
	struct cli_progress p;
	bool shown;
};

static void maint_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct maint_bar *b = ctx;

	cli_progress_show(stderr, &b->p, done, total);
	b->shown = true;
}

/* Runs cmd on a store this process opened, and closes it. */
static int cli_maint_here(struct store *st, const char *cmd, const char *data_dir,
			  const struct ctl_progress *progress)
{
	int rc = ctl_execute(st, cmd, stdout, progress);

	fflush(stdout);
	store_close(st);
	if (rc < 0)
		return cli_error(CLI_FAILED, "%s of %s failed: %s", cmd, data_dir, strerror(-rc));
	return rc;
}

/* Runs cmd for data folder data_dir (arg as the user gave it): in its daemon, or here. */
static int cli_maint_run(const char *cmd, const char *arg, const char *data_dir, const struct store_options *o,
			 const struct ctl_progress *prog)
{
	struct store_options opt = *o;
	struct store *st;
	pid_t pid = 0;
	int rc = 0;

	/* The folder's owner may be on its way out (unmounting, or killed a moment ago: its socket can
	 * still accept a connection until its last thread is gone), so a holder that does not answer
	 * gets a grace period, then the folder is opened here. */
	for (int attempt = 0; attempt < MAINT_ATTEMPTS; attempt++) {
		if (!cli_store_in_use(data_dir)) {
			rc = store_open(data_dir, &opt, &st, &pid);
			if (rc == 0)
				return cli_maint_here(st, cmd, arg, prog);
			if (rc != -EBUSY)
				return cli_error(CLI_FAILED, "cannot open data folder %s: %s", arg, strerror(-rc));
		}
		rc = ctl_request(data_dir, cmd, stdout, prog);
		if (rc >= 0)
			return rc;
		if (!cli_wait_store_free(data_dir, MAINT_GRACE_MS, NULL))
			break;
	}
	pid = pid > 0 ? pid : cli_lock_pid(data_dir);
	return cli_error(CLI_FAILED, "%s is in use by pid %ld, which does not answer on %s/%s: %s", arg,
			 (long)pid, data_dir, CTL_SOCKET_NAME, strerror(-rc));
}

/* fsck or gc of arg (DATA_DIR as given): in the daemon when the data folder is mounted, else here. */
static int cli_maint(const char *cmd, const char *arg)
{
	struct store_options opt = { .chunk_size = STORE_DEFAULT_CHUNK_SIZE };
	char data_dir[PATH_MAX], meta[PATH_MAX + 8], with_progress[32];
	struct maint_bar bar = { .shown = false };
	struct ctl_progress progress = { maint_progress, &bar };
	const struct ctl_progress *prog = NULL;
	struct stat sb;
	int rc;

	if (realpath(arg, data_dir) == NULL)
		return cli_error(CLI_USAGE, "data folder %s: %s", arg, strerror(errno));
	/* Opening would create a data folder: an fsck must never do that. */
	snprintf(meta, sizeof(meta), "%s/meta", data_dir);
	if (stat(meta, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return cli_error(CLI_USAGE, "%s is not a pecfs data folder (it has no meta/ database)", arg);

	/* On a terminal, how far it got, mounted or not: an fsck reads every chunk (bytes verified),
	 * a gc may remove many (chunks removed). */
	if (isatty(STDERR_FILENO)) {
		snprintf(with_progress, sizeof(with_progress), "%s progress", cmd);
		cmd = with_progress;
		if (strncmp(cmd, "fsck", 4) == 0)
			cli_progress_begin(&bar.p, "verifying");
		else
			cli_progress_begin_items(&bar.p, "removing", "chunks");
		prog = &progress;
	}
	rc = cli_maint_run(cmd, arg, data_dir, &opt, prog);
	if (bar.shown)
		fputc('\n', stderr);
	return rc;
}


/* ---- fsck --remote ---- */

struct fsck_progress {
	bool shown;
	struct cli_progress bar;
};

static void fsck_remote_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct fsck_progress *p = ctx;

	if (!total)
		return;
	cli_progress_show(stderr, &p->bar, done, total);
	p->shown = true;
}

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

enum { MAINT_REMOTE = 1, FSCK_QUICK, FSCK_JOBS, MAINT_JSON };

struct fsck_remote_args {
	struct tier_fsck_options *o;
	bool json;
};

static int fsck_remote_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct fsck_remote_args *fa = ctx;
	struct tier_fsck_options *fo = fa->o;
	uint64_t n;

	if (o->id == MAINT_JSON)
		fa->json = true;
	else if (o->id == FSCK_QUICK)
		fo->quick = true;
	else if (o->id == FSCK_JOBS && cli_number("--jobs", arg, 1, 64, &n) != 0)
		return CLI_USAGE;
	else if (o->id == FSCK_JOBS)
		fo->jobs = (unsigned)n;
	return 0;
}

/* 0, -1 after --help, or an exit code. */
static int fsck_remote_parse(int argc, char **argv, struct pecfs_config *cfg, struct fsck_remote_args *fa,
			     const char **data_dir)
{
	static const struct cli_opt own[] = {
		{ "remote", 0, CLI_NO_ARG, MAINT_REMOTE },
		{ "quick", 0, CLI_NO_ARG, FSCK_QUICK },
		{ "jobs", 0, CLI_ARG, FSCK_JOBS },
		{ "json", 0, CLI_NO_ARG, MAINT_JSON },
	};
	struct tier_fsck_options *o = fa->o;
	struct cli_args pos;
	int rc = cli_parse_s3_args("fsck", argc, argv, own, 4, cli_help_fsck, fsck_remote_opt, fa, cfg, &pos);

	if (rc != 0)
		return rc;
	*data_dir = pos.argc >= 1 ? pos.argv[0] : NULL;
	if (pos.argc > 1)
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs fsck --remote [options] [DATA_DIR])",
			       pos.argv[1]);
	cli_args_free(&pos);
	if (rc != 0)
		return rc;
	if (!cfg->s3[0] && !cfg->from[0])
		return cli_error(CLI_USAGE, "missing --s3 s3://BUCKET/PREFIX (or s3 = ... in the configuration file)");
	if (!o->jobs)
		o->jobs = cfg->upload_threads;
	return 0;
}

/* The one-line summary of a remote check. */
static void fsck_remote_summary(const char *uri, const struct tier_fsck_options *o, const struct tier_fsck_report *rp)
{
	const struct tier_fsck_report r = *rp;

	printf("fsck --remote %s: %llu committed version%s (%llu not committed), %llu manifest%s, %llu node state%s, "
	       "%llu chunk object%s (%.1f MiB %s), %llu pack%s; %llu problem%s (chunk objects: %llu missing, "
	       "%llu corrupt); %llu unreferenced chunk object%s (%.1f MiB, not an error), %llu unreferenced "
	       "pack%s (%.1f MiB)\n",
	       uri, (unsigned long long)r.versions, plural(r.versions), (unsigned long long)r.uncommitted,
	       (unsigned long long)r.manifests, plural(r.manifests), (unsigned long long)r.node_states,
	       plural(r.node_states), (unsigned long long)r.chunks, plural(r.chunks), (double)r.bytes / (1 << 20),
	       o->quick ? "listed" : "verified", (unsigned long long)r.packs, plural(r.packs),
	       (unsigned long long)r.problems, plural(r.problems), (unsigned long long)r.missing,
	       (unsigned long long)r.corrupt, (unsigned long long)r.unreferenced, plural(r.unreferenced),
	       (double)r.unreferenced_bytes / (1 << 20), (unsigned long long)r.unreferenced_packs,
	       plural(r.unreferenced_packs), (double)r.unreferenced_pack_bytes / (1 << 20));
}

static int cli_fsck_remote(int argc, char **argv)
{
	struct tier_fsck_options o = { 0 };
	struct fsck_remote_args fa = { &o, false };
	struct fsck_progress prog = { false, { 0 } };
	char *found = NULL;
	size_t found_len = 0;
	struct tier_fsck_report r;
	struct pecfs_config cfg;
	struct tier_options to;
	const char *data_dir = NULL, *uri;
	char err[512] = "";
	int rc, local = CLI_OK;

	pecfs_config_defaults(&cfg);
	rc = fsck_remote_parse(argc, argv, &cfg, &fa, &data_dir);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (data_dir) {
		local = cli_maint(fa.json ? "fsck json" : "fsck", data_dir);
		if (local == CLI_USAGE)
			return local;
	}
	cli_tier_options(&cfg, &to);
	uri = to.uri;
	/* --json: the findings go into the JSON object, one string each */
	o.out = fa.json ? open_memstream(&found, &found_len) : stdout;
	if (!o.out)
		return cli_error(CLI_FAILED, "out of memory");
	if (isatty(STDERR_FILENO)) {
		cli_progress_begin(&prog.bar, "verifying");
		o.progress = fsck_remote_progress;
		o.progress_ctx = &prog;
	}
	rc = tier_fsck(&to, &o, &r, err, sizeof(err));
	if (fa.json)
		fclose(o.out);
	if (prog.shown)
		fputc('\n', stderr);
	if (rc < 0) {
		free(found);
		return cli_error(CLI_USAGE, "fsck --remote %s: %s", uri, err[0] ? err : strerror(-rc));
	}
	if (fa.json) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
				      "s:I, s:I, s:I, s:o}",
				      "check", "remote", "uri", uri, "quick", o.quick, "versions", (json_int_t)r.versions,
				      "uncommitted", (json_int_t)r.uncommitted, "manifests", (json_int_t)r.manifests,
				      "node_states", (json_int_t)r.node_states, "chunks", (json_int_t)r.chunks, "packs",
				      (json_int_t)r.packs,
				      "objects", (json_int_t)r.objects, "bytes", (json_int_t)r.bytes, "problems",
				      (json_int_t)r.problems, "missing", (json_int_t)r.missing, "corrupt",
				      (json_int_t)r.corrupt, "unreferenced", (json_int_t)r.unreferenced,
				      "unreferenced_bytes", (json_int_t)r.unreferenced_bytes, "unreferenced_packs",
				      (json_int_t)r.unreferenced_packs, "unreferenced_pack_bytes",
				      (json_int_t)r.unreferenced_pack_bytes, "unreadable",
				      (json_int_t)r.unreadable, "report", cli_json_lines(found, found_len));
		free(found);
		rc = cli_json_print(j);
		if (rc != CLI_OK)
			return rc;
	} else {
		fsck_remote_summary(uri, &o, &r);
	}
	fflush(stdout);
	if (r.unreadable && fa.json)
		return CLI_USAGE;  /* incomplete: "unreadable" says how much */
	if (r.unreadable)
		return cli_error(CLI_USAGE, "fsck --remote %s: the check is incomplete: %llu object%s could not "
				 "be read (see above); check again when the server answers", uri,
				 (unsigned long long)r.unreadable, plural(r.unreadable));
	return r.problems || local != CLI_OK ? CLI_FAILED : CLI_OK;
}

/* True when --remote is among the options (before any "--"). */
static bool maint_remote(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--remote") == 0)
			return true;
	return false;
}

/* The local form: `pecfs CMD DATA_DIR`. */
static int cli_maint_local(const char *cmd, int argc, char **argv, void (*help)(FILE *))
{
	static const struct cli_opt opts[] = { { "json", 0, CLI_NO_ARG, MAINT_JSON } };
	struct cli_args pos;
	bool json = false;
	char jcmd[16];
	int rc = cli_parse_args(cmd, argc, argv, opts, 1, help, cli_flag_option, &json, &pos);

	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	snprintf(jcmd, sizeof(jcmd), "%s json", cmd);
	if (pos.argc == 1)
		rc = cli_maint(json ? jcmd : cmd, pos.argv[0]);
	else if (pos.argc == 0)
		rc = cli_error(CLI_USAGE, "missing DATA_DIR (usage: pecfs %s DATA_DIR)", cmd);
	else
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs %s DATA_DIR)", pos.argv[1], cmd);
	cli_args_free(&pos);
	return rc;
}

int cli_fsck(int argc, char **argv)
{
	if (maint_remote(argc, argv))
		return cli_fsck_remote(argc, argv);
	return cli_maint_local("fsck", argc, argv, cli_help_fsck);
}

int cli_gc(int argc, char **argv)
{
	if (maint_remote(argc, argv))
		return cli_gc_remote(argc, argv);
	return cli_maint_local("gc", argc, argv, cli_help_gc);
}
