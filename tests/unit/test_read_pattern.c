/* test_read_pattern.c - telling sequential readers from random ones (store/read_pattern.c): which
 * reads report a chunk entered, and that each chunk is reported once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "read_pattern.h"

#define CHUNK (4u << 20)
#define KIB 1024u

/* The chunk a read reports, or -1 when it reports none. */
static int64_t note(struct read_pattern *rp, uint64_t off, size_t len)
{
	uint64_t entered = UINT64_MAX;

	if (!read_pattern_note(rp, off, len, CHUNK, &entered))
		return -1;
	return (int64_t)entered;
}

static void test_a_reader_from_the_start_reports_each_chunk_once(void **state)
{
	struct read_pattern rp;
	int64_t reported[8];
	int n = 0;

	(void)state;
	memset(&rp, 0, sizeof(rp));
	for (uint64_t off = 0; off < 3ull * CHUNK; off += 128 * KIB) {
		int64_t c = note(&rp, off, 128 * KIB);
		if (c >= 0) {
			assert_true(n < 8);
			assert_int_equal(off % CHUNK, 0);  /* reported as the reader enters it */
			reported[n++] = c;
		}
	}
	assert_int_equal(n, 3);
	assert_int_equal(reported[0], 0);
	assert_int_equal(reported[1], 1);
	assert_int_equal(reported[2], 2);
}

static void test_a_reader_from_the_middle_needs_two_reads_that_follow_on(void **state)
{
	struct read_pattern rp;

	(void)state;
	memset(&rp, 0, sizeof(rp));
	assert_int_equal(note(&rp, 10ull * CHUNK + 512 * KIB, 512 * KIB), -1);  /* a jump */
	assert_int_equal(note(&rp, 10ull * CHUNK + 1024 * KIB, 512 * KIB), -1);  /* one follows on */
	assert_int_equal(note(&rp, 10ull * CHUNK + 1536 * KIB, 512 * KIB), 10);  /* two */
	assert_int_equal(note(&rp, 10ull * CHUNK + 2048 * KIB, 512 * KIB), -1);  /* same chunk */
	assert_int_equal(note(&rp, 11ull * CHUNK, 1 << 20), 11);
}

static void test_random_reads_report_nothing_and_restart_the_streak(void **state)
{
	struct read_pattern rp;

	(void)state;
	memset(&rp, 0, sizeof(rp));
	assert_int_equal(note(&rp, 0, 64 * KIB), 0);
	assert_int_equal(note(&rp, 64 * KIB, 64 * KIB), -1);
	/* Far ahead, then far back: jumps, not a sequence. */
	assert_int_equal(note(&rp, 50ull * CHUNK, 64 * KIB), -1);
	assert_int_equal(note(&rp, 20ull * CHUNK, 64 * KIB), -1);
	assert_int_equal(note(&rp, 5ull * CHUNK + 7, 64 * KIB), -1);
	/* Then a sequence again, from where the last jump landed. */
	assert_int_equal(note(&rp, 5ull * CHUNK + 7 + 64 * KIB, 64 * KIB), -1);
	assert_int_equal(note(&rp, 5ull * CHUNK + 7 + 128 * KIB, 64 * KIB), 5);
	/* Empty reads say nothing. */
	assert_int_equal(note(&rp, 6ull * CHUNK, 0), -1);
}

static void test_reads_arriving_out_of_order_still_count_as_sequential(void **state)
{
	struct read_pattern rp;

	(void)state;
	memset(&rp, 0, sizeof(rp));
	/* The kernel's read-ahead requests of one reader, the later one served first. */
	assert_int_equal(note(&rp, 0, 1 << 20), 0);
	assert_int_equal(note(&rp, 2u << 20, 1 << 20), -1);
	assert_int_equal(note(&rp, 1u << 20, 1 << 20), -1);
	assert_int_equal(note(&rp, CHUNK + (1u << 20), 1 << 20), 1);
	assert_int_equal(note(&rp, CHUNK, 1 << 20), -1);  /* chunk 1 was reported already */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_reader_from_the_start_reports_each_chunk_once),
		cmocka_unit_test(test_a_reader_from_the_middle_needs_two_reads_that_follow_on),
		cmocka_unit_test(test_random_reads_report_nothing_and_restart_the_streak),
		cmocka_unit_test(test_reads_arriving_out_of_order_still_count_as_sequential),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
