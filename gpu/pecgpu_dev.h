/* pecgpu_dev.h - the library's only contact with a GPU runtime (internal to libpecgpu).
 *
 * pecgpu_cuda.cu implements it with the CUDA runtime; pecgpu_nodev.c, built when CUDA is absent,
 * implements it with plain host memory and answers -ENODEV wherever device memory is involved. All
 * functions return 0 or a negative errno. Device work runs on one side stream per stream object, so
 * it never waits for (or blocks) the trainer's default stream.
 */
#ifndef PECGPU_DEV_H
#define PECGPU_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "pecgpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "cuda 13.0" or "no cuda". */
const char *pecgpu_dev_runtime(void);
/* 1 when a CUDA device can be used, else 0. */
int pecgpu_dev_available(void);

/* The calling thread's current CUDA device (0 without CUDA), and making device the current one of
 * the calling thread: a save's threads use the device that was current where the save started. */
int pecgpu_dev_current(void);
int pecgpu_dev_use(int device);

/* SHA-256 of every chunk of the concatenation of segs (total bytes) on the device, one thread per
 * chunk; host segments are staged to device memory first. Blocks until the digests are in out. */
int pecgpu_dev_digests(const struct pecgpu_segment *segs, size_t nsegs, uint64_t total,
		       uint32_t chunk_size, uint8_t (*out)[PECGPU_DIGEST_LEN]);

/* Staging memory: pinned (page-locked) when CUDA is available, so copies into it are asynchronous. */
int pecgpu_dev_host_alloc(size_t len, void **out);
void pecgpu_dev_host_free(void *p);

/* A side stream with one completion event per staging buffer. */
struct pecgpu_dev_stream;
int pecgpu_dev_stream_new(unsigned nevents, struct pecgpu_dev_stream **out);
void pecgpu_dev_stream_free(struct pecgpu_dev_stream *s);
/* Queues a device-to-host copy of len bytes on the stream. */
int pecgpu_dev_copy_async(struct pecgpu_dev_stream *s, void *dst, const void *src, size_t len);
/* Records event ev (0..nevents-1) after everything queued so far; event_wait blocks until it. */
int pecgpu_dev_event_record(struct pecgpu_dev_stream *s, unsigned ev);
int pecgpu_dev_event_wait(struct pecgpu_dev_stream *s, unsigned ev);

#ifdef __cplusplus
}
#endif

#endif
