/* store_chunks.c - deduplicating chunk puts, references and reads through the in-memory index.
 *
 * A put hashes outside any lock, then either takes a reference on a present chunk, waits for a
 * concurrent put or deletion of the same digest to finish, or claims the digest (WRITING) and
 * stores it: file first (durable), then its record. The record is committed unsynced: the file is
 * already durable, and any extent naming the chunk is committed later in the same log.
 */
#include "store_impl.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void entry_ref_locked(struct store *st, struct store_chunk_entry *e)
{
	if (e->refs++ == 0)
		st->referenced_bytes += e->len;
}

/* Stores a chunk the caller has claimed (entry in WRITING); no lock held. */
static int store_chunk_write(struct store *st, const struct digest *d, const void *data, size_t len)
{
	struct meta_chunk rec = { .digest = *d, .len = len, .flags = 0 };
	struct meta_batch *b;
	int rc;

	rc = chunk_store_put(st->chunks, d, data, len);
	if (rc)
		return rc;
	b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	meta_batch_put_chunk(b, &rec);
	rc = meta_batch_commit(st->meta, b, false);
	meta_batch_free(b);
	/* On failure the file stays without a record: a stray file that gc removes. */
	return rc;
}

int store_chunk_put(struct store *st, const void *data, size_t len, struct digest *out, bool *was_new)
{
	struct store_chunk_entry *e;
	struct digest d;
	int rc;

	assert(len <= CHUNK_MAX_SIZE);
	digest_compute(data, len, &d);
	*out = d;

	pthread_mutex_lock(&st->lock);
	st->logical_put_bytes += len;
	for (;;) {
		e = store_index_find(&st->index, &d);
		if (!e)
			break;
		if (e->state == STORE_CHUNK_PRESENT) {
			entry_ref_locked(st, e);
			st->dedup_hits++;
			pthread_mutex_unlock(&st->lock);
			if (was_new)
				*was_new = false;
			return 0;
		}
		/* Someone else is writing or deleting these bytes: wait for the outcome. */
		pthread_cond_wait(&st->cond, &st->lock);
	}
	e = store_index_add(&st->index, &d);
	if (!e) {
		st->put_errors++;
		pthread_mutex_unlock(&st->lock);
		return -ENOMEM;
	}
	e->state = STORE_CHUNK_WRITING;
	e->len = len;
	pthread_mutex_unlock(&st->lock);

	rc = store_chunk_write(st, &d, data, len);

	pthread_mutex_lock(&st->lock);
	if (rc) {
		/* Waiters wake to an absent digest and try the put themselves. */
		store_index_remove(&st->index, e);
		st->put_errors++;
	} else {
		e->state = STORE_CHUNK_PRESENT;
		entry_ref_locked(st, e);
		st->stored_chunks++;
		st->stored_bytes += len;
		st->new_chunks++;
	}
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	if (was_new)
		*was_new = rc == 0;
	return rc;
}

int store_chunk_ref(struct store *st, const struct digest *d)
{
	struct store_chunk_entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		e = store_index_find(&st->index, d);
		if (!e || e->state == STORE_CHUNK_PRESENT)
			break;
		pthread_cond_wait(&st->cond, &st->lock);
	}
	if (e) {
		entry_ref_locked(st, e);
		rc = 0;
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_chunk_claim(struct store *st, const struct digest *d, uint64_t len)
{
	uint64_t payload;
	int rc = store_chunk_ref(st, d);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&st->lock);
	struct store_chunk_entry *e = store_index_find(&st->index, d);
	bool same_len = e && e->len == len;
	pthread_mutex_unlock(&st->lock);
	if (!same_len) {
		/* a digest names one byte string: another length means a caller that hashed wrong bytes */
		store_chunk_unref(st, d);
		return -ENOENT;
	}
	rc = chunk_store_stat(st->chunks, d, &payload);
	if (rc == 0 && payload != len)
		rc = -EIO;
	if (rc < 0) {
		/* evicted to the remote tier, or a damaged header: the caller writes the bytes instead */
		if (rc == -EIO) {
			char hex[DIGEST_HEX_LEN + 1];

			digest_to_hex(d, hex);
			fprintf(stderr, "pecfs: store: chunk %s has a damaged header: not linked\n", hex);
		}
		store_chunk_unref(st, d);
		return -ENOENT;
	}
	return 0;
}

void store_chunk_unref(struct store *st, const struct digest *d)
{
	struct store_chunk_entry *e;

	pthread_mutex_lock(&st->lock);
	e = store_index_find(&st->index, d);
	assert(e && e->state == STORE_CHUNK_PRESENT && e->refs > 0);
	if (e && e->refs > 0) {
		if (--e->refs == 0)
			st->referenced_bytes -= e->len;
	} else {
		char hex[DIGEST_HEX_LEN + 1];

		digest_to_hex(d, hex);
		fprintf(stderr, "pecfs: store: reference dropped on unreferenced chunk %s\n", hex);
	}
	pthread_mutex_unlock(&st->lock);
}

uint64_t store_chunk_refcount(struct store *st, const struct digest *d)
{
	struct store_chunk_entry *e;
	uint64_t refs = 0;

	pthread_mutex_lock(&st->lock);
	e = store_index_find(&st->index, d);
	if (e && e->state == STORE_CHUNK_PRESENT)
		refs = e->refs;
	pthread_mutex_unlock(&st->lock);
	return refs;
}

void store_chunk_prefetch(struct store *st, const struct digest *d, uint64_t off, size_t len)
{
	chunk_store_prefetch(st->chunks, d, off, len);
}

int store_chunk_read(struct store *st, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	const struct store_remote *r = atomic_load(&st->remote);
	int rc;

	/* A chunk fetched ahead of its reader is served from memory while it is held there. */
	if (r && r->read_held(r->ctx, d, off, dst, len) == 0)
		return 0;
	rc = chunk_store_read(st->chunks, d, off, dst, len);
	/* With a remote tier, an absent chunk file may be an evicted (or imported) chunk: fetch it. */
	if (rc == -ENOENT && r)
		rc = r->read_through(r->ctx, d, off, dst, len);
	else if (rc == 0 && r)
		r->touch(r->ctx, d);
	if (rc == -EIO)
		atomic_fetch_add(&st->corrupt_reads, 1);
	return rc;
}

int store_attach_remote(struct store *st, const struct store_remote *r)
{
	const struct store_remote *none = NULL;

	return atomic_compare_exchange_strong(&st->remote, &none, r) ? 0 : -EEXIST;
}

void store_detach_remote(struct store *st)
{
	atomic_store(&st->remote, NULL);
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	pthread_mutex_lock(&st->lock);
	out->chunks = st->stored_chunks;
	out->stored_bytes = st->stored_bytes;
	out->referenced_bytes = st->referenced_bytes;
	out->logical_put_bytes = st->logical_put_bytes;
	out->dedup_hits = st->dedup_hits;
	out->new_chunks = st->new_chunks;
	out->put_errors = st->put_errors;
	pthread_mutex_unlock(&st->lock);
	out->corrupt_reads = atomic_load(&st->corrupt_reads);
	out->free_disk_bytes = chunk_store_free_bytes(st->chunks);
}

struct digest_list {
	struct digest *d;
	size_t n;
};

static void list_entry(struct store_chunk_entry *e, void *arg)
{
	struct digest_list *l = arg;

	l->d[l->n++] = e->digest;
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

int store_chunk_list(struct store *st, struct digest **out, size_t *n, uint64_t *gen)
{
	struct digest_list l = { 0 };

	pthread_mutex_lock(&st->lock);
	*gen = st->index.gen;
	if (!out) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	l.d = malloc((st->index.count ? st->index.count : 1) * sizeof(*l.d));
	if (!l.d) {
		pthread_mutex_unlock(&st->lock);
		return -ENOMEM;
	}
	store_index_foreach(&st->index, list_entry, &l);
	pthread_mutex_unlock(&st->lock);
	qsort(l.d, l.n, sizeof(*l.d), digest_cmp);
	*out = l.d;
	*n = l.n;
	return 0;
}
