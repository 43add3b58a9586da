/* digest_table.h - a set of chunk digests with a count and a length for each: open addressing with
 * linear probing, removals without tombstones. What a version's tally (meta_tally.c) and a seal's
 * count of distinct chunks (fs/data.c) both need. Not thread-safe: the owner locks.
 */
#ifndef PECFS_DIGEST_TABLE_H
#define PECFS_DIGEST_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

struct digest_slot {
	struct digest d;
	uint32_t refs;  /* 0: an empty slot */
	uint64_t len;
};

struct digest_table {
	struct digest_slot *slots;  /* cap slots, cap a power of two, at most half full */
	size_t n, cap;
	uint64_t len_sum;           /* the lengths of the digests present, each once */
};

/* Counts d once more; len is kept from its first addition. *fresh (may be NULL): it was absent.
 * 0 or -ENOMEM (nothing changed). */
int digest_table_add(struct digest_table *t, const struct digest *d, uint64_t len, bool *fresh);
/* Counts d once less; it goes at 0. -ENOENT when it is not there. */
int digest_table_drop(struct digest_table *t, const struct digest *d);
bool digest_table_has(const struct digest_table *t, const struct digest *d);
/* d's length (from its first addition) into *len: true, or false when d is not there. */
bool digest_table_get(const struct digest_table *t, const struct digest *d, uint64_t *len);
/* Changes the length kept for d, which is there: 0, or -ENOENT. */
int digest_table_set_len(struct digest_table *t, const struct digest *d, uint64_t len);
/* The lengths of t's digests that other lacks, each once. */
uint64_t digest_table_len_outside(const struct digest_table *t, const struct digest_table *other);
void digest_table_free(struct digest_table *t);

#endif
