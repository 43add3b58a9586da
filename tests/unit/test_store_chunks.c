/* test_store_chunks.c - the chunk store on a real folder: durable puts, ranged reads with CRC
 * checks, corruption detection, verification, the free-space reserve and temp-file cleanup.
 * Each test gets its own temporary data folder, removed afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk_store.h"
#include "crc32c.h"
#include "digest.h"

#define HDR 4096
#define BLOCK (128u << 10)

struct fixture {
	char dir[64];
	char chunks[96];
	struct chunk_store *cs;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/pecfs-chunks-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->chunks, sizeof(f->chunks), "%s/chunks", f->dir);
	assert_int_equal(chunk_store_open(f->chunks, 0, &f->cs), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chunk_store_close(f->cs);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void chunk_path(struct fixture *f, const struct digest *d, char *buf, size_t size)
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(d, hex);
	snprintf(buf, size, "%s/%.2s/%s", f->chunks, hex, hex);
}

static void flip_byte_on_disk(struct fixture *f, const struct digest *d, off_t off)
{
	char path[256];
	uint8_t c;
	int fd;

	chunk_path(f, d, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static int count_chunk(const struct digest *d, uint64_t bytes, void *arg)
{
	(void)d, (void)bytes;
	(*(int *)arg)++;
	return 0;
}

static void test_crc32c_vector(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	/* Chaining over pieces gives the same result as one pass, at any alignment. */
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
}

static void test_crc32c_many_equals_one_at_a_time(void **state)
{
	(void)state;
	enum { N = 10 };
	static uint8_t data[N][3000];
	const void *bufs[N];
	size_t lens[N];
	uint32_t got[N];

	srand(7);
	for (int i = 0; i < N; i++) {
		for (size_t k = 0; k < sizeof(data[i]); k++)
			data[i][k] = (uint8_t)rand();
		/* unequal lengths, odd alignments and a short tail exercise every path */
		bufs[i] = data[i] + (i % 5);
		lens[i] = (size_t)(2990 - 37 * i - (i % 3));
	}
	crc32c_many(bufs, lens, N, got);
	for (int i = 0; i < N; i++)
		assert_int_equal(got[i], crc32c(0, bufs[i], lens[i]));
}

/* CRC-32C bit by bit, straight from its definition: the reference for the fast paths. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void test_crc32c_long_buffers_match_the_definition(void **state)
{
	(void)state;
	enum { MAX = 300 << 10 };
	uint8_t *data = malloc(MAX + 8);
	assert_non_null(data);
	srand(11);
	for (size_t k = 0; k < MAX + 8; k++)
		data[k] = (uint8_t)rand();
	/* Lengths around the three-lane threshold (3 KiB) and a block (128 KiB), odd tails, odd
	 * alignments, and a non-zero starting CRC. */
	const size_t lens[] = { 3071, 3072, 3073, 3079, 3095, 4096, 65535, 128 << 10, (128 << 10) + 5,
				(128 << 10) - 3, 200001, MAX };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t a = 0; a < 3; a++) {
			uint32_t seed = a == 2 ? 0xDEADBEEFu : 0;
			assert_int_equal(crc32c(seed, data + a, lens[i]), crc32c_bitwise(seed, data + a, lens[i]));
		}
	free(data);
}

static void test_digest_matches_known_sha256_and_hex_round_trips(void **state)
{
	struct digest d, back;
	char hex[DIGEST_HEX_LEN + 1];

	(void)state;
	digest_compute("abc", 3, &d);
	digest_to_hex(&d, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(digest_from_hex(hex, &back), 0);
	assert_true(digest_equal(&d, &back));
	assert_int_equal(digest_from_hex("ba78", &back), -EINVAL);
	hex[5] = 'g';
	assert_int_equal(digest_from_hex(hex, &back), -EINVAL);
}

static void test_put_then_read_returns_bytes(void **state)
{
	struct fixture *f = *state;
	size_t len = 3 * BLOCK + 777;  /* a short last block */
	uint8_t *data = malloc(len), *out = malloc(len);
	struct { uint64_t off, len; } ranges[] = {
		{ 0, 3 * BLOCK + 777 }, { 0, 1 }, { 5, 100 }, { BLOCK - 3, 10 }, { BLOCK, BLOCK },
		{ 100, 2 * BLOCK }, { 3 * BLOCK, 777 }, { 3 * BLOCK + 776, 1 }, { 1000, 3 * BLOCK - 300 },
	};
	struct digest d;
	uint64_t plen;

	fill_random(data, len, 1);
	digest_compute(data, len, &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, len), 0);
	assert_int_equal(chunk_store_stat(f->cs, &d, &plen), 0);
	assert_int_equal(plen, len);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		memset(out, 0, len);
		assert_int_equal(chunk_store_read(f->cs, &d, ranges[i].off, out, ranges[i].len), 0);
		assert_memory_equal(out, data + ranges[i].off, ranges[i].len);
	}
	assert_int_equal(chunk_store_verify(f->cs, &d), 0);
	free(data);
	free(out);
}

static void test_file_is_header_plus_payload(void **state)
{
	struct fixture *f = *state;
	uint8_t data[5000];
	char path[256];
	struct digest d;
	struct stat st;
	uint8_t hdr[HDR];
	int fd;

	fill_random(data, sizeof(data), 2);
	digest_compute(data, sizeof(data), &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	chunk_path(f, &d, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, HDR + sizeof(data));
	fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, hdr, HDR, 0), HDR);
	close(fd);
	assert_memory_equal(hdr, "PECCHNK1", 8);
	assert_memory_equal(hdr + 24, d.b, DIGEST_LEN);
	assert_int_equal(hdr[56], 1);  /* one CRC block */
}

static void test_put_is_idempotent(void **state)
{
	struct fixture *f = *state;
	uint8_t data[10000], out[10000];
	struct digest d;
	int n = 0;

	fill_random(data, sizeof(data), 3);
	digest_compute(data, sizeof(data), &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_foreach(f->cs, count_chunk, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, sizeof(out)), 0);
	assert_memory_equal(out, data, sizeof(data));
}

static void test_missing_chunk_and_bad_range(void **state)
{
	struct fixture *f = *state;
	uint8_t data[100], out[200];
	struct digest d, absent;
	uint64_t plen;

	fill_random(data, sizeof(data), 4);
	digest_compute(data, sizeof(data), &d);
	digest_compute("absent", 6, &absent);
	assert_int_equal(chunk_store_read(f->cs, &absent, 0, out, 1), -ENOENT);
	assert_int_equal(chunk_store_stat(f->cs, &absent, &plen), -ENOENT);
	assert_int_equal(chunk_store_verify(f->cs, &absent), -ENOENT);
	assert_int_equal(chunk_store_delete(f->cs, &absent), -ENOENT);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 50, out, 51), -EINVAL);
	assert_int_equal(chunk_store_read(f->cs, &d, 101, out, 0), -EINVAL);
	assert_int_equal(chunk_store_read(f->cs, &d, 100, out, 0), 0);
}

static void test_corrupted_block_reads_eio(void **state)
{
	struct fixture *f = *state;
	size_t len = 4 * BLOCK;
	uint8_t *data = malloc(len), *out = malloc(len);
	struct digest d;

	fill_random(data, len, 5);
	digest_compute(data, len, &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, len), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, len), 0);  /* now cached open */
	flip_byte_on_disk(f, &d, HDR + 2 * BLOCK + 5);
	/* Blocks 0, 1 and 3 are intact and still readable; anything touching block 2 is refused. */
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, 2 * BLOCK), 0);
	assert_memory_equal(out, data, 2 * BLOCK);
	assert_int_equal(chunk_store_read(f->cs, &d, 3 * BLOCK, out, BLOCK), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 2 * BLOCK + 100, out, 1), -EIO);
	assert_int_equal(chunk_store_read(f->cs, &d, BLOCK, out, BLOCK + 1), -EIO);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, len), -EIO);
	assert_int_equal(chunk_store_verify(f->cs, &d), -EIO);
	free(data);
	free(out);
}

static void test_corrupted_header_reads_eio(void **state)
{
	struct fixture *f = *state;
	uint8_t data[3000], out[3000];
	struct digest d;
	uint64_t plen;

	fill_random(data, sizeof(data), 6);
	digest_compute(data, sizeof(data), &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	flip_byte_on_disk(f, &d, 17);  /* inside the payload length */
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, sizeof(out)), -EIO);
	assert_int_equal(chunk_store_stat(f->cs, &d, &plen), -EIO);
	assert_int_equal(chunk_store_verify(f->cs, &d), -EIO);
}

static void test_verify_detects_bad_digest(void **state)
{
	struct fixture *f = *state;
	uint8_t data[4096], out[4096];
	struct digest wrong;

	fill_random(data, sizeof(data), 7);
	/* Stored under a name that is not the SHA-256 of its bytes: checksums are consistent, so
	 * ranged reads pass, but verification must catch the lie. */
	digest_compute("something else", 14, &wrong);
	assert_int_equal(chunk_store_put(f->cs, &wrong, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_read(f->cs, &wrong, 0, out, sizeof(out)), 0);
	assert_int_equal(chunk_store_verify(f->cs, &wrong), -EIO);
}

static void test_truncated_file_reads_eio(void **state)
{
	struct fixture *f = *state;
	size_t len = 2 * BLOCK;
	uint8_t *data = malloc(len), *out = malloc(len);
	char path[256];
	struct digest d;

	fill_random(data, len, 8);
	digest_compute(data, len, &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, len), 0);
	chunk_path(f, &d, path, sizeof(path));
	assert_int_equal(truncate(path, HDR + BLOCK + 10), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, BLOCK), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, BLOCK, out, BLOCK), -EIO);
	assert_int_equal(chunk_store_verify(f->cs, &d), -EIO);
	free(data);
	free(out);
}

static void test_reserve_gives_enospc(void **state)
{
	struct fixture *f = *state;
	struct chunk_store *tight;
	uint8_t data[1000];
	struct digest d;
	char tmp[128];
	int n = 0;

	chunk_store_close(f->cs);
	/* A reserve larger than any disk: every put must be refused, and nothing left behind. */
	assert_int_equal(chunk_store_open(f->chunks, UINT64_MAX / 2, &tight), 0);
	f->cs = tight;
	fill_random(data, sizeof(data), 9);
	digest_compute(data, sizeof(data), &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), -ENOSPC);
	assert_int_equal(chunk_store_foreach(f->cs, count_chunk, &n), 0);
	assert_int_equal(n, 0);
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->chunks);
	assert_int_equal(rmdir(tmp), 0);  /* empty */
	assert_int_equal(mkdir(tmp, 0755), 0);
	assert_true(chunk_store_free_bytes(f->cs) > 0);
}

static void test_leftover_temp_files_removed_at_open(void **state)
{
	struct fixture *f = *state;
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/tmp/abandoned.1.1", f->chunks);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);
	chunk_store_close(f->cs);
	assert_int_equal(chunk_store_open(f->chunks, 0, &f->cs), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_delete_drops_cached_file(void **state)
{
	struct fixture *f = *state;
	uint8_t data[2048], out[2048];
	struct digest d;
	int64_t mtime;

	fill_random(data, sizeof(data), 10);
	digest_compute(data, sizeof(data), &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_mtime(f->cs, &d, &mtime), 0);
	assert_true(mtime > 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, sizeof(out)), 0);
	assert_int_equal(chunk_store_delete(f->cs, &d), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, sizeof(out)), -ENOENT);
	/* And it can be stored again afterwards. */
	assert_int_equal(chunk_store_put(f->cs, &d, data, sizeof(data)), 0);
	assert_int_equal(chunk_store_read(f->cs, &d, 0, out, sizeof(out)), 0);
	assert_memory_equal(out, data, sizeof(data));
}

static void test_many_chunks_through_the_open_file_cache(void **state)
{
	struct fixture *f = *state;
	struct digest d[150];
	uint8_t data[512], out[512];
	int n = 0;

	/* More chunks than cached descriptors: eviction must never serve the wrong file. */
	for (int i = 0; i < 150; i++) {
		fill_random(data, sizeof(data), 100 + (uint32_t)i);
		digest_compute(data, sizeof(data), &d[i]);
		assert_int_equal(chunk_store_put(f->cs, &d[i], data, sizeof(data)), 0);
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 150; i++) {
			fill_random(data, sizeof(data), 100 + (uint32_t)i);
			assert_int_equal(chunk_store_read(f->cs, &d[i], 0, out, sizeof(out)), 0);
			assert_memory_equal(out, data, sizeof(out));
		}
	}
	assert_int_equal(chunk_store_foreach(f->cs, count_chunk, &n), 0);
	assert_int_equal(n, 150);
}

/* Pages of file bytes [off, off + len) (page-aligned) that the page cache holds. */
static size_t resident_pages(int fd, off_t off, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = len / (size_t)page, count = 0;
	unsigned char *vec = malloc(n);
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);

	assert_non_null(vec);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mincore(map, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	munmap(map, len);
	free(vec);
	return count;
}

static void test_prefetch_brings_the_range_into_the_page_cache(void **state)
{
	struct fixture *f = *state;
	size_t len = 32 * BLOCK, pages = 4 * BLOCK / 4096;
	uint8_t *data = malloc(len), *out = malloc(BLOCK);
	struct digest d, absent;
	char path[256];

	fill_random(data, len, 11);
	digest_compute(data, len, &d);
	assert_int_equal(chunk_store_put(f->cs, &d, data, len), 0);
	chunk_path(f, &d, path, sizeof(path));
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	/* Out of the page cache first (the put synced it, so the kernel can drop its pages). */
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	assert_int_equal(resident_pages(fd, HDR + 8 * BLOCK, 4 * BLOCK), 0);
	chunk_store_prefetch(f->cs, &d, 8 * BLOCK, 4 * BLOCK);
	/* The disk reads run in the background: give them a moment. */
	size_t got = 0;
	for (int i = 0; i < 200 && got < pages; i++) {
		struct timespec ms = { 0, 10 * 1000 * 1000 };
		nanosleep(&ms, NULL);
		got = resident_pages(fd, HDR + 8 * BLOCK, 4 * BLOCK);
	}
	assert_int_equal(got, pages);
	/* A hint only: an absent chunk and a range past the payload change nothing, and reads go on. */
	fill_random(data, 64, 12);
	digest_compute(data, 64, &absent);
	chunk_store_prefetch(f->cs, &absent, 0, 64);
	chunk_store_prefetch(f->cs, &d, len + BLOCK, BLOCK);
	fill_random(data, len, 11);
	assert_int_equal(chunk_store_read(f->cs, &d, 9 * BLOCK, out, BLOCK), 0);
	assert_memory_equal(out, data + 9 * BLOCK, BLOCK);
	close(fd);
	free(data);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vector),
		cmocka_unit_test(test_crc32c_many_equals_one_at_a_time),
		cmocka_unit_test(test_crc32c_long_buffers_match_the_definition),
		cmocka_unit_test(test_digest_matches_known_sha256_and_hex_round_trips),
		cmocka_unit_test_setup_teardown(test_put_then_read_returns_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_is_header_plus_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_is_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_chunk_and_bad_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupted_block_reads_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupted_header_reads_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_detects_bad_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file_reads_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_gives_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_temp_files_removed_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_drops_cached_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_chunks_through_the_open_file_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_brings_the_range_into_the_page_cache, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
