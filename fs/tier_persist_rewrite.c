/* tier_persist_rewrite.c - the pure part of persist selection: given a version's walked manifest, its
 * local composition and this node's previous upload of the run (manifest and remote composition),
 * decide per expert unit whether the upload carries the unit's files or points them at the copy
 * already in the bucket, rewrite the manifest accordingly and compute the remote composition.
 *
 * Invariants: the rewritten manifest lists exactly the entries it listed before (same paths, same
 * order); a reused entry takes every field that describes content (extents, size, mode, mtime) from
 * the previous manifest, whose chunks are in the bucket because that manifest was uploaded after them;
 * a unit is reused only when the previous copy has exactly the unit's paths, each path belongs to that
 * one unit in both compositions and is not a safetensors shard (a shard may also hold non-expert
 * tensors, so it is always uploaded as the version has it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pec_plt.h"
#include "pec_retain.h"
#include "tier_persist.h"

/* A manifest's entries sorted by path, for lookups. */
struct tp_index {
	struct tier_manifest_entry **e;
	size_t n;
};

/* Every path the present units of a composition list, sorted: a path listed twice is shared. */
struct tp_paths {
	const char **p;
	size_t n;
};

enum tp_fate { TP_SKIP = 0, TP_NEW, TP_REUSE, TP_FORCED };

struct tp_ctx {
	struct tier_manifest *m;
	const struct pec_composition *local, *prev_comp;
	const struct tier_manifest *prev_m;
	struct tp_index mix, pix;
	struct tp_paths lpaths, ppaths;
};

static int tp_entry_cmp(const void *a, const void *b)
{
	return strcmp((*(struct tier_manifest_entry *const *)a)->path, (*(struct tier_manifest_entry *const *)b)->path);
}

static int tp_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int tp_index_build(const struct tier_manifest *m, struct tp_index *ix)
{
	ix->n = m ? m->n : 0;
	ix->e = malloc((ix->n ? ix->n : 1) * sizeof(*ix->e));
	if (!ix->e)
		return -ENOMEM;
	for (size_t i = 0; i < ix->n; i++)
		ix->e[i] = &m->entries[i];
	qsort(ix->e, ix->n, sizeof(*ix->e), tp_entry_cmp);
	return 0;
}

/* The regular file entry at path, or NULL. A file with several names (hard links) is never pointed
 * at another version's copy: the other names would keep the old extents. */
static struct tier_manifest_entry *tp_file(const struct tp_index *ix, const char *path)
{
	struct tier_manifest_entry key = { .path = (char *)path }, *kp = &key, **hit;

	hit = bsearch(&kp, ix->e, ix->n, sizeof(*ix->e), tp_entry_cmp);
	return hit && S_ISREG((*hit)->mode) && !(*hit)->link && (*hit)->nlinks == 1 ? *hit : NULL;
}

static int tp_paths_build(const struct pec_composition *c, struct tp_paths *ps)
{
	size_t total = 0;

	for (size_t i = 0; c && i < c->n_units; i++)
		total += c->units[i].present ? c->units[i].n_paths : 0;
	ps->n = 0;
	ps->p = malloc((total ? total : 1) * sizeof(*ps->p));
	if (!ps->p)
		return -ENOMEM;
	for (size_t i = 0; c && i < c->n_units; i++)
		for (size_t j = 0; c->units[i].present && j < c->units[i].n_paths; j++)
			ps->p[ps->n++] = c->units[i].paths[j];
	qsort(ps->p, ps->n, sizeof(*ps->p), tp_str_cmp);
	return 0;
}

static bool tp_shared(const struct tp_paths *ps, const char *path)
{
	const char **hit = bsearch(&path, ps->p, ps->n, sizeof(*ps->p), tp_str_cmp);

	if (!hit)
		return false;
	return (hit > ps->p && strcmp(hit[-1], path) == 0) || (hit + 1 < ps->p + ps->n && strcmp(hit[1], path) == 0);
}

static bool tp_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The previous copy of unit cu when it can stand in for the version's files, else NULL. */
static const struct pec_comp_unit *tp_reusable(const struct tp_ctx *x, const struct pec_comp_unit *cu)
{
	const struct pec_comp_unit *pu = pec_composition_find(x->prev_comp, cu->unit);

	if (!pu || !pu->present || !pu->source || pu->n_paths != cu->n_paths || cu->n_paths == 0 ||
	    pu->source_step > x->local->step)
		return NULL;
	for (size_t j = 0; j < cu->n_paths; j++) {
		const char *path = cu->paths[j];
		const struct tier_manifest_entry *pe = tp_file(&x->pix, path);

		if (strcmp(path, pu->paths[j]) != 0 || tp_ends_with(path, ".safetensors") ||
		    tp_shared(&x->lpaths, path) || tp_shared(&x->ppaths, path) || !tp_file(&x->mix, path) || !pe)
			return NULL;
		/* The previous manifest and its composition must agree on where the bytes are. */
		if (strcmp(pe->source ? pe->source : x->prev_m->version, pu->source) != 0)
			return NULL;
	}
	return pu;
}

/* Points the version's files of cu at the previous copy pu, and its remote entry ru at pu's source. */
static int tp_reuse(struct tp_ctx *x, const struct pec_comp_unit *cu, const struct pec_comp_unit *pu,
		    struct pec_comp_unit *ru, struct pec_composition *remote)
{
	int64_t stale = x->local->step - pu->source_step;
	char *src = strdup(pu->source);

	if (!src)
		return -ENOMEM;
	for (size_t j = 0; j < cu->n_paths; j++) {
		struct tier_manifest_entry *e = tp_file(&x->mix, cu->paths[j]);
		const struct tier_manifest_entry *pe = tp_file(&x->pix, cu->paths[j]);
		int rc = tier_manifest_set_extents(e, pe->ext, pe->next);

		if (rc == 0)
			rc = tier_manifest_set_source(e, pu->source, stale);
		if (rc < 0) {
			free(src);
			return rc;
		}
		e->size = pe->size;
		e->mode = pe->mode;
		e->mtime_ns = pe->mtime_ns;
	}
	/* Lost tokens: exact when the local copy has the same source; otherwise the tokens routed since
	 * the older remote copy are only known to be at least what either side counted. */
	if (strcmp(cu->source, pu->source) != 0) {
		ru->lost_tokens = cu->lost_tokens > pu->lost_tokens ? cu->lost_tokens : pu->lost_tokens;
		remote->tokens_known = false;
	}
	free(ru->source);
	ru->source = src;
	ru->source_step = pu->source_step;
	ru->staleness = stale;
	ru->written = false;
	ru->needs_merge = false;
	return 0;
}

/* A unit the version inherited locally and uploads anyway: its entries name the local source. */
static int tp_name_local_source(struct tp_ctx *x, const struct pec_comp_unit *cu)
{
	if (cu->written || !cu->source || strcmp(cu->source, x->m->version) == 0 || cu->staleness < 0)
		return 0;
	for (size_t j = 0; j < cu->n_paths; j++) {
		struct tier_manifest_entry *e = tp_file(&x->mix, cu->paths[j]);
		int rc = e ? tier_manifest_set_source(e, cu->source, cu->staleness) : 0;

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Per-layer losses and the PLT of the remote composition, after its units changed. */
static int tp_account(struct pec_composition *c)
{
	struct pec_plt_layer *plt = calloc(c->n_layers + 1, sizeof(*plt));
	size_t u = 0;

	if (!plt)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_layers; i++) {
		struct pec_comp_layer *l = &c->layers[i];

		l->lost = 0;
		while (u < c->n_units && c->units[u].unit.layer < l->layer)
			u++;
		for (; u < c->n_units && c->units[u].unit.layer == l->layer; u++)
			l->lost += c->units[u].lost_tokens;
		plt[i].lost = l->lost;
		plt[i].tokens = l->tokens;
	}
	c->plt = pec_plt(plt, c->n_layers, c->top_k);
	free(plt);
	return 0;
}

static int tp_units(struct tp_ctx *x, const struct pec_persist *sel, struct tier_persist_result *out)
{
	const struct pec_composition *local = x->local;
	int rc = 0;

	for (size_t i = 0; i < local->n_units && rc == 0; i++) {
		const struct pec_comp_unit *cu = &local->units[i], *pu;

		if (!cu->present)
			continue;
		if (pec_persist_has(sel, cu->unit)) {
			out->units_new++;
		} else if ((pu = tp_reusable(x, cu)) != NULL) {
			out->units_reused++;
			rc = tp_reuse(x, cu, pu, &out->remote->units[i], out->remote);
		} else {
			out->units_forced++;
			rc = tp_name_local_source(x, cu);
		}
	}
	return rc;
}

int tier_persist_rewrite(struct tier_manifest *m, const struct pec_composition *local,
			 const struct tier_manifest *prev_m, const struct pec_composition *prev_comp, uint32_t k_persist, struct tier_persist_result *out)
{
	struct tp_ctx x = { .m = m, .local = local, .prev_comp = prev_comp, .prev_m = prev_m };
	struct pec_persist *sel = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!m || !local || (!prev_m) != (!prev_comp))
		return -EINVAL;
	rc = pec_persist_select(local, prev_comp, k_persist, &sel);
	if (rc == 0)
		rc = pec_composition_copy(local, &out->remote);
	if (rc == 0)
		rc = tp_index_build(m, &x.mix);
	if (rc == 0)
		rc = tp_index_build(prev_m, &x.pix);
	if (rc == 0)
		rc = tp_paths_build(local, &x.lpaths);
	if (rc == 0)
		rc = tp_paths_build(prev_comp, &x.ppaths);
	if (rc == 0)
		rc = tp_units(&x, sel, out);
	if (rc == 0)
		rc = tp_account(out->remote);
	if (rc < 0) {
		pec_composition_free(out->remote);
		memset(out, 0, sizeof(*out));
	}
	free(x.mix.e);
	free(x.pix.e);
	free(x.lpaths.p);
	free(x.ppaths.p);
	pec_persist_free(sel);
	return rc;
}
