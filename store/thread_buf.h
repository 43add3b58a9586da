/* thread_buf.h - a growable buffer per thread, kept for the thread's life and freed when it exits.
 *
 * For hot paths that need a large temporary buffer on every call (reads): a fresh malloc of a
 * megabyte is an mmap whose pages fault in each time, and first-touch memory is slow on the VMs we
 * run on. Declare one `static struct thread_buf x = THREAD_BUF_INIT;` per use site.
 */
#ifndef PECFS_THREAD_BUF_H
#define PECFS_THREAD_BUF_H

#include <pthread.h>
#include <stddef.h>

struct thread_buf {
	int ready;          /* the key exists; set once, under a process-wide mutex */
	pthread_key_t key;
};

#define THREAD_BUF_INIT { 0 }

/* The calling thread's buffer, at least size bytes (contents unspecified), or NULL without memory.
 * Valid until the same thread calls again with the same tb. */
void *thread_buf_get(struct thread_buf *tb, size_t size);

#endif
