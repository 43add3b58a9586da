/* pec_retain.h - which versions of a run stay (retention) and which experts of a version go to the
 * S3 tier (persist selection, the paper's K_persist). Rules and examples: policy/PEC.md. Pure: no
 * I/O, no globals; results are written into caller arrays or freed with pec_persist_free.
 */
#ifndef PECFS_PEC_RETAIN_H
#define PECFS_PEC_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pec_compose.h"
#include "pec_expert.h"

struct pec_retain_version {
	enum pec_vstate state;
	bool complete;   /* its composition is complete */
	bool pinned;     /* `pecfs pin` */
	bool held;       /* may not go yet: its only copy is local (the S3 tier has not committed it) */
};

/* Decides retention for a run's versions, oldest first: retain[i] is set for every version that stays
 * in the view. Kept: the newest `keep` complete SEALED versions and every version newer than the
 * oldest of them, pinned versions, held versions, OPEN versions. A held version counts toward `keep`
 * like any other; it only cannot be retired. DELETED versions are never retained. keep == 0, or
 * fewer than keep complete sealed versions, retires nothing. Returns how many versions are retired
 * (retain[i] false and not DELETED). */
size_t pec_retain_select(const struct pec_retain_version *v, size_t n, uint32_t keep, bool *retain);

/* The experts of one version to upload to the S3 tier: per layer, up to k_persist of the units the
 * version wrote itself, those whose newest persisted copy is oldest first. Non-expert files are always
 * uploaded and are not listed here. */
struct pec_persist {
	size_t n_units;
	struct pec_unit *units; /* sorted */
};

/* comp: the composition of the version to upload; persisted: the composition of the newest version
 * already uploaded (NULL when none). Ranking within a layer: never persisted first, then the oldest
 * persisted source step, then the rotation (expert - layer_index * k_persist) mod n_experts.
 * k_persist == 0 uploads no expert; k_persist >= what the version wrote uploads all it wrote.
 * 0 or -ENOMEM, -EINVAL for NULL arguments. */
int pec_persist_select(const struct pec_composition *comp, const struct pec_composition *persisted,
		       uint32_t k_persist, struct pec_persist **out);

/* True when unit u is among the units to upload. */
bool pec_persist_has(const struct pec_persist *p, struct pec_unit u);

void pec_persist_free(struct pec_persist *p);

#endif
