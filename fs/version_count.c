/* version_count.c - the figures of a version: its regular files, their logical bytes and the distinct
 * chunk bytes they store. A seal records them; .pec/versions shows them live for open versions.
 */
#include <errno.h>
#include <stdlib.h>

#include "compose.h"

struct walk {
	uint64_t *dirs;
	size_t ndirs, capdirs;
	uint64_t files, logical_bytes;
	struct data_unique *u;
	struct fs_ctx *ctx;
	bool live;  /* counted while the version changes: a file removed meanwhile is skipped */
	int err;
};

static int walk_cb(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct walk *w = arg;
	(void)name;
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
			 struct meta_version *v)
{
	struct walk w = { .ctx = ctx, .u = data_unique_new(), .live = live };
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
		uint64_t dir = w.dirs[--w.ndirs];
		rc = meta_list_dir(ctx->meta, dir, NULL, walk_cb, &w);
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

int fs_version_count(struct fs_ctx *ctx, uint64_t root, const struct fs_compose *extra, struct meta_version *v)
{
	return version_count(ctx, root, extra, false, v);
}

/* Without ns_lock: the walk reads the database and the inode table, each safe on its own, and a
 * version of 100k files takes seconds to walk, during which every create, rename and close of the
 * mount would wait. Files created, removed or renamed during the walk may be missed or counted
 * twice: these are an open version's figures of the moment, and its seal counts exactly. */
int fs_version_live_counts(struct fs_ctx *ctx, uint64_t vino, struct meta_version *v)
{
	return version_count(ctx, vino, NULL, true, v);
}
