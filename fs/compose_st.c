/* compose_st.c - tensor-level composition of safetensors shards at seal. A shard the version wrote
 * with only some experts' tensors is replaced, in the seal's batch, by the merged file that
 * pec_st_plan_merge plans: the new header is stored as one small chunk, every piece of tensor data
 * becomes extents pointing into the chunks of the written file or of the base version's copy. No
 * tensor byte is copied. Headers that are not valid are never merged: the file stays as written and
 * the reason goes to the manifest. The as-written shard's extents are replaced, so the raw view
 * shows the merged file for that path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pec_safetensors.h"
#include "compose.h"

int fs_st_read_header(struct fs_ctx *ctx, uint64_t ino, const struct pec_patterns *pats,
		      struct pec_st_header **out, char *err, size_t errsz)
{
	struct meta_inode mi;
	uint8_t prefix[8];
	uint64_t json_len;
	int rc = meta_get_inode(ctx->meta, ino, &mi);
	if (rc < 0)
		return rc;
	rc = xc_read(ctx, ino, 0, prefix, mi.size < 8 ? (size_t)mi.size : 8);
	if (rc < 0)
		return rc;
	rc = pec_st_header_len(prefix, mi.size, &json_len, err, errsz);
	if (rc < 0)
		return rc;
	char *json = malloc(json_len ? json_len : 1);
	if (!json)
		return -ENOMEM;
	rc = xc_read(ctx, ino, 8, json, (size_t)json_len);
	if (rc >= 0)
		rc = pec_st_parse(json, (size_t)json_len, mi.size, out, err, errsz);
	free(json);
	if (rc < 0)
		return rc;
	rc = pec_st_classify(*out, pats);
	if (rc < 0) {
		pec_st_free(*out);
		*out = NULL;
	}
	return rc;
}

static int note_old_extent(const struct meta_extent *e, void *arg)
{
	return xc_digests_push(arg, &e->digest);
}

static int merged_push(struct fs_compose *c, struct fs_inode *ind, uint64_t size)
{
	if (xc_grow((void **)&c->merged, &c->cap_merged, c->n_merged, sizeof(*c->merged)) < 0)
		return -ENOMEM;
	c->merged[c->n_merged++] = (struct cmp_merged){ ind, size };
	return 0;
}

/* Puts the merged layout of ind into b. */
static int lay_out(struct fs_ctx *ctx, struct fs_compose *c, struct meta_batch *b, struct fs_inode *ind,
		   uint64_t base_ino, const struct pec_st_merge *m)
{
	struct meta_extent hdr = { .file_off = 0, .len = m->header_len, .chunk_off = 0 };
	int rc = store_chunk_put(ctx->st, m->header, (size_t)m->header_len, &hdr.digest, NULL);
	if (rc < 0 || (rc = xc_refs_add(ctx, &c->refs, &hdr.digest)) < 0)
		return rc;
	/* The old extents' references go once the batch is committed; the deletions come first in the
	 * batch so that the new extents at the same offsets win. */
	size_t old_n = c->old_refs.n;
	rc = meta_get_extents(ctx->meta, ind->ino, 0, UINT64_MAX, note_old_extent, &c->old_refs);
	if (rc == 0)
		rc = meta_batch_del_all_extents(ctx->meta, b, ind->ino);
	if (rc < 0) {
		c->old_refs.n = old_n;
		return rc;
	}
	meta_batch_put_extent(b, ind->ino, &hdr);
	for (size_t i = 0; rc == 0 && i < m->n_pieces; i++) {
		const struct pec_st_piece *p = &m->pieces[i];
		rc = xc_clone_range(ctx, p->src == 0 ? ind->ino : base_ino, p->src_off, p->len, ind->ino, p->dest, b,
				    &c->refs);
	}
	return rc;
}

int fs_compose_merge_st(struct fs_ctx *ctx, struct fs_compose *c, struct meta_batch *b, uint64_t ino,
			uint64_t base_ino, const struct pec_patterns *pats, char *problem, size_t problem_size)
{
	struct pec_st_header *in[2] = { NULL, NULL };
	struct pec_st_merge *m = NULL;
	struct fs_inode *ind = NULL;
	struct meta_inode mi;
	char err[200] = "";
	int rc = fs_st_read_header(ctx, ino, pats, &in[0], err, sizeof(err));
	if (rc == -EINVAL || rc == -EFBIG)
		snprintf(problem, problem_size, "%s", err);
	if (rc < 0)
		goto out;
	rc = fs_st_read_header(ctx, base_ino, pats, &in[1], err, sizeof(err));
	if (rc == -EINVAL || rc == -EFBIG)
		snprintf(problem, problem_size, "the earlier copy cannot be merged: %s", err);
	if (rc < 0)
		goto out;
	rc = pec_st_plan_merge((const struct pec_st_header *const *)in, 2, &m, err, sizeof(err));
	if (rc == -EFBIG)
		snprintf(problem, problem_size, "%s", err);
	if (rc < 0 || m->n_inherited == 0)
		goto out;
	if ((rc = fs_inode_get(ctx, ino, &ind)) < 0)
		goto out;
	pthread_mutex_lock(&ind->lock);
	bool busy = ind->open_count > 0;
	pthread_mutex_unlock(&ind->lock);
	if (busy) {
		snprintf(problem, problem_size, "open while the version was sealed: kept as written");
		rc = -EBUSY;
		goto out;
	}
	fs_inode_snapshot(ind, &mi);
	rc = lay_out(ctx, c, b, ind, base_ino, m);
	if (rc < 0)
		goto out;
	c->logical_bytes += m->file_size - mi.size;
	mi.size = m->file_size;
	mi.ctime_ns = fs_now_ns();
	meta_batch_put_inode(b, &mi);
	if ((rc = merged_push(c, ind, m->file_size)) < 0)
		goto out;
	ind = NULL;
	rc = 1;
out:
	if (ind)
		fs_inode_put(ctx, ind);
	pec_st_merge_free(m);
	pec_st_free(in[0]);
	pec_st_free(in[1]);
	return rc;
}
