/* pec_compose.c - composition resolution: which version each expert unit of a version comes from.
 *
 * A composition is built on top of the previous fixed composition (a chain), never by searching the
 * history for "the newest writer" again: that way deleting an old version cannot change what a newer
 * one presents, and a unit inherited through a deleted version still names its true source.
 */
#include "pec_compose.h"
#include "pec_plt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void pec_comp_unit_clear(struct pec_comp_unit *u)
{
	free(u->source);
	for (size_t i = 0; i < u->n_paths; i++)
		free(u->paths[i]);
	free(u->paths);
}

void pec_composition_free(struct pec_composition *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_units; i++)
		pec_comp_unit_clear(&c->units[i]);
	for (size_t i = 0; i < c->n_problems; i++) {
		free(c->problem_paths[i]);
		free(c->problems[i]);
	}
	free(c->problem_paths);
	free(c->problems);
	free(c->units);
	free(c->layers);
	free(c->name);
	free(c);
}

const struct pec_comp_unit *pec_composition_find(const struct pec_composition *c, struct pec_unit u)
{
	size_t lo = 0, hi = c != NULL ? c->n_units : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = pec_unit_cmp(&c->units[mid].unit, &u);

		if (cmp == 0)
			return &c->units[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int pec_composition_layout(const struct pec_composition *c, struct pec_layout *lo)
{
	for (size_t i = 0; c != NULL && i < c->n_units; i++) {
		int rc = pec_layout_add(lo, c->units[i].unit);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static int pec_strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Orders unit files by unit, then path. */
static int pec_unit_file_cmp(const void *a, const void *b)
{
	const struct pec_unit_file *x = a, *y = b;
	int c = pec_unit_cmp(&x->unit, &y->unit);

	return c != 0 ? c : strcmp(x->path, y->path);
}

/* Copies n strings (sorted, duplicates dropped) into u->paths. 0 or -ENOMEM. */
static int pec_unit_set_paths(struct pec_comp_unit *u, const char *const *paths, size_t n)
{
	if (n == 0)
		return 0;
	u->paths = calloc(n, sizeof(*u->paths));
	if (u->paths == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (u->n_paths > 0 && strcmp(u->paths[u->n_paths - 1], paths[i]) == 0)
			continue;
		u->paths[u->n_paths] = strdup(paths[i]);
		if (u->paths[u->n_paths] == NULL)
			return -ENOMEM;
		u->n_paths++;
	}
	return 0;
}

/* The sets derived from v that every unit consults. */
struct pec_compose_ctx {
	const struct pec_version_in *v;
	struct pec_unit_file *sorted; /* v->files sorted by (unit, path) */
	const char **written;   /* every path v wrote, sorted */
	const char **scratch;   /* room for one unit's paths */
};

static bool pec_ctx_wrote_path(const struct pec_compose_ctx *x, const char *path)
{
	return bsearch(&path, x->written, x->v->n_files, sizeof(*x->written), pec_strcmp_ptr) != NULL;
}

/* Fills one unit of the new composition. *fi walks x->sorted in step with the units. */
static int pec_compose_unit(const struct pec_compose_ctx *x, const struct pec_composition *base,
			    struct pec_unit unit, size_t *fi, struct pec_comp_unit *out)
{
	const struct pec_version_in *v = x->v;
	const struct pec_comp_unit *prev = pec_composition_find(base, unit);
	size_t n = 0;

	out->unit = unit;
	while (*fi < v->n_files && pec_unit_cmp(&x->sorted[*fi].unit, &unit) == 0)
		x->scratch[n++] = x->sorted[(*fi)++].path;
	if (n > 0) {
		out->present = out->written = true;
		out->source = strdup(v->name);
		out->source_step = v->step;
		return out->source != NULL ? pec_unit_set_paths(out, x->scratch, n) : -ENOMEM;
	}
	out->lost_tokens = (prev != NULL ? prev->lost_tokens : 0) + pec_tokens_count(v->tokens, unit);
	if (prev == NULL || !prev->present) {
		out->source_step = out->staleness = -1;
		return 0;
	}
	out->present = true;
	out->source = strdup(prev->source);
	out->source_step = prev->source_step;
	out->staleness = v->step - prev->source_step;
	for (size_t i = 0; i < prev->n_paths; i++)
		if (pec_ctx_wrote_path(x, prev->paths[i]))
			out->needs_merge = true;
	if (out->source == NULL)
		return -ENOMEM;
	return pec_unit_set_paths(out, (const char *const *)prev->paths, prev->n_paths);
}

/* Per-layer token totals, losses and the PLT, once the units are filled. */
static void pec_compose_account(struct pec_composition *c, const struct pec_composition *base,
				const struct pec_tokens *t, struct pec_plt_layer *plt)
{
	size_t u = 0;

	for (size_t i = 0; i < c->n_layers; i++) {
		struct pec_comp_layer *l = &c->layers[i];
		const struct pec_tokens_layer *tl = pec_tokens_find(t, l->layer);

		for (size_t j = 0; base != NULL && j < base->n_layers; j++)
			if (base->layers[j].layer == l->layer)
				l->tokens = base->layers[j].tokens;
		l->tokens += tl != NULL ? tl->tokens : 0;
		for (; u < c->n_units && c->units[u].unit.layer == l->layer; u++)
			l->lost += c->units[u].lost_tokens;
		plt[i].lost = l->lost;
		plt[i].tokens = l->tokens;
	}
	c->plt = pec_plt(plt, c->n_layers, c->top_k);
}

int pec_compose_next(const struct pec_composition *base, const struct pec_version_in *v,
		     const struct pec_layout *layout, struct pec_composition **out)
{
	struct pec_layout lo = { 0, NULL };
	struct pec_compose_ctx x = { v, NULL, NULL, NULL };
	struct pec_composition *c = NULL;
	struct pec_plt_layer *plt = NULL;
	size_t fi = 0, k = 0;
	int rc = -EINVAL;

	if (v == NULL || v->name == NULL || out == NULL || (v->n_files > 0 && v->files == NULL) ||
	    (v->n_problems > 0 && v->problems == NULL))
		return -EINVAL;
	for (size_t i = 0; i < v->n_problems; i++)
		if (v->problems[i].path == NULL || v->problems[i].problem == NULL)
			return -EINVAL;
	for (size_t i = 0; i < v->n_files; i++)
		if (v->files[i].path == NULL || v->files[i].unit.layer > PEC_MAX_LAYER ||
		    v->files[i].unit.expert > PEC_MAX_EXPERT)
			return -EINVAL;

	rc = -ENOMEM;
	if (pec_composition_layout(base, &lo) != 0 || pec_layout_merge(&lo, layout) != 0 ||
	    pec_tokens_layout(v->tokens, &lo) != 0)
		goto out;
	for (size_t i = 0; i < v->n_files; i++)
		if (pec_layout_add(&lo, v->files[i].unit) != 0)
			goto out;

	x.sorted = malloc((v->n_files + 1) * sizeof(*x.sorted));
	x.written = malloc((v->n_files + 1) * sizeof(*x.written));
	x.scratch = malloc((v->n_files + 1) * sizeof(*x.scratch));
	c = calloc(1, sizeof(*c));
	if (x.sorted == NULL || x.written == NULL || x.scratch == NULL || c == NULL)
		goto out;
	for (size_t i = 0; i < v->n_files; i++) {
		x.sorted[i] = v->files[i];
		x.written[i] = v->files[i].path;
	}
	qsort(x.sorted, v->n_files, sizeof(*x.sorted), pec_unit_file_cmp);
	qsort(x.written, v->n_files, sizeof(*x.written), pec_strcmp_ptr);

	c->name = strdup(v->name);
	c->step = v->step;
	c->n_layers = lo.n_layers;
	c->layers = calloc(lo.n_layers + 1, sizeof(*c->layers));
	c->units = calloc(pec_layout_units(&lo) + 1, sizeof(*c->units));
	plt = calloc(lo.n_layers + 1, sizeof(*plt));
	if (c->name == NULL || c->layers == NULL || c->units == NULL || plt == NULL)
		goto out;
	for (size_t i = 0; i < lo.n_layers; i++) {
		c->layers[i].layer = lo.layers[i].layer;
		for (uint32_t e = 0; e < lo.layers[i].n_experts; e++) {
			struct pec_unit unit = { lo.layers[i].layer, e };

			c->n_units = k + 1;
			rc = pec_compose_unit(&x, base, unit, &fi, &c->units[k]);
			if (rc != 0)
				goto out;
			if (!c->units[k].present)
				c->n_missing++;
			k++;
		}
	}
	c->complete = c->n_missing == 0;
	rc = -ENOMEM;
	c->problem_paths = calloc(v->n_problems + 1, sizeof(char *));
	c->problems = calloc(v->n_problems + 1, sizeof(char *));
	if (c->problem_paths == NULL || c->problems == NULL)
		goto out;
	for (size_t i = 0; i < v->n_problems; i++) {
		c->problem_paths[i] = strdup(v->problems[i].path);
		c->problems[i] = strdup(v->problems[i].problem);
		c->n_problems = i + 1;
		if (c->problem_paths[i] == NULL || c->problems[i] == NULL)
			goto out;
	}
	c->top_k = v->tokens != NULL ? v->tokens->top_k : (base != NULL ? base->top_k : 0);
	c->tokens_known = v->tokens != NULL && (base == NULL || base->tokens_known);
	pec_compose_account(c, base, v->tokens, plt);
	*out = c;
	c = NULL;
	rc = 0;
out:
	pec_composition_free(c);
	pec_layout_free(&lo);
	free(plt);
	free(x.sorted);
	free(x.written);
	free(x.scratch);
	return rc;
}

bool pec_steps_normalize(int64_t *steps, size_t n)
{
	bool keep = true;

	for (size_t i = 0; i < n; i++)
		if (steps[i] < 0 || (i > 0 && steps[i] <= steps[i - 1]))
			keep = false;
	if (!keep)
		for (size_t i = 0; i < n; i++)
			steps[i] = (int64_t)i;
	return keep;
}

int pec_compose_history(const struct pec_version_in *hist, size_t n, size_t target,
			const struct pec_layout *layout, struct pec_composition **out)
{
	struct pec_layout lo = { 0, NULL };
	struct pec_composition *base = NULL, *next;
	struct pec_tokens *pending = NULL, *sum;
	int64_t *steps = NULL;
	int rc = -EINVAL;

	if (hist == NULL || target >= n || out == NULL)
		return -EINVAL;
	rc = -ENOMEM;
	steps = malloc(n * sizeof(*steps));
	if (steps == NULL || pec_layout_merge(&lo, layout) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		steps[i] = hist[i].step;
	pec_steps_normalize(steps, n);
	/* Units written only by versions skipped below still belong to the model. */
	for (size_t i = 0; i <= target; i++)
		for (size_t f = 0; f < hist[i].n_files; f++)
			if (pec_layout_add(&lo, hist[i].files[f].unit) != 0)
				goto out;

	for (size_t i = 0; i <= target; i++) {
		struct pec_version_in vi = hist[i];

		rc = pec_tokens_sum(pending, hist[i].tokens, &sum);
		if (rc != 0)
			goto out;
		pec_tokens_free(pending);
		pending = sum;
		if (i != target && hist[i].state != PEC_VSTATE_SEALED)
			continue;
		vi.step = steps[i];
		vi.tokens = pending;
		rc = pec_compose_next(base, &vi, &lo, &next);
		if (rc != 0)
			goto out;
		pec_composition_free(base);
		base = next;
		pec_tokens_free(pending);
		pending = NULL;
	}
	*out = base;
	base = NULL;
	rc = 0;
out:
	pec_composition_free(base);
	pec_tokens_free(pending);
	pec_layout_free(&lo);
	free(steps);
	return rc;
}
