/* pec_safetensors_merge.c - planning a merged safetensors file from a partial round and older copies.
 *
 * The plan is a new header plus pieces that point into the inputs, so the fs can present the merged
 * file as extents over chunks it already stores. Tensors keep their inputs' relative order, which
 * keeps runs from one input adjacent and the piece list short (one piece per contiguous run).
 */
#include "pec_safetensors.h"
#include "pec_err.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void pec_st_merge_free(struct pec_st_merge *m)
{
	if (m == NULL)
		return;
	free(m->header);
	free(m->pieces);
	free(m->units_inherited);
	free(m);
}

/* A tensor chosen for the merged file. */
struct pec_st_pick {
	uint32_t src;
	const struct pec_st_tensor *t;
};

static bool pec_st_unit_in(const struct pec_unit *set, size_t n, struct pec_unit u)
{
	return bsearch(&u, set, n, sizeof(u), pec_unit_cmp) != NULL;
}

static int pec_st_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Chooses the tensors: all of in[0], then inherited expert tensors. Collects the units claimed by each
 * newer input (claimed) and the units actually inherited (m->units_inherited). */
static int pec_st_pick_tensors(const struct pec_st_header *const *in, size_t n, struct pec_st_pick *picks,
			       size_t *n_picks, struct pec_st_merge *m)
{
	struct pec_unit *claimed = NULL, *units;
	const char **names;
	size_t n_claimed = 0, n_units, k = 0;
	int rc = 0;

	/* in[0]'s names, sorted: an older tensor never replaces one of them. Among older inputs a name
	 * cannot repeat unclaimed, since a name determines its unit. */
	names = malloc((in[0]->n_tensors + 1) * sizeof(*names));
	if (names == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < in[0]->n_tensors; i++) {
		picks[k++] = (struct pec_st_pick){ 0, &in[0]->tensors[i] };
		names[i] = in[0]->tensors[i].name;
	}
	qsort(names, in[0]->n_tensors, sizeof(*names), pec_st_name_cmp);
	for (size_t s = 0; s < n; s++) {
		const struct pec_st_header *h = in[s];
		struct pec_unit *grown;

		for (size_t i = 0; s > 0 && i < h->n_tensors; i++) {
			const struct pec_st_tensor *t = &h->tensors[i];

			if (!t->is_expert || pec_st_unit_in(claimed, n_claimed, t->unit) ||
			    bsearch(&t->name, names, in[0]->n_tensors, sizeof(*names), pec_st_name_cmp) != NULL)
				continue;
			picks[k++] = (struct pec_st_pick){ (uint32_t)s, t };
			m->n_inherited++;
			if (m->n_units_inherited == 0 ||
			    pec_unit_cmp(&m->units_inherited[m->n_units_inherited - 1], &t->unit) != 0) {
				grown = realloc(m->units_inherited, (m->n_units_inherited + 1) * sizeof(*grown));
				if (grown == NULL) {
					rc = -ENOMEM;
					goto out;
				}
				m->units_inherited = grown;
				m->units_inherited[m->n_units_inherited++] = t->unit;
			}
		}
		/* Units of this input now belong to it: older inputs may not contribute to them. */
		rc = pec_st_units(h, &units, &n_units);
		if (rc != 0)
			goto out;
		grown = realloc(claimed, (n_claimed + n_units + 1) * sizeof(*grown));
		if (grown == NULL) {
			free(units);
			rc = -ENOMEM;
			goto out;
		}
		claimed = grown;
		if (n_units > 0)
			memcpy(claimed + n_claimed, units, n_units * sizeof(*units));
		n_claimed += n_units;
		free(units);
		qsort(claimed, n_claimed, sizeof(*claimed), pec_unit_cmp);
	}
	if (m->n_units_inherited > 0)
		qsort(m->units_inherited, m->n_units_inherited, sizeof(*m->units_inherited), pec_unit_cmp);
	{
		size_t w = 0;

		for (size_t i = 0; i < m->n_units_inherited; i++)
			if (w == 0 || pec_unit_cmp(&m->units_inherited[w - 1], &m->units_inherited[i]) != 0)
				m->units_inherited[w++] = m->units_inherited[i];
		m->n_units_inherited = w;
	}
	*n_picks = k;
out:
	free(claimed);
	free(names);
	return rc;
}

/* Builds the header JSON for picks laid out back to back; returns the text (malloc'd) or NULL. */
static char *pec_st_header_json(const struct pec_st_header *first, const struct pec_st_pick *picks, size_t n)
{
	json_t *root = json_object(), *meta;
	uint64_t at = 0;
	char *text = NULL;

	if (root == NULL)
		return NULL;
	if (first->n_meta > 0) {
		meta = json_object();
		if (json_object_set_new(root, "__metadata__", meta) != 0)
			goto out;
		for (size_t i = 0; i < first->n_meta; i++)
			if (json_object_set_new(meta, first->meta_keys[i], json_string(first->meta_values[i])) != 0)
				goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pec_st_tensor *t = picks[i].t;
		uint64_t len = t->end - t->begin;
		json_t *shape = json_array(), *o;

		for (uint32_t d = 0; shape != NULL && d < t->ndim; d++)
			if (json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) != 0) {
				json_decref(shape);
				shape = NULL;
			}
		o = json_pack("{s:s, s:o, s:[I, I]}", "dtype", t->dtype, "shape", shape, "data_offsets",
			      (json_int_t)at, (json_int_t)(at + len));
		if (o == NULL || json_object_set_new(root, t->name, o) != 0)
			goto out;
		at += len;
	}
	text = json_dumps(root, JSON_COMPACT);
out:
	json_decref(root);
	return text;
}

int pec_st_plan_merge(const struct pec_st_header *const *in, size_t n, struct pec_st_merge **out,
		      char *err, size_t errsz)
{
	struct pec_st_merge *m = NULL;
	struct pec_st_pick *picks = NULL;
	size_t total = 0, n_picks = 0, json_len, padded;
	char *json = NULL;
	uint64_t at;
	int rc = -ENOMEM;

	if (in == NULL || n == 0 || out == NULL)
		return pec_err(err, errsz, -EINVAL, "no input to merge");
	for (size_t s = 0; s < n; s++)
		total += in[s]->n_tensors;
	m = calloc(1, sizeof(*m));
	picks = calloc(total + 1, sizeof(*picks));
	if (m == NULL || picks == NULL)
		goto out;
	rc = pec_st_pick_tensors(in, n, picks, &n_picks, m);
	if (rc != 0)
		goto out;
	rc = -ENOMEM;
	json = pec_st_header_json(in[0], picks, n_picks);
	if (json == NULL)
		goto out;
	/* Pad with spaces so the data section starts 8-byte aligned, as the reference writer does. */
	json_len = strlen(json);
	padded = (8 + json_len + 7) / 8 * 8;
	if (padded - 8 > PEC_ST_MAX_HEADER) {
		rc = pec_err(err, errsz, -EFBIG, "merged header would be %zu bytes, over the limit", padded - 8);
		goto out;
	}
	m->header = malloc(padded);
	m->pieces = calloc(n_picks + 1, sizeof(*m->pieces));
	if (m->header == NULL || m->pieces == NULL)
		goto out;
	for (int i = 0; i < 8; i++)
		m->header[i] = (uint8_t)((uint64_t)(padded - 8) >> (8 * i));
	memcpy(m->header + 8, json, json_len);
	memset(m->header + 8 + json_len, ' ', padded - 8 - json_len);
	m->header_len = padded;
	m->n_tensors = n_picks;

	at = padded;
	for (size_t i = 0; i < n_picks; i++) {
		const struct pec_st_tensor *t = picks[i].t;
		uint64_t len = t->end - t->begin, src_off = in[picks[i].src]->data_start + t->begin;
		struct pec_st_piece *last = m->n_pieces > 0 ? &m->pieces[m->n_pieces - 1] : NULL;

		if (len == 0)
			continue;
		if (last != NULL && last->src == picks[i].src && last->src_off + last->len == src_off)
			last->len += len;
		else
			m->pieces[m->n_pieces++] = (struct pec_st_piece){ at, len, picks[i].src, src_off };
		at += len;
	}
	m->file_size = at;
	*out = m;
	m = NULL;
	rc = 0;
out:
	free(json);
	free(picks);
	pec_st_merge_free(m);
	return rc;
}
