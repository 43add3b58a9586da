/* meta.h - the metadata database: one RocksDB database in DATA_DIR/meta.
 *
 * Holds the namespace (inodes, directory entries, symlink targets, xattrs), each file's extent list,
 * the chunk records, the version records and the superblock. The key schema is the table in
 * store/FORMAT.md; this header is its C face. Changes are grouped in a meta_batch and applied
 * atomically by meta_batch_commit. Readers see committed state only.
 * All functions are thread-safe (RocksDB is); a meta_batch belongs to one thread at a time.
 */
#ifndef PECFS_META_H
#define PECFS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define META_ROOT_INO 1ull
#define META_NAME_MAX 255

struct meta;
struct meta_batch;

/* Superblock: written once at creation, then on every inode allocation (next_ino). */
struct meta_super {
	uint32_t format_version;  /* META_FORMAT_VERSION */
	uint32_t chunk_size;      /* bytes; fixed when the data folder is created */
	uint64_t next_ino;        /* next inode number to hand out */
	uint64_t next_seq;        /* next version creation / seal sequence number */
	uint8_t node_id[16];      /* random, identifies this data folder (S3 tier: node id) */
};
#define META_FORMAT_VERSION 1

/* An inode: a regular file, directory, symlink, fifo, socket or device node. nlink is 2 + the
 * subdirectories for a directory; for anything else the number of its names (hard links), 0 while an
 * unlinked file is still open. The record holds one of the names (parent, name); a file with more
 * names has one `N` record for each other name (meta_batch_put_link). */
struct meta_inode {
	uint64_t ino;
	uint64_t parent;       /* directory holding its recorded name (0 for the root) */
	uint64_t version_ino;  /* the version directory it lives in (itself for a version directory),
				  0 for the root, runs and anything else above the version level */
	uint32_t mode;         /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;         /* logical size in bytes */
	int64_t atime_ns, mtime_ns, ctime_ns;  /* nanoseconds since the epoch */
	uint64_t generation;
	uint64_t rdev;         /* device number of a character or block device node, else 0 */
	char name[META_NAME_MAX + 1];  /* its recorded name in parent (paths in reports, tracker files) */
};

/* One extent: file bytes [file_off, file_off + len) are chunk bytes [chunk_off, chunk_off + len).
 * Extents of one file never overlap. Bytes of a file that no extent covers read as zeros. */
struct meta_extent {
	uint64_t file_off;
	uint64_t len;
	struct digest digest;
	uint64_t chunk_off;
};

/* A stored chunk. Presence of the record means the chunk file was durable before the record was
 * written. */
struct meta_chunk {
	struct digest digest;
	uint64_t len;     /* payload bytes */
	uint32_t flags;   /* reserved for tier state (S3), 0 for now */
};

enum meta_version_state {
	META_VERSION_OPEN = 0,
	META_VERSION_SEALED = 1,
	META_VERSION_DAMAGED = 2,  /* sealed, then lost a file to removal: never "latest" */
	META_VERSION_INCOMPLETE = 3, /* sealed, but its composition lacks an expert unit that no
					version ever wrote: immutable like SEALED, never "latest" */
};

/* A version: a directory directly inside a run directory. */
struct meta_version {
	uint64_t run_ino;
	uint64_t ino;            /* the version directory */
	uint32_t state;          /* enum meta_version_state */
	int64_t step;            /* parsed from the name, -1 when the name carries none */
	uint64_t create_seq;     /* order of creation among all versions */
	uint64_t seal_seq;       /* order of sealing, 0 while open */
	int64_t sealed_ns;       /* when sealed, 0 while open */
	uint64_t files;          /* regular files, counted at seal */
	uint64_t logical_bytes;  /* sum of file sizes, counted at seal */
	uint64_t stored_bytes;   /* payload bytes of the distinct chunks its files reference, at seal */
};

/* Opens (creating if missing) the database in dir. -EIO with a message on stderr when RocksDB fails;
 * -EBUSY when another process holds it. */
int meta_open(const char *dir, struct meta **out);
void meta_close(struct meta *m);

/* Makes every commit so far durable (syncs the write-ahead log). */
int meta_sync(struct meta *m);

/* ---- reads ---- */
int meta_get_super(struct meta *m, struct meta_super *out);              /* -ENOENT on a new db */
int meta_get_inode(struct meta *m, uint64_t ino, struct meta_inode *out);
/* The sizes of all regular files with a link, summed: counted once, then kept by every commit
 * (meta.c), so reading it costs nothing however many files there are. */
uint64_t meta_logical_bytes(struct meta *m); /* -ENOENT */
/* Looks up name in directory parent: *ino and *mode (type bits only). -ENOENT. */
int meta_get_dirent(struct meta *m, uint64_t parent, const char *name, uint64_t *ino, uint32_t *mode);
/* Entries of parent in name order, starting after `after` (NULL: from the first). cb returns non-zero
 * to stop; that value is returned. */
int meta_list_dir(struct meta *m, uint64_t parent, const char *after,
		  int (*cb)(const char *name, uint64_t ino, uint32_t mode, void *arg), void *arg);
/* True if parent has no entries. */
bool meta_dir_is_empty(struct meta *m, uint64_t parent);
/* Extents of ino overlapping [off, off + len), in file order. len UINT64_MAX means to the end. */
int meta_get_extents(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
		     int (*cb)(const struct meta_extent *e, void *arg), void *arg);
/* Symlink target into buf (NUL-terminated); returns its length or -ENOENT / -ERANGE. */
int meta_get_symlink(struct meta *m, uint64_t ino, char *buf, size_t size);
/* xattr value: returns its length (copies at most size bytes; size 0 just measures) or -ENODATA. */
int meta_get_xattr(struct meta *m, uint64_t ino, const char *name, void *buf, size_t size);
int meta_list_xattrs(struct meta *m, uint64_t ino, int (*cb)(const char *name, void *arg), void *arg);
/* 0 if (parent, name) is one of ino's names beyond the one in its inode record, else -ENOENT. */
int meta_get_link(struct meta *m, uint64_t ino, uint64_t parent, const char *name);
/* The names of ino beyond the one in its inode record (hard links), in key order (parent, then name).
 * cb returns non-zero to stop; that value is returned. */
int meta_list_links(struct meta *m, uint64_t ino, int (*cb)(uint64_t parent, const char *name, void *arg),
		    void *arg);
int meta_get_chunk(struct meta *m, const struct digest *d, struct meta_chunk *out);  /* -ENOENT */
struct digest_table;
/* Adds to into each digest the extents of ino name that into lacks, with its chunk's payload length
 * (one chunk record read per new digest): into->len_sum grows by the bytes of the distinct chunks. */
int meta_add_file_chunks(struct meta *m, uint64_t ino, struct digest_table *into);
/* The extent of ino that starts exactly at file_off; -ENOENT. */
int meta_get_extent(struct meta *m, uint64_t ino, uint64_t file_off, struct meta_extent *out);
int meta_get_version(struct meta *m, uint64_t run_ino, uint64_t ino, struct meta_version *out);
/* Versions of one run, in no particular order. */
int meta_list_versions(struct meta *m, uint64_t run_ino,
		       int (*cb)(const struct meta_version *v, void *arg), void *arg);

/* Live figures of open versions (meta_tally.c): kept by every commit, so reading them costs nothing
 * however many files a version has. files counts every name of a regular file, logical_bytes its
 * size once per name (as the record last written back says), stored_bytes the payload bytes of the
 * distinct chunks its files' extents name. */
struct meta_tally_figures {
	uint64_t files, logical_bytes, stored_bytes;
};
/* Starts counting vino from nothing: call before any of its files exists, or seed it (below) before
 * anything else can commit in it. */
int meta_tally_track(struct meta *m, uint64_t vino);
void meta_tally_untrack(struct meta *m, uint64_t vino);
/* -ENOENT: not tracked; -ESTALE: a change could not be counted, the figures are unknown. */
int meta_tally_get(struct meta *m, uint64_t vino, struct meta_tally_figures *out);
/* The same, with the payload bytes of the distinct chunks the extents of the files extra[0..n_extra)
 * name that vino's files do not (what a seal's composition adds: store/FORMAT.md §4, "Seal of a
 * version"). Also the error of reading those extents. */
int meta_tally_count_with(struct meta *m, uint64_t vino, const uint64_t *extra, size_t n_extra,
			  struct meta_tally_figures *out);
/* Seeding a tracked version from a walk: one name of a regular file of size bytes, and (once per
 * inode, however many names it has) every extent of ino. */
int meta_tally_seed_file(struct meta *m, uint64_t vino, uint64_t size);
int meta_tally_seed_extents(struct meta *m, uint64_t vino, uint64_t ino);

/* PEC records, JSON text owned by fs/ (schemas in policy/PEC.md): the fixed composition (manifest) of
 * a sealed version, keyed by the version's inode, and the token report pending for a run since its
 * last seal, keyed by the run's inode. *out is malloc'ed and NUL-terminated (the caller frees it).
 * -ENOENT when there is none. */
int meta_get_manifest(struct meta *m, uint64_t version_ino, char **out, size_t *len);
int meta_get_tokens(struct meta *m, uint64_t run_ino, char **out, size_t *len);

/* ---- whole-database scans (mount-time recovery, fsck, gc) ---- */
int meta_foreach_inode(struct meta *m, int (*cb)(const struct meta_inode *i, void *arg), void *arg);
int meta_foreach_extent(struct meta *m, int (*cb)(uint64_t ino, const struct meta_extent *e, void *arg),
			void *arg);
int meta_foreach_chunk(struct meta *m, int (*cb)(const struct meta_chunk *c, void *arg), void *arg);
int meta_foreach_dirent(struct meta *m,
			int (*cb)(uint64_t parent, const char *name, uint64_t ino, uint32_t mode, void *arg),
			void *arg);
/* Inodes unlinked while open (to be deleted at the next mount). */
int meta_foreach_orphan(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg);
/* Each inode that has a symlink target record, and each that has at least one xattr, once, in order
 * (fsck: such records must belong to an inode that exists). */
int meta_foreach_symlink_owner(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg);
int meta_foreach_xattr_owner(struct meta *m, int (*cb)(uint64_t ino, void *arg), void *arg);

/* ---- writes, grouped ---- */
struct meta_batch *meta_batch_new(void);
void meta_batch_free(struct meta_batch *b);
void meta_batch_clear(struct meta_batch *b);
void meta_batch_put_super(struct meta_batch *b, const struct meta_super *s);
void meta_batch_put_inode(struct meta_batch *b, const struct meta_inode *i);
void meta_batch_del_inode(struct meta_batch *b, uint64_t ino);  /* the record only */
void meta_batch_put_dirent(struct meta_batch *b, uint64_t parent, const char *name, uint64_t ino, uint32_t mode);
void meta_batch_del_dirent(struct meta_batch *b, uint64_t parent, const char *name);
void meta_batch_put_extent(struct meta_batch *b, uint64_t ino, const struct meta_extent *e);
void meta_batch_del_extent(struct meta_batch *b, uint64_t ino, uint64_t file_off);
/* Hands b's accounting all n extents ino has before b, read by the caller under what keeps them
 * from changing until b commits (a file being freed), so that b's commit removing or moving ino
 * counts them without reading them again. Best effort: without memory they are read again. */
void meta_batch_note_extents_before(struct meta_batch *b, uint64_t ino, const struct meta_extent *v, size_t n);
void meta_batch_put_symlink(struct meta_batch *b, uint64_t ino, const char *target);
void meta_batch_del_symlink(struct meta_batch *b, uint64_t ino);
/* Another name (parent, name) of ino besides the one in its inode record. */
void meta_batch_put_link(struct meta_batch *b, uint64_t ino, uint64_t parent, const char *name);
void meta_batch_del_link(struct meta_batch *b, uint64_t ino, uint64_t parent, const char *name);
void meta_batch_put_xattr(struct meta_batch *b, uint64_t ino, const char *name, const void *val, size_t len);
void meta_batch_del_xattr(struct meta_batch *b, uint64_t ino, const char *name);
void meta_batch_put_chunk(struct meta_batch *b, const struct meta_chunk *c);
void meta_batch_del_chunk(struct meta_batch *b, const struct digest *d);  /* and its 'R' mark */
void meta_batch_put_version(struct meta_batch *b, const struct meta_version *v);
void meta_batch_del_version(struct meta_batch *b, uint64_t run_ino, uint64_t ino);  /* and its 'U' */
void meta_batch_put_orphan(struct meta_batch *b, uint64_t ino);
void meta_batch_del_orphan(struct meta_batch *b, uint64_t ino);
void meta_batch_put_manifest(struct meta_batch *b, uint64_t version_ino, const char *json, size_t len);
void meta_batch_del_manifest(struct meta_batch *b, uint64_t version_ino);
void meta_batch_put_tokens(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len);
void meta_batch_del_tokens(struct meta_batch *b, uint64_t run_ino);
/* 'P': the restarts a run's trainer declared (fs/pec_resumed.c), JSON text; -ENOENT when none. */
int meta_get_restarts(struct meta *m, uint64_t run_ino, char **out, size_t *len);
void meta_batch_put_restarts(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len);
void meta_batch_del_restarts(struct meta_batch *b, uint64_t run_ino);
/* 'B': which upload of a run this node's next persist selection builds on (fs/tier_persist.c), JSON
 * text; -ENOENT when none. */
int meta_get_persist_base(struct meta *m, uint64_t run_ino, char **out, size_t *len);
void meta_batch_put_persist_base(struct meta_batch *b, uint64_t run_ino, const char *json, size_t len);
void meta_batch_del_persist_base(struct meta_batch *b, uint64_t run_ino);
/* Deletes every extent key and xattr key of ino (used when an inode is freed). Needs the db to know
 * which keys exist, so it takes m; the deletions still apply at commit. */
int meta_batch_del_all_extents(struct meta *m, struct meta_batch *b, uint64_t ino);
int meta_batch_del_all_xattrs(struct meta *m, struct meta_batch *b, uint64_t ino);

/* ---- records of the S3 tier (meta_remote.c; keys 'U' and 'R' in FORMAT.md section 3) ----
 * The store keeps them so that the local tier knows which chunks have a copy in the bucket (a chunk
 * file that is absent is then evicted, not lost); store/tier/ writes them. */
struct meta_upload {
	uint64_t uploaded_bytes;  /* chunk bytes of the version in S3 at commit */
	uint64_t chunks;
	int64_t committed_ns;     /* 0: this node's part is up, COMMIT waits for the other nodes' parts */
};
/* The upload record of version ino of run: 0, -ENOENT, or -EIO for a record of an unknown format. */
int meta_get_upload(struct meta *m, uint64_t run, uint64_t ino, struct meta_upload *out);
/* Writes it, synced. */
int meta_put_upload(struct meta *m, uint64_t run, uint64_t ino, const struct meta_upload *r);
/* Where the bucket holds a chunk, and since when that is known (the 'R' record). */
struct meta_remote {
	uint64_t epoch;         /* the bucket GC epoch in which the object was last seen in the bucket */
	bool packed;            /* in a pack object (store/FORMAT.md section 5), else its own chunk object */
	struct digest pack;     /* packed: the pack's name */
	uint64_t pack_off;      /* packed: where the chunk's object starts in the pack */
};
/* True when the chunk's object is recorded as present in the bucket (its 'R' record). */
bool meta_chunk_is_remote(struct meta *m, const struct digest *d);
/* The chunk's 'R' record: 0, -ENOENT when unmarked, -EIO for a value of another shape. A mark from
 * an older epoch is a hint only: that collection may have deleted the object. */
int meta_chunk_remote_get(struct meta *m, const struct digest *d, struct meta_remote *out);
/* Sets or clears the mark (not synced: a lost mark costs one HEAD that finds the object again). */
int meta_chunk_mark_remote(struct meta *m, const struct digest *d, const struct meta_remote *r);
int meta_chunk_unmark_remote(struct meta *m, const struct digest *d);
/* The same two records as part of a larger batch (import). */
void meta_batch_mark_remote(struct meta_batch *b, const struct digest *d, const struct meta_remote *r);
void meta_batch_put_upload(struct meta_batch *b, uint64_t run, uint64_t ino, const struct meta_upload *r);

/* Applies the batch atomically; with sync the WAL is synced before returning. The batch is left
 * empty and reusable. -EIO (message on stderr) or -ENOSPC when RocksDB fails. */
int meta_batch_commit(struct meta *m, struct meta_batch *b, bool sync);

#endif
