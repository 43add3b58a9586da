/* read_pattern.c - see read_pattern.h. */
#include "read_pattern.h"

bool read_pattern_note(struct read_pattern *rp, uint64_t off, size_t len, uint64_t chunk, uint64_t *entered)
{
	uint64_t prev, idx;

	if (len == 0 || chunk == 0)
		return false;
	prev = atomic_exchange_explicit(&rp->next, off + len, memory_order_relaxed);
	/* The kernel sends a sequential reader's read-ahead as several requests that may arrive out of
	 * order: "near the previous end" is sequential enough. */
	if (off + chunk < prev || off > prev + chunk) {
		atomic_store_explicit(&rp->streak, 0, memory_order_relaxed);
		return false;
	}
	/* Two reads in a row that follow on make a sequential reader; so does a read at offset 0, where
	 * copies and checkpoint loaders start (read-ahead then overlaps the first chunk's read). */
	if (atomic_fetch_add_explicit(&rp->streak, 1, memory_order_relaxed) < 1 && off != 0)
		return false;
	/* Once per chunk entered: the window then moves one chunk further. */
	idx = off / chunk + 1;
	if (atomic_exchange_explicit(&rp->chunk, idx, memory_order_relaxed) == idx)
		return false;
	*entered = idx - 1;
	return true;
}
