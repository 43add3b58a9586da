/* pec_select.h - which experts the next version should save: the plan published in RUN/.pec/plan.
 * Sequential (the paper's rotation, interleaved across layers so every expert-parallel rank saves a
 * similar amount), load-aware (most unsaved token updates first), and dynamic-K (double K while the
 * accumulated PLT would pass the budget). Trainers may ignore the plan. Rules and worked examples:
 * policy/PEC.md. Pure: no I/O, no globals. Plans are freed with pec_plan_free.
 */
#ifndef PECFS_PEC_SELECT_H
#define PECFS_PEC_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pec_compose.h"
#include "pec_expert.h"
#include "pec_tokens.h"

enum pec_select_strategy {
	PEC_SELECT_SEQUENTIAL = 0,
	PEC_SELECT_LOAD_AWARE,
};

struct pec_plan_config {
	enum pec_select_strategy strategy;
	uint32_t k;          /* K_pec: experts per layer to save, >= 1 (capped at each layer's count) */
	bool dynamic_k;      /* double K while plt_spent + projected PLT > plt_budget */
	double plt_budget;   /* fraction, e.g. 0.0375 */
	double plt_spent;    /* PLT already lost to restarts earlier in the run (the fs keeps it) */
};

/* Sequential, K = 1, dynamic-K on, budget PEC_PLT_BUDGET_DEFAULT, nothing spent. */
void pec_plan_config_default(struct pec_plan_config *cfg);

/* "sequential" / "load-aware"; pec_select_strategy_parse returns 0 or -EINVAL. */
const char *pec_select_strategy_name(enum pec_select_strategy s);
int pec_select_strategy_parse(const char *name, enum pec_select_strategy *out);

struct pec_plan_layer {
	uint32_t layer;
	uint32_t n_experts;
	uint32_t k;          /* min(plan K, n_experts) */
	uint32_t *experts;   /* [k] expert numbers, ascending */
};

struct pec_plan {
	uint64_t version_index;     /* index the planned version will have in the run (0 = first) */
	enum pec_select_strategy strategy;
	uint32_t k_configured;
	uint32_t k;                 /* after dynamic-K doubling */
	bool dynamic_k;
	double plt_budget;
	double plt_spent;
	bool plt_known;             /* token counts were available */
	double plt_projected;       /* PLT of a restart from the planned version if it saves exactly
				       this plan (with the tokens reported so far); 0 when !plt_known */
	size_t n_layers;
	struct pec_plan_layer *layers; /* sorted by layer */
};

/* Plans the next version. latest: the newest sealed composition (NULL when none); pending: the tokens
 * reported since it (NULL when none); layout: extra layout knowledge (NULL). The layers planned are
 * the union of all three. Within a layer, experts are ranked by, in order: unsaved token updates
 * (load-aware only, most first), never saved first, oldest saved copy first, then the rotation
 * offset (expert - layer_index * K) mod n_experts; the top K are chosen. 0, -EINVAL (k == 0,
 * budget not in (0, 1]) or -ENOMEM. */
int pec_plan_next(const struct pec_composition *latest, const struct pec_tokens *pending,
		  const struct pec_layout *layout, uint64_t version_index, const struct pec_plan_config *cfg,
		  struct pec_plan **out);

/* True when the plan has unit u among the experts to save. */
bool pec_plan_has(const struct pec_plan *p, struct pec_unit u);

/* The plan as JSON text (schema in policy/PEC.md), NUL-terminated, malloc'd. 0 or -ENOMEM. */
int pec_plan_to_json(const struct pec_plan *p, char **out);

void pec_plan_free(struct pec_plan *p);

#endif
