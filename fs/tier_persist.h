/* tier_persist.h - persist selection for the S3 tier (`s3-persist pec`, the paper's second level):
 * each uploaded version adds its non-expert files and, per MoE layer, up to K_persist of the expert
 * units it wrote itself (pec_persist_select); the manifest still lists the complete checkpoint, every
 * other unit's files carrying the extents of that unit's newest copy already in the bucket and naming
 * the version it comes from. The remote composition (which upload each unit's bytes come from, and
 * how stale they are) is uploaded beside the manifest. Rules and layout: store/FORMAT.md section 5,
 * "PEC persistence".
 *
 * The decision needs the PEC policy library and the run's settings, so it lives in fs/ and reaches the
 * uploader as a hook (store/tier/tier.h, struct tier_persist_hook) instead of store/ linking policy/.
 * tier_persist_rewrite is the pure part (no I/O); the hook adds reading the version's composition,
 * finding this node's previous upload of the run in the bucket, and storing the remote composition.
 */
#ifndef PECFS_FS_TIER_PERSIST_H
#define PECFS_FS_TIER_PERSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "pec_compose.h"
#include "tier_manifest.h"
#include "tier.h"
#include "config.h"

/* Suffix of the remote composition object beside the manifest: runs/RUN/VERSION/NODE.composition. */
#define TIER_PERSIST_COMP_SUFFIX ".composition"

/* What a rewrite did. */
struct tier_persist_result {
	struct pec_composition *remote;  /* the composition the bucket holds for the version (caller frees) */
	size_t units_new;                /* units whose files this upload carries, as the version has them */
	size_t units_reused;             /* units pointed at an earlier upload */
	size_t units_forced;             /* not selected, but without a usable copy in the bucket: uploaded */
};

/* Rewrites m, the walked manifest of a version whose local (fixed) composition is local, for `pec`
 * persistence on top of this node's previous upload of the run: prev_m its manifest and prev_comp
 * its remote composition (both NULL for the run's first upload, which then carries every unit).
 * Units selected by pec_persist_select(local, prev_comp, k_persist) keep their entries; every other
 * present unit whose files prev_m holds at the same paths gets prev_m's entries (extents, size, mode,
 * mtime) and their source; a unit that cannot be reused that way (no copy, other paths, a file shared
 * with another unit, a safetensors shard) keeps its entries too. Entries of units the version
 * inherited locally and uploads anyway name their local source. On failure m may be partly rewritten
 * and must not be uploaded. 0, -EINVAL (local NULL, or only one of prev_m / prev_comp) or -ENOMEM. */
int tier_persist_rewrite(struct tier_manifest *m, const struct pec_composition *local,
			 const struct tier_manifest *prev_m, const struct pec_composition *prev_comp, uint32_t k_persist, struct tier_persist_result *out);

/* The hook for tier_options.persist, with the mount's s3-persist / s3-k-persist as the defaults a
 * run's xattrs override. *out is freed by the tier (tier_persist_hook_free). -ENOMEM. */
int tier_persist_hook_new(const struct pecfs_config *cfg, struct tier_persist_hook *out);
void tier_persist_hook_free(void *ctx);

#endif
