/* test_tier_persist.c - persist selection for the S3 tier (fs/tier_persist.h): how a version's manifest
 * is rewritten so that only the non-expert files and K_persist experts per layer are new in the bucket
 * while the manifest still lists the whole checkpoint, what the remote composition says, when a unit
 * cannot be reused, and the manifest's per-entry "source" / "staleness" fields (strict decoding).
 *
 * The model: MoE layers 0 and 1 with 4 experts each, one DeepSpeed file per unit, one non-expert file.
 * A file's single extent names a chunk whose digest is that of "VERSION:PATH", so every assertion can
 * say from which round an entry's bytes come.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tier_persist.h"

#define LAYERS 2
#define EXPERTS 4
#define NON_EXPERT "mp_rank_00_model_states.pt"

static void unit_path(char *buf, size_t size, uint32_t layer, uint32_t expert, int rank)
{
	snprintf(buf, size, "layer_%u_expert_%u_mp_rank_%02d_model_states.pt", layer, expert, rank);
}

static struct digest content(const char *version, const char *path)
{
	char text[512];
	struct digest d;

	snprintf(text, sizeof(text), "%s:%s", version, path);
	digest_compute(text, strlen(text), &d);
	return d;
}

static void add_file(struct tier_manifest *m, const char *path, const char *from)
{
	struct tier_manifest_extent x = { .file_off = 0, .len = 100, .chunk_off = 0, .chunk_len = 100 };
	struct tier_manifest_entry *e;

	x.digest = content(from, path);
	assert_int_equal(tier_manifest_add_entry(m, path, S_IFREG | 0644, 100, 1, NULL, &e), 0);
	assert_int_equal(tier_manifest_add_extent(e, &x), 0);
}

/* A round's version: what it wrote (units[i] true) and its composition on top of base. The walked
 * manifest lists every file the version presents: written ones with its own bytes, inherited ones
 * with the bytes of their local source (as the fs clones them). */
struct round {
	struct pec_composition *comp;
	struct tier_manifest m;
};

static void make_round(struct round *r, const char *name, int64_t step, const struct pec_composition *base,
		       const bool wrote[LAYERS][EXPERTS], int rank)
{
	struct pec_unit_file files[LAYERS * EXPERTS];
	char paths[LAYERS * EXPERTS][128];
	struct pec_version_in v = { .name = name, .step = step, .state = PEC_VSTATE_SEALED, .files = files };

	for (uint32_t l = 0; l < LAYERS; l++)
		for (uint32_t e = 0; e < EXPERTS; e++)
			if (wrote[l][e]) {
				unit_path(paths[v.n_files], sizeof(paths[0]), l, e, rank);
				files[v.n_files] = (struct pec_unit_file){ .unit = { l, e }, .path = paths[v.n_files] };
				v.n_files++;
			}
	assert_int_equal(pec_compose_next(base, &v, NULL, &r->comp), 0);
	assert_int_equal(tier_manifest_init(&r->m, "run", name, "node-a"), 0);
	r->m.step = step;
	add_file(&r->m, NON_EXPERT, name);
	for (size_t i = 0; i < r->comp->n_units; i++) {
		const struct pec_comp_unit *u = &r->comp->units[i];
		for (size_t j = 0; j < u->n_paths; j++)
			add_file(&r->m, u->paths[j], u->source);
	}
}

static void round_free(struct round *r)
{
	pec_composition_free(r->comp);
	tier_manifest_free(&r->m);
}

static const struct tier_manifest_entry *entry(const struct tier_manifest *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->entries[i].path, path) == 0)
			return &m->entries[i];
	fail_msg("no entry %s", path);
	return NULL;
}

/* The entry of unit (l, e) holds the bytes round `from` wrote, and names `source` (NULL: none). */
static void expect_unit(const struct tier_manifest *m, uint32_t l, uint32_t e, const char *from, const char *source,
			int64_t staleness)
{
	char path[128];
	const struct tier_manifest_entry *x;
	struct digest want;

	unit_path(path, sizeof(path), l, e, 0);
	x = entry(m, path);
	want = content(from, path);
	assert_int_equal(x->next, 1);
	assert_memory_equal(&x->ext[0].digest, &want, sizeof(want));
	if (!source) {
		assert_null(x->source);
		return;
	}
	assert_non_null(x->source);
	assert_string_equal(x->source, source);
	assert_int_equal(x->staleness, staleness);
}

static const struct pec_comp_unit *unit(const struct pec_composition *c, uint32_t l, uint32_t e)
{
	const struct pec_comp_unit *u = pec_composition_find(c, (struct pec_unit){ l, e });

	assert_non_null(u);
	return u;
}

static const bool ALL[LAYERS][EXPERTS] = { { true, true, true, true }, { true, true, true, true } };
static const bool FIRST_TWO[LAYERS][EXPERTS] = { { true, true, false, false }, { true, true, false, false } };
static const bool LAST_TWO[LAYERS][EXPERTS] = { { false, false, true, true }, { false, false, true, true } };

/* Three rounds: v1 writes everything, v2 experts 0-1, v3 experts 2-3; each uploaded with K_persist 1. */
struct history {
	struct round r[3];
	struct tier_persist_result up[3];
};

static void upload_history(struct history *h)
{
	make_round(&h->r[0], "v1", 100, NULL, ALL, 0);
	assert_int_equal(tier_persist_rewrite(&h->r[0].m, h->r[0].comp, NULL, NULL, 1, &h->up[0]), 0);
	make_round(&h->r[1], "v2", 200, h->r[0].comp, FIRST_TWO, 0);
	assert_int_equal(tier_persist_rewrite(&h->r[1].m, h->r[1].comp, &h->r[0].m, h->up[0].remote, 1, &h->up[1]),
			 0);
	make_round(&h->r[2], "v3", 300, h->r[1].comp, LAST_TWO, 0);
	assert_int_equal(tier_persist_rewrite(&h->r[2].m, h->r[2].comp, &h->r[1].m, h->up[1].remote, 1, &h->up[2]),
			 0);
}

static void history_free(struct history *h)
{
	for (int i = 0; i < 3; i++) {
		round_free(&h->r[i]);
		pec_composition_free(h->up[i].remote);
	}
}

static void test_first_upload_of_a_run_carries_every_unit(void **state)
{
	struct history h;

	(void)state;
	upload_history(&h);
	assert_int_equal(h.up[0].units_new, 2);      /* one per layer selected... */
	assert_int_equal(h.up[0].units_forced, 6);   /* ...and the rest has no copy in the bucket yet */
	assert_int_equal(h.up[0].units_reused, 0);
	for (uint32_t l = 0; l < LAYERS; l++)
		for (uint32_t e = 0; e < EXPERTS; e++) {
			expect_unit(&h.r[0].m, l, e, "v1", NULL, 0);
			assert_string_equal(unit(h.up[0].remote, l, e)->source, "v1");
		}
	history_free(&h);
}

static void test_unselected_units_point_at_the_previous_upload(void **state)
{
	struct history h;
	const struct pec_comp_unit *u;

	(void)state;
	upload_history(&h);
	/* v2 wrote experts 0 and 1 of each layer; K_persist 1 uploads expert 0 of layer 0 and, by the
	 * rotation (layer index 1), expert 1 of layer 1. */
	assert_int_equal(h.up[1].units_new, 2);
	assert_int_equal(h.up[1].units_reused, 6);
	assert_int_equal(h.up[1].units_forced, 0);
	expect_unit(&h.r[1].m, 0, 0, "v2", NULL, 0);
	expect_unit(&h.r[1].m, 1, 1, "v2", NULL, 0);
	expect_unit(&h.r[1].m, 0, 1, "v1", "v1", 100);  /* written by v2, but v1's copy is the one in S3 */
	expect_unit(&h.r[1].m, 1, 0, "v1", "v1", 100);
	expect_unit(&h.r[1].m, 0, 3, "v1", "v1", 100);  /* inherited: never uploaded again */
	struct digest ne = content("v2", NON_EXPERT);
	assert_memory_equal(&entry(&h.r[1].m, NON_EXPERT)->ext[0].digest, &ne, sizeof(ne));
	assert_null(entry(&h.r[1].m, NON_EXPERT)->source);
	u = unit(h.up[1].remote, 0, 1);
	assert_string_equal(u->source, "v1");
	assert_int_equal(u->staleness, 100);
	assert_false(u->written);
	assert_true(unit(h.up[1].remote, 0, 0)->written);
	/* The local composition is not touched. */
	assert_string_equal(unit(h.r[1].comp, 0, 1)->source, "v2");
	history_free(&h);
}

static void test_remote_copies_chain_across_uploads(void **state)
{
	struct history h;

	(void)state;
	upload_history(&h);
	/* v3 wrote experts 2 and 3; both layers' oldest persisted copies are v1's, so the rotation picks
	 * expert 2 in both layers (offsets 0 and 1). */
	expect_unit(&h.r[2].m, 0, 2, "v3", NULL, 0);
	expect_unit(&h.r[2].m, 1, 2, "v3", NULL, 0);
	expect_unit(&h.r[2].m, 0, 3, "v1", "v1", 200);
	expect_unit(&h.r[2].m, 0, 0, "v2", "v2", 100);  /* v2 uploaded it */
	expect_unit(&h.r[2].m, 0, 1, "v1", "v1", 200);  /* locally from v2, in the bucket only from v1 */
	expect_unit(&h.r[2].m, 1, 1, "v2", "v2", 100);
	assert_string_equal(unit(h.r[2].comp, 0, 1)->source, "v2");
	assert_string_equal(unit(h.up[2].remote, 0, 1)->source, "v1");
	assert_int_equal(unit(h.up[2].remote, 0, 1)->source_step, 100);
	assert_true(h.up[2].remote->complete);
	history_free(&h);
}

static void test_a_unit_whose_files_moved_is_uploaded_whole(void **state)
{
	struct round r1, r2;
	struct tier_persist_result up1, up2;
	char path[128];

	(void)state;
	make_round(&r1, "v1", 1, NULL, ALL, 0);
	assert_int_equal(tier_persist_rewrite(&r1.m, r1.comp, NULL, NULL, 1, &up1), 0);
	make_round(&r2, "v2", 2, r1.comp, FIRST_TWO, 1);  /* written as mp_rank_01 files */
	assert_int_equal(tier_persist_rewrite(&r2.m, r2.comp, &r1.m, up1.remote, 1, &up2), 0);
	/* Of the written units one per layer is selected; the other has different paths than its copy
	 * in the bucket, so it cannot be reused and goes up as written. */
	assert_int_equal(up2.units_new, 2);
	assert_int_equal(up2.units_forced, 2);
	assert_int_equal(up2.units_reused, 4);
	unit_path(path, sizeof(path), 0, 1, 1);
	struct digest want = content("v2", path);
	assert_memory_equal(&entry(&r2.m, path)->ext[0].digest, &want, sizeof(want));
	assert_null(entry(&r2.m, path)->source);
	assert_string_equal(unit(up2.remote, 0, 1)->source, "v2");
	round_free(&r1);
	round_free(&r2);
	pec_composition_free(up1.remote);
	pec_composition_free(up2.remote);
}

static void test_k_persist_zero_uploads_only_what_the_bucket_lacks(void **state)
{
	struct round r1, r2;
	struct tier_persist_result up1, up2;

	(void)state;
	make_round(&r1, "v1", 1, NULL, ALL, 0);
	assert_int_equal(tier_persist_rewrite(&r1.m, r1.comp, NULL, NULL, 0, &up1), 0);
	assert_int_equal(up1.units_forced, 8);
	make_round(&r2, "v2", 2, r1.comp, FIRST_TWO, 0);
	assert_int_equal(tier_persist_rewrite(&r2.m, r2.comp, &r1.m, up1.remote, 0, &up2), 0);
	assert_int_equal(up2.units_new, 0);
	assert_int_equal(up2.units_reused, 8);
	expect_unit(&r2.m, 0, 0, "v1", "v1", 1);
	round_free(&r1);
	round_free(&r2);
	pec_composition_free(up1.remote);
	pec_composition_free(up2.remote);
}

static void test_a_safetensors_shard_is_never_replaced(void **state)
{
	struct round r1, r2;
	struct tier_persist_result up1, up2;
	struct pec_unit_file f1[] = { { { 0, 0 }, "model.safetensors" }, { { 0, 1 }, "model.safetensors" } };
	struct pec_unit_file f2[] = { { { 0, 0 }, "model.safetensors" }, { { 0, 1 }, "model.safetensors" } };
	struct pec_version_in v1 = { .name = "v1", .step = 1, .files = f1, .n_files = 2 };
	struct pec_version_in v2 = { .name = "v2", .step = 2, .files = f2, .n_files = 2 };

	(void)state;
	assert_int_equal(pec_compose_next(NULL, &v1, NULL, &r1.comp), 0);
	assert_int_equal(tier_manifest_init(&r1.m, "run", "v1", "n"), 0);
	add_file(&r1.m, "model.safetensors", "v1");
	assert_int_equal(tier_persist_rewrite(&r1.m, r1.comp, NULL, NULL, 1, &up1), 0);
	assert_int_equal(pec_compose_next(r1.comp, &v2, NULL, &r2.comp), 0);
	assert_int_equal(tier_manifest_init(&r2.m, "run", "v2", "n"), 0);
	add_file(&r2.m, "model.safetensors", "v2");
	assert_int_equal(tier_persist_rewrite(&r2.m, r2.comp, &r1.m, up1.remote, 1, &up2), 0);
	assert_int_equal(up2.units_reused, 0);
	struct digest want = content("v2", "model.safetensors");
	assert_memory_equal(&r2.m.entries[0].ext[0].digest, &want, sizeof(want));
	round_free(&r1);
	round_free(&r2);
	pec_composition_free(up1.remote);
	pec_composition_free(up2.remote);
}

static void test_previous_manifest_and_composition_come_together(void **state)
{
	struct round r;
	struct tier_persist_result up;

	(void)state;
	make_round(&r, "v1", 1, NULL, ALL, 0);
	assert_int_equal(tier_persist_rewrite(&r.m, r.comp, &r.m, NULL, 1, &up), -EINVAL);
	assert_int_equal(tier_persist_rewrite(&r.m, r.comp, NULL, r.comp, 1, &up), -EINVAL);
	assert_int_equal(tier_persist_rewrite(&r.m, NULL, NULL, NULL, 1, &up), -EINVAL);
	round_free(&r);
}

/* ---- the manifest's source fields ---- */

static int entry_order(const void *a, const void *b)
{
	return tier_manifest_path_cmp(((const struct tier_manifest_entry *)a)->path,
				      ((const struct tier_manifest_entry *)b)->path);
}

static void test_source_fields_survive_encode_and_decode(void **state)
{
	struct history h;
	struct tier_manifest d;
	char *text, err[256];
	size_t len;

	(void)state;
	upload_history(&h);
	/* readers take entries in manifest order only, which is how a walk of the metadata lists them */
	qsort(h.r[2].m.entries, h.r[2].m.n, sizeof(*h.r[2].m.entries), entry_order);
	assert_int_equal(tier_manifest_encode(&h.r[2].m, &text, &len), 0);
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	expect_unit(&d, 0, 1, "v1", "v1", 200);
	expect_unit(&d, 0, 2, "v3", NULL, 0);
	free(text);
	tier_manifest_free(&d);
	history_free(&h);
}

static void expect_refused(const char *entry_json)
{
	char text[1024], err[256] = "";
	struct tier_manifest d;

	snprintf(text, sizeof(text), "{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,"
		 "\"sealed_ns\":1,\"seal_seq\":1,\"chunk_size\":65536,\"entries\":[%s]}", entry_json);
	assert_int_equal(tier_manifest_decode(text, strlen(text), &d, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "source"));
}

static void test_malformed_source_fields_are_refused(void **state)
{
	(void)state;
	expect_refused("{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":1,\"size\":0,\"extents\":[],"
		       "\"source\":\"v0\"}");
	expect_refused("{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":1,\"size\":0,\"extents\":[],"
		       "\"staleness\":3}");
	expect_refused("{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":1,\"size\":0,\"extents\":[],"
		       "\"source\":\"../v0\",\"staleness\":3}");
	expect_refused("{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":1,\"size\":0,\"extents\":[],"
		       "\"source\":\"v0\",\"staleness\":-1}");
	expect_refused("{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":1,\"size\":0,\"extents\":[],"
		       "\"source\":7,\"staleness\":1}");
	expect_refused("{\"path\":\"d\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":1,\"source\":\"v0\",\"staleness\":1}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_upload_of_a_run_carries_every_unit),
		cmocka_unit_test(test_unselected_units_point_at_the_previous_upload),
		cmocka_unit_test(test_remote_copies_chain_across_uploads),
		cmocka_unit_test(test_a_unit_whose_files_moved_is_uploaded_whole),
		cmocka_unit_test(test_k_persist_zero_uploads_only_what_the_bucket_lacks),
		cmocka_unit_test(test_a_safetensors_shard_is_never_replaced),
		cmocka_unit_test(test_previous_manifest_and_composition_come_together),
		cmocka_unit_test(test_source_fields_survive_encode_and_decode),
		cmocka_unit_test(test_malformed_source_fields_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
