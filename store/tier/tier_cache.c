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

#include "thread_buf.h"
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

	tier_prefetch_note_read(t, d);
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

bool tier_fetch_in_flight(struct tier *t, const struct digest *d)
{
	pthread_mutex_lock(&t->lock);
	bool busy = fetch_slot(t, d) >= 0;
	pthread_mutex_unlock(&t->lock);
	return busy;
}

bool tier_fetch_try_claim(struct tier *t, const struct digest *d)
{
	bool claimed = false;

	pthread_mutex_lock(&t->lock);
	if (fetch_slot(t, d) < 0 && t->nfetching < TIER_FETCH_SLOTS) {
		t->fetching[t->nfetching++] = *d;
		claimed = true;
	}
	pthread_mutex_unlock(&t->lock);
	return claimed;
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

void tier_fetch_release(struct tier *t, const struct digest *d)
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

	if (!meta_chunk_is_remote(t->meta, d))
		return -ENOENT;
	while (!fetch_claim(t, d, &owner)) {
		rc = chunk_store_read(store_chunks(t->st), d, off, dst, len);
		if (rc == 0)
			tier_prefetch_note_read(t, d);
		if (rc != -ENOENT)
			return rc;  /* the other fetch stored it (or it failed: try ourselves) */
	}
	/* A read-ahead may have stored it between our miss and the claim. */
	rc = chunk_store_read(store_chunks(t->st), d, off, dst, len);
	if (rc == -ENOENT)
		rc = read_through_fetch(t, d, off, dst, len);
	else if (rc == 0)
		tier_prefetch_note_read(t, d);
	if (owner)
		tier_fetch_release(t, d);
	return rc;
}

/* Each thread's object buffer for demand reads, reused: fresh pages fault in slowly here, and a
 * chunk is a few MiB. At most one per FUSE thread. */
static struct thread_buf fetch_buf = THREAD_BUF_INIT;

/* Where an object of a len-byte payload goes in mem (of len + TIER_FETCH_SLACK bytes): the payload
 * lands 4 KiB-aligned, which lets chunk_store_put write it with O_DIRECT (no copy into the page
 * cache, the largest cost of a cache fill). */
uint8_t *tier_fetch_place(void *mem)
{
	return (uint8_t *)(((uintptr_t)mem + TIER_CHUNK_HDR + 4095) & ~(uintptr_t)4095) - TIER_CHUNK_HDR;
}

/* Fetches the object of d into *obj (in buf, or the thread's buffer when buf is NULL); the payload
 * length is known from the chunk record. */
static int fetch_object(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, uint8_t **obj,
			size_t *plen, struct s3_result *res)
{
	struct meta_chunk rec;
	void *mem, *p = NULL;
	int rc;

	if (meta_get_chunk(t->meta, d, &rec) < 0 || rec.len > CHUNK_MAX_SIZE) {
		/* No record of its length (not expected for a chunk marked remote): fetch it whole. */
		rc = tier_chunk_fetch(t->client, t->prefix, d, &p, plen, res);
		if (rc < 0)
			return rc;
		rec.len = *plen;
	}
	if (buf && buf->cap < rec.len + TIER_FETCH_SLACK) {
		free(buf->mem);
		buf->mem = malloc(rec.len + TIER_FETCH_SLACK);
		buf->cap = buf->mem ? rec.len + TIER_FETCH_SLACK : 0;
	}
	mem = buf ? buf->mem : thread_buf_get(&fetch_buf, rec.len + TIER_FETCH_SLACK);
	if (!mem) {
		free(p);
		return -ENOMEM;
	}
	*obj = tier_fetch_place(mem);
	*plen = rec.len;
	if (!p)
		return tier_chunk_fetch_into(t->client, t->prefix, d, rec.len, *obj, res);
	memcpy(*obj + TIER_CHUNK_HDR, p, rec.len);
	free(p);
	return 0;
}

int tier_fetch_store(struct tier *t, const struct digest *d, struct tier_fetch_buf *buf, const uint8_t **payload,
		     size_t *plen)
{
	struct s3_result res = { 0 };
	uint8_t *obj = NULL;
	int rc;

	rc = fetch_object(t, d, buf, &obj, plen, &res);
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
	*payload = obj + TIER_CHUNK_HDR;
	/* Keep it locally for the next reads; a full disk only costs a later fetch. */
	chunk_store_put(store_chunks(t->st), d, *payload, *plen);
	pthread_mutex_lock(&t->lock);
	t->status.fetched_chunks++;
	t->status.fetched_bytes += *plen;
	pthread_mutex_unlock(&t->lock);
	tier_cache_touch(t, d);
	return 0;
}

static int read_through_fetch(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	const uint8_t *payload = NULL;
	size_t plen = 0;
	int rc;

	rc = tier_fetch_store(t, d, NULL, &payload, &plen);
	if (rc == 0 && off + len > plen)
		rc = -EINVAL;
	if (rc == 0)
		memcpy(dst, payload + off, len);
	return rc;
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
	char key[TIER_PREFIX_MAX + 160];
	struct s3_result res = { 0 };
	struct meta_chunk c;
	uint64_t seen, size = 0;
	int rc;

	if (meta_chunk_remote_epoch(t->meta, d, &seen) == 0 && seen == epoch)
		return true;
	if (tier_chunk_key(t->prefix, d, key, sizeof(key)) < 0 || meta_get_chunk(t->meta, d, &c) < 0)
		return false;
	rc = s3_head(t->client, key, &size, NULL, &res);
	if (rc == 0 && size == c.len + TIER_CHUNK_HDR) {
		meta_chunk_mark_remote(t->meta, d, epoch);
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
