/* test_pecgpu_digests.c - libpecgpu's hashing: the shared SHA-256 core (what the CUDA kernel runs)
 * and pecgpu_digests over multi-segment files, both against OpenSSL on the concatenated bytes.
 *
 * Host memory only; the device path is checked by tests/gpu/pecgpu_cudatest.c on a GPU machine.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "pecgpu.h"
#include "pecgpu_sha256.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(next_rand() >> 24);
	return p;
}

static void core_digest(const uint8_t *p, size_t n, uint8_t out[32])
{
	struct pecgpu_sha256 s;
	pecgpu_sha256_init(&s);
	pecgpu_sha256_update(&s, p, n);
	pecgpu_sha256_final(&s, out);
}

static void test_sha256_core_known_answers(void **state)
{
	(void)state;
	/* FIPS 180-4 examples: "abc" and the two-block message */
	static const uint8_t abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
	};
	static const uint8_t two[32] = {
		0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26, 0x93, 0x0c, 0x3e, 0x60, 0x39,
		0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff, 0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4, 0x19, 0xdb, 0x06, 0xc1
	};
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[32];
	core_digest((const uint8_t *)"abc", 3, d);
	assert_memory_equal(d, abc, 32);
	core_digest((const uint8_t *)m2, strlen(m2), d);
	assert_memory_equal(d, two, 32);
}

static void test_sha256_core_matches_openssl_on_every_padding_case(void **state)
{
	(void)state;
	static const size_t big[] = { 1000, 4095, 4096, 4097, (1u << 20) + 3, (3u << 20) + 17 };
	uint8_t *buf = random_bytes((3u << 20) + 17);
	uint8_t a[32], b[32];
	/* every length up to 300 covers 0, 55, 56, 63, 64, 65, 119, 120, 128 and the rest */
	for (size_t n = 0; n <= 300; n++) {
		core_digest(buf, n, a);
		SHA256(buf, n, b);
		assert_memory_equal(a, b, 32);
	}
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		core_digest(buf, big[i], a);
		SHA256(buf, big[i], b);
		assert_memory_equal(a, b, 32);
	}
	free(buf);
}

static void test_sha256_core_streaming_in_random_pieces(void **state)
{
	(void)state;
	size_t n = (1u << 20) + 777;
	uint8_t *buf = random_bytes(n);
	uint8_t a[32], b[32];
	SHA256(buf, n, b);
	for (int round = 0; round < 20; round++) {
		struct pecgpu_sha256 s;
		pecgpu_sha256_init(&s);
		for (size_t off = 0; off < n;) {
			size_t k = (size_t)(next_rand() % (round < 10 ? 130 : 70000));
			if (k > n - off)
				k = n - off;
			pecgpu_sha256_update(&s, buf + off, k);
			off += k;
		}
		pecgpu_sha256_final(&s, a);
		assert_memory_equal(a, b, 32);
	}
	free(buf);
}

static void test_chunk_count(void **state)
{
	(void)state;
	assert_int_equal(pecgpu_chunk_count(0, 4096), 0);
	assert_int_equal(pecgpu_chunk_count(1, 4096), 1);
	assert_int_equal(pecgpu_chunk_count(4096, 4096), 1);
	assert_int_equal(pecgpu_chunk_count(4097, 4096), 2);
	assert_int_equal(pecgpu_chunk_count(UINT64_MAX, 1u << 31), (UINT64_MAX >> 31) + 1);
	assert_int_equal(pecgpu_chunk_count(10, 0), 0);
}

/* Cuts buf[0, total) into nsegs segments of random sizes (some empty) and checks every chunk's
 * digest against OpenSSL on the plain buffer. */
static void check_layout(const uint8_t *buf, uint64_t total, const uint64_t *cuts, size_t nsegs,
			 uint32_t chunk_size, unsigned threads)
{
	struct pecgpu_segment *segs = calloc(nsegs ? nsegs : 1, sizeof(*segs));
	assert_non_null(segs);
	uint64_t off = 0;
	for (size_t i = 0; i < nsegs; i++) {
		uint64_t len = (i + 1 == nsegs ? total : cuts[i]) - off;
		/* a copy per segment, so a digest that read across a segment's end would read wrong bytes */
		uint8_t *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, buf + off, len);
		segs[i] = (struct pecgpu_segment){ .ptr = len ? copy : NULL, .len = len, .where = PECGPU_HOST };
		if (!len)
			free(copy);
		off += len;
	}
	assert_int_equal(off, total);
	uint64_t n = pecgpu_chunk_count(total, chunk_size);
	uint8_t (*got)[PECGPU_DIGEST_LEN] = malloc((n + 1) * PECGPU_DIGEST_LEN);
	assert_non_null(got);
	memset(got, 0xaa, (n + 1) * PECGPU_DIGEST_LEN);
	assert_int_equal(pecgpu_digests(segs, nsegs, chunk_size, threads, got), 0);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t want[32];
		uint64_t o = i * chunk_size;
		SHA256(buf + o, total - o < chunk_size ? total - o : chunk_size, want);
		assert_memory_equal(got[i], want, 32);
	}
	/* nothing is written past the last chunk's digest */
	for (int k = 0; k < PECGPU_DIGEST_LEN; k++)
		assert_int_equal(got[n][k], 0xaa);
	for (size_t i = 0; i < nsegs; i++)
		free((void *)segs[i].ptr);
	free(segs);
	free(got);
}

static void test_digests_of_one_segment_are_per_chunk_sha256(void **state)
{
	(void)state;
	uint64_t total = (5u << 20) + 12345;
	uint8_t *buf = random_bytes(total);
	uint64_t cut = 0;
	check_layout(buf, total, &cut, 1, 1u << 20, 0);
	check_layout(buf, total, &cut, 1, 4096, 3);
	check_layout(buf, 4096 * 7, &cut, 1, 4096, 2);  /* whole chunks, no tail */
	free(buf);
}

static void test_digests_of_segments_spanning_chunk_boundaries(void **state)
{
	(void)state;
	static const uint32_t sizes[] = { 1, 7, 64, 65, 4096, 65536, 1u << 20 };
	uint64_t total = (3u << 20) + 4099;
	uint8_t *buf = random_bytes(total);
	for (int round = 0; round < 40; round++) {
		size_t nsegs = 1 + (size_t)(next_rand() % 12);
		uint64_t cuts[12];
		for (size_t i = 0; i + 1 < nsegs; i++)
			cuts[i] = next_rand() % (total + 1);
		/* sorted cut points; equal neighbours make empty segments */
		for (size_t i = 1; i + 1 < nsegs; i++)
			for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
				uint64_t t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		if (round % 5 == 0 && nsegs > 2)
			cuts[1] = cuts[0];  /* an empty segment in the middle */
		uint32_t cs = sizes[round % (sizeof(sizes) / sizeof(sizes[0]))];
		uint64_t t = cs < 64 ? 50000 + (uint64_t)round : total - (uint64_t)round * 31;
		for (size_t i = 0; i + 1 < nsegs; i++)
			if (cuts[i] > t)
				cuts[i] = t;
		check_layout(buf, t, cuts, nsegs, cs, (unsigned)(round % 5));
	}
	free(buf);
}

static void test_digests_of_a_header_and_tensors_layout(void **state)
{
	(void)state;
	/* a safetensors-like file: 8-byte length, odd header, tensors, an empty tensor, a tail */
	uint32_t cs = 1u << 16;
	uint64_t cuts[] = { 8, 8 + 301, 8 + 301 + 3 * 65536, 8 + 301 + 3 * 65536, 8 + 301 + 5 * 65536 + 1 };
	uint64_t total = 8 + 301 + 5 * 65536 + 1 + 999;
	uint8_t *buf = random_bytes(total);
	check_layout(buf, total, cuts, 6, cs, 4);
	free(buf);
}

static void test_digests_of_an_empty_file_are_none(void **state)
{
	(void)state;
	struct pecgpu_segment segs[2] = { { NULL, 0, PECGPU_HOST }, { NULL, 0, PECGPU_HOST } };
	uint8_t out[1][PECGPU_DIGEST_LEN];
	memset(out, 0x55, sizeof(out));
	assert_int_equal(pecgpu_digests(segs, 2, 4096, 0, out), 0);
	assert_int_equal(pecgpu_digests(NULL, 0, 4096, 0, out), 0);
	for (int k = 0; k < PECGPU_DIGEST_LEN; k++)
		assert_int_equal(out[0][k], 0x55);
}

static void test_digests_reject_bad_arguments(void **state)
{
	(void)state;
	uint8_t data[10] = { 0 };
	uint8_t out[10][PECGPU_DIGEST_LEN];
	struct pecgpu_segment seg = { data, sizeof(data), PECGPU_HOST };
	assert_int_equal(pecgpu_digests(&seg, 1, 0, 0, out), -EINVAL);
	struct pecgpu_segment null_with_len = { NULL, 5, PECGPU_HOST };
	assert_int_equal(pecgpu_digests(&null_with_len, 1, 4, 0, out), -EINVAL);
	struct pecgpu_segment odd_where = { data, sizeof(data), 7 };
	assert_int_equal(pecgpu_digests(&odd_where, 1, 4, 0, out), -EINVAL);
	if (!pecgpu_cuda_available()) {
		struct pecgpu_segment dev = { data, sizeof(data), PECGPU_CUDA };
		assert_int_equal(pecgpu_digests(&dev, 1, 4, 0, out), -ENODEV);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_core_known_answers),
		cmocka_unit_test(test_sha256_core_matches_openssl_on_every_padding_case),
		cmocka_unit_test(test_sha256_core_streaming_in_random_pieces),
		cmocka_unit_test(test_chunk_count),
		cmocka_unit_test(test_digests_of_one_segment_are_per_chunk_sha256),
		cmocka_unit_test(test_digests_of_segments_spanning_chunk_boundaries),
		cmocka_unit_test(test_digests_of_a_header_and_tensors_layout),
		cmocka_unit_test(test_digests_of_an_empty_file_are_none),
		cmocka_unit_test(test_digests_reject_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
