/* test_store_refs.c - the data folder as a whole: opening and refusing folders, deduplicating
 * puts under concurrency, reference counts derived at open, orphan cleanup, garbage collection
 * and fsck findings. Each test gets its own temporary data folder, removed afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

struct fixture {
	char dir[64];
	struct store *st;
};

static const struct store_options small_chunks = { .chunk_size = 64u << 10, .reserve_free_bytes = 0 };

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/pecfs-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, &small_chunks, &f->st, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->dir, &small_chunks, &f->st, NULL), 0);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int count_file(const struct digest *d, uint64_t bytes, void *arg)
{
	(void)d, (void)bytes;
	(*(int *)arg)++;
	return 0;
}

static int chunk_files(struct store *st)
{
	int n = 0;

	assert_int_equal(chunk_store_foreach(store_chunks(st), count_file, &n), 0);
	return n;
}

/* Commits inode ino named name in parent, with one extent per digest (len bytes each). */
static void add_file(struct store *st, uint64_t parent, uint64_t ino, const char *name, uint32_t mode,
		     const struct digest *d, int nd, uint64_t len)
{
	struct meta_inode in = { .ino = ino, .parent = parent, .mode = mode, .nlink = S_ISDIR(mode) ? 2 : 1 };
	struct meta_batch *b = meta_batch_new();

	snprintf(in.name, sizeof(in.name), "%s", name);
	in.size = (uint64_t)nd * len;
	meta_batch_put_inode(b, &in);
	meta_batch_put_dirent(b, parent, name, ino, mode);
	for (int i = 0; i < nd; i++) {
		struct meta_extent e = { .file_off = (uint64_t)i * len, .len = len, .digest = d[i] };

		meta_batch_put_extent(b, ino, &e);
	}
	assert_int_equal(meta_batch_commit(store_meta(st), b, true), 0);
	meta_batch_free(b);
}

/* Bumps a directory's link count as a subdirectory does. */
static void add_subdir_link(struct store *st, uint64_t dir)
{
	struct meta_inode in;
	struct meta_batch *b = meta_batch_new();

	assert_int_equal(meta_get_inode(store_meta(st), dir, &in), 0);
	in.nlink++;
	meta_batch_put_inode(b, &in);
	assert_int_equal(meta_batch_commit(store_meta(st), b, true), 0);
	meta_batch_free(b);
}

static void test_new_folder_has_root_and_superblock(void **state)
{
	struct fixture *f = *state;
	struct meta_super sb;
	struct meta_inode root;
	char path[16];

	assert_int_equal(meta_get_super(store_meta(f->st), &sb), 0);
	assert_int_equal(sb.format_version, META_FORMAT_VERSION);
	assert_int_equal(sb.chunk_size, 64u << 10);
	assert_int_equal(sb.next_ino, 2);
	assert_int_equal(store_chunk_size(f->st), 64u << 10);
	assert_int_equal(meta_get_inode(store_meta(f->st), META_ROOT_INO, &root), 0);
	assert_int_equal(root.mode, S_IFDIR | 0755);
	assert_int_equal(root.nlink, 2);
	assert_int_equal(root.uid, getuid());
	assert_int_equal(store_inode_path(f->st, META_ROOT_INO, path, sizeof(path)), 0);
	assert_string_equal(path, "/");
	assert_string_equal(store_data_dir(f->st), f->dir);

	/* An existing folder keeps its own chunk size whatever the options say. */
	store_close(f->st);
	assert_int_equal(store_open(f->dir, NULL, &f->st, NULL), 0);
	assert_int_equal(store_chunk_size(f->st), 64u << 10);
}

static void test_second_open_is_busy(void **state)
{
	struct fixture *f = *state;
	struct store *again = NULL;
	pid_t holder = 0;

	assert_int_equal(store_open(f->dir, &small_chunks, &again, &holder), -EBUSY);
	assert_null(again);
	assert_int_equal(holder, getpid());
}

static void test_foreign_or_unknown_folders_are_refused(void **state)
{
	struct fixture *f = *state;
	struct meta_super sb;
	struct meta_batch *b;
	struct store *st = NULL;
	char other[64], path[128];
	int fd;

	strcpy(other, "/tmp/pecfs-foreign-XXXXXX");
	assert_non_null(mkdtemp(other));
	snprintf(path, sizeof(path), "%s/notes.txt", other);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	assert_int_equal(store_open(other, &small_chunks, &st, NULL), -EINVAL);
	assert_null(st);
	assert_int_equal(access(path, F_OK), 0);  /* untouched */
	nftw(other, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	/* A superblock from a future format. */
	assert_int_equal(meta_get_super(store_meta(f->st), &sb), 0);
	sb.format_version = 99;
	b = meta_batch_new();
	meta_batch_put_super(b, &sb);
	assert_int_equal(meta_batch_commit(store_meta(f->st), b, true), 0);
	meta_batch_free(b);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->dir, &small_chunks, &st, NULL), -EINVAL);
	sb.format_version = META_FORMAT_VERSION;
	/* Put it back so teardown can close a valid store. */
	{
		struct meta *m;
		char mpath[128];

		snprintf(mpath, sizeof(mpath), "%s/meta", f->dir);
		assert_int_equal(meta_open(mpath, &m), 0);
		b = meta_batch_new();
		meta_batch_put_super(b, &sb);
		assert_int_equal(meta_batch_commit(m, b, true), 0);
		meta_batch_free(b);
		meta_close(m);
	}
	assert_int_equal(store_open(f->dir, &small_chunks, &f->st, NULL), 0);
}

struct put_arg {
	struct store *st;
	const uint8_t *data;
	size_t len;
	struct digest d;
	bool was_new;
	int rc;
};

static void *put_thread(void *p)
{
	struct put_arg *a = p;

	a->rc = store_chunk_put(a->st, a->data, a->len, &a->d, &a->was_new);
	return NULL;
}

static void test_identical_puts_store_once(void **state)
{
	struct fixture *f = *state;
	enum { N = 8 };
	size_t len = 64u << 10;
	uint8_t *data = malloc(len), *out = malloc(len);
	struct put_arg a[N];
	pthread_t t[N];
	struct store_stats s;
	int fresh = 0;

	fill(data, len, 11);
	for (int i = 0; i < N; i++) {
		a[i] = (struct put_arg){ .st = f->st, .data = data, .len = len };
		assert_int_equal(pthread_create(&t[i], NULL, put_thread, &a[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 0);
		assert_true(digest_equal(&a[i].d, &a[0].d));
		fresh += a[i].was_new;
	}
	assert_int_equal(fresh, 1);
	assert_int_equal(store_chunk_refcount(f->st, &a[0].d), N);
	assert_int_equal(chunk_files(f->st), 1);
	store_get_stats(f->st, &s);
	assert_int_equal(s.chunks, 1);
	assert_int_equal(s.stored_bytes, len);
	assert_int_equal(s.referenced_bytes, len);
	assert_int_equal(s.logical_put_bytes, N * len);
	assert_int_equal(s.dedup_hits, N - 1);
	assert_int_equal(s.new_chunks, 1);
	assert_int_equal(store_chunk_read(f->st, &a[0].d, 0, out, len), 0);
	assert_memory_equal(out, data, len);
	free(data);
	free(out);
}

static void test_ref_and_unref_track_references(void **state)
{
	struct fixture *f = *state;
	uint8_t data[1000];
	struct digest d, absent;
	struct store_stats s;

	fill(data, sizeof(data), 12);
	assert_int_equal(store_chunk_put(f->st, data, sizeof(data), &d, NULL), 0);
	assert_int_equal(store_chunk_ref(f->st, &d), 0);
	assert_int_equal(store_chunk_refcount(f->st, &d), 2);
	store_chunk_unref(f->st, &d);
	store_chunk_unref(f->st, &d);
	assert_int_equal(store_chunk_refcount(f->st, &d), 0);
	store_get_stats(f->st, &s);
	assert_int_equal(s.referenced_bytes, 0);
	assert_int_equal(s.stored_bytes, sizeof(data));
	digest_compute("never stored", 12, &absent);
	assert_int_equal(store_chunk_ref(f->st, &absent), -ENOENT);
}

static void test_refcounts_rebuilt_at_open(void **state)
{
	struct fixture *f = *state;
	uint8_t a[5000], b[5000], c[5000];
	struct digest da, db, dc, files[3];
	struct store_stats s;

	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 2);
	fill(c, sizeof(c), 3);
	assert_int_equal(store_chunk_put(f->st, a, sizeof(a), &da, NULL), 0);
	assert_int_equal(store_chunk_put(f->st, b, sizeof(b), &db, NULL), 0);
	assert_int_equal(store_chunk_put(f->st, c, sizeof(c), &dc, NULL), 0);  /* never referenced */
	files[0] = da, files[1] = da, files[2] = db;
	add_file(f->st, 1, 10, "x.bin", S_IFREG | 0644, files, 3, sizeof(a));
	add_file(f->st, 1, 11, "y.bin", S_IFREG | 0644, &da, 1, sizeof(a));
	reopen(f);
	assert_int_equal(store_chunk_refcount(f->st, &da), 3);
	assert_int_equal(store_chunk_refcount(f->st, &db), 1);
	assert_int_equal(store_chunk_refcount(f->st, &dc), 0);
	store_get_stats(f->st, &s);
	assert_int_equal(s.chunks, 3);
	assert_int_equal(s.stored_bytes, 3 * sizeof(a));
	assert_int_equal(s.referenced_bytes, 2 * sizeof(a));
}

static void test_orphans_deleted_at_open(void **state)
{
	struct fixture *f = *state;
	uint8_t a[3000];
	struct digest d;
	struct meta_inode in;
	struct meta_batch *b;

	fill(a, sizeof(a), 4);
	assert_int_equal(store_chunk_put(f->st, a, sizeof(a), &d, NULL), 0);
	add_file(f->st, 1, 20, "gone.bin", S_IFREG | 0644, &d, 1, sizeof(a));
	/* Unlinked while open: the entry goes, the inode stays with an orphan mark. */
	b = meta_batch_new();
	meta_batch_del_dirent(b, 1, "gone.bin");
	meta_batch_put_xattr(b, 20, "user.k", "v", 1);
	meta_batch_put_orphan(b, 20);
	assert_int_equal(meta_batch_commit(store_meta(f->st), b, true), 0);
	meta_batch_free(b);
	reopen(f);
	assert_int_equal(meta_get_inode(store_meta(f->st), 20, &in), -ENOENT);
	assert_int_equal(meta_get_xattr(store_meta(f->st), 20, "user.k", NULL, 0), -ENODATA);
	assert_int_equal(store_chunk_refcount(f->st, &d), 0);
}

static void test_gc_removes_only_unreferenced(void **state)
{
	struct fixture *f = *state;
	uint8_t keep[4096], drop[4096], out[4096];
	struct digest dk, dd;
	struct meta_chunk rec;
	struct store_gc_report r;
	bool was_new;

	fill(keep, sizeof(keep), 5);
	fill(drop, sizeof(drop), 6);
	assert_int_equal(store_chunk_put(f->st, keep, sizeof(keep), &dk, NULL), 0);
	assert_int_equal(store_chunk_put(f->st, drop, sizeof(drop), &dd, NULL), 0);
	add_file(f->st, 1, 30, "keep.bin", S_IFREG | 0644, &dk, 1, sizeof(keep));
	store_chunk_unref(f->st, &dd);  /* the put's reference, never committed as an extent */

	assert_int_equal(store_gc(f->st, &r), 0);
	assert_int_equal(r.chunks_removed, 1);
	assert_int_equal(r.bytes_removed, sizeof(drop));
	assert_int_equal(r.chunks_kept, 1);
	assert_int_equal(r.files_removed, 0);
	assert_int_equal(chunk_files(f->st), 1);
	assert_int_equal(meta_get_chunk(store_meta(f->st), &dd, &rec), -ENOENT);
	assert_int_equal(store_chunk_read(f->st, &dd, 0, out, sizeof(out)), -ENOENT);
	assert_int_equal(store_chunk_read(f->st, &dk, 0, out, sizeof(out)), 0);
	assert_memory_equal(out, keep, sizeof(keep));

	/* The same bytes put again after collection are stored anew. */
	assert_int_equal(store_chunk_put(f->st, drop, sizeof(drop), &dd, &was_new), 0);
	assert_true(was_new);
	assert_int_equal(store_chunk_read(f->st, &dd, 0, out, sizeof(out)), 0);
	assert_memory_equal(out, drop, sizeof(drop));
	assert_int_equal(meta_get_chunk(store_meta(f->st), &dd, &rec), 0);
}

static void test_gc_removes_stray_files_once_they_are_old(void **state)
{
	struct fixture *f = *state;
	uint8_t data[2048];
	struct digest d;
	struct store_gc_report r;
	struct timespec old[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
	char hex[DIGEST_HEX_LEN + 1], path[256];

	fill(data, sizeof(data), 7);
	digest_compute(data, sizeof(data), &d);
	/* A file without a record: what a crash between the chunk file and its record leaves. */
	assert_int_equal(chunk_store_put(store_chunks(f->st), &d, data, sizeof(data)), 0);
	assert_int_equal(store_gc(f->st, &r), 0);
	assert_int_equal(r.files_removed, 0);  /* too young: it could be a put in flight */
	assert_int_equal(chunk_files(f->st), 1);

	digest_to_hex(&d, hex);
	snprintf(path, sizeof(path), "%s/chunks/%.2s/%s", f->dir, hex, hex);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(store_gc(f->st, &r), 0);
	assert_int_equal(r.files_removed, 1);
	assert_int_equal(chunk_files(f->st), 0);
}

struct gc_race {
	struct store *st;
	const uint8_t *data;
	size_t len;
	int rounds;
	int rc;
};

static void *race_putter(void *p)
{
	struct gc_race *g = p;

	for (int i = 0; i < g->rounds && !g->rc; i++) {
		struct digest d;
		uint8_t out[512];

		g->rc = store_chunk_put(g->st, g->data, g->len, &d, NULL);
		/* While the reference is held, gc may never take the chunk away. */
		if (!g->rc)
			g->rc = store_chunk_read(g->st, &d, 0, out, sizeof(out));
		if (!g->rc)
			store_chunk_unref(g->st, &d);
	}
	return NULL;
}

static void test_gc_concurrent_with_puts_never_loses_a_referenced_chunk(void **state)
{
	struct fixture *f = *state;
	uint8_t data[4096];
	struct gc_race g = { .st = f->st, .data = data, .len = sizeof(data), .rounds = 300 };
	struct store_gc_report r;
	pthread_t t;

	fill(data, sizeof(data), 8);
	assert_int_equal(pthread_create(&t, NULL, race_putter, &g), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(store_gc(f->st, &r), 0);
	pthread_join(t, NULL);
	assert_int_equal(g.rc, 0);
}

static void build_tree(struct store *st, const struct digest *d, uint64_t len)
{
	add_file(st, 1, 2, "run", S_IFDIR | 0755, NULL, 0, 0);
	add_subdir_link(st, 1);
	add_file(st, 2, 3, "v1", S_IFDIR | 0755, NULL, 0, 0);
	add_subdir_link(st, 2);
	add_file(st, 3, 4, "a.bin", S_IFREG | 0644, d, 1, len);
}

static char *run_fsck(struct store *st, struct store_fsck_report *r)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	assert_int_equal(store_fsck(st, out, r), 0);
	fclose(out);
	return text;
}

static void test_fsck_of_a_clean_store_reports_no_problems(void **state)
{
	struct fixture *f = *state;
	uint8_t data[8000];
	struct digest d;
	struct store_fsck_report r;
	char path[64], *text;

	fill(data, sizeof(data), 9);
	assert_int_equal(store_chunk_put(f->st, data, sizeof(data), &d, NULL), 0);
	build_tree(f->st, &d, sizeof(data));
	assert_int_equal(store_inode_path(f->st, 4, path, sizeof(path)), 0);
	assert_string_equal(path, "/run/v1/a.bin");
	assert_int_equal(store_inode_path(f->st, 4, path, 10), -ERANGE);
	text = run_fsck(f->st, &r);
	assert_int_equal(r.problems, 0);
	assert_int_equal(r.inodes, 4);
	assert_int_equal(r.extents, 1);
	assert_int_equal(r.chunks, 1);
	assert_non_null(strstr(text, "clean"));
	free(text);
}

static void test_fsck_names_file_of_corrupt_chunk(void **state)
{
	struct fixture *f = *state;
	uint8_t data[8000], c;
	struct digest d;
	struct store_fsck_report r;
	char hex[DIGEST_HEX_LEN + 1], path[256], expect[160], *text;
	int fd;

	fill(data, sizeof(data), 10);
	assert_int_equal(store_chunk_put(f->st, data, sizeof(data), &d, NULL), 0);
	build_tree(f->st, &d, sizeof(data));
	digest_to_hex(&d, hex);
	snprintf(path, sizeof(path), "%s/chunks/%.2s/%s", f->dir, hex, hex);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 4096 + 5000), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 4096 + 5000), 1);
	close(fd);

	text = run_fsck(f->st, &r);
	snprintf(expect, sizeof(expect), "corrupt chunk %s: used by /run/v1/a.bin", hex);
	assert_non_null(strstr(text, expect));
	assert_int_equal(r.corrupt_chunks, 1);
	assert_true(r.problems >= 1);
	free(text);
	/* Reads refuse the bad bytes and count it. */
	{
		struct store_stats s;
		uint8_t out[8000];

		assert_int_equal(store_chunk_read(f->st, &d, 0, out, sizeof(out)), -EIO);
		store_get_stats(f->st, &s);
		assert_int_equal(s.corrupt_reads, 1);
	}
}

static void test_fsck_finds_missing_chunks_and_namespace_damage(void **state)
{
	struct fixture *f = *state;
	uint8_t data[4000];
	struct digest d, ghost;
	struct store_fsck_report r;
	struct meta_batch *b;
	char *text;

	fill(data, sizeof(data), 11);
	assert_int_equal(store_chunk_put(f->st, data, sizeof(data), &d, NULL), 0);
	build_tree(f->st, &d, sizeof(data));
	digest_compute("not stored", 10, &ghost);
	add_file(f->st, 3, 5, "b.bin", S_IFREG | 0644, &ghost, 1, 100);
	b = meta_batch_new();
	meta_batch_put_dirent(b, 3, "dangling", 99, S_IFREG);  /* no inode 99 */
	struct meta_extent stray = { .file_off = 0, .len = 100, .digest = d };
	meta_batch_put_extent(b, 77, &stray);  /* no inode 77: it would hold d forever */
	assert_int_equal(meta_batch_commit(store_meta(f->st), b, true), 0);
	meta_batch_free(b);
	add_subdir_link(f->st, 3);  /* v1 claims a subdirectory it does not have */
	/* The chunk file of a recorded chunk disappears. */
	assert_int_equal(chunk_store_delete(store_chunks(f->st), &d), 0);

	text = run_fsck(f->st, &r);
	assert_int_equal(r.missing_chunks, 2);
	assert_int_equal(r.namespace_errors, 2);
	assert_non_null(strstr(text, "used by /run/v1/a.bin"));
	assert_non_null(strstr(text, "used by /run/v1/b.bin"));
	assert_non_null(strstr(text, "dangling entry /run/v1/dangling"));
	assert_non_null(strstr(text, "link count 3, expected 2"));
	assert_non_null(strstr(text, "extents of inode 77, which does not exist"));
	assert_int_equal(r.extent_errors, 1);
	assert_non_null(strstr(text, "PROBLEMS FOUND"));
	assert_int_equal(r.problems, 5);
	free(text);
}

/* Symlink targets, xattrs and orphan keys of inodes that are gone (or of the wrong kind) are kept
 * forever, or worse: an orphan key on a named file deletes it at the next mount. */
static void test_fsck_finds_records_of_missing_or_wrong_inodes(void **state)
{
	struct fixture *f = *state;
	uint8_t data[4000];
	struct digest d;
	struct store_fsck_report r;
	struct meta_batch *b;
	char *text;

	fill(data, sizeof(data), 12);
	assert_int_equal(store_chunk_put(f->st, data, sizeof(data), &d, NULL), 0);
	build_tree(f->st, &d, sizeof(data));
	/* What belongs: a symlink with its target, an xattr of a file, an orphan (link count 0). */
	add_file(f->st, 3, 7, "good-link", S_IFLNK | 0777, NULL, 0, 0);
	add_file(f->st, 3, 6, "bare-link", S_IFLNK | 0777, NULL, 0, 0);
	struct meta_inode orphan = { .ino = 8, .parent = 3, .mode = S_IFREG | 0644, .nlink = 0 };
	snprintf(orphan.name, sizeof(orphan.name), "gone.bin");
	b = meta_batch_new();
	meta_batch_put_symlink(b, 7, "a.bin");
	meta_batch_put_xattr(b, 4, "user.step", "10", 2);
	meta_batch_put_inode(b, &orphan);
	meta_batch_put_orphan(b, 8);
	assert_int_equal(meta_batch_commit(store_meta(f->st), b, true), 0);
	meta_batch_free(b);
	text = run_fsck(f->st, &r);
	assert_int_equal(r.namespace_errors, 1);  /* bare-link only */
	assert_non_null(strstr(text, "symlink inode 6 (\"bare-link\" in inode 3) has no target"));
	free(text);

	/* What does not. */
	b = meta_batch_new();
	meta_batch_put_symlink(b, 4, "x");   /* a.bin is a regular file */
	meta_batch_put_symlink(b, 88, "x");  /* no inode 88 */
	meta_batch_put_xattr(b, 89, "user.a", "1", 1);  /* no inode 89: two xattrs, one finding */
	meta_batch_put_xattr(b, 89, "user.b", "2", 1);
	meta_batch_put_orphan(b, 4);         /* a.bin still has its name */
	meta_batch_put_orphan(b, 90);        /* no inode 90 */
	assert_int_equal(meta_batch_commit(store_meta(f->st), b, true), 0);
	meta_batch_free(b);
	text = run_fsck(f->st, &r);
	assert_non_null(strstr(text, "a symlink target of inode 4, which is not a symlink"));
	assert_non_null(strstr(text, "a symlink target of inode 88, which does not exist"));
	assert_non_null(strstr(text, "xattrs of inode 89, which does not exist"));
	assert_non_null(strstr(text, "an orphan key of inode 4, whose link count is 1: the next mount would delete it"));
	assert_non_null(strstr(text, "an orphan key of inode 90, which does not exist"));
	assert_int_equal(r.namespace_errors, 6);
	assert_int_equal(r.problems, 6);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_folder_has_root_and_superblock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_is_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_or_unknown_folders_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identical_puts_store_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ref_and_unref_track_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refcounts_rebuilt_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_deleted_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_removes_only_unreferenced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_removes_stray_files_once_they_are_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_concurrent_with_puts_never_loses_a_referenced_chunk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fsck_of_a_clean_store_reports_no_problems, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_names_file_of_corrupt_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_finds_missing_chunks_and_namespace_damage, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fsck_finds_records_of_missing_or_wrong_inodes, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
