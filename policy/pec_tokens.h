/* pec_tokens.h - the token counts a trainer reports in RUN/.pec/tokens: for each MoE layer, how many
 * tokens the layer processed and how many were routed to each expert since the last version. The JSON
 * schema is in policy/PEC.md; parsing is strict, because these numbers steer which experts are saved.
 * Pure: no I/O, no globals. Results are heap-allocated and freed with pec_tokens_free.
 */
#ifndef PECFS_PEC_TOKENS_H
#define PECFS_PEC_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "pec_expert.h"

/* Limits on accepted input: anything beyond them is -EINVAL. */
#define PEC_TOKENS_MAX_BYTES (16u * 1024 * 1024) /* size of the JSON text */
#define PEC_TOKENS_MAX_LAYERS 4096u
#define PEC_TOKENS_MAX_EXPERTS 4096u             /* per layer */
#define PEC_TOKENS_MAX_TOPK 64u
#define PEC_TOKENS_MAX_COUNT 9007199254740992ull /* 2^53: every JSON reader keeps it exact */

struct pec_tokens_layer {
	uint32_t layer;
	uint64_t tokens;    /* tokens the layer processed in the interval */
	uint32_t n_experts;
	uint64_t *counts;   /* [n_experts]: tokens routed to each expert (assignments) */
};

struct pec_tokens {
	uint32_t top_k;     /* experts each token is routed to */
	int64_t step;       /* training step the counts were taken at, -1 when not given */
	size_t n_layers;
	struct pec_tokens_layer *layers; /* sorted by layer, no duplicates */
};

/* Parses a report (json[0..len), need not be NUL-terminated). On success *out is a new report.
 * Malformed input, unknown keys, wrong types, duplicates, negative or fractional numbers, values
 * over the limits above, an expert total above tokens * top_k, or top_k above a layer's expert count
 * give -EINVAL with a one-line reason in err and leave *out untouched. -ENOMEM on allocation failure. */
int pec_tokens_parse(const char *json, size_t len, struct pec_tokens **out, char *err, size_t errsz);

/* Tokens routed to unit u in this report; 0 when the report does not cover u. */
uint64_t pec_tokens_count(const struct pec_tokens *t, struct pec_unit u);

/* The per-layer entry for layer, or NULL. */
const struct pec_tokens_layer *pec_tokens_find(const struct pec_tokens *t, uint32_t layer);

/* A new report that is the sum of a and b (either may be NULL; both NULL gives *out = NULL): counts
 * add up per (layer, expert), layers and experts present in either appear; top_k and step are b's
 * when b has them. -EINVAL when top_k differs, -ERANGE when a sum passes PEC_TOKENS_MAX_COUNT,
 * -ENOMEM. Used to fold the reports of several intervals into one. */
int pec_tokens_sum(const struct pec_tokens *a, const struct pec_tokens *b, struct pec_tokens **out);

/* Adds the report's layers and expert counts to *lo. 0 or -ENOMEM. */
int pec_tokens_layout(const struct pec_tokens *t, struct pec_layout *lo);

/* The report as JSON text in the schema pec_tokens_parse reads (NUL-terminated, malloc'd; the
 * caller frees it). 0 or -ENOMEM. */
int pec_tokens_to_json(const struct pec_tokens *t, char **out);

void pec_tokens_free(struct pec_tokens *t);

#endif
