/* pc_model.h - the power-cut layer's model of a file system with two states: the live one that
 * programs see, and the durable one that a power cut would leave (POSIX's weakest persistence).
 *
 * Names live in memory; every regular file's bytes live in one object file BACKING/<ino>. A file's
 * durable content is its object minus the writes since its last fsync/fdatasync, kept as an undo
 * log of the durable bytes those writes overwrote; a directory's durable entries are a copy of its
 * entries as of its last fsync, plus the list of changes since, so that a restore can also let
 * some unsynced changes survive. Nothing here locks: every call is made under pc_fs.lock.
 */
#ifndef PC_MODEL_H
#define PC_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define PC_ROOT_INO 1

/* One name in a directory. Tables are sorted by name. */
struct pc_dirent {
	char *name;
	uint64_t ino;
};

struct pc_dir {
	struct pc_dirent *v;
	size_t n, cap;
};

/* A change of a directory's entries since its last sync: name names ino from then on (0: name
 * is removed), and so does name2 with ino2 when set, in the same step (a rename or an exchange
 * within the directory, which a file system makes durable whole). */
struct pc_change {
	char *name;
	uint64_t ino;
	char *name2;
	uint64_t ino2;
};

/* The durable bytes [off, off+len) of a file, saved before a write changed them. */
struct pc_undo {
	uint64_t off;
	uint64_t len;
	uint8_t *bytes;
};

struct pc_node {
	uint64_t ino;            /* FUSE node id and st_ino; never reused */
	mode_t mode;             /* S_IFREG, S_IFDIR, S_IFSOCK or S_IFIFO, and permissions */
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;
	uint64_t nlookup;        /* references the kernel holds */
	uint64_t nopen;          /* open handles */
	uint32_t live_links;     /* live entries naming this node */
	uint32_t durable_links;  /* durable entries naming it (in any directory's durable table) */
	uint32_t change_refs;    /* unsynced changes naming it (in any directory's change list) */
	bool gone;               /* dropped by a power cut; kept only until the kernel forgets it */
	/* regular files */
	uint64_t size;           /* live size: the object's size */
	uint64_t durable_size;   /* size as of the last fsync (0 for a file never synced) */
	struct pc_undo *undo;    /* sorted by offset, disjoint, all inside [0, durable_size) */
	size_t nundo, capundo;
	/* directories */
	struct pc_dir live;
	struct pc_dir durable;
	struct pc_change *changes;  /* since the last sync, in order */
	size_t nchanges, capchanges;
	bool mark;               /* reachability during pc_fs_restore */
};

enum pc_power {
	PC_ON,       /* every operation runs */
	PC_CUT,      /* power is gone: operations in progress finished, new ones wait */
	PC_DOWN,     /* the waiting operations and every new one fail with EIO until the restore */
};

struct pc_stats {
	uint64_t file_syncs, dir_syncs, cuts;
	uint64_t files_reverted;   /* files whose content or size a restore changed */
	uint64_t bytes_undone;     /* durable bytes rewritten plus bytes cut off by restores */
	uint64_t names_reverted;   /* directory entries a restore added, removed or repointed */
	uint64_t names_kept;       /* unsynced entry changes a restore let survive (keep > 0) */
	uint64_t bytes_kept;       /* unsynced appended bytes a restore let survive (keep > 0) */
	uint64_t nodes_dropped;    /* files and directories a restore found unreachable */
};

struct pc_fs {
	pthread_mutex_t lock;
	pthread_cond_t power_changed;  /* broadcast when power changes; protected by lock */
	enum pc_power power;           /* protected by lock */
	unsigned waiting;              /* operations waiting for power; protected by lock */
	uint64_t epoch;                /* restores so far: handles of an older epoch are dead */
	int backing_fd;                /* the folder of object files */
	struct pc_node **nodes;        /* indexed by ino; NULL once freed */
	uint64_t next_ino;
	struct pc_stats stats;
};

/* Opens BACKING (which must be empty) and creates the root directory, durable and empty.
 * Returns 0 or a negative errno. */
int pc_fs_init(struct pc_fs *fs, const char *backing);
void pc_fs_destroy(struct pc_fs *fs);

/* The node of ino, or NULL when there is none (or it was dropped by a cut). */
struct pc_node *pc_node_get(struct pc_fs *fs, uint64_t ino);

/* A new node (regular files get an empty object); not yet named anywhere. NULL with errno set. */
struct pc_node *pc_node_new(struct pc_fs *fs, mode_t mode, uid_t uid, gid_t gid);

/* Frees the node and its object once nothing (name, durable name, kernel, handle) refers to it. */
void pc_node_release_if_unused(struct pc_fs *fs, struct pc_node *n);

/* Opens a regular file's object (flags without O_CREAT); a descriptor or a negative errno. */
int pc_node_open_object(struct pc_fs *fs, struct pc_node *n, int flags);

/* The live entry of name in directory d, or NULL. */
struct pc_dirent *pc_dir_find(struct pc_dir *d, const char *name);

/* Live entry changes, each logged in the change lists of the directories it touches. They return
 * 0 or -ENOMEM, and change nothing when they fail. Link counts follow.
 * pc_link adds an entry (name must be absent), pc_unlink removes one (must be present);
 * pc_rename moves d1/n1 to d2/n2, replacing what n2 named (n1 must be present, the two must name
 * different nodes); pc_exchange swaps the nodes of two present entries (RENAME_EXCHANGE). */
int pc_link(struct pc_fs *fs, struct pc_node *dir, const char *name, struct pc_node *n);
int pc_unlink(struct pc_fs *fs, struct pc_node *dir, const char *name);
int pc_rename(struct pc_fs *fs, struct pc_node *d1, const char *n1, struct pc_node *d2, const char *n2);
int pc_exchange(struct pc_fs *fs, struct pc_node *d1, const char *n1, struct pc_node *d2, const char *n2);

/* Before bytes [off, off+len) of a regular file change (write, truncate, hole punch): saves the
 * durable bytes among them not saved yet, read through fd. 0 or a negative errno. */
int pc_file_before_change(struct pc_node *n, int fd, uint64_t off, uint64_t len);

/* fsync/fdatasync of a file: its current content and size become its durable ones. */
void pc_file_sync(struct pc_fs *fs, struct pc_node *n);

/* fsync of a directory: its current entries become its durable ones (its change list empties).
 * 0 or -ENOMEM. */
int pc_dir_sync(struct pc_fs *fs, struct pc_node *d);

/* The power cut's aftermath: the live state becomes the durable one. Nodes not reachable from the
 * root through durable entries are dropped, every file reverts to its durable content and size,
 * every directory to its durable entries.
 *
 * keep (0..1) lets some unsynced changes survive, as a disk that wrote part of its queue before
 * the power went: with keep = 0 nothing unsynced survives (the weakest case). Otherwise every
 * directory keeps the first keep*u of its entry changes since its last sync (rounded to nearest)
 * and every file the first keep*u of its bytes appended past its durable size (down to a 4 KiB
 * boundary), u drawn uniformly from [0, 1] for each directory and file from seed. Order holds
 * within one directory or file, none across them (POSIX promises none). Overwrites of durable
 * bytes never survive unsynced. 0 or a negative errno (the state is then undefined). */
int pc_fs_restore(struct pc_fs *fs, double keep, uint64_t seed);

#endif
