/* pecgpu_cuda.cu - pecgpu_dev.h on the CUDA runtime: the chunk-digest kernel, pinned staging memory
 * and device-to-host copies on a side stream.
 *
 * One thread hashes one chunk (SHA-256 is sequential within a message), reading through a table of
 * the file's non-empty segments; host segments are staged into one device buffer first. All work runs
 * on non-blocking streams created here, never on the trainer's default stream.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "pecgpu_dev.h"
#include "pecgpu_sha256.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static int cuda_errno(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return 0;
	case cudaErrorMemoryAllocation:
		return -ENOMEM;
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorInvalidDevice:
		return -ENODEV;
	case cudaErrorInvalidValue:
		return -EINVAL;
	default:
		return -EIO;
	}
}

const char *pecgpu_dev_runtime(void)
{
	return "cuda " STR(__CUDACC_VER_MAJOR__) "." STR(__CUDACC_VER_MINOR__);
}

static int device_count;
static pthread_once_t device_once = PTHREAD_ONCE_INIT;

static void device_probe(void)
{
	if (cudaGetDeviceCount(&device_count) != cudaSuccess)
		device_count = 0;
	cudaGetLastError();  /* a failed probe must not stick to later calls */
}

int pecgpu_dev_available(void)
{
	pthread_once(&device_once, device_probe);
	return device_count > 0;
}

int pecgpu_dev_current(void)
{
	int dev = 0;
	if (pecgpu_dev_available() && cudaGetDevice(&dev) != cudaSuccess)
		dev = 0;
	return dev;
}

int pecgpu_dev_use(int device)
{
	if (!pecgpu_dev_available())
		return -ENODEV;
	return cuda_errno(cudaSetDevice(device));
}

/* ---- digests ---- */

struct dev_segment {
	const uint8_t *p;  /* device memory */
	uint64_t start;    /* file offset */
	uint64_t len;      /* > 0 */
};

/* Streams chunk bytes [off, end) into the hash, segment by segment. On the device, whole 64-byte
 * blocks that are 16-byte aligned are loaded as four 16-byte words instead of 64 bytes. */
__device__ static void hash_range(struct pecgpu_sha256 *h, const struct dev_segment *segs,
				  unsigned nsegs, uint64_t off, uint64_t end)
{
	unsigned lo = 0, hi = nsegs;  /* the last segment starting at or before off */
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (segs[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	for (unsigned k = lo; off < end && k < nsegs; k++) {
		uint64_t seg_end = segs[k].start + segs[k].len;
		uint64_t n = (end < seg_end ? end : seg_end) - off;
		const uint8_t *p = segs[k].p + (off - segs[k].start);
		off += n;
		if (h->buflen == 0) {
			if (((uintptr_t)p & 15) == 0) {
				uint4 block[4];
				for (; n >= 64; n -= 64, p += 64) {
					const uint4 *q = (const uint4 *)p;
					for (int j = 0; j < 4; j++)
						block[j] = __ldg(q + j);
					pecgpu_sha256_block(h->h, (const uint8_t *)block);
					h->total += 64;
				}
			}
		}
		pecgpu_sha256_update(h, p, n);
	}
}

__global__ static void chunk_digest_kernel(const struct dev_segment *segs, unsigned nsegs,
					   uint64_t total, uint32_t chunk_size, uint64_t nchunks,
					   uint8_t *out)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= nchunks)
		return;
	uint64_t off = i * chunk_size;
	uint64_t end = total - off < chunk_size ? total : off + chunk_size;
	struct pecgpu_sha256 h;
	pecgpu_sha256_init(&h);
	hash_range(&h, segs, nsegs, off, end);
	pecgpu_sha256_final(&h, out + i * PECGPU_DIGEST_LEN);
}

int pecgpu_dev_digests(const struct pecgpu_segment *segs, size_t nsegs, uint64_t total,
		       uint32_t chunk_size, uint8_t (*out)[PECGPU_DIGEST_LEN])
{
	if (!pecgpu_dev_available())
		return -ENODEV;
	if (chunk_size == 0)
		return -EINVAL;
	uint64_t nchunks = total / chunk_size + (total % chunk_size != 0);
	if (nchunks == 0)
		return 0;

	struct dev_segment *table = (struct dev_segment *)calloc(nsegs, sizeof(*table));
	cudaStream_t st = NULL;
	uint8_t *d_host = NULL, *d_out = NULL;
	struct dev_segment *d_table = NULL;
	unsigned n = 0;
	uint64_t host_bytes = 0, staged = 0, off = 0;
	int rc;
	if (!table)
		return -ENOMEM;
	for (size_t i = 0; i < nsegs; i++)
		if (segs[i].where == PECGPU_HOST)
			host_bytes += segs[i].len;
	rc = cuda_errno(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	if (rc == 0 && host_bytes)
		rc = cuda_errno(cudaMalloc((void **)&d_host, host_bytes));
	for (size_t i = 0; rc == 0 && i < nsegs; off += segs[i].len, i++) {
		if (segs[i].len == 0)
			continue;
		table[n].start = off;
		table[n].len = segs[i].len;
		if (segs[i].where == PECGPU_HOST) {
			/* host segments (headers, small tensors) travel once, ahead of the kernel */
			rc = cuda_errno(cudaMemcpyAsync(d_host + staged, segs[i].ptr, segs[i].len,
							cudaMemcpyHostToDevice, st));
			table[n].p = d_host + staged;
			staged += segs[i].len;
		} else {
			table[n].p = (const uint8_t *)segs[i].ptr;
		}
		n++;
	}
	if (rc == 0)
		rc = cuda_errno(cudaMalloc((void **)&d_table, n * sizeof(*table)));
	if (rc == 0)
		rc = cuda_errno(cudaMalloc((void **)&d_out, nchunks * PECGPU_DIGEST_LEN));
	if (rc == 0)
		rc = cuda_errno(cudaMemcpyAsync(d_table, table, n * sizeof(*table),
						cudaMemcpyHostToDevice, st));
	if (rc == 0) {
		/* one warp per block, so that the few long chains a file has spread over many SMs */
		const unsigned threads = 32;
		unsigned blocks = (unsigned)((nchunks + threads - 1) / threads);
		chunk_digest_kernel<<<blocks, threads, 0, st>>>(d_table, n, total, chunk_size, nchunks,
								  d_out);
		rc = cuda_errno(cudaGetLastError());
	}
	if (rc == 0)
		rc = cuda_errno(cudaMemcpyAsync(out, d_out, nchunks * PECGPU_DIGEST_LEN,
						cudaMemcpyDeviceToHost, st));
	if (st) {
		int src = cuda_errno(cudaStreamSynchronize(st));
		rc = rc ? rc : src;
		cudaStreamDestroy(st);
	}
	cudaFree(d_out);
	cudaFree(d_table);
	cudaFree(d_host);
	free(table);
	return rc;
}

/* ---- staging memory: pinned when a device is there, so copies into it are truly asynchronous ---- */

/* A 64-byte prefix says how the block was allocated. */
#define HOST_PREFIX 64

int pecgpu_dev_host_alloc(size_t len, void **out)
{
	uint8_t *p = NULL;
	int pinned = pecgpu_dev_available();
	if (pinned) {
		if (cudaHostAlloc((void **)&p, len + HOST_PREFIX, cudaHostAllocDefault) != cudaSuccess)
			return -ENOMEM;
	} else if (posix_memalign((void **)&p, 4096, len + HOST_PREFIX) != 0) {
		return -ENOMEM;
	}
	p[0] = (uint8_t)pinned;
	*out = p + HOST_PREFIX;
	return 0;
}

void pecgpu_dev_host_free(void *ptr)
{
	if (!ptr)
		return;
	uint8_t *p = (uint8_t *)ptr - HOST_PREFIX;
	if (p[0])
		cudaFreeHost(p);
	else
		free(p);
}

/* ---- the side stream ---- */

struct pecgpu_dev_stream {
	cudaStream_t st;
	cudaEvent_t *ev;
	unsigned nev;
};

int pecgpu_dev_stream_new(unsigned nevents, struct pecgpu_dev_stream **out)
{
	if (!pecgpu_dev_available())
		return -ENODEV;
	struct pecgpu_dev_stream *s = (struct pecgpu_dev_stream *)calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ev = (cudaEvent_t *)calloc(nevents ? nevents : 1, sizeof(*s->ev));
	int rc = s->ev ? cuda_errno(cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking)) : -ENOMEM;
	for (; rc == 0 && s->nev < nevents; s->nev++)
		rc = cuda_errno(cudaEventCreateWithFlags(&s->ev[s->nev], cudaEventDisableTiming));
	if (rc < 0) {
		pecgpu_dev_stream_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void pecgpu_dev_stream_free(struct pecgpu_dev_stream *s)
{
	if (!s)
		return;
	if (s->st) {
		cudaStreamSynchronize(s->st);
		cudaStreamDestroy(s->st);
	}
	for (unsigned i = 0; i < s->nev; i++)
		if (s->ev[i])
			cudaEventDestroy(s->ev[i]);
	free(s->ev);
	free(s);
}

int pecgpu_dev_copy_async(struct pecgpu_dev_stream *s, void *dst, const void *src, size_t len)
{
	return cuda_errno(cudaMemcpyAsync(dst, src, len, cudaMemcpyDeviceToHost, s->st));
}

int pecgpu_dev_event_record(struct pecgpu_dev_stream *s, unsigned ev)
{
	if (ev >= s->nev)
		return -EINVAL;
	return cuda_errno(cudaEventRecord(s->ev[ev], s->st));
}

int pecgpu_dev_event_wait(struct pecgpu_dev_stream *s, unsigned ev)
{
	if (ev >= s->nev)
		return -EINVAL;
	return cuda_errno(cudaEventSynchronize(s->ev[ev]));
}
