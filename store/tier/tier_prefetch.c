/* tier_prefetch.c - reads of chunks whose file is not local: read-through on demand
 * (tier_read_through) and read-ahead from the bucket for sequential readers of remote chunks.
 *
 * Every time a sequential reader enters a new chunk of a file (read_pattern.h), the next `ahead`
 * chunks its extents name are looked up, and those that are remote and absent locally are queued.
 * Worker threads (half as many as chunks ahead) fetch queued chunks in parallel through the same
 * path as a demand read (tier_fetch_verified, then tier_fetch_keep stores it as a chunk file), each
 * under one of the tier's fetch slots, so a demand read of a chunk being prefetched waits for that
 * fetch instead of starting its own, and a prefetch never duplicates a demand fetch.
 *
 * A chunk that is a member of a pack (FORMAT.md section 5, "Packs") is fetched together with the
 * chunks that follow it in the reader's file while they follow it in the pack too: one ranged GET
 * for a run of up to half the window (PREFETCH_RUN_MEMBERS, PREFETCH_RUN_MAX bytes; shorter near
 * the reader, see prefetch_take), each member under its own fetch slot and checked on its own
 * (tier_chunk_check), so a packed file costs about one request per half window instead of one per
 * chunk.
 *
 * A fetched chunk, or run, stays in one of a few memory buffers until newer fetches need the buffer,
 * and reads of it are served from there (tier_prefetch_read): its file was written around the page
 * cache, so reading it back would cost a disk read, and the reader normally arrives within moments.
 * A chunk is readable there as soon as it is verified; its chunk file is written afterwards, with its
 * fetch slot held until then, so a reader that arrived while it was on its way is woken at once
 * (tier_fetch_held) instead of waiting for the write and its syncs. A demand read that finds no fetch
 * of its chunk running does the same (demand_fetch): it fetches into a buffer, takes its bytes, and
 * leaves the chunk file to a worker.
 *
 * Invariants: memory is bounded (a queue of PREFETCH_QUEUE digests, 2 x workers buffers of one
 * object or one run each); only verified bytes enter a buffer; a corrupt object is never stored (the
 * reader fetches it itself when it gets there and gets EIO), and a chunk whose prefetch failed is not
 * queued again for PREFETCH_RETRY_NS; workers stop at tier_close, after finishing the fetch in hand.
 * Everything in struct tier_prefetch after `lock` is protected by it; a buffer being copied out, or
 * stored from, is pinned.
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
#define PREFETCH_RUN_MEMBERS (PREFETCH_WINDOW_MAX / 2)  /* chunks one GET brings at most: half a window */
#define PREFETCH_RUN_MAX (16u << 20)     /* payload bytes one GET of several chunks brings at most */
#define PREFETCH_ALIGN 4096u

enum pf_state { PF_FREE = 0, PF_FETCHING, PF_READY };

/* A chunk a reader's window names, and where: a worker that takes it looks at the chunks after it. */
struct pf_item {
	struct digest d;
	uint64_t ino, off;               /* the file, and the start of an extent of it naming d */
	uint64_t ahead;                  /* chunks between the reader (when queued) and d */
};

/* A verified chunk in a buffer. */
struct pf_held {
	struct digest d;
	const uint8_t *payload;
	size_t len;
};

struct pf_buf {
	struct tier_fetch_buf fb;
	enum pf_state state;
	struct pf_held held[PREFETCH_RUN_MEMBERS];  /* PF_READY: the chunks held (nheld: one, or a run's) */
	unsigned nheld;
	uint64_t seq;                    /* PF_READY: order of arrival, oldest reused first */
	unsigned pins;                   /* readers copying out of it, or its worker storing from it */
};

/* A chunk a demand read fetched into a buffer: a worker writes its chunk file, then gives back its
 * fetch slot and the buffer's pin. */
struct pf_keep {
	struct digest d;
	struct pf_buf *b;
	const uint8_t *payload;
	size_t len;
};

struct tier_prefetch {
	struct tier *t;
	unsigned ahead;                  /* chunks ahead of a sequential reader */
	unsigned run_max;                /* chunks one GET of pack members brings at most */
	pthread_t *workers;
	unsigned nworkers;

	pthread_mutex_t lock;            /* protects everything below */
	pthread_cond_t queued;           /* work arrived, or stopping */
	struct pf_item queue[PREFETCH_QUEUE];  /* FIFO ring: nearest chunk of a reader first */
	unsigned head, count;
	struct digest fresh[PREFETCH_FRESH];  /* prefetched, not read yet (ring, oldest overwritten) */
	unsigned nfresh, fresh_next;
	struct digest failed[PREFETCH_FAILED];
	int64_t failed_until[PREFETCH_FAILED];
	unsigned failed_next;
	struct pf_buf *bufs;
	unsigned nbufs;
	uint64_t seq;
	struct pf_keep keep[2 * PREFETCH_THREADS_MAX];  /* one per buffer at most: each pins its own */
	unsigned nkeep;
	pthread_cond_t unpinned;         /* a reader let go of a buffer (tier_prefetch_stop waits) */
};

/* ---- the queue (prefetch.lock held) ---- */

static bool queue_has(const struct tier_prefetch *p, const struct digest *d)
{
	for (unsigned i = 0; i < p->count; i++)
		if (digest_equal(&p->queue[(p->head + i) % PREFETCH_QUEUE].d, d))
			return true;
	return false;
}

/* Takes d out of the queue (a run took it along), keeping the order of the rest. */
static void queue_drop(struct tier_prefetch *p, const struct digest *d)
{
	for (unsigned i = 0; i < p->count; i++) {
		if (!digest_equal(&p->queue[(p->head + i) % PREFETCH_QUEUE].d, d))
			continue;
		for (unsigned k = i; k + 1 < p->count; k++)
			p->queue[(p->head + k) % PREFETCH_QUEUE] = p->queue[(p->head + k + 1) % PREFETCH_QUEUE];
		p->count--;
		return;
	}
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
	uint64_t off[PREFETCH_WINDOW_MAX + 1];  /* the first extent naming each */
	unsigned n, max;
};

/* Collects the distinct chunks the extents name, in file order. */
static int window_cb(const struct meta_extent *e, void *arg)
{
	struct window *w = arg;

	for (unsigned i = 0; i < w->n; i++)
		if (digest_equal(&w->d[i], &e->digest))
			return 0;
	w->off[w->n] = e->file_off;
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
		uint64_t ahead = w.off[i] / chunk > off / chunk ? w.off[i] / chunk - off / chunk : 0;
		pthread_mutex_lock(&p->lock);
		if (p->count < PREFETCH_QUEUE && !queue_has(p, d) && !failed_recently(p, d, now)) {
			p->queue[(p->head + p->count) % PREFETCH_QUEUE] = (struct pf_item){ *d, ino, w.off[i], ahead };
			p->count++;
			added = true;
		}
		pthread_mutex_unlock(&p->lock);
	}
	/* One worker; it wakes the next once it has taken its chunk, or its run (wake_next). */
	if (added) {
		pthread_mutex_lock(&p->lock);
		pthread_cond_signal(&p->queued);
		pthread_mutex_unlock(&p->lock);
	}
}

void tier_readahead(struct tier *t, uint64_t ino, uint64_t off)
{
	struct tier_prefetch *p = t ? t->prefetch : NULL;

	if (p)
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

/* Makes a buffer's n verified chunks readable (PF_READY; none: PF_FREE) and wakes the readers that
 * wait for their fetch slots. With n > 0 the caller holds a pin, so the buffer is not reused while it
 * stores the chunks, and lets go with buf_unpin. */
static void buf_publish(struct tier_prefetch *p, struct pf_buf *b, const struct pf_held *held, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	b->nheld = 0;
	for (unsigned i = 0; i < n; i++)
		b->held[b->nheld++] = held[i];
	b->state = n ? PF_READY : PF_FREE;
	if (n) {
		b->seq = ++p->seq;
		b->pins++;
	}
	pthread_mutex_unlock(&p->lock);
	if (n)
		tier_fetch_held(p->t);
}

static void buf_unpin(struct tier_prefetch *p, struct pf_buf *b)
{
	pthread_mutex_lock(&p->lock);
	if (--b->pins == 0)
		pthread_cond_broadcast(&p->unpinned);
	pthread_mutex_unlock(&p->lock);
}

/* Fetches one chunk whose fetch slot the caller holds and that is not local. Its reader is served
 * from the buffer as soon as it is verified, not after its chunk file is written. */
static void prefetch_one(struct tier_prefetch *p, const struct digest *d)
{
	struct tier *t = p->t;
	const uint8_t *payload = NULL;
	struct pf_buf *b = buf_take(p);
	size_t len = 0;

	if (tier_fetch_verified(t, d, b ? &b->fb : NULL, &payload, &len) < 0) {
		if (b)
			buf_publish(p, b, NULL, 0);
		note_failed(p, d);
		return;
	}
	note_fresh(p, d);
	pthread_mutex_lock(&t->lock);
	t->status.prefetched_chunks++;
	pthread_mutex_unlock(&t->lock);
	if (b)
		buf_publish(p, b, &(struct pf_held){ *d, payload, len }, 1);
	tier_fetch_keep(t, d, payload, len);
	if (b)
		buf_unpin(p, b);
}

/* ---- runs: pack members fetched with one GET ---- */

struct pf_member {
	struct digest d;
	uint64_t off, len;       /* where its chunk object starts in the pack; payload bytes */
	uint8_t *payload;        /* after the GET: its checked payload in the buffer, NULL when refused */
};

struct pf_run {
	struct digest pack;
	struct pf_member m[PREFETCH_RUN_MEMBERS];  /* in pack order, back to back there */
	unsigned n;
	uint64_t bytes;          /* object bytes from the first member's start to the last one's end */
	uint64_t payload;        /* payload bytes of the members */
};

/* Adds d after the run's last member when it is the next member of the same pack (by its R record),
 * is not local, fits, has not failed lately (as the queue refuses it), and its fetch slot is free
 * (then taken). False ends the run: what follows is left to other fetches. */
static bool run_add(struct tier_prefetch *p, struct pf_run *run, const struct digest *d)
{
	const struct pf_member *last = &run->m[run->n - 1];
	struct tier *t = p->t;
	struct meta_remote rem;
	struct meta_chunk rec;
	uint64_t plen;
	bool failed;

	pthread_mutex_lock(&p->lock);
	failed = failed_recently(p, d, tier_now_ns());
	pthread_mutex_unlock(&p->lock);
	if (failed || meta_chunk_remote_get(t->meta, d, &rem) < 0 || !rem.packed ||
	    !digest_equal(&rem.pack, &run->pack) || rem.pack_off != last->off + TIER_CHUNK_HDR + last->len)
		return false;
	if (meta_get_chunk(t->meta, d, &rec) < 0 || rec.len > CHUNK_MAX_SIZE ||
	    run->payload + rec.len > PREFETCH_RUN_MAX)
		return false;
	if (chunk_store_stat(store_chunks(t->st), d, &plen) != -ENOENT || !tier_fetch_try_claim(t, d))
		return false;
	/* Look again under the slot: a fetch that ended between the look and the claim stored it. */
	if (chunk_store_stat(store_chunks(t->st), d, &plen) != -ENOENT) {
		tier_fetch_release(t, d);
		return false;
	}
	run->m[run->n++] = (struct pf_member){ .d = *d, .off = rem.pack_off, .len = rec.len };
	run->bytes += TIER_CHUNK_HDR + rec.len;
	run->payload += rec.len;
	return true;
}

/* The run that starts at it->d, a pack member (rem) whose slot the caller holds: the chunks that
 * follow it in the reader's file, as long as they follow it in the pack too, up to max chunks and
 * PREFETCH_RUN_MAX payload bytes. They may lie beyond the reader's window (by half a window at
 * most), which is what lets one GET serve half a window in a steady read. Those taken leave the
 * queue. run->n is 0 when d has no chunk record (the single fetch then reports it). */
static void run_collect(struct tier_prefetch *p, const struct pf_item *it, const struct meta_remote *rem,
			unsigned max, struct pf_run *run)
{
	struct tier *t = p->t;
	struct window w = { .max = max + 1 };
	struct meta_chunk rec;

	run->n = 0;
	if (meta_get_chunk(t->meta, &it->d, &rec) < 0 || rec.len > CHUNK_MAX_SIZE)
		return;
	run->pack = rem->pack;
	run->m[0] = (struct pf_member){ .d = it->d, .off = rem->pack_off, .len = rec.len };
	run->n = 1;
	run->bytes = TIER_CHUNK_HDR + rec.len;
	run->payload = rec.len;
	if (meta_get_extents(t->meta, it->ino, it->off, (uint64_t)(max + 1) * store_chunk_size(t->st), window_cb,
			     &w) < 0)
		return;
	for (unsigned i = 0; i < w.n && run->n < max; i++)
		if (!digest_equal(&w.d[i], &it->d) && !run_add(p, run, &w.d[i]))
			break;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 1; i < run->n; i++)
		queue_drop(p, &run->m[i].d);
	pthread_mutex_unlock(&p->lock);
}

/* Where each member of the run goes in a buffer whose first object starts at first: every payload on a
 * PREFETCH_ALIGN boundary, so that chunk_store_put writes it with O_DIRECT straight from the buffer,
 * and whole, since reads are served from there afterwards. The GET lays the members out there as they
 * arrive (s3_get_spans), so nothing moves afterwards. Each payload starts at the first boundary that
 * leaves room for its header after the previous payload: the buffer needs PREFETCH_ALIGN bytes per
 * member beyond the objects. */
static void run_place(const struct pf_run *run, uint8_t *first, struct s3_span *spans)
{
	uint8_t *place = first;

	for (unsigned i = 0; i < run->n; i++) {
		size_t olen = TIER_CHUNK_HDR + (size_t)run->m[i].len;
		spans[i] = (struct s3_span){ place, olen };
		place = (uint8_t *)(((uintptr_t)(place + olen + TIER_CHUNK_HDR) + PREFETCH_ALIGN - 1) &
				    ~(uintptr_t)(PREFETCH_ALIGN - 1)) - TIER_CHUNK_HDR;
	}
}

/* Fetches a run whose slots the caller holds with one ranged GET of the pack into a read-ahead
 * buffer, checks each member as a fetch of it alone would, stores and counts the good ones (as
 * tier_fetch_store does), counts and logs the refused ones (fetch_corrupt: nothing stored), and
 * gives every slot back. */
static void prefetch_run(struct tier_prefetch *p, struct pf_run *run)
{
	struct tier *t = p->t;
	struct s3_result res = { 0 };
	char key[TIER_PREFIX_MAX + 160], hex[DIGEST_HEX_LEN + 1];
	size_t need = (size_t)run->bytes + TIER_FETCH_SLACK + (size_t)run->n * PREFETCH_ALIGN, got = 0;
	size_t roomy = (size_t)PREFETCH_RUN_MAX + TIER_FETCH_SLACK + (size_t)p->run_max * PREFETCH_ALIGN;
	struct pf_buf *b = buf_take(p);
	struct s3_span spans[PREFETCH_RUN_MEMBERS];
	unsigned good = 0;
	int rc;

	/* Room for the longest run at once: runs grow as the reader gets ahead of them, and growing a
	 * buffer step by step costs a fresh allocation, and its page faults, at each step. */
	if (b && tier_fetch_buf_reserve(&b->fb, roomy > need ? roomy : need) < 0)
		(void)tier_fetch_buf_reserve(&b->fb, need);
	if (!b || !b->fb.mem) {
		/* No buffer for a run (every one in use, or no memory): each chunk on its own. */
		if (b)
			buf_publish(p, b, NULL, 0);
		for (unsigned i = 0; i < run->n; i++) {
			prefetch_one(p, &run->m[i].d);
			tier_fetch_release(t, &run->m[i].d);
		}
		return;
	}
	run_place(run, tier_fetch_place(b->fb.mem), spans);
	rc = tier_pack_key(t->prefix, &run->pack, key, sizeof(key));
	if (rc == 0)
		rc = s3_get_spans(t->client, key, run->m[0].off, spans, run->n, &got, &res);
	/* -EFBIG: a server that sent more than the range; -ERANGE: a run placed past the end of its pack. */
	if (rc == -EFBIG || rc == -ERANGE) {
		snprintf(res.message, sizeof(res.message), "%.300s at offset %llu: chunk object is corrupt (%s)", key,
			 (unsigned long long)run->m[0].off, rc == -EFBIG ? "more bytes than asked for" :
			 "past the end of the pack");
		rc = -EIO;
	}
	for (unsigned i = 0; i < run->n; i++) {
		struct pf_member *m = &run->m[i];
		uint64_t at = m->off - run->m[0].off, olen = TIER_CHUNK_HDR + m->len;

		m->payload = NULL;
		if (rc == 0 && got >= at + olen && tier_chunk_check(&m->d, spans[i].dst, (size_t)olen) == 0) {
			m->payload = (uint8_t *)spans[i].dst + TIER_CHUNK_HDR;
			good++;
			continue;
		}
		/* A short answer (a pack shorter than its R records say) refuses the members it cut. */
		digest_to_hex(&m->d, hex);
		if (rc == 0 || rc == -EIO) {
			pthread_mutex_lock(&t->lock);
			t->status.fetch_corrupt++;
			pthread_mutex_unlock(&t->lock);
		}
		if (rc == 0)
			tier_logf(t, S3_LOG_ERROR, "S3 tier: fetching chunk %s failed: %.300s at offset %llu: "
				  "chunk object is corrupt (header or SHA-256 mismatch)", hex, key,
				  (unsigned long long)m->off);
		else
			tier_logf(t, S3_LOG_ERROR, "S3 tier: fetching chunk %s failed: %s", hex,
				  res.message[0] ? res.message : strerror(-rc));
		note_failed(p, &m->d);
	}
	if (good) {
		pthread_mutex_lock(&t->lock);
		for (unsigned i = 0; i < run->n; i++)
			if (run->m[i].payload) {
				t->status.fetched_chunks++;
				t->status.fetched_bytes += run->m[i].len;
				t->status.prefetched_chunks++;
			}
		pthread_mutex_unlock(&t->lock);
		for (unsigned i = 0; i < run->n; i++)
			if (run->m[i].payload)
				note_fresh(p, &run->m[i].d);
	}
	/* Readers are served from the buffer from here on, while the chunk files are written; this
	 * worker's pin keeps the buffer from being reused meanwhile. */
	struct pf_held held[PREFETCH_RUN_MEMBERS];
	unsigned nheld = 0;
	for (unsigned i = 0; i < run->n; i++)
		if (run->m[i].payload)
			held[nheld++] = (struct pf_held){ run->m[i].d, run->m[i].payload, (size_t)run->m[i].len };
	buf_publish(p, b, held, nheld);
	for (unsigned i = 0; i < run->n; i++) {
		if (run->m[i].payload)
			tier_fetch_keep(t, &run->m[i].d, run->m[i].payload, (size_t)run->m[i].len);
		tier_fetch_release(t, &run->m[i].d);
	}
	if (nheld)
		buf_unpin(p, b);
}

/* Hands what is left in the queue to another worker. Workers wake one at a time, each once the one
 * before has taken its chunks: woken together, they took the members of one run apart, one GET each. */
static void wake_next(struct tier_prefetch *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->count > 0)
		pthread_cond_signal(&p->queued);
	pthread_mutex_unlock(&p->lock);
}

/* Fetches a queued chunk unless it is local already or another fetch of it is running; a pack member
 * brings the members after it along (run_collect), as many as it lies chunks ahead of the reader, up
 * to run_max: the chunks the reader needs next come in small GETs first (1, 2, 4, ... chunks, the
 * ramp of the kernel's own read-ahead), since a run is usable only once all of it has arrived and
 * the reader would wait for the whole of it; a steady reader queues chunks a window ahead, which
 * get whole runs. */
static void prefetch_take(struct tier_prefetch *p, const struct pf_item *it)
{
	struct tier *t = p->t;
	unsigned max = it->ahead < p->run_max ? (unsigned)it->ahead : p->run_max;
	struct meta_remote rem;
	struct pf_run run;
	uint64_t plen;

	if (!tier_fetch_try_claim(t, &it->d))
		return;  /* a demand read (or another worker) is fetching it */
	if (chunk_store_stat(store_chunks(t->st), &it->d, &plen) != -ENOENT) {
		tier_fetch_release(t, &it->d);
		return;
	}
	run.n = 0;
	if (max > 1 && meta_chunk_remote_get(t->meta, &it->d, &rem) == 0 && rem.packed)
		run_collect(p, it, &rem, max, &run);
	wake_next(p);
	if (run.n > 1) {
		prefetch_run(p, &run);
		return;
	}
	prefetch_one(p, &it->d);
	tier_fetch_release(t, &it->d);
}

int tier_prefetch_read(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	struct tier_prefetch *p = t->prefetch;
	const struct pf_held *h = NULL;
	struct pf_buf *b = NULL;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nbufs && !h; i++)
		for (unsigned k = 0; p->bufs[i].state == PF_READY && k < p->bufs[i].nheld && !h; k++)
			if (digest_equal(&p->bufs[i].held[k].d, d)) {
				b = &p->bufs[i];
				h = &b->held[k];
			}
	if (h && (off > h->len || len > h->len - off))
		h = NULL;  /* let the chunk store answer a bad range */
	if (h)
		b->pins++;
	pthread_mutex_unlock(&p->lock);
	if (!h)
		return -ENOENT;
	memcpy(dst, h->payload + off, len);
	pthread_mutex_lock(&p->lock);
	if (--b->pins == 0)
		pthread_cond_broadcast(&p->unpinned);
	pthread_mutex_unlock(&p->lock);
	tier_prefetch_note_read(t, d);
	tier_cache_touch(t, d);
	return 0;
}

static void keep_one(struct tier_prefetch *p, const struct pf_keep *k)
{
	tier_fetch_keep(p->t, &k->d, k->payload, k->len);
	tier_fetch_release(p->t, &k->d);
	buf_unpin(p, k->b);
}

static void *prefetch_main(void *arg)
{
	struct tier_prefetch *p = arg;
	struct tier *t = p->t;
	struct pf_item it;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->count == 0 && p->nkeep == 0 && !atomic_load(&t->stopping))
			pthread_cond_wait(&p->queued, &p->lock);
		/* Chunk files of demand reads first: their buffers stay pinned until written. */
		if (p->nkeep > 0) {
			struct pf_keep k = p->keep[--p->nkeep];
			pthread_mutex_unlock(&p->lock);
			keep_one(p, &k);
			continue;
		}
		if (atomic_load(&t->stopping)) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		it = p->queue[p->head];
		p->head = (p->head + 1) % PREFETCH_QUEUE;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		prefetch_take(p, &it);
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
	/* A run of pack members is half the window: one GET in flight while the reader consumes the
	 * previous one keeps as many bytes on the way as the workers did one chunk each. */
	p->run_max = (p->ahead + 1) / 2 > PREFETCH_RUN_MEMBERS ? PREFETCH_RUN_MEMBERS : (p->ahead + 1) / 2;
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
	/* The workers write every chunk of a demand read handed to them before they stop; one handed
	 * over after that is written here. */
	while (p->nkeep > 0)
		keep_one(p, &p->keep[--p->nkeep]);
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

/* A demand read of chunk d whose fetch slot the reader holds, with read-ahead on: d is fetched into
 * a read-ahead buffer and copied out, and a worker writes its chunk file afterwards, so the reader
 * does not wait for that write and its syncs; other readers of d are served from the buffer
 * meanwhile, since the slot stays held until the file is written. Without a buffer to spare, the
 * reader fetches and stores d itself. Gives the slot back (or hands it to the worker). */
static int demand_fetch(struct tier_prefetch *p, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	struct tier *t = p->t;
	struct pf_buf *b = buf_take(p);
	const uint8_t *payload = NULL;
	size_t plen = 0;
	int rc;

	if (!b) {
		rc = read_through_fetch(t, d, off, dst, len);
		tier_fetch_release(t, d);
		return rc;
	}
	rc = tier_fetch_verified(t, d, &b->fb, &payload, &plen);
	if (rc < 0) {
		buf_publish(p, b, NULL, 0);
		tier_fetch_release(t, d);
		return rc;
	}
	if (off > plen || len > plen - off)
		rc = -EINVAL;
	else
		memcpy(dst, payload + off, len);
	buf_publish(p, b, &(struct pf_held){ *d, payload, plen }, 1);
	pthread_mutex_lock(&p->lock);
	p->keep[p->nkeep++] = (struct pf_keep){ *d, b, payload, plen };
	pthread_cond_signal(&p->queued);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int tier_read_through(struct tier *t, const struct digest *d, uint64_t off, void *dst, size_t len)
{
	bool owner = false;
	int rc;

	if (!meta_chunk_is_remote(t->meta, d))
		return -ENOENT;
	while ((rc = tier_fetch_claim(t, d, &owner)) != 1) {
		/* Another fetch of d is in flight: its bytes reach a read-ahead buffer before its chunk file. */
		if (tier_prefetch_read(t, d, off, dst, len) == 0)
			return 0;
		if (rc == -EAGAIN)
			continue;
		rc = chunk_store_read(store_chunks(t->st), d, off, dst, len);
		if (rc == 0)
			tier_prefetch_note_read(t, d);
		if (rc != -ENOENT)
			return rc;  /* the other fetch stored it (or it failed: try ourselves) */
	}
	/* A read-ahead may have stored it between our miss and the claim. */
	rc = chunk_store_read(store_chunks(t->st), d, off, dst, len);
	if (rc == -ENOENT && owner && t->prefetch)
		return demand_fetch(t->prefetch, d, off, dst, len);
	if (rc == -ENOENT)
		rc = read_through_fetch(t, d, off, dst, len);
	else if (rc == 0)
		tier_prefetch_note_read(t, d);
	if (owner)
		tier_fetch_release(t, d);
	return rc;
}
