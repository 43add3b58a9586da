/* test_pecgpu_save.c - libpecgpu's save pipeline on a plain file system (no pecfs mount, so every
 * chunk is staged and written): bytes and size of the file, stats, the bounded pool, the two
 * completion points, errors that name stage and path, and the ioctl wrappers' answer off pecfs.
 *
 * Reference writes on a real mount are exercised by tests/gpu/pecgpu_check.c.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "pecgpu.h"

#define PLAIN_CHUNK (4u << 20)

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pecgpu-save-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		p[i] = (uint8_t)(x >> 24);
	}
	return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	*len = (size_t)st.st_size;
	uint8_t *p = malloc(*len ? *len : 1);
	assert_non_null(p);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, *len, 0), (ssize_t)*len);
	close(fd);
	return p;
}

/* Saves buf cut at cuts[] through ctx and checks the file and the stats. */
static void save_and_check(struct pecgpu_ctx *c, const char *name, const uint8_t *buf, uint64_t total,
			   const uint64_t *cuts, size_t nsegs)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct pecgpu_segment segs[16];
	assert_true(nsegs <= 16);
	uint64_t off = 0;
	for (size_t i = 0; i < nsegs; i++) {
		uint64_t end = i + 1 == nsegs ? total : cuts[i];
		segs[i] = (struct pecgpu_segment){ buf + off, end - off, PECGPU_HOST };
		off = end;
	}
	struct pecgpu_save *s = NULL;
	assert_int_equal(pecgpu_save_start(c, path, segs, nsegs, &s), 0);
	assert_int_equal(pecgpu_save_wait_copied(s), 0);
	assert_int_equal(pecgpu_save_wait_durable(s), 0);
	assert_string_equal(pecgpu_save_error(s), "");
	struct pecgpu_save_stats st;
	pecgpu_save_stats(s, &st);
	uint64_t chunks = pecgpu_chunk_count(total, PLAIN_CHUNK);
	assert_int_equal(st.file_bytes, total);
	assert_int_equal(st.chunks, chunks);
	assert_int_equal(st.chunks_linked, 0);
	assert_int_equal(st.chunks_written, chunks);
	assert_int_equal(st.bytes_written, total);
	assert_int_equal(st.bytes_copied, 0);  /* nothing came from a device */
	assert_true(st.total_s >= st.digest_s);
	pecgpu_save_free(s);

	size_t len;
	uint8_t *got = read_file(path, &len);
	assert_int_equal(len, total);
	assert_memory_equal(got, buf, total);
	free(got);
}

static void test_save_writes_every_byte_of_a_multi_segment_file(void **state)
{
	(void)state;
	struct pecgpu_ctx *c;
	assert_int_equal(pecgpu_ctx_new(NULL, &c), 0);
	uint64_t total = 3 * (uint64_t)PLAIN_CHUNK + 12345;
	uint8_t *buf = pattern(total, 1);
	/* header, a tensor across two chunk boundaries, an empty tensor, the rest with the tail */
	uint64_t cuts[] = { 8, 8 + 517, PLAIN_CHUNK * 2 + 3, PLAIN_CHUNK * 2 + 3 };
	save_and_check(c, "multi.safetensors", buf, total, cuts, 5);
	save_and_check(c, "whole-chunks", buf, 2 * (uint64_t)PLAIN_CHUNK, cuts, 2);
	save_and_check(c, "small", buf, 100, cuts, 1);
	pecgpu_ctx_free(c);
	free(buf);
}

static void test_save_of_nothing_makes_an_empty_file(void **state)
{
	(void)state;
	struct pecgpu_ctx *c;
	assert_int_equal(pecgpu_ctx_new(NULL, &c), 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/empty", dir);
	/* an existing longer file is truncated */
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old bytes", 9), 9);
	close(fd);
	struct pecgpu_save *s;
	assert_int_equal(pecgpu_save_start(c, path, NULL, 0, &s), 0);
	assert_int_equal(pecgpu_save_wait_durable(s), 0);
	pecgpu_save_free(s);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	pecgpu_ctx_free(c);
}

static void test_save_through_a_two_buffer_pool(void **state)
{
	(void)state;
	/* pool_bytes below two chunks still gets two buffers: copying waits for free ones */
	struct pecgpu_options o = { .pool_bytes = 1, .hash_threads = 2 };
	struct pecgpu_ctx *c;
	assert_int_equal(pecgpu_ctx_new(&o, &c), 0);
	uint64_t total = 9 * (uint64_t)PLAIN_CHUNK + 1;
	uint8_t *buf = pattern(total, 2);
	uint64_t cuts[] = { PLAIN_CHUNK / 3, PLAIN_CHUNK * 5 + 7 };
	save_and_check(c, "pooled", buf, total, cuts, 3);
	pecgpu_ctx_free(c);
	free(buf);
}

static void test_concurrent_saves_share_one_context(void **state)
{
	(void)state;
	struct pecgpu_options o = { .pool_bytes = 3 * (uint64_t)PLAIN_CHUNK };
	struct pecgpu_ctx *c;
	assert_int_equal(pecgpu_ctx_new(&o, &c), 0);
	enum { N = 4 };
	uint64_t total = 2 * (uint64_t)PLAIN_CHUNK + 999;
	uint8_t *buf[N];
	struct pecgpu_save *s[N];
	char path[N][128];
	for (int i = 0; i < N; i++) {
		buf[i] = pattern(total, 10 + (unsigned)i);
		snprintf(path[i], sizeof(path[i]), "%s/concurrent-%d", dir, i);
		struct pecgpu_segment seg = { buf[i], total, PECGPU_HOST };
		assert_int_equal(pecgpu_save_start(c, path[i], &seg, 1, &s[i]), 0);
	}
	/* freeing the context waits for every save; the saves stay readable until freed */
	pecgpu_ctx_free(c);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pecgpu_save_wait_durable(s[i]), 0);
		pecgpu_save_free(s[i]);
		size_t len;
		uint8_t *got = read_file(path[i], &len);
		assert_int_equal(len, total);
		assert_memory_equal(got, buf[i], total);
		free(got);
		free(buf[i]);
	}
}

static void test_save_failure_names_stage_and_path(void **state)
{
	(void)state;
	struct pecgpu_ctx *c;
	assert_int_equal(pecgpu_ctx_new(NULL, &c), 0);
	uint8_t data[5000] = { 1 };
	struct pecgpu_segment seg = { data, sizeof(data), PECGPU_HOST };
	struct pecgpu_save *s = NULL;
	/* /dev/full opens, is not pecfs, and fails every write with ENOSPC */
	assert_int_equal(pecgpu_save_start(c, "/dev/full", &seg, 1, &s), 0);
	/* the bytes were staged before the write failed: "copied" may or may not have seen it */
	int copied = pecgpu_save_wait_copied(s);
	assert_true(copied == 0 || copied == -ENOSPC);
	assert_int_equal(pecgpu_save_wait_durable(s), -ENOSPC);
	assert_string_equal(pecgpu_save_error(s), "write of /dev/full: No space left on device");
	struct pecgpu_save_stats st;
	pecgpu_save_stats(s, &st);
	assert_int_equal(st.chunks_written, 0);
	pecgpu_save_free(s);

	char path[128];
	snprintf(path, sizeof(path), "%s/no/such/dir", dir);
	s = NULL;
	assert_int_equal(pecgpu_save_start(c, path, &seg, 1, &s), -ENOENT);
	assert_null(s);
	struct pecgpu_segment bad = { NULL, 10, PECGPU_HOST };
	assert_int_equal(pecgpu_save_start(c, path, &bad, 1, &s), -EINVAL);
	if (!pecgpu_cuda_available()) {
		struct pecgpu_segment dev = { data, 10, PECGPU_CUDA };
		snprintf(path, sizeof(path), "%s/device", dir);
		assert_int_equal(pecgpu_save_start(c, path, &dev, 1, &s), -ENODEV);
	}
	pecgpu_ctx_free(c);
}

static void test_options_are_checked(void **state)
{
	(void)state;
	struct pecgpu_options o = { .rank = 2, .world = 2 };
	struct pecgpu_ctx *c = NULL;
	assert_int_equal(pecgpu_ctx_new(&o, &c), -EINVAL);
	assert_null(c);
}

static void test_ioctls_off_pecfs_answer_enotty(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/plain", dir);
	int fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	uint32_t cs = 0;
	assert_int_equal(pecgpu_chunk_size(fd, &cs), -ENOTTY);
	struct pecgpu_ref r = { .off = 0, .len = 10 };
	assert_int_equal(pecgpu_ref(fd, &r, 1), -ENOTTY);
	assert_int_equal(pecgpu_ref(fd, NULL, 0), 0);
	close(fd);
	assert_int_equal(pecgpu_chunk_size(-1, &cs), -EBADF);
}

static void test_version_names_the_runtime(void **state)
{
	(void)state;
	const char *v = pecgpu_version();
	assert_true(strncmp(v, "pecgpu ", 7) == 0);
	assert_non_null(strstr(v, pecgpu_cuda_available() ? "(cuda " : "cuda"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_save_writes_every_byte_of_a_multi_segment_file),
		cmocka_unit_test(test_save_of_nothing_makes_an_empty_file),
		cmocka_unit_test(test_save_through_a_two_buffer_pool),
		cmocka_unit_test(test_concurrent_saves_share_one_context),
		cmocka_unit_test(test_save_failure_names_stage_and_path),
		cmocka_unit_test(test_options_are_checked),
		cmocka_unit_test(test_ioctls_off_pecfs_answer_enotty),
		cmocka_unit_test(test_version_names_the_runtime),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
