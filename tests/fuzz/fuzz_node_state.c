/* fuzz_node_state.c - libFuzzer target for the node states bucket garbage collection reads
 * (store/tier/tier_gc.c, tier_node_state.c): written by other nodes, so untrusted. An input that
 * starts with a segment's magic is checked as a segment (nodes/<id>/<gen>.seg) whose head names its
 * count and SHA-256: one that passes must be exactly a header and that many strictly ascending
 * digests. Any other input is a head (nodes/<id>.json, either format): one that decodes must have a
 * node id that fits, and exactly the chunk digests or segments it claims. Any other outcome aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "tier_impl.h"

static void segment(const uint8_t *data, size_t size)
{
	struct tier_node_seg seg = { .gen = 1 };
	char err[256];

	if (size < TIER_NODE_SEG_HDR)
		return;
	for (int i = 0; i < 8; i++)
		seg.count |= (uint64_t)data[16 + i] << (8 * i);  /* what a head would say */
	SHA256(data, size, seg.sha256);
	if (tier_node_segment_check(data, size, &seg, err, sizeof(err)) != 0)
		return;
	if (seg.count > (UINT64_MAX - TIER_NODE_SEG_HDR) / DIGEST_LEN ||
	    size != TIER_NODE_SEG_HDR + seg.count * DIGEST_LEN)
		abort();
	const uint8_t *d = data + TIER_NODE_SEG_HDR;
	for (uint64_t i = 1; i < seg.count; i++)
		if (memcmp(d + (i - 1) * DIGEST_LEN, d + i * DIGEST_LEN, DIGEST_LEN) >= 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_node_state s;
	char err[256];

	if (size >= 8 && memcmp(data, "PECNSEG1", 8) == 0) {
		segment(data, size);
		return 0;
	}
	if (tier_node_state_decode((const char *)data, size, &s, err, sizeof(err)) != 0)
		return 0;
	if (strnlen(s.node, sizeof(s.node)) == sizeof(s.node) || (s.n_chunks && !s.chunks))
		abort();
	for (size_t i = 0; i < s.n_versions; i++)
		if (!s.versions[i])
			abort();
	if (s.format == 2) {
		uint64_t sum = 0;
		if (s.n_segs && !s.segs)
			abort();
		for (size_t i = 0; i < s.n_segs; i++) {
			if (s.segs[i].count == 0 || (i && s.segs[i].gen <= s.segs[i - 1].gen))
				abort();
			sum += s.segs[i].count;
		}
		if (sum > (1ull << 26) || s.chunk_count > sum)
			abort();
	}
	tier_node_state_free(&s);
	return 0;
}
