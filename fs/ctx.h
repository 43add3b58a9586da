/* ctx.h - the mount context shared by the fs/ core files (internal to fs/): the inode table, the
 * version table, open-file and directory handles, and the locks with the fields each protects.
 *
 * Lock order, outermost first: ns_lock -> a version's write gate -> fs_inode.lock -> table_lock /
 * ver_lock. table_lock and ver_lock are leaves: nothing else is taken, and no store call is made,
 * under them. A version's write gate is its writers and sealing fields (below) with ver_cond.
 * Every write of an inode record to the database happens with ns_lock held, so the order of commits
 * of one record matches the order of changes to its cached copy.
 */
#ifndef PECFS_FS_CTX_H
#define PECFS_FS_CTX_H
#ifndef PECFS_FS_INTERNAL
#error "ctx.h is private to fs/: include fs.h"
#endif

#define FUSE_USE_VERSION 312  /* 3.12: the loop configuration with max_threads */
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "read_pattern.h"
#include "store.h"
#include "tier.h"
#include "config.h"
#include "data.h"
#include "log.h"

/* One loaded inode. An entry stays in the table while the kernel holds lookups on it (nlookup) or a
 * request or open handle holds a reference (refs). */
struct fs_inode {
	uint64_t ino;
	struct fs_inode *hnext;   /* table_lock */
	uint64_t nlookup;         /* table_lock */
	uint32_t refs;            /* table_lock */

	pthread_mutex_t lock;     /* protects the fields below */
	struct meta_inode mi;     /* cached record; mi.size is stale while df exists (df owns the size) */
	struct data_file *df;     /* regular files: from the first open until the entry leaves the table */
	uint32_t open_count;      /* open file handles */
	uint32_t write_count;     /* of those, opened for writing: only these can map it shared writable */
	bool meta_dirty;          /* size / mtime changed since the record was last written */
	bool freed;               /* unlinked and its record and content deleted */
	struct fs_file *handles;  /* its open file handles (fs_file.next / .prev) */
};

/* One version (a directory directly inside a run), mirrored from its meta_version record. */
struct fs_version {
	struct meta_version v;          /* ver_lock */
	char name[META_NAME_MAX + 1];   /* ver_lock: the directory's name */
	uint32_t open_handles;          /* ver_lock: open file handles of files in it */
	bool created_in;                /* ver_lock: a file was created in it since mount */
	/* Its write gate: writes of file bytes hold it shared while they check the state and store
	 * (fs_version_write_begin / _end); a seal holds it alone (fs_version_seal_gate_close / _open),
	 * so no write lands in the version after its files were flushed. Writes to other versions go on
	 * during a seal. A closed gate lets no new write in, so writers cannot keep a seal waiting. */
	uint32_t writers;               /* ver_lock: writes inside the gate */
	bool sealing;                   /* ver_lock: a seal holds the gate, or waits for writers */
	struct fs_version *next;        /* ver_lock */
};

/* The INIT handshake as fuse_init_ext.c sees it on the device. Until the INIT reply is written, the
 * fields other than replied are touched by the one thread serving INIT only. */
struct fs_init_ext {
	atomic_bool replied;            /* the INIT reply went out: the hooks only pass bytes through */
	bool hooked;                    /* the hooks are installed */
	bool seen;                      /* the INIT request was read; unique is its id */
	uint64_t unique;
	bool mmap_offered;              /* it offered FUSE_INIT_EXT and FUSE_DIRECT_IO_ALLOW_MMAP */
};

/* The background collection of unreferenced chunks (autogc.c). */
struct fs_autogc {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool inited, stop, started;
	uint64_t runs, bytes_freed;
};

struct fs_ctx {
	const struct pecfs_config *cfg;
	struct store *st;
	struct tier *tier;              /* the S3 tier, NULL without one */
	struct meta *meta;
	struct data_ctx *dc;
	struct fs_autogc autogc;
	struct fuse_session *se;
	uint32_t chunk_size;
	struct fs_init_ext init_ext;
	/* Files opened for writing keep direct I/O and may still be mapped shared (the kernel granted
	 * FUSE_DIRECT_IO_ALLOW_MMAP). Set while INIT is served, before any other request arrives. */
	bool direct_io_mmap;

	/* Taken by every operation that changes directory entries, inode records or version records,
	 * so that multi-key changes are atomic with respect to each other. */
	pthread_mutex_t ns_lock;
	struct meta_super sb;           /* ns_lock */

	pthread_mutex_t table_lock;
	struct fs_inode **buckets;      /* table_lock */
	size_t nbuckets;                /* table_lock: a power of two, doubled as inodes are loaded */
	unsigned bucket_bits;           /* table_lock: log2(nbuckets) */
	size_t ninodes;                 /* table_lock */

	pthread_mutex_t ver_lock;
	pthread_cond_t ver_cond;        /* with ver_lock: a version's write gate opened or emptied, or its
	                                 * last open handle closed */
	struct fs_version *versions;    /* ver_lock */

	/* Seal durations (metrics.c), atomics: per bucket of FS_SEAL_BUCKETS, not cumulative. */
	uint64_t seal_hist[12], seal_failures;
	uint64_t seal_sum_us;
};

/* fi->fh of an open regular file. */
struct fs_file {
	struct fs_inode *ind;   /* holds one reference */
	uint64_t version_ino;   /* version counted in its open_handles at open */
	bool writable;
	bool wrote;             /* a write succeeded through this handle */
	struct read_pattern ra;  /* read-only handles: this reader's pattern, for read-ahead */
	struct fs_file *next, *prev;  /* ind->handles, under ind->lock */
};

/* Bytes reached the file through handle fh (a write, or a reference write, by req's caller): mtime
 * and ctime now, set-id bits dropped as Linux would (fs_setid_to_drop), the record to be written
 * back, the handle marked written (ops_file.c). */
void fs_file_wrote(struct fs_ctx *ctx, fuse_req_t req, struct fs_file *fh);
/* At unmount, once no request can come: frees the handles of ind that no release reached (the kernel
 * sends none for files still open, and a release sent after a close may arrive too late), with their
 * references. */
void fs_file_free_unreleased(struct fs_ctx *ctx, struct fs_inode *ind);

/* ---- readahead.c ---- */
/* Sets the kernel's read-ahead window of the mount at mountpoint (absolute, resolved before it was
 * mounted) to bytes (0: leaves the kernel's 128 KiB); a warning when it cannot. */
void fs_set_read_ahead(const char *mountpoint, uint64_t bytes);

/* ---- autogc.c ---- */
/* Starts the background collection (none with gc-garbage 0); stop joins it, before the store goes. */
int fs_autogc_start(struct fs_ctx *ctx);
void fs_autogc_stop(struct fs_ctx *ctx);
/* Collections run and bytes they freed since mount. */
void fs_autogc_figures(struct fs_ctx *ctx, uint64_t *runs, uint64_t *bytes_freed);

/* ---- setid.c ---- */
/* The set-id bits (S_ISUID, S_ISGID) a change of mi's content by req's caller drops, as Linux decides
 * for a local file system: none for a caller with CAP_FSETID. */
mode_t fs_setid_to_drop(fuse_req_t req, const struct meta_inode *mi);
/* Drops those bits from the cached record (written with its next write) and tells the kernel. */
void fs_setid_drop(struct fs_ctx *ctx, struct fs_inode *ind, mode_t drop);

static inline struct fs_ctx *fs_ctx_of(fuse_req_t req) { return fuse_req_userdata(req); }
/* Wall-clock time for inode and version times. */
static inline int64_t fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- inode.c: the inode table ---- */
int fs_table_init(struct fs_ctx *ctx);
void fs_table_free(struct fs_ctx *ctx);
/* Finds or loads ino and takes a reference. -ENOENT (also for a freed inode), -EPERM for virtual. */
int fs_inode_get(struct fs_ctx *ctx, uint64_t ino, struct fs_inode **out);
/* The same for getattr: a directory removed while still open (fstat of its descriptor) is given too,
 * with nlink 0, as a local file system answers. */
int fs_inode_get_attr(struct fs_ctx *ctx, uint64_t ino, struct fs_inode **out);
void fs_inode_ref(struct fs_ctx *ctx, struct fs_inode *ind);
void fs_inode_put(struct fs_ctx *ctx, struct fs_inode *ind);
void fs_inode_lookup_inc(struct fs_ctx *ctx, struct fs_inode *ind);
void fs_inode_forget(struct fs_ctx *ctx, uint64_t ino, uint64_t n);
/* The loaded inodes that have a data_file, each referenced (the caller puts them and frees the array):
 * all of them when version_ino is UINT64_MAX, else the linked files of that version. */
int fs_inode_loaded_files(struct fs_ctx *ctx, uint64_t version_ino, struct fs_inode ***out, size_t *n);
/* Whether a loaded regular file of version_ino was unlinked while open and is not freed yet (its
 * record and extents still count in the version's tally). Caller holds ns_lock. */
bool fs_inode_version_has_unlinked(struct fs_ctx *ctx, uint64_t version_ino);
/* Size of ino if it is loaded (the data_file's while one exists), without loading it; -ENOENT if not
 * loaded. */
int fs_inode_peek_size(struct fs_ctx *ctx, uint64_t ino, uint64_t *size);
/* Logical size (the data_file's while one exists). Caller holds ind->lock. */
uint64_t fs_inode_size_locked(struct fs_inode *ind);
/* Snapshot of the record with the live size. Takes ind->lock. */
void fs_inode_snapshot(struct fs_inode *ind, struct meta_inode *out);
void fs_inode_stat(struct fs_ctx *ctx, struct fs_inode *ind, struct stat *st);
void fs_inode_entry(struct fs_ctx *ctx, struct fs_inode *ind, struct fuse_entry_param *e);
/* Creates the data_file if missing; created: the request at hand made the inode (data_file_new).
 * Caller holds ind->lock. */
void fs_inode_open_data_locked(struct fs_ctx *ctx, struct fs_inode *ind, bool created);
/* Puts the record (live size) into b. Caller holds ns_lock. */
void fs_inode_persist_locked(struct fs_ctx *ctx, struct fs_inode *ind, struct meta_batch *b);
/* Whether ind's record differs from the database's: changed since it was last written, or its file's
 * size moved on. A clean record needs no rewrite. */
bool fs_inode_dirty(struct fs_inode *ind);
/* Writes the record if it changed (or always when sync) and commits; sync also syncs the WAL. */
int fs_inode_persist(struct fs_ctx *ctx, struct fs_inode *ind, bool sync);
/* Frees an unlinked file's content and records once it has no open handle. */
void fs_inode_reap(struct fs_ctx *ctx, struct fs_inode *ind);
/* Deletes the extents and records of an unlinked inode that has no data_file, in one batch (its last
 * close, mount recovery). */
int fs_inode_delete_records(struct fs_ctx *ctx, uint64_t ino);
/* What fs_inode_batch_delete may find besides the inode and its xattrs. A deletion of a key that is
 * not there still writes a tombstone, so a caller that knows the file names only what it can have. */
enum {
	FS_DEL_SYMLINK = 1 << 0,  /* a symlink target (the file is, or may be, a symlink) */
	FS_DEL_ORPHAN = 1 << 1,   /* an orphan key (the file's link count reached 0 while open) */
	FS_DEL_ANY = FS_DEL_SYMLINK | FS_DEL_ORPHAN,
};
/* Adds to b the deletion of ino's records besides its extents: xattrs, the inode, and those of its
 * symlink target and orphan key that what names. */
int fs_inode_batch_delete(struct fs_ctx *ctx, struct meta_batch *b, uint64_t ino, unsigned what);
/* relatime: a read of ind's content (or listing, or link target) sets its atime when that is not
 * newer than mtime or ctime, or is a day old; kept with the record's next write. Never in a sealed
 * version, which reads like a read-only mount. */
void fs_inode_touch_atime(struct fs_ctx *ctx, struct fs_inode *ind);
/* Truncates a regular file (creating its data_file if needed) and persists it. Caller holds ns_lock. */
int fs_inode_truncate_locked(struct fs_ctx *ctx, struct fs_inode *ind, uint64_t size);
/* Applies the namespace fields of a committed snapshot to the cached record. */
void fs_inode_apply(struct fs_inode *ind, const struct meta_inode *snap);

/* ---- fuse_init_ext.c: INIT reply flags libfuse 3.14 cannot set ---- */
/* After fuse_session_mount: hooks the session's device reads and writes (fuse_session_custom_io) so
 * that the INIT reply can ask for FUSE_DIRECT_IO_ALLOW_MMAP. 0, or the libfuse error (logged; the
 * mount then works without the flag). */
int fs_init_ext_install(struct fs_ctx *ctx);
/* In the init operation: true when the INIT reply will carry FUSE_DIRECT_IO_ALLOW_MMAP, which is
 * when want is set and the kernel offered it. Logs the outcome once. */
bool fs_init_ext_direct_io_mmap(struct fs_ctx *ctx, bool want);

/* ---- version.c: versions and their rules ---- */
static inline bool fs_mi_is_run(const struct meta_inode *mi)
{
	return S_ISDIR(mi->mode) && mi->parent == META_ROOT_INO && mi->ino != META_ROOT_INO;
}
static inline bool fs_mi_is_version(const struct meta_inode *mi)
{
	return S_ISDIR(mi->mode) && mi->ino != META_ROOT_INO && mi->version_ino == mi->ino;
}
/* The version that entries of directory dir belong to (0: none, dir is the root or a run). */
static inline uint64_t fs_mi_content_version(const struct meta_inode *dir)
{
	return dir->version_ino;
}
int fs_versions_load(struct fs_ctx *ctx);
void fs_versions_free(struct fs_ctx *ctx);
/* 0 when entries of version vino may change (vino 0 or an open version), -EROFS otherwise. */
int fs_version_check_writable(struct fs_ctx *ctx, uint64_t vino);
/* Enters the write gate of version vino (waiting while a seal holds it): 0, with *gate to hand to
 * fs_version_write_end, or -EROFS for a sealed or damaged version (nothing to end then). vino 0 (a
 * file outside any version) is always writable. */
int fs_version_write_begin(struct fs_ctx *ctx, uint64_t vino, uint64_t *gate);
void fs_version_write_end(struct fs_ctx *ctx, uint64_t gate);
/* A seal of vino (under ns_lock) closes its gate and waits until the writes inside have left;
 * opening it lets waiting writes in, to find the version sealed or, after a failed seal, open. */
void fs_version_seal_gate_close(struct fs_ctx *ctx, uint64_t vino);
void fs_version_seal_gate_open(struct fs_ctx *ctx, uint64_t vino);
/* State of version vino, -ENOENT when it is not a version. */
int fs_version_state(struct fs_ctx *ctx, uint64_t vino);
int fs_version_get(struct fs_ctx *ctx, uint64_t vino, struct fs_version *out);
/* Record for a new version directory into b (caller holds ns_lock; ctx->sb.next_seq advances);
 * fs_version_insert makes it visible after the commit. */
void fs_version_new_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t run_ino, uint64_t vino,
			   const char *name, struct meta_version *out);
void fs_version_insert(struct fs_ctx *ctx, const struct meta_version *v, const char *name);
void fs_version_forget(struct fs_ctx *ctx, uint64_t vino);
/* A version moved (new run or name; the step follows the name): record into b; fs_version_moved
 * updates the table after the commit. */
void fs_version_move_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t vino, uint64_t new_run,
			    const char *name);
void fs_version_moved(struct fs_ctx *ctx, uint64_t vino, uint64_t new_run, const char *name);
/* If vino is sealed, puts it DAMAGED into b and returns true (then call fs_version_set_state). */
bool fs_version_damage_record(struct fs_ctx *ctx, struct meta_batch *b, uint64_t vino);
void fs_version_set_state(struct fs_ctx *ctx, uint64_t vino, uint32_t state);
void fs_version_handles(struct fs_ctx *ctx, uint64_t vino, int delta);
/* Replaces the cached record of version v->ino (after a seal committed it). */
void fs_version_update(struct fs_ctx *ctx, const struct meta_version *v);
/* The first create in version vino since mount: true, with a copy of the version in out; false after
 * that (or when vino is not a version). */
bool fs_version_note_create(struct fs_ctx *ctx, uint64_t vino, struct fs_version *out);
/* Undoes fs_version_note_create: the next create in vino counts as the first again. */
void fs_version_unnote_create(struct fs_ctx *ctx, uint64_t vino);
/* Before the first create in version vino since mount: waits up to timeout_s for the open versions
 * of its run older than it to have no open handles. Returns at once for any later create. */
void fs_version_wait_older_idle(struct fs_ctx *ctx, uint64_t vino, int timeout_s);
/* The versions of run_ino in version order (malloc'ed copies, *n of them). */
int fs_versions_sorted(struct fs_ctx *ctx, uint64_t run_ino, struct fs_version **out, size_t *n);
/* Index of the latest version in a sorted array, or -1. */
long fs_versions_latest(const struct fs_version *vs, size_t n);
const char *fs_version_state_name(uint32_t state);
/* Version counts over every run (stats). */
void fs_versions_count(struct fs_ctx *ctx, uint64_t *runs, uint64_t *versions, uint64_t *sealed);

/* ---- version_count.c: a version's figures ---- */
struct fs_compose;
/* The seal's count: the regular files of version vino, their sizes and their distinct stored bytes into
 * v's files, logical_bytes and stored_bytes, with what extra adds (the files a seal's composition
 * inherits, and the chunks of their sources). From the version's tally, else by walking its files.
 * extra may be NULL. Caller holds ns_lock and the version's write gate, and has written back every
 * changed record of the version. */
int fs_version_count(struct fs_ctx *ctx, uint64_t vino, const struct fs_compose *extra, struct meta_version *v);
/* An open version's files, logical bytes and stored bytes (of what is stored so far) now: from its
 * tally, or else walked without ns_lock (files changed during the walk may be missed or counted
 * twice). */
int fs_version_live_counts(struct fs_ctx *ctx, uint64_t vino, struct meta_version *v);
/* Tracks an open version's tally and fills it from a walk; before the mount serves anything. */
int fs_version_seed_tally(struct fs_ctx *ctx, uint64_t vino);

/* ---- seal.c: sealing and the seal triggers ---- */
/* Seals version vino (no-op for a sealed one; -EINVAL when it is not a version) and logs it with the
 * reason why. 0 once the version is durable, else the error that stopped it (the version stays
 * open: a file's lost bytes, ENOSPC, EIO). Caller holds ns_lock. */
int fs_version_seal_locked(struct fs_ctx *ctx, uint64_t vino, const char *why);
/* The same, taking ns_lock; first the kernel writes back what the version's files open for writing
 * hold in shared mappings (seal.c), which fs_version_seal_locked cannot ask for under ns_lock. */
int fs_version_seal(struct fs_ctx *ctx, uint64_t vino, const char *why);
/* Seals the open versions of run_ino that the tracker file's content names, mapped pages written back
 * first as fs_version_seal does: 0, or the first seal's error (every named version is still tried).
 * Caller holds no lock. */
int fs_version_seal_by_tracker(struct fs_ctx *ctx, uint64_t run_ino, const char *tracker,
			       const char *content, size_t len);
/* Has the kernel write back what shared mappings stored in vino's files open for writing, so a seal
 * that follows includes it. Without ns_lock (the write-back's writes take it). */
void fs_version_write_back_mapped(struct fs_ctx *ctx, uint64_t vino);
/* seal_on_next_version: the first create in vino since mount seals the older open versions of its
 * run that have no open files. 0, or the first seal's error; then the next create in vino counts as
 * the first again. Caller holds ns_lock. */
int fs_version_seal_older_locked(struct fs_ctx *ctx, uint64_t vino);

/* ---- ops_ns.c: shared namespace helpers ---- */
/* 0, or -ENAMETOOLONG / -EINVAL for a name that cannot be a directory entry. */
int fs_check_name(const char *name);
/* Creates a node in parent (caller holds ns_lock; parent referenced): regular file, directory,
 * symlink (target non-NULL), fifo, socket or device node (rdev). Returns the new inode referenced. */
int fs_ns_make(struct fs_ctx *ctx, fuse_req_t req, struct fs_inode *parent, const char *name,
	       mode_t mode, dev_t rdev, const char *target, struct fs_inode **out);

/* What removing a directory entry left to do once its batch is committed. */
struct fs_drop {
	struct fs_inode *victim;     /* referenced */
	bool kept;                   /* the victim keeps other names (hard links): mi is its new record */
	struct meta_inode mi;
	uint64_t damaged_vino;       /* version to mark DAMAGED, 0 if none */
	uint64_t removed_vino;       /* version record deleted, 0 if none */
	int64_t ctime_ns;
	bool freed_now;              /* no handle held it: its records and extents go in the batch */
	struct data_gone *gone;      /* then: the references its extents held */
};
/* Adds the removal of `victim` (named name in the directory whose snapshot is pmi) to b and updates
 * pmi (nlink, times). Caller holds ns_lock. */
void fs_ns_drop_prepare(struct fs_ctx *ctx, struct meta_batch *b, struct meta_inode *pmi, const char *name,
			struct fs_inode *victim, bool del_dirent, struct fs_drop *d);
/* After the commit: updates the cached state and frees the victim's content when it is unused.
 * Drops the reference in d->victim. */
void fs_ns_drop_done(struct fs_ctx *ctx, struct fs_drop *d);
/* The commit failed: nothing changed; drops the reference. */
void fs_ns_drop_abort(struct fs_ctx *ctx, struct fs_drop *d);
/* Removes entry name of directory pind (a file, or an empty directory when dir is set) as unlink or
 * rmdir do. Caller holds ns_lock. */
int fs_ns_remove_locked(struct fs_ctx *ctx, struct fs_inode *pind, const char *name, bool dir);
/* Removes (parent, name) from the names of mi (nlink > 1) in b: its `N` record, or, when it is the
 * name mi records, puts the first other name in mi instead (whose `N` record goes). Caller holds
 * ns_lock and writes mi. */
void fs_ns_unname(struct fs_ctx *ctx, struct meta_batch *b, struct meta_inode *mi, uint64_t parent,
		  const char *name);
/* True if name is ".pec" in a directory that has a virtual .pec (the root or a run). */
bool fs_ns_is_reserved(const struct meta_inode *dir, const char *name);

/* FUSE operations, one per file by concern. */
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		     struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		 unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- pecdir.c: the virtual .pec namespace ---- */
#define PEC_NAME ".pec"
#define PEC_VIRT_BIT (1ull << 63)
static inline bool pec_is_virtual(uint64_t ino) { return (ino & PEC_VIRT_BIT) != 0; }
/* The entry of owner's .pec directory (owner: the root or a run). */
void pec_dir_entry(struct fs_ctx *ctx, uint64_t owner, struct fuse_entry_param *e);
/* Looks name up in virtual directory parent: fills e, or, for a real inode a raw view shows, sets
 * *real_ino (the caller replies with that inode's entry). */
int pec_lookup(struct fs_ctx *ctx, uint64_t parent, const char *name, struct fuse_entry_param *e,
	       uint64_t *real_ino);
int pec_getattr(struct fs_ctx *ctx, uint64_t ino, struct stat *st);
/* setattr of a virtual file (the truncation of an O_TRUNC open of RUN/.pec/tokens). */
int pec_setattr(struct fs_ctx *ctx, uint64_t ino, int to_set, struct stat *st);
void pec_readdir(fuse_req_t req, uint64_t ino, size_t size, off_t off, bool plus);
void pec_open(fuse_req_t req, uint64_t ino, struct fuse_file_info *fi);
void pec_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
/* Writes into a writable virtual file's handle: size or -errno. */
int pec_write(struct fuse_file_info *fi, const char *buf, size_t size, off_t off);
/* close(): submits what was written (RUN/.pec/tokens); -EINVAL for a rejected report. */
int pec_flush(struct fs_ctx *ctx, struct fuse_file_info *fi);
void pec_release(struct fuse_file_info *fi);
int pec_readlink(struct fs_ctx *ctx, uint64_t ino, char *buf, size_t size);

/* ---- pecgen.c: content of the virtual files (malloc'ed text into *out) ---- */
int pecgen_stats_json(struct fs_ctx *ctx, char **out, size_t *len);
/* The figures /.pec/stats and /.pec/metrics share (pecgen.c). */
struct pecgen_figures {
	uint64_t runs, versions, sealed_versions, logical_bytes;
	struct store_stats ss;
	struct data_stats ds;
	double dedup_ratio;
	uint64_t inodes_loaded;  /* entries of the inode table */
};
int pecgen_gather(struct fs_ctx *ctx, struct pecgen_figures *f);
/* Prometheus text of the local and S3 tier figures (metrics.c): /.pec/metrics and metrics-listen. */
int pecgen_metrics(struct fs_ctx *ctx, char **out, size_t *len);
/* Seals timed into the seal-duration histogram (metrics.c). */
void fs_metrics_seal(struct fs_ctx *ctx, double seconds, bool ok);
/* The HTTP endpoint of metrics-listen (metrics_http.c): NULL config -> nothing started. */
struct metrics_http;
int metrics_http_start(struct fs_ctx *ctx, const char *listen, struct metrics_http **out);
void metrics_http_stop(struct metrics_http *m);
int pecgen_versions_json(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len);
/* "../NAME" of the run's latest version; -ENOENT when there is none. */
int pecgen_latest(struct fs_ctx *ctx, uint64_t run_ino, char *buf, size_t size);

#endif
