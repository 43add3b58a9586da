/* pec_compose.h - a version's composition: for every expert unit of the model, which version its files
 * come from, how many steps stale it is, and how many token updates a restart from the version would
 * lose; whether the version is complete; its PLT. Rules and a worked example are in policy/PEC.md.
 * Pure: no I/O, no globals. A composition owns all its memory (copies of every string it names) and
 * is freed with pec_composition_free; inputs are only read and may be freed once a call returns.
 */
#ifndef PECFS_PEC_COMPOSE_H
#define PECFS_PEC_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pec_expert.h"
#include "pec_tokens.h"

enum pec_vstate {
	PEC_VSTATE_OPEN = 0, /* being written: never a source for others */
	PEC_VSTATE_SEALED,   /* immutable and intact */
	PEC_VSTATE_DAMAGED,  /* sealed, then lost files: never a source again */
	PEC_VSTATE_DELETED,  /* removed or retired: never a source again (its record may be kept) */
};

/* One file a version wrote that holds (part of) an expert unit. A safetensors shard holding tensors
 * of several units appears once per unit, with the same path. */
struct pec_unit_file {
	struct pec_unit unit;
	const char *path; /* relative to the version directory */
};

/* A file of the version that could not be used as written (a safetensors header the merge refused):
 * the fs keeps the file as written and the manifest lists the reason. */
struct pec_file_problem {
	const char *path;
	const char *problem;
};

/* What the caller knows about one version. */
struct pec_version_in {
	const char *name;                   /* directory name, unique within the run */
	int64_t step;                       /* see pec_steps_normalize; >= 0 */
	enum pec_vstate state;
	const struct pec_unit_file *files;  /* the expert files it wrote itself (never inherited ones) */
	size_t n_files;
	const struct pec_tokens *tokens;    /* tokens routed in the interval that ended with this version
					       (pec_compose_next: since the base), or NULL if unreported */
	const struct pec_file_problem *problems; /* reported in the manifest, never inherited */
	size_t n_problems;
};

struct pec_comp_unit {
	struct pec_unit unit;
	bool present;         /* false: no version ever wrote it (the version is incomplete) */
	bool written;         /* the version wrote it itself */
	bool needs_merge;     /* inherited, and some of its source files share a path with a file the
				 version wrote itself (a safetensors shard): for those paths the fs merges
				 tensors (pec_safetensors.h) instead of inheriting the file */
	char *source;         /* name of the version its files come from; NULL when !present */
	int64_t source_step;  /* step of that version; -1 when !present */
	int64_t staleness;    /* step - source_step (0 when written); -1 when !present */
	uint64_t lost_tokens; /* tokens routed to it since its source was saved (0 when written) */
	size_t n_paths;
	char **paths;         /* the unit's files in its source version (sorted, unique); an inherited
				 file keeps its path, so the version presents each path that it did not
				 write itself with the content the base version presents there */
};

struct pec_comp_layer {
	uint32_t layer;
	uint64_t tokens;      /* tokens the layer processed from the first version up to this one */
	uint64_t lost;        /* sum of lost_tokens over its units */
};

struct pec_composition {
	char *name;
	int64_t step;
	bool complete;        /* every unit present */
	size_t n_missing;     /* units not present */
	size_t n_units;
	struct pec_comp_unit *units;   /* sorted by (layer, expert): every unit of the layout */
	size_t n_layers;
	struct pec_comp_layer *layers; /* sorted by layer: every layer of the layout */
	uint32_t top_k;       /* from the newest token report; 0 when none was ever reported */
	bool tokens_known;    /* every interval up to this version was reported */
	double plt;           /* PLT of a restart from this version (pec_plt.h); 0 when top_k == 0 */
	size_t n_problems;
	char **problem_paths; /* [n_problems] copies of the version's pec_file_problem */
	char **problems;
};

/* The composition of v on top of base, the fixed composition of the version v follows (NULL for the
 * first version of a run). Each unit v wrote comes from v; every other unit keeps base's entry with
 * staleness and lost tokens moved forward (lost += v->tokens' count for it). The units considered
 * are base's, v's, those of v->tokens' layout and of `layout` (may be NULL); per layer, experts
 * 0..highest seen are all expected, so a gap in the numbering makes the version incomplete.
 * top_k is the newest report's. v->state is not consulted: the caller decides that v is being sealed.
 * Returns 0, -EINVAL (v without name, a unit file without path) or -ENOMEM. */
int pec_compose_next(const struct pec_composition *base, const struct pec_version_in *v,
		     const struct pec_layout *layout, struct pec_composition **out);

/* The composition of hist[target] computed from the whole history (oldest first): every earlier
 * version whose state is SEALED is folded in order with pec_compose_next; OPEN, DAMAGED and DELETED
 * versions are skipped as sources, but their token reports still count (those tokens were trained).
 * Steps are normalised first (pec_steps_normalize). This equals the composition fixed when
 * hist[target] was sealed as long as no earlier version has since been deleted or damaged; the fs
 * stores fixed compositions for that reason. 0, -EINVAL (target >= n, bad input) or -ENOMEM. */
int pec_compose_history(const struct pec_version_in *hist, size_t n, size_t target,
			const struct pec_layout *layout, struct pec_composition **out);

/* Replaces steps[0..n) by 0..n-1 (version order) unless every step is >= 0 and strictly increasing,
 * so that staleness is counted in steps when names carry them and in versions when they do not.
 * Returns true when the steps were kept. */
bool pec_steps_normalize(int64_t *steps, size_t n);

/* The entry for unit u, or NULL when the composition has none. */
const struct pec_comp_unit *pec_composition_find(const struct pec_composition *c, struct pec_unit u);

/* The composition's layout (its layers and expert counts) added to *lo. 0 or -ENOMEM. */
int pec_composition_layout(const struct pec_composition *c, struct pec_layout *lo);

/* A deep copy. 0 or -ENOMEM. */
int pec_composition_copy(const struct pec_composition *c, struct pec_composition **out);

void pec_composition_free(struct pec_composition *c);

/* The manifest (RUN/.pec/manifest/<version>) as JSON text, NUL-terminated, malloc'd (caller frees).
 * The schema is in policy/PEC.md. 0 or -ENOMEM. */
int pec_composition_to_json(const struct pec_composition *c, char **out);

/* Reads a manifest back (for the fs to reload fixed compositions it stored). 0, or -EINVAL with a
 * reason in err when the text is not a manifest this code writes, -ENOMEM. */
int pec_composition_from_json(const char *json, size_t len, struct pec_composition **out, char *err,
			      size_t errsz);

#endif
