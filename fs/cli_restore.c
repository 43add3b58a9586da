/* cli_restore.c - `pecfs restore RUN[@VERSION] DEST`: copies a committed version out of the S3 tier
 * into a plain folder, without a mount or a data folder. Reads the version's COMMIT and every node's
 * manifest, fetches each distinct chunk once, in parallel, verifies its SHA-256 (tier_chunk_fetch)
 * and writes it to every extent that names it. A progress bar on a terminal.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "../store/s3_manifest.h"
#include "../store/tier.h"

void cli_help_restore(FILE *out)
{
	fprintf(out,
		"usage: pecfs restore [options] RUN[@VERSION] DEST\n"
		"\n"
		"Copies version VERSION of RUN (default: the latest committed one) from the S3 tier into DEST,\n"
		"a new or empty folder: every node's files of that version, bit for bit (each chunk's SHA-256 is\n"
		"verified). Needs no mount and no data folder. Credentials as for mount (AWS_* or a file).\n"
		"\n"
		"options:\n"
		"  --s3 s3://BUCKET/PREFIX    the bucket and prefix the versions were uploaded to (required)\n"
		"  --s3-endpoint URL          S3 server, http(s)://host[:port] (default: AWS)\n"
		"  --s3-region R, --s3-addressing path|virtual, --s3-ca-file F, --s3-credentials-file F\n"
		"  --threads N                chunks fetched at once (default 16)\n"
		"  -c, --config FILE          read the s3* settings from a pecfs configuration file\n"
		"  -h, --help                 show this help\n"
		"\n"
		"exit status: 0 restored, 1 failed (nothing committed, a corrupt chunk, I/O), 2 bad usage.\n"
		"\n"
		"example:\n"
		"  pecfs restore --s3 s3://ckpt/team --s3-endpoint http://10.0.0.5:7480 llama@step-1200 /scratch/r\n");
}

struct restore_ref {
	struct digest d;
	uint64_t chunk_len;
	int fd;
	uint64_t file_off, len, chunk_off;
};

struct restore {
	struct s3_client *c;
	char prefix[TIER_PREFIX_MAX];
	struct restore_ref *refs;
	size_t nrefs;
	atomic_size_t next;      /* index of the next group start to claim */
	atomic_uint_fast64_t done;
	atomic_int rc;
	char msg[512];
	pthread_mutex_t lock;
};

static int ref_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static void restore_fail(struct restore *r, int rc, const char *msg)
{
	int zero = 0;

	pthread_mutex_lock(&r->lock);
	if (atomic_compare_exchange_strong(&r->rc, &zero, rc))
		snprintf(r->msg, sizeof(r->msg), "%s", msg);
	pthread_mutex_unlock(&r->lock);
}

/* Claims groups of refs with the same digest; one fetch per group. */
static void *restore_worker(void *arg)
{
	struct restore *r = arg;

	while (atomic_load(&r->rc) == 0) {
		size_t i = atomic_fetch_add(&r->next, 1), end;
		if (i >= r->nrefs)
			break;
		/* Only the first ref of a group starts work on it. */
		if (i > 0 && memcmp(&r->refs[i - 1].d, &r->refs[i].d, DIGEST_LEN) == 0)
			continue;
		for (end = i + 1; end < r->nrefs && memcmp(&r->refs[end].d, &r->refs[i].d, DIGEST_LEN) == 0; end++)
			;
		struct s3_result res = { 0 };
		void *payload = NULL;
		size_t len = 0;
		int rc = tier_chunk_fetch(r->c, r->prefix, &r->refs[i].d, &payload, &len, &res);
		if (rc < 0) {
			char hex[DIGEST_HEX_LEN + 1], m[512];
			digest_to_hex(&r->refs[i].d, hex);
			snprintf(m, sizeof(m), "chunk %.16s...: %.400s", hex, res.message[0] ? res.message : strerror(-rc));
			restore_fail(r, rc, m);
			break;
		}
		for (size_t k = i; k < end; k++) {
			struct restore_ref *x = &r->refs[k];
			if (x->chunk_off + x->len > len) {
				restore_fail(r, -EIO, "a manifest extent lies beyond its chunk");
				break;
			}
			const char *p = (const char *)payload + x->chunk_off;
			uint64_t left = x->len, off = x->file_off;
			while (left > 0) {
				ssize_t n = pwrite(x->fd, p, left, (off_t)off);
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					restore_fail(r, -errno, strerror(errno));
					break;
				}
				p += n;
				off += (uint64_t)n;
				left -= (uint64_t)n;
			}
			atomic_fetch_add(&r->done, x->len);
		}
		free(payload);
	}
	return NULL;
}

struct pick {
	struct restore *r;
	struct s3_client *c;
	char best[512];
	int64_t best_step, best_ns;
	bool found;
};

/* COMMIT of each version prefix: the latest by step, then by seal time. */
static int pick_version(void *ctx, const struct s3_object *o)
{
	struct pick *p = ctx;
	char key[1024], *text = NULL;
	size_t len, plen = strlen(o->key);
	json_t *j;

	if (!o->is_prefix || plen + 8 > sizeof(key))
		return 0;
	snprintf(key, sizeof(key), "%sCOMMIT", o->key);
	if (s3_get_all(p->c, key, 65536, (void **)&text, &len, NULL) < 0)
		return 0;  /* not committed */
	j = json_loadb(text, len, 0, NULL);
	free(text);
	if (!j)
		return 0;
	json_t *st = json_object_get(j, "step");
	int64_t step = json_is_integer(st) ? json_integer_value(st) : -1;
	int64_t ns = json_integer_value(json_object_get(j, "sealed_ns"));
	const char *name = json_string_value(json_object_get(j, "version"));
	bool newer = !p->found || (step >= 0 && p->best_step >= 0 && step != p->best_step ? step > p->best_step :
											    ns > p->best_ns);
	if (name && newer) {
		snprintf(p->best, sizeof(p->best), "%s", name);
		p->best_step = step;
		p->best_ns = ns;
		p->found = true;
	}
	json_decref(j);
	return 0;
}

struct manifests {
	struct s3_client *c;
	struct s3_manifest *m;
	size_t n;
	int rc;
	char msg[512];
};

static int load_manifest(void *ctx, const struct s3_object *o)
{
	struct manifests *ms = ctx;
	size_t klen = strlen(o->key), len;
	struct s3_result res = { 0 };
	char *text = NULL, err[256];
	struct s3_manifest *m;
	int rc;

	if (o->is_prefix || klen < 9 || strcmp(o->key + klen - 9, ".manifest") != 0)
		return 0;
	m = realloc(ms->m, (ms->n + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	ms->m = m;
	rc = s3_get_all(ms->c, o->key, S3_MANIFEST_MAX_BYTES, (void **)&text, &len, &res);
	if (rc == 0) {
		rc = s3_manifest_decode(text, len, &ms->m[ms->n], err, sizeof(err));
		if (rc < 0)
			snprintf(ms->msg, sizeof(ms->msg), "%.300s: %.200s", o->key, err);
	} else {
		snprintf(ms->msg, sizeof(ms->msg), "%.500s", res.message[0] ? res.message : strerror(-rc));
	}
	free(text);
	if (rc < 0)
		return rc;
	ms->n++;
	return 0;
}

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Creates DEST's tree from the manifests and collects every extent; files are left open in fds. */
static int restore_layout(const char *dest, struct manifests *ms, struct restore *r, int **fds, size_t *nfds,
			  uint64_t *total)
{
	size_t files = 0, nrefs = 0, fi = 0;
	char path[PATH_MAX];

	for (size_t a = 0; a < ms->n; a++)
		for (size_t i = 0; i < ms->m[a].n; i++) {
			files += S_ISREG(ms->m[a].entries[i].mode);
			nrefs += ms->m[a].entries[i].next;
		}
	*fds = calloc(files ? files : 1, sizeof(int));
	r->refs = malloc((nrefs ? nrefs : 1) * sizeof(*r->refs));
	if (!*fds || !r->refs)
		return -ENOMEM;
	*total = 0;
	for (size_t a = 0; a < ms->n; a++)
		for (size_t i = 0; i < ms->m[a].n; i++) {
			struct s3_manifest_entry *e = &ms->m[a].entries[i];
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", dest, e->path) >= sizeof(path))
				return -ENAMETOOLONG;
			char *slash = strrchr(path, '/');
			*slash = '\0';
			int rc = mkdirs(path);
			*slash = '/';
			if (rc < 0)
				return rc;
			if (S_ISDIR(e->mode)) {
				if (mkdir(path, e->mode & 07777) < 0 && errno != EEXIST)
					return -errno;
			} else if (S_ISLNK(e->mode)) {
				if (symlink(e->target, path) < 0 && errno != EEXIST)
					return -errno;
			} else if (S_ISREG(e->mode)) {
				int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, e->mode & 07777);
				if (fd < 0 || ftruncate(fd, (off_t)e->size) < 0) {
					if (fd >= 0)
						close(fd);
					return -errno;
				}
				(*fds)[fi++] = fd;
				*nfds = fi;
				for (size_t x = 0; x < e->next; x++) {
					struct restore_ref *rf = &r->refs[r->nrefs++];
					rf->d = e->ext[x].digest;
					rf->chunk_len = e->ext[x].chunk_len;
					rf->fd = fd;
					rf->file_off = e->ext[x].file_off;
					rf->len = e->ext[x].len;
					rf->chunk_off = e->ext[x].chunk_off;
					*total += rf->len;
				}
			}
		}
	qsort(r->refs, r->nrefs, sizeof(*r->refs), ref_cmp);
	return 0;
}

static int restore_parse(int argc, char **argv, struct pecfs_config *cfg, unsigned *threads, const char **what,
			 const char **dest)
{
	char err[512];
	int pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			cli_help_restore(stdout);
			return -1;
		}
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
			if (pecfs_config_load(cfg, argv[++i], err, sizeof(err)) < 0)
				return cli_error(CLI_USAGE, "%s", err);
		} else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
			*threads = (unsigned)atoi(argv[++i]);
			if (*threads < 1 || *threads > 256)
				return cli_error(CLI_USAGE, "--threads: a number from 1 to 256");
		} else if (strncmp(a, "--", 2) == 0 && strncmp(a + 2, "s3", 2) == 0) {
			char name[64];
			const char *eq = strchr(a, '='), *val;
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (n >= sizeof(name))
				return cli_error(CLI_USAGE, "unknown option %s", a);
			memcpy(name, a + 2, n);
			name[n] = '\0';
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return cli_error(CLI_USAGE, "option %s needs a value", a);
			if (pecfs_config_set(cfg, name, val, err, sizeof(err)) < 0)
				return cli_error(CLI_USAGE, "%s", err);
		} else if (a[0] == '-') {
			return cli_error(CLI_USAGE, "unknown option %s (see pecfs restore --help)", a);
		} else if (pos == 0) {
			*what = a;
			pos++;
		} else if (pos == 1) {
			*dest = a;
			pos++;
		} else {
			return cli_error(CLI_USAGE, "too many arguments (usage: pecfs restore RUN[@VERSION] DEST)");
		}
	}
	if (pos != 2)
		return cli_error(CLI_USAGE, "usage: pecfs restore [options] RUN[@VERSION] DEST");
	if (!cfg->s3[0])
		return cli_error(CLI_USAGE, "missing --s3 s3://BUCKET/PREFIX");
	return 0;
}

static void restore_progress(struct restore *r, pthread_t *th, size_t nth, uint64_t total)
{
	bool tty = isatty(STDERR_FILENO);

	(void)th;
	(void)nth;
	while (tty) {
		size_t next = atomic_load(&r->next);
		cli_progress_bar(stderr, "restoring", atomic_load(&r->done), total);
		if (next >= r->nrefs + nth || atomic_load(&r->rc) != 0)
			break;
		struct timespec ts = { 0, 200000000 };
		nanosleep(&ts, NULL);
	}
}

int cli_restore(int argc, char **argv)
{
	struct pecfs_config cfg;
	struct tier_options o = { 0 };
	struct restore r = { 0 };
	struct manifests ms = { 0 };
	struct pick p = { 0 };
	char bucket[S3_BUCKET_MAX], err[512], key[2048], version[512], run[512];
	const char *what = NULL, *dest = NULL, *at;
	unsigned threads = 16;
	pthread_t th[256];
	size_t nth = 0, nfds = 0;
	int *fds = NULL, code = CLI_FAILED, rc;
	uint64_t total = 0;

	pecfs_config_defaults(&cfg);
	rc = restore_parse(argc, argv, &cfg, &threads, &what, &dest);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	o.uri = cfg.s3;
	o.endpoint = cfg.s3_endpoint[0] ? cfg.s3_endpoint : NULL;
	o.region = cfg.s3_region[0] ? cfg.s3_region : NULL;
	o.addressing = strcmp(cfg.s3_addressing, "path") == 0      ? S3_ADDRESSING_PATH :
		       strcmp(cfg.s3_addressing, "virtual") == 0 ? S3_ADDRESSING_VIRTUAL :
								   S3_ADDRESSING_AUTO;
	o.ca_file = cfg.s3_ca_file[0] ? cfg.s3_ca_file : NULL;
	o.credentials_file = cfg.s3_credentials_file[0] ? cfg.s3_credentials_file : NULL;
	if (tier_client_new(&o, threads + 1, NULL, NULL, &r.c, bucket, r.prefix, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s", err);
	pthread_mutex_init(&r.lock, NULL);
	at = strchr(what, '@');
	snprintf(run, sizeof(run), "%.*s", at ? (int)(at - what) : (int)strlen(what), what);
	snprintf(key, sizeof(key), "%s%sruns/%s/", r.prefix, r.prefix[0] ? "/" : "", run);
	if (at) {
		snprintf(version, sizeof(version), "%s", at + 1);
		char ck[2600];
		uint64_t size;
		struct s3_result res = { 0 };
		snprintf(ck, sizeof(ck), "%s%s/COMMIT", key, version);
		rc = s3_head(r.c, ck, &size, NULL, &res);
		if (rc < 0) {
			cli_error(CLI_FAILED, "%s@%s: %s", run, version,
				  rc == -ENOENT ? "no committed version of that name in the bucket" : res.message);
			goto out;
		}
	} else {
		struct s3_result res = { 0 };
		p.c = r.c;
		rc = s3_list(r.c, key, "/", 0, pick_version, &p, &res);
		if (rc < 0 || !p.found) {
			cli_error(CLI_FAILED, "%s: %s", run, rc < 0 ? res.message : "no committed version in the bucket");
			goto out;
		}
		snprintf(version, sizeof(version), "%s", p.best);
	}
	snprintf(key + strlen(key), sizeof(key) - strlen(key), "%s/", version);
	ms.c = r.c;
	struct s3_result lres = { 0 };
	rc = s3_list(r.c, key, NULL, 0, load_manifest, &ms, &lres);
	if (rc < 0 || ms.n == 0) {
		cli_error(CLI_FAILED, "%s@%s: cannot read its manifests: %s", run, version,
			  rc < 0 ? (ms.msg[0] ? ms.msg : lres.message) : "none found");
		goto out;
	}
	if (mkdirs(dest) < 0) {
		cli_error(CLI_FAILED, "%s: %s", dest, strerror(errno));
		goto out;
	}
	rc = restore_layout(dest, &ms, &r, &fds, &nfds, &total);
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s: creating the files: %s", dest, strerror(-rc));
		goto out;
	}
	for (; nth < threads; nth++)
		if (pthread_create(&th[nth], NULL, restore_worker, &r) != 0)
			break;
	if (nth == 0)
		restore_worker(&r);
	restore_progress(&r, th, nth, total);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	rc = atomic_load(&r.rc);
	for (size_t i = 0; i < nfds && rc == 0; i++)
		if (fsync(fds[i]) < 0)
			rc = -errno;
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s@%s: %s", run, version, r.msg[0] ? r.msg : strerror(-rc));
		goto out;
	}
	printf("restored %s@%s to %s: %zu files, %llu bytes\n", run, version, dest, nfds, (unsigned long long)total);
	code = CLI_OK;
out:
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	free(fds);
	free(r.refs);
	for (size_t i = 0; i < ms.n; i++)
		s3_manifest_free(&ms.m[i]);
	free(ms.m);
	pthread_mutex_destroy(&r.lock);
	s3_client_free(r.c);
	return code;
}
