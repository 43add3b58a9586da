/* pecgpu_save.c - asynchronous, deduplicating saves: digests, reference writes, staging of only the
 * chunks the daemon lacks into a bounded pool, and a writer thread that writes and fsyncs them.
 *
 * Each save runs on its own thread (pipeline in gpu/README.md); the staging pool belongs to the
 * context and serves one save at a time, which is what bounds memory by pool_bytes. A file that is not
 * on a pecfs mount (no PECFS_IOC_INFO) is saved with plain writes of 4 MiB chunks and no sharding; one
 * on a mount but outside any version (EPERM) with plain writes of the mount's chunk size.
 */
#include "pecgpu.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pecgpu_dev.h"
#include "pecgpu_impl.h"

#define DEFAULT_POOL_BYTES (256ull << 20)
#define DEFAULT_OWNER_WAIT_MS 60000u
#define PLAIN_CHUNK_SIZE (4u << 20)  /* chunking of a file outside pecfs (only sizes the writes) */
#define POLL_MIN_MS 5
#define POLL_MAX_MS 100

struct pecgpu_ctx {
	struct pecgpu_options opt;  /* defaults filled in; read-only after pecgpu_ctx_new */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* protected by lock */
	unsigned active;   /* saves whose thread has not ended */
	int pool_busy;     /* a save is staging with the pool */
	/* the pool: touched only by the save that set pool_busy */
	void **bufs;
	unsigned nbufs;
	size_t buf_size;
};

struct pecgpu_save {
	struct pecgpu_ctx *c;
	char *path;
	int fd;
	struct pecgpu_layout l;
	uint32_t chunk_size;
	int on_pecfs;
	int device;  /* the CUDA device current where the save started (device layouts) */
	pthread_t thread;
	struct timespec t0;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* protected by lock */
	int copied, durable, ended;
	int err;
	char msg[512];
	struct pecgpu_save_stats st;

	/* staging, protected by lock: buffers cycle free -> filled (queued for the writer) -> free */
	struct pecgpu_dev_stream *stream;  /* only when the layout has device segments */
	unsigned *free_list, nfree;
	struct staged { unsigned buf; uint64_t off; uint32_t len; } *queue;
	unsigned qhead, qlen;
	int writer_stop;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Records the first failure; later ones are consequences of it. Returns rc. */
static int save_fail(struct pecgpu_save *s, const char *stage, int rc)
{
	pthread_mutex_lock(&s->lock);
	if (!s->err) {
		s->err = rc;
		snprintf(s->msg, sizeof(s->msg), "%s of %s: %s", stage, s->path, strerror(-rc));
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int save_error(struct pecgpu_save *s)
{
	pthread_mutex_lock(&s->lock);
	int err = s->err;
	pthread_mutex_unlock(&s->lock);
	return err;
}

static void stat_time(struct pecgpu_save *s, double *field, double t)
{
	pthread_mutex_lock(&s->lock);
	*field += t;
	pthread_mutex_unlock(&s->lock);
}

static void save_mark(struct pecgpu_save *s, int *flag)
{
	pthread_mutex_lock(&s->lock);
	*flag = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- context ---- */

int pecgpu_ctx_new(const struct pecgpu_options *opt, struct pecgpu_ctx **out)
{
	struct pecgpu_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (opt)
		c->opt = *opt;
	if (c->opt.world > 1 && c->opt.rank >= c->opt.world) {
		free(c);
		return -EINVAL;
	}
	if (c->opt.pool_bytes == 0)
		c->opt.pool_bytes = DEFAULT_POOL_BYTES;
	if (c->opt.owner_wait_ms == 0)
		c->opt.owner_wait_ms = DEFAULT_OWNER_WAIT_MS;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

static void pool_release_buffers(struct pecgpu_ctx *c)
{
	for (unsigned i = 0; i < c->nbufs; i++)
		pecgpu_dev_host_free(c->bufs[i]);
	free(c->bufs);
	c->bufs = NULL;
	c->nbufs = 0;
	c->buf_size = 0;
}

void pecgpu_ctx_free(struct pecgpu_ctx *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->active)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pool_release_buffers(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Takes the pool for one save, sized for chunk_size: as many chunk buffers as pool_bytes holds, and
 * at least two so that copying and writing overlap. */
static int pool_acquire(struct pecgpu_ctx *c, uint32_t chunk_size)
{
	pthread_mutex_lock(&c->lock);
	while (c->pool_busy)
		pthread_cond_wait(&c->cond, &c->lock);
	c->pool_busy = 1;
	pthread_mutex_unlock(&c->lock);
	if (c->buf_size == chunk_size)
		return 0;
	pool_release_buffers(c);
	uint64_t n = c->opt.pool_bytes / chunk_size;
	unsigned nbufs = n < 2 ? 2 : (n > 4096 ? 4096 : (unsigned)n);
	c->bufs = calloc(nbufs, sizeof(*c->bufs));
	if (!c->bufs)
		return -ENOMEM;
	for (; c->nbufs < nbufs; c->nbufs++) {
		int rc = pecgpu_dev_host_alloc(chunk_size, &c->bufs[c->nbufs]);
		if (rc < 0) {
			pool_release_buffers(c);
			return rc;
		}
	}
	c->buf_size = chunk_size;
	return 0;
}

static void pool_release(struct pecgpu_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->pool_busy = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* ---- the writer thread: pwrite each staged chunk at its offset, then free its buffer ---- */

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct pecgpu_save *s = arg;
	if (s->stream)
		pecgpu_dev_use(s->device);
	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (!s->qlen && !s->writer_stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->qlen) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		struct staged w = s->queue[s->qhead];
		s->qhead = (s->qhead + 1) % s->c->nbufs;
		s->qlen--;
		int failed = s->err != 0;
		pthread_mutex_unlock(&s->lock);

		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = 0;
		if (!failed && s->stream)
			rc = pecgpu_dev_event_wait(s->stream, w.buf);
		if (rc < 0)
			save_fail(s, "device copy", rc);
		else if (!failed && (rc = write_all(s->fd, s->c->bufs[w.buf], w.len, w.off)) < 0)
			save_fail(s, "write", rc);
		pthread_mutex_lock(&s->lock);
		if (!failed && rc == 0) {
			s->st.chunks_written++;
			s->st.bytes_written += w.len;
		}
		s->st.write_s += seconds_since(&t0);
		s->free_list[s->nfree++] = w.buf;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
}

/* Copies chunk i's bytes into a free buffer (device bytes on the side stream) and queues it. */
static int stage_chunk(struct pecgpu_save *s, uint64_t i)
{
	uint64_t off = i * s->chunk_size;
	uint64_t left = s->l.total - off;
	uint32_t len = left < s->chunk_size ? (uint32_t)left : s->chunk_size;

	pthread_mutex_lock(&s->lock);
	while (!s->nfree && !s->err)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->err) {
		pthread_mutex_unlock(&s->lock);
		return s->err;
	}
	unsigned b = s->free_list[--s->nfree];
	pthread_mutex_unlock(&s->lock);

	uint8_t *dst = s->c->bufs[b];
	uint64_t from_device = 0;
	int rc = 0;
	for (struct pecgpu_piece pc = pecgpu_piece_first(&s->l, off, len); pc.n && rc == 0;
	     pecgpu_piece_next(&s->l, &pc)) {
		if (s->l.segs[pc.seg].where == PECGPU_CUDA) {
			rc = pecgpu_dev_copy_async(s->stream, dst + (pc.off - off), pc.p, pc.n);
			from_device += pc.n;
		} else {
			memcpy(dst + (pc.off - off), pc.p, pc.n);
		}
	}
	if (rc == 0 && s->stream)
		rc = pecgpu_dev_event_record(s->stream, b);

	pthread_mutex_lock(&s->lock);
	if (rc < 0) {
		s->free_list[s->nfree++] = b;
	} else {
		s->queue[(s->qhead + s->qlen) % s->c->nbufs] = (struct staged){ b, off, len };
		s->qlen++;
		s->st.bytes_copied += from_device;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? save_fail(s, "device copy", rc) : 0;
}

/* Waits until the writer holds no staged buffer: every queued copy has completed and been written. */
static void wait_drained(struct pecgpu_save *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->nfree < s->c->nbufs)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

/* ---- the save thread ---- */

/* Reference writes for refs[0..n); linked ones are counted and dropped, the rest stay in refs (in
 * order) and their number is returned, or a negative errno. */
static long refs_keep_missing(struct pecgpu_save *s, struct pecgpu_ref *refs, size_t n, int after_wait)
{
	long linked = pecgpu_ref(s->fd, refs, n);
	if (linked < 0)
		return linked;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (refs[i].result == -ENOENT)
			refs[kept++] = refs[i];
		else if (refs[i].result < 0)
			return refs[i].result;
	}
	pthread_mutex_lock(&s->lock);
	s->st.chunks_linked += (uint64_t)linked;
	if (after_wait)
		s->st.chunks_owner_waits += (uint64_t)linked;
	pthread_mutex_unlock(&s->lock);
	return (long)kept;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The rank that stores a chunk in a sharded save: from its digest, so that every rank saving the same
 * bytes agrees, whatever the file's path, and a run of one-chunk files spreads over the ranks. */
static unsigned chunk_owner(const uint8_t digest[PECGPU_DIGEST_LEN], unsigned world)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | digest[i];
	return (unsigned)(v % world);
}

/* Stages the chunks of refs whose owner is this rank (all of them without sharding); the others are
 * linked once their owner has stored them, or staged here after owner_wait_ms. */
static int stage_missing(struct pecgpu_save *s, struct pecgpu_ref *refs, size_t n)
{
	const struct pecgpu_options *o = &s->c->opt;
	int sharded = o->world > 1 && s->on_pecfs;
	size_t others = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t idx = refs[i].off / s->chunk_size;
		if (!sharded || chunk_owner(refs[i].digest, o->world) == o->rank) {
			int rc = stage_chunk(s, idx);
			if (rc < 0)
				return rc;
		} else {
			refs[others++] = refs[i];
		}
	}
	/* Other ranks wait for this rank's chunks: make them stored now, the short tail chunk included
	 * (the daemon stores it only at fsync), rather than after this rank's own waiting. */
	if (others) {
		wait_drained(s);
		if (save_error(s))
			return save_error(s);
		if (fsync(s->fd) < 0)
			return save_fail(s, "fsync", -errno);
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned pause = POLL_MIN_MS;
	while (others && seconds_since(&t0) * 1000.0 < o->owner_wait_ms) {
		sleep_ms(pause);
		pause = pause * 2 > POLL_MAX_MS ? POLL_MAX_MS : pause * 2;
		long kept = refs_keep_missing(s, refs, others, 1);
		if (kept < 0)
			return save_fail(s, "reference write", (int)kept);
		others = (size_t)kept;
	}
	for (size_t i = 0; i < others; i++) {
		int rc = stage_chunk(s, refs[i].off / s->chunk_size);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int run_staging(struct pecgpu_save *s, struct pecgpu_ref *refs, size_t n)
{
	struct pecgpu_ctx *c = s->c;
	int rc = pool_acquire(c, s->chunk_size);
	if (rc < 0) {
		pool_release(c);
		return save_fail(s, "staging allocation", rc);
	}
	s->free_list = malloc(c->nbufs * sizeof(*s->free_list));
	s->queue = malloc(c->nbufs * sizeof(*s->queue));
	if (!s->free_list || !s->queue) {
		pool_release(c);
		return save_fail(s, "staging allocation", -ENOMEM);
	}
	for (unsigned i = 0; i < c->nbufs; i++)
		s->free_list[i] = i;
	s->nfree = c->nbufs;
	if (s->l.has_device && (rc = pecgpu_dev_stream_new(c->nbufs, &s->stream)) < 0) {
		pool_release(c);
		return save_fail(s, "device stream", rc);
	}
	pthread_t writer;
	if ((rc = -pthread_create(&writer, NULL, writer_main, s)) < 0) {
		pecgpu_dev_stream_free(s->stream);
		s->stream = NULL;
		pool_release(c);
		return save_fail(s, "writer thread", rc);
	}

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	stage_missing(s, refs, n);
	/* "copied": every chunk is linked or in a staging buffer whose device copy has completed */
	for (unsigned b = 0; s->stream && b < c->nbufs; b++)
		pecgpu_dev_event_wait(s->stream, b);
	stat_time(s, &s->st.copy_s, seconds_since(&t0));
	save_mark(s, &s->copied);

	wait_drained(s);
	pthread_mutex_lock(&s->lock);
	s->writer_stop = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(writer, NULL);
	pecgpu_dev_stream_free(s->stream);
	s->stream = NULL;
	pool_release(c);
	return save_error(s);
}

static void *save_main(void *arg)
{
	struct pecgpu_save *s = arg;
	struct pecgpu_ctx *c = s->c;
	uint64_t n = pecgpu_chunk_count(s->l.total, s->chunk_size);
	uint8_t (*dig)[PECGPU_DIGEST_LEN] = malloc((n ? n : 1) * PECGPU_DIGEST_LEN);
	struct pecgpu_ref *refs = calloc(n ? n : 1, sizeof(*refs));
	int rc;
	struct timespec t;

	if (!dig || !refs) {
		save_fail(s, "allocation", -ENOMEM);
		goto out;
	}
	if (s->l.has_device && (rc = pecgpu_dev_use(s->device)) < 0) {
		save_fail(s, "device selection", rc);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	rc = pecgpu_layout_digests(&s->l, s->chunk_size, c->opt.hash_threads, dig);
	stat_time(s, &s->st.digest_s, seconds_since(&t));
	if (rc < 0) {
		save_fail(s, "digest", rc);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		refs[i].off = i * s->chunk_size;
		refs[i].len = (uint32_t)(s->l.total - refs[i].off < s->chunk_size ?
					 s->l.total - refs[i].off : s->chunk_size);
		refs[i].result = -ENOENT;
		memcpy(refs[i].digest, dig[i], PECGPU_DIGEST_LEN);
	}
	long missing = (long)n;
	if (s->on_pecfs && n) {
		missing = refs_keep_missing(s, refs, n, 0);
		if (missing == -EPERM) {
			/* a file of the mount outside any version (a tracker file in a run): plain writes */
			s->on_pecfs = 0;
			missing = (long)n;
		}
		if (missing < 0) {
			save_fail(s, "reference write", (int)missing);
			goto out;
		}
	}
	if (missing && run_staging(s, refs, (size_t)missing) < 0)
		goto out;
	save_mark(s, &s->copied);

	/* the file's size: linked and written chunks cover [0, total); a file of no chunks is empty */
	struct stat st;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (fstat(s->fd, &st) < 0) {
		save_fail(s, "stat", -errno);
		goto out;
	}
	if ((uint64_t)st.st_size != s->l.total && ftruncate(s->fd, (off_t)s->l.total) < 0) {
		save_fail(s, "truncate", -errno);
		goto out;
	}
	if (fsync(s->fd) < 0) {
		save_fail(s, "fsync", -errno);
		goto out;
	}
	stat_time(s, &s->st.write_s, seconds_since(&t));
out:
	if (close(s->fd) < 0)
		save_fail(s, "close", -errno);
	s->fd = -1;
	free(dig);
	free(refs);
	pthread_mutex_lock(&s->lock);
	s->st.total_s = seconds_since(&s->t0);
	s->copied = s->durable = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* the last touch of the context: pecgpu_ctx_free may free it once active drops */
	pthread_mutex_lock(&c->lock);
	c->active--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void save_destroy(struct pecgpu_save *s)
{
	pecgpu_layout_free(&s->l);
	free(s->free_list);
	free(s->queue);
	free(s->path);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int pecgpu_save_start(struct pecgpu_ctx *c, const char *path, const struct pecgpu_segment *segs,
		      size_t nsegs, struct pecgpu_save **out)
{
	if (!c || !path || !out)
		return -EINVAL;
	struct pecgpu_save *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->c = c;
	s->fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	int rc = pecgpu_layout_init(&s->l, segs, nsegs);
	if (rc < 0)
		goto fail;
	if (s->l.has_device && !pecgpu_dev_available()) {
		rc = -ENODEV;
		goto fail;
	}
	s->device = s->l.has_device ? pecgpu_dev_current() : 0;
	if (!(s->path = strdup(path))) {
		rc = -ENOMEM;
		goto fail;
	}
	s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = pecgpu_chunk_size(s->fd, &s->chunk_size);
	if (rc == -ENOTTY) {
		s->chunk_size = PLAIN_CHUNK_SIZE;
	} else if (rc < 0) {
		goto fail;
	} else {
		s->on_pecfs = 1;
	}
	s->st.file_bytes = s->l.total;
	s->st.chunks = pecgpu_chunk_count(s->l.total, s->chunk_size);

	pthread_mutex_lock(&c->lock);
	c->active++;
	pthread_mutex_unlock(&c->lock);
	if ((rc = -pthread_create(&s->thread, NULL, save_main, s)) < 0) {
		pthread_mutex_lock(&c->lock);
		c->active--;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->fd >= 0)
		close(s->fd);
	save_destroy(s);
	return rc;
}

static int wait_flag(struct pecgpu_save *s, const int *flag)
{
	pthread_mutex_lock(&s->lock);
	while (!*flag)
		pthread_cond_wait(&s->cond, &s->lock);
	int err = s->err;
	pthread_mutex_unlock(&s->lock);
	return err;
}

int pecgpu_save_wait_copied(struct pecgpu_save *s)
{
	return wait_flag(s, &s->copied);
}

int pecgpu_save_wait_durable(struct pecgpu_save *s)
{
	return wait_flag(s, &s->durable);
}

void pecgpu_save_stats(const struct pecgpu_save *s, struct pecgpu_save_stats *out)
{
	struct pecgpu_save *m = (struct pecgpu_save *)s;  /* the lock is not part of the value */
	pthread_mutex_lock(&m->lock);
	*out = s->st;
	if (!s->durable)
		out->total_s = seconds_since(&s->t0);
	pthread_mutex_unlock(&m->lock);
}

const char *pecgpu_save_error(const struct pecgpu_save *s)
{
	/* msg is written once, under the lock, before err becomes non-zero; it is never changed after */
	struct pecgpu_save *m = (struct pecgpu_save *)s;
	pthread_mutex_lock(&m->lock);
	const char *msg = s->msg;
	pthread_mutex_unlock(&m->lock);
	return msg;
}

void pecgpu_save_free(struct pecgpu_save *s)
{
	if (!s)
		return;
	wait_flag(s, &s->durable);
	pthread_join(s->thread, NULL);
	save_destroy(s);
}
