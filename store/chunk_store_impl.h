/* chunk_store_impl.h - the chunk store's state, shared by chunk_store.c (layout, put, delete,
 * listing) and chunk_read.c (the open-file cache, reads, verification). Private to those two.
 */
#ifndef PECFS_CHUNK_STORE_IMPL_H
#define PECFS_CHUNK_STORE_IMPL_H
#ifndef PECFS_STORE_INTERNAL
#error "chunk_store_impl.h is private to store/: include chunk_store.h"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chunk_format.h"
#include "chunk_store.h"

#define CHUNK_FD_CACHE 64

/* An open, header-verified chunk file. Shared by the cache and readers; freed (fd closed) when
 * the last reference goes. */
struct chunk_open {
	struct digest digest;
	int fd;
	int refs;            /* protected by chunk_store.lock */
	uint64_t last_used;  /* protected by chunk_store.lock; LRU order */
	struct chunk_header hdr;
};

struct chunk_store {
	char *dir;
	int subdir_fd[256];     /* DATA_DIR/chunks/00 .. ff, kept open for openat/renameat/fsync */
	int tmp_fd;             /* DATA_DIR/chunks/tmp */
	uint64_t reserve_free_bytes;
	atomic_uint_fast64_t tmp_seq;  /* makes temporary names unique within the process */
	atomic_bool no_direct_io;      /* the file system refused O_DIRECT once: write buffered */

	pthread_mutex_t lock;   /* protects the cache below and chunk_open.refs / last_used */
	struct chunk_open *cache[CHUNK_FD_CACHE];
	uint64_t tick;
};

/* Drops the cached open file of d, if any (after a delete). */
void chunk_cache_drop(struct chunk_store *cs, const struct digest *d);
/* Closes every cached file (at close). */
void chunk_cache_clear(struct chunk_store *cs);

/* "chunk <hex>" style messages go through here: "pecfs: chunk store: ..." on stderr (fmt a literal). */
#define chunk_store_log(fmt, ...) fprintf(stderr, "pecfs: chunk store: " fmt "\n", ##__VA_ARGS__)

#endif
