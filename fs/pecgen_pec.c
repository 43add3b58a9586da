/* pecgen_pec.c - content of a run's PEC files: RUN/.pec/manifest/<version> (the fixed composition
 * stored at seal), RUN/.pec/plan (pec_plan_next on the newest sealed composition and the tokens
 * reported since) and RUN/.pec/tokens (the pending report; empty when none). Generated per open.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"

int pecgen_with_newline(char *text, char **out, size_t *len)
{
	size_t n = strlen(text);
	if (n > 0 && text[n - 1] == '\n') {
		*out = text;
		*len = n;
		return 0;
	}
	char *t = realloc(text, n + 2);
	if (!t) {
		free(text);
		return -ENOMEM;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*out = t;
	*len = n + 1;
	return 0;
}

int pecgen_manifest(struct fs_ctx *ctx, uint64_t vino, char **out, size_t *len)
{
	char *json;
	size_t n;
	int rc = meta_get_manifest(ctx->meta, vino, &json, &n);
	return rc < 0 ? rc : pecgen_with_newline(json, out, len);
}

int pecgen_tokens(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len)
{
	struct pec_tokens *t;
	char *json;
	int rc = pec_tokens_pending(ctx, run_ino, &t);
	if (rc < 0)
		return rc;
	if (!t) {
		*out = strdup("");
		*len = 0;
		return *out ? 0 : -ENOMEM;
	}
	rc = pec_tokens_to_json(t, &json);
	pec_tokens_free(t);
	return rc < 0 ? rc : pecgen_with_newline(json, out, len);
}

/* K when the run does not set one: the most experts of one layer that the newest version wrote. */
static uint32_t plan_default_k(const struct pec_composition *c)
{
	uint32_t best = 0, cur = 0;
	for (size_t i = 0; c && i < c->n_units; i++) {
		if (i == 0 || c->units[i].unit.layer != c->units[i - 1].unit.layer)
			cur = 0;
		cur += c->units[i].written;
		best = cur > best ? cur : best;
	}
	return best ? best : 1;
}

int pecgen_plan(struct fs_ctx *ctx, uint64_t run_ino, char **out, size_t *len)
{
	struct pec_runcfg cfg;
	struct fs_version *vs = NULL;
	struct pec_composition *latest = NULL;
	struct pec_tokens *pending = NULL;
	struct pec_plan *plan = NULL;
	char *json = NULL;
	size_t n = 0;
	int rc = pec_runcfg_load(ctx, run_ino, &cfg);
	if (rc < 0)
		return rc;
	if ((rc = fs_versions_sorted(ctx, run_ino, &vs, &n)) < 0)
		goto out;
	long li = fs_compose_base_index(ctx, vs, n);
	if (li >= 0 && (rc = fs_compose_load(ctx, vs[li].v.ino, &latest)) < 0)
		goto out;
	if ((rc = pec_tokens_pending(ctx, run_ino, &pending)) < 0)
		goto out;
	uint64_t index = 0;
	for (size_t i = 0; i < n; i++)
		index += vs[i].v.state != META_VERSION_OPEN;
	if ((rc = pec_resumed_spent(ctx, run_ino, &cfg.plan.plt_spent)) < 0)
		goto out;
	if (!cfg.k_set)
		cfg.plan.k = plan_default_k(latest);
	if ((rc = pec_plan_next(latest, pending, NULL, index, &cfg.plan, &plan)) < 0)
		goto out;
	if ((rc = pec_plan_to_json(plan, &json)) == 0) {
		rc = pecgen_with_newline(json, out, len);
		json = NULL;
	}
out:
	free(json);
	pec_plan_free(plan);
	pec_tokens_free(pending);
	pec_composition_free(latest);
	free(vs);
	pec_runcfg_free(&cfg);
	return rc;
}
