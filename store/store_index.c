/* store_index.c - the in-memory chunk index: a chained hash table keyed by digest.
 *
 * Digests are uniformly random, so their first eight bytes are the hash. The table doubles when
 * it holds more entries than buckets. Not thread-safe by itself: callers hold store.lock.
 */
#include "store_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STORE_INDEX_MIN_BUCKETS 1024

static uint64_t digest_hash(const struct digest *d)
{
	uint64_t h;

	memcpy(&h, d->b, sizeof(h));
	return h;
}

int store_index_init(struct store_index *ix)
{
	ix->nbuckets = STORE_INDEX_MIN_BUCKETS;
	ix->count = 0;
	ix->buckets = calloc(ix->nbuckets, sizeof(*ix->buckets));
	return ix->buckets ? 0 : -ENOMEM;
}

void store_index_free(struct store_index *ix)
{
	if (!ix->buckets)
		return;
	for (uint64_t i = 0; i < ix->nbuckets; i++) {
		struct store_chunk_entry *e = ix->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(ix->buckets);
	ix->buckets = NULL;
}

struct store_chunk_entry *store_index_find(struct store_index *ix, const struct digest *d)
{
	struct store_chunk_entry *e = ix->buckets[digest_hash(d) & (ix->nbuckets - 1)];

	for (; e; e = e->next)
		if (digest_equal(&e->digest, d))
			return e;
	return NULL;
}

/* Doubles the bucket array; on allocation failure the table simply stays denser. */
static void store_index_grow(struct store_index *ix)
{
	uint64_t n = ix->nbuckets * 2;
	struct store_chunk_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (uint64_t i = 0; i < ix->nbuckets; i++) {
		struct store_chunk_entry *e = ix->buckets[i], *next;

		for (; e; e = next) {
			uint64_t h = digest_hash(&e->digest) & (n - 1);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(ix->buckets);
	ix->buckets = b;
	ix->nbuckets = n;
}

struct store_chunk_entry *store_index_add(struct store_index *ix, const struct digest *d)
{
	struct store_chunk_entry *e = calloc(1, sizeof(*e));
	uint64_t h;

	if (!e)
		return NULL;
	if (ix->count >= ix->nbuckets)
		store_index_grow(ix);
	e->digest = *d;
	h = digest_hash(d) & (ix->nbuckets - 1);
	e->next = ix->buckets[h];
	ix->buckets[h] = e;
	ix->count++;
	ix->gen++;
	return e;
}

void store_index_remove(struct store_index *ix, struct store_chunk_entry *e)
{
	struct store_chunk_entry **pp = &ix->buckets[digest_hash(&e->digest) & (ix->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			ix->count--;
			ix->gen++;
			free(e);
			return;
		}
	}
}

void store_index_foreach(struct store_index *ix, void (*cb)(struct store_chunk_entry *e, void *arg),
			 void *arg)
{
	for (uint64_t i = 0; i < ix->nbuckets; i++)
		for (struct store_chunk_entry *e = ix->buckets[i]; e; e = e->next)
			cb(e, arg);
}
