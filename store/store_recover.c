/* store_recover.c - mount-time recovery: what a crash may leave behind is made whole here.
 *
 * Chunk temporaries were removed by chunk_store_open. Orphans (files unlinked while open) lose
 * their extents, xattrs, symlink and inode record. Then the chunk index is loaded from the chunk
 * records and reference counts are derived from the extents: counts are never stored, so a crash
 * cannot leave one wrong.
 */
#include "store_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct recover_ctx {
	struct store *st;
	struct meta_batch *b;
	uint64_t orphans;
	uint64_t dangling_extents;  /* extents naming a chunk without a record */
};

static int recover_orphan(uint64_t ino, void *arg)
{
	struct recover_ctx *rc = arg;
	struct meta *m = rc->st->meta;
	int err;

	meta_batch_clear(rc->b);
	err = meta_batch_del_all_extents(m, rc->b, ino);
	if (!err)
		err = meta_batch_del_all_xattrs(m, rc->b, ino);
	if (err)
		return err;
	meta_batch_del_symlink(rc->b, ino);
	meta_batch_del_inode(rc->b, ino);
	meta_batch_del_orphan(rc->b, ino);
	err = meta_batch_commit(m, rc->b, false);
	if (!err)
		rc->orphans++;
	return err;
}

static int recover_load_chunk(const struct meta_chunk *c, void *arg)
{
	struct store *st = ((struct recover_ctx *)arg)->st;
	struct store_chunk_entry *e;

	if (store_index_find(&st->index, &c->digest))
		return 0;
	e = store_index_add(&st->index, &c->digest);
	if (!e)
		return -ENOMEM;
	e->state = STORE_CHUNK_PRESENT;
	e->len = c->len;
	st->stored_chunks++;
	st->stored_bytes += c->len;
	return 0;
}

static int recover_count_extent(uint64_t ino, const struct meta_extent *x, void *arg)
{
	struct recover_ctx *rc = arg;
	struct store *st = rc->st;
	struct store_chunk_entry *e = store_index_find(&st->index, &x->digest);

	(void)ino;
	if (!e) {
		rc->dangling_extents++;
		return 0;
	}
	if (e->refs++ == 0)
		st->referenced_bytes += e->len;
	return 0;
}

int store_recover(struct store *st)
{
	struct recover_ctx rc = { .st = st };
	int err;

	rc.b = meta_batch_new();
	if (!rc.b)
		return -ENOMEM;
	err = meta_foreach_orphan(st->meta, recover_orphan, &rc);
	if (!err && rc.orphans)
		err = meta_sync(st->meta);
	meta_batch_free(rc.b);
	if (err)
		goto out_err;

	/* No other thread can see st yet, but the index's rules say "under the lock". */
	pthread_mutex_lock(&st->lock);
	err = meta_foreach_chunk(st->meta, recover_load_chunk, &rc);
	if (!err)
		err = meta_foreach_extent(st->meta, recover_count_extent, &rc);
	pthread_mutex_unlock(&st->lock);
	if (err)
		goto out_err;
	if (rc.dangling_extents)
		fprintf(stderr, "pecfs: store: %llu extents name chunks that are not recorded; "
			"run pecfs fsck\n", (unsigned long long)rc.dangling_extents);
	return 0;

out_err:
	fprintf(stderr, "pecfs: store: recovery of %s failed: %s\n", st->data_dir, strerror(-err));
	return err;
}
