/* read_pattern.h - tells a sequential reader from a random one, for read-ahead.
 *
 * An open file keeps a struct read_pattern; each read notes where it starts and ends. A read follows
 * on when it starts within a chunk of where the previous one ended. Once two reads in a row have
 * followed on, or from a read at offset 0 on, read_pattern_note reports each new chunk of the file
 * the reader enters, once; a read that does not follow on starts the count again. Both
 * read-aheads use it: from the local disk (fs/ops_file.c) and from the bucket (tier_readahead).
 */
#ifndef PECFS_READ_PATTERN_H
#define PECFS_READ_PATTERN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zeroed when the file is opened; reads through the same open file may note themselves concurrently. */
struct read_pattern {
	atomic_uint_fast64_t next;    /* where the last read ended */
	atomic_uint streak;           /* reads in a row that started near the previous end */
	atomic_uint_fast64_t chunk;   /* 1 + index of the last chunk reported */
};

/* Notes a read of [off, off + len) in a file cut into chunks of chunk bytes. True, with the index of
 * the chunk in *entered, when a sequential reader has just entered that chunk (off's); false for a
 * random read, an empty one, or a chunk already reported. */
bool read_pattern_note(struct read_pattern *rp, uint64_t off, size_t len, uint64_t chunk, uint64_t *entered);

#endif
