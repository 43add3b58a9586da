/* test_tier_manifest.c - the version manifest and COMMIT uploaded to S3 (store/tier/tier_manifest.h) and
 * the chunk object header (store/tier/tier.h): encode/decode round trips, and refusal of bucket content
 * that could make a restore or an import write outside its folder, write overlapping bytes, or lay out
 * a tree that is not one (duplicates, entries under a file or symlink, entries out of order, bad
 * names, duplicate JSON keys, malformed seal ids and part lists), special files and hard links, and
 * packs: extents that name a pack (manifest format 2) and the pack header with its member table.
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

#include <cmocka.h>

#include "tier_manifest.h"
#include "tier.h"

static void sample(struct tier_manifest *m)
{
	struct tier_manifest_entry *e;
	struct tier_manifest_extent x = { .file_off = 0, .len = 100, .chunk_off = 0, .chunk_len = 100 };

	assert_int_equal(tier_manifest_init(m, "run", "step-100", "node-a"), 0);
	m->step = 100;
	m->sealed_ns = 1234567890123;
	m->seal_seq = 7;
	m->chunk_size = 4u << 20;
	/* in manifest order, as a walk of the metadata gives them */
	assert_int_equal(tier_manifest_add_entry(m, "latest", S_IFLNK | 0777, 0, 7, "sub/w.bin", NULL), 0);
	assert_int_equal(tier_manifest_add_entry(m, "sub", S_IFDIR | 0755, 0, 5, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(m, "sub/w.bin", S_IFREG | 0640, 300, 6, NULL, &e), 0);
	digest_compute("a", 1, &x.digest);
	assert_int_equal(tier_manifest_add_extent(e, &x), 0);
	x.file_off = 200;
	x.chunk_off = 0;
	digest_compute("b", 1, &x.digest);
	assert_int_equal(tier_manifest_add_extent(e, &x), 0);
}

static void test_manifest_round_trip_keeps_every_field(void **state)
{
	struct tier_manifest m, d;
	char *text, err[256];
	size_t len;

	(void)state;
	sample(&m);
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_string_equal(d.run, "run");
	assert_string_equal(d.version, "step-100");
	assert_string_equal(d.node, "node-a");
	assert_int_equal(d.step, 100);
	assert_int_equal(d.sealed_ns, 1234567890123);
	assert_int_equal(d.seal_seq, 7);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.entries[0].target, "sub/w.bin");
	assert_true(S_ISDIR(d.entries[1].mode));
	assert_int_equal(d.entries[2].mode, S_IFREG | 0640);
	assert_int_equal(d.entries[2].size, 300);
	assert_int_equal(d.entries[2].next, 2);
	assert_int_equal(d.entries[2].ext[1].file_off, 200);
	assert_true(digest_equal(&d.entries[2].ext[0].digest, &m.entries[2].ext[0].digest));
	free(text);
	tier_manifest_free(&m);
	tier_manifest_free(&d);
}

static int decode_text(const char *text)
{
	struct tier_manifest d;
	char err[256] = "";
	int rc = tier_manifest_decode(text, strlen(text), &d, err, sizeof(err));

	if (rc == 0)
		tier_manifest_free(&d);
	else
		assert_true(err[0] != '\0');
	return rc;
}

#define HEAD "{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,\"sealed_ns\":1," \
	     "\"chunk_size\":4194304,\"entries\":["
#define HEX "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"

static void test_manifest_refuses_paths_outside_the_version(void **state)
{
	(void)state;
	assert_int_equal(decode_text(HEAD "{\"path\":\"../x\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"/etc/x\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"a//b\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"a\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0},"
				     "{\"path\":\"a/b\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}]}"), 0);
}

#define DIR_E(p) "{\"path\":\"" p "\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}"
#define FILE_E(p) "{\"path\":\"" p "\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":0,\"extents\":[]}"
#define LINK_E(p, t) "{\"path\":\"" p "\",\"type\":\"symlink\",\"mode\":511,\"mtime_ns\":0,\"target\":\"" t "\"}"

static void test_manifest_refuses_a_path_listed_twice(void **state)
{
	(void)state;
	assert_int_equal(decode_text(HEAD FILE_E("f") "," FILE_E("f") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("d") "," DIR_E("d") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("d") "," FILE_E("d") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("f") "," FILE_E("g") "]}"), 0);
}

static void test_manifest_refuses_entries_under_a_file_or_symlink(void **state)
{
	(void)state;
	/* the escape: a symlink to a folder outside, then a file through it */
	assert_int_equal(decode_text(HEAD LINK_E("x", "/etc") "," FILE_E("x/owned") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("y") "," FILE_E("y/z") "]}"), -EBADMSG);
	/* a directory that is never listed */
	assert_int_equal(decode_text(HEAD FILE_E("a/b") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("x") "," FILE_E("x/owned") "]}"), 0);
}

static void test_manifest_refuses_entries_out_of_order(void **state)
{
	(void)state;
	assert_int_equal(decode_text(HEAD FILE_E("b") "," FILE_E("a") "]}"), -EBADMSG);
	/* depth first: a directory's contents come right after it, before a sibling named "a-b" */
	assert_int_equal(decode_text(HEAD DIR_E("a") "," FILE_E("a-b") "," FILE_E("a/x") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("a") "," FILE_E("a/x") "," FILE_E("a-b") "]}"), 0);
	assert_true(tier_manifest_path_cmp("a", "a/x") < 0);
	assert_true(tier_manifest_path_cmp("a/x", "a-b") < 0);
	assert_true(tier_manifest_path_cmp("a/\xff", "a0") < 0);
	assert_int_equal(tier_manifest_path_cmp("a/b", "a/b"), 0);
}

#define NAMED(run, ver, node) "{\"format\":1,\"run\":\"" run "\",\"version\":\"" ver "\",\"node\":\"" node \
	"\",\"step\":null,\"sealed_ns\":1,\"chunk_size\":4194304,\"entries\":[]}"

static void test_manifest_refuses_bad_names(void **state)
{
	char text[1200], name[300];

	(void)state;
	assert_int_equal(decode_text(NAMED("r", "v", "n")), 0);
	assert_int_equal(decode_text(NAMED(".pec", "v", "n")), -EBADMSG);
	assert_int_equal(decode_text(NAMED("r", ".pec", "n")), -EBADMSG);
	assert_int_equal(decode_text(NAMED("r", "..", "n")), -EBADMSG);
	assert_int_equal(decode_text(NAMED("r", "v", "")), -EBADMSG);
	assert_int_equal(decode_text(NAMED("r", "a/b", "n")), -EBADMSG);
	memset(name, 'x', 256);
	name[256] = '\0';
	snprintf(text, sizeof(text), NAMED("r", "%s", "n"), name);
	assert_int_equal(decode_text(text), -EBADMSG);
	name[255] = '\0';
	snprintf(text, sizeof(text), NAMED("r", "%s", "n"), name);
	assert_int_equal(decode_text(text), 0);
	/* entry names: empty, over 255 bytes; ".pec" is an ordinary name inside a version */
	assert_int_equal(decode_text(HEAD FILE_E("") "]}"), -EBADMSG);
	snprintf(text, sizeof(text), HEAD FILE_E("%s") "]}", name);
	assert_int_equal(decode_text(text), 0);
	name[255] = 'x';
	snprintf(text, sizeof(text), HEAD FILE_E("%s") "]}", name);
	assert_int_equal(decode_text(text), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E(".pec") "]}"), 0);
	assert_int_equal(decode_text(HEAD LINK_E("l", "") "]}"), -EBADMSG);
	assert_false(tier_manifest_name_ok(".pec"));
	assert_true(tier_manifest_name_ok(".pecx"));
}

static void test_manifest_refuses_duplicate_json_keys(void **state)
{
	(void)state;
	assert_int_equal(decode_text("{\"format\":1,\"run\":\"r\",\"run\":\"s\",\"version\":\"v\",\"node\":\"n\","
				     "\"step\":null,\"sealed_ns\":1,\"chunk_size\":4194304,\"entries\":[]}"), -EBADMSG);
	/* in an entry: which "path" would a reader take? */
	assert_int_equal(decode_text(HEAD "{\"path\":\"a\",\"path\":\"../a\",\"type\":\"dir\",\"mode\":493,"
				     "\"mtime_ns\":0}]}"), -EBADMSG);
}

static void test_manifest_seal_id_round_trips_and_must_be_hex(void **state)
{
	struct tier_manifest m, d;
	char *text, err[256];
	size_t len;

	(void)state;
	sample(&m);
	memcpy(m.seal_id, "0123456789abcdef0123456789abcdef", TIER_SEAL_ID_LEN + 1);
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_string_equal(d.seal_id, m.seal_id);
	tier_manifest_free(&d);
	free(text);
	m.seal_id[0] = '\0';  /* written before seal ids: none */
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_null(strstr(text, "seal_id"));
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_string_equal(d.seal_id, "");
	tier_manifest_free(&d);
	free(text);
	tier_manifest_free(&m);
	assert_int_equal(decode_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,"
				     "\"sealed_ns\":1,\"chunk_size\":4194304,\"seal_id\":\"0123456789ABCDEF0123456789ABCDEF\","
				     "\"entries\":[]}"), -EBADMSG);
}

static void test_job_round_trips_and_is_checked(void **state)
{
	struct tier_manifest m, d;
	struct tier_commit c = { .step = 3, .sealed_ns = 9, .parts = 1 }, dc;
	struct tier_commit_part part = { "a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	char *text, err[256], long_job[TIER_JOB_MAX + 2];
	size_t len;

	(void)state;
	assert_true(tier_job_ok("slurm-4711.2"));
	assert_true(tier_job_ok("0f8e2c1a-7b6d-4c3e-9a1b-2c3d4e5f6a7b"));
	assert_true(tier_job_ok("run:a@b+c=d_e"));
	assert_false(tier_job_ok(""));
	assert_false(tier_job_ok("a b"));
	assert_false(tier_job_ok("job/1"));
	assert_false(tier_job_ok("\xc3\xa9"));
	memset(long_job, 'j', sizeof(long_job) - 1);
	long_job[TIER_JOB_MAX] = '\0';
	assert_true(tier_job_ok(long_job));
	long_job[TIER_JOB_MAX] = 'j';
	long_job[TIER_JOB_MAX + 1] = '\0';
	assert_false(tier_job_ok(long_job));

	sample(&m);
	strcpy(m.job, "slurm-4711.2");
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_string_equal(d.job, "slurm-4711.2");
	tier_manifest_free(&d);
	free(text);
	m.job[0] = '\0';  /* none set: no key, and none read back */
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_null(strstr(text, "\"job\""));
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_string_equal(d.job, "");
	tier_manifest_free(&d);
	free(text);
	tier_manifest_free(&m);
	assert_int_equal(decode_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,"
				     "\"sealed_ns\":1,\"chunk_size\":4194304,\"job\":\"a b\",\"entries\":[]}"), -EBADMSG);
	assert_int_equal(decode_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,"
				     "\"sealed_ns\":1,\"chunk_size\":4194304,\"job\":7,\"entries\":[]}"), -EBADMSG);

	strcpy(c.run, "r");
	strcpy(c.version, "v");
	strcpy(c.node, "a");
	strcpy(c.seal_id, part.seal_id);
	strcpy(c.job, "launch-2");
	c.part = &part;
	c.npart = 1;
	assert_int_equal(tier_commit_encode(&c, &text, &len), 0);
	assert_int_equal(tier_commit_decode(text, len, &dc, err, sizeof(err)), 0);
	assert_string_equal(dc.job, "launch-2");
	tier_commit_free(&dc);
	free(text);
	text = "{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"step\":3,\"sealed_ns\":9,\"node\":\"a\",\"job\":\"\"}";
	assert_int_equal(tier_commit_decode(text, strlen(text), &dc, err, sizeof(err)), -EBADMSG);
}

#define SID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int commit_text(const char *text, struct tier_commit *c)
{
	char err[256] = "";
	int rc = tier_commit_decode(text, strlen(text), c, err, sizeof(err));

	if (rc < 0)
		assert_true(err[0] != '\0');
	return rc;
}

#define COMMIT_HEAD "{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"step\":3,\"sealed_ns\":9,\"node\":\"a\","

static void test_commit_round_trip_and_legacy(void **state)
{
	struct tier_commit c = { .step = 3, .sealed_ns = 9, .parts = 2 }, d;
	struct tier_commit_part parts[2] = { { "a", SID_A }, { "b", "" } };
	char *text;
	size_t len;

	(void)state;
	strcpy(c.run, "r");
	strcpy(c.version, "v");
	strcpy(c.node, "a");
	strcpy(c.seal_id, SID_A);
	c.part = parts;
	c.npart = 2;
	assert_int_equal(tier_commit_encode(&c, &text, &len), 0);
	assert_int_equal(commit_text(text, &d), 0);
	free(text);
	assert_string_equal(d.run, "r");
	assert_string_equal(d.version, "v");
	assert_int_equal(d.step, 3);
	assert_int_equal(d.parts, 2);
	assert_string_equal(d.seal_id, SID_A);
	assert_int_equal(d.npart, 2);
	assert_string_equal(d.part[0].node, "a");
	assert_string_equal(d.part[0].seal_id, SID_A);
	assert_string_equal(d.part[1].node, "b");
	assert_string_equal(d.part[1].seal_id, "");  /* a part written before seal ids */
	assert_non_null(tier_commit_find(&d, "b"));
	assert_null(tier_commit_find(&d, "c"));
	tier_commit_free(&d);
	/* written before seal ids: no part list; "parts" absent in the oldest */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":2}", &d), 0);
	assert_int_equal(d.npart, 0);
	assert_int_equal(d.parts, 2);
	assert_string_equal(d.seal_id, "");
	tier_commit_free(&d);
	assert_int_equal(commit_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"step\":null,\"sealed_ns\":9,"
				     "\"node\":\"a\"}", &d), 0);
	assert_int_equal(d.parts, 1);
	assert_int_equal(d.step, -1);
	tier_commit_free(&d);
}

static void test_commit_refuses_malformed_parts_and_names(void **state)
{
	struct tier_commit d;

	(void)state;
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"a\",\"" SID_A "\"]]}",
				     &d), 0);
	tier_commit_free(&d);
	/* duplicate keys: which step, which version would a reader take? */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"step\":4}", &d), -EBADMSG);
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"version\":\"w\"}", &d), -EBADMSG);
	/* a node twice, or out of order */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":2,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"a\",\"" SID_A "\"],"
				     "[\"a\",\"" SID_B "\"]]}", &d), -EBADMSG);
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":2,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"b\",\"" SID_B "\"],"
				     "[\"a\",\"" SID_A "\"]]}", &d), -EBADMSG);
	/* count and list disagree */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":2,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"a\",\"" SID_A "\"]]}",
				     &d), -EBADMSG);
	/* the creating node's own part missing or with another id */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"b\",\"" SID_A "\"]]}",
				     &d), -EBADMSG);
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"a\",\"" SID_B "\"]]}",
				     &d), -EBADMSG);
	/* a part list without a seal id, a bad seal id, a bad node name */
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"manifests\":[[\"a\",\"" SID_A "\"]]}", &d), -EBADMSG);
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":1,\"seal_id\":\"xyz\",\"manifests\":[[\"a\",\"xyz\"]]}", &d),
			 -EBADMSG);
	assert_int_equal(commit_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"step\":3,\"sealed_ns\":9,\"node\":\"a\","
				     "\"parts\":2,\"seal_id\":\"" SID_A "\",\"manifests\":[[\"a\",\"" SID_A "\"],[\"..\",null]]}", &d),
			 -EBADMSG);
	assert_int_equal(commit_text("{\"format\":1,\"run\":\".pec\",\"version\":\"v\",\"step\":3,\"sealed_ns\":9,"
				     "\"node\":\"a\"}", &d), -EBADMSG);
	assert_int_equal(commit_text(COMMIT_HEAD "\"parts\":0}", &d), -EBADMSG);
	assert_int_equal(commit_text("{\"format\":2,\"run\":\"r\",\"version\":\"v\",\"step\":3,\"sealed_ns\":9,\"node\":\"a\"}",
				     &d), -EBADMSG);
}

static void test_manifest_refuses_overlapping_or_outside_extents(void **state)
{
	(void)state;
	/* overlapping extents */
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":10,"
				     "\"extents\":[[0,6,\"" HEX "\",0,10],[5,5,\"" HEX "\",0,10]]}]}"),
			 -EBADMSG);
	/* beyond the file size */
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":4,"
				     "\"extents\":[[0,6,\"" HEX "\",0,10]]}]}"),
			 -EBADMSG);
	/* beyond the chunk */
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":10,"
				     "\"extents\":[[0,6,\"" HEX "\",8,10]]}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":10,"
				     "\"extents\":[[0,6,\"" HEX "\",0,10],[6,4,\"" HEX "\",6,10]]}]}"),
			 0);
	assert_int_equal(decode_text("{\"format\":2}"), -EBADMSG);
	assert_int_equal(decode_text("not json"), -EBADMSG);
}

/* A part of node `node` with entries "path:type" (d, f or l), in the order given. */
static void part(struct tier_manifest *m, const char *node, const char *const *entries)
{
	assert_int_equal(tier_manifest_init(m, "r", "v", node), 0);
	for (; *entries; entries++) {
		const char *p = *entries + 2;
		uint32_t mode = (*entries)[0] == 'd' ? S_IFDIR | 0755 : (*entries)[0] == 'l' ? S_IFLNK | 0777 : S_IFREG | 0644;
		assert_int_equal(tier_manifest_add_entry(m, p, mode, 0, 0, S_ISLNK(mode) ? "t" : NULL, NULL), 0);
	}
}

static void test_merge_keeps_the_first_part_of_a_path(void **state)
{
	static const char *const a[] = { "d:common", "f:common/cfg", "f:rank0", NULL };
	static const char *const b[] = { "d:common", "f:common/cfg", "f:common/more", "f:rank1", NULL };
	struct tier_manifest m[2];
	struct tier_manifest_set set = { m, 2 };
	struct tier_merged out;
	char msg[256];

	(void)state;
	part(&m[0], "node-a", a);
	part(&m[1], "node-b", b);
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), 0);
	assert_int_equal(out.n, 5);
	assert_string_equal(out.e[0]->path, "common");
	assert_ptr_equal(out.e[0], &m[0].entries[0]);
	assert_string_equal(out.e[1]->path, "common/cfg");
	assert_ptr_equal(out.e[1], &m[0].entries[1]);  /* node-a's, the first in node order */
	assert_string_equal(out.e[2]->path, "common/more");
	assert_string_equal(out.e[3]->path, "rank0");
	assert_string_equal(out.e[4]->path, "rank1");
	tier_merged_free(&out);
	tier_manifest_free(&m[0]);
	tier_manifest_free(&m[1]);
}

static void test_merge_refuses_a_directory_that_is_a_file_elsewhere(void **state)
{
	static const char *const a[] = { "f:x", NULL };
	static const char *const b[] = { "d:x", "f:x/owned", NULL };
	static const char *const c[] = { "l:x", NULL };
	struct tier_manifest m[2];
	struct tier_manifest_set set = { m, 2 };
	struct tier_merged out;
	char msg[256] = "";

	(void)state;
	part(&m[0], "node-a", a);
	part(&m[1], "node-b", b);
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "'x' is a file in the part of node node-a and a directory"));
	assert_null(out.e);
	tier_manifest_free(&m[0]);
	part(&m[0], "node-a", c);
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "symlink"));
	tier_manifest_free(&m[1]);
	part(&m[1], "node-b", a);  /* a file and a symlink: both are leaves, the first wins */
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), 0);
	assert_int_equal(out.n, 1);
	assert_true(S_ISLNK(out.e[0]->mode));
	tier_merged_free(&out);
	tier_manifest_free(&m[0]);
	tier_manifest_free(&m[1]);
}

static void test_chunk_key_and_header(void **state)
{
	struct digest d;
	uint8_t hdr[TIER_CHUNK_HDR];
	char key[256], hex[DIGEST_HEX_LEN + 1];

	(void)state;
	digest_compute("a", 1, &d);
	digest_to_hex(&d, hex);
	assert_int_equal(tier_chunk_key("team/ckpt", &d, key, sizeof(key)), 0);
	assert_string_equal(key, "team/ckpt/chunks/ca/" HEX);
	assert_int_equal(tier_chunk_key("", &d, key, sizeof(key)), 0);
	assert_string_equal(key, "chunks/ca/" HEX);
	assert_int_equal(tier_chunk_key("p", &d, key, 20), -ENAMETOOLONG);
	tier_chunk_header(&d, 12345, hdr);
	assert_memory_equal(hdr, "PECS3CK1", 8);
	assert_int_equal(hdr[16] | hdr[17] << 8, 12345);
	assert_memory_equal(hdr + 24, d.b, DIGEST_LEN);
}

static void test_packed_extents_round_trip_as_format_2(void **state)
{
	struct tier_manifest m, d;
	char *text, err[256], phex[DIGEST_HEX_LEN + 1];
	size_t len;

	(void)state;
	sample(&m);
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_non_null(strstr(text, "\"format\":1"));  /* no pack: readers before packs still read it */
	free(text);
	m.entries[2].ext[1].loc.packed = true;
	m.entries[2].ext[1].loc.off = 72 + 164;
	digest_compute("pack", 4, &m.entries[2].ext[1].loc.pack);
	digest_to_hex(&m.entries[2].ext[1].loc.pack, phex);
	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_non_null(strstr(text, "\"format\":2"));
	assert_non_null(strstr(text, phex));
	assert_int_equal(tier_manifest_decode(text, len, &d, err, sizeof(err)), 0);
	assert_false(d.entries[2].ext[0].loc.packed);
	assert_true(d.entries[2].ext[1].loc.packed);
	assert_int_equal(d.entries[2].ext[1].loc.off, 72 + 164);
	assert_true(digest_equal(&d.entries[2].ext[1].loc.pack, &m.entries[2].ext[1].loc.pack));
	assert_true(tier_manifest_packed(&d));
	free(text);
	tier_manifest_free(&m);
	tier_manifest_free(&d);
}

#define HEAD2 "{\"format\":2,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":null,\"sealed_ns\":1," \
	      "\"chunk_size\":4194304,\"entries\":["
#define FILE10 "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"size\":10,\"extents\":"

static void test_hostile_pack_locations_are_refused(void **state)
{
	(void)state;
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",72]]}]}"), 0);
	/* a pack in a format 1 manifest: a reader before packs would look for a chunk object */
	assert_int_equal(decode_text(HEAD FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",72]]}]}"), -EBADMSG);
	/* an offset inside the pack's header, or past any pack */
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",71]]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",-1]]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",1099511627777]]}]}"),
			 -EBADMSG);
	/* a pack name that is not a digest, six or eight fields */
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"../x\",72]]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\"]]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,\"" HEX "\",72,1]]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD2 FILE10 "[[0,10,\"" HEX "\",0,10,72,\"" HEX "\"]]}]}"), -EBADMSG);
	assert_int_equal(decode_text("{\"format\":3}"), -EBADMSG);
}

static void test_pack_header_names_its_table_and_refuses_tampering(void **state)
{
	struct digest d[3], name, other;
	uint64_t len[3] = { 4096, 100, 1 };
	struct tier_pack_member mem[TIER_PACK_MEMBERS_MAX];
	uint8_t hdr[TIER_PACK_HDR_FIXED + 3 * TIER_PACK_ENTRY + 8];
	char key[256], hex[DIGEST_HEX_LEN + 1], want[300];
	size_t n = 0, hlen;

	(void)state;
	digest_compute("a", 1, &d[0]);
	digest_compute("b", 1, &d[1]);
	digest_compute("c", 1, &d[2]);
	hlen = tier_pack_header(d, len, 3, hdr, &name);
	assert_int_equal(hlen, 32 + 3 * 40);
	assert_memory_equal(hdr, "PECS3PK1", 8);
	digest_compute(hdr + TIER_PACK_HDR_FIXED, 3 * TIER_PACK_ENTRY, &other);
	assert_true(digest_equal(&name, &other));  /* the name is the table's SHA-256 */
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), 0);
	assert_int_equal(n, 3);
	assert_true(digest_equal(&mem[1].d, &d[1]));
	assert_int_equal(mem[0].off, hlen);
	assert_int_equal(mem[1].off, hlen + 64 + 4096);
	assert_int_equal(mem[2].off, hlen + 64 + 4096 + 64 + 100);
	assert_int_equal(mem[2].len, 1);
	/* the same members in another order are another pack */
	struct digest swapped[3] = { d[1], d[0], d[2] };
	uint64_t slen[3] = { 100, 4096, 1 };
	uint8_t hdr2[sizeof(hdr)];
	tier_pack_header(swapped, slen, 3, hdr2, &other);
	assert_false(digest_equal(&name, &other));
	/* short, renamed, or with a changed table, count, length or padding: not this pack */
	assert_int_equal(tier_pack_parse(hdr, hlen - 1, &name, mem, &n), -EBADMSG);
	assert_int_equal(tier_pack_parse(hdr, hlen, &other, mem, &n), -EBADMSG);
	hdr[TIER_PACK_HDR_FIXED + 40 + 32] ^= 1;  /* member 1's length */
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), -EBADMSG);
	hdr[TIER_PACK_HDR_FIXED + 40 + 32] ^= 1;
	hdr[16] = 2;  /* count */
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), -EBADMSG);
	hdr[16] = 3;
	hdr[24] = 1;  /* padding */
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), -EBADMSG);
	hdr[24] = 0;
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), 0);
	/* a member of length 0 or beyond the largest chunk, even with a matching name */
	len[1] = 0;
	tier_pack_header(d, len, 3, hdr, &name);
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), -EBADMSG);
	len[1] = (64u << 20) + 1;
	tier_pack_header(d, len, 3, hdr, &name);
	assert_int_equal(tier_pack_parse(hdr, hlen, &name, mem, &n), -EBADMSG);
	/* keys */
	digest_to_hex(&name, hex);
	assert_int_equal(tier_pack_key("team/ckpt", &name, key, sizeof(key)), 0);
	snprintf(want, sizeof(want), "team/ckpt/packs/%.2s/%s", hex, hex);
	assert_string_equal(key, want);
	struct tier_loc loc = { .packed = true, .pack = name, .off = 72 };
	assert_int_equal(tier_loc_key("", &d[0], &loc, key, sizeof(key)), 0);
	assert_string_equal(key, want + strlen("team/ckpt/"));
	loc.packed = false;
	assert_int_equal(tier_loc_key("", &d[0], &loc, key, sizeof(key)), 0);
	assert_string_equal(key, "chunks/ca/" HEX);
	assert_int_equal(tier_pack_key("p", &name, key, 20), -ENAMETOOLONG);
}

/* Found by fuzz_manifest and fuzz_commit: a field of another entry type, or a negative step, was
 * accepted and then read differently after a round trip. */
static void test_fields_of_another_entry_type_and_negative_steps_are_refused(void **state)
{
	struct tier_commit d;

	(void)state;
	assert_int_equal(decode_text(HEAD "{\"path\":\"a\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0,\"size\":12}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"a\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0,\"target\":\"b\"}]}"),
			 -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"l\",\"type\":\"symlink\",\"mode\":511,\"mtime_ns\":0,"
				     "\"target\":\"b\",\"extents\":[]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,"
				     "\"extents\":[]}]}"), -EBADMSG);   /* a file without its size */
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,"
				     "\"size\":0,\"extents\":[],\"target\":\"x\"}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD "{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,"
				     "\"size\":0,\"extents\":[]}]}"), 0);
	assert_int_equal(decode_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"node\":\"n\",\"step\":-5,"
				     "\"sealed_ns\":1,\"chunk_size\":4194304,\"entries\":[]}"), -EBADMSG);
	assert_int_equal(commit_text("{\"format\":1,\"run\":\"r\",\"version\":\"v\",\"step\":-100,\"sealed_ns\":9,"
				     "\"node\":\"a\",\"parts\":1}", &d), -EBADMSG);
}

#define NODE_E(p, t) "{\"path\":\"" p "\",\"type\":\"" t "\",\"mode\":420,\"mtime_ns\":0"
#define HARD_E(p, l) "{\"path\":\"" p "\",\"type\":\"file\",\"mode\":420,\"mtime_ns\":0,\"link\":\"" l "\"}"

static void test_special_files_and_hard_links_round_trip(void **state)
{
	struct tier_manifest m, back;
	struct tier_manifest_entry *e;
	char *text, err[256];
	size_t len;

	(void)state;
	assert_int_equal(tier_manifest_init(&m, "run", "v", "node"), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "a", S_IFREG | 0644, 5, 1, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "d", S_IFDIR | 0755, 0, 1, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "d/a2", S_IFREG | 0644, 0, 1, NULL, NULL), 0);
	assert_int_equal(tier_manifest_set_link(&m, 0), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "d/disk", S_IFBLK | 0600, 0, 2, NULL, &e), 0);
	e->rdev_major = 259;
	e->rdev_minor = 70000;
	assert_int_equal(tier_manifest_add_entry(&m, "d/fifo", S_IFIFO | 0640, 0, 3, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "d/null", S_IFCHR | 0666, 0, 4, NULL, &e), 0);
	e->rdev_major = 1;
	e->rdev_minor = 3;
	assert_int_equal(tier_manifest_add_entry(&m, "d/sock", S_IFSOCK | 0600, 0, 5, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(&m, "z", S_IFIFO | 0640, 0, 3, NULL, NULL), 0);
	assert_int_equal(tier_manifest_set_link(&m, 4), 0);  /* a fifo with two names */
	/* a link to itself, to a directory, to a link, or of another mode is refused */
	assert_int_equal(tier_manifest_add_entry(&m, "zz", S_IFREG | 0644, 0, 1, NULL, NULL), 0);
	assert_int_equal(tier_manifest_set_link(&m, m.n - 1), -EINVAL);
	assert_int_equal(tier_manifest_set_link(&m, 1), -EINVAL);
	assert_int_equal(tier_manifest_set_link(&m, 2), -EINVAL);
	assert_int_equal(tier_manifest_set_link(&m, 3), -EINVAL);
	free(m.entries[--m.n].path);
	assert_int_equal(m.entries[0].nlinks, 2);
	assert_int_equal(m.entries[4].nlinks, 2);

	assert_int_equal(tier_manifest_encode(&m, &text, &len), 0);
	assert_non_null(strstr(text, "\"link\":\"a\""));
	assert_non_null(strstr(text, "\"type\":\"blockdev\""));
	assert_non_null(strstr(text, "\"rdev\":[259,70000]"));
	assert_int_equal(tier_manifest_decode(text, len, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, m.n);
	for (size_t i = 0; i < m.n; i++) {
		assert_string_equal(back.entries[i].path, m.entries[i].path);
		assert_int_equal(back.entries[i].mode, m.entries[i].mode);
		assert_int_equal(back.entries[i].rdev_major, m.entries[i].rdev_major);
		assert_int_equal(back.entries[i].rdev_minor, m.entries[i].rdev_minor);
		assert_int_equal(back.entries[i].nlinks, m.entries[i].nlinks);
		assert_int_equal(back.entries[i].link_idx, m.entries[i].link_idx);
		if (m.entries[i].link)
			assert_string_equal(back.entries[i].link, m.entries[i].link);
		else
			assert_null(back.entries[i].link);
	}
	free(text);
	tier_manifest_free(&back);
	tier_manifest_free(&m);
}

static void test_hostile_special_files_and_hard_links_are_refused(void **state)
{
	(void)state;
	assert_int_equal(decode_text(HEAD FILE_E("a") "," HARD_E("b", "a") "]}"), 0);
	assert_int_equal(decode_text(HEAD HARD_E("a", "b") "," FILE_E("b") "]}"), -EBADMSG);  /* a later entry */
	assert_int_equal(decode_text(HEAD HARD_E("a", "a") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("a") "," HARD_E("b", "zz") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("a") "," HARD_E("b", "a") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("a") "," HARD_E("b", "a") "," HARD_E("c", "b") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("a") "," HARD_E("b", "../a") "]}"), -EBADMSG);
	/* a link of another type or mode than what it names, or with content of its own */
	assert_int_equal(decode_text(HEAD NODE_E("a", "fifo") "}," HARD_E("b", "a") "]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("a") ",{\"path\":\"b\",\"type\":\"file\",\"mode\":384,"
				     "\"mtime_ns\":0,\"link\":\"a\"}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD FILE_E("a") ",{\"path\":\"b\",\"type\":\"file\",\"mode\":420,"
				     "\"mtime_ns\":0,\"link\":\"a\",\"size\":0,\"extents\":[]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD DIR_E("d") ",{\"path\":\"e\",\"type\":\"dir\",\"mode\":493,"
				     "\"mtime_ns\":0,\"link\":\"d\"}]}"), -EBADMSG);
	/* special files: a device needs a number in range; nothing else takes one, or a size */
	assert_int_equal(decode_text(HEAD NODE_E("f", "fifo") "}," NODE_E("s", "socket") "}]}"), 0);
	assert_int_equal(decode_text(HEAD NODE_E("c", "chardev") ",\"rdev\":[1,3]}]}"), 0);
	assert_int_equal(decode_text(HEAD NODE_E("c", "chardev") "}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("c", "blockdev") ",\"rdev\":[4096,0]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("c", "blockdev") ",\"rdev\":[8,1048576]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("c", "blockdev") ",\"rdev\":[8,-1]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("c", "blockdev") ",\"rdev\":[8,1,2]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("c", "blockdev") ",\"rdev\":\"8:1\"}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("f", "fifo") ",\"rdev\":[1,3]}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("f", "fifo") ",\"size\":3}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("f", "fifo") ",\"source\":\"v1\",\"staleness\":1}]}"), -EBADMSG);
	assert_int_equal(decode_text(HEAD NODE_E("f", "door") "}]}"), -EBADMSG);
}

static void test_merge_refuses_a_linked_name_in_two_parts(void **state)
{
	static const char *const b[] = { "f:a", NULL };
	struct tier_manifest m[2];
	struct tier_manifest_set set = { m, 2 };
	struct tier_merged out;
	char msg[256] = "";

	(void)state;
	assert_int_equal(tier_manifest_init(&m[0], "r", "v", "node-a"), 0);
	assert_int_equal(tier_manifest_add_entry(&m[0], "a", S_IFREG | 0644, 0, 0, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(&m[0], "b", S_IFREG | 0644, 0, 0, NULL, NULL), 0);
	assert_int_equal(tier_manifest_set_link(&m[0], 0), 0);
	part(&m[1], "node-b", b);
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "several names"));
	tier_manifest_free(&m[1]);
	static const char *const c[] = { "f:c", NULL };
	part(&m[1], "node-b", c);
	assert_int_equal(tier_version_merge(&set, &out, msg, sizeof(msg)), 0);
	assert_int_equal(out.n, 3);
	tier_merged_free(&out);
	tier_manifest_free(&m[0]);
	tier_manifest_free(&m[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_round_trip_keeps_every_field),
		cmocka_unit_test(test_manifest_refuses_paths_outside_the_version),
		cmocka_unit_test(test_manifest_refuses_overlapping_or_outside_extents),
		cmocka_unit_test(test_manifest_refuses_a_path_listed_twice),
		cmocka_unit_test(test_manifest_refuses_entries_under_a_file_or_symlink),
		cmocka_unit_test(test_manifest_refuses_entries_out_of_order),
		cmocka_unit_test(test_manifest_refuses_bad_names),
		cmocka_unit_test(test_manifest_refuses_duplicate_json_keys),
		cmocka_unit_test(test_manifest_seal_id_round_trips_and_must_be_hex),
		cmocka_unit_test(test_job_round_trips_and_is_checked),
		cmocka_unit_test(test_commit_round_trip_and_legacy),
		cmocka_unit_test(test_commit_refuses_malformed_parts_and_names),
		cmocka_unit_test(test_merge_keeps_the_first_part_of_a_path),
		cmocka_unit_test(test_merge_refuses_a_directory_that_is_a_file_elsewhere),
		cmocka_unit_test(test_fields_of_another_entry_type_and_negative_steps_are_refused),
		cmocka_unit_test(test_chunk_key_and_header),
		cmocka_unit_test(test_packed_extents_round_trip_as_format_2),
		cmocka_unit_test(test_hostile_pack_locations_are_refused),
		cmocka_unit_test(test_pack_header_names_its_table_and_refuses_tampering),
		cmocka_unit_test(test_special_files_and_hard_links_round_trip),
		cmocka_unit_test(test_hostile_special_files_and_hard_links_are_refused),
		cmocka_unit_test(test_merge_refuses_a_linked_name_in_two_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
