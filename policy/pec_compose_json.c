/* pec_compose_json.c - a composition as the manifest JSON of RUN/.pec/manifest/<version>, and back.
 *
 * The writer emits keys in a fixed order so manifests diff cleanly; the reader accepts exactly what
 * the writer emits (it reloads compositions the fs stored) and rejects anything inconsistent, such
 * as units out of order, because pec_composition_find relies on the order.
 */
#include "pec_compose.h"
#include "pec_err.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PEC_MANIFEST_FORMAT 1

static json_t *pec_unit_to_json(const struct pec_comp_unit *u)
{
	json_t *o = json_object(), *files = json_array();

	if (o == NULL || files == NULL)
		goto fail;
	for (size_t i = 0; i < u->n_paths; i++)
		if (json_array_append_new(files, json_string(u->paths[i])) != 0)
			goto fail;
	if (json_object_set_new(o, "layer", json_integer(u->unit.layer)) != 0 ||
	    json_object_set_new(o, "expert", json_integer(u->unit.expert)) != 0 ||
	    json_object_set_new(o, "present", json_boolean(u->present)) != 0 ||
	    json_object_set_new(o, "written", json_boolean(u->written)) != 0 ||
	    json_object_set_new(o, "source", u->source ? json_string(u->source) : json_null()) != 0 ||
	    json_object_set_new(o, "source_step", json_integer(u->source_step)) != 0 ||
	    json_object_set_new(o, "staleness", json_integer(u->staleness)) != 0 ||
	    json_object_set_new(o, "lost_tokens", json_integer((json_int_t)u->lost_tokens)) != 0 ||
	    json_object_set_new(o, "needs_merge", json_boolean(u->needs_merge)) != 0)
		goto fail;
	/* set_new takes files over even when it fails. */
	if (json_object_set_new(o, "files", files) != 0)
		goto fail_o;
	return o;
fail:
	json_decref(files);
fail_o:
	json_decref(o);
	return NULL;
}

int pec_composition_to_json(const struct pec_composition *c, char **out)
{
	json_t *root = json_object(), *layers = json_array(), *units = json_array(), *problems = json_array();
	int rc = -ENOMEM;

	if (root == NULL || layers == NULL || units == NULL || problems == NULL)
		goto out;
	for (size_t i = 0; i < c->n_problems; i++) {
		json_t *p = json_pack("{s:s, s:s}", "path", c->problem_paths[i], "problem", c->problems[i]);

		if (p == NULL || json_array_append_new(problems, p) != 0)
			goto out;
	}
	for (size_t i = 0; i < c->n_layers; i++) {
		json_t *l = json_pack("{s:I, s:I, s:I}", "layer", (json_int_t)c->layers[i].layer, "tokens",
				      (json_int_t)c->layers[i].tokens, "lost", (json_int_t)c->layers[i].lost);

		if (l == NULL || json_array_append_new(layers, l) != 0)
			goto out;
	}
	for (size_t i = 0; i < c->n_units; i++) {
		json_t *u = pec_unit_to_json(&c->units[i]);

		if (u == NULL || json_array_append_new(units, u) != 0)
			goto out;
	}
	if (json_object_set_new(root, "format", json_integer(PEC_MANIFEST_FORMAT)) != 0 ||
	    json_object_set_new(root, "version", json_string(c->name)) != 0 ||
	    json_object_set_new(root, "step", json_integer(c->step)) != 0 ||
	    json_object_set_new(root, "complete", json_boolean(c->complete)) != 0 ||
	    json_object_set_new(root, "missing", json_integer((json_int_t)c->n_missing)) != 0 ||
	    json_object_set_new(root, "top_k", json_integer(c->top_k)) != 0 ||
	    json_object_set_new(root, "tokens_known", json_boolean(c->tokens_known)) != 0 ||
	    json_object_set_new(root, "plt", json_real(c->plt)) != 0)
		goto out;
	rc = json_object_set(root, "problems", problems) | json_object_set(root, "layers", layers) |
	     json_object_set(root, "units", units);
	if (rc != 0) {
		rc = -ENOMEM;
		goto out;
	}
	*out = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
	rc = *out != NULL ? 0 : -ENOMEM;
out:
	json_decref(problems);
	json_decref(layers);
	json_decref(units);
	json_decref(root);
	return rc;
}

/* Integer member of o, or -EINVAL. */
static int pec_json_int(const json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *v)
{
	const json_t *j = json_object_get(o, key);

	if (!json_is_integer(j))
		return -EINVAL;
	*v = json_integer_value(j);
	return (*v < min || *v > max) ? -EINVAL : 0;
}

static int pec_json_bool(const json_t *o, const char *key, bool *v)
{
	const json_t *j = json_object_get(o, key);

	if (!json_is_boolean(j))
		return -EINVAL;
	*v = json_is_true(j);
	return 0;
}

static int pec_unit_from_json(const json_t *o, struct pec_comp_unit *u)
{
	json_int_t layer, expert, sstep, stale, lost;
	const json_t *src = json_object_get(o, "source"), *files = json_object_get(o, "files");

	if (pec_json_int(o, "layer", 0, PEC_MAX_LAYER, &layer) ||
	    pec_json_int(o, "expert", 0, PEC_MAX_EXPERT, &expert) ||
	    pec_json_bool(o, "present", &u->present) || pec_json_bool(o, "written", &u->written) ||
	    pec_json_bool(o, "needs_merge", &u->needs_merge) ||
	    pec_json_int(o, "source_step", -1, INT64_MAX, &sstep) ||
	    pec_json_int(o, "staleness", INT64_MIN, INT64_MAX, &stale) ||
	    pec_json_int(o, "lost_tokens", 0, INT64_MAX, &lost) || !json_is_array(files))
		return -EINVAL;
	u->unit.layer = (uint32_t)layer;
	u->unit.expert = (uint32_t)expert;
	u->source_step = sstep;
	u->staleness = stale;
	u->lost_tokens = (uint64_t)lost;
	if (u->present != json_is_string(src) || (!u->present && !json_is_null(src)))
		return -EINVAL;
	if (u->present && (u->source = strdup(json_string_value(src))) == NULL)
		return -ENOMEM;
	u->paths = calloc(json_array_size(files) + 1, sizeof(*u->paths));
	if (u->paths == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(files); i++) {
		const json_t *f = json_array_get(files, i);

		if (!json_is_string(f))
			return -EINVAL;
		if ((u->paths[i] = strdup(json_string_value(f))) == NULL)
			return -ENOMEM;
		u->n_paths = i + 1;
	}
	return 0;
}

static int pec_composition_from_root(const json_t *root, struct pec_composition *c, char *err, size_t errsz)
{
	json_int_t v, step;
	const json_t *name = json_object_get(root, "version"), *layers = json_object_get(root, "layers");
	const json_t *units = json_object_get(root, "units"), *plt = json_object_get(root, "plt");
	const json_t *problems = json_object_get(root, "problems");
	int rc;

	if (pec_json_int(root, "format", PEC_MANIFEST_FORMAT, PEC_MANIFEST_FORMAT, &v) != 0)
		return pec_err(err, errsz, -EINVAL, "format: only %d is understood", PEC_MANIFEST_FORMAT);
	if (!json_is_string(name) || !json_is_array(layers) || !json_is_array(units) || !json_is_number(plt) ||
	    !json_is_array(problems) ||
	    pec_json_int(root, "step", -1, INT64_MAX, &step) != 0 ||
	    pec_json_bool(root, "complete", &c->complete) != 0 ||
	    pec_json_bool(root, "tokens_known", &c->tokens_known) != 0 ||
	    pec_json_int(root, "top_k", 0, UINT32_MAX, &v) != 0)
		return pec_err(err, errsz, -EINVAL, "a required member is missing or has the wrong type");
	c->top_k = (uint32_t)v;
	c->step = step;
	c->plt = json_number_value(plt);
	if ((c->name = strdup(json_string_value(name))) == NULL)
		return -ENOMEM;
	c->layers = calloc(json_array_size(layers) + 1, sizeof(*c->layers));
	c->units = calloc(json_array_size(units) + 1, sizeof(*c->units));
	if (c->layers == NULL || c->units == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(layers); i++) {
		const json_t *l = json_array_get(layers, i);
		json_int_t layer, tokens, lost;

		if (pec_json_int(l, "layer", 0, PEC_MAX_LAYER, &layer) ||
		    pec_json_int(l, "tokens", 0, INT64_MAX, &tokens) ||
		    pec_json_int(l, "lost", 0, INT64_MAX, &lost) ||
		    (i > 0 && (uint32_t)layer <= c->layers[i - 1].layer))
			return pec_err(err, errsz, -EINVAL, "layers[%zu]: malformed or out of order", i);
		c->layers[i] = (struct pec_comp_layer){ (uint32_t)layer, (uint64_t)tokens, (uint64_t)lost };
		c->n_layers = i + 1;
	}
	for (size_t i = 0; i < json_array_size(units); i++) {
		c->n_units = i + 1;
		rc = pec_unit_from_json(json_array_get(units, i), &c->units[i]);
		if (rc == -ENOMEM)
			return rc;
		if (rc != 0 || (i > 0 && pec_unit_cmp(&c->units[i - 1].unit, &c->units[i].unit) >= 0))
			return pec_err(err, errsz, -EINVAL, "units[%zu]: malformed or out of order", i);
		if (!c->units[i].present)
			c->n_missing++;
	}
	c->problem_paths = calloc(json_array_size(problems) + 1, sizeof(char *));
	c->problems = calloc(json_array_size(problems) + 1, sizeof(char *));
	if (c->problem_paths == NULL || c->problems == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(problems); i++) {
		const json_t *p = json_array_get(problems, i);
		const json_t *path = json_object_get(p, "path"), *what = json_object_get(p, "problem");

		if (!json_is_string(path) || !json_is_string(what))
			return pec_err(err, errsz, -EINVAL, "problems[%zu]: needs path and problem strings", i);
		c->problem_paths[i] = strdup(json_string_value(path));
		c->problems[i] = strdup(json_string_value(what));
		c->n_problems = i + 1;
		if (c->problem_paths[i] == NULL || c->problems[i] == NULL)
			return -ENOMEM;
	}
	if (c->complete != (c->n_missing == 0))
		return pec_err(err, errsz, -EINVAL, "\"complete\" disagrees with the units");
	return 0;
}

int pec_composition_from_json(const char *json, size_t len, struct pec_composition **out, char *err,
			      size_t errsz)
{
	json_error_t jerr;
	json_t *root;
	struct pec_composition *c;
	int rc;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return pec_err(err, errsz, -EINVAL, "not valid JSON: %s", jerr.text);
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		json_decref(root);
		return -ENOMEM;
	}
	rc = json_is_object(root) ? pec_composition_from_root(root, c, err, errsz)
				  : pec_err(err, errsz, -EINVAL, "a manifest is a JSON object");
	json_decref(root);
	if (rc != 0) {
		pec_composition_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int pec_composition_copy(const struct pec_composition *c, struct pec_composition **out)
{
	char *text;
	int rc = pec_composition_to_json(c, &text);

	if (rc != 0)
		return rc;
	/* The manifest round-trips every field (PLT with 17 significant digits, exact for a double),
	 * so the copy goes through it: one encoding to keep right instead of two. */
	rc = pec_composition_from_json(text, strlen(text), out, NULL, 0);
	free(text);
	return rc;
}
