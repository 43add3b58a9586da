/* test_tier_manifest.c - the version manifest uploaded to S3 (store/tier/tier_manifest.h) and the chunk
 * object header (store/tier/tier.h): encode/decode round trips, and refusal of manifests that could make
 * a restore write outside its folder or write overlapping bytes.
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
	assert_int_equal(tier_manifest_add_entry(m, "sub", S_IFDIR | 0755, 0, 5, NULL, NULL), 0);
	assert_int_equal(tier_manifest_add_entry(m, "sub/w.bin", S_IFREG | 0640, 300, 6, NULL, &e), 0);
	digest_compute("a", 1, &x.digest);
	assert_int_equal(tier_manifest_add_extent(e, &x), 0);
	x.file_off = 200;
	x.chunk_off = 0;
	digest_compute("b", 1, &x.digest);
	assert_int_equal(tier_manifest_add_extent(e, &x), 0);
	assert_int_equal(tier_manifest_add_entry(m, "latest", S_IFLNK | 0777, 0, 7, "sub/w.bin", NULL), 0);
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
	assert_true(S_ISDIR(d.entries[0].mode));
	assert_int_equal(d.entries[1].mode, S_IFREG | 0640);
	assert_int_equal(d.entries[1].size, 300);
	assert_int_equal(d.entries[1].next, 2);
	assert_int_equal(d.entries[1].ext[1].file_off, 200);
	assert_true(digest_equal(&d.entries[1].ext[0].digest, &m.entries[1].ext[0].digest));
	assert_string_equal(d.entries[2].target, "sub/w.bin");
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
	assert_int_equal(decode_text(HEAD "{\"path\":\"a/b\",\"type\":\"dir\",\"mode\":493,\"mtime_ns\":0}]}"), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_round_trip_keeps_every_field),
		cmocka_unit_test(test_manifest_refuses_paths_outside_the_version),
		cmocka_unit_test(test_manifest_refuses_overlapping_or_outside_extents),
		cmocka_unit_test(test_chunk_key_and_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
