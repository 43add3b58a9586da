/* tier_import.c - `mount --from`: the bucket's committed versions become local sealed versions whose
 * chunks stay remote until read. Per version: the parts its COMMIT names are read and merged
 * (tier_version_load, tier_version_merge: a path several parts list keeps the first part's entry, a
 * path may not be a directory in one part and a file in another), then one synced batch writes the
 * run (if new), the version directory, its entries, extents, chunk records (no file), 'R' marks and
 * the upload record, so a crash leaves each version either fully imported or absent. Versions
 * already present locally (same run and name) are left alone. Bucket content is untrusted: run and
 * version names taken from keys must be valid names (tier_manifest_name_ok), and permission bits
 * keep no setuid, setgid or sticky bit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "tier_impl.h"

struct dir_slot {
	char *path;             /* "" for the version directory itself */
	struct meta_inode mi;
};

/* A file with several names, imported at its first: where the link entries after it find it. */
struct linked_slot {
	const char *path;       /* the entry's path (owned by the manifest) */
	uint64_t ino, size;
};

struct import {
	struct meta *meta;
	struct linked_slot *linked;  /* in path order, as entries come */
	size_t nlinked, caplinked;
	struct meta_super sb;
	struct meta_batch *b;
	struct dir_slot *dirs;
	size_t ndirs, capdirs;
	struct meta_version v;
	int64_t now;
	uint64_t epoch;         /* bucket GC epoch the imported chunks were seen in */
};

static int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void imp_inode(struct import *im, struct meta_inode *mi, uint64_t parent, const char *name, uint32_t mode,
		      int64_t mtime)
{
	memset(mi, 0, sizeof(*mi));
	mi->ino = im->sb.next_ino++;
	mi->parent = parent;
	mi->version_ino = im->v.ino ? im->v.ino : mi->ino;
	mi->mode = mode;
	mi->uid = getuid();
	mi->gid = getgid();
	mi->nlink = S_ISDIR(mode) ? 2 : 1;
	mi->atime_ns = mi->ctime_ns = im->now;
	mi->mtime_ns = mtime ? mtime : im->now;
	snprintf(mi->name, sizeof(mi->name), "%s", name);
}

static int dir_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct dir_slot *)elem)->path);
}

static struct dir_slot *dir_find(struct import *im, const char *path)
{
	return bsearch(path, im->dirs, im->ndirs, sizeof(*im->dirs), dir_cmp);
}

/* Adds directory path (its parent must exist) keeping dirs sorted. */
static int dir_add(struct import *im, const char *path, uint32_t mode, int64_t mtime, struct dir_slot **out);

/* The directory slot of path's parent, creating missing ancestors (0755). */
static int dir_parent(struct import *im, const char *path, struct dir_slot **out, const char **base)
{
	const char *slash = strrchr(path, '/');
	char parent[4096];

	*base = slash ? slash + 1 : path;
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 0, path);
	*out = dir_find(im, parent);
	if (*out)
		return 0;
	return dir_add(im, parent, S_IFDIR | 0755, 0, out);
}

static int dir_add(struct import *im, const char *path, uint32_t mode, int64_t mtime, struct dir_slot **out)
{
	struct dir_slot *parent, *slot;
	const char *base;
	size_t at;
	int rc = dir_parent(im, path, &parent, &base);

	if (rc < 0)
		return rc;
	uint64_t pino = parent->mi.ino;
	parent->mi.nlink++;
	if (im->ndirs == im->capdirs) {
		size_t cap = im->capdirs * 2 + 16;
		slot = realloc(im->dirs, cap * sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		im->dirs = slot;
		im->capdirs = cap;
	}
	for (at = im->ndirs; at > 0 && strcmp(im->dirs[at - 1].path, path) > 0; at--)
		;
	memmove(&im->dirs[at + 1], &im->dirs[at], (im->ndirs - at) * sizeof(*im->dirs));
	slot = &im->dirs[at];
	slot->path = strdup(path);
	if (!slot->path) {
		memmove(&im->dirs[at], &im->dirs[at + 1], (im->ndirs - at) * sizeof(*im->dirs));
		return -ENOMEM;
	}
	im->ndirs++;
	imp_inode(im, &slot->mi, pino, base, mode, mtime);
	meta_batch_put_dirent(im->b, pino, base, slot->mi.ino, S_IFDIR);
	*out = slot;
	return 0;
}

/* The permission bits an imported entry keeps: no setuid, setgid or sticky bit from a bucket. */
static uint32_t import_mode(uint32_t mode)
{
	return mode & (S_IFMT | 0777);
}

/* Where an entry's bytes come from when the manifest names an earlier version (`s3-persist pec`, or a
 * unit the version inherited): the same two xattrs fs/compose.c stores on inherited files, so that a
 * --from mount tells the remote composition the way a local mount tells the local one. */
#define IMPORT_XATTR_SOURCE "user.pec.source"
#define IMPORT_XATTR_STALENESS "user.pec.staleness"

static void import_source(struct import *im, uint64_t ino, const struct tier_manifest_entry *e)
{
	char stale[32];
	int n = snprintf(stale, sizeof(stale), "%lld", (long long)e->staleness);

	meta_batch_put_xattr(im->b, ino, IMPORT_XATTR_SOURCE, e->source, strlen(e->source));
	meta_batch_put_xattr(im->b, ino, IMPORT_XATTR_STALENESS, stale, (size_t)n);
}

static int linked_cmp(const void *key, const void *elem)
{
	return tier_manifest_path_cmp(key, ((const struct linked_slot *)elem)->path);
}

/* Remembers the inode of e, the first name of a file with several. */
static int linked_add(struct import *im, const struct tier_manifest_entry *e, const struct meta_inode *mi)
{
	if (im->nlinked == im->caplinked) {
		size_t cap = im->caplinked ? im->caplinked * 2 : 16;
		struct linked_slot *n = realloc(im->linked, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		im->linked = n;
		im->caplinked = cap;
	}
	im->linked[im->nlinked++] = (struct linked_slot){ e->path, mi->ino, mi->size };
	return 0;
}

/* Another name of a file imported before (the manifest decoder and the merge made sure it is one
 * of this version's, of the same type, and listed earlier). */
static int import_link(struct import *im, const struct tier_manifest_entry *e, struct dir_slot *parent,
		       const char *base)
{
	const struct linked_slot *t = im->nlinked ? bsearch(e->link, im->linked, im->nlinked, sizeof(*im->linked),
							    linked_cmp) : NULL;
	if (!t)
		return -EBADMSG;
	if (S_ISREG(e->mode)) {
		im->v.files++;  /* every name counts, as a local seal counts them */
		im->v.logical_bytes += t->size;
	}
	meta_batch_put_dirent(im->b, parent->mi.ino, base, t->ino, e->mode & S_IFMT);
	meta_batch_put_link(im->b, t->ino, parent->mi.ino, base);
	return 0;
}

static int import_file(struct import *im, const struct tier_manifest_entry *e, uint64_t *stored)
{
	struct dir_slot *parent;
	struct meta_inode mi;
	const char *base;
	int rc = dir_parent(im, e->path, &parent, &base);

	if (rc < 0)
		return rc;
	if (e->link)
		return import_link(im, e, parent, base);
	imp_inode(im, &mi, parent->mi.ino, base, import_mode(e->mode), e->mtime_ns);
	mi.nlink = e->nlinks;
	if (e->nlinks > 1 && (rc = linked_add(im, e, &mi)) < 0)
		return rc;
	if (S_ISCHR(e->mode) || S_ISBLK(e->mode))
		mi.rdev = makedev(e->rdev_major, e->rdev_minor);
	if (S_ISLNK(e->mode)) {
		mi.size = strlen(e->target);
		meta_batch_put_symlink(im->b, mi.ino, e->target);
	} else if (S_ISREG(e->mode)) {
		mi.size = e->size;
		im->v.files++;
		im->v.logical_bytes += e->size;
		for (size_t i = 0; i < e->next; i++) {
			const struct tier_manifest_extent *x = &e->ext[i];
			struct meta_extent me = { .file_off = x->file_off, .len = x->len, .digest = x->digest,
						  .chunk_off = x->chunk_off };
			struct meta_chunk c;
			meta_batch_put_extent(im->b, mi.ino, &me);
			if (meta_get_chunk(im->meta, &x->digest, &c) == -ENOENT) {
				c = (struct meta_chunk){ .digest = x->digest, .len = x->chunk_len };
				meta_batch_put_chunk(im->b, &c);
				*stored += x->chunk_len;
			}
			struct meta_remote r = { .epoch = im->epoch, .packed = x->loc.packed, .pack = x->loc.pack,
						 .pack_off = x->loc.off };
			meta_batch_mark_remote(im->b, &x->digest, &r);
		}
		if (e->source)
			import_source(im, mi.ino, e);
	}
	if (e->nlinks > 1)
		im->linked[im->nlinked - 1].size = mi.size;
	meta_batch_put_inode(im->b, &mi);
	meta_batch_put_dirent(im->b, parent->mi.ino, base, mi.ino, mi.mode & S_IFMT);
	return 0;
}

static void dirs_clear(struct import *im)
{
	for (size_t i = 0; i < im->ndirs; i++)
		free(im->dirs[i].path);
	im->ndirs = 0;
}

/* One version from the merged entries of its parts (ms, in node name order), in one synced batch.
 * run is updated (nlink). */
static int import_version(struct import *im, struct meta_inode *run, const char *name, const struct tier_manifest *ms,
			  const struct tier_merged *all)
{
	struct meta_upload rec = { 0 };
	uint64_t stored = 0;
	int rc = 0;

	im->capdirs = 16;
	im->dirs = im->dirs ? im->dirs : malloc(im->capdirs * sizeof(*im->dirs));
	if (!im->dirs)
		return -ENOMEM;
	memset(&im->v, 0, sizeof(im->v));
	im->now = wall_ns();
	meta_batch_clear(im->b);
	/* The version directory is dirs[0] with path "", the parent of every top-level entry. */
	im->dirs[0].path = strdup("");
	if (!im->dirs[0].path)
		return -ENOMEM;
	im->ndirs = 1;
	imp_inode(im, &im->dirs[0].mi, run->ino, name, S_IFDIR | 0755, ms[0].sealed_ns);
	im->v.ino = im->dirs[0].mi.ino;
	run->nlink++;
	meta_batch_put_dirent(im->b, run->ino, name, im->v.ino, S_IFDIR);
	/* Each path once, directories before their contents (tier_version_merge). */
	for (size_t i = 0; i < all->n && rc == 0; i++) {
		const struct tier_manifest_entry *e = all->e[i];
		struct dir_slot *d;
		if (S_ISDIR(e->mode))
			rc = dir_add(im, e->path, import_mode(e->mode), e->mtime_ns, &d);
		else
			rc = import_file(im, e, &stored);
	}
	if (rc < 0)
		goto out;
	im->v.run_ino = run->ino;
	im->v.state = META_VERSION_SEALED;
	im->v.step = ms[0].step;
	im->v.create_seq = im->sb.next_seq++;
	im->v.seal_seq = im->sb.next_seq++;
	im->v.sealed_ns = ms[0].sealed_ns ? ms[0].sealed_ns : im->now;
	im->v.stored_bytes = stored;
	for (size_t i = 0; i < im->ndirs; i++)
		meta_batch_put_inode(im->b, &im->dirs[i].mi);
	meta_batch_put_inode(im->b, run);
	meta_batch_put_version(im->b, &im->v);
	rec.uploaded_bytes = stored;
	rec.committed_ns = im->now;
	meta_batch_put_upload(im->b, run->ino, im->v.ino, &rec);
	meta_batch_put_super(im->b, &im->sb);
	rc = meta_batch_commit(im->meta, im->b, true);
out:
	dirs_clear(im);
	im->nlinked = 0;
	return rc;
}

struct names {
	char **v;
	size_t n;
};

static int collect_prefix(void *ctx, const struct s3_object *o)
{
	struct names *ns = ctx;
	size_t len = strlen(o->key);
	const char *start;
	char **v;

	if (!o->is_prefix || len < 2)
		return 0;
	/* "…/NAME/" -> "NAME" */
	for (start = o->key + len - 2; start > o->key && start[-1] != '/'; start--)
		;
	v = realloc(ns->v, (ns->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ns->v = v;
	ns->v[ns->n] = strndup(start, (size_t)(o->key + len - 1 - start));
	if (!ns->v[ns->n])
		return -ENOMEM;
	ns->n++;
	return 0;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* The run directory named name under the root, created in its own batch when missing. */
static int import_run(struct import *im, const char *name, struct meta_inode *run)
{
	struct meta_inode root;
	uint64_t ino;
	uint32_t mode;
	int rc = meta_get_dirent(im->meta, META_ROOT_INO, name, &ino, &mode);

	if (rc == 0)
		return S_ISDIR(mode) ? meta_get_inode(im->meta, ino, run) : -ENOTDIR;
	if (rc != -ENOENT)
		return rc;
	rc = meta_get_inode(im->meta, META_ROOT_INO, &root);
	if (rc < 0)
		return rc;
	im->now = wall_ns();
	memset(&im->v, 0, sizeof(im->v));
	imp_inode(im, run, META_ROOT_INO, name, S_IFDIR | 0755, 0);
	run->version_ino = 0;  /* runs are above the version level */
	root.nlink++;
	meta_batch_clear(im->b);
	meta_batch_put_inode(im->b, run);
	meta_batch_put_inode(im->b, &root);
	meta_batch_put_dirent(im->b, META_ROOT_INO, name, run->ino, S_IFDIR);
	meta_batch_put_super(im->b, &im->sb);
	return meta_batch_commit(im->meta, im->b, true);
}

/* Imports only between collections: chunks seen now stay until the next one has read this node's state. */
static int import_epoch(struct s3_client *c, const char *prefix, uint64_t *epoch, struct s3_result *res)
{
	struct tier_gc_epoch ep;
	int rc = tier_gc_epoch_get(c, prefix, &ep, res);

	if (rc < 0)
		return rc;
	if (ep.collecting && !tier_gc_epoch_stale(&ep)) {
		snprintf(res->message, sizeof(res->message),
			 "a bucket garbage collection (node %.64s) is running; mount again when it is over", ep.node);
		return -EAGAIN;
	}
	*epoch = ep.epoch;
	return 0;
}

int tier_import(struct store *st, const struct tier_options *opt, FILE *progress, uint64_t *imported, char *err,
		size_t errsz)
{
	struct import im = { .meta = store_meta(st) };
	struct names runs = { 0 };
	struct s3_result res = { 0 };
	struct s3_client *c = NULL;
	struct tier_options ro;
	char bucket[S3_BUCKET_MAX], prefix[TIER_PREFIX_MAX], key[2048];
	int rc;

	*imported = 0;
	ro = *opt;
	if (!ro.max_attempts)
		ro.max_attempts = TIER_READER_ATTEMPTS;  /* one failed request fails the mount */
	rc = tier_client_new(&ro, 8, NULL, NULL, &c, bucket, prefix, err, errsz);
	if (rc < 0)
		return rc;
	im.b = meta_batch_new();
	rc = im.b ? meta_get_super(im.meta, &im.sb) : -ENOMEM;
	if (rc < 0)
		goto out;
	rc = import_epoch(c, prefix, &im.epoch, &res);
	if (rc < 0) {
		snprintf(err, errsz, "%s: %s", opt->uri, res.message[0] ? res.message : strerror(-rc));
		goto out;
	}
	snprintf(key, sizeof(key), "%s%sruns/", prefix, prefix[0] ? "/" : "");
	rc = s3_list(c, key, "/", 0, collect_prefix, &runs, &res);
	if (rc < 0) {
		snprintf(err, errsz, "listing %s: %s", opt->uri, res.message[0] ? res.message : strerror(-rc));
		goto out;
	}
	for (size_t r = 0; r < runs.n && rc == 0; r++) {
		struct names vers = { 0 };
		struct meta_inode run;
		snprintf(key, sizeof(key), "%s%sruns/%s/", prefix, prefix[0] ? "/" : "", runs.v[r]);
		if (!tier_manifest_name_ok(runs.v[r])) {
			snprintf(err, errsz, "%s: not a valid run name (pecfs never writes one)", key);
			rc = -EBADMSG;
			break;
		}
		rc = s3_list(c, key, "/", 0, collect_prefix, &vers, &res);
		if (rc == 0 && vers.n > 0)
			rc = import_run(&im, runs.v[r], &run);
		for (size_t v = 0; v < vers.n && rc == 0; v++) {
			struct tier_manifest_set ml = { 0 };
			struct tier_commit commit;
			struct tier_merged all = { 0 };
			uint64_t ino, size;
			uint32_t mode;
			char vkey[2600], mmsg[600] = "";
			if (!tier_manifest_name_ok(vers.v[v])) {
				snprintf(err, errsz, "%s%.300s/: not a valid version name (pecfs never writes one)", key,
					 vers.v[v]);
				rc = -EBADMSG;
				break;
			}
			if (meta_get_dirent(im.meta, run.ino, vers.v[v], &ino, &mode) == 0)
				continue;  /* already here */
			snprintf(vkey, sizeof(vkey), "%s%s/COMMIT", key, vers.v[v]);
			rc = s3_head(c, vkey, &size, NULL, &res);
			if (rc == -ENOENT) {
				rc = 0;
				continue;  /* not committed: not a version yet */
			}
			if (rc < 0) {  /* unknown (the server is unreachable): never skip a version silently */
				snprintf(err, errsz, "checking %s/%s: %s", runs.v[r], vers.v[v],
					 res.message[0] ? res.message : strerror(-rc));
				break;
			}
			rc = tier_version_load(c, prefix, runs.v[r], vers.v[v], &commit, &ml, mmsg, sizeof(mmsg));
			if (rc == -ENOENT) {
				rc = 0;
				continue;  /* COMMIT gone since the HEAD: retired by a collection */
			}
			if (rc == 0)
				rc = tier_version_merge(&ml, &all, mmsg, sizeof(mmsg));
			if (rc == 0)
				rc = import_version(&im, &run, vers.v[v], ml.m, &all);
			if (rc < 0)
				snprintf(err, errsz, "importing %s/%s: %s", runs.v[r], vers.v[v],
					 mmsg[0] ? mmsg : strerror(-rc));
			else {
				(*imported)++;
				if (progress)
					fprintf(progress, "imported %s/%s (%zu node manifest%s)\n", runs.v[r], vers.v[v],
						ml.n, ml.n == 1 ? "" : "s");
			}
			tier_merged_free(&all);
			tier_manifest_set_free(&ml);
			tier_commit_free(&commit);
		}
		if (rc < 0 && !err[0])
			snprintf(err, errsz, "listing %s: %s", key, res.message[0] ? res.message : strerror(-rc));
		names_free(&vers);
		if (opt->import_progress)
			opt->import_progress(opt->import_progress_ctx, r + 1, runs.n);
	}
out:
	names_free(&runs);
	dirs_clear(&im);
	free(im.dirs);
	free(im.linked);
	meta_batch_free(im.b);
	s3_client_free(c);
	return rc;
}
