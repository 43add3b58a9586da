/* version_count.c - the figures of a version: its regular files, their logical bytes and the distinct
 * chunk bytes they store. An open version's come from its tally (store/meta_tally.c), which every
 * commit keeps: .pec/versions shows them, and a seal records them with what its composition adds.
 * Both walk the version's files instead when the tally is missing or could not keep up. A mount
 * that starts with an open version seeds its tally with the same walk before it serves anything.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"

struct walk {
	uint64_t *dirs;
	size_t ndirs, capdirs;
	uint64_t files, logical_bytes;
	struct data_unique *u;
	struct fs_ctx *ctx;
	bool live;  /* counted while the version changes: a file removed meanwhile is skipped */
	uint64_t dir, seed_vino;  /* seeding: the directory listed, and the version whose tally it fills */
	int err;
};

/* Seeding: every name of a regular file, and its extents once, at its recorded name. */
static int seed_cb(struct walk *w, const char *name, uint64_t ino)
{
	struct meta_inode mi;
	int rc = meta_get_inode(w->ctx->meta, ino, &mi);
	if (rc < 0)
		return rc;
	rc = meta_tally_seed_file(w->ctx->meta, w->seed_vino, mi.size);
	if (rc == 0 && mi.parent == w->dir && strcmp(mi.name, name) == 0)
		rc = meta_tally_seed_extents(w->ctx->meta, w->seed_vino, ino);
	return rc;
}

static int walk_cb(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct walk *w = arg;
	if (S_ISDIR(mode)) {
		if (w->ndirs == w->capdirs) {
			size_t ncap = w->capdirs ? w->capdirs * 2 : 16;
			uint64_t *nd = realloc(w->dirs, ncap * sizeof(*nd));
			if (!nd)
				return -ENOMEM;
			w->dirs = nd;
			w->capdirs = ncap;
		}
		w->dirs[w->ndirs++] = ino;
		return 0;
	}
	if (!S_ISREG(mode))
		return 0;
	if (w->seed_vino)
		return seed_cb(w, name, ino);
	/* A loaded file's live size; the record's for the others (at seal both agree: every loaded
	 * file of the version was persisted before the walk). */
	uint64_t size;
	if (fs_inode_peek_size(w->ctx, ino, &size) < 0) {
		struct meta_inode mi;
		int rc = meta_get_inode(w->ctx->meta, ino, &mi);
		if (rc == -ENOENT && w->live)
			return 0;
		if (rc < 0)
			return rc;
		size = mi.size;
	}
	w->files++;
	w->logical_bytes += size;
	return data_unique_add_file(w->ctx->dc, w->u, ino);
}

static int version_count(struct fs_ctx *ctx, uint64_t root, const struct fs_compose *extra, bool live,
			 uint64_t seed_vino, struct meta_version *v)
{
	struct walk w = { .ctx = ctx, .u = data_unique_new(), .live = live, .seed_vino = seed_vino };
	int rc = 0;
	if (!w.u)
		return -ENOMEM;
	w.dirs = malloc(sizeof(*w.dirs));
	if (!w.dirs) {
		rc = -ENOMEM;
		goto out;
	}
	w.dirs[0] = root;
	w.ndirs = 1;
	w.capdirs = 1;
	while (w.ndirs > 0 && rc == 0) {
		w.dir = w.dirs[--w.ndirs];
		rc = meta_list_dir(ctx->meta, w.dir, NULL, walk_cb, &w);
	}
	for (size_t i = 0; rc == 0 && extra && i < extra->n_sources; i++)
		rc = data_unique_add_file(ctx->dc, w.u, extra->sources[i]);
	if (rc == 0) {
		v->files = w.files + (extra ? extra->files : 0);
		v->logical_bytes = w.logical_bytes + (extra ? extra->logical_bytes : 0);
		v->stored_bytes = data_unique_bytes(w.u);
	}
out:
	free(w.dirs);
	data_unique_free(w.u);
	return rc;
}

int fs_version_count(struct fs_ctx *ctx, uint64_t vino, const struct fs_compose *extra, struct meta_version *v)
{
	struct meta_tally_figures f;
	/* The tally keeps the chunks of a file unlinked while open until it is freed; the sealed
	 * version does not hold that file, so only a walk counts it right. */
	if (!fs_inode_version_has_unlinked(ctx, vino) &&
	    meta_tally_count_with(ctx->meta, vino, extra ? extra->sources : NULL, extra ? extra->n_sources : 0,
				  &f) == 0) {
		v->files = f.files + (extra ? extra->files : 0);
		v->logical_bytes = f.logical_bytes + (extra ? extra->logical_bytes : 0);
		v->stored_bytes = f.stored_bytes;
		return 0;
	}
	return version_count(ctx, vino, extra, false, 0, v);
}

/* Without ns_lock: the walk reads the database and the inode table, each safe on its own, and a
 * version of 100k files takes seconds to walk, during which every create, rename and close of the
 * mount would wait. Files created, removed or renamed during the walk may be missed or counted
 * twice: these are an open version's figures of the moment, and its seal counts exactly. */
static int walk_live(struct fs_ctx *ctx, uint64_t vino, struct meta_version *v)
{
	return version_count(ctx, vino, NULL, true, 0, v);
}

int fs_version_live_counts(struct fs_ctx *ctx, uint64_t vino, struct meta_version *v)
{
	struct meta_tally_figures f;
	if (meta_tally_get(ctx->meta, vino, &f) < 0)
		return walk_live(ctx, vino, v);
	v->files = f.files;
	v->logical_bytes = f.logical_bytes;
	v->stored_bytes = f.stored_bytes;
	return 0;
}

int fs_version_seed_tally(struct fs_ctx *ctx, uint64_t vino)
{
	struct meta_version scratch;
	int rc = meta_tally_track(ctx->meta, vino);
	if (rc == 0)
		rc = version_count(ctx, vino, NULL, false, vino, &scratch);
	if (rc < 0) {
		meta_tally_untrack(ctx->meta, vino);  /* its figures are walked for, as before tallies */
		pecfs_log_warn("cannot count open version %llu ahead: %s", (unsigned long long)vino, strerror(-rc));
	}
	return rc;
}
