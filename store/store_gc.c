/* store_gc.c - garbage collection: chunks no extent references, and stray chunk files.
 *
 * A chunk is claimed (DELETING) under the index lock only while it has no reference, so a
 * concurrent put either took its reference before the claim or waits and stores the bytes anew.
 * Records are deleted (synced) before files, so no record ever names a missing file. Stray files
 * (durable file, crash before the record) are claimed the same way, and left alone while young.
 */
#include "store_impl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GC_BATCH 1024
#define GC_STRAY_MIN_AGE_NS (10ll * 1000000000)

struct digest_list {
	struct digest *d;
	size_t n, cap;
};

static int digest_list_push(struct digest_list *l, const struct digest *d)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct digest *p = realloc(l->d, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->d = p;
		l->cap = cap;
	}
	l->d[l->n++] = *d;
	return 0;
}

struct gc_scan {
	struct digest_list list;
	uint64_t kept;
	int err;
};

static void gc_collect_unreferenced(struct store_chunk_entry *e, void *arg)
{
	struct gc_scan *s = arg;

	if (e->state != STORE_CHUNK_PRESENT)
		return;
	if (e->refs > 0) {
		s->kept++;
		return;
	}
	if (!s->err)
		s->err = digest_list_push(&s->list, &e->digest);
}

/* Claims, unrecords and removes up to GC_BATCH candidates starting at cand[0]. */
static int gc_remove_batch(struct store *st, const struct digest *cand, size_t n, struct store_gc_report *r)
{
	struct store_chunk_entry *claimed[GC_BATCH];
	struct meta_batch *b = meta_batch_new();
	size_t k = 0;
	int rc = 0;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		struct store_chunk_entry *e = store_index_find(&st->index, &cand[i]);

		/* Re-checked under the lock: a put may have referenced it since the scan. */
		if (!e || e->state != STORE_CHUNK_PRESENT || e->refs > 0)
			continue;
		e->state = STORE_CHUNK_DELETING;
		claimed[k++] = e;
		meta_batch_del_chunk(b, &e->digest);
	}
	pthread_mutex_unlock(&st->lock);
	if (k == 0)
		goto out;

	rc = meta_batch_commit(st->meta, b, true);
	if (rc) {
		pthread_mutex_lock(&st->lock);
		for (size_t i = 0; i < k; i++)
			claimed[i]->state = STORE_CHUNK_PRESENT;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		goto out;
	}
	/* Entries in DELETING are not removed by anyone else: reading them unlocked is safe. */
	for (size_t i = 0; i < k; i++) {
		int err = chunk_store_delete(st->chunks, &claimed[i]->digest);

		if (err && err != -ENOENT)
			fprintf(stderr, "pecfs: gc: chunk file left behind (no record; the next gc retries)\n");
	}
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < k; i++) {
		r->chunks_removed++;
		r->bytes_removed += claimed[i]->len;
		st->stored_chunks--;
		st->stored_bytes -= claimed[i]->len;
		store_index_remove(&st->index, claimed[i]);
	}
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
out:
	meta_batch_free(b);
	return rc;
}

static int gc_collect_stray(const struct digest *d, uint64_t file_bytes, void *arg)
{
	struct digest_list *l = arg;

	(void)file_bytes;
	return digest_list_push(l, d);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A file with no index entry has no record (the index holds every recorded chunk, and a put
 * holds a WRITING entry from before its file exists until after its record does). */
static int gc_remove_stray(struct store *st, const struct digest *d, struct store_gc_report *r)
{
	struct store_chunk_entry *e;
	struct meta_chunk rec;
	int64_t mtime;
	int rc;

	pthread_mutex_lock(&st->lock);
	if (store_index_find(&st->index, d)) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	e = store_index_add(&st->index, d);
	if (!e) {
		pthread_mutex_unlock(&st->lock);
		return -ENOMEM;
	}
	e->state = STORE_CHUNK_DELETING;
	pthread_mutex_unlock(&st->lock);

	rc = meta_get_chunk(st->meta, d, &rec);
	if (rc == -ENOENT && chunk_store_mtime(st->chunks, d, &mtime) == 0 &&
	    now_ns() - mtime >= GC_STRAY_MIN_AGE_NS) {
		if (chunk_store_delete(st->chunks, d) == 0)
			r->files_removed++;
	}
	rc = rc == -ENOENT ? 0 : rc;

	pthread_mutex_lock(&st->lock);
	store_index_remove(&st->index, e);
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int gc_run(struct store *st, struct store_gc_report *out, bool strays,
		  void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx);

int store_gc(struct store *st, struct store_gc_report *out)
{
	return gc_run(st, out, true, NULL, NULL);
}

int store_gc_progress(struct store *st, struct store_gc_report *out,
		      void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx)
{
	return gc_run(st, out, true, progress, progress_ctx);
}

int store_gc_garbage(struct store *st, struct store_gc_report *out)
{
	return gc_run(st, out, false, NULL, NULL);
}

uint64_t store_garbage_bytes(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	uint64_t g = st->stored_bytes > st->referenced_bytes ? st->stored_bytes - st->referenced_bytes : 0;
	pthread_mutex_unlock(&st->lock);
	return g;
}

static int gc_run(struct store *st, struct store_gc_report *out, bool strays,
		  void (*progress)(void *ctx, uint64_t done, uint64_t total), void *progress_ctx)
{
	struct store_gc_report r = { 0 };
	struct gc_scan scan = { { NULL, 0, 0 }, 0, 0 };
	struct digest_list stray = { NULL, 0, 0 };
	int rc;

	pthread_mutex_lock(&st->maint_lock);
	pthread_mutex_lock(&st->lock);
	store_index_foreach(&st->index, gc_collect_unreferenced, &scan);
	pthread_mutex_unlock(&st->lock);
	rc = scan.err;
	for (size_t i = 0; !rc && i < scan.list.n; i += GC_BATCH) {
		size_t n = scan.list.n - i < GC_BATCH ? scan.list.n - i : GC_BATCH;

		if (progress)
			progress(progress_ctx, i, scan.list.n);
		rc = gc_remove_batch(st, scan.list.d + i, n, &r);
	}
	if (progress)
		progress(progress_ctx, scan.list.n, scan.list.n);
	if (!rc && strays)
		rc = chunk_store_foreach(st->chunks, gc_collect_stray, &stray);
	for (size_t i = 0; !rc && i < stray.n; i++)
		rc = gc_remove_stray(st, &stray.d[i], &r);

	pthread_mutex_lock(&st->lock);
	r.chunks_kept = st->stored_chunks;
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_unlock(&st->maint_lock);
	free(scan.list.d);
	free(stray.d);
	if (out)
		*out = r;
	return rc;
}
