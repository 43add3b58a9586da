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
#include "pecgpu_chunk_hash.h"

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

__global__ static void chunk_digest_kernel(const struct pecgpu_chunk_segment *segs, unsigned nsegs,
					   uint64_t total, uint32_t chunk_size, uint64_t nchunks,
					   uint8_t *out)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= nchunks)
		return;
	uint64_t off = i * chunk_size;
	uint64_t end = total - off < chunk_size ? total : off + chunk_size;
	pecgpu_chunk_hash(segs, nsegs, off, end, out + i * PECGPU_DIGEST_LEN);
}

/* Stream-ordered allocations: unlike cudaFree, cudaFreeAsync does not wait for the whole device, so
 * hashing never stalls on the trainer's kernels. Devices without memory pools get cudaMalloc. */
static int dev_alloc(void **p, size_t len, cudaStream_t st, int *pooled)
{
	*pooled = cudaMallocAsync(p, len, st) == cudaSuccess;
	if (*pooled)
		return 0;
	cudaGetLastError();
	return cuda_errno(cudaMalloc(p, len));
}

static void dev_free(void *p, cudaStream_t st, int pooled)
{
	if (!p)
		return;
	if (pooled)
		cudaFreeAsync(p, st);
	else
		cudaFree(p);
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

	struct pecgpu_chunk_segment *table = (struct pecgpu_chunk_segment *)calloc(nsegs, sizeof(*table));
	cudaStream_t st = NULL;
	uint8_t *d_host = NULL, *d_out = NULL;
	struct pecgpu_chunk_segment *d_table = NULL;
	unsigned n = 0;
	uint64_t host_bytes = 0, staged = 0, off = 0;
	int rc, pooled_host = 0, pooled_table = 0, pooled_out = 0;
	if (!table)
		return -ENOMEM;
	for (size_t i = 0; i < nsegs; i++)
		if (segs[i].where == PECGPU_HOST)
			host_bytes += segs[i].len;
	rc = cuda_errno(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	if (rc == 0 && host_bytes)
		rc = dev_alloc((void **)&d_host, host_bytes, st, &pooled_host);
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
		rc = dev_alloc((void **)&d_table, n * sizeof(*table), st, &pooled_table);
	if (rc == 0)
		rc = dev_alloc((void **)&d_out, nchunks * PECGPU_DIGEST_LEN, st, &pooled_out);
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
		dev_free(d_out, st, pooled_out);
		dev_free(d_table, st, pooled_table);
		dev_free(d_host, st, pooled_host);
		cudaStreamSynchronize(st);
		cudaStreamDestroy(st);
	}
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
