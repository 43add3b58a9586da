/* pec_safetensors.h - safetensors headers: strict parsing and validation, matching tensors to expert
 * units, and planning a merged file (new header bytes + pieces to lay out from existing files by
 * extent, no bytes copied) when a round wrote only some experts of a shard. Format and merge rules:
 * policy/PEC.md. Pure: no I/O, no globals; results are heap-allocated, freed with pec_st_free and
 * pec_st_merge_free.
 *
 * A file is: 8 bytes N (little-endian u64), N bytes of JSON (padded with spaces), then the data
 * section; every tensor's data_offsets are relative to the data section, which they must tile exactly.
 */
#ifndef PECFS_PEC_SAFETENSORS_H
#define PECFS_PEC_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pec_expert.h"

/* Headers larger than this are refused with -EFBIG (the reference implementation's limit). */
#define PEC_ST_MAX_HEADER 100000000ull

struct pec_st_tensor {
	char *name;
	char *dtype;
	uint32_t ndim;
	uint64_t *shape;       /* [ndim] */
	uint64_t begin, end;   /* data_offsets, relative to the data section */
	bool is_expert;        /* set by pec_st_classify */
	struct pec_unit unit;  /* valid when is_expert */
};

struct pec_st_header {
	uint64_t json_len;     /* N */
	uint64_t data_start;   /* 8 + N: file offset of the data section */
	uint64_t data_len;     /* file size - data_start */
	size_t n_tensors;
	struct pec_st_tensor *tensors; /* sorted by begin (the order of the data section) */
	size_t n_meta;                 /* __metadata__: string keys and values, in file order */
	char **meta_keys;
	char **meta_values;
};

/* Reads N from the file's first 8 bytes and checks it against the file size. Returns 0, -EINVAL
 * (file shorter than 8 bytes, N < 2, 8 + N beyond the file) or -EFBIG (N > PEC_ST_MAX_HEADER), with a
 * reason in err. */
int pec_st_header_len(const uint8_t prefix[8], uint64_t file_size, uint64_t *json_len, char *err,
		      size_t errsz);

/* Parses and validates the N header bytes that follow the length (json[0..json_len)) of a file of
 * file_size bytes. -EINVAL with a reason in err for: invalid JSON, a header not starting with '{',
 * an entry that is not {dtype, shape, data_offsets}, an unknown dtype, data_offsets that do not
 * match dtype size * shape, overlapping tensors, gaps, offsets beyond the data section, trailing
 * bytes, a __metadata__ that is not a string map. -EFBIG when json_len > PEC_ST_MAX_HEADER. -ENOMEM. */
int pec_st_parse(const char *json, size_t json_len, uint64_t file_size, struct pec_st_header **out,
		 char *err, size_t errsz);

/* Bytes per element of a dtype name ("F32" -> 4), 0 when unknown. */
uint32_t pec_st_dtype_size(const char *dtype);

/* Marks each tensor's expert unit by the tensor patterns. 0 or -EINVAL (malformed pattern). */
int pec_st_classify(struct pec_st_header *h, const struct pec_patterns *p);

/* The distinct units of the header's expert tensors (after pec_st_classify), sorted; *units is
 * malloc'd (NULL when none). 0 or -ENOMEM. */
int pec_st_units(const struct pec_st_header *h, struct pec_unit **units, size_t *n);

void pec_st_free(struct pec_st_header *h);

/* One run of bytes of the merged file: dest[0..len) comes from input `src` at file offset src_off. */
struct pec_st_piece {
	uint64_t dest;
	uint64_t len;
	uint32_t src;
	uint64_t src_off;
};

struct pec_st_merge {
	uint8_t *header;       /* the merged file's bytes [0, header_len): length prefix + JSON + padding */
	uint64_t header_len;   /* a multiple of 8, so the data section stays 8-byte aligned */
	uint64_t file_size;
	size_t n_pieces;
	struct pec_st_piece *pieces; /* in dest order, tiling [header_len, file_size) */
	size_t n_tensors;
	size_t n_inherited;    /* tensors taken from inputs other than 0; 0 means "keep input 0 as is" */
	size_t n_units_inherited;
	struct pec_unit *units_inherited; /* sorted */
};

/* Plans the merged file. in[0] is the file as the version wrote it; in[1..n) are older logical copies
 * of the same path, newest first (usually one: the base version's). All headers must have been
 * classified with the same patterns. The merged file holds every tensor of in[0] (in its order),
 * then, from each older input in turn, the tensors of expert units that no newer input has any
 * tensor of (by source, in data order); non-expert tensors and names already present are never
 * inherited. __metadata__ is in[0]'s. 0, -EINVAL (n == 0), -EFBIG (merged header over the limit),
 * -ENOMEM. */
int pec_st_plan_merge(const struct pec_st_header *const *in, size_t n, struct pec_st_merge **out,
		      char *err, size_t errsz);

void pec_st_merge_free(struct pec_st_merge *m);

#endif
