/* meta_db.h - the RocksDB handle behind struct meta and helpers shared by meta*.c (private).
 *
 * One default column family; options are chosen in meta.c. Every RocksDB error goes through
 * meta_db_error so that the message reaches stderr once and the caller gets an errno.
 */
#ifndef PECFS_META_DB_H
#define PECFS_META_DB_H
#ifndef PECFS_STORE_INTERNAL
#error "meta_db.h is private to store/: include meta.h"
#endif

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "meta.h"

/* Results of the last rounds of WAL syncs kept for callers still waking up. */
#define META_SYNC_RING 64

struct meta {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table_opts;
	rocksdb_cache_t *cache;
	rocksdb_readoptions_t *ropts;     /* plain point reads; shared, never modified after open */
	rocksdb_writeoptions_t *wopts;    /* unsynced commits */
	rocksdb_writeoptions_t *wopts_sync;
	int64_t logical_bytes;            /* atomic: see meta.c */
	bool logical_stale;               /* atomic: recount before use */
	/* Live figures of tracked versions (meta_tally.c). */
	pthread_rwlock_t commit_rw;       /* commits: exclusive for batches of inode records */
	pthread_mutex_t tally_mu;
	struct meta_tally *tallies;       /* tally_mu */
	size_t tallies_tracked;           /* atomic: how many; commits skip the version counts at 0 */
	/* Group commit of WAL syncs (meta_sync): rounds are numbered; a round covers every caller that
	 * arrived before it started. */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	bool syncing;
	uint64_t sync_started, sync_done, sync_failed;  /* round numbers; sync_failed: last that failed */
	int sync_rc[META_SYNC_RING], sync_failed_rc;
};

/* Prints "pecfs: metadata: <what>: <err>" to stderr, frees err, returns -ENOSPC when the message
 * says the disk is full, -EIO otherwise. */
int meta_db_error(char *err, const char *what);

/* Point read: 0 with *val (free with rocksdb_free) and *len, -ENOENT, or an error. */
int meta_db_get(struct meta *m, const uint8_t *key, size_t klen, char **val, size_t *len);

/* Calls cb for every key starting with prefix[0..plen), in key order, from the first key >= start
 * (start NULL: from the prefix itself). cb returns non-zero to stop; that value is returned. */
typedef int (*meta_db_scan_cb)(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			       void *arg);
int meta_db_scan(struct meta *m, const uint8_t *prefix, size_t plen, const uint8_t *start,
		 size_t slen, meta_db_scan_cb cb, void *arg);

/* Raw key/value edits of a batch, for the typed helpers in meta_batch.c. */
void meta_batch_raw_put(struct meta_batch *b, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
/* Puts a value made of two pieces (a record header and a payload) without joining them first. */
void meta_batch_raw_put2(struct meta_batch *b, const uint8_t *k, size_t kl, const void *v1, size_t l1,
			 const void *v2, size_t l2);
void meta_batch_raw_del(struct meta_batch *b, const uint8_t *k, size_t kl);
/* What a batch changes in the counted figures (meta_tally.c): the inode records and extents it puts
 * or deletes, in the order noted. */
struct meta_note_inode {
	uint64_t ino, vino, names, size;
	uint64_t contrib;     /* what it adds to the logical bytes: its size, if a linked regular file */
	bool present;         /* put, not deleted */
	size_t seq;
};

struct meta_note_extent {
	uint64_t ino, off;
	struct digest d;
	bool put;             /* put (naming d), not deleted */
	size_t seq;
};

/* Every extent an inode has before the batch, as the batch's author read them: digests
 * [first, first + n) of meta_notes.known_digests. */
struct meta_note_known {
	uint64_t ino;
	size_t first, n;
};

struct meta_notes {
	struct meta_note_inode *inodes;
	size_t ninodes, capinodes;
	struct meta_note_extent *extents;
	size_t nextents, capextents;
	struct meta_note_known *known;
	size_t nknown, capknown;
	struct digest *known_digests;
	size_t nknown_digests, capknown_digests;
	bool lost;            /* no memory to note one: the figures are recounted */
};

/* The changes one commit makes, computed before its write and added after it. */
struct meta_tally_change;
struct meta_tally_delta {
	int64_t logical;      /* to the whole folder's logical bytes */
	struct meta_tally_change *v;
	size_t n, cap;
	bool failed;          /* not counted: the figures are recounted */
};

struct meta_notes *meta_batch_notes(struct meta_batch *b);
/* What inode i adds to the logical bytes: its size if it is a regular file with a name. */
uint64_t meta_inode_logical(const struct meta_inode *i);
/* Notes that b puts inode record i (NULL: deletes inode ino). */
void meta_batch_note_inode(struct meta_batch *b, uint64_t ino, const struct meta_inode *i);
/* Notes that b puts an extent of ino at file_off naming d (NULL: deletes the extent there). */
void meta_batch_note_extent(struct meta_batch *b, uint64_t ino, uint64_t file_off, const struct digest *d);
void meta_notes_clear(struct meta_notes *n);
void meta_notes_free(struct meta_notes *n);
/* Before the batch's write: what it changes, against what the database holds now. Sorts the notes. */
int meta_notes_prepare(struct meta *m, struct meta_notes *n, struct meta_tally_delta *d);
/* After the write succeeded: adds d to the figures. */
void meta_notes_apply(struct meta *m, struct meta_tally_delta *d);
void meta_tally_delta_free(struct meta_tally_delta *d);
void meta_tallies_free(struct meta *m);

#endif
