/* pec_tokens.c - strict parsing and folding of the trainer's token reports (.pec/tokens).
 *
 * Uses jansson for the JSON grammar and checks every value by hand: a report is all or nothing, so a
 * malformed one changes nothing. Unknown keys are rejected too, because a misspelt key ("layer" for
 * "layers") would otherwise silently report nothing.
 */
#include "pec_tokens.h"
#include "pec_err.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void pec_tokens_free(struct pec_tokens *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_layers; i++)
		free(t->layers[i].counts);
	free(t->layers);
	free(t);
}

/* Reads a non-negative JSON integer no larger than max. 0 or -EINVAL. */
static int pec_tokens_uint(const json_t *v, uint64_t max, uint64_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return -EINVAL;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max)
		return -EINVAL;
	*out = (uint64_t)i;
	return 0;
}

static int pec_tokens_layer_cmp(const void *a, const void *b)
{
	const struct pec_tokens_layer *x = a, *y = b;

	return x->layer < y->layer ? -1 : x->layer > y->layer;
}

/* Parses one element of "layers" into *l (counts allocated). 0, -EINVAL or -ENOMEM. */
static int pec_tokens_parse_layer(const json_t *obj, size_t idx, uint32_t top_k,
				  struct pec_tokens_layer *l, char *err, size_t errsz)
{
	const char *key;
	json_t *val, *experts;
	uint64_t v, sum = 0;
	size_t n;

	if (!json_is_object(obj))
		return pec_err(err, errsz, -EINVAL, "layers[%zu]: not an object", idx);
	json_object_foreach((json_t *)obj, key, val) {
		if (strcmp(key, "layer") != 0 && strcmp(key, "tokens") != 0 && strcmp(key, "experts") != 0)
			return pec_err(err, errsz, -EINVAL, "layers[%zu]: unknown key \"%s\"", idx, key);
	}
	if (pec_tokens_uint(json_object_get(obj, "layer"), PEC_MAX_LAYER, &v) != 0)
		return pec_err(err, errsz, -EINVAL, "layers[%zu].layer: an integer 0..%u is required",
			       idx, PEC_MAX_LAYER);
	l->layer = (uint32_t)v;
	if (pec_tokens_uint(json_object_get(obj, "tokens"), PEC_TOKENS_MAX_COUNT, &l->tokens) != 0)
		return pec_err(err, errsz, -EINVAL, "layers[%zu].tokens: an integer 0..2^53 is required", idx);
	experts = json_object_get(obj, "experts");
	n = json_is_array(experts) ? json_array_size(experts) : 0;
	if (n == 0 || n > PEC_TOKENS_MAX_EXPERTS)
		return pec_err(err, errsz, -EINVAL, "layers[%zu].experts: an array of 1..%u counts is required",
			       idx, PEC_TOKENS_MAX_EXPERTS);
	if (top_k > n)
		return pec_err(err, errsz, -EINVAL, "layers[%zu]: top_k %u exceeds its %zu experts", idx,
			       top_k, n);
	l->counts = calloc(n, sizeof(*l->counts));
	if (l->counts == NULL)
		return -ENOMEM;
	l->n_experts = (uint32_t)n;
	for (size_t e = 0; e < n; e++) {
		if (pec_tokens_uint(json_array_get(experts, e), PEC_TOKENS_MAX_COUNT, &l->counts[e]) != 0)
			return pec_err(err, errsz, -EINVAL,
				       "layers[%zu].experts[%zu]: an integer 0..2^53 is required", idx, e);
		sum += l->counts[e];
		/* tokens <= 2^53 and top_k <= 64, so the product cannot overflow; checking as we go
		 * keeps sum bounded too. */
		if (sum > l->tokens * top_k)
			return pec_err(err, errsz, -EINVAL,
				       "layer %u: expert counts add up to more than tokens * top_k (%llu)",
				       l->layer, (unsigned long long)(l->tokens * top_k));
	}
	return 0;
}

int pec_tokens_parse(const char *json, size_t len, struct pec_tokens **out, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root = NULL, *layers, *val;
	struct pec_tokens *t = NULL;
	const char *key;
	uint64_t v;
	int rc = -EINVAL;

	if (json == NULL || out == NULL)
		return pec_err(err, errsz, -EINVAL, "no input");
	if (len > PEC_TOKENS_MAX_BYTES)
		return pec_err(err, errsz, -EINVAL, "report is %zu bytes, over the %u byte limit", len,
			       PEC_TOKENS_MAX_BYTES);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return pec_err(err, errsz, -EINVAL, "not valid JSON: %s (line %d, column %d)", jerr.text,
			       jerr.line, jerr.column);
	if (!json_is_object(root)) {
		pec_err(err, errsz, -EINVAL, "the report must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, val) {
		if (strcmp(key, "top_k") != 0 && strcmp(key, "step") != 0 && strcmp(key, "layers") != 0) {
			pec_err(err, errsz, -EINVAL, "unknown key \"%s\"", key);
			goto out;
		}
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (pec_tokens_uint(json_object_get(root, "top_k"), PEC_TOKENS_MAX_TOPK, &v) != 0 || v == 0) {
		pec_err(err, errsz, -EINVAL, "top_k: an integer 1..%u is required", PEC_TOKENS_MAX_TOPK);
		goto out;
	}
	t->top_k = (uint32_t)v;
	t->step = -1;
	val = json_object_get(root, "step");
	if (val != NULL) {
		if (pec_tokens_uint(val, INT64_MAX, &v) != 0) {
			pec_err(err, errsz, -EINVAL, "step: a non-negative integer is required");
			goto out;
		}
		t->step = (int64_t)v;
	}
	layers = json_object_get(root, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0 ||
	    json_array_size(layers) > PEC_TOKENS_MAX_LAYERS) {
		pec_err(err, errsz, -EINVAL, "layers: an array of 1..%u layers is required",
			PEC_TOKENS_MAX_LAYERS);
		goto out;
	}
	t->layers = calloc(json_array_size(layers), sizeof(*t->layers));
	if (t->layers == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(layers); i++) {
		t->n_layers = i + 1; /* so pec_tokens_free releases this layer's counts on failure */
		rc = pec_tokens_parse_layer(json_array_get(layers, i), i, t->top_k, &t->layers[i], err, errsz);
		if (rc != 0)
			goto out;
	}
	qsort(t->layers, t->n_layers, sizeof(*t->layers), pec_tokens_layer_cmp);
	for (size_t i = 1; i < t->n_layers; i++) {
		if (t->layers[i].layer == t->layers[i - 1].layer) {
			rc = pec_err(err, errsz, -EINVAL, "layer %u is listed twice", t->layers[i].layer);
			goto out;
		}
	}
	*out = t;
	t = NULL;
	rc = 0;
out:
	pec_tokens_free(t);
	json_decref(root);
	return rc;
}

const struct pec_tokens_layer *pec_tokens_find(const struct pec_tokens *t, uint32_t layer)
{
	size_t lo = 0, hi = t != NULL ? t->n_layers : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->layers[mid].layer == layer)
			return &t->layers[mid];
		if (t->layers[mid].layer < layer)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint64_t pec_tokens_count(const struct pec_tokens *t, struct pec_unit u)
{
	const struct pec_tokens_layer *l = pec_tokens_find(t, u.layer);

	return (l != NULL && u.expert < l->n_experts) ? l->counts[u.expert] : 0;
}

int pec_tokens_layout(const struct pec_tokens *t, struct pec_layout *lo)
{
	for (size_t i = 0; t != NULL && i < t->n_layers; i++) {
		struct pec_unit last = { t->layers[i].layer, t->layers[i].n_experts - 1 };
		int rc = pec_layout_add(lo, last);

		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Adds layer src into dst (dst->counts is resized to the larger expert count). */
static int pec_tokens_add_layer(struct pec_tokens_layer *dst, const struct pec_tokens_layer *src)
{
	if (src->n_experts > dst->n_experts) {
		uint64_t *grown = realloc(dst->counts, src->n_experts * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		memset(grown + dst->n_experts, 0, (src->n_experts - dst->n_experts) * sizeof(*grown));
		dst->counts = grown;
		dst->n_experts = src->n_experts;
	}
	dst->tokens += src->tokens;
	if (dst->tokens > PEC_TOKENS_MAX_COUNT)
		return -ERANGE;
	for (uint32_t e = 0; e < src->n_experts; e++) {
		dst->counts[e] += src->counts[e];
		if (dst->counts[e] > PEC_TOKENS_MAX_COUNT)
			return -ERANGE;
	}
	return 0;
}

int pec_tokens_sum(const struct pec_tokens *a, const struct pec_tokens *b, struct pec_tokens **out)
{
	const struct pec_tokens *parts[2] = { a, b };
	struct pec_tokens *t;
	size_t cap = (a ? a->n_layers : 0) + (b ? b->n_layers : 0);
	int rc = 0;

	*out = NULL;
	if (a == NULL && b == NULL)
		return 0;
	if (a != NULL && b != NULL && a->top_k != b->top_k)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->layers = calloc(cap, sizeof(*t->layers))) == NULL) {
		free(t);
		return -ENOMEM;
	}
	t->step = -1;
	for (int p = 0; p < 2; p++) {
		if (parts[p] == NULL)
			continue;
		t->top_k = parts[p]->top_k;
		if (parts[p]->step >= 0)
			t->step = parts[p]->step;
		for (size_t i = 0; i < parts[p]->n_layers; i++) {
			const struct pec_tokens_layer *src = &parts[p]->layers[i];
			struct pec_tokens_layer *dst = (struct pec_tokens_layer *)pec_tokens_find(t, src->layer);

			if (dst == NULL) {
				/* Insert in order so pec_tokens_find keeps working. */
				size_t pos = 0;

				while (pos < t->n_layers && t->layers[pos].layer < src->layer)
					pos++;
				memmove(&t->layers[pos + 1], &t->layers[pos],
					(t->n_layers - pos) * sizeof(*t->layers));
				memset(&t->layers[pos], 0, sizeof(*t->layers));
				t->layers[pos].layer = src->layer;
				t->n_layers++;
				dst = &t->layers[pos];
			}
			rc = pec_tokens_add_layer(dst, src);
			if (rc != 0)
				goto fail;
		}
	}
	*out = t;
	return 0;
fail:
	pec_tokens_free(t);
	return rc;
}
