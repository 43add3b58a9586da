/* tier_cache.c - the local tier as a bounded cache of the bucket: least-recently-read eviction of
 * chunks that are known to be in the bucket (reading them back is tier_read_through's). A chunk not
 * yet uploaded is never evicted: only 'R'-marked chunks are candidates. Last reads are kept in
 * memory (chunk files' atime is unreliable); a chunk not read since the daemon started counts as
 * oldest, ordered by its file's mtime.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

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
	if (!meta_chunk_is_remote(g->t->meta, d))
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

/* A chunk's local file may go only while its object is known in the bucket in the current GC epoch:
 * a mark from an earlier epoch is checked with a HEAD first (and dropped when the object is gone). */
static bool still_in_bucket(struct tier *t, const struct digest *d, uint64_t epoch)
{
	struct s3_result res = { 0 };
	struct meta_remote r;
	struct meta_chunk c;
	struct tier_loc loc;
	int rc;

	if (meta_chunk_remote_get(t->meta, d, &r) < 0)
		return false;
	if (r.epoch == epoch)
		return true;
	if (meta_get_chunk(t->meta, d, &c) < 0)
		return false;
	loc = (struct tier_loc){ .packed = r.packed, .pack = r.pack, .off = r.pack_off };
	rc = tier_loc_head(t->client, t->prefix, d, &loc, c.len, &res);
	if (rc == 0) {
		r.epoch = epoch;
		meta_chunk_mark_remote(t->meta, d, &r);
		return true;
	}
	if (rc == -ENOENT)
		meta_chunk_unmark_remote(t->meta, d);
	return false;
}

void tier_cache_evict(struct tier *t)
{
	struct gather g = { .t = t };
	struct statvfs sv;
	uint64_t total = 0, need_free = 0, freed = 0, evicted = 0, epoch = 0;
	double ratio = 1.0;
	char msg[400];

	if (t->cache_size == 0 && t->cache_min_free <= 0)
		return;
	/* A pass lists every chunk file: at most one every 2 s. */
	if (tier_now_ns() < t->evict_after_ns)
		return;
	t->evict_after_ns = tier_now_ns() + 2000000000;
	if (chunk_store_foreach(store_chunks(t->st), gather_chunk, &g) < 0)
		goto out;
	if (tier_gc_prepare(t, NULL, 0, &epoch, msg, sizeof(msg)) < 0)
		goto out;  /* nothing leaves while the bucket is unreachable or being collected */
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
		if (!still_in_bucket(t, &g.c[i].d, epoch))
			continue;
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
