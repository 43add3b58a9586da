/* pecgpu_nodev.c - pecgpu_dev.h for builds without CUDA: plain host memory, no device.
 *
 * Staging buffers are page-aligned malloc'ed memory. There is no device memory, so every operation
 * that would read it answers -ENODEV; pecgpu_save_start refuses device segments before they get here.
 */
#include "pecgpu_dev.h"

#include <errno.h>
#include <stdlib.h>

const char *pecgpu_dev_runtime(void)
{
	return "no cuda";
}

int pecgpu_dev_available(void)
{
	return 0;
}

int pecgpu_dev_current(void)
{
	return 0;
}

int pecgpu_dev_use(int device)
{
	return device == 0 ? 0 : -ENODEV;
}

int pecgpu_dev_digests(const struct pecgpu_segment *segs, size_t nsegs, uint64_t total,
		       uint32_t chunk_size, uint8_t (*out)[PECGPU_DIGEST_LEN])
{
	(void)segs, (void)nsegs, (void)total, (void)chunk_size, (void)out;
	return -ENODEV;
}

int pecgpu_dev_host_alloc(size_t len, void **out)
{
	return posix_memalign(out, 4096, len ? len : 1) ? -ENOMEM : 0;
}

void pecgpu_dev_host_free(void *p)
{
	free(p);
}

int pecgpu_dev_stream_new(unsigned nevents, struct pecgpu_dev_stream **out)
{
	(void)nevents;
	*out = NULL;
	return -ENODEV;
}

void pecgpu_dev_stream_free(struct pecgpu_dev_stream *s)
{
	(void)s;
}

int pecgpu_dev_copy_async(struct pecgpu_dev_stream *s, void *dst, const void *src, size_t len)
{
	(void)s, (void)dst, (void)src, (void)len;
	return -ENODEV;
}

int pecgpu_dev_event_record(struct pecgpu_dev_stream *s, unsigned ev)
{
	(void)s, (void)ev;
	return -ENODEV;
}

int pecgpu_dev_event_wait(struct pecgpu_dev_stream *s, unsigned ev)
{
	(void)s, (void)ev;
	return -ENODEV;
}
