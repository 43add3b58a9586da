/* cli_restore.c - `pecfs restore RUN[@VERSION] DEST`: copies a committed version out of the S3 tier
 * into a plain folder, without a mount or a data folder. Reads the version's COMMIT and every node's
 * manifest, fetches each distinct chunk once, in parallel, verifies its SHA-256 (tier_chunk_fetch_into)
 * and writes it to every extent that names it. A progress bar on a terminal.
 *
 * Speed: files are preallocated at their size (so a full disk fails before anything is fetched);
 * chunks are fetched in file order, so that each file is written front to back; each worker reads
 * objects straight into one reused buffer whose payload is 4 KiB-aligned, and writes the aligned
 * part of each extent with O_DIRECT (no copy into the page cache, which costs more CPU here than
 * the download itself) and the rest, if any, through the page cache. Every file is fsync'ed at the
 * end: a restore that says it is done is on disk.
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
#include "tier_manifest.h"
#include "tier.h"

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

#define RESTORE_ALIGN 4096u

struct restore_ref {
	struct digest d;
	uint64_t chunk_len;
	size_t file;             /* index in the files' fds, in manifest order */
	uint64_t file_off, len, chunk_off;
};

/* The refs of one distinct chunk: refs[first, end) after sorting by digest. */
struct restore_group {
	size_t first, end;
	size_t file;             /* where the chunk is first used: the group's place in the fetch order */
	uint64_t file_off;
};

struct restore_file {
	int fd;                  /* buffered writes, fsync */
	int dfd;                 /* the same file opened O_DIRECT, or -1 where the file system refuses it */
};

struct restore {
	struct s3_client *c;
	char prefix[TIER_PREFIX_MAX];
	struct restore_ref *refs;
	size_t nrefs;
	struct restore_group *groups;
	size_t ngroups;
	struct restore_file *files;
	uint64_t max_chunk;      /* largest payload, for the workers' buffers */
	atomic_size_t next;      /* index of the next group to claim */
	atomic_size_t finished;  /* workers done */
	atomic_uint_fast64_t done;
	atomic_int rc;
	char msg[512];
	pthread_mutex_t lock;
};

static int ref_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static int group_cmp(const void *a, const void *b)
{
	const struct restore_group *x = a, *y = b;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->file_off < y->file_off ? -1 : x->file_off > y->file_off;
}

static void restore_fail(struct restore *r, int rc, const char *msg)
{
	int zero = 0;

	pthread_mutex_lock(&r->lock);
	if (atomic_compare_exchange_strong(&r->rc, &zero, rc))
		snprintf(r->msg, sizeof(r->msg), "%s", msg);
	pthread_mutex_unlock(&r->lock);
}

static int write_all_at(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Writes one extent's bytes: the 4 KiB-aligned stretch with O_DIRECT when the file has it, the rest
 * through the page cache. */
static int restore_write(struct restore_file *f, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t direct = 0;
	int rc;

	if (f->dfd >= 0 && off % RESTORE_ALIGN == 0 && (uintptr_t)p % RESTORE_ALIGN == 0)
		direct = len & ~(uint64_t)(RESTORE_ALIGN - 1);
	if (direct > 0) {
		rc = write_all_at(f->dfd, p, direct, off);
		if (rc == -EINVAL)
			direct = 0;  /* O_DIRECT accepted at open, refused at write: the page cache it is */
		else if (rc < 0)
			return rc;
	}
	return direct < len ? write_all_at(f->fd, p + direct, len - direct, off + direct) : 0;
}

/* Claims groups of refs with the same digest in file order; one fetch per group, into the worker's
 * own buffer (the object header first, so that the payload lands 4 KiB-aligned). */
static void *restore_worker(void *arg)
{
	struct restore *r = arg;
	size_t cap = r->max_chunk + TIER_CHUNK_HDR + 1 + 2 * RESTORE_ALIGN;
	uint8_t *mem = malloc(cap), *obj;

	if (!mem)
		restore_fail(r, -ENOMEM, "out of memory for a chunk buffer");
	obj = mem ? (uint8_t *)(((uintptr_t)mem + TIER_CHUNK_HDR + RESTORE_ALIGN - 1) & ~(uintptr_t)(RESTORE_ALIGN - 1)) -
		      TIER_CHUNK_HDR : NULL;
	while (mem && atomic_load(&r->rc) == 0) {
		size_t gi = atomic_fetch_add(&r->next, 1);
		if (gi >= r->ngroups)
			break;
		struct restore_group *g = &r->groups[gi];
		struct s3_result res = { 0 };
		const struct restore_ref *first = &r->refs[g->first];
		int rc = tier_chunk_fetch_into(r->c, r->prefix, &first->d, first->chunk_len, obj, &res);
		if (rc < 0) {
			char hex[DIGEST_HEX_LEN + 1], m[512];
			digest_to_hex(&first->d, hex);
			snprintf(m, sizeof(m), "chunk %.16s...: %.400s", hex, res.message[0] ? res.message : strerror(-rc));
			restore_fail(r, rc, m);
			break;
		}
		for (size_t k = g->first; k < g->end && rc == 0; k++) {
			const struct restore_ref *x = &r->refs[k];
			if (x->chunk_len != first->chunk_len || x->chunk_off + x->len > first->chunk_len) {
				restore_fail(r, -EIO, "a manifest extent lies beyond its chunk");
				rc = -EIO;
				break;
			}
			rc = restore_write(&r->files[x->file], obj + TIER_CHUNK_HDR + x->chunk_off, x->len, x->file_off);
			if (rc < 0)
				restore_fail(r, rc, strerror(-rc));
			else
				atomic_fetch_add(&r->done, x->len);
		}
	}
	free(mem);
	atomic_fetch_add(&r->finished, 1);
	return NULL;
}

struct pick {
	struct restore *r;
	struct s3_client *c;
	char best[512];
	int64_t best_step, best_ns;
	bool found;
	struct s3_result res;   /* of a COMMIT that could not be read */
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
	int rc = s3_get_all(p->c, key, 65536, (void **)&text, &len, &p->res);
	if (rc == -ENOENT)
		return 0;  /* not committed */
	if (rc < 0)
		return rc;  /* never guess "latest" past a COMMIT that could not be read */
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

/* Opens a new regular file of the version twice (buffered, and O_DIRECT where the file system has
 * it) and gives it its size: preallocated when the extents cover it all (a full disk fails here,
 * before any download), else sparse. The mode is set last, so a read-only file can be opened twice. */
static int restore_create(const char *path, const struct tier_manifest_entry *e, mode_t umask_bits,
			  struct restore_file *f)
{
	uint64_t covered = 0;

	f->dfd = -1;
	f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->fd < 0)
		return -errno;
	f->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);  /* -1 (EINVAL) on tmpfs and the like: fine */
	for (size_t x = 0; x < e->next; x++)
		covered += e->ext[x].len;
	if (covered == e->size && e->size > 0 && fallocate(f->fd, 0, 0, (off_t)e->size) < 0 && errno != EOPNOTSUPP)
		return -errno;
	if (ftruncate(f->fd, (off_t)e->size) < 0 || fchmod(f->fd, (e->mode & 07777) & ~umask_bits) < 0)
		return -errno;
	return 0;
}

/* Creates DEST's tree from the manifests and collects every extent; files are left open in r->files
 * (*nfiles of them), and the distinct chunks are put in fetch order (r->groups). */
static int restore_layout(const char *dest, struct tier_manifest_set *ms, struct restore *r, size_t *nfiles,
			  uint64_t *total)
{
	size_t files = 0, nrefs = 0, fi = 0;
	mode_t umask_bits = umask(0);
	char path[PATH_MAX];

	umask(umask_bits);
	for (size_t a = 0; a < ms->n; a++)
		for (size_t i = 0; i < ms->m[a].n; i++) {
			files += S_ISREG(ms->m[a].entries[i].mode);
			nrefs += ms->m[a].entries[i].next;
		}
	r->files = calloc(files ? files : 1, sizeof(*r->files));
	r->refs = malloc((nrefs ? nrefs : 1) * sizeof(*r->refs));
	r->groups = malloc((nrefs ? nrefs : 1) * sizeof(*r->groups));
	if (!r->files || !r->refs || !r->groups)
		return -ENOMEM;
	*total = 0;
	for (size_t a = 0; a < ms->n; a++)
		for (size_t i = 0; i < ms->m[a].n; i++) {
			struct tier_manifest_entry *e = &ms->m[a].entries[i];
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
				rc = restore_create(path, e, umask_bits, &r->files[fi]);
				*nfiles = ++fi;
				if (rc < 0)
					return rc;
				for (size_t x = 0; x < e->next; x++) {
					struct restore_ref *rf = &r->refs[r->nrefs++];
					rf->d = e->ext[x].digest;
					rf->chunk_len = e->ext[x].chunk_len;
					rf->file = fi - 1;
					rf->file_off = e->ext[x].file_off;
					rf->len = e->ext[x].len;
					rf->chunk_off = e->ext[x].chunk_off;
					*total += rf->len;
					if (rf->chunk_len > r->max_chunk)
						r->max_chunk = rf->chunk_len;
				}
			}
		}
	qsort(r->refs, r->nrefs, sizeof(*r->refs), ref_cmp);
	for (size_t i = 0; i < r->nrefs;) {
		struct restore_group *g = &r->groups[r->ngroups++];
		*g = (struct restore_group){ .first = i, .file = r->refs[i].file, .file_off = r->refs[i].file_off };
		for (i++; i < r->nrefs && memcmp(&r->refs[i].d, &r->refs[g->first].d, DIGEST_LEN) == 0; i++)
			if (r->refs[i].file < g->file || (r->refs[i].file == g->file && r->refs[i].file_off < g->file_off)) {
				g->file = r->refs[i].file;
				g->file_off = r->refs[i].file_off;
			}
		g->end = i;
	}
	if (r->ngroups > 0)
		qsort(r->groups, r->ngroups, sizeof(*r->groups), group_cmp);
	return 0;
}

struct restore_args {
	unsigned *threads;
	const char **what, **dest;
	int pos;
};

static int restore_arg(void *ctx, int argc, char **argv, int *i)
{
	struct restore_args *ra = ctx;
	const char *a = argv[*i];

	if (strcmp(a, "--threads") == 0 && *i + 1 < argc) {
		*ra->threads = (unsigned)atoi(argv[++*i]);
		if (*ra->threads < 1 || *ra->threads > 256)
			return cli_error(CLI_USAGE, "--threads: a number from 1 to 256");
		return 0;
	}
	if (a[0] == '-')
		return cli_error(CLI_USAGE, "unknown option %s (see pecfs restore --help)", a);
	if (ra->pos >= 2)
		return cli_error(CLI_USAGE, "too many arguments (usage: pecfs restore RUN[@VERSION] DEST)");
	*(ra->pos++ == 0 ? ra->what : ra->dest) = a;
	return 0;
}

static int restore_parse(int argc, char **argv, struct pecfs_config *cfg, unsigned *threads, const char **what,
			 const char **dest)
{
	struct restore_args ra = { .threads = threads, .what = what, .dest = dest };
	int rc = cli_s3_args(argc, argv, cfg, cli_help_restore, restore_arg, &ra);

	if (rc != 0)
		return rc;
	if (ra.pos != 2)
		return cli_error(CLI_USAGE, "usage: pecfs restore [options] RUN[@VERSION] DEST");
	if (!cfg->s3[0])
		return cli_error(CLI_USAGE, "missing --s3 s3://BUCKET/PREFIX");
	return 0;
}

static void restore_progress(struct restore *r, size_t nth, uint64_t total)
{
	bool tty = isatty(STDERR_FILENO);

	while (tty) {
		cli_progress_bar(stderr, "restoring", atomic_load(&r->done), total);
		if (atomic_load(&r->finished) >= nth || atomic_load(&r->rc) != 0)
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
	struct tier_manifest_set ms = { 0 };
	struct pick p = { 0 };
	char bucket[S3_BUCKET_MAX], err[512], key[2048], version[512], run[512];
	const char *what = NULL, *dest = NULL, *at;
	unsigned threads = 16;
	pthread_t th[256];
	size_t nth = 0, nfiles = 0;
	int code = CLI_FAILED, rc;
	uint64_t total = 0;

	pecfs_config_defaults(&cfg);
	rc = restore_parse(argc, argv, &cfg, &threads, &what, &dest);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	cli_tier_options(&cfg, &o);
	o.max_attempts = TIER_READER_ATTEMPTS;  /* one failed request fails the restore */
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
			cli_error(CLI_FAILED, "%s: %s", run, rc < 0 ? (p.res.message[0] ? p.res.message : res.message) :
				  "no committed version in the bucket");
			goto out;
		}
		snprintf(version, sizeof(version), "%s", p.best);
	}
	rc = tier_manifests_load(r.c, r.prefix, run, version, &ms, err, sizeof(err));
	if (rc < 0 || ms.n == 0) {
		cli_error(CLI_FAILED, "%s@%s: cannot read its manifests: %s", run, version, rc < 0 ? err : "none found");
		goto out;
	}
	if (mkdirs(dest) < 0) {
		cli_error(CLI_FAILED, "%s: %s", dest, strerror(errno));
		goto out;
	}
	rc = restore_layout(dest, &ms, &r, &nfiles, &total);
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s: creating the files: %s", dest, strerror(-rc));
		goto out;
	}
	for (; nth < threads; nth++)
		if (pthread_create(&th[nth], NULL, restore_worker, &r) != 0)
			break;
	if (nth == 0)
		restore_worker(&r);
	restore_progress(&r, nth, total);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	rc = atomic_load(&r.rc);
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		if (fsync(r.files[i].fd) < 0)
			rc = -errno;
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s@%s: %s", run, version, r.msg[0] ? r.msg : strerror(-rc));
		goto out;
	}
	printf("restored %s@%s to %s: %zu files, %llu bytes\n", run, version, dest, nfiles, (unsigned long long)total);
	code = CLI_OK;
out:
	for (size_t i = 0; i < nfiles; i++) {
		if (r.files[i].fd >= 0)
			close(r.files[i].fd);
		if (r.files[i].dfd >= 0)
			close(r.files[i].dfd);
	}
	free(r.files);
	free(r.refs);
	free(r.groups);
	tier_manifest_set_free(&ms);
	pthread_mutex_destroy(&r.lock);
	s3_client_free(r.c);
	return code;
}
