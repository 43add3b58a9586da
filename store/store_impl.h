/* store_impl.h - the state behind struct store and the in-memory chunk index (private to store*.c).
 *
 * The index maps a digest to its reference count, payload length and state. It holds exactly the
 * chunks that have a record in the database (loaded at open), plus entries of puts and deletions
 * in progress; store.lock protects it and the counters, store.cond announces state changes.
 */
#ifndef PECFS_STORE_IMPL_H
#define PECFS_STORE_IMPL_H
#ifndef PECFS_STORE_INTERNAL
#error "store_impl.h is private to store/: include store.h"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "store.h"

enum store_chunk_state {
	STORE_CHUNK_PRESENT,   /* file durable and record committed */
	STORE_CHUNK_WRITING,   /* a put is storing it: wait on store.cond */
	STORE_CHUNK_DELETING,  /* gc is removing it: wait on store.cond, then store it anew */
};

struct store_chunk_entry {
	struct digest digest;
	uint64_t refs;
	uint64_t len;
	uint32_t state;  /* enum store_chunk_state */
	struct store_chunk_entry *next;
};

struct store_index {
	struct store_chunk_entry **buckets;
	uint64_t nbuckets;  /* a power of two */
	uint64_t count;
	uint64_t gen;       /* bumped by every add and remove: the digest set changed */
};

struct store {
	char *data_dir;
	int lock_fd;
	struct meta *meta;
	struct chunk_store *chunks;
	uint32_t chunk_size;

	pthread_mutex_t lock;  /* protects index and the counters below */
	pthread_cond_t cond;   /* broadcast whenever an entry leaves WRITING or DELETING */
	struct store_index index;
	uint64_t stored_chunks, stored_bytes, referenced_bytes;
	uint64_t logical_put_bytes, dedup_hits, new_chunks, put_errors;
	atomic_uint_fast64_t corrupt_reads;

	pthread_mutex_t maint_lock;  /* one gc or fsck at a time */

	/* The tier below (store_attach_remote); NULL when the store is local only. */
	const struct store_remote *_Atomic remote;
};

/* ---- index (caller holds store.lock) ---- */
int store_index_init(struct store_index *ix);
void store_index_free(struct store_index *ix);
struct store_chunk_entry *store_index_find(struct store_index *ix, const struct digest *d);
/* Adds a new entry (the digest must be absent); NULL when out of memory. */
struct store_chunk_entry *store_index_add(struct store_index *ix, const struct digest *d);
/* Unlinks and frees e. */
void store_index_remove(struct store_index *ix, struct store_chunk_entry *e);
/* Calls cb for every entry; cb must not add or remove entries. */
void store_index_foreach(struct store_index *ix, void (*cb)(struct store_chunk_entry *e, void *arg),
			 void *arg);

/* Mount-time recovery (store_recover.c): temp files are gone already; deletes orphans, loads the
 * chunk records and derives reference counts from the extents. */
int store_recover(struct store *st);

/* The namespace half of store_fsck (store_fsck_ns.c): counts inodes and namespace_errors,
 * printing one line per problem to out. */
int store_fsck_namespace(struct store *st, FILE *out, struct store_fsck_report *r);

#endif
