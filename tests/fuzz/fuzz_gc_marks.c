/* fuzz_gc_marks.c - libFuzzer target for what bucket garbage collection and its marks are read from:
 * the gc/epoch object (bucket content, store/tier/tier_gc.c) and the values of the 'R' (in the bucket
 * since epoch N) and 'U' (uploaded) records (store/meta_codec.c, read back from a disk that may be
 * damaged). The input is tried as each. A decoded epoch never names a node longer than its field;
 * crashes and sanitizer reports are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meta_codec.h"
#include "tier_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_gc_epoch ep;
	struct meta_upload u;
	uint64_t epoch;

	if (tier_gc_epoch_decode((const char *)data, size, &ep) == 0 &&
	    strnlen(ep.node, sizeof(ep.node)) == sizeof(ep.node))
		abort();
	meta_dec_remote(data, size, &epoch);
	meta_dec_upload(data, size, &u);
	return 0;
}
