/* tier_walk.c - a sealed version's manifest from the metadata: every entry below the version
 * directory, depth first in name order, with each regular file's extents and chunk lengths. A file
 * with several names (hard links) is listed in full at the first name the walk meets; each later
 * name is a link entry naming that one.
 * The version is sealed (immutable), so a walk without a snapshot sees a consistent tree; a removal
 * racing the walk (rm -r of a sealed version) shows up as -ENOENT and the upload is abandoned.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdbool.h>

#include "tier_impl.h"

/* A file with several names, seen at its first: which entry lists it. An open-addressing table
 * keyed by inode (0 marks a free slot; no inode is 0), so a version of many linked files walks in
 * linear time. */
struct walk_seen {
	uint64_t ino;
	size_t entry;
};

struct walk {
	struct tier *t;
	struct tier_manifest *m;
	struct tier_manifest_entry *file;
	struct walk_seen *seen;
	size_t nseen, capseen;
	char path[PATH_MAX];
	size_t plen;
	int rc;
};

static int walk_dir(struct walk *w, uint64_t dir);

static int walk_extent(const struct meta_extent *e, void *arg)
{
	struct walk *w = arg;
	struct tier_manifest_extent x = { .file_off = e->file_off, .len = e->len, .chunk_off = e->chunk_off,
					.digest = e->digest };
	struct meta_chunk c;
	int rc = meta_get_chunk(w->t->meta, &e->digest, &c);

	if (rc < 0)
		return rc;
	x.chunk_len = c.len;
	return tier_manifest_add_extent(w->file, &x);
}

static struct walk_seen *walk_seen_slot(struct walk_seen *t, size_t cap, uint64_t ino)
{
	size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (cap - 1);

	while (t[i].ino != 0 && t[i].ino != ino)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

static int walk_seen_grow(struct walk *w)
{
	size_t cap = w->capseen ? w->capseen * 2 : 64;
	struct walk_seen *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < w->capseen; i++)
		if (w->seen[i].ino)
			*walk_seen_slot(t, cap, w->seen[i].ino) = w->seen[i];
	free(w->seen);
	w->seen = t;
	w->capseen = cap;
	return 0;
}

/* A non-directory with several names: a link entry when a name of it was listed already, else
 * remembered as listed at the entry about to be added. *linked says which. */
static int walk_links(struct walk *w, const struct meta_inode *mi, bool *linked)
{
	if (2 * (w->nseen + 1) > w->capseen) {
		int rc = walk_seen_grow(w);
		if (rc < 0)
			return rc;
	}
	struct walk_seen *slot = walk_seen_slot(w->seen, w->capseen, mi->ino);

	*linked = slot->ino != 0;
	if (*linked) {
		int rc = tier_manifest_add_entry(w->m, w->path, mi->mode, 0, mi->mtime_ns, NULL, NULL);
		return rc < 0 ? rc : tier_manifest_set_link(w->m, slot->entry);
	}
	*slot = (struct walk_seen){ mi->ino, w->m->n };
	w->nseen++;
	return 0;
}

static int walk_entry(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct walk *w = arg;
	size_t saved = w->plen, n = strlen(name);
	struct meta_inode mi;
	char target[PATH_MAX];
	int rc;

	(void)mode;
	if (saved + n + 2 > sizeof(w->path))
		return -ENAMETOOLONG;
	if (saved)
		w->path[w->plen++] = '/';
	memcpy(w->path + w->plen, name, n + 1);
	w->plen += n;
	rc = meta_get_inode(w->t->meta, ino, &mi);
	if (rc < 0)
		goto out;
	bool linked = false;
	if (!S_ISDIR(mi.mode) && mi.nlink > 1 && ((rc = walk_links(w, &mi, &linked)) < 0 || linked))
		goto out;
	if (S_ISLNK(mi.mode)) {
		rc = meta_get_symlink(w->t->meta, ino, target, sizeof(target));
		if (rc >= 0)
			rc = tier_manifest_add_entry(w->m, w->path, mi.mode, 0, mi.mtime_ns, target, NULL);
	} else if (S_ISDIR(mi.mode)) {
		rc = tier_manifest_add_entry(w->m, w->path, mi.mode, 0, mi.mtime_ns, NULL, NULL);
		if (rc >= 0)
			rc = walk_dir(w, ino);
	} else if (S_ISREG(mi.mode)) {
		rc = tier_manifest_add_entry(w->m, w->path, mi.mode, mi.size, mi.mtime_ns, NULL, &w->file);
		if (rc >= 0)
			rc = meta_get_extents(w->t->meta, ino, 0, UINT64_MAX, walk_extent, w);
	} else {
		/* fifo, socket or device node: metadata only */
		struct tier_manifest_entry *e;
		rc = tier_manifest_add_entry(w->m, w->path, mi.mode, 0, mi.mtime_ns, NULL, &e);
		if (rc >= 0 && (S_ISCHR(mi.mode) || S_ISBLK(mi.mode))) {
			e->rdev_major = major((dev_t)mi.rdev);
			e->rdev_minor = minor((dev_t)mi.rdev);
		}
	}
out:
	w->plen = saved;
	w->path[saved] = '\0';
	return rc < 0 ? rc : 0;
}

static int walk_dir(struct walk *w, uint64_t dir)
{
	return meta_list_dir(w->t->meta, dir, NULL, walk_entry, w);
}

int tier_walk_version(struct tier *t, const struct meta_version *v, struct tier_manifest *out)
{
	struct meta_inode run, ver;
	struct walk w = { .t = t, .m = out };
	int rc;

	rc = meta_get_inode(t->meta, v->run_ino, &run);
	if (rc == 0)
		rc = meta_get_inode(t->meta, v->ino, &ver);
	if (rc < 0)
		return rc;
	rc = tier_manifest_init(out, run.name, ver.name, t->node_id);
	if (rc < 0)
		return rc;
	out->step = v->step;
	out->sealed_ns = v->sealed_ns;
	out->seal_seq = v->seal_seq;
	out->chunk_size = store_chunk_size(t->st);
	rc = walk_dir(&w, v->ino);
	free(w.seen);
	if (rc < 0)
		tier_manifest_free(out);
	return rc;
}
