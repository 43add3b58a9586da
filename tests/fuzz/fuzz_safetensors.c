/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser and merge planner.
 *
 * The input is a whole file. Whatever parses must also merge with itself into a plan whose header
 * parses again and whose pieces tile the merged file; any other outcome aborts. Built with
 * -DPECFS_FUZZ=ON: see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pec_safetensors.h"

static void check_merge(const struct pec_st_header *h)
{
	const struct pec_st_header *in[2] = { h, h };
	struct pec_st_header *back = NULL;
	struct pec_st_merge *m = NULL;
	uint64_t json_len, at;

	if (pec_st_plan_merge(in, 2, &m, NULL, 0) != 0)
		abort();
	/* The same file twice: nothing can be inherited from the copy. */
	if (m->n_inherited != 0 || m->n_tensors != h->n_tensors || m->header_len % 8 != 0)
		abort();
	if (pec_st_header_len(m->header, m->file_size, &json_len, NULL, 0) != 0 ||
	    pec_st_parse((const char *)m->header + 8, json_len, m->file_size, &back, NULL, 0) != 0)
		abort();
	at = m->header_len;
	for (size_t i = 0; i < m->n_pieces; i++) {
		if (m->pieces[i].dest != at || m->pieces[i].src != 0 ||
		    m->pieces[i].src_off + m->pieces[i].len > h->data_start + h->data_len)
			abort();
		at += m->pieces[i].len;
	}
	if (at != m->file_size || back->n_tensors != h->n_tensors)
		abort();
	pec_st_free(back);
	pec_st_merge_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pec_st_header *h = NULL;
	uint64_t json_len;
	char err[256];

	if (size < 8 || pec_st_header_len(data, size, &json_len, err, sizeof(err)) != 0)
		return 0;
	if (pec_st_parse((const char *)data + 8, json_len, size, &h, err, sizeof(err)) != 0)
		return 0;
	if (pec_st_classify(h, pec_patterns_default()) != 0)
		abort();
	check_merge(h);
	pec_st_free(h);
	return 0;
}
