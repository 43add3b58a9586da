/* compose.h - the fs side of Partial Experts Checkpoints (internal to fs/): per-run PEC settings,
 * cloning extents between files, composing a version at seal, the token report, the plan, and
 * retention. The policy decisions themselves are policy/pec_*.h; this is where they meet the
 * namespace and the store. policy/PEC.md section 9 describes the behaviour a user sees.
 * Functions that change records take ns_lock or say that the caller holds it.
 */
#ifndef PECFS_FS_COMPOSE_H
#define PECFS_FS_COMPOSE_H

#include "pec_compose.h"
#include "pec_select.h"
#include "ctx.h"

/* ---- pec_runcfg.c: per-run settings, kept as xattrs on the run directory ---- */
#define PEC_XATTR_SOURCE "user.pec.source"       /* on inherited files: the source version */
#define PEC_XATTR_STALENESS "user.pec.staleness" /* on inherited files: steps behind */
#define PEC_XATTR_PIN "user.pec.pin"             /* on a version directory: kept by retention */

struct pec_runcfg {
	struct pec_patterns pats;   /* points into the arrays below, or the defaults */
	char *file_text, *tensor_text;
	const char **file_pats, **tensor_pats;
	uint32_t keep;              /* retention: newest complete versions kept; 0 keeps all */
	struct pec_plan_config plan;
	bool k_set;                 /* user.pec.k given; otherwise K follows the latest version */
};
/* Reads the run's settings (defaults for what is not set). Free with pec_runcfg_free. */
int pec_runcfg_load(struct fs_ctx *ctx, uint64_t run_ino, struct pec_runcfg *out);
void pec_runcfg_free(struct pec_runcfg *c);
/* True for the xattr names that are run settings. */
bool pec_runcfg_is_key(const char *name);
/* The run's S3 persist settings (user.pec.persist, user.pec.k_persist) over the mount's, which *pec
 * and *k_persist hold on entry; an invalid stored value is logged and ignored. Needs no mount
 * context (the uploader calls it). */
void pec_runcfg_persist(struct meta *m, uint64_t run_ino, bool *pec, uint32_t *k_persist);
/* The job that seals the run's versions now, into job (TIER_JOB_MAX + 1 bytes): the run's
 * user.pec.job, else the mount's s3-job, else "". */
void pec_runcfg_job(struct fs_ctx *ctx, uint64_t run_ino, char *job);
/* 0 when value is valid for the setting name, else -EINVAL. */
int pec_runcfg_validate(const char *name, const char *value, size_t size);

/* ---- extent_clone.c: files sharing chunks ---- */
/* Chunk references taken for extents that are still only in a batch. */
struct xc_refs {
	struct digest *d;
	size_t n, cap;
};
/* Adds to b extents of dst covering [dst_off, dst_off + len) that name the same chunk bytes as src's
 * [src_off, src_off + len); each takes a chunk reference, recorded in refs. Holes stay holes. */
int xc_clone_range(struct fs_ctx *ctx, uint64_t src, uint64_t src_off, uint64_t len, uint64_t dst,
		   uint64_t dst_off, struct meta_batch *b, struct xc_refs *refs);
/* Makes room for element n of a growing array (doubling). 0 or -ENOMEM (the array is unchanged). */
int xc_grow(void **arr, size_t *cap, size_t n, size_t elem);
/* Appends a digest to refs without taking a reference. 0 or -ENOMEM. */
int xc_digests_push(struct xc_refs *refs, const struct digest *d);
/* Records a reference the caller took (store_chunk_put). 0 or -ENOMEM (the reference is then given
 * back). */
int xc_refs_add(struct fs_ctx *ctx, struct xc_refs *refs, const struct digest *d);
/* The batch was not committed: gives every reference back. */
void xc_refs_release(struct fs_ctx *ctx, struct xc_refs *refs);
/* The batch was committed: the extents own the references now. */
void xc_refs_keep(struct xc_refs *refs);
/* Reads committed bytes of a file through its extents (zeros in holes). Returns len or -errno. */
int xc_read(struct fs_ctx *ctx, uint64_t ino, uint64_t off, void *buf, size_t len);
/* Resolves a path relative to directory dir ("a/b/c"). 0 with its record in *mi, or -errno. */
int xc_resolve(struct fs_ctx *ctx, uint64_t dir, const char *rel, struct meta_inode *mi);

/* A directory's entries, copied (so the caller may change the directory while walking them). */
struct xc_dirent {
	char *name;
	uint64_t ino;
	uint32_t mode;
};
struct xc_dirents {
	struct xc_dirent *e;
	size_t n, cap;
};
int xc_list_dir(struct fs_ctx *ctx, uint64_t dir, struct xc_dirents *out);
void xc_dirents_free(struct xc_dirents *l);

/* ---- compose.c: composition at seal ---- */
struct cmp_dir;
struct cmp_merged {
	struct fs_inode *ind;       /* a written shard whose extents the merge replaced (referenced) */
	uint64_t size;              /* its merged size */
};
struct fs_compose {
	uint32_t state;             /* META_VERSION_SEALED or META_VERSION_INCOMPLETE */
	uint64_t *sources;          /* inodes whose chunks the version now also uses (for counting) */
	size_t n_sources, cap_sources;
	uint64_t files, logical_bytes;  /* added by inherited files */
	struct xc_refs refs;
	struct cmp_dir *dirs;       /* directories of the version touched */
	size_t n_dirs, cap_dirs;
	struct cmp_merged *merged;
	size_t n_merged, cap_merged;
	struct xc_refs old_refs;    /* references of the replaced extents, given back after commit */
};
/* Composes version fv (its written files are committed) on the fixed composition of the run's
 * previous sealed version: puts the inherited files, the merged safetensors shards, the manifest
 * and the clearing of the run's pending tokens into b. Caller holds ns_lock and the write gate.
 * On success the caller commits b and then calls fs_compose_done; on failure nothing is left to do
 * (b must then be discarded). */
int fs_compose_seal(struct fs_ctx *ctx, const struct fs_version *fv, struct meta_batch *b,
		    struct fs_compose *out);
/* After the commit of b (committed true) or its failure: updates caches, gives references back. */
void fs_compose_done(struct fs_ctx *ctx, struct fs_compose *c, bool committed);
/* The fixed composition of version vino (-ENOENT when it has none). */
int fs_compose_load(struct fs_ctx *ctx, uint64_t vino, struct pec_composition **out);
/* The newest version of the run before position `before` of the sorted array vs (n: all) that is
 * sealed (complete or not) and has a fixed composition; -1 when none. */
long fs_compose_base_index(struct fs_ctx *ctx, const struct fs_version *vs, size_t before);

/* ---- compose_st.c: safetensors shards merged at seal ---- */
/* Merges written shard `path` (inode ino) of the version being sealed with the base's logical copy
 * (inode base_ino). Puts the new extents into b and records them in c. Returns 1 when merged, 0 when
 * nothing was missing, or -errno; a refused header is reported in *problem (static text or a copy in
 * problem_buf). */
int fs_compose_merge_st(struct fs_ctx *ctx, struct fs_compose *c, struct meta_batch *b, uint64_t ino,
			uint64_t base_ino, const struct pec_patterns *pats, char *problem, size_t problem_size);
/* Adds ino to the inodes whose chunks the version uses (counting). 0 or -ENOMEM. */
int fs_compose_add_source(struct fs_compose *c, uint64_t ino);
/* Reads and validates a safetensors header of committed file ino (classified with pats). -errno
 * with a reason in err. */
struct pec_st_header;
int fs_st_read_header(struct fs_ctx *ctx, uint64_t ino, const struct pec_patterns *pats,
		      struct pec_st_header **out, char *err, size_t errsz);

/* ---- pec_tokens_io.c: RUN/.pec/tokens ---- */
/* Parses a report a trainer wrote and adds it to the run's pending report. -EINVAL (reason logged)
 * changes nothing. Takes ns_lock. */
int pec_tokens_submit(struct fs_ctx *ctx, uint64_t run_ino, const char *json, size_t len);
/* The run's pending report: 0 with *out (NULL when none reported since the last seal). */
int pec_tokens_pending(struct fs_ctx *ctx, uint64_t run_ino, struct pec_tokens **out);

/* ---- pecgen_pec.c: content of the run's PEC files ---- */
int pecgen_manifest(struct fs_ctx *ctx, uint64_t vino, char **out, size_t *len);
int pecgen_plan(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len);
int pecgen_tokens(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len);
/* Takes text (malloc'ed) over and returns it with a trailing newline in *out (pecgen_pec.c). */
int pecgen_with_newline(char *text, char **out, size_t *len);
/* RUN/.pec/resumed (pec_resumed.c): a restart from a sealed version adds its PLT to the run's
 * plt_spent. submit: -EINVAL (not {"version": name}, or the version is not sealed), -ENOENT. */
int pec_resumed_submit(struct fs_ctx *ctx, uint64_t run_ino, const char *json, size_t len);
int pecgen_resumed(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len);
int pec_resumed_spent(struct fs_ctx *ctx, uint64_t run_ino, double *out);

/* ---- retain.c: retention ---- */
/* Retires the versions of run_ino that its keep setting no longer retains (removed as rm -r
 * would). Caller holds ns_lock. */
void fs_retain_run(struct fs_ctx *ctx, uint64_t run_ino);
/* True when version directory vino is pinned. */
bool fs_retain_pinned(struct fs_ctx *ctx, uint64_t vino);
/* The S3 tier's commit hook (tier_set_commit_hook, arg: the fs_ctx): a version of run_ino was
 * committed, so versions retention held for the tier may go now. Takes ns_lock. */
void fs_retain_on_commit(void *arg, uint64_t run_ino, uint64_t version_ino);

#endif
