/* fuzz_commit.c - libFuzzer target for the COMMIT decoder (store/tier/tier_manifest.c): COMMIT objects
 * come from the bucket and decide which parts make up a version.
 *
 * What decodes must hold the decoder's promises (names a reader may use, parts in node order without
 * a node twice, the creator's seal id in the part list) and survive an encode/decode round trip
 * unchanged. Any other outcome aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_commit c, again;
	char err[256], *text;
	size_t len;

	if (tier_commit_decode((const char *)data, size, &c, err, sizeof(err)) != 0)
		return 0;
	if (!tier_manifest_name_ok(c.run) || !tier_manifest_name_ok(c.version))
		abort();
	for (size_t i = 0; i < c.npart; i++) {
		if (i > 0 && strcmp(c.part[i - 1].node, c.part[i].node) >= 0)
			abort();
		if (c.part[i].seal_id[0] && !tier_seal_id_ok(c.part[i].seal_id))
			abort();
	}
	if (c.seal_id[0] && c.npart && !tier_commit_find(&c, c.node))
		abort();
	if (tier_commit_encode(&c, &text, &len) != 0)
		abort();
	if (tier_commit_decode(text, len, &again, err, sizeof(err)) != 0)
		abort();
	if (strcmp(c.run, again.run) || strcmp(c.version, again.version) || strcmp(c.node, again.node) ||
	    c.step != again.step || c.sealed_ns != again.sealed_ns || c.npart != again.npart ||
	    strcmp(c.seal_id, again.seal_id))
		abort();
	for (size_t i = 0; i < c.npart; i++)
		if (memcmp(&c.part[i], &again.part[i], sizeof(c.part[i])) != 0)
			abort();
	tier_commit_free(&again);
	tier_commit_free(&c);
	free(text);
	return 0;
}
