/* thread_buf.c - per-thread buffers (see thread_buf.h). */
#include "thread_buf.h"

#include <stdlib.h>

struct thread_buf_mem {
	size_t cap;
	max_align_t data[];
};

/* The key is created on the first get of each thread_buf (pthread_once takes no argument to say
 * which one), under this mutex. */
static pthread_mutex_t thread_buf_init_lock = PTHREAD_MUTEX_INITIALIZER;

void *thread_buf_get(struct thread_buf *tb, size_t size)
{
	if (!__atomic_load_n(&tb->ready, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&thread_buf_init_lock);
		if (!tb->ready) {
			if (pthread_key_create(&tb->key, free) != 0) {
				pthread_mutex_unlock(&thread_buf_init_lock);
				return NULL;
			}
			__atomic_store_n(&tb->ready, 1, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&thread_buf_init_lock);
	}
	struct thread_buf_mem *m = pthread_getspecific(tb->key);
	if (m && m->cap >= size)
		return m->data;
	free(m);
	m = malloc(sizeof(*m) + size);
	if (m)
		m->cap = size;
	pthread_setspecific(tb->key, m);
	return m ? m->data : NULL;
}
