/* test_store_meta.c - the metadata database on a real RocksDB: record round trips, directory
 * order and resume cursors, extent overlap queries, batch atomicity, whole-database scans and
 * persistence across reopen. Each test gets its own temporary folder, removed afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "meta.h"

struct fixture {
	char dir[64];
	struct meta *m;
	struct meta_batch *b;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/pecfs-meta-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(meta_open(f->dir, &f->m), 0);
	f->b = meta_batch_new();
	assert_non_null(f->b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	meta_batch_free(f->b);
	meta_close(f->m);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Closes and opens the database again: what its log holds goes into a table file. */
static void reopen(struct fixture *f)
{
	meta_batch_free(f->b);
	f->b = NULL;
	meta_close(f->m);
	assert_int_equal(meta_open(f->dir, &f->m), 0);
	f->b = meta_batch_new();
	assert_non_null(f->b);
}

static struct meta_extent extent(uint64_t off, uint64_t len, uint8_t tag)
{
	struct meta_extent e = { .file_off = off, .len = len, .chunk_off = 7 };

	memset(e.digest.b, tag, DIGEST_LEN);
	return e;
}

static void test_new_db_has_no_superblock_then_round_trips(void **state)
{
	struct fixture *f = *state;
	struct meta_super s = { .format_version = META_FORMAT_VERSION, .chunk_size = 4u << 20,
				.next_ino = 42, .next_seq = 9 }, got;

	assert_int_equal(meta_get_super(f->m, &got), -ENOENT);
	memset(s.node_id, 0xab, sizeof(s.node_id));
	meta_batch_put_super(f->b, &s);
	assert_int_equal(meta_batch_commit(f->m, f->b, true), 0);
	assert_int_equal(meta_get_super(f->m, &got), 0);
	assert_memory_equal(&got, &s, sizeof(s));
}

static void test_inode_round_trip_keeps_every_field(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in = { 0 }, got;

	in.ino = 77;
	in.parent = 5;
	in.version_ino = 6;
	in.mode = S_IFREG | 0640;
	in.uid = 1000;
	in.gid = 1001;
	in.nlink = 1;
	in.size = 123456789012ull;
	in.atime_ns = -5;  /* before the epoch */
	in.mtime_ns = 1700000000123456789ll;
	in.ctime_ns = 1700000000000000001ll;
	in.generation = 3;
	memset(in.name, 'n', META_NAME_MAX);
	in.name[META_NAME_MAX] = '\0';
	meta_batch_put_inode(f->b, &in);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	memset(&got, 0xee, sizeof(got));
	assert_int_equal(meta_get_inode(f->m, 77, &got), 0);
	assert_int_equal(got.ino, 77);
	assert_int_equal(got.parent, 5);
	assert_int_equal(got.version_ino, 6);
	assert_int_equal(got.mode, S_IFREG | 0640);
	assert_int_equal(got.uid, 1000);
	assert_int_equal(got.gid, 1001);
	assert_int_equal(got.nlink, 1);
	assert_int_equal(got.size, 123456789012ull);
	assert_true(got.atime_ns == -5);
	assert_true(got.mtime_ns == 1700000000123456789ll);
	assert_true(got.ctime_ns == 1700000000000000001ll);
	assert_int_equal(got.generation, 3);
	assert_string_equal(got.name, in.name);
	meta_batch_del_inode(f->b, 77);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_inode(f->m, 77, &got), -ENOENT);
}

struct names_seen {
	uint64_t parent[4];
	char name[4][META_NAME_MAX + 1];
	size_t n;
};

static int collect(uint64_t parent, const char *name, void *arg)
{
	struct names_seen *c = arg;

	assert_true(c->n < 4);
	c->parent[c->n] = parent;
	strcpy(c->name[c->n++], name);
	return 0;
}

/* A device node's number is a trailing field only devices carry; the other names of a file (hard
 * links) are listed per inode in key order. */
static void test_device_numbers_and_other_names_round_trip(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in = { .ino = 90, .parent = 5, .mode = S_IFBLK | 0600, .nlink = 3 }, got;
	struct names_seen seen = { .n = 0 };

	in.rdev = makedev(259, 70000);
	strcpy(in.name, "disk");
	meta_batch_put_inode(f->b, &in);
	meta_batch_put_link(f->b, 90, 7, "b");
	meta_batch_put_link(f->b, 90, 5, "z");
	meta_batch_put_link(f->b, 90, 5, "a");
	meta_batch_put_link(f->b, 91, 5, "other inode");
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_inode(f->m, 90, &got), 0);
	assert_int_equal(got.rdev, makedev(259, 70000));
	assert_string_equal(got.name, "disk");
	in.ino = 92;
	in.mode = S_IFIFO | 0600;
	in.rdev = 0;
	meta_batch_put_inode(f->b, &in);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_inode(f->m, 92, &got), 0);
	assert_int_equal(got.rdev, 0);

	assert_int_equal(meta_list_links(f->m, 90, collect, &seen), 0);
	assert_int_equal(seen.n, 3);  /* key order: parent, then name */
	assert_int_equal(seen.parent[0], 5);
	assert_string_equal(seen.name[0], "a");
	assert_string_equal(seen.name[1], "z");
	assert_int_equal(seen.parent[2], 7);
	assert_string_equal(seen.name[2], "b");
	assert_int_equal(meta_get_link(f->m, 90, 5, "z"), 0);
	assert_int_equal(meta_get_link(f->m, 90, 5, "y"), -ENOENT);
	meta_batch_del_link(f->b, 90, 5, "z");
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_link(f->m, 90, 5, "z"), -ENOENT);
}

struct syncer {
	struct meta *m;
	int id, failures;
};

static void *sync_loop(void *arg)
{
	struct syncer *s = arg;
	struct meta_batch *b = meta_batch_new();

	for (int i = 0; i < 40; i++) {
		struct meta_inode in = { .ino = 1000 + (uint64_t)s->id * 100 + (uint64_t)i, .mode = S_IFREG | 0600,
					 .nlink = 1 };
		meta_batch_put_inode(b, &in);
		if (meta_batch_commit(s->m, b, false) != 0 || meta_sync(s->m) != 0)
			s->failures++;
	}
	meta_batch_free(b);
	return NULL;
}

/* Concurrent callers share WAL syncs (group commit) and every one of them gets its result. */
static void test_concurrent_syncs_all_succeed(void **state)
{
	struct fixture *f = *state;
	pthread_t t[8];
	struct syncer s[8];

	for (int i = 0; i < 8; i++) {
		s[i] = (struct syncer){ .m = f->m, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, sync_loop, &s[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].failures, 0);
	}
	for (uint64_t ino = 1000; ino < 1800; ino += 100) {
		struct meta_inode got;
		assert_int_equal(meta_get_inode(f->m, ino + 39, &got), 0);
	}
}

static void test_dirent_lookup_and_delete(void **state)
{
	struct fixture *f = *state;
	uint64_t ino;
	uint32_t mode;

	meta_batch_put_dirent(f->b, 1, "file.bin", 10, S_IFREG | 0644);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_dirent(f->m, 1, "file.bin", &ino, &mode), 0);
	assert_int_equal(ino, 10);
	assert_int_equal(mode, S_IFREG);  /* type bits only */
	assert_int_equal(meta_get_dirent(f->m, 1, "file.bi", &ino, &mode), -ENOENT);
	assert_int_equal(meta_get_dirent(f->m, 2, "file.bin", &ino, &mode), -ENOENT);
	assert_false(meta_dir_is_empty(f->m, 1));
	assert_true(meta_dir_is_empty(f->m, 2));
	meta_batch_del_dirent(f->b, 1, "file.bin");
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_dirent(f->m, 1, "file.bin", &ino, &mode), -ENOENT);
	assert_true(meta_dir_is_empty(f->m, 1));
}

struct names {
	char got[16][64];
	int n, stop_after;
};

static int collect_name(const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	struct names *c = arg;

	(void)ino, (void)mode;
	snprintf(c->got[c->n++], sizeof(c->got[0]), "%s", name);
	return c->stop_after && c->n == c->stop_after ? 99 : 0;
}

static void test_list_dir_in_name_order_and_resumes_after_cursor(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "b", "a", "c", "aa", "A" };
	struct names c = { 0 };

	for (int i = 0; i < 5; i++)
		meta_batch_put_dirent(f->b, 0xff, names[i], 100 + (uint64_t)i, S_IFREG);
	/* Neighbouring directories must never leak into the listing (0x100 sorts after 0xff). */
	meta_batch_put_dirent(f->b, 0xfe, "zz", 1, S_IFDIR);
	meta_batch_put_dirent(f->b, 0x100, "0", 2, S_IFDIR);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);

	assert_int_equal(meta_list_dir(f->m, 0xff, NULL, collect_name, &c), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.got[0], "A");
	assert_string_equal(c.got[1], "a");
	assert_string_equal(c.got[2], "aa");
	assert_string_equal(c.got[3], "b");
	assert_string_equal(c.got[4], "c");

	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_list_dir(f->m, 0xff, "aa", collect_name, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.got[0], "b");

	/* A cursor naming an entry removed meanwhile resumes at the next name. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_list_dir(f->m, 0xff, "ab", collect_name, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.got[0], "b");

	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(meta_list_dir(f->m, 0xff, NULL, collect_name, &c), 99);
	assert_int_equal(c.n, 2);

	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_list_dir(f->m, 0xff, "c", collect_name, &c), 0);
	assert_int_equal(c.n, 0);
}

struct offs {
	uint64_t off[8];
	int n;
};

static int collect_extent(const struct meta_extent *e, void *arg)
{
	struct offs *o = arg;

	o->off[o->n++] = e->file_off;
	return 0;
}

static struct offs query(struct meta *m, uint64_t ino, uint64_t off, uint64_t len)
{
	struct offs o = { { 0 }, 0 };

	assert_int_equal(meta_get_extents(m, ino, off, len, collect_extent, &o), 0);
	return o;
}

static void test_extent_queries_find_exactly_the_overlapping_extents(void **state)
{
	struct fixture *f = *state;
	struct meta_extent e = extent(0, 100, 1);
	struct offs o;

	meta_batch_put_extent(f->b, 5, &e);
	e = extent(100, 50, 2);
	meta_batch_put_extent(f->b, 5, &e);
	e = extent(200, 100, 3);
	meta_batch_put_extent(f->b, 5, &e);
	e = extent(0, 1000, 4);  /* neighbours on both sides */
	meta_batch_put_extent(f->b, 4, &e);
	meta_batch_put_extent(f->b, 6, &e);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);

	o = query(f->m, 5, 120, 10);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.off[0], 100);
	o = query(f->m, 5, 150, 50);  /* the hole between extents */
	assert_int_equal(o.n, 0);
	o = query(f->m, 5, 0, UINT64_MAX);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.off[2], 200);
	o = query(f->m, 5, 99, 2);
	assert_int_equal(o.n, 2);
	o = query(f->m, 5, 250, 1);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.off[0], 200);
	o = query(f->m, 5, 300, 10);
	assert_int_equal(o.n, 0);
	o = query(f->m, 5, 149, UINT64_MAX);
	assert_int_equal(o.n, 2);
	o = query(f->m, 7, 0, UINT64_MAX);
	assert_int_equal(o.n, 0);
	o = query(f->m, 4, 500, 1);  /* one extent covering the whole query, starting well before */
	assert_int_equal(o.n, 1);
	assert_int_equal(o.off[0], 0);
}

static int copy_extent(const struct meta_extent *e, void *arg)
{
	*(struct meta_extent *)arg = *e;
	return 0;
}

static void test_extent_round_trip_and_delete_all(void **state)
{
	struct fixture *f = *state;
	struct meta_extent e = extent(4096, 100, 9), got = { 0 };
	struct offs o;

	meta_batch_put_extent(f->b, 8, &e);
	e = extent(8192, 10, 9);
	meta_batch_put_extent(f->b, 8, &e);
	meta_batch_put_xattr(f->b, 8, "user.a", "1", 1);
	meta_batch_put_xattr(f->b, 9, "user.keep", "2", 1);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_extents(f->m, 8, 4096, 1, copy_extent, &got), 0);
	assert_int_equal(got.file_off, 4096);
	assert_int_equal(got.len, 100);
	assert_int_equal(got.chunk_off, 7);
	assert_int_equal(got.digest.b[0], 9);

	assert_int_equal(meta_batch_del_all_extents(f->m, f->b, 8), 0);
	assert_int_equal(meta_batch_del_all_xattrs(f->m, f->b, 8), 0);
	/* Nothing changes before commit. */
	o = query(f->m, 8, 0, UINT64_MAX);
	assert_int_equal(o.n, 2);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	o = query(f->m, 8, 0, UINT64_MAX);
	assert_int_equal(o.n, 0);
	assert_int_equal(meta_get_xattr(f->m, 8, "user.a", NULL, 0), -ENODATA);
	assert_int_equal(meta_get_xattr(f->m, 9, "user.keep", NULL, 0), 1);
}

static void test_batch_applies_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in = { .ino = 3, .mode = S_IFREG, .nlink = 1 }, got;
	uint64_t ino;
	uint32_t mode;

	meta_batch_put_inode(f->b, &in);
	meta_batch_put_dirent(f->b, 1, "x", 3, S_IFREG);
	meta_batch_put_orphan(f->b, 3);
	assert_int_equal(meta_get_inode(f->m, 3, &got), -ENOENT);
	assert_int_equal(meta_get_dirent(f->m, 1, "x", &ino, &mode), -ENOENT);
	/* Cleared: nothing of it may ever appear. */
	meta_batch_clear(f->b);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_inode(f->m, 3, &got), -ENOENT);

	meta_batch_put_inode(f->b, &in);
	meta_batch_put_dirent(f->b, 1, "x", 3, S_IFREG);
	assert_int_equal(meta_batch_commit(f->m, f->b, true), 0);
	assert_int_equal(meta_get_inode(f->m, 3, &got), 0);
	assert_int_equal(meta_get_dirent(f->m, 1, "x", &ino, &mode), 0);
	/* The committed batch is left empty: committing it again changes nothing. */
	meta_batch_del_inode(f->b, 3);
	meta_batch_clear(f->b);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_inode(f->m, 3, &got), 0);
}

static int collect_xattr(const char *name, void *arg)
{
	struct names *c = arg;

	snprintf(c->got[c->n++], sizeof(c->got[0]), "%s", name);
	return 0;
}

static void test_symlink_and_xattrs_round_trip(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	struct names c = { 0 };

	meta_batch_put_symlink(f->b, 12, "../v1/model.safetensors");
	meta_batch_put_xattr(f->b, 12, "user.b", "hello", 5);
	meta_batch_put_xattr(f->b, 12, "user.a", "", 0);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_symlink(f->m, 12, buf, sizeof(buf)), 23);
	assert_string_equal(buf, "../v1/model.safetensors");
	assert_int_equal(meta_get_symlink(f->m, 12, buf, 23), -ERANGE);
	assert_int_equal(meta_get_symlink(f->m, 13, buf, sizeof(buf)), -ENOENT);

	assert_int_equal(meta_get_xattr(f->m, 12, "user.b", NULL, 0), 5);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(meta_get_xattr(f->m, 12, "user.b", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(meta_get_xattr(f->m, 12, "user.a", buf, sizeof(buf)), 0);
	assert_int_equal(meta_get_xattr(f->m, 12, "user.c", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(meta_list_xattrs(f->m, 12, collect_xattr, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.got[0], "user.a");
	assert_string_equal(c.got[1], "user.b");

	meta_batch_del_xattr(f->b, 12, "user.b");
	meta_batch_del_symlink(f->b, 12);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_xattr(f->m, 12, "user.b", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(meta_get_symlink(f->m, 12, buf, sizeof(buf)), -ENOENT);
}

struct version_list {
	uint64_t ino[8];
	int n;
};

static int collect_version(const struct meta_version *v, void *arg)
{
	struct version_list *l = arg;

	l->ino[l->n++] = v->ino;
	return 0;
}

static void test_chunk_and_version_records_round_trip(void **state)
{
	struct fixture *f = *state;
	struct meta_chunk c = { .len = 4u << 20, .flags = 0 }, gotc;
	struct meta_version v = { .run_ino = 2, .ino = 3, .state = META_VERSION_SEALED, .step = -1,
				  .create_seq = 4, .seal_seq = 5, .sealed_ns = 6, .files = 7,
				  .logical_bytes = 8, .stored_bytes = 9 }, gotv;
	struct version_list l = { { 0 }, 0 };

	memset(c.digest.b, 0x42, DIGEST_LEN);
	meta_batch_put_chunk(f->b, &c);
	meta_batch_put_version(f->b, &v);
	v.ino = 10;
	meta_batch_put_version(f->b, &v);
	v.run_ino = 3;  /* another run */
	meta_batch_put_version(f->b, &v);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);

	assert_int_equal(meta_get_chunk(f->m, &c.digest, &gotc), 0);
	assert_int_equal(gotc.len, 4u << 20);
	assert_true(digest_equal(&gotc.digest, &c.digest));
	assert_int_equal(meta_get_version(f->m, 2, 3, &gotv), 0);
	assert_int_equal(gotv.state, META_VERSION_SEALED);
	assert_true(gotv.step == -1);
	assert_int_equal(gotv.stored_bytes, 9);
	assert_int_equal(meta_list_versions(f->m, 2, collect_version, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.ino[0], 3);
	assert_int_equal(l.ino[1], 10);

	meta_batch_del_chunk(f->b, &c.digest);
	meta_batch_del_version(f->b, 2, 3);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_chunk(f->m, &c.digest, &gotc), -ENOENT);
	assert_int_equal(meta_get_version(f->m, 2, 3, &gotv), -ENOENT);
}

struct counts {
	int inodes, extents, chunks, dirents, orphans;
};

static int count_inode(const struct meta_inode *i, void *arg)
{
	(void)i;
	((struct counts *)arg)->inodes++;
	return 0;
}

static int count_extent(uint64_t ino, const struct meta_extent *e, void *arg)
{
	(void)ino, (void)e;
	((struct counts *)arg)->extents++;
	return 0;
}

static int count_chunk(const struct meta_chunk *c, void *arg)
{
	(void)c;
	((struct counts *)arg)->chunks++;
	return 0;
}

static int count_dirent(uint64_t parent, const char *name, uint64_t ino, uint32_t mode, void *arg)
{
	(void)parent, (void)name, (void)ino, (void)mode;
	((struct counts *)arg)->dirents++;
	return 0;
}

static int count_orphan(uint64_t ino, void *arg)
{
	assert_int_equal(ino, 21);
	((struct counts *)arg)->orphans++;
	return 0;
}

static void test_tier_records_go_with_their_version_and_chunk(void **state)
{
	struct fixture *f = *state;
	struct meta_version v = { .run_ino = 7, .ino = 9, .state = META_VERSION_SEALED, .step = 100 };
	struct meta_chunk c = { .len = 4096 };
	struct meta_upload u = { .uploaded_bytes = 4096, .chunks = 1, .committed_ns = 5 }, got;
	struct meta_remote mark = { .epoch = 3 }, r;

	memset(c.digest.b, 0x5a, sizeof(c.digest.b));
	meta_batch_put_version(f->b, &v);
	meta_batch_put_chunk(f->b, &c);
	meta_batch_put_upload(f->b, 7, 9, &u);
	meta_batch_mark_remote(f->b, &c.digest, &mark);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_upload(f->m, 7, 9, &got), 0);
	assert_int_equal(got.committed_ns, 5);
	assert_int_equal(meta_chunk_remote_get(f->m, &c.digest, &r), 0);
	assert_int_equal(r.epoch, 3);
	assert_false(r.packed);

	/* A chunk in a pack keeps the pack's name and its offset there. */
	mark = (struct meta_remote){ .epoch = 4, .packed = true, .pack_off = 5 * 4160 + 72 };
	memset(mark.pack.b, 0xc3, sizeof(mark.pack.b));
	assert_int_equal(meta_chunk_mark_remote(f->m, &c.digest, &mark), 0);
	assert_int_equal(meta_chunk_remote_get(f->m, &c.digest, &r), 0);
	assert_int_equal(r.epoch, 4);
	assert_true(r.packed);
	assert_memory_equal(r.pack.b, mark.pack.b, DIGEST_LEN);
	assert_int_equal(r.pack_off, 5 * 4160 + 72);

	meta_batch_del_version(f->b, 7, 9);
	meta_batch_del_chunk(f->b, &c.digest);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_get_upload(f->m, 7, 9, &got), -ENOENT);
	assert_false(meta_chunk_is_remote(f->m, &c.digest));
}

/* Every record of each kind, by the whole-database scans. */
static struct counts count_all(struct meta *m)
{
	struct counts n = { 0 };

	assert_int_equal(meta_foreach_inode(m, count_inode, &n), 0);
	assert_int_equal(meta_foreach_extent(m, count_extent, &n), 0);
	assert_int_equal(meta_foreach_chunk(m, count_chunk, &n), 0);
	assert_int_equal(meta_foreach_dirent(m, count_dirent, &n), 0);
	assert_int_equal(meta_foreach_orphan(m, count_orphan, &n), 0);
	return n;
}

static void test_whole_db_scans_see_only_their_kind_and_survive_reopen(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in = { .mode = S_IFREG, .nlink = 1 };
	struct meta_extent e = extent(0, 10, 1);
	struct meta_chunk c = { .len = 10 };
	struct counts n = { 0 };

	for (uint64_t ino = 20; ino < 23; ino++) {
		in.ino = ino;
		meta_batch_put_inode(f->b, &in);
		meta_batch_put_extent(f->b, ino, &e);
		meta_batch_put_dirent(f->b, 1, ino == 20 ? "a" : ino == 21 ? "b" : "c", ino, S_IFREG);
	}
	memset(c.digest.b, 1, DIGEST_LEN);
	meta_batch_put_chunk(f->b, &c);
	meta_batch_put_orphan(f->b, 21);
	meta_batch_put_symlink(f->b, 20, "t");
	meta_batch_put_xattr(f->b, 20, "user.x", "v", 1);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_sync(f->m), 0);

	reopen(f);

	n = count_all(f->m);
	assert_int_equal(n.inodes, 3);
	assert_int_equal(n.extents, 3);
	assert_int_equal(n.chunks, 1);
	assert_int_equal(n.dirents, 3);
	assert_int_equal(n.orphans, 1);
	meta_batch_del_orphan(f->b, 21);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	n.orphans = 0;
	assert_int_equal(meta_foreach_orphan(f->m, count_orphan, &n), 0);
	assert_int_equal(n.orphans, 0);
}

static int count_name(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

/* Each round's records go to a table file of their own (reopening flushes what the log holds), so
 * every scan below merges several files, some of which the prefix filters let it skip. */
static void test_scans_find_records_spread_over_table_files(void **state)
{
	struct fixture *f = *state;
	struct counts n = { 0 };
	struct names c = { 0 };
	struct offs o;
	int xattrs = 0;

	for (int round = 0; round < 3; round++) {
		struct meta_inode in = { .ino = 40 + (uint64_t)round, .mode = S_IFREG, .nlink = 1 };
		struct meta_extent e = extent((uint64_t)round * 100, 100, (uint8_t)(round + 1));
		char name[16];

		meta_batch_put_inode(f->b, &in);
		meta_batch_put_extent(f->b, 40, &e);  /* one file's extents in every table file */
		if (round == 1) {
			/* its neighbours, in one table file only */
			meta_batch_put_extent(f->b, 39, &e);
			meta_batch_put_extent(f->b, 41, &e);
		}
		snprintf(name, sizeof(name), "f%d", round);
		meta_batch_put_dirent(f->b, 0xff, name, in.ino, S_IFREG);
		snprintf(name, sizeof(name), "user.%d", round);
		meta_batch_put_xattr(f->b, 41, name, "v", 1);
		assert_int_equal(meta_batch_commit(f->m, f->b, true), 0);
		reopen(f);
	}

	o = query(f->m, 40, 0, UINT64_MAX);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.off[0], 0);
	assert_int_equal(o.off[2], 200);
	o = query(f->m, 40, 150, 10);  /* the extent reaching into the range lies in an older file */
	assert_int_equal(o.n, 1);
	assert_int_equal(o.off[0], 100);
	o = query(f->m, 39, 0, UINT64_MAX);
	assert_int_equal(o.n, 1);
	assert_int_equal(meta_list_xattrs(f->m, 41, count_name, &xattrs), 0);
	assert_int_equal(xattrs, 3);
	assert_int_equal(meta_list_dir(f->m, 0xff, NULL, collect_name, &c), 0);
	assert_int_equal(c.n, 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_list_dir(f->m, 0xff, "f0", collect_name, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.got[0], "f1");
	n = count_all(f->m);
	assert_int_equal(n.inodes, 3);
	assert_int_equal(n.extents, 5);
	assert_int_equal(n.dirents, 3);
}

/* A lookup that steps back from a file's first extent leaves the file's records, and may land on
 * a key of any kind and length: the superblock's is one byte, shorter than the prefix the filters
 * hold. It must end the lookup (nothing starts before off), in the memtable and in a table file. */
static void test_extent_lookup_before_the_first_extent_meets_short_keys(void **state)
{
	struct fixture *f = *state;
	struct meta_super sb = { .format_version = 1, .chunk_size = 4096, .next_ino = 100 };
	struct meta_extent e = extent(1000, 100, 1);
	struct offs o;

	meta_batch_put_super(f->b, &sb);
	meta_batch_put_extent(f->b, 5, &e);
	assert_int_equal(meta_batch_commit(f->m, f->b, true), 0);
	for (int pass = 0; pass < 2; pass++) {
		o = query(f->m, 5, 500, 10);  /* before the first extent */
		assert_int_equal(o.n, 0);
		o = query(f->m, 5, 500, 600);  /* reaching into it */
		assert_int_equal(o.n, 1);
		assert_int_equal(o.off[0], 1000);
		o = query(f->m, 4, 500, 10);  /* a file with no extents, below the only one */
		assert_int_equal(o.n, 0);
		reopen(f);  /* then from a table file */
	}
}

static void test_second_open_of_the_same_db_is_busy(void **state)
{
	struct fixture *f = *state;
	struct meta *again = NULL;

	assert_int_equal(meta_open(f->dir, &again), -EBUSY);
	assert_null(again);
}

static int sum_logical(const struct meta_inode *i, void *arg)
{
	if (S_ISREG(i->mode) && i->nlink > 0)
		*(uint64_t *)arg += i->size;
	return 0;
}

static uint64_t scanned_logical(struct meta *m)
{
	uint64_t sum = 0;

	assert_int_equal(meta_foreach_inode(m, sum_logical, &sum), 0);
	return sum;
}

/* The running count of logical bytes equals a full scan after every commit: puts, size changes, the
 * same inode twice in one batch, unlinked files (nlink 0), directories, deletions, and a reopen. */
static void test_logical_bytes_are_kept_by_every_commit(void **state)
{
	struct fixture *f = *state;
	unsigned seed = 12345;

	assert_int_equal(meta_logical_bytes(f->m), 0);
	for (int round = 0; round < 200; round++) {
		int n = 1 + (int)(rand_r(&seed) % 6);
		for (int k = 0; k < n; k++) {
			uint64_t ino = 2 + rand_r(&seed) % 40;
			unsigned what = rand_r(&seed) % 10;
			if (what == 0) {
				meta_batch_del_inode(f->b, ino);
				continue;
			}
			struct meta_inode i = { .ino = ino, .parent = 1, .nlink = what == 1 ? 0 : 1,
						.mode = (what == 2 ? S_IFDIR : S_IFREG) | 0644,
						.size = (uint64_t)rand_r(&seed) % (1u << 30) };
			snprintf(i.name, sizeof(i.name), "f%llu", (unsigned long long)ino);
			meta_batch_put_inode(f->b, &i);
		}
		assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
		assert_true(meta_logical_bytes(f->m) == scanned_logical(f->m));
	}
	uint64_t before = meta_logical_bytes(f->m);
	assert_true(before > 0);
	reopen(f);
	assert_true(meta_logical_bytes(f->m) == before);
}

/* ---- open versions' tallies, against a count from scans ---- */

#define TALLY_POOL 300

struct tally_scan {
	struct meta *m;
	uint64_t vino;
	struct meta_tally_figures f;
	struct digest seen[4096];
	size_t nseen;
};

static int tally_scan_inode(const struct meta_inode *i, void *arg)
{
	struct tally_scan *t = arg;

	if (i->version_ino == t->vino && S_ISREG(i->mode)) {
		t->f.files += i->nlink;
		t->f.logical_bytes += (uint64_t)i->nlink * i->size;
	}
	return 0;
}

static int tally_scan_extent(uint64_t ino, const struct meta_extent *e, void *arg)
{
	struct tally_scan *t = arg;
	struct meta_inode mi;
	struct meta_chunk c;

	if (meta_get_inode(t->m, ino, &mi) != 0 || mi.version_ino != t->vino)
		return 0;
	for (size_t k = 0; k < t->nseen; k++)
		if (digest_equal(&t->seen[k], &e->digest))
			return 0;
	assert_true(t->nseen < 4096);
	t->seen[t->nseen++] = e->digest;
	assert_int_equal(meta_get_chunk(t->m, &e->digest, &c), 0);
	t->f.stored_bytes += c.len;
	return 0;
}

static void assert_tally_matches_scan(struct meta *m, uint64_t vino)
{
	static struct tally_scan t;
	struct meta_tally_figures got;

	memset(&t, 0, sizeof(t));
	t.m = m;
	t.vino = vino;
	assert_int_equal(meta_foreach_inode(m, tally_scan_inode, &t), 0);
	assert_int_equal(meta_foreach_extent(m, tally_scan_extent, &t), 0);
	assert_int_equal(meta_tally_get(m, vino, &got), 0);
	assert_true(got.files == t.f.files);
	assert_true(got.logical_bytes == t.f.logical_bytes);
	assert_true(got.stored_bytes == t.f.stored_bytes);
}

static void test_version_tallies_are_kept_by_every_commit(void **state)
{
	struct fixture *f = *state;
	struct digest pool[TALLY_POOL];
	unsigned seed = 4242;

	for (int k = 0; k < TALLY_POOL; k++) {
		struct meta_chunk c = { .len = 1000 + (uint64_t)k };
		for (int j = 0; j < DIGEST_LEN; j++)
			c.digest.b[j] = (uint8_t)rand_r(&seed);
		c.digest.b[0] &= 0x0f;  /* crowd the low bits too: long probe runs, removals inside them */
		pool[k] = c.digest;
		meta_batch_put_chunk(f->b, &c);
	}
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_tally_get(f->m, 10, &(struct meta_tally_figures){ 0 }), -ENOENT);
	assert_int_equal(meta_tally_track(f->m, 10), 0);
	assert_int_equal(meta_tally_track(f->m, 11), 0);
	for (int round = 0; round < 400; round++) {
		int n = 1 + (int)(rand_r(&seed) % 8);
		for (int k = 0; k < n; k++) {
			uint64_t ino = 2 + rand_r(&seed) % 30;
			unsigned what = rand_r(&seed) % 12;
			if (what == 0) {
				meta_batch_del_inode(f->b, ino);
			} else if (what < 5) {
				/* an inode in version 10, 11 or none, a file or not, 0-2 names */
				uint64_t vinos[3] = { 10, 11, 0 };
				struct meta_inode i = { .ino = ino, .parent = 1, .nlink = rand_r(&seed) % 3,
							.version_ino = vinos[rand_r(&seed) % 3],
							.mode = (what == 1 ? S_IFDIR : S_IFREG) | 0644,
							.size = (uint64_t)rand_r(&seed) % (1u << 20) };
				snprintf(i.name, sizeof(i.name), "f%llu", (unsigned long long)ino);
				meta_batch_put_inode(f->b, &i);
			} else if (what < 10) {
				struct meta_extent e = extent((rand_r(&seed) % 6) * 4096, 4096, 0);
				e.digest = pool[rand_r(&seed) % TALLY_POOL];
				meta_batch_put_extent(f->b, ino, &e);
			} else if (what == 10) {
				meta_batch_del_extent(f->b, ino, (rand_r(&seed) % 6) * 4096);
			} else {
				assert_int_equal(meta_batch_del_all_extents(f->m, f->b, ino), 0);
			}
		}
		assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
		assert_tally_matches_scan(f->m, 10);
		assert_tally_matches_scan(f->m, 11);
	}
	meta_tally_untrack(f->m, 10);
	assert_int_equal(meta_tally_get(f->m, 10, &(struct meta_tally_figures){ 0 }), -ENOENT);
	assert_tally_matches_scan(f->m, 11);
}

/* A seal's count: the tally's figures, plus the distinct chunks of the files its composition adds
 * (their sources) that the version's files do not already name, each once. */
static void test_tally_counts_extra_files_chunks_once(void **state)
{
	struct fixture *f = *state;
	struct meta_chunk c[3];
	struct meta_tally_figures got;

	for (int k = 0; k < 3; k++) {
		c[k] = (struct meta_chunk){ .len = 1000u << k };
		memset(c[k].digest.b, 0x40 + k, DIGEST_LEN);
		meta_batch_put_chunk(f->b, &c[k]);
	}
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	assert_int_equal(meta_tally_track(f->m, 10), 0);
	struct meta_inode own = { .ino = 2, .parent = 1, .nlink = 1, .version_ino = 10,
				  .mode = S_IFREG | 0644, .size = 8192, .name = "own" };
	struct meta_inode src = { .ino = 3, .parent = 1, .nlink = 1, .version_ino = 9,
				  .mode = S_IFREG | 0644, .size = 12288, .name = "src" };
	meta_batch_put_inode(f->b, &own);
	meta_batch_put_inode(f->b, &src);
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);
	struct { uint64_t ino, off; int chunk; } ext[] = { { 2, 0, 0 }, { 2, 4096, 1 },
							   { 3, 0, 1 }, { 3, 4096, 2 }, { 3, 8192, 2 } };
	for (size_t k = 0; k < sizeof(ext) / sizeof(ext[0]); k++) {
		struct meta_extent e = extent(ext[k].off, 4096, 0);
		e.digest = c[ext[k].chunk].digest;
		meta_batch_put_extent(f->b, ext[k].ino, &e);
	}
	assert_int_equal(meta_batch_commit(f->m, f->b, false), 0);

	assert_int_equal(meta_tally_count_with(f->m, 10, NULL, 0, &got), 0);
	assert_true(got.files == 1 && got.logical_bytes == 8192 && got.stored_bytes == 1000 + 2000);
	uint64_t extra[] = { 3, 3, 77 };  /* a source twice, and one without extents */
	assert_int_equal(meta_tally_count_with(f->m, 10, extra, 3, &got), 0);
	assert_true(got.files == 1 && got.logical_bytes == 8192);
	assert_true(got.stored_bytes == 1000 + 2000 + 4000);
	assert_int_equal(meta_tally_count_with(f->m, 11, extra, 1, &got), -ENOENT);
	meta_tally_untrack(f->m, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_db_has_no_superblock_then_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tally_counts_extra_files_chunks_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inode_round_trip_keeps_every_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirent_lookup_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_numbers_and_other_names_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_syncs_all_succeed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_dir_in_name_order_and_resumes_after_cursor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extent_queries_find_exactly_the_overlapping_extents, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_extent_round_trip_and_delete_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_applies_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_and_xattrs_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunk_and_version_records_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tier_records_go_with_their_version_and_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_db_scans_see_only_their_kind_and_survive_reopen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scans_find_records_spread_over_table_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extent_lookup_before_the_first_extent_meets_short_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_second_open_of_the_same_db_is_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logical_bytes_are_kept_by_every_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_tallies_are_kept_by_every_commit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
