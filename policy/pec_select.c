/* pec_select.c - the next version's plan: ranking experts per layer, dynamic-K, JSON rendering.
 *
 * Sequential selection is not a formula of the version index: it ranks by how long ago each expert
 * was saved, with the paper's rotation as the tie-break. Both give the paper's sequence while K is
 * constant and every plan is followed; ranking by age also stays fair when K changes (dynamic-K) or
 * when a trainer saved something other than the plan.
 */
#include "pec_select.h"
#include "pec_plt.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void pec_plan_config_default(struct pec_plan_config *cfg)
{
	cfg->strategy = PEC_SELECT_SEQUENTIAL;
	cfg->k = 1;
	cfg->dynamic_k = true;
	cfg->plt_budget = PEC_PLT_BUDGET_DEFAULT;
	cfg->plt_spent = 0.0;
}

const char *pec_select_strategy_name(enum pec_select_strategy s)
{
	return s == PEC_SELECT_LOAD_AWARE ? "load-aware" : "sequential";
}

int pec_select_strategy_parse(const char *name, enum pec_select_strategy *out)
{
	if (name != NULL && strcmp(name, "sequential") == 0)
		*out = PEC_SELECT_SEQUENTIAL;
	else if (name != NULL && strcmp(name, "load-aware") == 0)
		*out = PEC_SELECT_LOAD_AWARE;
	else
		return -EINVAL;
	return 0;
}

void pec_plan_free(struct pec_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_layers; i++)
		free(p->layers[i].experts);
	free(p->layers);
	free(p);
}

/* One expert's ranking keys; the comparator needs nothing else. */
struct pec_rank {
	uint32_t expert;
	bool load_aware;
	bool never_saved;
	int64_t saved_step;
	uint64_t unsaved;  /* token updates since its last save */
	uint32_t rotation; /* (expert - layer_index * K) mod n_experts */
};

static int pec_rank_cmp(const void *a, const void *b)
{
	const struct pec_rank *x = a, *y = b;

	if (x->load_aware && x->unsaved != y->unsaved)
		return x->unsaved > y->unsaved ? -1 : 1;
	if (x->never_saved != y->never_saved)
		return x->never_saved ? -1 : 1;
	if (x->saved_step != y->saved_step)
		return x->saved_step < y->saved_step ? -1 : 1;
	return x->rotation < y->rotation ? -1 : x->rotation > y->rotation;
}

static int pec_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Ranks layer `idx` of the plan with K = k and keeps its top experts in l->experts (allocated by the
 * caller for n_experts entries). Returns the token updates the layer would lose. */
static uint64_t pec_select_layer(struct pec_plan_layer *l, size_t idx, uint32_t k, enum pec_select_strategy s,
				 const struct pec_composition *latest, const struct pec_tokens *pending,
				 struct pec_rank *rank)
{
	uint64_t lost = 0;
	uint32_t n = l->n_experts;
	uint32_t offset = (uint32_t)(((uint64_t)idx * k) % n);

	for (uint32_t e = 0; e < n; e++) {
		struct pec_unit u = { l->layer, e };
		const struct pec_comp_unit *cu = pec_composition_find(latest, u);

		rank[e] = (struct pec_rank){
			.expert = e,
			.load_aware = s == PEC_SELECT_LOAD_AWARE,
			.never_saved = cu == NULL || !cu->present,
			.saved_step = (cu != NULL && cu->present) ? cu->source_step : -1,
			.unsaved = (cu != NULL ? cu->lost_tokens : 0) + pec_tokens_count(pending, u),
			.rotation = (e + n - offset) % n,
		};
	}
	qsort(rank, n, sizeof(*rank), pec_rank_cmp);
	l->k = k < n ? k : n;
	for (uint32_t i = 0; i < n; i++) {
		if (i < l->k)
			l->experts[i] = rank[i].expert;
		else
			lost += rank[i].unsaved;
	}
	qsort(l->experts, l->k, sizeof(*l->experts), pec_u32_cmp);
	return lost;
}

/* Selects every layer with K = k and returns the projected PLT (needs plt->tokens filled). */
static double pec_select_all(struct pec_plan *p, uint32_t k, enum pec_select_strategy s,
			     const struct pec_composition *latest, const struct pec_tokens *pending,
			     struct pec_rank *rank, struct pec_plt_layer *plt, uint32_t top_k)
{
	for (size_t i = 0; i < p->n_layers; i++)
		plt[i].lost = pec_select_layer(&p->layers[i], i, k, s, latest, pending, rank);
	p->k = k;
	return pec_plt(plt, p->n_layers, top_k);
}

int pec_plan_next(const struct pec_composition *latest, const struct pec_tokens *pending,
		  const struct pec_layout *layout, uint64_t version_index, const struct pec_plan_config *cfg,
		  struct pec_plan **out)
{
	struct pec_layout lo = { 0, NULL };
	struct pec_plan *p = NULL;
	struct pec_rank *rank = NULL;
	struct pec_plt_layer *plt = NULL;
	uint32_t max_n = 0, k, top_k;
	int rc = -ENOMEM;

	if (cfg == NULL || out == NULL || cfg->k == 0 || !(cfg->plt_budget > 0.0 && cfg->plt_budget <= 1.0) ||
	    !(cfg->plt_spent >= 0.0))
		return -EINVAL;
	if (pec_layout_merge(&lo, layout) != 0 || pec_composition_layout(latest, &lo) != 0 ||
	    pec_tokens_layout(pending, &lo) != 0)
		goto out;
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->layers = calloc(lo.n_layers + 1, sizeof(*p->layers))) == NULL ||
	    (plt = calloc(lo.n_layers + 1, sizeof(*plt))) == NULL)
		goto out;
	p->version_index = version_index;
	p->strategy = cfg->strategy;
	p->k_configured = cfg->k;
	p->dynamic_k = cfg->dynamic_k;
	p->plt_budget = cfg->plt_budget;
	p->plt_spent = cfg->plt_spent;
	for (size_t i = 0; i < lo.n_layers; i++) {
		const struct pec_tokens_layer *tl = pec_tokens_find(pending, lo.layers[i].layer);

		p->layers[i].layer = lo.layers[i].layer;
		p->layers[i].n_experts = lo.layers[i].n_experts;
		p->layers[i].experts = calloc(lo.layers[i].n_experts + 1, sizeof(uint32_t));
		p->n_layers = i + 1;
		if (p->layers[i].experts == NULL)
			goto out;
		if (lo.layers[i].n_experts > max_n)
			max_n = lo.layers[i].n_experts;
		for (size_t j = 0; latest != NULL && j < latest->n_layers; j++)
			if (latest->layers[j].layer == lo.layers[i].layer)
				plt[i].tokens = latest->layers[j].tokens;
		plt[i].tokens += tl != NULL ? tl->tokens : 0;
	}
	rank = calloc(max_n + 1, sizeof(*rank));
	if (rank == NULL)
		goto out;
	top_k = pending != NULL ? pending->top_k : (latest != NULL ? latest->top_k : 0);
	p->plt_known = top_k > 0;

	k = cfg->k;
	p->plt_projected = pec_select_all(p, k, cfg->strategy, latest, pending, rank, plt, top_k);
	/* Dynamic-K: double until the accumulated PLT fits the budget or every expert is saved. */
	while (cfg->dynamic_k && p->plt_known && k < max_n &&
	       cfg->plt_spent + p->plt_projected > cfg->plt_budget) {
		k = k > max_n / 2 ? max_n : k * 2;
		p->plt_projected = pec_select_all(p, k, cfg->strategy, latest, pending, rank, plt, top_k);
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	pec_plan_free(p);
	pec_layout_free(&lo);
	free(rank);
	free(plt);
	return rc;
}

bool pec_plan_has(const struct pec_plan *p, struct pec_unit u)
{
	for (size_t i = 0; p != NULL && i < p->n_layers; i++) {
		if (p->layers[i].layer != u.layer)
			continue;
		return bsearch(&u.expert, p->layers[i].experts, p->layers[i].k, sizeof(uint32_t), pec_u32_cmp) != NULL;
	}
	return false;
}

int pec_plan_to_json(const struct pec_plan *p, char **out)
{
	json_t *root, *layers = json_array();
	int rc = -ENOMEM;

	root = json_pack("{s:i, s:I, s:s, s:I, s:I, s:b, s:f, s:f, s:o}", "format", 1, "version_index",
			 (json_int_t)p->version_index, "strategy", pec_select_strategy_name(p->strategy), "k",
			 (json_int_t)p->k, "k_configured", (json_int_t)p->k_configured, "dynamic_k", p->dynamic_k,
			 "plt_budget", p->plt_budget, "plt_spent", p->plt_spent, "plt_projected",
			 p->plt_known ? json_real(p->plt_projected) : json_null());
	if (root == NULL || layers == NULL)
		goto out;
	for (size_t i = 0; i < p->n_layers; i++) {
		json_t *experts = json_array(), *l;

		for (uint32_t j = 0; experts != NULL && j < p->layers[i].k; j++)
			if (json_array_append_new(experts, json_integer(p->layers[i].experts[j])) != 0) {
				json_decref(experts);
				experts = NULL;
			}
		l = json_pack("{s:I, s:I, s:I, s:o}", "layer", (json_int_t)p->layers[i].layer, "experts_total",
			      (json_int_t)p->layers[i].n_experts, "k", (json_int_t)p->layers[i].k, "experts",
			      experts);
		if (l == NULL || json_array_append_new(layers, l) != 0)
			goto out;
	}
	if (json_object_set(root, "layers", layers) != 0)
		goto out;
	/* Ten significant digits: the plan is read by people too, and 0.0375 should read so. */
	*out = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
	rc = *out != NULL ? 0 : -ENOMEM;
out:
	json_decref(layers);
	json_decref(root);
	return rc;
}
