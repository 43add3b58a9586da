/* fuzz_manifest.c - libFuzzer target for the version manifest decoder (store/tier/tier_manifest.c),
 * which reads bucket content: anything may arrive.
 *
 * Whatever decodes must hold the decoder's promises (paths checked, extents in file order without
 * overlap, inside the file) and survive a round trip: encoding it and decoding the text again gives the
 * same entries. Any other outcome aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_manifest.h"

static void check_entry(const struct tier_manifest *m, const struct tier_manifest_entry *e)
{
	uint64_t end = 0;

	if (!tier_manifest_path_ok(e->path))
		abort();
	/* a link names an earlier entry of its type and mode, which is no link itself */
	if (e->link && (e->link_idx >= (size_t)(e - m->entries) || m->entries[e->link_idx].link ||
			m->entries[e->link_idx].mode != e->mode || strcmp(m->entries[e->link_idx].path, e->link) ||
			e->next || e->size))
		abort();
	for (size_t x = 0; x < e->next; x++) {
		const struct tier_manifest_extent *ext = &e->ext[x];
		if (ext->len == 0 || ext->file_off < end || ext->file_off + ext->len > e->size ||
		    ext->chunk_off + ext->len > ext->chunk_len)
			abort();
		end = ext->file_off + ext->len;
	}
}

static void same_entries(const struct tier_manifest *a, const struct tier_manifest *b)
{
	if (a->n != b->n || strcmp(a->run, b->run) || strcmp(a->version, b->version) || strcmp(a->node, b->node))
		abort();
	for (size_t i = 0; i < a->n; i++) {
		const struct tier_manifest_entry *x = &a->entries[i], *y = &b->entries[i];
		if (strcmp(x->path, y->path) || x->mode != y->mode || x->size != y->size || x->next != y->next ||
		    (x->target == NULL) != (y->target == NULL) || (x->target && strcmp(x->target, y->target)) ||
		    x->rdev_major != y->rdev_major || x->rdev_minor != y->rdev_minor || x->nlinks != y->nlinks ||
		    (x->link == NULL) != (y->link == NULL) || (x->link && (strcmp(x->link, y->link) || x->link_idx != y->link_idx)))
			abort();
		for (size_t k = 0; k < x->next; k++)
			if (memcmp(&x->ext[k], &y->ext[k], sizeof(x->ext[k])) != 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_manifest m, again;
	char err[256], *text;
	size_t len;

	if (tier_manifest_decode((const char *)data, size, &m, err, sizeof(err)) != 0)
		return 0;
	for (size_t i = 0; i < m.n; i++)
		check_entry(&m, &m.entries[i]);
	if (tier_manifest_encode(&m, &text, &len) != 0)
		abort();
	if (tier_manifest_decode(text, len, &again, err, sizeof(err)) != 0)
		abort();
	same_entries(&m, &again);
	tier_manifest_free(&again);
	tier_manifest_free(&m);
	free(text);
	return 0;
}
