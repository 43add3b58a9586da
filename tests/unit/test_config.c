/* test_config.c - settings: defaults, every kind of value, size suffixes, rejected values, and the
 * configuration file (comments, errors reported as FILE:LINE).
 *
 * Files are written into a temporary folder under /tmp and removed by each test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

struct conf_file {
	char dir[64];
	char path[96];
};

static void write_conf(struct conf_file *cf, const char *text)
{
	FILE *f;

	strcpy(cf->dir, "/tmp/pecfs-test-config-XXXXXX");
	assert_non_null(mkdtemp(cf->dir));
	snprintf(cf->path, sizeof(cf->path), "%s/pecfs.conf", cf->dir);
	f = fopen(cf->path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void remove_conf(struct conf_file *cf)
{
	unlink(cf->path);
	rmdir(cf->dir);
}

static void test_defaults(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_false(cfg.foreground);
	assert_false(cfg.allow_other);
	assert_false(cfg.fuse_debug);
	assert_false(cfg.syslog);
	assert_int_equal(cfg.log_level, PECFS_LOG_INFO);
	assert_int_equal(cfg.chunk_size, 4u << 20);
	assert_int_equal(cfg.write_buffers, 32);
	assert_int_equal(cfg.hash_threads, 4);
	assert_int_equal(cfg.fuse_threads, 16);
	assert_int_equal(cfg.reserve_free_bytes, 256ull << 20);
	assert_true(cfg.attr_timeout == 1.0);
	assert_true(cfg.direct_io_mmap);
	assert_true(cfg.sealed_direct_io);
	assert_true(cfg.seal_on_tracker);
	assert_true(cfg.seal_on_rename);
	assert_false(cfg.seal_on_next_version);
	assert_string_equal(cfg.config_file, "");
	assert_int_equal(pecfs_config_validate(&cfg, err, sizeof(err)), 0);
}

/* The defaults written in the key table (and so in --help and the example file) are the real ones. */
static void test_documented_defaults_are_the_defaults(void **state)
{
	struct pecfs_config def, cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&def);
	pecfs_config_defaults(&cfg);
	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name != NULL; k++) {
		assert_ptr_equal(pecfs_config_find(k->name), k);
		assert_int_equal(pecfs_config_set(&cfg, k->name, k->default_text, err, sizeof(err)), 0);
	}
	assert_int_equal(cfg.foreground, def.foreground);
	assert_int_equal(cfg.allow_other, def.allow_other);
	assert_int_equal(cfg.fuse_debug, def.fuse_debug);
	assert_int_equal(cfg.log_level, def.log_level);
	assert_int_equal(cfg.syslog, def.syslog);
	assert_int_equal(cfg.chunk_size, def.chunk_size);
	assert_int_equal(cfg.write_buffers, def.write_buffers);
	assert_int_equal(cfg.hash_threads, def.hash_threads);
	assert_int_equal(cfg.fuse_threads, def.fuse_threads);
	assert_int_equal(cfg.reserve_free_bytes, def.reserve_free_bytes);
	assert_true(cfg.attr_timeout == def.attr_timeout);
	assert_int_equal(cfg.direct_io_mmap, def.direct_io_mmap);
	assert_int_equal(cfg.sealed_direct_io, def.sealed_direct_io);
	assert_int_equal(cfg.seal_on_tracker, def.seal_on_tracker);
	assert_int_equal(cfg.seal_on_rename, def.seal_on_rename);
	assert_int_equal(cfg.seal_on_next_version, def.seal_on_next_version);
}

static void test_boolean_words(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "On" };
	static const char *const no[] = { "no", "false", "off", "0", "No", "FALSE" };
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(pecfs_config_set(&cfg, "allow-other", yes[i], err, sizeof(err)), 0);
		assert_true(cfg.allow_other);
		assert_int_equal(pecfs_config_set(&cfg, "allow-other", no[i], err, sizeof(err)), 0);
		assert_false(cfg.allow_other);
	}
	assert_int_equal(pecfs_config_set(&cfg, "seal-on-next-version", "on", err, sizeof(err)), 0);
	assert_true(cfg.seal_on_next_version);
	assert_int_equal(pecfs_config_set(&cfg, "seal-on-tracker", "off", err, sizeof(err)), 0);
	assert_false(cfg.seal_on_tracker);
	assert_int_equal(pecfs_config_set(&cfg, "fuse-debug", "maybe", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "fuse-debug: 'maybe' is not yes or no");
}

static void test_size_suffixes(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "0", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 0);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "1000", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 1000);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "64k", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 64ull << 10);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "3M", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 3ull << 20);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "2GiB", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 2ull << 30);
	assert_int_equal(pecfs_config_set(&cfg, "reserve-free", "1TB", err, sizeof(err)), 0);
	assert_int_equal(cfg.reserve_free_bytes, 1ull << 40);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "64K", err, sizeof(err)), 0);
	assert_int_equal(cfg.chunk_size, 64u << 10);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "64M", err, sizeof(err)), 0);
	assert_int_equal(cfg.chunk_size, 64u << 20);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "1048576", err, sizeof(err)), 0);
	assert_int_equal(cfg.chunk_size, 1u << 20);
}

static void test_bad_sizes_are_rejected_and_leave_the_value(void **state)
{
	static const char *const bad[] = { "", "M", "-1", "4X", "4 M", "4.5M", "4Mi", "99999999999T", " 4M" };
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pecfs_config_set(&cfg, "reserve-free", bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "reserve-free"));
		assert_int_equal(cfg.reserve_free_bytes, 256ull << 20);
	}
}

static void test_chunk_size_must_be_a_power_of_two_in_range(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "3M", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "chunk-size: '3M' is not a power of two from 64K to 64M");
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "32K", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "128M", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "8G", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg.chunk_size, 4u << 20);

	cfg.chunk_size = 3u << 20;
	assert_int_equal(pecfs_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "chunk-size"));

	pecfs_config_defaults(&cfg);
	assert_int_equal(cfg.read_ahead_bytes, 4u << 20);
	assert_int_equal(cfg.gc_garbage_bytes, 1u << 30);
	assert_int_equal(pecfs_config_set(&cfg, "read-ahead", "2G", err, sizeof(err)), 0);
	assert_int_equal(pecfs_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "read-ahead must be at most 1G");
	assert_int_equal(pecfs_config_set(&cfg, "read-ahead", "0", err, sizeof(err)), 0);
	assert_int_equal(pecfs_config_validate(&cfg, err, sizeof(err)), 0);
}

static void test_counts(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_set(&cfg, "write-buffers", "8", err, sizeof(err)), 0);
	assert_int_equal(cfg.write_buffers, 8);
	assert_int_equal(pecfs_config_set(&cfg, "hash-threads", "4", err, sizeof(err)), 0);
	assert_int_equal(cfg.hash_threads, 4);
	assert_int_equal(pecfs_config_set(&cfg, "fuse-threads", "1", err, sizeof(err)), 0);
	assert_int_equal(cfg.fuse_threads, 1);
	assert_int_equal(pecfs_config_set(&cfg, "hash-threads", "0", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "hash-threads: '0' is not a whole number from 1 to 256");
	assert_int_equal(pecfs_config_set(&cfg, "fuse-threads", "-3", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "write-buffers", "4K", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "write-buffers", "99999999999999999999", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cfg.write_buffers, 8);
	assert_int_equal(cfg.hash_threads, 4);
	assert_int_equal(cfg.fuse_threads, 1);
}

static void test_seconds_and_log_levels(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_set(&cfg, "attr-timeout", "0.25", err, sizeof(err)), 0);
	assert_true(cfg.attr_timeout == 0.25);
	assert_int_equal(pecfs_config_set(&cfg, "attr-timeout", "0", err, sizeof(err)), 0);
	assert_true(cfg.attr_timeout == 0.0);
	assert_int_equal(pecfs_config_set(&cfg, "attr-timeout", "-1", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "attr-timeout", "nan", err, sizeof(err)), -EINVAL);
	assert_int_equal(pecfs_config_set(&cfg, "attr-timeout", "1s", err, sizeof(err)), -EINVAL);
	assert_true(cfg.attr_timeout == 0.0);

	assert_int_equal(pecfs_config_set(&cfg, "log-level", "debug", err, sizeof(err)), 0);
	assert_int_equal(cfg.log_level, PECFS_LOG_DEBUG);
	assert_int_equal(pecfs_config_set(&cfg, "log-level", "error", err, sizeof(err)), 0);
	assert_int_equal(cfg.log_level, PECFS_LOG_ERROR);
	assert_int_equal(pecfs_config_set(&cfg, "log-level", "verbose", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "log-level: 'verbose' is not error, warn, info or debug");
	assert_int_equal(cfg.log_level, PECFS_LOG_ERROR);
}

static void test_unknown_setting_is_named(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_set(&cfg, "chunksize", "4M", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown setting 'chunksize'");
	assert_null(pecfs_config_find("data-dir"));
	assert_int_equal(pecfs_config_set(&cfg, "chunk-size", "", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "chunk-size: missing value");
}

static void test_file_with_comments_and_blank_lines(void **state)
{
	struct conf_file cf;
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	write_conf(&cf, "# pecfs settings\n"
			"\n"
			"   # indented comment\n"
			"chunk-size = 1M\n"
			"write-buffers=8   # trailing comment\n"
			"\tseal-on-rename =  no\n"
			"log-level = debug");
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_load(&cfg, cf.path, err, sizeof(err)), 0);
	assert_int_equal(cfg.chunk_size, 1u << 20);
	assert_int_equal(cfg.write_buffers, 8);
	assert_false(cfg.seal_on_rename);
	assert_int_equal(cfg.log_level, PECFS_LOG_DEBUG);
	assert_true(cfg.seal_on_tracker);
	assert_string_equal(cfg.config_file, cf.path);
	remove_conf(&cf);
}

static void test_bad_value_is_reported_with_file_and_line(void **state)
{
	struct conf_file cf;
	struct pecfs_config cfg;
	char err[256], want[256];

	(void)state;
	write_conf(&cf, "# comment\nchunk-size = 1M\n\nhash-threads = lots\nfuse-threads = 2\n");
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_load(&cfg, cf.path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:4: hash-threads: 'lots' is not a whole number from 1 to 256", cf.path);
	assert_string_equal(err, want);
	assert_int_equal(cfg.fuse_threads, 16);   /* stopped at the bad line */
	remove_conf(&cf);
}

static void test_unknown_key_and_missing_equals_in_file(void **state)
{
	struct conf_file cf;
	struct pecfs_config cfg;
	char err[256], want[256];

	(void)state;
	write_conf(&cf, "compression = zstd\n");
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_load(&cfg, cf.path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:1: unknown setting 'compression'", cf.path);
	assert_string_equal(err, want);
	remove_conf(&cf);

	write_conf(&cf, "\n\nchunk-size 4M\n");
	assert_int_equal(pecfs_config_load(&cfg, cf.path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: expected 'key = value', got 'chunk-size 4M'", cf.path);
	assert_string_equal(err, want);
	remove_conf(&cf);
}

static void test_missing_file_gives_errno(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_load(&cfg, "/nonexistent/pecfs.conf", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot read /nonexistent/pecfs.conf: No such file or directory");
}

static void test_validate_refuses_a_write_pool_larger_than_memory(void **state)
{
	struct pecfs_config cfg;
	char err[256];

	(void)state;
	pecfs_config_defaults(&cfg);
	cfg.chunk_size = 64u << 20;
	cfg.write_buffers = 65536;   /* 4 TiB */
	assert_int_equal(pecfs_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "write-buffers"));
}

/* deploy/pecfs.conf.example must load, and name every setting with its default. */
static void test_example_file_lists_every_setting_with_its_default(void **state)
{
	char path[4096], line[512];
	struct pecfs_config cfg;
	char err[512];
	const char *slash = strrchr(__FILE__, '/');
	FILE *f;

	(void)state;
	assert_non_null(slash);   /* __FILE__ is tests/unit/test_config.c, absolute or relative */
	snprintf(path, sizeof(path), "%.*s/../../deploy/pecfs.conf.example", (int)(slash - __FILE__), __FILE__);
	pecfs_config_defaults(&cfg);
	assert_int_equal(pecfs_config_load(&cfg, path, err, sizeof(err)), 0);
	for (const struct pecfs_config_key *k = pecfs_config_keys; k->name != NULL; k++) {
		char want[256];
		bool found = false;

		snprintf(want, sizeof(want), "%s = %s\n", k->name, k->default_text);
		f = fopen(path, "r");
		assert_non_null(f);
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = strcmp(line, want) == 0;
		fclose(f);
		if (!found)
			fail_msg("%s has no line '%s = %s'", path, k->name, k->default_text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_documented_defaults_are_the_defaults),
		cmocka_unit_test(test_boolean_words),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_bad_sizes_are_rejected_and_leave_the_value),
		cmocka_unit_test(test_chunk_size_must_be_a_power_of_two_in_range),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_seconds_and_log_levels),
		cmocka_unit_test(test_unknown_setting_is_named),
		cmocka_unit_test(test_file_with_comments_and_blank_lines),
		cmocka_unit_test(test_bad_value_is_reported_with_file_and_line),
		cmocka_unit_test(test_unknown_key_and_missing_equals_in_file),
		cmocka_unit_test(test_missing_file_gives_errno),
		cmocka_unit_test(test_validate_refuses_a_write_pool_larger_than_memory),
		cmocka_unit_test(test_example_file_lists_every_setting_with_its_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
