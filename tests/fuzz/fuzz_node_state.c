/* fuzz_node_state.c - libFuzzer target for the node states bucket garbage collection reads
 * (nodes/<id>.json, store/tier/tier_gc.c): written by other nodes, so untrusted. A state that decodes
 * must have a node id that fits, and exactly the chunk digests it claims. Any other outcome aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_node_state s;
	char err[256];

	if (tier_node_state_decode((const char *)data, size, &s, err, sizeof(err)) != 0)
		return 0;
	if (strnlen(s.node, sizeof(s.node)) == sizeof(s.node) || (s.n_chunks && !s.chunks))
		abort();
	for (size_t i = 0; i < s.n_versions; i++)
		if (!s.versions[i])
			abort();
	tier_node_state_free(&s);
	return 0;
}
