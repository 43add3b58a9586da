/* cli_restore.c - `pecfs restore RUN[@VERSION] DEST`: copies a committed version out of the S3 tier
 * into a plain folder, without a mount or a data folder. Reads the version's COMMIT and the manifests
 * of the parts it names (tier_version_load, merged by tier_version_merge), fetches each distinct chunk
 * once, in parallel, verifies its SHA-256 (tier_chunk_fetch_into) and writes it to every extent that
 * names it. A progress bar on a terminal.
 *
 * Safety: the bucket is untrusted and a restore often runs as root. DEST must be new or empty. The
 * tree is built beneath DEST's directory descriptor only: every path is opened with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, files are created O_EXCL | O_NOFOLLOW, so nothing is ever
 * written through a symlink, nor outside DEST, nor into a file that was there. Symlinks, fifos,
 * sockets, device nodes and hard links are created last, after every file is written, and never
 * followed. Modes keep only the permission bits 0777 (no setuid, setgid or sticky bit from a bucket;
 * device nodes only the owner's), less the umask; directories are made 0700 and get their own mode
 * once their contents are in, then are fsync'ed, DEST last.
 *
 * Speed: files are preallocated at their size (so a full disk fails before anything is fetched);
 * chunks are fetched in file order, so that each file is written front to back. Consecutive chunks
 * that lie side by side in one pack (FORMAT.md section 5, "Packs") are fetched as one run with one
 * ranged GET of up to RESTORE_RUN_MAX payload bytes, then each member is checked on its own
 * (tier_chunk_check): one request per pack instead of one per chunk. Each worker reads straight into
 * one reused buffer where the first payload is 4 KiB-aligned; a later member's payload is moved down
 * to the 4 KiB boundary below it once checked (the bytes it covers are written already), so the
 * aligned part of each extent is written with O_DIRECT (no copy into the page cache, which costs
 * more CPU here than the download itself) and the rest, if any, through the page cache. Memory: one
 * buffer per worker, as large as the largest run (RESTORE_RUN_MAX, or one chunk when larger). Every
 * file is fsync'ed at the end: a restore that says it is done is on disk.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/sysmacros.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
		"Nothing is written outside DEST or through a symlink; permission bits are kept without setuid,\n"
		"setgid and sticky bits, less the umask.\n"
		"\n"
		"options:\n"
		"  --s3 s3://BUCKET/PREFIX    the bucket and prefix the versions were uploaded to (required)\n"
		"  --s3-endpoint URL          S3 server, http(s)://host[:port] (default: AWS)\n"
		"  --s3-region R, --s3-addressing path|virtual, --s3-ca-file F, --s3-credentials-file F\n"
		"  --threads N                chunks fetched at once, 1 to 256 (default 16)\n"
		"  --json                     print the result as one JSON object\n"
		"  -c, --config FILE          read the s3* settings from a pecfs configuration file\n"
		"  -h, --help                 show this help\n"
		"\n"
		"exit status: 0 restored, 1 failed (nothing committed, a corrupt chunk or manifest, I/O), 2 bad\n"
		"usage (DEST not empty included).\n"
		"\n"
		"example:\n"
		"  pecfs restore --s3 s3://ckpt/team --s3-endpoint http://10.0.0.5:7480 llama@step-1200 /scratch/r\n");
}

#define RESTORE_ALIGN 4096u
/* Payload bytes one GET of a run of pack members brings at most: twice the default s3-pack-size, so a
 * pack of up to that size comes in one request. It bounds each worker's buffer (16 workers by default: about
 * 512 MiB at most, and only when the packs are that large). */
#define RESTORE_RUN_MAX (32ull << 20)

struct restore_ref {
	struct digest d;
	uint64_t chunk_len;
	struct tier_loc loc;     /* where the chunk's object is */
	size_t file;             /* index in the files' fds, in manifest order */
	uint64_t file_off, len, chunk_off;
};

/* The refs of one distinct chunk: refs[first, end) after sorting by digest. */
struct restore_group {
	size_t first, end;
	size_t use;              /* the ref of first use, whose location is fetched (a chunk two nodes packed
				    differently has two; the uploader packs by first use, so this one has
				    its neighbours beside it) */
	size_t file;             /* where the chunk is first used: the group's place in the fetch order */
	uint64_t file_off;
};

/* Groups [first, end) in fetch order, fetched with one GET: one chunk, or members of one pack that
 * lie back to back there. */
struct restore_run {
	size_t first, end;
	uint64_t bytes;          /* object bytes of the GET (headers and payloads) */
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
	struct restore_run *runs;
	size_t nruns;
	struct restore_file *files;
	uint64_t max_run;        /* object bytes of the largest run, for the workers' buffers */
	atomic_size_t next;      /* index of the next run to claim */
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

static void restore_fail_chunk(struct restore *r, int rc, const struct digest *d, const char *why)
{
	char hex[DIGEST_HEX_LEN + 1], m[512];

	digest_to_hex(d, hex);
	snprintf(m, sizeof(m), "chunk %.16s...: %.400s", hex, why);
	restore_fail(r, rc, m);
}

/* Writes every extent that names group g's chunk, from its checked payload p. */
static int restore_group_write(struct restore *r, const struct restore_group *g, const uint8_t *p)
{
	const struct restore_ref *use = &r->refs[g->use];
	int rc;

	for (size_t k = g->first; k < g->end; k++) {
		const struct restore_ref *x = &r->refs[k];
		if (x->chunk_len != use->chunk_len || x->chunk_off + x->len > use->chunk_len) {
			restore_fail(r, -EIO, "a manifest extent lies beyond its chunk");
			return -EIO;
		}
		rc = restore_write(&r->files[x->file], p + x->chunk_off, x->len, x->file_off);
		if (rc < 0) {
			restore_fail(r, rc, strerror(-rc));
			return rc;
		}
		atomic_fetch_add(&r->done, x->len);
	}
	return 0;
}

/* Fetches run u into obj (where the first payload is 4 KiB-aligned) with one GET, checks each member
 * as a fetch of it alone would and writes its extents. 0, or the error recorded for the restore. */
static int restore_run_fetch(struct restore *r, const struct restore_run *u, uint8_t *obj)
{
	const struct restore_ref *first = &r->refs[r->groups[u->first].use];
	struct s3_result res = { 0 };
	char key[TIER_PREFIX_MAX + 160], why[512];
	size_t got = 0;
	int rc;

	if (u->end - u->first == 1) {
		rc = tier_chunk_fetch_into(r->c, r->prefix, &first->d, &first->loc, first->chunk_len, obj, &res);
		if (rc < 0) {
			restore_fail_chunk(r, rc, &first->d, res.message[0] ? res.message : strerror(-rc));
			return rc;
		}
		return restore_group_write(r, &r->groups[u->first], obj + TIER_CHUNK_HDR);
	}
	rc = tier_pack_key(r->prefix, &first->loc.pack, key, sizeof(key));
	if (rc == 0)
		rc = s3_get(r->c, key, first->loc.off, (size_t)u->bytes, obj, &got, &res);
	/* -EFBIG: a server that sent more than the range; -ERANGE: a run placed past the end of its pack. */
	if (rc == -EFBIG || rc == -ERANGE) {
		snprintf(res.message, sizeof(res.message), "%.300s at offset %llu: chunk object is corrupt (%s)", key,
			 (unsigned long long)first->loc.off, rc == -EFBIG ? "more bytes than asked for" :
			 "past the end of the pack");
		rc = -EIO;
	}
	if (rc < 0) {
		restore_fail_chunk(r, rc, &first->d, res.message[0] ? res.message : strerror(-rc));
		return rc;
	}
	for (size_t gi = u->first; gi < u->end; gi++) {
		const struct restore_group *g = &r->groups[gi];
		const struct restore_ref *m = &r->refs[g->use];
		uint64_t at = m->loc.off - first->loc.off, olen = TIER_CHUNK_HDR + m->chunk_len;
		uint8_t *p = obj + at + TIER_CHUNK_HDR, *aligned;

		/* A short answer (a pack shorter than its manifest says) fails the members it cut. */
		if (got < at + olen || tier_chunk_check(&m->d, obj + at, (size_t)olen) < 0) {
			snprintf(why, sizeof(why),
				 "%.300s at offset %llu: chunk object is corrupt (header or SHA-256 mismatch)", key,
				 (unsigned long long)m->loc.off);
			restore_fail_chunk(r, -EIO, &m->d, why);
			return -EIO;
		}
		/* Members after the first lie 64 bytes per header off the 4 KiB grid: move the payload down to
		 * the boundary below it, over its own header and the previous members (written already), so
		 * that O_DIRECT takes it. A copy within this buffer costs far less than the page cache. */
		aligned = (uint8_t *)((uintptr_t)p & ~(uintptr_t)(RESTORE_ALIGN - 1));
		if (aligned != p)
			memmove(aligned, p, (size_t)m->chunk_len);
		rc = restore_group_write(r, g, aligned);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Claims runs of distinct chunks in file order, one GET each, into the worker's own buffer (the object
 * header first, so that the first payload lands 4 KiB-aligned). */
static void *restore_worker(void *arg)
{
	struct restore *r = arg;
	size_t cap = r->max_run + 1 + 2 * RESTORE_ALIGN;
	uint8_t *mem = malloc(cap), *obj;

	if (!mem)
		restore_fail(r, -ENOMEM, "out of memory for a chunk buffer");
	obj = mem ? (uint8_t *)(((uintptr_t)mem + TIER_CHUNK_HDR + RESTORE_ALIGN - 1) & ~(uintptr_t)(RESTORE_ALIGN - 1)) -
		      TIER_CHUNK_HDR : NULL;
	while (mem && atomic_load(&r->rc) == 0) {
		size_t ri = atomic_fetch_add(&r->next, 1);
		if (ri >= r->nruns || restore_run_fetch(r, &r->runs[ri], obj) < 0)
			break;
	}
	free(mem);
	atomic_fetch_add(&r->finished, 1);
	return NULL;
}

/* Cuts the groups, in fetch order, into runs: a group joins the run before it when both are pack
 * members and it starts where the previous one ends in the same pack, up to RESTORE_RUN_MAX payload
 * bytes and the members a pack holds at most. Everything here comes from the manifests; a run that
 * does not match the pack fails the members' checks, never gives wrong bytes. */
static void restore_plan_runs(struct restore *r)
{
	uint64_t payload = 0;

	for (size_t i = 0; i < r->ngroups; i++) {
		const struct restore_ref *x = &r->refs[r->groups[i].use];
		const struct restore_ref *prev = i ? &r->refs[r->groups[i - 1].use] : NULL;
		struct restore_run *u = r->nruns ? &r->runs[r->nruns - 1] : NULL;

		if (u && prev->loc.packed && x->loc.packed && digest_equal(&prev->loc.pack, &x->loc.pack) &&
		    x->loc.off == prev->loc.off + TIER_CHUNK_HDR + prev->chunk_len &&
		    payload + x->chunk_len <= RESTORE_RUN_MAX && u->end - u->first < TIER_PACK_MEMBERS_MAX) {
			u->end++;
			u->bytes += TIER_CHUNK_HDR + x->chunk_len;
			payload += x->chunk_len;
		} else {
			u = &r->runs[r->nruns++];
			*u = (struct restore_run){ .first = i, .end = i + 1, .bytes = TIER_CHUNK_HDR + x->chunk_len };
			payload = x->chunk_len;
		}
		if (u->bytes > r->max_run)
			r->max_run = u->bytes;
	}
}

struct pick {
	struct s3_client *c;
	const char *prefix, *run;
	char best[TIER_NAME_MAX + 1];
	int64_t best_step, best_ns;
	bool found;
	char msg[700];          /* why a version could not be judged */
};

/* COMMIT of each version prefix: the latest by step, then by seal time. Any COMMIT that cannot be
 * read or is refused stops the pick: "latest" is never guessed past it. */
static int pick_version(void *ctx, const struct s3_object *o)
{
	struct pick *p = ctx;
	struct tier_commit c;
	size_t len = strlen(o->key);
	const char *name;
	char version[TIER_NAME_MAX + 2];
	int rc;

	if (!o->is_prefix || len < 2)
		return 0;
	for (name = o->key + len - 1; name > o->key && name[-1] != '/'; name--)
		;
	snprintf(version, sizeof(version), "%.*s", (int)(o->key + len - 1 - name), name);
	if ((size_t)(o->key + len - 1 - name) > TIER_NAME_MAX || !tier_manifest_name_ok(version)) {
		snprintf(p->msg, sizeof(p->msg), "%.300s: not a valid version name", o->key);
		return -EBADMSG;
	}
	rc = tier_commit_get(p->c, p->prefix, p->run, version, &c, p->msg, sizeof(p->msg));
	if (rc == -ENOENT) {
		p->msg[0] = '\0';
		return 0;  /* not committed */
	}
	if (rc < 0)
		return rc;
	bool newer = !p->found || (c.step >= 0 && p->best_step >= 0 && c.step != p->best_step ? c.step > p->best_step :
											      c.sealed_ns > p->best_ns);
	if (newer) {
		memcpy(p->best, version, sizeof(p->best));
		p->best_step = c.step;
		p->best_ns = c.sealed_ns;
		p->found = true;
	}
	tier_commit_free(&c);
	return 0;
}

/* ---- laying out the tree beneath DEST ---- */

/* Opens path below the directory dir, never through a symlink, never above dir. */
static int open_beneath(int dir, const char *path, int flags, mode_t mode)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
				.mode = (flags & O_CREAT) ? mode : 0,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, dir, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* The directory that will hold path (beneath dest, O_PATH), and path's last name in *base. */
static int open_parent(int dest, const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	char dir[TIER_PATH_MAX + 1];

	*base = slash ? slash + 1 : path;
	if (!slash)
		return open_beneath(dest, ".", O_PATH | O_DIRECTORY, 0);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return open_beneath(dest, dir, O_PATH | O_DIRECTORY, 0);
}

/* The permission bits a restored entry gets: no setuid, setgid or sticky bit from a bucket. */
static mode_t restore_mode(uint32_t mode, mode_t umask_bits)
{
	return (mode_t)(mode & 0777) & ~umask_bits;
}

/* Creates a new regular file of the version beneath dest (never through a symlink, never over
 * anything), opens it a second time O_DIRECT where the file system has it (through the descriptor,
 * not the path) and gives it its size: preallocated when the extents cover it all (a full disk fails
 * here, before any download), else sparse. Its mode is set last, so a read-only file can be opened
 * twice. */
static int restore_create(int dest, const struct tier_manifest_entry *e, mode_t umask_bits, struct restore_file *f)
{
	char self[64];
	uint64_t covered = 0;

	f->dfd = -1;
	f->fd = open_beneath(dest, e->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (f->fd < 0)
		return f->fd;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", f->fd);
	f->dfd = open(self, O_WRONLY | O_DIRECT | O_CLOEXEC);  /* -1 (EINVAL) on tmpfs and the like: fine */
	for (size_t x = 0; x < e->next; x++)
		covered += e->ext[x].len;
	if (covered == e->size && e->size > 0 && fallocate(f->fd, 0, 0, (off_t)e->size) < 0 && errno != EOPNOTSUPP)
		return -errno;
	if (ftruncate(f->fd, (off_t)e->size) < 0 || fchmod(f->fd, restore_mode(e->mode, umask_bits)) < 0)
		return -errno;
	return 0;
}

/* Creates the version's directories (0700 for now) and files beneath dest, in manifest order (each
 * directory before its contents), and collects every extent; files are left open in r->files
 * (*nfiles of them), and the distinct chunks are put in fetch order (r->groups). Symlinks and the
 * directories' own modes come after the download (restore_finish). The groups are cut into runs
 * fetched with one GET each (restore_plan_runs). */
static int restore_layout(int dest, const struct tier_merged *all, mode_t umask_bits, struct restore *r,
			  size_t *nfiles, uint64_t *total, char *what, size_t whatsz)
{
	size_t files = 0, nrefs = 0, fi = 0;

	for (size_t i = 0; i < all->n; i++) {
		files += S_ISREG(all->e[i]->mode) && !all->e[i]->link;
		nrefs += all->e[i]->next;
	}
	r->files = calloc(files ? files : 1, sizeof(*r->files));
	r->refs = malloc((nrefs ? nrefs : 1) * sizeof(*r->refs));
	r->groups = malloc((nrefs ? nrefs : 1) * sizeof(*r->groups));
	r->runs = malloc((nrefs ? nrefs : 1) * sizeof(*r->runs));
	if (!r->files || !r->refs || !r->groups || !r->runs)
		return -ENOMEM;
	*total = 0;
	for (size_t i = 0; i < all->n; i++) {
		const struct tier_manifest_entry *e = all->e[i];
		const char *base;
		int rc = 0, pfd;

		snprintf(what, whatsz, "%s", e->path);
		if (S_ISDIR(e->mode)) {
			pfd = open_parent(dest, e->path, &base);
			if (pfd < 0)
				return pfd;
			if (mkdirat(pfd, base, 0700) < 0)
				rc = -errno;
			close(pfd);
		} else if (S_ISREG(e->mode) && !e->link) {
			rc = restore_create(dest, e, umask_bits, &r->files[fi]);
			*nfiles = ++fi;
			for (size_t x = 0; rc == 0 && x < e->next; x++) {
				struct restore_ref *rf = &r->refs[r->nrefs++];
				rf->d = e->ext[x].digest;
				rf->chunk_len = e->ext[x].chunk_len;
				rf->loc = e->ext[x].loc;
				rf->file = fi - 1;
				rf->file_off = e->ext[x].file_off;
				rf->len = e->ext[x].len;
				rf->chunk_off = e->ext[x].chunk_off;
				*total += rf->len;
			}
		}
		if (rc < 0)
			return rc;
	}
	what[0] = '\0';
	qsort(r->refs, r->nrefs, sizeof(*r->refs), ref_cmp);
	for (size_t i = 0; i < r->nrefs;) {
		struct restore_group *g = &r->groups[r->ngroups++];
		*g = (struct restore_group){ .first = i, .use = i, .file = r->refs[i].file,
					     .file_off = r->refs[i].file_off };
		for (i++; i < r->nrefs && memcmp(&r->refs[i].d, &r->refs[g->first].d, DIGEST_LEN) == 0; i++)
			if (r->refs[i].file < g->file || (r->refs[i].file == g->file && r->refs[i].file_off < g->file_off)) {
				g->use = i;
				g->file = r->refs[i].file;
				g->file_off = r->refs[i].file_off;
			}
		g->end = i;
	}
	if (r->ngroups > 0)
		qsort(r->groups, r->ngroups, sizeof(*r->groups), group_cmp);
	restore_plan_runs(r);
	return 0;
}

/* A fifo, socket or device node beneath dest. A device node keeps only its owner's permission bits:
 * a bucket must not hand every local user a way into a disk (and making one needs CAP_MKNOD). */
static int restore_node(int pfd, const char *base, const struct tier_manifest_entry *e, mode_t umask_bits)
{
	mode_t perm = restore_mode(e->mode, umask_bits);
	dev_t rdev = 0;

	if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) {
		perm &= 0700;
		rdev = makedev(e->rdev_major, e->rdev_minor);
	}
	return mknodat(pfd, base, (e->mode & S_IFMT) | perm, rdev) < 0 ? -errno : 0;
}

/* Another name of an entry restored before; never follows a symlink (linkat without
 * AT_SYMLINK_FOLLOW links a symlink itself). */
static int restore_link(int dest, int pfd, const char *base, const struct tier_manifest_entry *e)
{
	const char *tbase;
	int tfd = open_parent(dest, e->link, &tbase), rc = 0;

	if (tfd < 0)
		return tfd;
	if (linkat(tfd, tbase, pfd, base, 0) < 0)
		rc = -errno;
	close(tfd);
	return rc;
}

/* After the files are written and synced: fifos, sockets and device nodes, the symlinks (beneath
 * dest, never followed) and the other names of files with several (hard links, once what they name
 * exists), then each directory's own mode, deepest first (a read-only directory gets its mode once its
 * contents are in), each directory fsync'ed, dest last. */
static int restore_finish(int dest, const struct tier_merged *all, mode_t umask_bits, char *what, size_t whatsz)
{
	for (int links = 0; links < 2; links++) {
		for (size_t i = 0; i < all->n; i++) {
			const struct tier_manifest_entry *e = all->e[i];
			const char *base;
			int pfd, rc = 0;

			if (S_ISDIR(e->mode) || (S_ISREG(e->mode) && !e->link) || (e->link != NULL) != (links == 1))
				continue;
			snprintf(what, whatsz, "%s", e->path);
			pfd = open_parent(dest, e->path, &base);
			if (pfd < 0)
				return pfd;
			if (e->link)
				rc = restore_link(dest, pfd, base, e);
			else if (S_ISLNK(e->mode))
				rc = symlinkat(e->target, pfd, base) < 0 ? -errno : 0;
			else
				rc = restore_node(pfd, base, e, umask_bits);
			close(pfd);
			if (rc < 0)
				return rc;
		}
	}
	for (size_t i = all->n; i-- > 0;) {
		const struct tier_manifest_entry *e = all->e[i];
		int fd, rc = 0;

		if (!S_ISDIR(e->mode))
			continue;
		snprintf(what, whatsz, "%s", e->path);
		fd = open_beneath(dest, e->path, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0)
			return fd;
		if (fchmod(fd, restore_mode(e->mode, umask_bits)) < 0 || fsync(fd) < 0)
			rc = -errno;
		close(fd);
		if (rc < 0)
			return rc;
	}
	snprintf(what, whatsz, ".");
	if (fsync(dest) < 0)
		return -errno;
	what[0] = '\0';
	return 0;
}

/* DEST must be new or an empty directory: 0 when it is (*exists tells which), CLI_USAGE (printed) when not. */
static int dest_check(const char *dest, bool *exists)
{
	struct stat st;
	struct dirent *d;
	DIR *dir;
	int n = 0;

	*exists = stat(dest, &st) == 0;
	if (!*exists)
		return errno == ENOENT ? 0 : cli_error(CLI_USAGE, "%s: %s", dest, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_error(CLI_USAGE, "%s: not a directory (restore needs a new or empty folder)", dest);
	dir = opendir(dest);
	if (!dir)
		return cli_error(CLI_USAGE, "%s: %s", dest, strerror(errno));
	while ((d = readdir(dir)) != NULL)
		n += strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
	closedir(dir);
	return n ? cli_error(CLI_USAGE, "%s: not empty (restore needs a new or empty folder)", dest) : 0;
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

/* Opens DEST (creating it and its parents when new) and checks again that it is empty: what is
 * restored goes only beneath this descriptor. */
static int dest_open(const char *dest, bool existed, int *out)
{
	struct dirent *d;
	DIR *dir;
	int fd, n = 0;

	if (!existed && (fd = mkdirs(dest)) < 0)
		return fd;
	fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(dup(fd));
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((d = readdir(dir)) != NULL)
		n += strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
	closedir(dir);
	if (n) {
		close(fd);
		return -ENOTEMPTY;
	}
	*out = fd;
	return 0;
}

struct restore_opts {
	unsigned threads;
	bool json;
};

static int restore_opt(void *ctx, const struct cli_opt *o, const char *arg)
{
	struct restore_opts *ro = ctx;
	uint64_t n;

	if (o->id == 2) {
		ro->json = true;
		return 0;
	}
	if (cli_number("--threads", arg, 1, 256, &n) != 0)
		return CLI_USAGE;
	ro->threads = (unsigned)n;
	return 0;
}

static int restore_parse(int argc, char **argv, struct pecfs_config *cfg, struct restore_opts *ro,
			 const char **what, const char **dest)
{
	static const struct cli_opt own[] = { { "threads", 0, CLI_ARG, 1 }, { "json", 0, CLI_NO_ARG, 2 } };
	struct cli_args pos;
	int rc = cli_parse_s3_args("restore", argc, argv, own, 2, cli_help_restore, restore_opt, ro, cfg, &pos);

	if (rc != 0)
		return rc;
	if (pos.argc != 2) {
		rc = cli_error(CLI_USAGE, "usage: pecfs restore [options] RUN[@VERSION] DEST");
	} else {
		*what = pos.argv[0];
		*dest = pos.argv[1];
	}
	cli_args_free(&pos);
	if (rc != 0)
		return rc;
	if (!cfg->s3[0])
		return cli_error(CLI_USAGE, "missing --s3 s3://BUCKET/PREFIX");
	return 0;
}

static void restore_progress(struct restore *r, size_t nth, uint64_t total)
{
	bool tty = isatty(STDERR_FILENO);
	struct cli_progress bar;

	cli_progress_begin(&bar, "restoring");
	while (tty) {
		cli_progress_show(stderr, &bar, atomic_load(&r->done), total);
		if (atomic_load(&r->finished) >= nth || atomic_load(&r->rc) != 0)
			break;
		struct timespec ts = { 0, 200000000 };
		nanosleep(&ts, NULL);
	}
}

/* Syncs the folder holding path (DEST, when the restore created it). */
static void sync_parent(const char *path)
{
	char buf[PATH_MAX], *slash;
	int fd;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	if (slash == buf)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(buf, sizeof(buf), ".");
	fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* RUN[@VERSION] into run and version ("" when absent); CLI_USAGE (printed) for names the bucket cannot hold. */
static int restore_what(const char *what, char run[TIER_NAME_MAX + 1], char version[TIER_NAME_MAX + 1])
{
	const char *at = strchr(what, '@');
	size_t rlen = at ? (size_t)(at - what) : strlen(what);

	if (rlen > TIER_NAME_MAX || (at && strlen(at + 1) > TIER_NAME_MAX))
		return cli_error(CLI_USAGE, "%s: a run or version name is longer than %d bytes", what, TIER_NAME_MAX);
	memcpy(run, what, rlen);
	run[rlen] = '\0';
	snprintf(version, TIER_NAME_MAX + 1, "%s", at ? at + 1 : "");
	if (!tier_manifest_name_ok(run) || (at && !tier_manifest_name_ok(version)))
		return cli_error(CLI_USAGE, "%s: not a run name or RUN@VERSION", what);
	return 0;
}

int cli_restore(int argc, char **argv)
{
	struct pecfs_config cfg;
	struct tier_options o = { 0 };
	struct restore r = { 0 };
	struct tier_manifest_set ms = { 0 };
	struct tier_commit commit = { 0 };
	struct tier_merged all = { 0 };
	struct pick p = { 0 };
	char bucket[S3_BUCKET_MAX], err[700], key[TIER_PREFIX_MAX + 300], version[TIER_NAME_MAX + 1],
		run[TIER_NAME_MAX + 1], what_path[TIER_PATH_MAX + 1] = "";
	const char *what = NULL, *dest = NULL;
	struct restore_opts ro = { 16, false };
	struct timespec t0, t1;
	pthread_t th[256];
	size_t nth = 0, nfiles = 0;
	int code = CLI_FAILED, rc, destfd = -1;
	uint64_t total = 0;
	mode_t umask_bits;
	bool existed;

	pecfs_config_defaults(&cfg);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = restore_parse(argc, argv, &cfg, &ro, &what, &dest);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	rc = restore_what(what, run, version);
	if (rc == 0)
		rc = dest_check(dest, &existed);
	if (rc != 0)
		return rc;
	cli_tier_options(&cfg, &o);
	o.max_attempts = TIER_READER_ATTEMPTS;  /* one failed request fails the restore */
	if (tier_client_new(&o, ro.threads + 1, NULL, NULL, &r.c, bucket, r.prefix, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s", err);
	pthread_mutex_init(&r.lock, NULL);
	if (!version[0]) {
		struct s3_result res = { 0 };
		snprintf(key, sizeof(key), "%s%sruns/%s/", r.prefix, r.prefix[0] ? "/" : "", run);
		p.c = r.c;
		p.prefix = r.prefix;
		p.run = run;
		rc = s3_list(r.c, key, "/", 0, pick_version, &p, &res);
		if (rc < 0 || !p.found) {
			cli_error(CLI_FAILED, "%s: %s", run, rc < 0 ? (p.msg[0] ? p.msg : res.message) :
				  "no committed version in the bucket");
			goto out;
		}
		snprintf(version, sizeof(version), "%s", p.best);
	}
	rc = tier_version_load(r.c, r.prefix, run, version, &commit, &ms, err, sizeof(err));
	if (rc == 0)
		rc = tier_version_merge(&ms, &all, err, sizeof(err));
	if (rc == -ENOENT) {
		cli_error(CLI_FAILED, "%s@%s: no committed version of that name in the bucket", run, version);
		goto out;
	}
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s@%s: cannot read its manifests: %s", run, version, err);
		goto out;
	}
	rc = dest_open(dest, existed, &destfd);
	if (rc < 0) {
		cli_error(rc == -ENOTEMPTY ? CLI_USAGE : CLI_FAILED, "%s: %s", dest, rc == -ENOTEMPTY ?
			  "not empty (restore needs a new or empty folder)" : strerror(-rc));
		code = rc == -ENOTEMPTY ? CLI_USAGE : CLI_FAILED;
		goto out;
	}
	umask_bits = umask(077);  /* directories stay 0700, files 0600, until their own modes are set */
	rc = restore_layout(destfd, &all, umask_bits, &r, &nfiles, &total, what_path, sizeof(what_path));
	umask(umask_bits);
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s: creating %s: %s", dest, what_path[0] ? what_path : "the files", strerror(-rc));
		goto out;
	}
	for (; nth < ro.threads; nth++)
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
	rc = restore_finish(destfd, &all, umask_bits, what_path, sizeof(what_path));
	if (rc < 0) {
		cli_error(CLI_FAILED, "%s: finishing %s: %s", dest, what_path, strerror(-rc));
		goto out;
	}
	if (!existed)
		sync_parent(dest);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ro.json)
		cli_json_print(json_pack("{s:s, s:s, s:s, s:I, s:I, s:f}", "run", run, "version", version, "dest", dest,
					 "files", (json_int_t)nfiles, "bytes", (json_int_t)total, "seconds",
					 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));
	else
		printf("restored %s@%s to %s: %zu files, %llu bytes\n", run, version, dest, nfiles,
		       (unsigned long long)total);
	code = CLI_OK;
out:
	for (size_t i = 0; i < nfiles; i++) {
		if (r.files[i].fd >= 0)
			close(r.files[i].fd);
		if (r.files[i].dfd >= 0)
			close(r.files[i].dfd);
	}
	if (destfd >= 0)
		close(destfd);
	free(r.files);
	free(r.refs);
	free(r.groups);
	free(r.runs);
	tier_merged_free(&all);
	tier_manifest_set_free(&ms);
	tier_commit_free(&commit);
	pthread_mutex_destroy(&r.lock);
	s3_client_free(r.c);
	return code;
}
