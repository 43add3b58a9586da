/* pecdir.c - the virtual, read-only .pec namespace: /.pec/{stats,metrics} and RUN/.pec/{versions,latest}.
 *
 * Virtual inode numbers have the top bit set and encode the owning directory (the root or a run) and
 * the kind: PEC_VIRT_BIT | owner << 3 | kind. They hold no state, so forget ignores them. File content
 * is generated at open into the handle (direct I/O), and at getattr too so that st_size is right.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

enum pec_kind { PEC_ROOT_DIR = 1, PEC_STATS, PEC_METRICS, PEC_RUN_DIR, PEC_VERSIONS, PEC_LATEST };

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
};
#define PEC_NODES (sizeof(pec_nodes) / sizeof(pec_nodes[0]))

struct pec_buf {
	char *data;
	size_t len;
};

static uint64_t pec_ino(uint64_t owner, enum pec_kind kind)
{
	return PEC_VIRT_BIT | owner << 3 | (uint64_t)kind;
}

static enum pec_kind kind_of(uint64_t ino)
{
	return (enum pec_kind)(ino & 7);
}

static uint64_t owner_of(uint64_t ino)
{
	return (ino & ~PEC_VIRT_BIT) >> 3;
}

/* The owner must still be the root or a run. */
static int check_owner(struct fs_ctx *ctx, uint64_t ino)
{
	struct meta_inode mi;
	uint64_t owner = owner_of(ino);
	enum pec_kind k = kind_of(ino);
	bool root_side = k == PEC_ROOT_DIR || k == PEC_STATS || k == PEC_METRICS;
	if (root_side)
		return owner == META_ROOT_INO ? 0 : -ENOENT;
	if (owner == META_ROOT_INO || meta_get_inode(ctx->meta, owner, &mi) < 0 || !fs_mi_is_run(&mi))
		return -ENOENT;
	return k == PEC_RUN_DIR || k == PEC_VERSIONS || k == PEC_LATEST ? 0 : -ENOENT;
}

static int generate(struct fs_ctx *ctx, uint64_t ino, struct pec_buf *out)
{
	switch (kind_of(ino)) {
	case PEC_STATS: return pecgen_stats_json(ctx, &out->data, &out->len);
	case PEC_METRICS: return pecgen_metrics(ctx, &out->data, &out->len);
	case PEC_VERSIONS: return pecgen_versions_json(ctx, owner_of(ino), &out->data, &out->len);
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
	switch (kind_of(ino)) {
	case PEC_ROOT_DIR:
	case PEC_RUN_DIR:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	case PEC_LATEST:
		rc = pecgen_latest(ctx, owner_of(ino), target, sizeof(target));
		if (rc < 0)
			return rc;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		return 0;
	default:
		rc = generate(ctx, ino, &pb);
		if (rc < 0)
			return rc;
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)pb.len;
		free(pb.data);
		return 0;
	}
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

int pec_lookup(struct fs_ctx *ctx, uint64_t parent, const char *name, struct fuse_entry_param *e)
{
	enum pec_kind pk = kind_of(parent);
	if (pk != PEC_ROOT_DIR && pk != PEC_RUN_DIR)
		return -ENOTDIR;
	for (size_t i = 0; i < PEC_NODES; i++)
		if (pec_nodes[i].parent == pk && strcmp(pec_nodes[i].name, name) == 0)
			return fill_entry(ctx, pec_ino(owner_of(parent), pec_nodes[i].kind), e);
	return -ENOENT;
}

void pec_readdir(fuse_req_t req, uint64_t ino, size_t size, off_t off, bool plus)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	enum pec_kind pk = kind_of(ino);
	uint64_t owner = owner_of(ino);
	struct { const char *name; uint64_t ino; } ents[2 + PEC_NODES];
	size_t n = 0, used = 0;
	char *buf;

	if (pk != PEC_ROOT_DIR && pk != PEC_RUN_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	ents[n].name = ".";
	ents[n++].ino = ino;
	ents[n].name = "..";
	ents[n++].ino = owner;
	for (size_t i = 0; i < PEC_NODES; i++) {
		if (pec_nodes[i].parent != pk)
			continue;
		ents[n].name = pec_nodes[i].name;
		ents[n++].ino = pec_ino(owner, pec_nodes[i].kind);
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < n; i++) {
		struct fuse_entry_param e = { 0 };
		size_t len;
		if (i >= 2 && fill_entry(ctx, ents[i].ino, &e) < 0)
			continue;  /* latest when there is none */
		if (i < 2) {
			e.attr.st_ino = ents[i].ino;
			e.attr.st_mode = S_IFDIR;
		}
		if (plus) {
			if (i < 2)
				e.ino = 0;
			len = fuse_add_direntry_plus(req, buf + used, size - used, ents[i].name, &e, (off_t)i + 1);
		} else {
			len = fuse_add_direntry(req, buf + used, size - used, ents[i].name, &e.attr, (off_t)i + 1);
		}
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void pec_open(fuse_req_t req, uint64_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct pec_buf *pb;
	int rc = check_owner(ctx, ino);
	if (rc == 0 && (fi->flags & O_ACCMODE) != O_RDONLY)
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
	rc = generate(ctx, ino, pb);
	if (rc < 0) {
		free(pb);
		fuse_reply_err(req, -rc);
		return;
	}
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
