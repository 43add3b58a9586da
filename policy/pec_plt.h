/* pec_plt.h - the Proportion of Lost Tokens (PLT) of the Partial Experts Checkpoint paper:
 *   PLT = (1 / N_moe) * sum over MoE layers l of  lost_l / (tokens_l * top_k)
 * where lost_l counts the token assignments whose expert updates a restart would lose and tokens_l is
 * the tokens layer l processed. Worked examples are in policy/PEC.md. Pure arithmetic, thread-safe.
 */
#ifndef PECFS_PEC_PLT_H
#define PECFS_PEC_PLT_H

#include <stddef.h>
#include <stdint.h>

/* The paper's default budget for the accumulated PLT (3.75 %). */
#define PEC_PLT_BUDGET_DEFAULT 0.0375

struct pec_plt_layer {
	uint64_t lost;    /* token assignments whose updates are lost */
	uint64_t tokens;  /* tokens the layer processed */
};

/* PLT over n_moe layers. A layer that processed no tokens contributes 0. Returns 0.0 for n_moe == 0
 * or top_k == 0; the result is in [0, 1] whenever every lost <= tokens * top_k. */
double pec_plt(const struct pec_plt_layer *layers, size_t n_moe, uint32_t top_k);

#endif
