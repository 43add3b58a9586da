/* cli_status.c - `pecfs status`: a readable summary of mounts, runs and versions.
 *
 * Reads only what the mount publishes (MNT/.pec/stats, RUN/.pec/versions), so it works for any user
 * who can read the mount and never touches the data folder. --json prints the same objects, grouped
 * per mount, for scripts.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_help_status(FILE *out)
{
	fprintf(out,
		"usage: pecfs status [--json] [PATH]\n"
		"\n"
		"Shows each pecfs mount (or only the one holding PATH; only that run when PATH is a run or\n"
		"inside one): its data folder, logical bytes (what files hold) against stored bytes (what the\n"
		"disk holds after deduplication), and per run a table of versions with state, step, files,\n"
		"logical and stored bytes, and which version is latest. With an S3 tier: its state, the last\n"
		"error, versions and bytes waiting for upload and the upload rate (a progress bar on a tty).\n"
		"\n"
		"options:\n"
		"  --json       print {\"mounts\": [{\"mountpoint\", \"data_dir\", \"stats\": MNT/.pec/stats,\n"
		"               \"runs\": [RUN/.pec/versions, ...]}]} instead\n"
		"  -h, --help   show this help\n"
		"\n"
		"exit status: 0 shown, 1 a mount or PATH could not be read, 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs status /mnt/ckpt/llama-moe\n");
}

/* "512.0 MiB" */
static const char *status_bytes(double v, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.0f B", v);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

static double status_num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : 0;
}

static const char *status_plural(json_t *obj, const char *key)
{
	return status_num(obj, key) == 1 ? "" : "s";
}

static json_t *status_load(const char *dir, const char *file)
{
	char path[PATH_MAX * 2];
	json_error_t jerr;
	json_t *j;

	if (snprintf(path, sizeof(path), "%s/.pec/%s", dir, file) >= (int)sizeof(path)) {
		cli_error(CLI_FAILED, "%s: %s", dir, strerror(ENAMETOOLONG));
		return NULL;
	}
	j = json_load_file(path, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		cli_error(CLI_FAILED, "cannot read %s: %s", path, jerr.text);
	return j;
}

static int status_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends RUN/.pec/versions of every run (or only `only`) of the mount to runs. */
static int status_load_runs(const char *mnt, const char *only, json_t *runs)
{
	char path[PATH_MAX * 2], **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	struct stat sb;
	int rc = CLI_OK;
	DIR *d;
	json_t *j;

	d = opendir(mnt);
	if (d == NULL)
		return cli_error(CLI_FAILED, "cannot list %s: %s", mnt, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
			continue;
		if (only != NULL && strcmp(de->d_name, only) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", mnt, de->d_name);
		if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		if (n == cap) {
			char **grown = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
			if (grown == NULL)
				break;
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (names[n] != NULL)
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), status_cmp_names);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", mnt, names[i]);
		j = status_load(path, "versions");
		if (j == NULL)
			rc = CLI_FAILED;
		else
			json_array_append_new(runs, j);
		free(names[i]);
	}
	free(names);
	return rc;
}

/* The S3 tier's line (when the mount has one): where, state, pending work, rate; a bar on a tty. */
static void status_print_tier(json_t *stats)
{
	json_t *t = json_object_get(stats, "s3"), *err;
	double pending = status_num(t, "bytes_pending"), done = status_num(t, "bytes_uploaded");
	char a[32], b[32], c[32];

	if (!json_is_object(t))
		return;
	printf("  S3 tier %s (node %s): %s; %.0f version%s pending (%s), %s uploaded since mount, %s/s\n",
	       json_string_value(json_object_get(t, "uri")) ?: "?", json_string_value(json_object_get(t, "node_id")) ?: "?",
	       json_string_value(json_object_get(t, "state")) ?: "?", status_num(t, "versions_pending"),
	       status_plural(t, "versions_pending"), status_bytes(pending, a, sizeof(a)),
	       status_bytes(done, b, sizeof(b)), status_bytes(status_num(t, "rate_bytes_per_s"), c, sizeof(c)));
	if (status_num(t, "versions_awaiting_nodes") > 0)
		printf("  S3: %.0f version%s uploaded here, COMMIT waiting for the other nodes' parts\n",
		       status_num(t, "versions_awaiting_nodes"), status_plural(t, "versions_awaiting_nodes"));
	err = json_object_get(t, "error");
	if (json_is_string(err))
		printf("  S3 error (retrying with backoff, nothing is lost): %s\n", json_string_value(err));
	if (status_num(t, "versions_failing") > 1)
		printf("  S3: %.0f versions failing (RUN/.pec/versions has each one's error); the others go ahead\n",
		       status_num(t, "versions_failing"));
	if (status_num(t, "fetched_chunks") > 0)
		printf("  S3 reads since mount: %.0f chunks fetched (%s), %.0f of them read ahead, %.0f read-ahead hits, "
		       "%.0f corrupt\n", status_num(t, "fetched_chunks"), status_bytes(status_num(t, "fetched_bytes"), a,
		       sizeof(a)), status_num(t, "prefetched_chunks"), status_num(t, "prefetch_hits"),
		       status_num(t, "fetch_corrupt"));
	if (pending > 0 && isatty(STDOUT_FILENO)) {
		cli_progress_bar(stdout, "  upload", (uint64_t)done, (uint64_t)(done + pending));
		putchar('\n');
	}
}

static void status_print_mount(json_t *m)
{
	json_t *stats = json_object_get(m, "stats"), *runs = json_object_get(m, "runs"), *run;
	double logical = status_num(stats, "logical_bytes"), stored = status_num(stats, "stored_bytes");
	char a[32], b[32], c[32];
	size_t i;

	printf("%s  (data folder %s)\n", json_string_value(json_object_get(m, "mountpoint")),
	       json_string_value(json_object_get(m, "data_dir")));
	if (!json_is_object(stats)) {
		printf("  (its figures could not be read)\n");
		return;
	}
	printf("  logical %s in %.0f run%s, %.0f version%s (%.0f sealed); stored %s in %.0f chunk%s",
	       status_bytes(logical, a, sizeof(a)), status_num(stats, "runs"), status_plural(stats, "runs"),
	       status_num(stats, "versions"), status_plural(stats, "versions"),
	       status_num(stats, "sealed_versions"), status_bytes(stored, b, sizeof(b)),
	       status_num(stats, "chunks"), status_plural(stats, "chunks"));
	if (stored > 0)
		printf(" (%.2fx reduction)", logical / stored);
	printf("\n  dedup ratio %.2f (bytes written / new bytes stored since mount); free disk %s\n",
	       status_num(stats, "dedup_ratio"), status_bytes(status_num(stats, "free_disk_bytes"), c, sizeof(c)));
	status_print_tier(stats);

	json_array_foreach(runs, i, run) {
		json_t *latest = json_object_get(run, "latest"), *versions = json_object_get(run, "versions"), *v;
		int width = 8;
		size_t k;

		json_array_foreach(versions, k, v) {
			int len = (int)strlen(json_string_value(json_object_get(v, "name")) ?: "");
			width = len > width ? (len < 48 ? len : 48) : width;
		}
		printf("\nrun %s: latest -> %s\n", json_string_value(json_object_get(run, "run")) ?: "?",
		       json_is_string(latest) ? json_string_value(latest) : "(none sealed)");
		if (json_array_size(versions) == 0) {
			printf("  (no versions)\n");
			continue;
		}
		printf("  %-*s  %-8s %10s %7s %11s %11s\n", width, "VERSION", "STATE", "STEP", "FILES", "LOGICAL",
		       "STORED");
		json_array_foreach(versions, k, v) {
			json_t *step = json_object_get(v, "step");
			char s[24] = "-";

			if (json_is_integer(step))
				snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(step));
			printf("  %-*s  %-8s %10s %7.0f %11s %11s\n", width,
			       json_string_value(json_object_get(v, "name")) ?: "?",
			       json_string_value(json_object_get(v, "state")) ?: "?", s, status_num(v, "files"),
			       status_bytes(status_num(v, "logical_bytes"), a, sizeof(a)),
			       status_bytes(status_num(v, "stored_bytes"), b, sizeof(b)));
		}
	}
}

/* The mount object for m, restricted to the run `only` when not NULL. */
static int status_collect(const struct cli_mount *m, const char *only, json_t *mounts)
{
	json_t *obj = json_object(), *stats = status_load(m->mountpoint, "stats"), *runs = json_array();
	int rc = stats == NULL ? CLI_FAILED : CLI_OK;

	json_object_set_new(obj, "mountpoint", json_string(m->mountpoint));
	json_object_set_new(obj, "data_dir", json_string(m->data_dir));
	json_object_set_new(obj, "stats", stats != NULL ? stats : json_null());
	if (status_load_runs(m->mountpoint, only, runs) != CLI_OK)
		rc = CLI_FAILED;
	json_object_set_new(obj, "runs", runs);
	json_array_append_new(mounts, obj);
	return rc;
}

/* The run that PATH is (or is inside), given the mount holding it; "" for the mount root. */
static int status_run_of(const char *path, const struct cli_mount *m, char *run, size_t size)
{
	char real[PATH_MAX];
	size_t mlen = strlen(m->mountpoint);
	const char *rel;

	if (realpath(path, real) == NULL)
		return -errno;
	if (strncmp(real, m->mountpoint, mlen) != 0)
		return -EXDEV;
	rel = real + mlen;
	while (*rel == '/')
		rel++;
	snprintf(run, size, "%.*s", (int)strcspn(rel, "/"), rel);
	return 0;
}

int cli_status(int argc, char **argv)
{
	struct cli_mount *all = NULL, one;
	const char *path = NULL;
	char run[PATH_MAX] = "";
	json_t *root, *mounts, *m;
	bool as_json = false;
	size_t n = 0, i;
	struct stat sb;
	int rc = CLI_OK;

	static const struct cli_opt opts[] = { { "json", 0, CLI_NO_ARG, 0 } };
	struct cli_args pos;
	rc = cli_parse_args("status", argc, argv, opts, 1, cli_help_status, cli_flag_option, &as_json, &pos);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (pos.argc > 1) {
		rc = cli_error(CLI_USAGE, "unexpected argument '%s' (usage: pecfs status [--json] [PATH])", pos.argv[1]);
		cli_args_free(&pos);
		return rc;
	}
	path = pos.argc == 1 ? pos.argv[0] : NULL;  /* the string is argv's, the array pos's */
	cli_args_free(&pos);

	if (path != NULL) {
		if (stat(path, &sb) < 0)
			return cli_error(CLI_FAILED, "%s: %s", path, strerror(errno));
		if (cli_mount_by_dev(sb.st_dev, &one) < 0 || status_run_of(path, &one, run, sizeof(run)) < 0)
			return cli_error(CLI_FAILED, "%s is not on a pecfs mount", path);
		all = &one;
		n = 1;
	} else if (cli_mounts_list(&all, &n) < 0) {
		return cli_error(CLI_FAILED, "cannot read /proc/self/mountinfo: %s", strerror(errno));
	}

	root = json_object();
	mounts = json_array();
	json_object_set_new(root, "mounts", mounts);
	for (i = 0; i < n; i++)
		if (status_collect(&all[i], run[0] != '\0' ? run : NULL, mounts) != CLI_OK)
			rc = CLI_FAILED;
	if (as_json) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		putchar('\n');
	} else if (n == 0) {
		printf("no pecfs mounts\n");
	} else {
		json_array_foreach(mounts, i, m) {
			if (i > 0)
				putchar('\n');
			status_print_mount(m);
		}
	}
	json_decref(root);
	if (all != &one)
		free(all);
	return rc;
}
