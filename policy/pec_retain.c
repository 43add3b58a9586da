/* pec_retain.c - retention of versions and persist selection for the S3 tier.
 *
 * Retention counts only complete, intact versions toward N: an incomplete version cannot be restarted
 * from, so keeping "the newest N" of those would be keeping nothing useful. Versions newer than the
 * oldest kept one stay as well, since they are the run's most recent state.
 */
#include "pec_retain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t pec_retain_select(const struct pec_retain_version *v, size_t n, uint32_t keep, bool *retain)
{
	size_t oldest_kept = 0, found = 0, retired = 0;

	for (size_t i = n; i > 0 && keep > 0 && found < keep; i--) {
		if (v[i - 1].state == PEC_VSTATE_SEALED && v[i - 1].complete) {
			found++;
			oldest_kept = i - 1;
		}
	}
	if (keep == 0 || found < keep)
		oldest_kept = 0;
	for (size_t i = 0; i < n; i++) {
		retain[i] = v[i].state != PEC_VSTATE_DELETED &&
			    (i >= oldest_kept || v[i].pinned || v[i].held || v[i].state == PEC_VSTATE_OPEN);
		if (!retain[i] && v[i].state != PEC_VSTATE_DELETED)
			retired++;
	}
	return retired;
}

void pec_persist_free(struct pec_persist *p)
{
	if (p == NULL)
		return;
	free(p->units);
	free(p);
}

struct pec_persist_rank {
	struct pec_unit unit;
	bool never;
	int64_t persisted_step;
	uint32_t rotation;
};

static int pec_persist_rank_cmp(const void *a, const void *b)
{
	const struct pec_persist_rank *x = a, *y = b;

	if (x->never != y->never)
		return x->never ? -1 : 1;
	if (x->persisted_step != y->persisted_step)
		return x->persisted_step < y->persisted_step ? -1 : 1;
	return x->rotation < y->rotation ? -1 : x->rotation > y->rotation;
}

int pec_persist_select(const struct pec_composition *comp, const struct pec_composition *persisted,
		       uint32_t k_persist, struct pec_persist **out)
{
	struct pec_persist_rank *rank;
	struct pec_persist *p;
	size_t layer_idx = 0;

	if (comp == NULL || out == NULL)
		return -EINVAL;
	rank = calloc(comp->n_units + 1, sizeof(*rank));
	p = calloc(1, sizeof(*p));
	if (rank == NULL || p == NULL || (p->units = calloc(comp->n_units + 1, sizeof(*p->units))) == NULL) {
		free(rank);
		pec_persist_free(p);
		return -ENOMEM;
	}
	/* Units are sorted by layer: rank each layer's written units on their own. */
	for (size_t i = 0; i < comp->n_units; layer_idx++) {
		uint32_t layer = comp->units[i].unit.layer, n_experts = 0, n = 0, offset;
		size_t start = i;

		for (; i < comp->n_units && comp->units[i].unit.layer == layer; i++)
			n_experts++;
		offset = (uint32_t)(((uint64_t)layer_idx * k_persist) % n_experts);
		for (size_t j = start; j < i; j++) {
			const struct pec_comp_unit *cu = &comp->units[j];
			const struct pec_comp_unit *pu = pec_composition_find(persisted, cu->unit);

			if (!cu->written)
				continue;
			rank[n++] = (struct pec_persist_rank){
				.unit = cu->unit,
				.never = pu == NULL || !pu->present,
				.persisted_step = (pu != NULL && pu->present) ? pu->source_step : -1,
				.rotation = (cu->unit.expert + n_experts - offset) % n_experts,
			};
		}
		qsort(rank, n, sizeof(*rank), pec_persist_rank_cmp);
		for (uint32_t j = 0; j < n && j < k_persist; j++)
			p->units[p->n_units++] = rank[j].unit;
	}
	qsort(p->units, p->n_units, sizeof(*p->units), pec_unit_cmp);
	free(rank);
	*out = p;
	return 0;
}

bool pec_persist_has(const struct pec_persist *p, struct pec_unit u)
{
	return p != NULL && bsearch(&u, p->units, p->n_units, sizeof(u), pec_unit_cmp) != NULL;
}
