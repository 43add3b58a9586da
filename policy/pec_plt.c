/* pec_plt.c - the Proportion of Lost Tokens (see pec_plt.h for the formula).
 *
 * Each layer's fraction is computed in double before averaging: counts reach 2^53, so an integer
 * numerator over the product of all denominators would overflow long before precision matters.
 */
#include "pec_plt.h"

double pec_plt(const struct pec_plt_layer *layers, size_t n_moe, uint32_t top_k)
{
	double sum = 0.0;

	if (layers == NULL || n_moe == 0 || top_k == 0)
		return 0.0;
	for (size_t i = 0; i < n_moe; i++) {
		if (layers[i].tokens == 0)
			continue;
		sum += (double)layers[i].lost / ((double)layers[i].tokens * (double)top_k);
	}
	return sum / (double)n_moe;
}
