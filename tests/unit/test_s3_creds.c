/* test_s3_creds.c - S3 credentials: environment first, then an owner-only INI file with profiles;
 * files readable by others are refused, and no message ever contains a secret.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "s3_creds.h"
#include "s3_xml.h"

#define SECRET "s3cr3t-Value-That-Must-Not-Leak"

struct creds_file {
	char dir[64];
	char path[96];
};

static void write_creds(struct creds_file *cf, const char *text, mode_t mode)
{
	FILE *f;

	strcpy(cf->dir, "/tmp/pecfs-test-creds-XXXXXX");
	assert_non_null(mkdtemp(cf->dir));
	snprintf(cf->path, sizeof(cf->path), "%s/credentials", cf->dir);
	f = fopen(cf->path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(cf->path, mode), 0);
}

static void remove_creds(struct creds_file *cf)
{
	unlink(cf->path);
	rmdir(cf->dir);
}

static int clear_env(void **state)
{
	(void)state;
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_CREDENTIAL_EXPIRATION");
	return 0;
}

static void test_file_readable_by_others_is_refused(void **state)
{
	struct creds_file cf;
	struct s3_credentials c = { 0 };
	char err[256] = "";

	(void)state;
	write_creds(&cf, "[default]\naws_access_key_id = AKID\naws_secret_access_key = " SECRET "\n", 0644);
	assert_int_equal(s3_creds_from_file(cf.path, NULL, &c, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "readable by group or others"));
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(strstr(err, SECRET));
	assert_null(c.secret_key);
	chmod(cf.path, 0640);
	assert_int_equal(s3_creds_from_file(cf.path, NULL, &c, err, sizeof(err)), -EPERM);
	remove_creds(&cf);
}

static void test_owner_only_file_gives_the_profile(void **state)
{
	struct creds_file cf;
	struct s3_credentials c = { 0 };
	char err[256] = "";

	(void)state;
	write_creds(&cf,
		    "# comment\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = " SECRET "\n\n"
		    "[profile ckpt]\naws_access_key_id=AKCKPT\naws_secret_access_key=other\naws_session_token = tok\n",
		    0600);
	assert_int_equal(s3_creds_from_file(cf.path, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "AKDEFAULT");
	assert_string_equal(c.secret_key, SECRET);
	assert_null(c.session_token);
	s3_creds_clear(&c);
	assert_null(c.secret_key);
	assert_int_equal(s3_creds_from_file(cf.path, "ckpt", &c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "AKCKPT");
	assert_string_equal(c.secret_key, "other");
	assert_string_equal(c.session_token, "tok");
	s3_creds_clear(&c);
	assert_int_equal(s3_creds_from_file(cf.path, "missing", &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "[missing]"));
	remove_creds(&cf);
}

static void test_malformed_line_is_reported_without_its_content(void **state)
{
	struct creds_file cf;
	struct s3_credentials c = { 0 };
	char err[256] = "";

	(void)state;
	write_creds(&cf, "[default]\naws_access_key_id = AK\n" SECRET "\n", 0600);
	assert_int_equal(s3_creds_from_file(cf.path, NULL, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":3:"));
	assert_null(strstr(err, SECRET));
	remove_creds(&cf);
}

static void test_environment_comes_before_the_file(void **state)
{
	struct creds_file cf;
	struct s3_credentials c = { 0 };
	char err[256] = "";

	(void)state;
	write_creds(&cf, "aws_access_key_id = FROMFILE\naws_secret_access_key = filesecret\n", 0600);
	assert_int_equal(s3_creds_load(cf.path, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "FROMFILE");   /* keys before any section are [default] */
	s3_creds_clear(&c);
	setenv("AWS_ACCESS_KEY_ID", "FROMENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	assert_int_equal(s3_creds_load(cf.path, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "FROMENV");
	assert_string_equal(c.secret_key, "envsecret");
	assert_string_equal(c.session_token, "envtoken");
	s3_creds_clear(&c);
	clear_env(NULL);
	assert_int_equal(s3_creds_load(NULL, NULL, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "AWS_ACCESS_KEY_ID"));
	remove_creds(&cf);
}

static void test_expiration_times_parse_in_utc(void **state)
{
	(void)state;
	/* 2026-12-05T23:59:59Z is 1796515199 s after the epoch. */
	assert_true(s3_creds_parse_time("2026-12-05T23:59:59Z") == 1796515199ll * 1000000000);
	assert_true(s3_creds_parse_time("2026-12-05T23:59:59.123Z") == 1796515199ll * 1000000000);
	assert_true(s3_creds_parse_time("2026-12-06T01:59:59+02:00") == 1796515199ll * 1000000000);
	assert_true(s3_creds_parse_time("2026-12-05T22:59:59-01:00") == 1796515199ll * 1000000000);
	assert_true(s3_creds_parse_time("2026-12-05 23:59:59") == -1);
	assert_true(s3_creds_parse_time("2026-12-05T23:59:59") == -1);
	assert_true(s3_creds_parse_time("soon") == -1);
	/* a hostile answer's year must not overflow the nanoseconds (found by fuzz_s3_xml) */
	assert_true(s3_creds_parse_time("1014-01-01T00:00:00Z") == -1);
	assert_true(s3_creds_parse_time("1014-01-01T00:00:00+05:00") == -1);
	assert_true(s3_creds_parse_time("9999-12-31T23:59:59Z") == -1);
	assert_true(s3_creds_parse_time("2262-01-01T00:00:00Z") > 0);
}

static void test_environment_expiration_is_kept_and_checked(void **state)
{
	struct s3_credentials c = { 0 };
	char err[256] = "";

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "TEMP", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "tempsecret", 1);
	setenv("AWS_SESSION_TOKEN", "token", 1);
	setenv("AWS_CREDENTIAL_EXPIRATION", "2026-12-05T23:59:59Z", 1);
	assert_int_equal(s3_creds_load(NULL, NULL, &c, err, sizeof(err)), 0);
	assert_true(c.expires_ns == 1796515199ll * 1000000000);
	assert_string_equal(c.session_token, "token");
	s3_creds_clear(&c);
	setenv("AWS_CREDENTIAL_EXPIRATION", "tomorrow", 1);
	assert_int_equal(s3_creds_load(NULL, NULL, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AWS_CREDENTIAL_EXPIRATION"));
}

/* The STS answer: all four parts, or an error (its code and message kept), never half of it. */
static void test_sts_answers_are_read_whole_or_refused(void **state)
{
	static const char ok[] =
		"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
		"<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>" SECRET "</SecretAccessKey>"
		"<SessionToken>tok</SessionToken><Expiration>2026-12-06T10:00:00Z</Expiration>"
		"</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
	static const char no_token[] =
		"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
		"<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>x</SecretAccessKey>"
		"<Expiration>2026-12-06T10:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
		"</AssumeRoleWithWebIdentityResponse>";
	static const char bad_time[] =
		"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
		"<AccessKeyId>A</AccessKeyId><SecretAccessKey>x</SecretAccessKey><SessionToken>t</SessionToken>"
		"<Expiration>tomorrow</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
		"</AssumeRoleWithWebIdentityResponse>";
	static const char denied[] = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
				     "<Message>Not authorized</Message></Error></ErrorResponse>";
	struct s3_credentials c = { 0 };
	struct s3_xml_error e;

	(void)state;
	assert_int_equal(s3_xml_parse_sts_credentials(ok, sizeof(ok) - 1, &c, &e), 0);
	assert_string_equal(c.access_key, "ASIA1");
	assert_string_equal(c.secret_key, SECRET);
	assert_string_equal(c.session_token, "tok");
	assert_true(c.expires_ns == s3_creds_parse_time("2026-12-06T10:00:00Z"));
	s3_creds_clear(&c);
	assert_int_equal(s3_xml_parse_sts_credentials(no_token, sizeof(no_token) - 1, &c, &e), -EINVAL);
	s3_creds_clear(&c);
	assert_int_equal(s3_xml_parse_sts_credentials(bad_time, sizeof(bad_time) - 1, &c, &e), -EINVAL);
	s3_creds_clear(&c);
	assert_int_equal(s3_xml_parse_sts_credentials(denied, sizeof(denied) - 1, &c, &e), -EINVAL);
	assert_string_equal(e.code, "AccessDenied");
	assert_string_equal(e.message, "Not authorized");
	assert_null(c.access_key);
	assert_int_equal(s3_xml_parse_sts_credentials("<a", 2, &c, &e), -EINVAL);
	s3_creds_clear(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_file_readable_by_others_is_refused, clear_env),
		cmocka_unit_test_setup(test_owner_only_file_gives_the_profile, clear_env),
		cmocka_unit_test_setup(test_malformed_line_is_reported_without_its_content, clear_env),
		cmocka_unit_test_setup(test_environment_comes_before_the_file, clear_env),
		cmocka_unit_test_setup(test_expiration_times_parse_in_utc, clear_env),
		cmocka_unit_test_setup(test_environment_expiration_is_kept_and_checked, clear_env),
		cmocka_unit_test(test_sts_answers_are_read_whole_or_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
