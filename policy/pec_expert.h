/* pec_expert.h - expert units (layer, expert) and how they are recognised: per-run patterns on file
 * paths (DeepSpeed naming by default) and on tensor names inside safetensors files, plus the layout of
 * a model's MoE layers. Pure functions: no I/O, no globals, thread-safe; nothing here allocates except
 * pec_layout_*, whose results the caller frees with pec_layout_free.
 */
#ifndef PECFS_PEC_EXPERT_H
#define PECFS_PEC_EXPERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest layer and expert number a pattern accepts; bigger numbers are "not an expert". */
#define PEC_MAX_LAYER 65535u
#define PEC_MAX_EXPERT 65535u
/* Longest pattern accepted, in bytes. */
#define PEC_PATTERN_MAX 255u

/* One expert of one MoE layer: the unit PEC saves, inherits and accounts for. */
struct pec_unit {
	uint32_t layer;
	uint32_t expert;
};

/* Orders units by (layer, expert); usable with qsort and bsearch. */
int pec_unit_cmp(const void *a, const void *b);

/* Per-run patterns. A pattern is literal text with three special tokens:
 *   {L}  one or more decimal digits: the layer number (at most once; without it the layer is 0)
 *   {E}  one or more decimal digits: the expert number (exactly once)
 *   *    any run of characters other than '/' (possibly empty)
 * A pattern must match the whole subject. File patterns without '/' are matched against the file's
 * last path component, those with '/' against the whole path relative to the version directory.
 * Patterns are tried in order; the first match wins. The caller owns the strings and arrays. */
struct pec_patterns {
	const char *const *file;
	size_t n_file;
	const char *const *tensor;
	size_t n_tensor;
};

/* The defaults (static, never freed):
 *   files:   "layer_{L}_expert_{E}_*" (DeepSpeed), "expert_{E}_*" (older DeepSpeed: one file holds
 *            expert E of every MoE layer, so it is one unit on layer 0)
 *   tensors: "model.layers.{L}.mlp.experts.{E}.*", "model.layers.{L}.block_sparse_moe.experts.{E}.*" */
const struct pec_patterns *pec_patterns_default(void);

/* 0 when every pattern is well formed, else -EINVAL with the offending pattern named in err. */
int pec_patterns_validate(const struct pec_patterns *p, char *err, size_t errsz);

/* Matches one pattern against subject. Returns 1 and fills *out on a match, 0 when it does not match,
 * -EINVAL when the pattern is malformed. */
int pec_pattern_match(const char *pattern, const char *subject, struct pec_unit *out);

/* The expert unit a file belongs to, by the file patterns: 1 and *out when it is an expert file, 0
 * when it is not, -EINVAL when a pattern is malformed. relpath is relative to the version directory. */
int pec_expert_match_path(const struct pec_patterns *p, const char *relpath, struct pec_unit *out);

/* The same for a tensor name inside a safetensors file, by the tensor patterns. */
int pec_expert_match_tensor(const struct pec_patterns *p, const char *tensor, struct pec_unit *out);

/* The MoE layers of a model and how many experts each has (experts are numbered 0..n_experts-1).
 * layers[] is sorted by layer number, without duplicates. */
struct pec_layout_layer {
	uint32_t layer;
	uint32_t n_experts;
};
struct pec_layout {
	size_t n_layers;
	struct pec_layout_layer *layers;
};

/* Grows *lo so that it holds unit u: adds u's layer, raises its expert count to u.expert + 1.
 * 0 or -ENOMEM (lo unchanged then). Start from a zeroed struct. */
int pec_layout_add(struct pec_layout *lo, struct pec_unit u);

/* Grows *lo to cover `other` (layer by layer, the larger expert count wins). 0 or -ENOMEM. */
int pec_layout_merge(struct pec_layout *lo, const struct pec_layout *other);

/* Index of layer in lo->layers, or -1 when the layout has no such layer. */
long pec_layout_find(const struct pec_layout *lo, uint32_t layer);

/* Total number of units (sum of expert counts). */
size_t pec_layout_units(const struct pec_layout *lo);

/* Frees the arrays and zeroes *lo (the struct itself belongs to the caller). NULL is fine. */
void pec_layout_free(struct pec_layout *lo);

#endif
