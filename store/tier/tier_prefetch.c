/* tier_prefetch.c - reads of chunks whose file is not local: read-through on demand
 * (tier_read_through) and read-ahead from the bucket for sequential readers of remote chunks.
 *
 * An open file keeps a struct tier_readahead; each read notes where it starts and ends. Once reads
 * follow each other (the start of one within a chunk of the end of the previous one), or from a read
 * at offset 0 on, every time the reader enters a new chunk of the file the next `ahead` chunks its extents name are looked up, and
 * those that are remote and absent locally are queued. Worker threads (half as many as chunks
 * ahead) fetch queued chunks in parallel through the same path as a demand read (tier_fetch_store: verified, then stored as a chunk
 * file), each under one of the tier's fetch slots, so a demand read of a chunk being prefetched waits
 * for that fetch instead of starting its own, and a prefetch never duplicates a demand fetch.
 *
 * A fetched chunk stays in one of a few memory buffers until newer fetches need the buffer, and
 * reads of it are served from there (tier_prefetch_read): its file was written around the page
 * cache, so reading it back would cost a disk read, and the reader normally arrives within moments.
 *
 * Invariants: memory is bounded (a queue of PREFETCH_QUEUE digests, 2 x workers object buffers);
 * only verified bytes enter a buffer; a corrupt object is never stored (the reader fetches it itself
 * when it gets there and gets EIO), and a chunk whose prefetch failed is not queued again for
 * PREFETCH_RETRY_NS; workers stop at tier_close, after finishing the fetch in hand. Everything in
 * struct tier_prefetch after `lock` is protected by it; a buffer being copied out is pinned.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tier_impl.h"

#define PREFETCH_QUEUE 64            /* chunks waiting for a worker, all readers together */
#define PREFETCH_FRESH 64            /* prefetched chunks remembered until read (hit counter) */
#define PREFETCH_FAILED 8            /* recent failures not queued again for a while */
#define PREFETCH_RETRY_NS (30ll * 1000000000)
#define PREFETCH_THREADS_MAX 16
#define PREFETCH_WINDOW_MAX 64           /* chunks ahead (the s3-prefetch setting's limit too) */

enum pf_state { PF_FREE = 0, PF_FETCHING, PF_READY };

struct pf_buf {
	struct tier_fetch_buf fb;
	enum pf_state state;
	struct digest d;                 /* PF_READY: the chunk held */
	const uint8_t *payload;          /* PF_READY: its verified bytes, len of them */
	size_t len;
	uint64_t seq;                    /* PF_READY: order of arrival, oldest reused first */
	unsigned pins;                   /* readers copying out of it */
};

struct tier_prefetch {
	struct tier *t;
	unsigned ahead;                  /* chunks ahead of a sequential reader */
	pthread_t *workers;
	unsigned nworkers;

	pthread_mutex_t lock;            /* protects everything below */
	pthread_cond_t queued;           /* work arrived, or stopping */
	struct digest queue[PREFETCH_QUEUE];  /* FIFO ring: nearest chunk of a reader first */
	unsigned head, count;
	struct digest fresh[PREFETCH_FRESH];  /* prefetched, not read yet (ring, oldest overwritten) */
	unsigned nfresh, fresh_next;
	struct digest failed[PREFETCH_FAILED];
	int64_t failed_until[PREFETCH_FAILED];
	unsigned failed_next;
	struct pf_buf *bufs;
	unsigned nbufs;
	uint64_t seq;
	pthread_cond_t unpinned;         /* a reader let go of a buffer (tier_prefetch_stop waits) */
};

/* ---- the queue (prefetch.lock held) ---- */

static bool queue_has(const struct tier_prefetch *p, const struct digest *d)
{
	for (unsigned i = 0; i < p->count; i++)
		if (digest_equal(&p->queue[(p->head + i) % PREFETCH_QUEUE], d))
			return true;
	return false;
}

static bool failed_recently(const struct tier_prefetch *p, const struct digest *d, int64_t now)
{
	for (unsigned i = 0; i < PREFETCH_FAILED; i++)
		if (p->failed_until[i] > now && digest_equal(&p->failed[i], d))
			return true;
	return false;
}

/* ---- scheduling, on the reader's thread ---- */

struct window {
	struct digest d[PREFETCH_WINDOW_MAX + 1];
	unsigned n, max;
};

/* Collects the distinct chunks the extents name, in file order. */
static int window_cb(const struct meta_extent *e, void *arg)
{
	struct window *w = arg;

	for (unsigned i = 0; i < w->n; i++)
		if (digest_equal(&w->d[i], &e->digest))
			return 0;
	w->d[w->n++] = e->digest;
	return w->n >= w->max;
}

/* Queues the remote, absent chunks of file bytes [off, off + (ahead + 1) chunks). */
static void prefetch_schedule(struct tier_prefetch *p, uint64_t ino, uint64_t off)
{
	struct tier *t = p->t;
	uint64_t chunk = store_chunk_size(t->st), plen;
	struct window w = { .max = p->ahead + 1 };
	int64_t now = tier_now_ns();
	bool added = false;

	if (meta_get_extents(t->meta, ino, off, (p->ahead + 1) * chunk, window_cb, &w) < 0)
		return;  /* a read-ahead hint only: the reads themselves report errors */
	for (unsigned i = 0; i < w.n; i++) {
		const struct digest *d = &w.d[i];
		if (chunk_store_stat(store_chunks(t->st), d, &plen) != -ENOENT || !meta_chunk_is_remote(t->meta, d))
			continue;
		if (tier_fetch_in_flight(t, d))
			continue;
		pthread_mutex_lock(&p->lock);
		if (p->count < PREFETCH_QUEUE && !queue_has(p, d) && !failed_recently(p, d, now)) {
			p->queue[(p->head + p->count) % PREFETCH_QUEUE] = *d;
			p->count++;
			added = true;
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (added) {
		pthread_mutex_lock(&p->lock);
		pthread_cond_broadcast(&p->queued);
		pthread_mutex_unlock(&p->lock);
	}
}

void tier_readahead(struct tier *t, struct tier_readahead *ra, uint64_t ino, uint64_t off, size_t len)
{
	struct tier_prefetch *p = t ? t->prefetch : NULL;
	uint64_t chunk, prev, idx;

	if (!p || len == 0)
		return;
	chunk = store_chunk_size(t->st);
	prev = atomic_exchange_explicit(&ra->next, off + len, memory_order_relaxed);
	/* The kernel sends a sequential reader's read-ahead as several requests that may arrive out of
	 * order: "near the previous end" is sequential enough. */
	if (off + chunk < prev || off > prev + chunk) {
		atomic_store_explicit(&ra->streak, 0, memory_order_relaxed);
		return;
	}
	/* Two reads in a row make a sequential reader; so does a read at offset 0, where copies and
	 * checkpoint loaders start (read-ahead then overlaps the first chunk's fetch). */
	if (atomic_fetch_add_explicit(&ra->streak, 1, memory_order_relaxed) < 1 && off != 0)
		return;
	/* Once per chunk entered: the window then moves one chunk further. */
	idx = off / chunk + 1;
	if (atomic_exchange_explicit(&ra->chunk, idx, memory_order_relaxed) == idx)
		return;
	prefetch_schedule(p, ino, off);
}

/* ---- the workers ---- */

static void note_failed(struct tier_prefetch *p, const struct digest *d)
{
	pthread_mutex_lock(&p->lock);
	p->failed[p->failed_next] = *d;
	p->failed_until[p->failed_next] = tier_now_ns() + PREFETCH_RETRY_NS;
	p->failed_next = (p->failed_next + 1) % PREFETCH_FAILED;
	pthread_mutex_unlock(&p->lock);
}

static void note_fresh(struct tier_prefetch *p, const struct digest *d)
{
	pthread_mutex_lock(&p->lock);
	p->fresh[p->fresh_next] = *d;
	p->fresh_next = (p->fresh_next + 1) % PREFETCH_FRESH;
	if (p->nfresh < PREFETCH_FRESH)
		p->nfresh++;
	pthread_mutex_unlock(&p->lock);
}

/* A buffer for the next fetch: a free one, else the oldest ready one nobody is reading. NULL when
 * every buffer is busy (the fetch then uses the worker's own thread buffer). */
static struct pf_buf *buf_take(struct tier_prefetch *p)
{
	struct pf_buf *pick = NULL;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nbufs; i++) {
		struct pf_buf *b = &p->bufs[i];
		if (b->state == PF_FREE) {
			pick = b;
			break;
		}
		if (b->state == PF_READY && b->pins == 0 && (!pick || b->seq < pick->seq))
			pick = b;
	}
	if (pick)
		pick->state = PF_FETCHING;
	pthread_mutex_unlock(&p->lock);
	return pick;
}

static void buf_done(struct tier_prefetch *p, struct pf_buf *b, const struct digest *d, const uint8_t *payload,
		     size_t len, bool ok)
{
	pthread_mutex_lock(&p->lock);
	b->state = ok ? PF_READY : PF_FREE;
	if (ok) {
		b->d = *d;
		b->payload = payload;
		b->len = len;
		b->seq = ++p->seq;
	}
	pthread_mutex_unlock(&p->lock);
}

/* Fetches one queued chunk unless it is local already or another fetch of it is running. */
static void prefetch_one(struct tier_prefetch *p, const struct digest *d)
{
	struct tier *t = p->t;
	const uint8_t *payload = NULL;
	struct pf_buf *b;
	size_t len = 0;
	uint64_t plen;
	int rc;

	if (!tier_fetch_try_claim(t, d))
		return;  /* a demand read (or another worker) is fetching it */
	if (chunk_store_stat(store_chunks(t->st), d, &plen) == -ENOENT) {
		b = buf_take(p);
		rc = tier_fetch_store(t, d, b ? &b->fb : NULL, &payload, &len);
		if (b)
			buf_done(p, b, d, payload, len, rc == 0);
		if (rc < 0) {
			note_failed(p, d);
		} else {
			note_fresh(p, d);
			pthread_mutex_lock(&t->lock);
			t->status.prefetched_chunks++;
			pthread_mutex_unlock(&t->lock);
		}
	}
	tier_fetch_release(t, d);
}

int tier_prefetch_read(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	struct tier_prefetch *p = t->prefetch;
	struct pf_buf *b = NULL;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nbufs && !b; i++)
		if (p->bufs[i].state == PF_READY && digest_equal(&p->bufs[i].d, d))
			b = &p->bufs[i];
	if (b && (off > b->len || len > b->len - off))
		b = NULL;  /* let the chunk store answer a bad range */
	if (b)
		b->pins++;
	pthread_mutex_unlock(&p->lock);
	if (!b)
		return -ENOENT;
	memcpy(dst, b->payload + off, len);
	pthread_mutex_lock(&p->lock);
	if (--b->pins == 0)
		pthread_cond_broadcast(&p->unpinned);
	pthread_mutex_unlock(&p->lock);
	tier_prefetch_note_read(t, d);
	tier_cache_touch(t, d);
	return 0;
}

static void *prefetch_main(void *arg)
{
	struct tier_prefetch *p = arg;
	struct tier *t = p->t;
	struct digest d;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->count == 0 && !atomic_load(&t->stopping))
			pthread_cond_wait(&p->queued, &p->lock);
		if (atomic_load(&t->stopping)) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		d = p->queue[p->head];
		p->head = (p->head + 1) % PREFETCH_QUEUE;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		prefetch_one(p, &d);
	}
}

void tier_prefetch_note_read(struct tier *t, const struct digest *d)
{
	struct tier_prefetch *p = t->prefetch;
	bool hit = false;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nfresh; i++) {
		unsigned k = (p->fresh_next + PREFETCH_FRESH - 1 - i) % PREFETCH_FRESH;
		if (digest_equal(&p->fresh[k], d)) {
			/* Forget it: the oldest entry takes its place, so the ring stays contiguous. */
			unsigned oldest = (p->fresh_next + PREFETCH_FRESH - p->nfresh) % PREFETCH_FRESH;
			p->fresh[k] = p->fresh[oldest];
			p->nfresh--;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (hit) {
		pthread_mutex_lock(&t->lock);
		t->status.prefetch_hits++;
		pthread_mutex_unlock(&t->lock);
	}
}

int tier_prefetch_start(struct tier *t, unsigned ahead)
{
	struct tier_prefetch *p;
	int rc;

	if (ahead == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->t = t;
	p->ahead = ahead > PREFETCH_WINDOW_MAX ? PREFETCH_WINDOW_MAX : ahead;
	/* Half the window in flight: more requests at once cost the server more than they gain. */
	p->nworkers = (p->ahead + 1) / 2 > PREFETCH_THREADS_MAX ? PREFETCH_THREADS_MAX : (p->ahead + 1) / 2;
	p->nbufs = 2 * p->nworkers;
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	p->bufs = calloc(p->nbufs, sizeof(*p->bufs));
	if (!p->workers || !p->bufs) {
		free(p->workers);
		free(p->bufs);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->queued, NULL);
	pthread_cond_init(&p->unpinned, NULL);
	for (unsigned i = 0; i < p->nworkers; i++) {
		rc = -pthread_create(&p->workers[i], NULL, prefetch_main, p);
		if (rc < 0) {
			p->nworkers = i;
			t->prefetch = p;
			tier_prefetch_stop(t);
			return rc;
		}
	}
	t->prefetch = p;
	return 0;
}

void tier_prefetch_stop(struct tier *t)
{
	struct tier_prefetch *p = t->prefetch;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&t->stopping, true);
	pthread_cond_broadcast(&p->queued);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	/* Readers are gone by now (the file system stops serving before the tier closes); wait anyway
	 * for any copy still running out of a buffer. */
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nbufs; i++)
		while (p->bufs[i].pins > 0)
			pthread_cond_wait(&p->unpinned, &p->lock);
	pthread_mutex_unlock(&p->lock);
	t->prefetch = NULL;
	for (unsigned i = 0; i < p->nbufs; i++)
		free(p->bufs[i].fb.mem);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->queued);
	pthread_cond_destroy(&p->unpinned);
	free(p->bufs);
	free(p->workers);
	free(p);
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

int tier_read_through(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	bool owner = false;
	int rc;

	if (!meta_chunk_is_remote(t->meta, d))
		return -ENOENT;
	while (!tier_fetch_claim(t, d, &owner)) {
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
