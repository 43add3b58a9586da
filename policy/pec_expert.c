/* pec_expert.c - matching file paths and tensor names to expert units, and model layouts.
 *
 * The matcher is a small backtracking glob over the pattern syntax in pec_expert.h. Patterns are short
 * (PEC_PATTERN_MAX) and subjects are file or tensor names, so backtracking stays cheap; numbers are
 * tried longest first so "expert_12_x" reads as expert 12, never 1.
 */
#include "pec_expert.h"
#include "pec_err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const pec_default_file[] = { "layer_{L}_expert_{E}_*", "expert_{E}_*" };
static const char *const pec_default_tensor[] = { "model.layers.{L}.mlp.experts.{E}.*",
						  "model.layers.{L}.block_sparse_moe.experts.{E}.*" };
static const struct pec_patterns pec_defaults = {
	.file = pec_default_file,
	.n_file = 2,
	.tensor = pec_default_tensor,
	.n_tensor = 2,
};

const struct pec_patterns *pec_patterns_default(void)
{
	return &pec_defaults;
}

int pec_unit_cmp(const void *a, const void *b)
{
	const struct pec_unit *x = a, *y = b;

	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	if (x->expert != y->expert)
		return x->expert < y->expert ? -1 : 1;
	return 0;
}

/* Checks the pattern's shape: length, one {E}, at most one {L}, no other braces, and no two number
 * tokens side by side (their digits could not be told apart). 0 or -EINVAL. */
static int pec_pattern_check(const char *pat)
{
	size_t len, n_l = 0, n_e = 0;
	bool prev_number = false;

	if (pat == NULL)
		return -EINVAL;
	len = strlen(pat);
	if (len == 0 || len > PEC_PATTERN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len;) {
		if (strncmp(pat + i, "{L}", 3) == 0 || strncmp(pat + i, "{E}", 3) == 0) {
			if (prev_number)
				return -EINVAL;
			if (pat[i + 1] == 'L')
				n_l++;
			else
				n_e++;
			prev_number = true;
			i += 3;
			continue;
		}
		if (pat[i] == '{' || pat[i] == '}')
			return -EINVAL;
		prev_number = false;
		i++;
	}
	return (n_e == 1 && n_l <= 1) ? 0 : -EINVAL;
}

/* Recursive matcher over a checked pattern. Fills layer/expert as it binds them. */
static bool pec_glob(const char *p, const char *s, struct pec_unit *u)
{
	while (*p != '\0') {
		if (*p == '*') {
			/* Try every split, shortest first; a star never crosses '/'. */
			for (const char *t = s;; t++) {
				if (pec_glob(p + 1, t, u))
					return true;
				if (*t == '\0' || *t == '/')
					return false;
			}
		}
		if (p[0] == '{' && (p[1] == 'L' || p[1] == 'E')) {
			size_t n = 0;
			uint32_t max = p[1] == 'L' ? PEC_MAX_LAYER : PEC_MAX_EXPERT;

			while (s[n] >= '0' && s[n] <= '9' && n < 10)
				n++;
			for (; n > 0; n--) {
				uint64_t v = 0;

				for (size_t i = 0; i < n; i++)
					v = v * 10 + (uint64_t)(s[i] - '0');
				if (v > max)
					continue;
				if (pec_glob(p + 3, s + n, u)) {
					if (p[1] == 'L')
						u->layer = (uint32_t)v;
					else
						u->expert = (uint32_t)v;
					return true;
				}
			}
			return false;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

int pec_pattern_match(const char *pattern, const char *subject, struct pec_unit *out)
{
	struct pec_unit u = { 0, 0 };

	if (pec_pattern_check(pattern) != 0)
		return -EINVAL;
	if (subject == NULL || !pec_glob(pattern, subject, &u))
		return 0;
	if (out != NULL)
		*out = u;
	return 1;
}

int pec_patterns_validate(const struct pec_patterns *p, char *err, size_t errsz)
{
	if (p == NULL)
		return pec_err(err, errsz, -EINVAL, "no patterns");
	for (size_t i = 0; i < p->n_file; i++)
		if (pec_pattern_check(p->file[i]) != 0)
			return pec_err(err, errsz, -EINVAL,
				       "file pattern \"%s\": needs one {E}, at most one {L}, no other braces, "
				       "at most %u bytes", p->file[i] ? p->file[i] : "(null)", PEC_PATTERN_MAX);
	for (size_t i = 0; i < p->n_tensor; i++)
		if (pec_pattern_check(p->tensor[i]) != 0)
			return pec_err(err, errsz, -EINVAL,
				       "tensor pattern \"%s\": needs one {E}, at most one {L}, no other braces, "
				       "at most %u bytes", p->tensor[i] ? p->tensor[i] : "(null)", PEC_PATTERN_MAX);
	return 0;
}

static int pec_match_list(const char *const *pats, size_t n, const char *subject, const char *whole,
			  struct pec_unit *out)
{
	for (size_t i = 0; i < n; i++) {
		const char *s = strchr(pats[i], '/') != NULL ? whole : subject;
		int rc = pec_pattern_match(pats[i], s, out);

		if (rc != 0)
			return rc;
	}
	return 0;
}

int pec_expert_match_path(const struct pec_patterns *p, const char *relpath, struct pec_unit *out)
{
	const char *base;

	if (p == NULL || relpath == NULL)
		return -EINVAL;
	base = strrchr(relpath, '/');
	base = base != NULL ? base + 1 : relpath;
	return pec_match_list(p->file, p->n_file, base, relpath, out);
}

int pec_expert_match_tensor(const struct pec_patterns *p, const char *tensor, struct pec_unit *out)
{
	if (p == NULL || tensor == NULL)
		return -EINVAL;
	return pec_match_list(p->tensor, p->n_tensor, tensor, tensor, out);
}

long pec_layout_find(const struct pec_layout *lo, uint32_t layer)
{
	size_t lo_i = 0, hi = lo != NULL ? lo->n_layers : 0;

	while (lo_i < hi) {
		size_t mid = lo_i + (hi - lo_i) / 2;

		if (lo->layers[mid].layer == layer)
			return (long)mid;
		if (lo->layers[mid].layer < layer)
			lo_i = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Ensures the layer exists with at least n experts. */
static int pec_layout_raise(struct pec_layout *lo, uint32_t layer, uint32_t n)
{
	long at = pec_layout_find(lo, layer);
	struct pec_layout_layer *grown;
	size_t pos = 0;

	if (at >= 0) {
		if (lo->layers[at].n_experts < n)
			lo->layers[at].n_experts = n;
		return 0;
	}
	grown = realloc(lo->layers, (lo->n_layers + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	lo->layers = grown;
	while (pos < lo->n_layers && lo->layers[pos].layer < layer)
		pos++;
	memmove(&lo->layers[pos + 1], &lo->layers[pos], (lo->n_layers - pos) * sizeof(*grown));
	lo->layers[pos].layer = layer;
	lo->layers[pos].n_experts = n;
	lo->n_layers++;
	return 0;
}

int pec_layout_add(struct pec_layout *lo, struct pec_unit u)
{
	return pec_layout_raise(lo, u.layer, u.expert + 1);
}

int pec_layout_merge(struct pec_layout *lo, const struct pec_layout *other)
{
	if (other == NULL)
		return 0;
	for (size_t i = 0; i < other->n_layers; i++) {
		int rc = pec_layout_raise(lo, other->layers[i].layer, other->layers[i].n_experts);

		if (rc != 0)
			return rc;
	}
	return 0;
}

size_t pec_layout_units(const struct pec_layout *lo)
{
	size_t n = 0;

	for (size_t i = 0; lo != NULL && i < lo->n_layers; i++)
		n += lo->layers[i].n_experts;
	return n;
}

void pec_layout_free(struct pec_layout *lo)
{
	if (lo == NULL)
		return;
	free(lo->layers);
	lo->layers = NULL;
	lo->n_layers = 0;
}
