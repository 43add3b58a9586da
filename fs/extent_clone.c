/* extent_clone.c - files that share chunks: cloning a byte range of one file's extents into another
 * (composition inherits files and safetensors tensors this way, no byte copied), reading committed
 * bytes through extents, resolving relative paths inside a version and listing directories.
 *
 * Every cloned extent is one chunk reference (reference counts are derived from extents), taken
 * with store_chunk_ref before the batch that names it commits, and given back if it does not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"

int xc_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *na = realloc(*arr, ncap * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

int xc_digests_push(struct xc_refs *refs, const struct digest *d)
{
	if (xc_grow((void **)&refs->d, &refs->cap, refs->n, sizeof(*refs->d)) < 0)
		return -ENOMEM;
	refs->d[refs->n++] = *d;
	return 0;
}

int xc_refs_add(struct fs_ctx *ctx, struct xc_refs *refs, const struct digest *d)
{
	int rc = xc_digests_push(refs, d);
	if (rc < 0)
		store_chunk_unref(ctx->st, d);
	return rc;
}

void xc_refs_release(struct fs_ctx *ctx, struct xc_refs *refs)
{
	for (size_t i = 0; i < refs->n; i++)
		store_chunk_unref(ctx->st, &refs->d[i]);
	xc_refs_keep(refs);
}

void xc_refs_keep(struct xc_refs *refs)
{
	free(refs->d);
	memset(refs, 0, sizeof(*refs));
}

/* The part [*lo, *hi) of extent e inside [off, off + len); false when they do not overlap. */
static bool clip(const struct meta_extent *e, uint64_t off, uint64_t len, uint64_t *lo, uint64_t *hi)
{
	uint64_t e_end = e->file_off + e->len, r_end = off + len;
	*lo = e->file_off > off ? e->file_off : off;
	*hi = e_end < r_end ? e_end : r_end;
	return *hi > *lo;
}

struct clone_arg {
	struct fs_ctx *ctx;
	uint64_t src_off, len, dst, dst_off;
	struct meta_batch *b;
	struct xc_refs *refs;
};

static int clone_cb(const struct meta_extent *e, void *arg)
{
	struct clone_arg *ca = arg;
	uint64_t lo, hi;
	if (!clip(e, ca->src_off, ca->len, &lo, &hi))
		return 0;
	int rc = store_chunk_ref(ca->ctx->st, &e->digest);
	if (rc < 0)
		return rc;
	rc = xc_refs_add(ca->ctx, ca->refs, &e->digest);
	if (rc < 0)
		return rc;
	struct meta_extent ne = {
		.file_off = ca->dst_off + (lo - ca->src_off),
		.len = hi - lo,
		.digest = e->digest,
		.chunk_off = e->chunk_off + (lo - e->file_off),
	};
	meta_batch_put_extent(ca->b, ca->dst, &ne);
	return 0;
}

int xc_clone_range(struct fs_ctx *ctx, uint64_t src, uint64_t src_off, uint64_t len, uint64_t dst,
		   uint64_t dst_off, struct meta_batch *b, struct xc_refs *refs)
{
	struct clone_arg ca = { ctx, src_off, len, dst, dst_off, b, refs };
	if (len == 0)
		return 0;
	return meta_get_extents(ctx->meta, src, src_off, len, clone_cb, &ca);
}

struct read_arg {
	struct fs_ctx *ctx;
	uint64_t off, len;
	uint8_t *buf;
};

static int read_cb(const struct meta_extent *e, void *arg)
{
	struct read_arg *ra = arg;
	uint64_t lo, hi;
	if (!clip(e, ra->off, ra->len, &lo, &hi))
		return 0;
	return store_chunk_read(ra->ctx->st, &e->digest, e->chunk_off + (lo - e->file_off), ra->buf + (lo - ra->off),
				(size_t)(hi - lo));
}

int xc_read(struct fs_ctx *ctx, uint64_t ino, uint64_t off, void *buf, size_t len)
{
	struct read_arg ra = { ctx, off, len, buf };
	memset(buf, 0, len);
	if (len == 0)
		return 0;
	int rc = meta_get_extents(ctx->meta, ino, off, len, read_cb, &ra);
	return rc < 0 ? rc : (int)len;
}

int xc_resolve(struct fs_ctx *ctx, uint64_t dir, const char *rel, struct meta_inode *mi)
{
	char name[META_NAME_MAX + 1];
	uint64_t cur = dir;
	uint32_t mode;
	const char *p = rel;
	int rc = meta_get_inode(ctx->meta, dir, mi);
	while (rc == 0 && *p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || n > META_NAME_MAX)
			return -ENOENT;
		memcpy(name, p, n);
		name[n] = '\0';
		rc = meta_get_dirent(ctx->meta, cur, name, &cur, &mode);
		if (rc == 0)
			rc = meta_get_inode(ctx->meta, cur, mi);
		p += n + (slash != NULL);
	}
	return rc;
}

static int list_cb(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct xc_dirents *l = arg;
	if (xc_grow((void **)&l->e, &l->cap, l->n, sizeof(*l->e)) < 0)
		return -ENOMEM;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	l->e[l->n++] = (struct xc_dirent){ copy, ino, mode };
	return 0;
}

int xc_list_dir(struct fs_ctx *ctx, uint64_t dir, struct xc_dirents *out)
{
	memset(out, 0, sizeof(*out));
	int rc = meta_list_dir(ctx->meta, dir, NULL, list_cb, out);
	if (rc < 0)
		xc_dirents_free(out);
	return rc;
}

void xc_dirents_free(struct xc_dirents *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}
