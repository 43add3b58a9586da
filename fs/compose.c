/* compose.c - composition at seal: a version's expert files are matched to units, its composition is
 * computed on the fixed composition of the run's previous sealed version (pec_compose_next), and
 * every expert file it did not write is materialised as a real, read-only inode whose extents are
 * clones of the base version's file at the same path (no bytes copied; the inode holds its own chunk
 * references, so removing an older version never changes this one). Shards the version rewrote with
 * only some experts are merged tensor by tensor (compose_st.c). Everything, with the manifest, goes
 * into the seal's one synced batch: after a crash the version is either open and untouched or
 * sealed and composed. Inherited files carry user.pec.source, which also keeps them out of the raw
 * view (RUN/.pec/raw/<version>).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pec_safetensors.h"
#include "compose.h"

struct cmp_dir {
	char *rel;               /* "" is the version directory */
	struct fs_inode *ind;    /* an existing directory, referenced; NULL for one made here */
	struct meta_inode mi;    /* its record with this batch's changes */
	bool dirty;
};

struct cmp_written {
	char *path;
	uint64_t ino;
};

/* What the version wrote itself. */
struct cmp_walk {
	struct fs_ctx *ctx;
	const struct pec_patterns *pats;
	struct cmp_written *w;
	size_t n_w, cap_w;
	struct pec_unit_file *uf;
	size_t n_uf, cap_uf;
	struct pec_file_problem *pb;
	size_t n_pb, cap_pb;
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int walk_add_unit(struct cmp_walk *w, struct pec_unit u, const char *path)
{
	if (xc_grow((void **)&w->uf, &w->cap_uf, w->n_uf, sizeof(*w->uf)) < 0)
		return -ENOMEM;
	w->uf[w->n_uf++] = (struct pec_unit_file){ .unit = u, .path = path };
	return 0;
}

static int walk_add_problem(struct cmp_walk *w, const char *path, const char *problem)
{
	char *copy = strdup(problem);
	if (!copy || xc_grow((void **)&w->pb, &w->cap_pb, w->n_pb, sizeof(*w->pb)) < 0) {
		free(copy);
		return -ENOMEM;
	}
	w->pb[w->n_pb++] = (struct pec_file_problem){ .path = path, .problem = copy };
	return 0;
}

/* Matches one written file to its units: tensor names for safetensors, else the file patterns. */
static int walk_match(struct cmp_walk *w, const char *path, uint64_t ino)
{
	struct pec_unit u;
	if (ends_with(path, ".safetensors")) {
		struct pec_st_header *h;
		struct pec_unit *units = NULL;
		size_t n = 0;
		char err[256];
		int rc = fs_st_read_header(w->ctx, ino, w->pats, &h, err, sizeof(err));
		if (rc == -EINVAL || rc == -EFBIG)
			return walk_add_problem(w, path, err);
		if (rc < 0)
			return rc;
		rc = pec_st_units(h, &units, &n);
		pec_st_free(h);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = walk_add_unit(w, units[i], path);
		free(units);
		if (rc < 0 || n > 0)
			return rc;
	}
	int m = pec_expert_match_path(w->pats, path, &u);
	if (m < 0)
		return m;
	return m ? walk_add_unit(w, u, path) : 0;
}

static int walk_dir(struct cmp_walk *w, uint64_t dir, const char *prefix)
{
	struct xc_dirents l;
	int rc = xc_list_dir(w->ctx, dir, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		size_t len = strlen(prefix) + strlen(l.e[i].name) + 2;
		char *path = malloc(len);
		if (!path) {
			rc = -ENOMEM;
			break;
		}
		snprintf(path, len, "%s%s%s", prefix, *prefix ? "/" : "", l.e[i].name);
		if (S_ISDIR(l.e[i].mode)) {
			rc = walk_dir(w, l.e[i].ino, path);
			free(path);
			continue;
		}
		if (!S_ISREG(l.e[i].mode) || xc_grow((void **)&w->w, &w->cap_w, w->n_w, sizeof(*w->w)) < 0) {
			free(path);
			rc = S_ISREG(l.e[i].mode) ? -ENOMEM : 0;
			continue;
		}
		w->w[w->n_w++] = (struct cmp_written){ path, l.e[i].ino };
		rc = walk_match(w, path, l.e[i].ino);
	}
	xc_dirents_free(&l);
	return rc;
}

static void walk_free(struct cmp_walk *w)
{
	for (size_t i = 0; i < w->n_w; i++)
		free(w->w[i].path);
	for (size_t i = 0; i < w->n_pb; i++)
		free((char *)w->pb[i].problem);
	free(w->w);
	free(w->uf);
	free(w->pb);
}

static int written_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cmp_written *)a)->path, ((const struct cmp_written *)b)->path);
}

static const struct cmp_written *walk_find(const struct cmp_walk *w, const char *path)
{
	struct cmp_written key = { (char *)path, 0 };
	return bsearch(&key, w->w, w->n_w, sizeof(*w->w), written_cmp);
}

/* ---- the directories inherited files go into ---- */

static long dir_find(struct fs_compose *c, const char *rel)
{
	for (size_t i = 0; i < c->n_dirs; i++)
		if (strcmp(c->dirs[i].rel, rel) == 0)
			return (long)i;
	return -1;
}

static long dir_push(struct fs_compose *c, const char *rel, struct fs_inode *ind, const struct meta_inode *mi)
{
	char *copy = strdup(rel);
	if (!copy || xc_grow((void **)&c->dirs, &c->cap_dirs, c->n_dirs, sizeof(*c->dirs)) < 0) {
		free(copy);
		return -ENOMEM;
	}
	c->dirs[c->n_dirs] = (struct cmp_dir){ .rel = copy, .ind = ind, .mi = *mi, .dirty = ind == NULL };
	return (long)c->n_dirs++;
}

static long dir_push_existing(struct fs_ctx *ctx, struct fs_compose *c, const char *rel, uint64_t ino)
{
	struct fs_inode *ind;
	struct meta_inode mi;
	int rc = fs_inode_get(ctx, ino, &ind);
	if (rc < 0)
		return rc;
	fs_inode_snapshot(ind, &mi);
	long i = dir_push(c, rel, ind, &mi);
	if (i < 0)
		fs_inode_put(ctx, ind);
	return i;
}

/* Index in c->dirs of directory rel of version vino, made (in the batch) when missing. */
static long dir_ensure(struct fs_ctx *ctx, struct fs_compose *c, uint64_t vino, const char *rel)
{
	struct meta_inode mi;
	long i = dir_find(c, rel);
	if (i >= 0)
		return i;
	if (*rel == '\0')
		return dir_push_existing(ctx, c, rel, vino);
	const char *slash = strrchr(rel, '/');
	char *parent_rel = strndup(rel, slash ? (size_t)(slash - rel) : 0);
	if (!parent_rel)
		return -ENOMEM;
	long p = dir_ensure(ctx, c, vino, parent_rel);
	free(parent_rel);
	if (p < 0)
		return p;
	const char *name = slash ? slash + 1 : rel;
	uint64_t ino;
	uint32_t mode;
	int rc = c->dirs[p].ind ? meta_get_dirent(ctx->meta, c->dirs[p].mi.ino, name, &ino, &mode) : -ENOENT;
	if (rc == 0)
		return S_ISDIR(mode) ? dir_push_existing(ctx, c, rel, ino) : -ENOTDIR;
	if (rc != -ENOENT)
		return rc;
	struct meta_inode *pm = &c->dirs[p].mi;
	memset(&mi, 0, sizeof(mi));
	mi.ino = ctx->sb.next_ino++;
	mi.parent = pm->ino;
	mi.version_ino = vino;
	mi.mode = S_IFDIR | 0755;
	mi.uid = pm->uid;
	mi.gid = pm->gid;
	mi.nlink = 2;
	mi.atime_ns = mi.mtime_ns = mi.ctime_ns = fs_now_ns();
	snprintf(mi.name, sizeof(mi.name), "%s", name);
	pm->nlink++;
	c->dirs[p].dirty = true;
	return dir_push(c, rel, NULL, &mi);
}

int fs_compose_add_source(struct fs_compose *c, uint64_t ino)
{
	if (xc_grow((void **)&c->sources, &c->cap_sources, c->n_sources, sizeof(*c->sources)) < 0)
		return -ENOMEM;
	c->sources[c->n_sources++] = ino;
	return 0;
}

/* Puts file `path` of the base version into version vino as an inherited inode. 0 also when the
 * path cannot be placed (logged): the manifest still tells where the unit lives. */
static int inherit_file(struct fs_ctx *ctx, struct fs_compose *c, struct meta_batch *b, uint64_t vino,
			uint64_t base_vino, const char *path, const struct pec_comp_unit *u)
{
	struct meta_inode src, mi;
	uint64_t ino;
	uint32_t mode;
	int rc = xc_resolve(ctx, base_vino, path, &src);
	if (rc < 0 || !S_ISREG(src.mode)) {
		pecfs_log_warn("composition: %s of version %s not found in the base version", path, u->source);
		return rc == -ENOENT || rc == 0 ? 0 : rc;
	}
	const char *slash = strrchr(path, '/');
	char *dir_rel = strndup(path, slash ? (size_t)(slash - path) : 0);
	if (!dir_rel)
		return -ENOMEM;
	long d = dir_ensure(ctx, c, vino, dir_rel);
	free(dir_rel);
	const char *name = slash ? slash + 1 : path;
	if (d >= 0 && c->dirs[d].ind && meta_get_dirent(ctx->meta, c->dirs[d].mi.ino, name, &ino, &mode) == 0)
		d = -EEXIST;
	if (d == -ENOTDIR || d == -EEXIST) {
		pecfs_log_warn("composition: cannot place inherited %s: the version has another entry there", path);
		return 0;
	}
	if (d < 0)
		return (int)d;
	mi = src;
	mi.ino = ctx->sb.next_ino++;
	mi.parent = c->dirs[d].mi.ino;
	mi.version_ino = vino;
	mi.nlink = 1;
	mi.ctime_ns = fs_now_ns();
	snprintf(mi.name, sizeof(mi.name), "%s", name);
	meta_batch_put_inode(b, &mi);
	meta_batch_put_dirent(b, mi.parent, name, mi.ino, mi.mode);
	rc = xc_clone_range(ctx, src.ino, 0, src.size, mi.ino, 0, b, &c->refs);
	if (rc < 0)
		return rc;
	char stale[32];
	int n = snprintf(stale, sizeof(stale), "%lld", (long long)u->staleness);
	meta_batch_put_xattr(b, mi.ino, PEC_XATTR_SOURCE, u->source, strlen(u->source));
	meta_batch_put_xattr(b, mi.ino, PEC_XATTR_STALENESS, stale, (size_t)n);
	c->files++;
	c->logical_bytes += src.size;
	return fs_compose_add_source(c, src.ino);
}

/* Appends a problem found after pec_compose_next (a shard the merge refused) to the composition. */
static int comp_add_problem(struct pec_composition *comp, const char *path, const char *problem)
{
	char **np = realloc(comp->problem_paths, (comp->n_problems + 1) * sizeof(char *));
	if (np)
		comp->problem_paths = np;
	char **nq = realloc(comp->problems, (comp->n_problems + 1) * sizeof(char *));
	if (nq)
		comp->problems = nq;
	if (!np || !nq)
		return -ENOMEM;
	comp->problem_paths[comp->n_problems] = strdup(path);
	comp->problems[comp->n_problems] = strdup(problem);
	comp->n_problems++;
	return comp->problem_paths[comp->n_problems - 1] && comp->problems[comp->n_problems - 1] ? 0 : -ENOMEM;
}

/* Lays out the composition in the version: inherited files and merged shards. */
static int materialize(struct fs_ctx *ctx, struct fs_compose *c, struct meta_batch *b, const struct fs_version *fv,
		       uint64_t base_vino, struct pec_composition *comp, struct cmp_walk *w)
{
	const char **done = NULL;  /* paths placed already: a shard may hold several units */
	size_t n_done = 0, cap_done = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < comp->n_units; i++) {
		const struct pec_comp_unit *u = &comp->units[i];
		if (!u->present || u->written)
			continue;
		for (size_t j = 0; rc == 0 && j < u->n_paths; j++) {
			bool seen = false;
			for (size_t k = 0; k < n_done && !seen; k++)
				seen = strcmp(done[k], u->paths[j]) == 0;
			if (seen)
				continue;
			if (xc_grow((void **)&done, &cap_done, n_done, sizeof(*done)) < 0) {
				rc = -ENOMEM;
				break;
			}
			done[n_done++] = u->paths[j];
			const struct cmp_written *wr = walk_find(w, u->paths[j]);
			if (!wr) {
				rc = inherit_file(ctx, c, b, fv->v.ino, base_vino, u->paths[j], u);
				continue;
			}
			/* The version rewrote this path with only some of its experts: merge tensors,
			 * unless its header was refused already (the manifest says why). */
			struct meta_inode base_mi;
			char problem[256] = "";
			bool refused = false;
			for (size_t k = 0; k < w->n_pb; k++)
				refused |= strcmp(w->pb[k].path, wr->path) == 0;
			if (refused || !ends_with(wr->path, ".safetensors") ||
			    xc_resolve(ctx, base_vino, wr->path, &base_mi) < 0)
				continue;
			int m = fs_compose_merge_st(ctx, c, b, wr->ino, base_mi.ino, w->pats, problem, sizeof(problem));
			if (m < 0 && *problem)
				rc = comp_add_problem(comp, wr->path, problem);
			else if (m < 0)
				rc = m;
			else if (m > 0)
				rc = fs_compose_add_source(c, base_mi.ino);
		}
	}
	free(done);
	return rc;
}

long fs_compose_base_index(struct fs_ctx *ctx, const struct fs_version *vs, size_t before)
{
	for (size_t i = before; i > 0; i--) {
		uint32_t st = vs[i - 1].v.state;
		char *json;
		size_t len;
		if (st != META_VERSION_SEALED && st != META_VERSION_INCOMPLETE)
			continue;
		if (meta_get_manifest(ctx->meta, vs[i - 1].v.ino, &json, &len) == 0) {
			free(json);
			return (long)(i - 1);
		}
	}
	return -1;
}

int fs_compose_load(struct fs_ctx *ctx, uint64_t vino, struct pec_composition **out)
{
	char *json, err[200];
	size_t len;
	int rc = meta_get_manifest(ctx->meta, vino, &json, &len);
	if (rc < 0)
		return rc;
	rc = pec_composition_from_json(json, len, out, err, sizeof(err));
	if (rc < 0)
		pecfs_log_error("manifest of version inode %llu unreadable: %s", (unsigned long long)vino, err);
	free(json);
	return rc;
}

int fs_compose_seal(struct fs_ctx *ctx, const struct fs_version *fv, struct meta_batch *b, struct fs_compose *out)
{
	struct pec_runcfg cfg;
	struct cmp_walk w = { .ctx = ctx };
	struct fs_version *vs = NULL;
	struct pec_composition *base = NULL, *comp = NULL;
	struct pec_tokens *tokens = NULL;
	char *json = NULL;
	size_t n = 0;
	long base_i = -1;

	memset(out, 0, sizeof(*out));
	out->state = META_VERSION_SEALED;
	int rc = pec_runcfg_load(ctx, fv->v.run_ino, &cfg);
	if (rc < 0)
		return rc;
	w.pats = &cfg.pats;
	if ((rc = walk_dir(&w, fv->v.ino, "")) < 0)
		goto out;
	qsort(w.w, w.n_w, sizeof(*w.w), written_cmp);
	if ((rc = fs_versions_sorted(ctx, fv->v.run_ino, &vs, &n)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (vs[i].v.ino == fv->v.ino)
			base_i = fs_compose_base_index(ctx, vs, i);
	if (base_i >= 0 && (rc = fs_compose_load(ctx, vs[base_i].v.ino, &base)) < 0)
		goto out;
	if ((rc = pec_tokens_pending(ctx, fv->v.run_ino, &tokens)) < 0)
		goto out;
	/* Staleness counts steps when the name has one; otherwise versions (one more than the base). */
	struct pec_version_in vin = {
		.name = fv->name,
		.step = fv->v.step >= 0 ? fv->v.step : (base ? base->step + 1 : 0),
		.state = PEC_VSTATE_SEALED,
		.files = w.uf, .n_files = w.n_uf,
		.tokens = tokens,
		.problems = w.pb, .n_problems = w.n_pb,
	};
	if ((rc = pec_compose_next(base, &vin, NULL, &comp)) < 0)
		goto out;
	if (base && (rc = materialize(ctx, out, b, fv, vs[base_i].v.ino, comp, &w)) < 0)
		goto out;
	for (size_t i = 0; i < out->n_dirs; i++) {
		const struct meta_inode *dmi = &out->dirs[i].mi;
		if (out->dirs[i].dirty)
			meta_batch_put_inode(b, dmi);
		if (!out->dirs[i].ind)
			meta_batch_put_dirent(b, dmi->parent, dmi->name, dmi->ino, S_IFDIR);
	}
	if ((rc = pec_composition_to_json(comp, &json)) < 0)
		goto out;
	meta_batch_put_manifest(b, fv->v.ino, json, strlen(json));
	meta_batch_del_tokens(b, fv->v.run_ino);
	out->state = comp->complete ? META_VERSION_SEALED : META_VERSION_INCOMPLETE;
	if (out->files)
		pecfs_log_info("composed %s on %s: %llu inherited files, %zu of %zu units missing", fv->name,
			       vs[base_i].name, (unsigned long long)out->files, comp->n_missing, comp->n_units);
out:
	if (rc < 0) {
		pecfs_log_error("composition of version %s failed: %s", fv->name, strerror(-rc));
		fs_compose_done(ctx, out, false);
	}
	free(json);
	pec_composition_free(comp);
	pec_composition_free(base);
	pec_tokens_free(tokens);
	free(vs);
	walk_free(&w);
	pec_runcfg_free(&cfg);
	return rc;
}

void fs_compose_done(struct fs_ctx *ctx, struct fs_compose *c, bool committed)
{
	if (committed) {
		xc_refs_keep(&c->refs);
		xc_refs_release(ctx, &c->old_refs);
	} else {
		xc_refs_release(ctx, &c->refs);
		xc_refs_keep(&c->old_refs);
	}
	for (size_t i = 0; i < c->n_dirs; i++) {
		if (c->dirs[i].ind) {
			if (committed && c->dirs[i].dirty)
				fs_inode_apply(c->dirs[i].ind, &c->dirs[i].mi);
			fs_inode_put(ctx, c->dirs[i].ind);
		}
		free(c->dirs[i].rel);
	}
	for (size_t i = 0; i < c->n_merged; i++) {
		struct fs_inode *ind = c->merged[i].ind;
		if (committed) {
			/* No handle is open (the merge checked, under ns_lock): the cached content state
			 * goes, so the next open reads the new extents and size. */
			pthread_mutex_lock(&ind->lock);
			if (ind->df && ind->open_count == 0) {
				data_file_free(ind->df);
				ind->df = NULL;
			}
			ind->mi.size = c->merged[i].size;
			pthread_mutex_unlock(&ind->lock);
			if (ctx->se)
				fuse_lowlevel_notify_inval_inode(ctx->se, ind->ino, 0, 0);
		}
		fs_inode_put(ctx, ind);
	}
	free(c->dirs);
	free(c->merged);
	free(c->sources);
	memset(c, 0, sizeof(*c));
}
