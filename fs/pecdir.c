/* pecdir.c - the virtual .pec namespace: /.pec/{stats,metrics} and RUN/.pec/{versions,latest,plan,
 * tokens,resumed,manifest/<version>,raw/<version>/...}. Everything is read-only but RUN/.pec/tokens
 * and RUN/.pec/resumed, where what one open-write-close writes is submitted at close.
 *
 * Virtual inode numbers have the top bit set and encode an owner inode and a kind:
 * PEC_VIRT_BIT | owner << 4 | kind. The owner is the root or a run, a version for manifest files,
 * and a directory inside a version for raw views. They hold no state, so forget ignores them. File
 * content is generated at open into the handle (direct I/O), and at getattr too so that st_size is
 * right. A raw view lists the real entries of its directory that the round wrote (not the files
 * composition inherited) and hands out the real inodes, so reading them reads the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pec_tokens.h"
#include "compose.h"

enum pec_kind {
	PEC_ROOT_DIR = 1, PEC_STATS, PEC_METRICS, PEC_RUN_DIR, PEC_VERSIONS, PEC_LATEST, PEC_PLAN,
	PEC_TOKENS, PEC_RAW_DIR, PEC_MANIFEST_DIR, PEC_MANIFEST, PEC_RAW_VIEW, PEC_RESUMED,
};
#define PEC_KIND_BITS 4

struct pec_node {
	enum pec_kind kind;
	const char *name;
	enum pec_kind parent;
};

static const struct pec_node pec_nodes[] = {
	{ PEC_STATS, "stats", PEC_ROOT_DIR },
	{ PEC_METRICS, "metrics", PEC_ROOT_DIR },
	{ PEC_VERSIONS, "versions", PEC_RUN_DIR },
	{ PEC_LATEST, "latest", PEC_RUN_DIR },
	{ PEC_PLAN, "plan", PEC_RUN_DIR },
	{ PEC_TOKENS, "tokens", PEC_RUN_DIR },
	{ PEC_RESUMED, "resumed", PEC_RUN_DIR },
	{ PEC_MANIFEST_DIR, "manifest", PEC_RUN_DIR },
	{ PEC_RAW_DIR, "raw", PEC_RUN_DIR },
};
#define PEC_NODES (sizeof(pec_nodes) / sizeof(pec_nodes[0]))

/* fi->fh of an open virtual file: its generated content, or what a writer of tokens wrote. */
struct pec_buf {
	char *data;
	size_t len, cap;
	uint64_t run;       /* tokens, resumed: the run */
	enum pec_kind kind;
	bool writable;
	bool dirty;         /* written since the last flush */
};

static uint64_t pec_ino(uint64_t owner, enum pec_kind kind)
{
	return PEC_VIRT_BIT | owner << PEC_KIND_BITS | (uint64_t)kind;
}

static enum pec_kind kind_of(uint64_t ino)
{
	return (enum pec_kind)(ino & ((1u << PEC_KIND_BITS) - 1));
}

static uint64_t owner_of(uint64_t ino)
{
	return (ino & ~PEC_VIRT_BIT) >> PEC_KIND_BITS;
}

static bool is_writable_kind(enum pec_kind k)
{
	return k == PEC_TOKENS || k == PEC_RESUMED;
}

static bool is_dir_kind(enum pec_kind k)
{
	return k == PEC_ROOT_DIR || k == PEC_RUN_DIR || k == PEC_RAW_DIR || k == PEC_MANIFEST_DIR ||
	       k == PEC_RAW_VIEW;
}

/* The owner must still be what the kind needs. */
static int check_owner(struct fs_ctx *ctx, uint64_t ino)
{
	struct meta_inode mi;
	uint64_t owner = owner_of(ino);
	switch (kind_of(ino)) {
	case PEC_ROOT_DIR:
	case PEC_STATS:
	case PEC_METRICS:
		return owner == META_ROOT_INO ? 0 : -ENOENT;
	case PEC_RUN_DIR:
	case PEC_VERSIONS:
	case PEC_LATEST:
	case PEC_PLAN:
	case PEC_TOKENS:
	case PEC_RESUMED:
	case PEC_RAW_DIR:
	case PEC_MANIFEST_DIR:
		if (owner == META_ROOT_INO || meta_get_inode(ctx->meta, owner, &mi) < 0 || !fs_mi_is_run(&mi))
			return -ENOENT;
		return 0;
	case PEC_MANIFEST:
		return meta_get_inode(ctx->meta, owner, &mi) == 0 && fs_mi_is_version(&mi) ? 0 : -ENOENT;
	case PEC_RAW_VIEW:
		if (meta_get_inode(ctx->meta, owner, &mi) < 0 || !S_ISDIR(mi.mode) || mi.version_ino == 0)
			return -ENOENT;
		return 0;
	default:
		return -ENOENT;
	}
}

static int generate(struct fs_ctx *ctx, uint64_t ino, struct pec_buf *out)
{
	uint64_t owner = owner_of(ino);
	switch (kind_of(ino)) {
	case PEC_STATS: return pecgen_stats_json(ctx, &out->data, &out->len);
	case PEC_METRICS: return pecgen_metrics(ctx, &out->data, &out->len);
	case PEC_VERSIONS: return pecgen_versions_json(ctx, owner, &out->data, &out->len);
	case PEC_PLAN: return pecgen_plan(ctx, owner, &out->data, &out->len);
	case PEC_TOKENS: return pecgen_tokens(ctx, owner, &out->data, &out->len);
	case PEC_RESUMED: return pecgen_resumed(ctx, owner, &out->data, &out->len);
	case PEC_MANIFEST: return pecgen_manifest(ctx, owner, &out->data, &out->len);
	default: return -EISDIR;
	}
}

int pec_getattr(struct fs_ctx *ctx, uint64_t ino, struct stat *st)
{
	char target[META_NAME_MAX + 8];
	struct pec_buf pb = { 0 };
	int rc = check_owner(ctx, ino);
	if (rc < 0)
		return rc;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	int64_t now = fs_now_ns();
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = now / 1000000000;
	st->st_blksize = 4096;
	if (is_dir_kind(kind_of(ino))) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (kind_of(ino) == PEC_LATEST) {
		rc = pecgen_latest(ctx, owner_of(ino), target, sizeof(target));
		if (rc < 0)
			return rc;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		return 0;
	}
	rc = generate(ctx, ino, &pb);
	if (rc < 0)
		return rc;
	st->st_mode = S_IFREG | (is_writable_kind(kind_of(ino)) ? 0644 : 0444);
	st->st_nlink = 1;
	st->st_size = (off_t)pb.len;
	free(pb.data);
	return 0;
}

int pec_setattr(struct fs_ctx *ctx, uint64_t ino, int to_set, struct stat *st)
{
	/* Only the writable files take the truncation of an O_TRUNC open; each report or restart
	 * replaces nothing (they add up), so there is nothing to truncate. */
	if (!is_writable_kind(kind_of(ino)) ||
	    (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)))
		return -EPERM;
	return pec_getattr(ctx, ino, st);
}

static int fill_entry(struct fs_ctx *ctx, uint64_t ino, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	int rc = pec_getattr(ctx, ino, &e->attr);
	if (rc < 0)
		return rc;
	e->ino = ino;
	/* Content changes with every write anywhere: let the kernel cache nothing. */
	e->attr_timeout = 0;
	e->entry_timeout = 0;
	return 0;
}

void pec_dir_entry(struct fs_ctx *ctx, uint64_t owner, struct fuse_entry_param *e)
{
	uint64_t ino = pec_ino(owner, owner == META_ROOT_INO ? PEC_ROOT_DIR : PEC_RUN_DIR);
	if (fill_entry(ctx, ino, e) < 0) {
		/* The owner was checked by the caller; a directory's attributes cannot fail. */
		memset(e, 0, sizeof(*e));
		e->ino = ino;
		e->attr.st_ino = ino;
		e->attr.st_mode = S_IFDIR | 0555;
		e->attr.st_nlink = 2;
	}
}

/* Entry name of a raw view of directory dir: a raw view of a subdirectory, or the real inode of a
 * file the round wrote (*real set). Inherited files are not there. */
static int raw_lookup(struct fs_ctx *ctx, uint64_t dir, const char *name, uint64_t *ino, bool *real)
{
	uint32_t mode;
	int rc = meta_get_dirent(ctx->meta, dir, name, ino, &mode);
	if (rc < 0)
		return rc;
	if (S_ISDIR(mode)) {
		*ino = pec_ino(*ino, PEC_RAW_VIEW);
		*real = false;
		return 0;
	}
	if (S_ISREG(mode) && meta_get_xattr(ctx->meta, *ino, PEC_XATTR_SOURCE, NULL, 0) >= 0)
		return -ENOENT;
	*real = true;
	return 0;
}

/* A version of run by name, as the owner of its raw view or manifest. */
static int version_lookup(struct fs_ctx *ctx, uint64_t run, const char *name, enum pec_kind k, uint64_t *ino)
{
	uint32_t mode;
	uint64_t vino;
	char *json;
	size_t len;
	int rc = meta_get_dirent(ctx->meta, run, name, &vino, &mode);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(mode) || fs_version_state(ctx, vino) < 0)
		return -ENOENT;
	if (k == PEC_MANIFEST) {
		if ((rc = meta_get_manifest(ctx->meta, vino, &json, &len)) < 0)
			return rc;
		free(json);
	}
	*ino = pec_ino(vino, k);
	return 0;
}

int pec_lookup(struct fs_ctx *ctx, uint64_t parent, const char *name, struct fuse_entry_param *e,
	       uint64_t *real_ino)
{
	enum pec_kind pk = kind_of(parent);
	uint64_t owner = owner_of(parent), ino;
	bool real = false;
	int rc = check_owner(ctx, parent);
	*real_ino = 0;
	if (rc < 0)
		return rc;
	switch (pk) {
	case PEC_ROOT_DIR:
	case PEC_RUN_DIR:
		for (size_t i = 0; i < PEC_NODES; i++)
			if (pec_nodes[i].parent == pk && strcmp(pec_nodes[i].name, name) == 0)
				return fill_entry(ctx, pec_ino(owner, pec_nodes[i].kind), e);
		return -ENOENT;
	case PEC_RAW_DIR:
		rc = version_lookup(ctx, owner, name, PEC_RAW_VIEW, &ino);
		break;
	case PEC_MANIFEST_DIR:
		rc = version_lookup(ctx, owner, name, PEC_MANIFEST, &ino);
		break;
	case PEC_RAW_VIEW:
		rc = raw_lookup(ctx, owner, name, &ino, &real);
		break;
	default:
		return -ENOTDIR;
	}
	if (rc < 0)
		return rc;
	if (real) {
		*real_ino = ino;
		return 0;
	}
	return fill_entry(ctx, ino, e);
}

/* ---- listings ---- */

struct pec_dent {
	char *name;
	uint64_t ino;
	uint32_t mode;
	bool real;
};
struct pec_dents {
	struct pec_dent *e;
	size_t n, cap;
};

static int dents_add(struct pec_dents *d, const char *name, uint64_t ino, uint32_t mode, bool real)
{
	if (xc_grow((void **)&d->e, &d->cap, d->n, sizeof(*d->e)) < 0)
		return -ENOMEM;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	d->e[d->n++] = (struct pec_dent){ copy, ino, mode, real };
	return 0;
}

static void dents_free(struct pec_dents *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
}

/* Every entry of virtual directory ino after . and .. */
static int pec_list(struct fs_ctx *ctx, uint64_t ino, struct pec_dents *d)
{
	enum pec_kind pk = kind_of(ino);
	uint64_t owner = owner_of(ino);
	int rc = 0;
	if (pk == PEC_ROOT_DIR || pk == PEC_RUN_DIR) {
		for (size_t i = 0; rc == 0 && i < PEC_NODES; i++)
			if (pec_nodes[i].parent == pk)
				rc = dents_add(d, pec_nodes[i].name, pec_ino(owner, pec_nodes[i].kind), 0, false);
		return rc;
	}
	if (pk == PEC_RAW_DIR || pk == PEC_MANIFEST_DIR) {
		struct fs_version *vs;
		size_t n;
		if ((rc = fs_versions_sorted(ctx, owner, &vs, &n)) < 0)
			return rc;
		for (size_t i = 0; rc == 0 && i < n; i++) {
			uint64_t vino;
			if (version_lookup(ctx, owner, vs[i].name, pk == PEC_RAW_DIR ? PEC_RAW_VIEW : PEC_MANIFEST,
					   &vino) == 0)
				rc = dents_add(d, vs[i].name, vino, 0, false);
		}
		free(vs);
		return rc;
	}
	struct xc_dirents l;
	if ((rc = xc_list_dir(ctx, owner, &l)) < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		uint64_t eino;
		bool real;
		if (raw_lookup(ctx, owner, l.e[i].name, &eino, &real) == 0)
			rc = dents_add(d, l.e[i].name, eino, l.e[i].mode, real);
	}
	xc_dirents_free(&l);
	return rc;
}

/* Fills e for listing entry de; takes a lookup on a real inode when plus (the caller drops it with
 * *held when the entry does not fit). */
static int dent_entry(struct fs_ctx *ctx, const struct pec_dent *de, struct fuse_entry_param *e,
		      struct fs_inode **held)
{
	*held = NULL;
	if (!de->real)
		return fill_entry(ctx, de->ino, e);
	int rc = fs_inode_get(ctx, de->ino, held);
	if (rc < 0)
		return rc;
	fs_inode_entry(ctx, *held, e);
	return 0;
}

void pec_readdir(fuse_req_t req, uint64_t ino, size_t size, off_t off, bool plus)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct pec_dents d = { 0 };
	size_t used = 0;
	char *buf = NULL;
	int rc = is_dir_kind(kind_of(ino)) ? check_owner(ctx, ino) : -ENOTDIR;
	if (rc == 0)
		rc = dents_add(&d, ".", ino, S_IFDIR, false);
	if (rc == 0)
		rc = dents_add(&d, "..", owner_of(ino), S_IFDIR, false);
	if (rc == 0)
		rc = pec_list(ctx, ino, &d);
	if (rc == 0 && !(buf = malloc(size)))
		rc = -ENOMEM;
	for (size_t i = (size_t)off; rc == 0 && i < d.n; i++) {
		struct fuse_entry_param e = { 0 };
		struct fs_inode *held = NULL;
		size_t len;
		if (i < 2) {
			e.attr.st_ino = d.e[i].ino;
			e.attr.st_mode = S_IFDIR;
		} else if (dent_entry(ctx, &d.e[i], &e, &held) < 0) {
			continue;  /* latest when there is none, an entry removed meanwhile */
		}
		if (plus) {
			if (i < 2)
				e.ino = 0;
			len = fuse_add_direntry_plus(req, buf + used, size - used, d.e[i].name, &e, (off_t)i + 1);
		} else {
			len = fuse_add_direntry(req, buf + used, size - used, d.e[i].name, &e.attr, (off_t)i + 1);
		}
		if (held) {
			if (plus && len <= size - used)
				fs_inode_lookup_inc(ctx, held);
			fs_inode_put(ctx, held);
		}
		if (len > size - used)
			break;
		used += len;
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
	dents_free(&d);
}

/* ---- files ---- */

void pec_open(fuse_req_t req, uint64_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct pec_buf *pb;
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	int rc = check_owner(ctx, ino);
	if (rc == 0 && is_dir_kind(kind_of(ino)))
		rc = -EISDIR;
	if (rc == 0 && writable && !is_writable_kind(kind_of(ino)))
		rc = -EROFS;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pb = calloc(1, sizeof(*pb));
	if (!pb) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* A writer starts from nothing: what it writes is one new report. */
	rc = writable ? 0 : generate(ctx, ino, pb);
	if (rc < 0) {
		free(pb);
		fuse_reply_err(req, -rc);
		return;
	}
	pb->writable = writable;
	pb->run = owner_of(ino);
	pb->kind = kind_of(ino);
	fi->fh = (uint64_t)(uintptr_t)pb;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0)
		pec_release(fi);
}

void pec_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pec_buf *pb = (struct pec_buf *)(uintptr_t)fi->fh;
	if ((uint64_t)off >= pb->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = pb->len - (size_t)off < size ? pb->len - (size_t)off : size;
	/* Reply from a copy the request owns: once the reader has its bytes it may close the file,
	 * and the release that frees pb can run before fuse_reply_buf has returned here. */
	char *copy = malloc(n);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, pb->data + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

int pec_write(struct fuse_file_info *fi, const char *buf, size_t size, off_t off)
{
	struct pec_buf *pb = (struct pec_buf *)(uintptr_t)fi->fh;
	if (!pb || !pb->writable)
		return -EBADF;
	/* Larger than any valid report: refused like any other out-of-range report. */
	if (off < 0 || (uint64_t)off + size > PEC_TOKENS_MAX_BYTES)
		return -EINVAL;
	size_t end = (size_t)off + size;
	if (end > pb->cap) {
		size_t ncap = pb->cap ? pb->cap : 4096;
		while (ncap < end)
			ncap *= 2;
		char *nd = realloc(pb->data, ncap);
		if (!nd)
			return -ENOMEM;
		pb->data = nd;
		pb->cap = ncap;
	}
	if ((size_t)off > pb->len)
		memset(pb->data + pb->len, 0, (size_t)off - pb->len);
	memcpy(pb->data + off, buf, size);
	pb->len = end > pb->len ? end : pb->len;
	pb->dirty = true;
	return (int)size;
}

int pec_flush(struct fs_ctx *ctx, struct fuse_file_info *fi)
{
	struct pec_buf *pb = (struct pec_buf *)(uintptr_t)fi->fh;
	if (!pb || !pb->writable || !pb->dirty)
		return 0;
	/* Each close submits what was written since the last one, whatever the outcome. */
	pb->dirty = false;
	int rc = pb->kind == PEC_RESUMED ? pec_resumed_submit(ctx, pb->run, pb->data, pb->len)
					 : pec_tokens_submit(ctx, pb->run, pb->data, pb->len);
	pb->len = 0;
	return rc;
}

void pec_release(struct fuse_file_info *fi)
{
	struct pec_buf *pb = (struct pec_buf *)(uintptr_t)fi->fh;
	if (pb) {
		free(pb->data);
		free(pb);
	}
	fi->fh = 0;
}

int pec_readlink(struct fs_ctx *ctx, uint64_t ino, char *buf, size_t size)
{
	int rc = check_owner(ctx, ino);
	if (rc < 0)
		return rc;
	if (kind_of(ino) != PEC_LATEST)
		return -EINVAL;
	return pecgen_latest(ctx, owner_of(ino), buf, size);
}
