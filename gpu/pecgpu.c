/* pecgpu.c - the synchronous half of libpecgpu: file layouts over segments, chunk digests (OpenSSL on
 * host threads, or the device path of pecgpu_dev.h) and the reference-write ioctls.
 *
 * Nothing here keeps state between calls; every function is thread-safe. Saves live in pecgpu_save.c.
 */
#include "pecgpu.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pecfs_ioctl.h"
#include "pecgpu_dev.h"
#include "pecgpu_impl.h"

#define PECGPU_RELEASE "0.1.0"

static char version_text[64];
static pthread_once_t version_once = PTHREAD_ONCE_INIT;

static void version_fill(void)
{
	snprintf(version_text, sizeof(version_text), "pecgpu %s (%s)", PECGPU_RELEASE,
		 pecgpu_dev_runtime());
}

const char *pecgpu_version(void)
{
	pthread_once(&version_once, version_fill);
	return version_text;
}

int pecgpu_cuda_available(void)
{
	return pecgpu_dev_available();
}

uint64_t pecgpu_chunk_count(uint64_t total, uint32_t chunk_size)
{
	if (chunk_size == 0)
		return 0;
	return total / chunk_size + (total % chunk_size != 0);
}

/* ---- layouts ---- */

int pecgpu_layout_init(struct pecgpu_layout *l, const struct pecgpu_segment *segs, size_t nsegs)
{
	memset(l, 0, sizeof(*l));
	if (nsegs && !segs)
		return -EINVAL;
	l->segs = malloc((nsegs ? nsegs : 1) * sizeof(*segs));
	l->start = malloc((nsegs + 1) * sizeof(*l->start));
	if (!l->segs || !l->start) {
		pecgpu_layout_free(l);
		return -ENOMEM;
	}
	l->nsegs = nsegs;
	for (size_t i = 0; i < nsegs; i++) {
		const struct pecgpu_segment *s = &segs[i];
		if ((s->len && !s->ptr) || (s->where != PECGPU_HOST && s->where != PECGPU_CUDA) ||
		    s->len > UINT64_MAX - l->total) {
			pecgpu_layout_free(l);
			return -EINVAL;
		}
		l->segs[i] = *s;
		l->start[i] = l->total;
		l->total += s->len;
		if (s->len && s->where == PECGPU_CUDA)
			l->has_device = 1;
	}
	l->start[nsegs] = l->total;
	return 0;
}

void pecgpu_layout_free(struct pecgpu_layout *l)
{
	free(l->segs);
	free(l->start);
	l->segs = NULL;
	l->start = NULL;
}

size_t pecgpu_layout_find(const struct pecgpu_layout *l, uint64_t off)
{
	/* the last segment whose start is <= off; empty segments share their successor's start, and
	 * taking the last of equal starts skips them */
	size_t lo = 0, hi = l->nsegs;  /* answer in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->start[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void piece_fill(const struct pecgpu_layout *l, struct pecgpu_piece *pc)
{
	if (pc->left == 0) {
		pc->n = 0;
		return;
	}
	pc->seg = pecgpu_layout_find(l, pc->off);
	uint64_t in = pc->off - l->start[pc->seg];
	uint64_t avail = l->segs[pc->seg].len - in;
	pc->p = (const uint8_t *)l->segs[pc->seg].ptr + in;
	pc->n = avail < pc->left ? avail : pc->left;
}

struct pecgpu_piece pecgpu_piece_first(const struct pecgpu_layout *l, uint64_t off, uint64_t len)
{
	struct pecgpu_piece pc = { .off = off, .left = len };
	piece_fill(l, &pc);
	return pc;
}

void pecgpu_piece_next(const struct pecgpu_layout *l, struct pecgpu_piece *pc)
{
	pc->off += pc->n;
	pc->left -= pc->n;
	piece_fill(l, pc);
}

/* ---- host digests ---- */

struct host_job {
	const struct pecgpu_layout *l;
	uint32_t chunk_size;
	uint64_t nchunks;
	uint8_t (*out)[PECGPU_DIGEST_LEN];
	atomic_uint_fast64_t next;  /* next chunk to take */
	atomic_int err;
};

static void *host_worker(void *arg)
{
	struct host_job *j = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md) {
		atomic_store(&j->err, -ENOMEM);
		return NULL;
	}
	for (;;) {
		uint64_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->nchunks || atomic_load(&j->err))
			break;
		uint64_t off = i * j->chunk_size;
		uint64_t len = j->l->total - off < j->chunk_size ? j->l->total - off : j->chunk_size;
		unsigned int n = 0;
		int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		for (struct pecgpu_piece pc = pecgpu_piece_first(j->l, off, len); ok && pc.n;
		     pecgpu_piece_next(j->l, &pc))
			ok = EVP_DigestUpdate(md, pc.p, pc.n);
		if (!ok || !EVP_DigestFinal_ex(md, j->out[i], &n) || n != PECGPU_DIGEST_LEN) {
			atomic_store(&j->err, -EIO);
			break;
		}
	}
	EVP_MD_CTX_free(md);
	return NULL;
}

int pecgpu_host_digests(const struct pecgpu_layout *l, uint32_t chunk_size, unsigned threads,
			uint8_t (*out)[PECGPU_DIGEST_LEN])
{
	if (chunk_size == 0)
		return -EINVAL;
	if (l->has_device)
		return -ENODEV;
	struct host_job j = { .l = l, .chunk_size = chunk_size, .out = out };
	j.nchunks = pecgpu_chunk_count(l->total, chunk_size);
	atomic_init(&j.next, 0);
	atomic_init(&j.err, 0);
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	if (threads > j.nchunks)
		threads = (unsigned)(j.nchunks ? j.nchunks : 1);
	if (threads > 256)
		threads = 256;
	pthread_t tid[256];
	unsigned started = 0;
	/* the calling thread is worker 0 */
	for (unsigned t = 1; t < threads; t++, started++)
		if (pthread_create(&tid[started], NULL, host_worker, &j) != 0)
			break;
	host_worker(&j);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	return atomic_load(&j.err);
}

int pecgpu_layout_digests(const struct pecgpu_layout *l, uint32_t chunk_size, unsigned threads,
			  uint8_t (*out)[PECGPU_DIGEST_LEN])
{
	if (chunk_size == 0)
		return -EINVAL;
	if (l->has_device)
		return pecgpu_dev_digests(l->segs, l->nsegs, l->total, chunk_size, out);
	return pecgpu_host_digests(l, chunk_size, threads, out);
}

int pecgpu_digests(const struct pecgpu_segment *segs, size_t nsegs, uint32_t chunk_size,
		   unsigned threads, uint8_t (*out)[PECGPU_DIGEST_LEN])
{
	struct pecgpu_layout l;
	if (chunk_size == 0)
		return -EINVAL;
	int rc = pecgpu_layout_init(&l, segs, nsegs);
	if (rc < 0)
		return rc;
	rc = pecgpu_layout_digests(&l, chunk_size, threads, out);
	pecgpu_layout_free(&l);
	return rc;
}

/* ---- reference writes ---- */

int pecgpu_chunk_size(int fd, uint32_t *out)
{
	struct pecfs_ioc_info info;
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, PECFS_IOC_INFO, &info) < 0)
		return -errno;
	if (info.abi != PECFS_IOC_ABI || info.chunk_size == 0)
		return -EPROTO;
	*out = info.chunk_size;
	return 0;
}

long pecgpu_ref(int fd, struct pecgpu_ref *refs, size_t n)
{
	struct pecfs_ref_batch *b = malloc(sizeof(*b));
	long linked = 0;
	if (!b)
		return -ENOMEM;
	for (size_t done = 0; done < n;) {
		uint32_t count = n - done < PECFS_REF_MAX ? (uint32_t)(n - done) : PECFS_REF_MAX;
		memset(b, 0, sizeof(*b));
		b->abi = PECFS_IOC_ABI;
		b->count = count;
		for (uint32_t i = 0; i < count; i++) {
			b->e[i].off = refs[done + i].off;
			b->e[i].len = refs[done + i].len;
			memcpy(b->e[i].digest, refs[done + i].digest, PECGPU_DIGEST_LEN);
		}
		if (ioctl(fd, PECFS_IOC_REF, b) < 0) {
			long rc = -errno;  /* ENOTTY: a file system without these ioctls */
			free(b);
			return rc;
		}
		for (uint32_t i = 0; i < count; i++) {
			refs[done + i].result = b->e[i].result;
			linked += b->e[i].result == 0;
		}
		done += count;
	}
	free(b);
	return linked;
}
