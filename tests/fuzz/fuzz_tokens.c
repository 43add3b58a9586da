/* fuzz_tokens.c - libFuzzer target for the .pec/tokens report parser.
 *
 * Whatever parses must satisfy the documented limits and fold with itself into doubled counts; any
 * other outcome aborts. Built with -DPECFS_FUZZ=ON: see tests/fuzz/README.md.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "pec_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pec_tokens *t = NULL, *twice = NULL;
	char err[256];
	int rc;

	if (pec_tokens_parse((const char *)data, size, &t, err, sizeof(err)) != 0)
		return 0;
	if (t->top_k == 0 || t->top_k > PEC_TOKENS_MAX_TOPK || t->n_layers == 0)
		abort();
	for (size_t i = 0; i < t->n_layers; i++) {
		uint64_t sum = 0;

		if (i > 0 && t->layers[i].layer <= t->layers[i - 1].layer)
			abort();
		for (uint32_t e = 0; e < t->layers[i].n_experts; e++)
			sum += t->layers[i].counts[e];
		if (sum > t->layers[i].tokens * t->top_k)
			abort();
	}
	rc = pec_tokens_sum(t, t, &twice);
	if (rc == 0) {
		for (size_t i = 0; i < t->n_layers; i++)
			if (twice->layers[i].tokens != 2 * t->layers[i].tokens)
				abort();
		pec_tokens_free(twice);
	} else if (rc != -ERANGE) {
		abort();
	}
	pec_tokens_free(t);
	return 0;
}
