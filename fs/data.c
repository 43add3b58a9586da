/* data.c - file contents: chunk-aligned write buffers, hashing workers, reads through extents.
 *
 * The contract is in data.h. The pieces: a pool of chunk-sized buffers allocated and touched once at
 * start (first-touch memory is slow here), a FIFO of finished buffers ("jobs") served by worker
 * threads that hash and store them, and per-file state (struct data_file) guarded by its own mutex.
 * Extents for one chunk index are replaced as a whole, so a file written through here always has
 * chunk-aligned extents; reads and truncation handle any extent shape (composed files need that).
 * A failed job records what it lost per chunk: the hull of the bytes written into its buffer (an
 * over-estimate is safe: it is only reported). A later job of that chunk clears the loss only as far
 * as one contiguous run of bytes it was given covers it (an under-estimate of what was written anew),
 * so bytes read back from the old extents never count as rewritten.
 */
#include "data.h"
#include "digest_table.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_MAX_DIRTY 2             /* buffers one file may fill at once */
#define DATA_MAX_FILE_SIZE (1ull << 50)

/* Byte ranges within one chunk: [lo, hi), empty when lo == hi. */
struct data_span {
	uint32_t lo, hi;
};

struct data_job {
	struct data_job *next;
	struct data_file *df;
	uint64_t idx;      /* chunk index in the file */
	uint8_t *mem;
	uint32_t len;
	struct data_span hull;   /* every byte written into the buffer lies in here */
	struct data_span run;    /* every byte in here was written into the buffer */
};

struct data_ctx {
	struct store *st;
	struct meta *meta;
	uint32_t chunk_size;

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;    /* a buffer came back */
	uint8_t **free_bufs;         /* protected by pool_lock */
	uint32_t nfree;              /* protected by pool_lock */
	uint32_t ntotal;             /* pool size, fixed */
	uint32_t nextra;             /* buffers allocated past the pool, protected by pool_lock */

	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;   /* a job was queued, or stopping */
	struct data_job *head, *tail;/* protected by queue_lock */
	uint32_t job_buffers;        /* buffers held by queued or running jobs, protected by pool_lock */
	bool stopping;               /* protected by queue_lock */
	pthread_t *workers;
	uint32_t nworkers;

	uint64_t bytes_written, bytes_read, chunks_flushed, write_errors;  /* atomics */
	uint64_t bytes_linked, chunks_linked;                             /* atomics */
};

struct data_buf {
	uint64_t idx;
	uint8_t *mem;
	uint32_t len;  /* bytes [0, len) of the chunk are valid: loaded, written or zero-filled */
	struct data_span hull, run;  /* see data_job */
};

/* Bytes of chunk idx that a failed job did not store: the file's extents there are older bytes or
 * a hole, so the file is wrong there until they are written again (or truncated away). */
struct data_lost {
	uint64_t idx;
	struct data_span span;
	int err;          /* why the first of them was lost */
};

struct data_file {
	struct data_ctx *dc;
	uint64_t ino;
	pthread_mutex_t lock;
	pthread_cond_t idle;          /* inflight dropped to 0 */
	uint64_t size;                /* protected by lock */
	struct data_buf bufs[DATA_MAX_DIRTY];  /* protected by lock, oldest first */
	int nbufs;                    /* protected by lock */
	uint32_t inflight;            /* jobs of this file queued or running, protected by lock */
	struct data_lost *lost;       /* protected by lock, oldest first */
	size_t nlost, caplost;        /* protected by lock */
	int lost_untracked;           /* protected by lock: a loss that could not be recorded (no memory);
					 only truncation to 0 clears it */
	bool failed;                  /* nlost || lost_untracked, for data_file_failed (atomic access) */
	/* For a file this mount created (data_file_new's created): no extent of it reaches past top, so a
	 * chunk committed at or beyond top replaces nothing and needs no look at the extents. Its extents
	 * are made only here (commit_chunk) until its version is sealed, when writes end. */
	bool bounded;                 /* protected by lock */
	uint64_t top;                 /* protected by lock */
};

static void stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

/* ---- buffer pool ---- */

/* Takes a buffer. Waits while the pool is empty and some job still holds one (jobs give their
 * buffer back before they take any file lock, so they always can); allocates an extra buffer when
 * no job holds one, i.e. files hold every buffer dirty and waiting could last forever. Callers hold
 * no file lock. */
static uint8_t *pool_get(struct data_ctx *dc)
{
	uint8_t *mem = NULL;

	pthread_mutex_lock(&dc->pool_lock);
	while (dc->nfree == 0 && dc->job_buffers > 0)
		pthread_cond_wait(&dc->pool_cond, &dc->pool_lock);
	if (dc->nfree > 0) {
		mem = dc->free_bufs[--dc->nfree];
	} else {
		mem = aligned_alloc(4096, dc->chunk_size);
		if (mem)
			dc->nextra++;
	}
	pthread_mutex_unlock(&dc->pool_lock);
	return mem;
}

static void pool_put(struct data_ctx *dc, uint8_t *mem, bool from_job)
{
	pthread_mutex_lock(&dc->pool_lock);
	if (from_job)
		dc->job_buffers--;
	if (dc->nfree < dc->ntotal) {
		dc->free_bufs[dc->nfree++] = mem;
	} else {  /* the pool is full, so this is one of the extra buffers */
		assert(dc->nextra > 0);
		dc->nextra--;
		free(mem);
	}
	pthread_cond_broadcast(&dc->pool_cond);
	pthread_mutex_unlock(&dc->pool_lock);
}

/* ---- bytes lost by failed jobs: kept until rewritten or truncated away (caller holds df->lock) ---- */

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }
static bool span_empty(struct data_span s) { return s.lo >= s.hi; }

/* Notes that bytes [lo, hi) of buffer b were written: hull grows to include them; run becomes the
 * union when they touch it, else the longer of the two. */
static void buf_note_write(struct data_buf *b, uint32_t lo, uint32_t hi)
{
	if (span_empty(b->hull)) {
		b->hull = b->run = (struct data_span){ lo, hi };
		return;
	}
	b->hull = (struct data_span){ min_u32(b->hull.lo, lo), max_u32(b->hull.hi, hi) };
	if (lo <= b->run.hi && hi >= b->run.lo)
		b->run = (struct data_span){ min_u32(b->run.lo, lo), max_u32(b->run.hi, hi) };
	else if (hi - lo > b->run.hi - b->run.lo)
		b->run = (struct data_span){ lo, hi };
}

static void lost_publish(struct data_file *df)
{
	__atomic_store_n(&df->failed, df->nlost > 0 || df->lost_untracked != 0, __ATOMIC_RELEASE);
}

static struct data_lost *lost_find(struct data_file *df, uint64_t idx)
{
	for (size_t i = 0; i < df->nlost; i++)
		if (df->lost[i].idx == idx)
			return &df->lost[i];
	return NULL;
}

static void lost_remove(struct data_file *df, size_t i)
{
	memmove(&df->lost[i], &df->lost[i + 1], (df->nlost - i - 1) * sizeof(df->lost[0]));
	df->nlost--;
}

/* A job of chunk idx failed with err: the bytes written into its buffer (span) are not stored. */
static void lost_add(struct data_file *df, uint64_t idx, struct data_span span, int err)
{
	struct data_lost *l = lost_find(df, idx);

	if (l) {
		l->span = (struct data_span){ min_u32(l->span.lo, span.lo), max_u32(l->span.hi, span.hi) };
	} else {
		if (df->nlost == df->caplost) {
			size_t cap = df->caplost ? df->caplost * 2 : 4;
			struct data_lost *v = realloc(df->lost, cap * sizeof(*v));
			if (!v) {
				if (!df->lost_untracked)
					df->lost_untracked = err;
				lost_publish(df);
				return;
			}
			df->lost = v;
			df->caplost = cap;
		}
		df->lost[df->nlost++] = (struct data_lost){ .idx = idx, .span = span, .err = err };
	}
	lost_publish(df);
}

/* A job of chunk idx stored its buffer, in which bytes run were written anew: a loss there that
 * they cover from one end shrinks, or is gone once covered whole. */
static void lost_rewritten(struct data_file *df, uint64_t idx, struct data_span run)
{
	struct data_lost *l = lost_find(df, idx);

	if (!l || span_empty(run))
		return;
	if (run.lo <= l->span.lo && run.hi > l->span.lo)
		l->span.lo = min_u32(run.hi, l->span.hi);
	else if (run.hi >= l->span.hi && run.lo < l->span.hi)
		l->span.hi = max_u32(run.lo, l->span.lo);
	if (span_empty(l->span))
		lost_remove(df, (size_t)(l - df->lost));
	lost_publish(df);
}

/* The file now ends at size: losses past it are gone. */
static void lost_truncate(struct data_file *df, uint64_t size)
{
	uint64_t cs = df->dc->chunk_size;

	for (size_t i = 0; i < df->nlost;) {
		struct data_lost *l = &df->lost[i];
		uint64_t start = l->idx * cs;

		if (start + l->span.lo >= size) {
			lost_remove(df, i);
			continue;
		}
		if (start + l->span.hi > size)
			l->span.hi = (uint32_t)(size - start);
		i++;
	}
	if (size == 0)
		df->lost_untracked = 0;
	lost_publish(df);
}

/* True if file bytes [off, off + len) include bytes a failed job lost (or an unrecorded loss). */
static bool lost_overlaps(const struct data_file *df, uint64_t off, uint64_t len)
{
	uint64_t cs = df->dc->chunk_size;

	if (df->lost_untracked)
		return true;
	for (size_t i = 0; i < df->nlost; i++) {
		const struct data_lost *l = &df->lost[i];
		uint64_t lo = l->idx * cs + l->span.lo, hi = l->idx * cs + l->span.hi;
		if (lo < off + len && off < hi)
			return true;
	}
	return false;
}

/* The error of the oldest loss still standing, 0 when none. */
static int lost_error(const struct data_file *df)
{
	return df->nlost ? df->lost[0].err : df->lost_untracked;
}

/* ---- extents ---- */

struct read_arg {
	struct data_ctx *dc;
	uint64_t off, len;
	uint64_t filled;  /* bytes [off, off + filled) of the range are written to dst */
	uint8_t *dst;
	int err;
};

/* The part [*s, *end) of file range [off, off + len) that extent e covers; false when none. */
static bool extent_part(const struct meta_extent *e, uint64_t off, uint64_t len, uint64_t *s, uint64_t *end)
{
	uint64_t e_end = e->file_off + e->len, r_end = off + len;

	*s = e->file_off > off ? e->file_off : off;
	*end = e_end < r_end ? e_end : r_end;
	return *s < *end;
}

static int read_extent_cb(const struct meta_extent *e, void *arg)
{
	struct read_arg *ra = arg;
	uint64_t s, end;

	if (!extent_part(e, ra->off, ra->len, &s, &end))
		return 0;
	if (s > ra->off + ra->filled)  /* a hole before this extent */
		memset(ra->dst + ra->filled, 0, s - ra->off - ra->filled);
	int r = store_chunk_read(ra->dc->st, &e->digest, e->chunk_off + (s - e->file_off),
				 ra->dst + (s - ra->off), end - s);
	if (r < 0) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_to_hex(&e->digest, hex);
		fprintf(stderr, "pecfs: reading chunk %s at offset %llu failed: %s\n", hex,
			(unsigned long long)(e->chunk_off + (s - e->file_off)), strerror(-r));
		ra->err = r == -ENOENT ? -EIO : r;
		return 1;
	}
	ra->filled = end - ra->off;
	return 0;
}

/* Fills dst with file bytes [off, off + len) as the committed extents have them (zeros in holes). */
static int read_extents(struct data_ctx *dc, uint64_t ino, uint64_t off, void *dst, uint64_t len)
{
	struct read_arg ra = { .dc = dc, .off = off, .len = len, .dst = dst, .err = 0 };

	int r = meta_get_extents(dc->meta, ino, off, len, read_extent_cb, &ra);
	if (ra.err)
		return ra.err;
	if (r < 0)
		return r;
	if (ra.filled < len)  /* a hole at the end */
		memset(ra.dst + ra.filled, 0, len - ra.filled);
	return 0;
}

/* Extents overlapping a range, copied out so the database is not iterated while it is written. */
struct extent_list {
	struct meta_extent *v;
	size_t n, cap;
};

static int collect_cb(const struct meta_extent *e, void *arg)
{
	struct extent_list *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct meta_extent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	return 0;
}

static int collect_extents(struct data_ctx *dc, uint64_t ino, uint64_t off, uint64_t len,
			   struct extent_list *l)
{
	l->v = NULL;
	l->n = l->cap = 0;
	int r = meta_get_extents(dc->meta, ino, off, len, collect_cb, l);
	if (r < 0) {
		free(l->v);
		l->v = NULL;
		l->n = 0;
	}
	return r < 0 ? r : 0;
}

/* Removes file bytes [start, end) from the extent map of ino into batch b: extents inside go, those
 * straddling an edge keep the part outside. References: every removed extent is appended to *gone
 * (to unref after the commit); every kept piece beyond the first takes a new reference now. */
static int punch_range(struct data_ctx *dc, struct meta_batch *b, uint64_t ino, uint64_t start,
		       uint64_t end, struct extent_list *gone)
{
	struct extent_list l;
	int r = collect_extents(dc, ino, start, end - start, &l);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n && r == 0; i++) {
		struct meta_extent e = l.v[i];
		uint64_t e_end = e.file_off + e.len;
		bool keep_left = e.file_off < start, keep_right = e_end > end;

		if (!keep_left)
			meta_batch_del_extent(b, ino, e.file_off);
		if (keep_left) {
			struct meta_extent left = e;
			left.len = start - e.file_off;
			meta_batch_put_extent(b, ino, &left);  /* same key: keeps e's reference */
		}
		if (keep_right) {
			struct meta_extent right = e;
			right.file_off = end;
			right.len = e_end - end;
			right.chunk_off = e.chunk_off + (end - e.file_off);
			meta_batch_put_extent(b, ino, &right);
			if (keep_left)
				r = store_chunk_ref(dc->st, &e.digest);  /* one extent became two */
		}
		if (!keep_left && !keep_right)
			r = collect_cb(&e, gone);
	}
	free(l.v);
	return r;
}

static void unref_all(struct data_ctx *dc, struct extent_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		store_chunk_unref(dc->st, &l->v[i].digest);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Replaces file bytes [start, end) of ino by extent e (NULL: a hole) in one committed batch, then
 * gives back the references of the extents that went. A new extent's reference is the caller's. */
static int replace_range(struct data_ctx *dc, uint64_t ino, uint64_t start, uint64_t end,
			 const struct meta_extent *e, bool empty)
{
	struct extent_list gone = { 0 };
	struct meta_batch *b = meta_batch_new();
	int r = 0;

	if (!b)
		return -ENOMEM;
	if (!empty)  /* empty: the caller knows no extent lies in [start, end) */
		r = punch_range(dc, b, ino, start, end, &gone);
	if (r == 0) {
		if (e)
			meta_batch_put_extent(b, ino, e);
		r = meta_batch_commit(dc->meta, b, false);
	}
	meta_batch_free(b);
	if (r == 0)
		unref_all(dc, &gone);
	else
		free(gone.v);
	return r;
}

/* Makes chunk idx of the file the stored chunk d (len bytes). Caller holds df->lock and one
 * reference on d, which the new extent takes over on success. */
static int commit_chunk(struct data_file *df, uint64_t idx, uint32_t len, const struct digest *d)
{
	uint64_t start = idx * df->dc->chunk_size, end = start + df->dc->chunk_size;
	struct meta_extent e = { .file_off = start, .len = len, .digest = *d, .chunk_off = 0 };
	int r = replace_range(df->dc, df->ino, start, end, &e, df->bounded && start >= df->top);

	if (r == 0 && end > df->top)
		df->top = end;
	return r;
}

/* ---- workers ---- */

static void run_job(struct data_ctx *dc, struct data_job *job)
{
	struct data_file *df = job->df;
	struct digest d;
	int r = store_chunk_put(dc->st, job->mem, job->len, &d, NULL);

	pool_put(dc, job->mem, true);  /* before taking the file lock, see pool_get */
	pthread_mutex_lock(&df->lock);
	if (r == 0) {
		r = commit_chunk(df, job->idx, job->len, &d);
		if (r < 0)
			store_chunk_unref(dc->st, &d);
	}
	if (r < 0) {
		fprintf(stderr, "pecfs: storing chunk %llu of inode %llu failed: %s\n",
			(unsigned long long)job->idx, (unsigned long long)df->ino, strerror(-r));
		stat_add(&dc->write_errors, 1);
		lost_add(df, job->idx, span_empty(job->hull) ? (struct data_span){ 0, job->len } : job->hull, r);
	} else {
		lost_rewritten(df, job->idx, job->run);
	}
	assert(df->inflight > 0);
	if (--df->inflight == 0)
		pthread_cond_broadcast(&df->idle);
	pthread_mutex_unlock(&df->lock);
	free(job);
}

static void *worker_main(void *arg)
{
	struct data_ctx *dc = arg;

	for (;;) {
		pthread_mutex_lock(&dc->queue_lock);
		while (!dc->head && !dc->stopping)
			pthread_cond_wait(&dc->queue_cond, &dc->queue_lock);
		struct data_job *job = dc->head;
		if (!job) {  /* stopping and drained */
			pthread_mutex_unlock(&dc->queue_lock);
			return NULL;
		}
		dc->head = job->next;
		if (!dc->head)
			dc->tail = NULL;
		pthread_mutex_unlock(&dc->queue_lock);
		run_job(dc, job);
	}
}

/* Takes buffer i out of the file as a job, counted in flight. Caller holds df->lock. */
static struct data_job *take_job(struct data_file *df, int i)
{
	struct data_ctx *dc = df->dc;
	struct data_job *job = malloc(sizeof(*job));

	assert(i >= 0 && i < df->nbufs);
	if (!job)
		return NULL;
	*job = (struct data_job){ .df = df, .idx = df->bufs[i].idx, .mem = df->bufs[i].mem,
				  .len = df->bufs[i].len, .hull = df->bufs[i].hull, .run = df->bufs[i].run };
	memmove(&df->bufs[i], &df->bufs[i + 1], (df->nbufs - i - 1) * sizeof(df->bufs[0]));
	df->nbufs--;
	df->inflight++;
	stat_add(&dc->chunks_flushed, 1);

	pthread_mutex_lock(&dc->pool_lock);
	dc->job_buffers++;
	pthread_mutex_unlock(&dc->pool_lock);
	return job;
}

/* Hands buffer i of the file to the workers. Caller holds df->lock. */
static int submit_buf(struct data_file *df, int i)
{
	struct data_ctx *dc = df->dc;
	struct data_job *job = take_job(df, i);

	if (!job)
		return -ENOMEM;
	pthread_mutex_lock(&dc->queue_lock);
	if (dc->tail)
		dc->tail->next = job;
	else
		dc->head = job;
	dc->tail = job;
	pthread_cond_signal(&dc->queue_cond);
	pthread_mutex_unlock(&dc->queue_lock);
	return 0;
}

/* Stores every buffer and waits until all of the file's jobs are committed. Caller holds df->lock,
 * which is dropped meanwhile. The last buffer is stored by the calling thread itself: it would only
 * wait for a worker, and handing it over costs two thread switches, a large part of closing a small
 * file. A write to the file meanwhile waits for it as for a worker's job (open_buf: in flight). */
static int drain(struct data_file *df)
{
	int r = 0;
	while (df->nbufs > 1 && r == 0)
		r = submit_buf(df, 0);
	if (df->nbufs == 1 && r == 0) {
		struct data_job *job = take_job(df, 0);
		if (job) {
			pthread_mutex_unlock(&df->lock);
			run_job(df->dc, job);
			pthread_mutex_lock(&df->lock);
		} else {
			r = -ENOMEM;
		}
	}
	while (df->inflight > 0)
		pthread_cond_wait(&df->idle, &df->lock);
	return r;
}

/* ---- context ---- */

int data_ctx_new(struct store *st, uint32_t write_buffers, uint32_t hash_threads, struct data_ctx **out)
{
	struct data_ctx *dc = calloc(1, sizeof(*dc));
	int r = -ENOMEM;

	if (!dc)
		return -ENOMEM;
	dc->st = st;
	dc->meta = store_meta(st);
	dc->chunk_size = store_chunk_size(st);
	pthread_mutex_init(&dc->pool_lock, NULL);
	pthread_cond_init(&dc->pool_cond, NULL);
	pthread_mutex_init(&dc->queue_lock, NULL);
	pthread_cond_init(&dc->queue_cond, NULL);

	dc->free_bufs = calloc(write_buffers, sizeof(*dc->free_bufs));
	dc->workers = calloc(hash_threads, sizeof(*dc->workers));
	if (!dc->free_bufs || !dc->workers)
		goto out_err;
	for (uint32_t i = 0; i < write_buffers; i++) {
		uint8_t *mem = aligned_alloc(4096, dc->chunk_size);
		if (!mem)
			goto out_err;
		memset(mem, 0, dc->chunk_size);  /* fault the pages in now, not on the write path */
		dc->free_bufs[dc->nfree++] = mem;
		dc->ntotal++;
	}
	for (uint32_t i = 0; i < hash_threads; i++) {
		r = -pthread_create(&dc->workers[i], NULL, worker_main, dc);
		if (r < 0)
			goto out_err;
		dc->nworkers++;
	}
	*out = dc;
	return 0;

out_err:
	data_ctx_free(dc);
	return r;
}

void data_ctx_free(struct data_ctx *dc)
{
	if (!dc)
		return;
	pthread_mutex_lock(&dc->queue_lock);
	dc->stopping = true;
	pthread_cond_broadcast(&dc->queue_cond);
	pthread_mutex_unlock(&dc->queue_lock);
	for (uint32_t i = 0; i < dc->nworkers; i++)
		pthread_join(dc->workers[i], NULL);
	for (uint32_t i = 0; i < dc->nfree; i++)
		free(dc->free_bufs[i]);
	free(dc->free_bufs);
	free(dc->workers);
	pthread_mutex_destroy(&dc->pool_lock);
	pthread_cond_destroy(&dc->pool_cond);
	pthread_mutex_destroy(&dc->queue_lock);
	pthread_cond_destroy(&dc->queue_cond);
	free(dc);
}

void data_get_stats(struct data_ctx *dc, struct data_stats *out)
{
	out->bytes_written = __atomic_load_n(&dc->bytes_written, __ATOMIC_RELAXED);
	out->bytes_read = __atomic_load_n(&dc->bytes_read, __ATOMIC_RELAXED);
	out->chunks_flushed = __atomic_load_n(&dc->chunks_flushed, __ATOMIC_RELAXED);
	out->write_errors = __atomic_load_n(&dc->write_errors, __ATOMIC_RELAXED);
	out->bytes_linked = __atomic_load_n(&dc->bytes_linked, __ATOMIC_RELAXED);
	out->chunks_linked = __atomic_load_n(&dc->chunks_linked, __ATOMIC_RELAXED);
	pthread_mutex_lock(&dc->pool_lock);
	out->buffers_total = dc->ntotal;
	out->buffers_in_use = dc->ntotal - dc->nfree + dc->nextra;
	pthread_mutex_unlock(&dc->pool_lock);
}

/* ---- files ---- */

/* Drops extents at or past `size` and clips one that straddles it, committed. */
static int clip_extents(struct data_ctx *dc, uint64_t ino, uint64_t size)
{
	return replace_range(dc, ino, size, UINT64_MAX, NULL, false);
}

struct data_file *data_file_new(struct data_ctx *dc, uint64_t ino, uint64_t size, bool created)
{
	struct data_file *df = calloc(1, sizeof(*df));

	if (!df)
		return NULL;
	df->dc = dc;
	df->ino = ino;
	df->size = size;
	pthread_mutex_init(&df->lock, NULL);
	pthread_cond_init(&df->idle, NULL);
	/* A crash between committing a chunk's extent and persisting the file size can leave extents
	 * past the size; drop them so that a later extension reads zeros, as POSIX promises. A file
	 * created by this very request has none (inode numbers are never reused). */
	int r = created ? 0 : clip_extents(dc, ino, size);
	df->bounded = created;
	if (r < 0)
		fprintf(stderr, "pecfs: inode %llu: dropping extents past its size failed: %s\n",
			(unsigned long long)ino, strerror(-r));
	return df;
}

void data_file_free(struct data_file *df)
{
	if (!df)
		return;
	pthread_mutex_lock(&df->lock);
	drain(df);
	pthread_mutex_unlock(&df->lock);
	pthread_mutex_destroy(&df->lock);
	pthread_cond_destroy(&df->idle);
	free(df->lost);
	free(df);
}

uint64_t data_file_size(struct data_file *df)
{
	pthread_mutex_lock(&df->lock);
	uint64_t size = df->size;
	pthread_mutex_unlock(&df->lock);
	return size;
}

bool data_file_failed(struct data_file *df)
{
	return __atomic_load_n(&df->failed, __ATOMIC_ACQUIRE);
}

int data_file_error(struct data_file *df)
{
	pthread_mutex_lock(&df->lock);
	int e = lost_error(df);
	pthread_mutex_unlock(&df->lock);
	return e;
}

bool data_file_dirty(struct data_file *df)
{
	pthread_mutex_lock(&df->lock);
	bool dirty = df->nbufs > 0 || df->inflight > 0;
	pthread_mutex_unlock(&df->lock);
	return dirty;
}

static struct data_buf *find_buf(struct data_file *df, uint64_t idx)
{
	for (int i = 0; i < df->nbufs; i++)
		if (df->bufs[i].idx == idx)
			return &df->bufs[i];
	return NULL;
}

/* Starts a buffer for chunk idx, loaded with the chunk's current bytes, or finds the one another
 * request started meanwhile. Caller holds df->lock, which is dropped while waiting for a buffer, so
 * everything is checked again after each wait. */
static int open_buf(struct data_file *df, uint64_t idx, struct data_buf **out)
{
	struct data_ctx *dc = df->dc;
	uint64_t start = idx * dc->chunk_size;
	uint8_t *mem = NULL;
	int r;

	for (;;) {
		struct data_buf *b = find_buf(df, idx);
		if (b) {
			if (mem)
				pool_put(dc, mem, false);
			*out = b;
			return 0;
		}
		if (start < df->size && df->inflight > 0) {
			/* read-modify-write: the chunk's bytes must be committed before we read them back */
			pthread_cond_wait(&df->idle, &df->lock);
			continue;
		}
		if (df->nbufs == DATA_MAX_DIRTY) {
			r = submit_buf(df, 0);
			if (r < 0)
				goto out_err;
			continue;
		}
		if (mem)
			break;
		pthread_mutex_unlock(&df->lock);
		mem = pool_get(dc);
		pthread_mutex_lock(&df->lock);
		if (!mem)
			return -ENOMEM;
	}

	uint32_t valid = 0;
	if (start < df->size) {
		uint64_t rest = df->size - start;
		valid = rest < dc->chunk_size ? (uint32_t)rest : dc->chunk_size;
		r = read_extents(dc, df->ino, start, mem, valid);
		if (r < 0)
			goto out_err;
	}
	struct data_buf *b = &df->bufs[df->nbufs++];
	*b = (struct data_buf){ .idx = idx, .mem = mem, .len = valid };
	*out = b;
	return 0;

out_err:
	if (mem)
		pool_put(dc, mem, false);
	return r;
}

ssize_t data_write(struct data_file *df, const void *buf, size_t size, uint64_t off)
{
	struct data_ctx *dc = df->dc;
	const uint8_t *src = buf;
	size_t done = 0;
	int r = 0;

	if (off > DATA_MAX_FILE_SIZE || size > DATA_MAX_FILE_SIZE - off)
		return -EFBIG;
	pthread_mutex_lock(&df->lock);
	while (r == 0 && done < size) {
		uint64_t pos = off + done;
		uint64_t idx = pos / dc->chunk_size;
		uint32_t in = pos % dc->chunk_size;
		uint32_t n = dc->chunk_size - in;
		if (n > size - done)
			n = size - done;

		struct data_buf *b = find_buf(df, idx);
		if (!b) {
			r = open_buf(df, idx, &b);
			if (r < 0)
				break;
		}
		if (in > b->len)
			memset(b->mem + b->len, 0, in - b->len);
		memcpy(b->mem + in, src + done, n);
		buf_note_write(b, in, in + n);
		if (in + n > b->len)
			b->len = in + n;
		done += n;
		if (pos + n > df->size)
			df->size = pos + n;
		if (b->len == dc->chunk_size)
			r = submit_buf(df, (int)(b - df->bufs));
	}
	pthread_mutex_unlock(&df->lock);
	stat_add(&dc->bytes_written, done);
	if (done > 0)
		return (ssize_t)done;
	return r;
}

ssize_t data_read(struct data_file *df, void *buf, size_t size, uint64_t off)
{
	struct data_ctx *dc = df->dc;
	uint8_t *dst = buf;
	int r = 0;

	pthread_mutex_lock(&df->lock);
	if (off >= df->size) {
		pthread_mutex_unlock(&df->lock);
		return 0;
	}
	if (size > df->size - off)
		size = df->size - off;
	/* Bytes a write accepted but storing them failed (full disk, I/O error): the extents there hold
	 * older bytes or a hole, so the read fails rather than return them as if they were the file's.
	 * close and fsync report the loss too; rewriting or truncating the range clears it. */
	if (__atomic_load_n(&df->failed, __ATOMIC_ACQUIRE) && lost_overlaps(df, off, size)) {
		pthread_mutex_unlock(&df->lock);
		return -EIO;
	}
	if (df->nbufs == 0 && df->inflight == 0) {
		/* clean file: read the extents without holding the lock, so reads run in parallel */
		pthread_mutex_unlock(&df->lock);
		r = read_extents(dc, df->ino, off, dst, size);
		goto out;
	}
	while (df->inflight > 0)
		pthread_cond_wait(&df->idle, &df->lock);
	if (lost_overlaps(df, off, size)) {  /* a job that just failed */
		pthread_mutex_unlock(&df->lock);
		return -EIO;
	}
	for (size_t done = 0; done < size && r == 0;) {
		uint64_t pos = off + done;
		uint64_t idx = pos / dc->chunk_size;
		uint32_t in = pos % dc->chunk_size;
		uint32_t n = dc->chunk_size - in;
		if (n > size - done)
			n = size - done;

		struct data_buf *b = find_buf(df, idx);
		if (b) {
			uint32_t have = in < b->len ? b->len - in : 0;
			if (have > n)
				have = n;
			memcpy(dst + done, b->mem + in, have);
			memset(dst + done + have, 0, n - have);
		} else {
			r = read_extents(dc, df->ino, pos, dst + done, n);
		}
		done += n;
	}
	pthread_mutex_unlock(&df->lock);
out:
	if (r < 0)
		return r;
	stat_add(&dc->bytes_read, size);
	return (ssize_t)size;
}

struct ahead_arg {
	uint64_t off, len;
	struct data_ahead *a;
};

static int ahead_cb(const struct meta_extent *e, void *arg)
{
	struct ahead_arg *aa = arg;
	uint64_t s, end;

	if (!extent_part(e, aa->off, aa->len, &s, &end))
		return 0;
	aa->a->piece[aa->a->n].d = e->digest;
	aa->a->piece[aa->a->n].off = e->chunk_off + (s - e->file_off);
	aa->a->piece[aa->a->n].len = end - s;
	return ++aa->a->n == DATA_AHEAD_MAX;
}

void data_ahead_plan(struct data_file *df, uint64_t off, uint64_t len, struct data_ahead *a)
{
	struct ahead_arg aa = { .off = off, .len = len, .a = a };

	a->n = 0;
	if (meta_get_extents(df->dc->meta, df->ino, off, len, ahead_cb, &aa) < 0)
		a->n = 0;
}

void data_ahead_start(struct data_ctx *dc, const struct data_ahead *a)
{
	for (unsigned i = 0; i < a->n; i++)
		store_chunk_prefetch(dc->st, &a->piece[i].d, a->piece[i].off, a->piece[i].len);
}

int data_link(struct data_file *df, uint64_t off, uint32_t len, const struct digest *d)
{
	struct data_ctx *dc = df->dc;
	uint64_t idx = off / dc->chunk_size;
	int r;

	if (off % dc->chunk_size != 0 || len == 0 || len > dc->chunk_size)
		return -EINVAL;
	if (off > DATA_MAX_FILE_SIZE || len > DATA_MAX_FILE_SIZE - off)
		return -EFBIG;
	pthread_mutex_lock(&df->lock);
	/* A chunk being stored would commit its extent over ours: let the workers finish first. */
	while (df->inflight > 0)
		pthread_cond_wait(&df->idle, &df->lock);
	if (len < dc->chunk_size && df->size > off + dc->chunk_size) {
		r = -EINVAL;  /* a short chunk is the tail, but the file has bytes past it */
		goto out;
	}
	r = store_chunk_claim(dc->st, d, len);
	if (r < 0)
		goto out;
	r = commit_chunk(df, idx, len, d);
	if (r < 0) {
		store_chunk_unref(dc->st, d);
		goto out;
	}
	/* The chunk's range now holds exactly these bytes: a buffer of it is stale, a loss there undone. */
	struct data_buf *b = find_buf(df, idx);
	if (b) {
		pool_put(dc, b->mem, false);
		memmove(b, b + 1, (size_t)(df->bufs + df->nbufs - b - 1) * sizeof(*b));
		df->nbufs--;
	}
	lost_rewritten(df, idx, (struct data_span){ 0, dc->chunk_size });
	if (len < dc->chunk_size || off + len > df->size)
		df->size = off + len;
	stat_add(&dc->bytes_linked, len);
	stat_add(&dc->chunks_linked, 1);
out:
	pthread_mutex_unlock(&df->lock);
	return r;
}

int data_flush(struct data_file *df)
{
	pthread_mutex_lock(&df->lock);
	int r = drain(df);
	int e = lost_error(df);
	pthread_mutex_unlock(&df->lock);
	return r < 0 ? r : e;
}

int data_truncate(struct data_file *df, uint64_t size)
{
	if (size > DATA_MAX_FILE_SIZE)
		return -EFBIG;
	pthread_mutex_lock(&df->lock);
	int r = drain(df);
	if (r == 0) {
		/* clip at the smaller size: growing must expose zeros, never old bytes */
		r = clip_extents(df->dc, df->ino, size < df->size ? size : df->size);
	}
	if (r == 0) {
		lost_truncate(df, size < df->size ? size : df->size);
		df->size = size;
	}
	pthread_mutex_unlock(&df->lock);
	return r;
}

struct data_gone {
	struct extent_list l;
};

int data_delete_prepare(struct data_ctx *dc, struct meta_batch *b, uint64_t ino, struct data_gone **out)
{
	struct data_gone *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	int r = collect_extents(dc, ino, 0, UINT64_MAX, &g->l);
	if (r < 0) {
		free(g);
		return r;
	}
	for (size_t i = 0; i < g->l.n; i++)
		meta_batch_del_extent(b, ino, g->l.v[i].file_off);
	meta_batch_note_extents_before(b, ino, g->l.v, g->l.n);  /* the tally need not read them again */
	*out = g;
	return 0;
}

void data_delete_done(struct data_ctx *dc, struct data_gone *g, bool committed)
{
	if (!g)
		return;
	if (committed)
		unref_all(dc, &g->l);
	free(g->l.v);
	free(g);
}

/* ---- per-version accounting and content ids ---- */

struct data_unique {
	struct digest_table t;  /* len_sum: the bytes of the distinct chunks */
};

struct data_unique *data_unique_new(void)
{
	return calloc(1, sizeof(struct data_unique));
}

void data_unique_free(struct data_unique *u)
{
	if (u)
		digest_table_free(&u->t);
	free(u);
}

int data_unique_add_file(struct data_ctx *dc, struct data_unique *u, uint64_t ino)
{
	return meta_add_file_chunks(dc->meta, ino, &u->t);
}

uint64_t data_unique_bytes(const struct data_unique *u)
{
	return u->t.len_sum;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int data_content_id(struct data_ctx *dc, uint64_t ino, char hex[DIGEST_HEX_LEN + 1])
{
	struct extent_list l;
	int r = collect_extents(dc, ino, 0, UINT64_MAX, &l);
	if (r < 0)
		return r;
	/* each extent as file_off, len, chunk_off (little-endian u64) and the chunk digest */
	size_t rec = 24 + DIGEST_LEN;
	uint8_t *buf = malloc(l.n * rec + 1);
	if (!buf) {
		free(l.v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l.n; i++) {
		uint8_t *p = buf + i * rec;
		put_le64(p, l.v[i].file_off);
		put_le64(p + 8, l.v[i].len);
		put_le64(p + 16, l.v[i].chunk_off);
		memcpy(p + 24, l.v[i].digest.b, DIGEST_LEN);
	}
	struct digest d;
	digest_compute(buf, l.n * rec, &d);
	digest_to_hex(&d, hex);
	free(buf);
	free(l.v);
	return 0;
}
