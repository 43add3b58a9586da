/* store_fsck.c - the consistency check behind `pecfs fsck`: chunks, extents, namespace.
 *
 * Reads only. Chunks: every recorded chunk's file is verified (header, block CRCs, SHA-256, length);
 * files without a record are garbage. Extents: each belongs to an inode that exists, names a
 * recorded chunk, lies inside it, and does not overlap its neighbour. Namespace (store_fsck_ns.c):
 * entries and inodes point at each other, link counts add up, symlink targets, xattrs and orphan
 * keys belong to inodes that exist. Problems are printed one per line; a bad chunk is reported with every path
 * that uses it. While mounted and busy, in-flight writes may show up as transient findings.
 */
#include "store_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum fsck_bad_kind { FSCK_CORRUPT = 1, FSCK_MISSING = 2 };

struct fsck_chunk {
	struct digest digest;
	uint64_t len;
	uint32_t bad;     /* enum fsck_bad_kind, 0 when fine */
	uint32_t users;   /* extents naming it */
};

/* A use of a bad chunk by a file, printed after the scans. */
struct fsck_use {
	struct digest digest;
	uint64_t ino;
	uint32_t kind;
};

struct fsck_ctx {
	struct store *st;
	FILE *out;
	struct store_fsck_report *r;
	struct fsck_chunk *chunks;  /* sorted by digest */
	size_t nchunks, capchunks;
	struct fsck_use *uses;
	size_t nuses, capuses;
	uint64_t prev_ino, prev_end;  /* overlap check: extents arrive in (ino, offset) order */
	uint64_t extent_errors;
	uint64_t unrecorded_digests;  /* distinct digests named by extents without a record */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);  /* chunk bytes verified; NULL */
	void *progress_ctx;
};

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

static int cmp_use(const void *a, const void *b)
{
	const struct fsck_use *x = a, *y = b;
	int c = memcmp(&x->digest, &y->digest, DIGEST_LEN);

	if (c)
		return c;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int fsck_collect_chunk(const struct meta_chunk *c, void *arg)
{
	struct fsck_ctx *f = arg;

	if (f->nchunks == f->capchunks) {
		size_t cap = f->capchunks ? 2 * f->capchunks : 1024;
		struct fsck_chunk *p = realloc(f->chunks, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		f->chunks = p;
		f->capchunks = cap;
	}
	f->chunks[f->nchunks++] = (struct fsck_chunk){ .digest = c->digest, .len = c->len };
	return 0;
}

static struct fsck_chunk *fsck_find_chunk(struct fsck_ctx *f, const struct digest *d)
{
	if (f->nchunks == 0)
		return NULL;  /* bsearch and qsort want a real array even when empty */
	return bsearch(d, f->chunks, f->nchunks, sizeof(*f->chunks), cmp_digest);
}

static void fsck_verify_chunks(struct fsck_ctx *f)
{
	char hex[DIGEST_HEX_LEN + 1];
	uint64_t total = 0, done = 0;

	for (size_t i = 0; i < f->nchunks; i++)
		total += f->chunks[i].len;
	for (size_t i = 0; i < f->nchunks; i++) {
		struct fsck_chunk *c = &f->chunks[i];
		uint64_t len;
		int rc;

		if (f->progress && i % 16 == 0)
			f->progress(f->progress_ctx, done, total);
		done += c->len;
		rc = chunk_store_verify(f->st->chunks, &c->digest);

		if (rc == 0 && (chunk_store_stat(f->st->chunks, &c->digest, &len) != 0 || len != c->len))
			rc = -EIO;
		if (rc == 0)
			continue;
		/* An S3-tier chunk evicted from (or not yet fetched to) local disk is not missing. */
		if (rc == -ENOENT && meta_chunk_is_remote(f->st->meta, &c->digest))
			continue;
		digest_to_hex(&c->digest, hex);
		if (rc == -ENOENT) {
			c->bad = FSCK_MISSING;
			f->r->missing_chunks++;
		} else {
			c->bad = FSCK_CORRUPT;
			f->r->corrupt_chunks++;
		}
	}
	if (f->progress)
		f->progress(f->progress_ctx, total, total);  /* the rest reads only metadata */
}

static int fsck_add_use(struct fsck_ctx *f, const struct digest *d, uint64_t ino, uint32_t kind)
{
	if (f->nuses && f->uses[f->nuses - 1].ino == ino && digest_equal(&f->uses[f->nuses - 1].digest, d))
		return 0;
	if (f->nuses == f->capuses) {
		size_t cap = f->capuses ? 2 * f->capuses : 64;
		struct fsck_use *p = realloc(f->uses, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		f->uses = p;
		f->capuses = cap;
	}
	f->uses[f->nuses++] = (struct fsck_use){ .digest = *d, .ino = ino, .kind = kind };
	return 0;
}

static int fsck_check_extent(uint64_t ino, const struct meta_extent *e, void *arg)
{
	struct fsck_ctx *f = arg;
	struct fsck_chunk *c = fsck_find_chunk(f, &e->digest);
	char path[PATH_MAX];

	f->r->extents++;
	if (ino != f->prev_ino) {
		/* The first extent of a file: the file must exist, or its extents hold chunks forever. */
		struct meta_inode in;
		int rc = meta_get_inode(f->st->meta, ino, &in);
		if (rc == -ENOENT) {
			fprintf(f->out, "extents of inode %llu, which does not exist\n", (unsigned long long)ino);
			f->extent_errors++;
		} else if (rc < 0) {
			return rc;
		}
	}
	if (ino == f->prev_ino && e->file_off < f->prev_end) {
		if (store_inode_path(f->st, ino, path, sizeof(path)) != 0)
			snprintf(path, sizeof(path), "inode %llu", (unsigned long long)ino);
		fprintf(f->out, "overlapping extents in %s at offset %llu\n", path,
			(unsigned long long)e->file_off);
		f->extent_errors++;
	}
	f->prev_ino = ino;
	f->prev_end = e->file_off + e->len;
	if (!c)
		return fsck_add_use(f, &e->digest, ino, FSCK_MISSING);
	c->users++;
	if (e->len == 0 || e->chunk_off > c->len || e->len > c->len - e->chunk_off) {
		if (store_inode_path(f->st, ino, path, sizeof(path)) != 0)
			snprintf(path, sizeof(path), "inode %llu", (unsigned long long)ino);
		fprintf(f->out, "extent of %s at offset %llu lies outside its chunk\n", path,
			(unsigned long long)e->file_off);
		f->extent_errors++;
	}
	if (c->bad)
		return fsck_add_use(f, &e->digest, ino, c->bad);
	return 0;
}

/* One line per (bad chunk, file using it), and one for bad chunks nobody uses. */
static void fsck_print_bad_chunks(struct fsck_ctx *f)
{
	char hex[DIGEST_HEX_LEN + 1], path[PATH_MAX];
	struct digest last;
	bool have_last = false;

	if (f->nuses)
		qsort(f->uses, f->nuses, sizeof(*f->uses), cmp_use);
	for (size_t i = 0; i < f->nuses; i++) {
		struct fsck_use *u = &f->uses[i];

		if (i > 0 && cmp_use(u, &f->uses[i - 1]) == 0)
			continue;
		if (u->kind == FSCK_MISSING && !fsck_find_chunk(f, &u->digest) &&
		    (!have_last || !digest_equal(&last, &u->digest))) {
			f->unrecorded_digests++;
			last = u->digest;
			have_last = true;
		}
		digest_to_hex(&u->digest, hex);
		if (store_inode_path(f->st, u->ino, path, sizeof(path)) != 0)
			snprintf(path, sizeof(path), "inode %llu (no path)", (unsigned long long)u->ino);
		fprintf(f->out, "%s chunk %s: used by %s\n", u->kind == FSCK_CORRUPT ? "corrupt" : "missing",
			hex, path);
	}
	for (size_t i = 0; i < f->nchunks; i++) {
		struct fsck_chunk *c = &f->chunks[i];

		if (!c->bad || c->users)
			continue;
		digest_to_hex(&c->digest, hex);
		fprintf(f->out, "%s chunk %s: used by no file\n", c->bad == FSCK_CORRUPT ? "corrupt" : "missing",
			hex);
	}
}

static int fsck_check_chunk_file(const struct digest *d, uint64_t file_bytes, void *arg)
{
	struct fsck_ctx *f = arg;
	char hex[DIGEST_HEX_LEN + 1];

	(void)file_bytes;
	if (fsck_find_chunk(f, d))
		return 0;
	digest_to_hex(d, hex);
	fprintf(f->out, "unrecorded chunk file %s (garbage for gc)\n", hex);
	f->r->unreferenced_chunks++;
	return 0;
}

int store_fsck(struct store *st, FILE *report, struct store_fsck_report *out)
{
	return store_fsck_progress(st, report, out, NULL, NULL);
}

int store_fsck_progress(struct store *st, FILE *report, struct store_fsck_report *out,
			void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx)
{
	struct store_fsck_report r = { 0 };
	struct fsck_ctx f = { .st = st, .out = report, .r = &r, .prev_ino = 0, .prev_end = 0,
			      .progress = progress, .progress_ctx = progress_ctx };
	int rc;

	pthread_mutex_lock(&st->maint_lock);
	rc = meta_foreach_chunk(st->meta, fsck_collect_chunk, &f);
	if (rc)
		goto out;
	/* Keys come in digest order already; sorting keeps bsearch correct whatever the scan order. */
	if (f.nchunks)
		qsort(f.chunks, f.nchunks, sizeof(*f.chunks), cmp_digest);
	r.chunks = f.nchunks;
	fsck_verify_chunks(&f);
	rc = meta_foreach_extent(st->meta, fsck_check_extent, &f);
	if (rc)
		goto out;
	fsck_print_bad_chunks(&f);
	r.missing_chunks += f.unrecorded_digests;
	for (size_t i = 0; i < f.nchunks; i++)
		if (!f.chunks[i].bad && f.chunks[i].users == 0)
			r.unreferenced_chunks++;
	rc = chunk_store_foreach(st->chunks, fsck_check_chunk_file, &f);
	if (rc)
		goto out;
	rc = store_fsck_namespace(st, report, &r);
	if (rc)
		goto out;
	r.extent_errors = f.extent_errors;
	r.problems = r.corrupt_chunks + r.missing_chunks + r.namespace_errors + r.extent_errors;
	fprintf(report, "fsck: %llu inodes, %llu extents, %llu chunks: %llu corrupt, %llu missing, "
		"%llu namespace errors, %llu extent errors, %llu unreferenced chunks: %s\n",
		(unsigned long long)r.inodes, (unsigned long long)r.extents, (unsigned long long)r.chunks,
		(unsigned long long)r.corrupt_chunks, (unsigned long long)r.missing_chunks,
		(unsigned long long)r.namespace_errors, (unsigned long long)r.extent_errors,
		(unsigned long long)r.unreferenced_chunks, r.problems ? "PROBLEMS FOUND" : "clean");
out:
	pthread_mutex_unlock(&st->maint_lock);
	free(f.chunks);
	free(f.uses);
	if (rc)
		fprintf(stderr, "pecfs: fsck could not finish: %s\n", strerror(-rc));
	if (out)
		*out = r;
	return rc;
}
