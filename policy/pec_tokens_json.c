/* pec_tokens_json.c - a token report back to the JSON text of RUN/.pec/tokens (policy/PEC.md
 * section 3), so the fs can keep the reports of an interval, summed, as one record and show it.
 * pec_tokens_parse reads the output back to an equal report.
 */
#include "pec_tokens.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

int pec_tokens_to_json(const struct pec_tokens *t, char **out)
{
	json_t *root = json_object(), *layers = json_array();
	int rc = -ENOMEM;

	if (root == NULL || layers == NULL)
		goto out;
	for (size_t i = 0; i < t->n_layers; i++) {
		const struct pec_tokens_layer *l = &t->layers[i];
		json_t *experts = json_array();

		if (experts == NULL)
			goto out;
		for (uint32_t e = 0; e < l->n_experts; e++) {
			if (json_array_append_new(experts, json_integer((json_int_t)l->counts[e])) != 0) {
				json_decref(experts);
				goto out;
			}
		}
		json_t *o = json_pack("{s:I, s:I, s:o}", "layer", (json_int_t)l->layer, "tokens",
				      (json_int_t)l->tokens, "experts", experts);
		if (o == NULL || json_array_append_new(layers, o) != 0)
			goto out;
	}
	if (json_object_set_new(root, "top_k", json_integer(t->top_k)) != 0 ||
	    (t->step >= 0 && json_object_set_new(root, "step", json_integer(t->step)) != 0))
		goto out;
	rc = json_object_set(root, "layers", layers) != 0 ? -ENOMEM : 0;
	if (rc == 0) {
		*out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
		rc = *out != NULL ? 0 : -ENOMEM;
	}
out:
	json_decref(layers);
	json_decref(root);
	return rc;
}
