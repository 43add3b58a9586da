/* tier_manifest.h - the objects that describe a version in S3: the manifest a node uploads (every
 * entry, file, directory or symlink, of its part of one version, paths relative to the version, with
 * each file's extents naming chunks by SHA-256) and the version's COMMIT (which parts make it up).
 * JSON text (jansson); the schemas are in store/FORMAT.md section 5. Pure: no I/O, so that the
 * decoders, which read bucket content and so outside input, can be fuzzed on their own.
 * A manifest owns all its strings and arrays; tier_manifest_free releases them.
 */
#ifndef PECFS_TIER_MANIFEST_H
#define PECFS_TIER_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define TIER_MANIFEST_FORMAT 1
#define TIER_MANIFEST_FORMAT_PACKS 2           /* a manifest that names a pack: readers before packs refuse it */
#define TIER_PACK_OFF_MAX (1ull << 40)          /* refused beyond this in a manifest */
#define TIER_PACK_MIN_OFF (32 + 40)             /* the first member's offset in a pack of one */
#define TIER_MANIFEST_MAX_BYTES (256u << 20)  /* refused beyond this when read */
#define TIER_NAME_MAX 255                     /* bytes of a run, version, node name or path component */
#define TIER_PATH_MAX 4095                    /* bytes of an entry path or a symlink target */
#define TIER_SEAL_ID_LEN 32                   /* lowercase hex digits of a seal id (128 random bits) */
#define TIER_JOB_MAX 128                      /* bytes of a job id */
#define TIER_JOB_XATTR "user.pec.job"         /* a run's job setting; a sealed version's job */
#define TIER_COMMIT_MAX_BYTES (1u << 20)      /* refused beyond this when read */

/* Where a chunk's object lies in the bucket: its own object (chunks/), or a member of a pack. */
struct tier_loc {
	bool packed;
	struct digest pack;  /* packed: the pack's name (its key is packs/<hh>/<hex>) */
	uint64_t off;        /* packed: where the member's chunk object (header first) starts in the pack */
};

struct tier_manifest_extent {
	uint64_t file_off, len, chunk_off;
	struct digest digest;
	uint64_t chunk_len;  /* payload length of the chunk, so a reader can size its buffer */
	struct tier_loc loc; /* where the chunk's object is */
};

struct tier_manifest_entry {
	char *path;       /* relative to the version, no leading '/' */
	uint32_t mode;    /* type and permission bits (S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK,
			     S_IFCHR, S_IFBLK) */
	uint64_t size;
	int64_t mtime_ns;
	char *target;     /* symlinks only, else NULL */
	uint32_t rdev_major, rdev_minor;  /* character and block devices only */
	/* A hard link: another name of the file of an earlier entry of the same manifest (its path, its
	 * index), which holds the content; this entry has the same type and mode and nothing else. */
	char *link;
	size_t link_idx;
	uint32_t nlinks;  /* names of this entry's file: 1 + the link entries naming it (0 for a link) */
	char *source;     /* files only, optional: the version whose upload first stored these bytes when
			     it is not this one (`s3-persist pec`, or a unit the version inherited); else NULL */
	int64_t staleness;  /* steps (or versions) from source to this version; meaningful with source */
	struct tier_manifest_extent *ext;
	size_t next, ext_cap;
};

struct tier_manifest {
	char *run, *version, *node;
	int64_t step;       /* -1 when the name carries none */
	int64_t sealed_ns;
	uint64_t seal_seq;  /* order of sealing on the node that wrote it */
	uint32_t chunk_size;
	/* The random id of the upload this part belongs to (COMMIT names it); "" in a manifest written
	 * before seal ids existed. */
	char seal_id[TIER_SEAL_ID_LEN + 1];
	/* The job (one launch of the trainer) that sealed the version: "" when none was set. The commit
	 * barrier counts only the parts of its own job (FORMAT.md, "Seal ids"). */
	char job[TIER_JOB_MAX + 1];
	struct tier_manifest_entry *entries;
	size_t n, cap;
};

/* Copies the three names into m (zeroed first). -ENOMEM. */
int tier_manifest_init(struct tier_manifest *m, const char *run, const char *version, const char *node);
void tier_manifest_free(struct tier_manifest *m);

/* Appends an entry (target NULL except for symlinks) and returns it in *out for tier_manifest_add_extent. */
int tier_manifest_add_entry(struct tier_manifest *m, const char *path, uint32_t mode, uint64_t size,
			  int64_t mtime_ns, const char *target, struct tier_manifest_entry **out);
int tier_manifest_add_extent(struct tier_manifest_entry *e, const struct tier_manifest_extent *x);

/* Makes the last entry of m another name of the file of entry m->entries[target]: an earlier entry,
 * neither a directory nor a link itself, of the same type and mode. -EINVAL, -ENOMEM. */
int tier_manifest_set_link(struct tier_manifest *m, size_t target);

/* Device numbers: the kernel's limits (12-bit major, 20-bit minor). */
#define TIER_RDEV_MAJOR_MAX 0xfffu
#define TIER_RDEV_MINOR_MAX 0xfffffu

/* Replaces e's extents by copies of x[0..n). -ENOMEM (e unchanged). */
int tier_manifest_set_extents(struct tier_manifest_entry *e, const struct tier_manifest_extent *x, size_t n);

/* Names the version holding e's bytes (a file entry) and how stale they are; source NULL clears it.
 * -EINVAL for a name tier_manifest_name_ok refuses or a negative staleness, -ENOMEM. */
int tier_manifest_set_source(struct tier_manifest_entry *e, const char *source, int64_t staleness);

/* True when an extent of m names a pack (the manifest is then written as format 2). */
bool tier_manifest_packed(const struct tier_manifest *m);

/* JSON text, malloc'ed, in *out (*len bytes, NUL-terminated). -ENOMEM. */
int tier_manifest_encode(const struct tier_manifest *m, char **out, size_t *len);

/* Parses JSON text into m. -EBADMSG with a reason in err for anything that is not a valid manifest:
 * duplicate JSON keys, an unknown format, a run, version or node name tier_manifest_name_ok refuses,
 * a path that escapes the version or has an empty or over-long component, entries out of manifest
 * order (tier_manifest_path_cmp) or listed twice, an entry whose directory is not listed before it as
 * a directory, a symlink without a target, a device without a device number in range, a hard link
 * that does not name an earlier non-directory entry of its type and mode, extents out of order,
 * overlapping or outside their file or chunk, a malformed seal id. Unknown keys are ignored (later additions). */
int tier_manifest_decode(const char *text, size_t len, struct tier_manifest *m, char *err, size_t errsz);

/* True for a relative path of at most TIER_PATH_MAX bytes whose components are 1-255 bytes and not
 * "." or "..". */
int tier_manifest_path_ok(const char *path);

/* True for a run, version or node name: one path component (no '/'), 1-255 bytes, not ".", ".." or
 * ".pec" (the name of the virtual control folders beside runs and versions). */
int tier_manifest_name_ok(const char *name);

/* The order of a manifest's entries: depth first, the names of one directory in byte order, each
 * directory right before its contents ("a" < "a/z" < "a-b"). <0, 0 or >0 as strcmp. */
int tier_manifest_path_cmp(const char *a, const char *b);

/* True for a seal id: TIER_SEAL_ID_LEN lowercase hex digits. */
int tier_seal_id_ok(const char *s);

/* True for a job id: 1 to TIER_JOB_MAX bytes of letters, digits and . _ - : @ + = (a scheduler's job
 * id, a UUID, a job name with its attempt). */
int tier_job_ok(const char *s);

/* ---- COMMIT: created once per version, when its parts are all uploaded ---- */

/* One part of a committed version: the node whose manifest it is and that manifest's seal id. */
struct tier_commit_part {
	char node[TIER_NAME_MAX + 1];
	char seal_id[TIER_SEAL_ID_LEN + 1];  /* "" for a manifest written before seal ids */
};

struct tier_commit {
	char run[TIER_NAME_MAX + 1], version[TIER_NAME_MAX + 1];
	char node[TIER_NAME_MAX + 1];        /* the node that created it */
	int64_t step;                        /* -1 when the name carries none */
	int64_t sealed_ns;
	uint64_t parts;                      /* node parts (manifests) it was created with */
	char seal_id[TIER_SEAL_ID_LEN + 1];  /* the creating node's part; "" in a legacy COMMIT */
	char job[TIER_JOB_MAX + 1];          /* the job of every part it names; "" when none was set */
	/* The parts, in node name byte order. NULL (npart 0) in a legacy COMMIT, written before seal ids:
	 * its parts are then every manifest stored beside it. */
	struct tier_commit_part *part;
	size_t npart;
};

/* JSON text, malloc'ed, in *out (*len bytes). -ENOMEM. */
int tier_commit_encode(const struct tier_commit *c, char **out, size_t *len);

/* Parses a COMMIT object into c. -EBADMSG with a reason in err for duplicate JSON keys, an unknown
 * format, names tier_manifest_name_ok refuses, a bad parts count, a part list out of node order, with
 * a node twice or a malformed seal id, or a seal id whose node the part list lacks; -ENOMEM. */
int tier_commit_decode(const char *text, size_t len, struct tier_commit *c, char *err, size_t errsz);
void tier_commit_free(struct tier_commit *c);

/* The part of node in c, or NULL. */
const struct tier_commit_part *tier_commit_find(const struct tier_commit *c, const char *node);

#endif
