/* tier_manifest.h - the version manifest a node uploads to S3: every entry (file, directory, symlink)
 * of its part of one version, paths relative to the version, with each file's extents naming chunks
 * by SHA-256. JSON text (jansson); the schema is in store/FORMAT.md section 5. Pure: no I/O.
 * A manifest owns all its strings and arrays; tier_manifest_free releases them.
 */
#ifndef PECFS_TIER_MANIFEST_H
#define PECFS_TIER_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define TIER_MANIFEST_FORMAT 1
#define TIER_MANIFEST_MAX_BYTES (256u << 20)  /* refused beyond this when read */

struct tier_manifest_extent {
	uint64_t file_off, len, chunk_off;
	struct digest digest;
	uint64_t chunk_len;  /* payload length of the chunk, so a reader can size its buffer */
};

struct tier_manifest_entry {
	char *path;       /* relative to the version, no leading '/' */
	uint32_t mode;    /* type and permission bits (S_IFREG, S_IFDIR, S_IFLNK) */
	uint64_t size;
	int64_t mtime_ns;
	char *target;     /* symlinks only, else NULL */
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

/* Replaces e's extents by copies of x[0..n). -ENOMEM (e unchanged). */
int tier_manifest_set_extents(struct tier_manifest_entry *e, const struct tier_manifest_extent *x, size_t n);

/* Names the version holding e's bytes (a file entry) and how stale they are; source NULL clears it.
 * -EINVAL for a name tier_manifest_name_ok refuses or a negative staleness, -ENOMEM. */
int tier_manifest_set_source(struct tier_manifest_entry *e, const char *source, int64_t staleness);

/* JSON text, malloc'ed, in *out (*len bytes, NUL-terminated). -ENOMEM. */
int tier_manifest_encode(const struct tier_manifest *m, char **out, size_t *len);

/* Parses JSON text into m. -EBADMSG with a reason in err for anything that is not a valid manifest
 * (unknown format, a path that escapes the version, extents out of order or overlapping). */
int tier_manifest_decode(const char *text, size_t len, struct tier_manifest *m, char *err, size_t errsz);

/* True for a relative path without empty, "." or ".." components. */
int tier_manifest_path_ok(const char *path);

/* True for a version or run name: one path component (no '/', not "." or "..", 1-255 bytes). */
int tier_manifest_name_ok(const char *name);

#endif
