/* fuzz_gc_marks.c - libFuzzer target for what bucket garbage collection and its marks are read from:
 * the gc/epoch object (bucket content, store/tier/tier_gc.c), a pack's header and member table
 * (bucket content, tier_pack_parse), and the values of the 'R' (in the bucket since epoch N, maybe in
 * a pack) and 'U' (uploaded) records (store/meta_codec.c, read back from a disk that may be damaged).
 * The input is tried as each; as a pack it is named by the SHA-256 of the table its count implies, so
 * that the checks behind the name are reached. A decoded epoch never names a node longer than its
 * field, a parsed pack's members never lie inside its header or past the lengths it states; crashes
 * and sanitizer reports are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meta_codec.h"
#include "tier_impl.h"

static struct tier_pack_member members[TIER_PACK_MEMBERS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_gc_epoch ep;
	struct meta_upload u;
	struct meta_remote r;
	struct digest name;
	size_t n = 0, table;

	if (tier_gc_epoch_decode((const char *)data, size, &ep) == 0 &&
	    strnlen(ep.node, sizeof(ep.node)) == sizeof(ep.node))
		abort();
	if (size >= TIER_PACK_HDR_FIXED) {
		uint32_t count = (uint32_t)data[16] | (uint32_t)data[17] << 8 | (uint32_t)data[18] << 16 |
				 (uint32_t)data[19] << 24;
		table = count <= TIER_PACK_MEMBERS_MAX ? (size_t)count * TIER_PACK_ENTRY : 0;
		digest_compute(data + TIER_PACK_HDR_FIXED, table <= size - TIER_PACK_HDR_FIXED ? table : 0, &name);
		if (tier_pack_parse(data, size, &name, members, &n) == 0) {
			uint64_t end = TIER_PACK_HDR_FIXED + n * TIER_PACK_ENTRY;
			for (size_t i = 0; i < n; i++) {
				if (members[i].off != end || members[i].len == 0)
					abort();
				end += TIER_CHUNK_HDR + members[i].len;
			}
		}
	}
	meta_dec_remote(data, size, &r);
	meta_dec_upload(data, size, &u);
	return 0;
}
