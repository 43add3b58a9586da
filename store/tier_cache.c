/* tier_cache.c - the local tier as a bounded cache of the bucket: read-through of chunks whose file
 * was evicted (or never fetched, after an import), and least-recently-read eviction of chunks that
 * are known to be in the bucket. A chunk not yet uploaded is never evicted: only 'R'-marked chunks
 * are candidates. Last reads are kept in memory (chunk files' atime is unreliable); a chunk not read
 * since the daemon started counts as oldest, ordered by its file's mtime.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "store_impl.h"
#include "tier_impl.h"

struct lru_entry {
	struct digest d;
	int64_t last_ns;
	struct lru_entry *next;
};

struct tier_lru {
	pthread_mutex_t lock;
	struct lru_entry **b;
	size_t nb, count;
};

int tier_lru_new(struct tier_lru **out)
{
	struct tier_lru *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->nb = 4096;
	l->b = calloc(l->nb, sizeof(*l->b));
	if (!l->b) {
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

void tier_lru_free(struct tier_lru *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nb; i++)
		for (struct lru_entry *e = l->b[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(l->b);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static size_t lru_slot(const struct tier_lru *l, const struct digest *d)
{
	uint64_t h;

	memcpy(&h, d->b, sizeof(h));  /* SHA-256 bytes are uniformly spread already */
	return (size_t)(h & (l->nb - 1));
}

static void lru_grow(struct tier_lru *l)
{
	size_t nb = l->nb * 2;
	struct lru_entry **b = calloc(nb, sizeof(*b));

	if (!b)
		return;  /* longer chains, still correct */
	for (size_t i = 0; i < l->nb; i++)
		for (struct lru_entry *e = l->b[i], *n; e; e = n) {
			uint64_t h;
			n = e->next;
			memcpy(&h, e->d.b, sizeof(h));
			e->next = b[h & (nb - 1)];
			b[h & (nb - 1)] = e;
		}
	free(l->b);
	l->b = b;
	l->nb = nb;
}

static int64_t lru_get(struct tier_lru *l, const struct digest *d)
{
	int64_t v = 0;

	pthread_mutex_lock(&l->lock);
	for (struct lru_entry *e = l->b[lru_slot(l, d)]; e; e = e->next)
		if (digest_equal(&e->d, d)) {
			v = e->last_ns;
			break;
		}
	pthread_mutex_unlock(&l->lock);
	return v;
}

void tier_cache_touch(struct tier *t, const struct digest *d)
{
	struct tier_lru *l = t->lru;
	struct lru_entry *e;
	int64_t now;

	if (!l)
		return;
	now = tier_now_ns();
	pthread_mutex_lock(&l->lock);
	for (e = l->b[lru_slot(l, d)]; e; e = e->next)
		if (digest_equal(&e->d, d))
			break;
	if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
		size_t s = lru_slot(l, d);
		e->d = *d;
		e->next = l->b[s];
		l->b[s] = e;
		if (++l->count > l->nb)
			lru_grow(l);
	}
	if (e)
		e->last_ns = now;
	pthread_mutex_unlock(&l->lock);
}

static int fetch_slot(struct tier *t, const struct digest *d)
{
	for (unsigned i = 0; i < t->nfetching; i++)
		if (digest_equal(&t->fetching[i], d))
			return (int)i;
	return -1;
}

/* Claims the fetch of d (true), or waits for another reader's fetch of it and returns false, after
 * which the chunk file is normally there. Readers of one chunk (kernel readahead issues several at
 * once) so cost one GET instead of one each. */
static bool fetch_claim(struct tier *t, const struct digest *d, bool *owner)
{
	pthread_mutex_lock(&t->lock);
	if (fetch_slot(t, d) >= 0) {
		while (fetch_slot(t, d) >= 0)
			pthread_cond_wait(&t->fetched, &t->lock);
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	*owner = t->nfetching < TIER_FETCH_SLOTS;
	if (*owner)
		t->fetching[t->nfetching++] = *d;
	pthread_mutex_unlock(&t->lock);
	return true;
}

static void fetch_release(struct tier *t, const struct digest *d)
{
	pthread_mutex_lock(&t->lock);
	int i = fetch_slot(t, d);
	if (i >= 0)
		t->fetching[i] = t->fetching[--t->nfetching];
	pthread_cond_broadcast(&t->fetched);
	pthread_mutex_unlock(&t->lock);
}

static int read_through_fetch(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len);

int tier_read_through(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	bool owner = false;
	int rc;

	if (!tier_chunk_is_remote(t->meta, d))
		return -ENOENT;
	while (!fetch_claim(t, d, &owner)) {
		rc = chunk_store_read(store_chunks(t->st), d, off, dst, len);
		if (rc != -ENOENT)
			return rc;  /* the other fetch stored it (or it failed: try ourselves) */
	}
	rc = read_through_fetch(t, d, off, dst, len);
	if (owner)
		fetch_release(t, d);
	return rc;
}

static int read_through_fetch(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	struct s3_result res = { 0 };
	void *payload = NULL;
	size_t plen = 0;
	int rc;

	rc = tier_chunk_fetch(t->client, t->prefix, d, &payload, &plen, &res);
	if (rc < 0) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_to_hex(d, hex);
		pthread_mutex_lock(&t->lock);
		if (rc == -EIO)
			t->status.fetch_corrupt++;
		pthread_mutex_unlock(&t->lock);
		tier_logf(t, S3_LOG_ERROR, "S3 tier: fetching chunk %s failed: %s", hex,
			  res.message[0] ? res.message : strerror(-rc));
		return rc == -ENOENT ? -EIO : rc;  /* marked remote but gone: the read cannot be served */
	}
	if (off + len > plen) {
		free(payload);
		return -EINVAL;
	}
	memcpy(dst, (const char *)payload + off, len);
	/* Keep it locally for the next reads; a full disk only costs a later fetch. */
	chunk_store_put(store_chunks(t->st), d, payload, plen);
	free(payload);
	pthread_mutex_lock(&t->lock);
	t->status.fetched_chunks++;
	t->status.fetched_bytes += plen;
	pthread_mutex_unlock(&t->lock);
	tier_cache_touch(t, d);
	return 0;
}

struct candidate {
	struct digest d;
	uint64_t bytes;
	int64_t key;  /* last read, or file mtime - 2^62 when not read since open */
};

struct gather {
	struct tier *t;
	struct candidate *c;
	size_t n, cap;
	uint64_t local;
};

static int gather_chunk(const struct digest *d, uint64_t file_bytes, void *arg)
{
	struct gather *g = arg;
	int64_t last, mtime = 0;

	g->local += file_bytes;
	if (!tier_chunk_is_remote(g->t->meta, d))
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		struct candidate *c = realloc(g->c, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		g->c = c;
		g->cap = cap;
	}
	last = lru_get(g->t->lru, d);
	if (last == 0) {
		chunk_store_mtime(store_chunks(g->t->st), d, &mtime);
		last = mtime / 4 - ((int64_t)1 << 62);
	}
	g->c[g->n++] = (struct candidate){ .d = *d, .bytes = file_bytes, .key = last };
	return 0;
}

static int candidate_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

void tier_cache_evict(struct tier *t)
{
	struct gather g = { .t = t };
	struct statvfs sv;
	uint64_t total = 0, need_free = 0, freed = 0, evicted = 0;
	double ratio = 1.0;

	if (t->cache_size == 0 && t->cache_min_free <= 0)
		return;
	/* A pass lists every chunk file: at most one every 2 s. */
	if (tier_now_ns() < t->evict_after_ns)
		return;
	t->evict_after_ns = tier_now_ns() + 2000000000;
	if (chunk_store_foreach(store_chunks(t->st), gather_chunk, &g) < 0)
		goto out;
	if (statvfs(store_data_dir(t->st), &sv) == 0 && sv.f_blocks > 0) {
		total = (uint64_t)sv.f_blocks * sv.f_frsize;
		ratio = (double)sv.f_bavail / (double)sv.f_blocks;
		if (ratio < t->cache_min_free)
			need_free = (uint64_t)((t->cache_min_free - ratio) * (double)total);
	}
	if (g.n > 0)  /* qsort wants a real array even when empty */
		qsort(g.c, g.n, sizeof(*g.c), candidate_cmp);
	for (size_t i = 0; i < g.n && !atomic_load(&t->stopping); i++) {
		bool over = t->cache_size && g.local - freed > t->cache_size;
		if (!over && freed >= need_free)
			break;
		if (chunk_store_delete(store_chunks(t->st), &g.c[i].d) == 0) {
			freed += g.c[i].bytes;
			evicted++;
		}
	}
out:
	pthread_mutex_lock(&t->lock);
	t->status.local_bytes = g.local - freed;
	t->status.evicted_chunks += evicted;
	t->status.evicted_bytes += freed;
	pthread_mutex_unlock(&t->lock);
	free(g.c);
}
