/* test_version_name.c - the step numbers, temporary names and tracker files of policy/version_name.h.
 *
 * One test per documented naming convention, plus the names that must carry nothing, because a wrong
 * step would misorder a run's versions and a wrong tracker match would seal the wrong version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "version_name.h"

static bool names(const char *tracker, const char *content, const char *version)
{
	return version_name_tracker_names(tracker, content, strlen(content), version);
}

static void test_deepspeed_global_step_names_carry_their_step(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("global_step1200"), 1200);
	assert_int_equal(version_name_step("global_step0"), 0);
}

static void test_step_names_with_dash_underscore_or_nothing(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("step-1200"), 1200);
	assert_int_equal(version_name_step("step_1200"), 1200);
	assert_int_equal(version_name_step("step1200"), 1200);
	assert_int_equal(version_name_step("Step-7"), 7);
}

static void test_megatron_iter_names_drop_leading_zeros(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("iter_0001200"), 1200);
	assert_int_equal(version_name_step("iter_0000000"), 0);
}

static void test_hugging_face_checkpoint_names(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("checkpoint-1200"), 1200);
}

static void test_epoch_and_step_names_take_the_step(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("epoch_3-step_1200"), 1200);
	assert_int_equal(version_name_step("epoch=3-step=1200"), -1);
}

static void test_temporary_suffix_is_ignored_for_the_step(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("step-1200.tmp"), 1200);
	assert_int_equal(version_name_step("global_step300.tmp-8f2a"), 300);
	assert_int_equal(version_name_step("iter_0000050.partial"), 50);
	assert_int_equal(version_name_step("checkpoint-9.incomplete"), 9);
}

static void test_names_without_a_step_carry_none(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("final"), -1);
	assert_int_equal(version_name_step("1200"), -1);
	assert_int_equal(version_name_step("step"), -1);
	assert_int_equal(version_name_step("step-"), -1);
	assert_int_equal(version_name_step("misstep5"), -1);
	assert_int_equal(version_name_step("iteration5"), -1);
	assert_int_equal(version_name_step("step-12a"), -1);
	assert_int_equal(version_name_step("step-1200-final"), -1);
	assert_int_equal(version_name_step(""), -1);
	assert_int_equal(version_name_step(NULL), -1);
}

static void test_steps_too_large_for_int64_carry_none(void **state)
{
	(void)state;
	assert_int_equal(version_name_step("step-999999999999999999"), 999999999999999999LL);
	assert_int_equal(version_name_step("step-9999999999999999999"), -1);
}

static void test_temporary_names(void **state)
{
	(void)state;
	assert_true(version_name_is_temporary("step-100.tmp"));
	assert_true(version_name_is_temporary("step-100.tmp-12345"));
	assert_true(version_name_is_temporary("global_step5.partial"));
	assert_true(version_name_is_temporary("iter_0000005.incomplete"));
	assert_true(version_name_is_temporary("tmp_step_100"));
	assert_true(version_name_is_temporary("tmpXy12"));
	assert_true(version_name_is_temporary(".step-100"));
}

static void test_final_names_are_not_temporary(void **state)
{
	(void)state;
	assert_false(version_name_is_temporary("step-100"));
	assert_false(version_name_is_temporary("global_step200"));
	assert_false(version_name_is_temporary("step-100.tmpl"));
	assert_false(version_name_is_temporary("atmp"));
	assert_false(version_name_is_temporary(""));
	assert_false(version_name_is_temporary(NULL));
}

static void test_tracker_file_names(void **state)
{
	(void)state;
	assert_true(version_name_is_tracker("latest"));
	assert_true(version_name_is_tracker("latest_checkpointed_iteration.txt"));
	assert_false(version_name_is_tracker("latest.txt"));
	assert_false(version_name_is_tracker("Latest"));
	assert_false(version_name_is_tracker("latest "));
	assert_false(version_name_is_tracker(NULL));
}

static void test_deepspeed_latest_names_its_tag(void **state)
{
	(void)state;
	assert_true(names("latest", "global_step1200\n", "global_step1200"));
	assert_true(names("latest", "  global_step1200 \r\n", "global_step1200"));
	assert_false(names("latest", "global_step1200", "global_step120"));
	assert_false(names("latest", "global_step120", "global_step1200"));
	assert_false(names("latest", "global_step1200\n", "step-1200"));
}

static void test_deepspeed_content_is_length_bounded(void **state)
{
	/* The content is not NUL-terminated: only len bytes count. */
	(void)state;
	assert_true(version_name_tracker_names("latest", "global_step7XXXX", 12, "global_step7"));
}

static void test_megatron_iteration_names_versions_with_that_step(void **state)
{
	(void)state;
	assert_true(names("latest_checkpointed_iteration.txt", "1200", "iter_0001200"));
	assert_true(names("latest_checkpointed_iteration.txt", "1200\n", "step-1200"));
	assert_true(names("latest_checkpointed_iteration.txt", " 0001200 ", "global_step1200"));
	assert_false(names("latest_checkpointed_iteration.txt", "1200", "iter_0001100"));
	assert_false(names("latest_checkpointed_iteration.txt", "1200", "final"));
}

static void test_megatron_never_names_a_temporary_directory(void **state)
{
	(void)state;
	assert_false(names("latest_checkpointed_iteration.txt", "1200", "iter_0001200.tmp"));
}

static void test_release_and_garbage_name_nothing(void **state)
{
	(void)state;
	assert_false(names("latest_checkpointed_iteration.txt", "release", "release"));
	assert_false(names("latest_checkpointed_iteration.txt", "release\n", "iter_0001200"));
	assert_false(names("latest_checkpointed_iteration.txt", "12x0", "iter_0001200"));
	assert_false(names("latest_checkpointed_iteration.txt", "-1200", "step-1200"));
	assert_false(names("latest_checkpointed_iteration.txt", "", "step-0"));
	assert_false(names("latest_checkpointed_iteration.txt", " \n\t", "step-0"));
	assert_false(names("latest", "", "global_step1"));
	assert_false(names("latest", "\n", "global_step1"));
	assert_false(names("not_a_tracker", "global_step1", "global_step1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deepspeed_global_step_names_carry_their_step),
		cmocka_unit_test(test_step_names_with_dash_underscore_or_nothing),
		cmocka_unit_test(test_megatron_iter_names_drop_leading_zeros),
		cmocka_unit_test(test_hugging_face_checkpoint_names),
		cmocka_unit_test(test_epoch_and_step_names_take_the_step),
		cmocka_unit_test(test_temporary_suffix_is_ignored_for_the_step),
		cmocka_unit_test(test_names_without_a_step_carry_none),
		cmocka_unit_test(test_steps_too_large_for_int64_carry_none),
		cmocka_unit_test(test_temporary_names),
		cmocka_unit_test(test_final_names_are_not_temporary),
		cmocka_unit_test(test_tracker_file_names),
		cmocka_unit_test(test_deepspeed_latest_names_its_tag),
		cmocka_unit_test(test_deepspeed_content_is_length_bounded),
		cmocka_unit_test(test_megatron_iteration_names_versions_with_that_step),
		cmocka_unit_test(test_megatron_never_names_a_temporary_directory),
		cmocka_unit_test(test_release_and_garbage_name_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
