/* pec_safetensors.c - parsing and validating safetensors headers, and finding their expert tensors.
 *
 * Validation is as strict as the reference loader's: a header it would refuse is never merged (the fs
 * keeps such a file as written and reports the reason), so a merged file is always loadable. Tensor
 * info objects may carry extra members, which are ignored, as the reference loader does.
 */
#include "pec_safetensors.h"
#include "pec_err.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* More dimensions than any framework produces; bounds the work a hostile header can ask for. */
#define PEC_ST_MAX_NDIM 64u

static const struct {
	const char *name;
	uint32_t size;
} pec_st_dtypes[] = {
	{ "BOOL", 1 }, { "U8", 1 },  { "I8", 1 },  { "F8_E5M2", 1 }, { "F8_E4M3", 1 }, { "F8_E8M0", 1 },
	{ "I16", 2 },  { "U16", 2 }, { "F16", 2 }, { "BF16", 2 },    { "I32", 4 },     { "U32", 4 },
	{ "F32", 4 },  { "I64", 8 }, { "U64", 8 }, { "F64", 8 },     { "C64", 8 },
};

uint32_t pec_st_dtype_size(const char *dtype)
{
	for (size_t i = 0; dtype != NULL && i < sizeof(pec_st_dtypes) / sizeof(pec_st_dtypes[0]); i++)
		if (strcmp(dtype, pec_st_dtypes[i].name) == 0)
			return pec_st_dtypes[i].size;
	return 0;
}

void pec_st_free(struct pec_st_header *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n_tensors; i++) {
		free(h->tensors[i].name);
		free(h->tensors[i].dtype);
		free(h->tensors[i].shape);
	}
	for (size_t i = 0; i < h->n_meta; i++) {
		free(h->meta_keys[i]);
		free(h->meta_values[i]);
	}
	free(h->tensors);
	free(h->meta_keys);
	free(h->meta_values);
	free(h);
}

int pec_st_header_len(const uint8_t prefix[8], uint64_t file_size, uint64_t *json_len, char *err,
		      size_t errsz)
{
	uint64_t n = 0;

	if (file_size < 8)
		return pec_err(err, errsz, -EINVAL, "file is %llu bytes, shorter than the 8-byte header length",
			       (unsigned long long)file_size);
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | prefix[i];
	if (n > PEC_ST_MAX_HEADER)
		return pec_err(err, errsz, -EFBIG, "header length %llu is over the %llu byte limit",
			       (unsigned long long)n, PEC_ST_MAX_HEADER);
	if (n < 2)
		return pec_err(err, errsz, -EINVAL, "header length %llu is too small for a JSON object",
			       (unsigned long long)n);
	if (n > file_size - 8)
		return pec_err(err, errsz, -EINVAL, "header length %llu runs past the end of the %llu byte file",
			       (unsigned long long)n, (unsigned long long)file_size);
	*json_len = n;
	return 0;
}

/* Reads a non-negative JSON integer. */
static bool pec_st_uint(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static int pec_st_parse_meta(json_t *meta, struct pec_st_header *h, char *err, size_t errsz)
{
	const char *key;
	json_t *val;
	size_t n = json_is_object(meta) ? json_object_size(meta) : 0;

	if (!json_is_object(meta))
		return pec_err(err, errsz, -EINVAL, "__metadata__ is not an object");
	h->meta_keys = calloc(n + 1, sizeof(char *));
	h->meta_values = calloc(n + 1, sizeof(char *));
	if (h->meta_keys == NULL || h->meta_values == NULL)
		return -ENOMEM;
	json_object_foreach(meta, key, val) {
		if (!json_is_string(val))
			return pec_err(err, errsz, -EINVAL, "__metadata__ \"%s\" is not a string", key);
		h->meta_keys[h->n_meta] = strdup(key);
		h->meta_values[h->n_meta] = strdup(json_string_value(val));
		h->n_meta++;
		if (h->meta_keys[h->n_meta - 1] == NULL || h->meta_values[h->n_meta - 1] == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Fills t from one tensor entry; checks the byte count against dtype and shape. */
static int pec_st_parse_tensor(const char *name, json_t *o, struct pec_st_tensor *t, char *err, size_t errsz)
{
	json_t *dtype = json_object_get(o, "dtype"), *shape = json_object_get(o, "shape");
	json_t *offs = json_object_get(o, "data_offsets");
	uint64_t numel = 1, size;

	if ((t->name = strdup(name)) == NULL)
		return -ENOMEM;
	if (!json_is_object(o) || !json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs))
		return pec_err(err, errsz, -EINVAL, "tensor \"%s\": needs dtype, shape and data_offsets", name);
	if ((t->dtype = strdup(json_string_value(dtype))) == NULL)
		return -ENOMEM;
	size = pec_st_dtype_size(t->dtype);
	if (size == 0)
		return pec_err(err, errsz, -EINVAL, "tensor \"%s\": unknown dtype \"%s\"", name, t->dtype);
	if (json_array_size(shape) > PEC_ST_MAX_NDIM)
		return pec_err(err, errsz, -EINVAL, "tensor \"%s\": more than %u dimensions", name, PEC_ST_MAX_NDIM);
	t->shape = calloc(json_array_size(shape) + 1, sizeof(*t->shape));
	if (t->shape == NULL)
		return -ENOMEM;
	t->ndim = (uint32_t)json_array_size(shape);
	for (uint32_t d = 0; d < t->ndim; d++) {
		if (!pec_st_uint(json_array_get(shape, d), &t->shape[d]))
			return pec_err(err, errsz, -EINVAL, "tensor \"%s\": shape[%u] is not a non-negative integer",
				       name, d);
		if (t->shape[d] != 0 && numel > UINT64_MAX / t->shape[d])
			return pec_err(err, errsz, -EINVAL, "tensor \"%s\": shape overflows", name);
		numel *= t->shape[d];
	}
	if (json_array_size(offs) != 2 || !pec_st_uint(json_array_get(offs, 0), &t->begin) ||
	    !pec_st_uint(json_array_get(offs, 1), &t->end) || t->end < t->begin)
		return pec_err(err, errsz, -EINVAL, "tensor \"%s\": data_offsets must be [begin, end], begin <= end",
			       name);
	if (numel > UINT64_MAX / size || numel * size != t->end - t->begin)
		return pec_err(err, errsz, -EINVAL,
			       "tensor \"%s\": data_offsets span %llu bytes, but %s x shape needs %s%llu", name,
			       (unsigned long long)(t->end - t->begin), t->dtype,
			       numel > UINT64_MAX / size ? "more than " : "",
			       (unsigned long long)(numel > UINT64_MAX / size ? UINT64_MAX : numel * size));
	return 0;
}

static int pec_st_tensor_cmp(const void *a, const void *b)
{
	const struct pec_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The tensors must tile the data section exactly: no overlap, no gap, nothing past or after it. */
static int pec_st_check_tiling(const struct pec_st_header *h, char *err, size_t errsz)
{
	uint64_t at = 0;

	for (size_t i = 0; i < h->n_tensors; i++) {
		const struct pec_st_tensor *t = &h->tensors[i];

		if (t->end > h->data_len)
			return pec_err(err, errsz, -EINVAL,
				       "tensor \"%s\": data_offsets [%llu, %llu] run past the %llu byte data section",
				       t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
				       (unsigned long long)h->data_len);
		if (t->begin < at)
			return pec_err(err, errsz, -EINVAL, "tensor \"%s\" overlaps the tensor before it", t->name);
		if (t->begin > at)
			return pec_err(err, errsz, -EINVAL, "gap of %llu bytes before tensor \"%s\"",
				       (unsigned long long)(t->begin - at), t->name);
		at = t->end;
	}
	if (at != h->data_len)
		return pec_err(err, errsz, -EINVAL, "%llu trailing bytes after the last tensor",
			       (unsigned long long)(h->data_len - at));
	return 0;
}

int pec_st_parse(const char *json, size_t json_len, uint64_t file_size, struct pec_st_header **out,
		 char *err, size_t errsz)
{
	struct pec_st_header *h = NULL;
	json_error_t jerr;
	json_t *root = NULL, *val;
	const char *key;
	int rc;

	if (json == NULL || out == NULL)
		return pec_err(err, errsz, -EINVAL, "no header");
	if (json_len > PEC_ST_MAX_HEADER)
		return pec_err(err, errsz, -EFBIG, "header of %zu bytes is over the %llu byte limit", json_len,
			       PEC_ST_MAX_HEADER);
	if (json_len < 2 || file_size < 8 || json_len > file_size - 8)
		return pec_err(err, errsz, -EINVAL, "header length %zu does not fit the %llu byte file", json_len,
			       (unsigned long long)file_size);
	if (json[0] != '{')
		return pec_err(err, errsz, -EINVAL, "header does not start with '{'");
	root = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return pec_err(err, errsz, -EINVAL, "header is not valid JSON: %s (column %d)", jerr.text,
			       jerr.column);
	rc = -ENOMEM;
	h = calloc(1, sizeof(*h));
	if (h == NULL || (h->tensors = calloc(json_object_size(root) + 1, sizeof(*h->tensors))) == NULL)
		goto out;
	h->json_len = json_len;
	h->data_start = 8 + (uint64_t)json_len;
	h->data_len = file_size - h->data_start;
	json_object_foreach(root, key, val) {
		if (strcmp(key, "__metadata__") == 0) {
			rc = pec_st_parse_meta(val, h, err, errsz);
		} else {
			h->n_tensors++;
			rc = pec_st_parse_tensor(key, val, &h->tensors[h->n_tensors - 1], err, errsz);
		}
		if (rc != 0)
			goto out;
	}
	qsort(h->tensors, h->n_tensors, sizeof(*h->tensors), pec_st_tensor_cmp);
	rc = pec_st_check_tiling(h, err, errsz);
	if (rc != 0)
		goto out;
	*out = h;
	h = NULL;
out:
	pec_st_free(h);
	json_decref(root);
	return rc;
}

int pec_st_classify(struct pec_st_header *h, const struct pec_patterns *p)
{
	for (size_t i = 0; i < h->n_tensors; i++) {
		int rc = pec_expert_match_tensor(p, h->tensors[i].name, &h->tensors[i].unit);

		if (rc < 0)
			return rc;
		h->tensors[i].is_expert = rc == 1;
	}
	return 0;
}

int pec_st_units(const struct pec_st_header *h, struct pec_unit **units, size_t *n)
{
	struct pec_unit *u = NULL;
	size_t k = 0;

	*units = NULL;
	*n = 0;
	for (size_t i = 0; i < h->n_tensors; i++)
		k += h->tensors[i].is_expert;
	if (k == 0)
		return 0;
	u = malloc(k * sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	k = 0;
	for (size_t i = 0; i < h->n_tensors; i++)
		if (h->tensors[i].is_expert)
			u[k++] = h->tensors[i].unit;
	qsort(u, k, sizeof(*u), pec_unit_cmp);
	*n = 0;
	for (size_t i = 0; i < k; i++)
		if (*n == 0 || pec_unit_cmp(&u[*n - 1], &u[i]) != 0)
			u[(*n)++] = u[i];
	*units = u;
	return 0;
}
