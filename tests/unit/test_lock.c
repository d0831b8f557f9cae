/* Object Lock's stored and parsed parts: the version 2 config (golden, from
 * tests/golden/make-golden-bucket.sh --object-lock) and its checks, the version 3 config that
 * records the id hash (golden, tests/golden/make-golden-blake3.sh), the kinds Object Lock retains,
 * and ListObjectVersions replies (format/repository.md, "Object Lock"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/repo.h"
#include "store/repo_impl.h"
#include "store/s3/xml.h"

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_config_v2_golden(void **s)
{
	(void)s;
	uint8_t b[128];
	struct kbv_repo r;
	size_t n = slurp("tests/golden/v2-lock-bucket/objects/config", b, sizeof b);
	assert_int_equal(n, 64);
	memset(&r, 0, sizeof r);
	assert_int_equal(kbv_repo_config_decode(b, n, "golden", &r), 0);
	assert_int_equal(r.lock_days, 1);
	assert_true(r.encrypted);
	/* version 1 (every repository without Object Lock) still reads, with no lock */
	n = slurp("tests/golden/v1/repo-encrypted/config", b, sizeof b);
	assert_int_equal(n, 60);
	memset(&r, 0, sizeof r);
	r.lock_days = 9;
	assert_int_equal(kbv_repo_config_decode(b, n, "golden v1", &r), 0);
	assert_int_equal(r.lock_days, 0);
}

static void test_config_v2_checks(void **s)
{
	(void)s;
	uint8_t g[128], b[128];
	struct kbv_repo r;
	size_t n = slurp("tests/golden/v2-lock-bucket/objects/config", g, sizeof g);
	/* a lock of 0 days (or more than ten years) in a version 2 config, checksum right */
	uint32_t bad[] = { 0, KBV_MAX_LOCK_DAYS + 1 };
	for (size_t i = 0; i < 2; i++) {
		memcpy(b, g, n);
		put32(b + 52, bad[i]);
		put64(b + 56, XXH3_64bits(b, 56));
		memset(&r, 0, sizeof r);
		assert_int_equal(kbv_repo_config_decode(b, n, "x", &r), KBV_ECORRUPT);
	}
	/* a flipped bit, a version 1 size, an unknown version */
	memcpy(b, g, n);
	b[53] ^= 1;
	assert_int_equal(kbv_repo_config_decode(b, n, "x", &r), KBV_ECORRUPT);
	memcpy(b, g, n);
	assert_int_equal(kbv_repo_config_decode(b, 60, "x", &r), KBV_ECORRUPT);
	put32(b + 8, 4); /* 3 is the id-hash config (68 bytes): test_config_v3 */
	assert_int_equal(kbv_repo_config_decode(b, n, "x", &r), KBV_EVERSION);
	put32(b + 8, 3); /* a version 3 config of version 2's size */
	assert_int_equal(kbv_repo_config_decode(b, n, "x", &r), KBV_ECORRUPT);
}

static void test_config_v3(void **s)
{
	(void)s;
	uint8_t g[128], b[128];
	struct kbv_repo r;
	size_t n = slurp("tests/golden/v7-blake3/repo-plain/config", g, sizeof g);
	assert_int_equal(n, 68);
	memset(&r, 0, sizeof r);
	assert_int_equal(kbv_repo_config_decode(g, n, "golden", &r), 0);
	assert_int_equal(r.id_hash, KBV_ID_BLAKE3);
	assert_int_equal(r.lock_days, 0);
	assert_false(r.encrypted);
	/* the older versions read as BLAKE2b */
	n = slurp("tests/golden/v2-lock-bucket/objects/config", b, sizeof b);
	assert_int_equal(kbv_repo_config_decode(b, n, "golden v2", &r), 0);
	assert_int_equal(r.id_hash, KBV_ID_BLAKE2B);
	/* a lock in a version 3 config; an unknown id hash (checksum right) is a newer format,
	 * not damage; a flipped bit is damage; version 3 at version 1's size is damage */
	memcpy(b, g, 68);
	put32(b + 52, 30);
	put64(b + 60, XXH3_64bits(b, 60));
	assert_int_equal(kbv_repo_config_decode(b, 68, "x", &r), 0);
	assert_int_equal(r.lock_days, 30);
	put32(b + 52, KBV_MAX_LOCK_DAYS + 1);
	put64(b + 60, XXH3_64bits(b, 60));
	assert_int_equal(kbv_repo_config_decode(b, 68, "x", &r), KBV_ECORRUPT);
	memcpy(b, g, 68);
	put32(b + 56, 7);
	put64(b + 60, XXH3_64bits(b, 60));
	assert_int_equal(kbv_repo_config_decode(b, 68, "x", &r), KBV_EVERSION);
	memcpy(b, g, 68);
	b[57] ^= 1;
	assert_int_equal(kbv_repo_config_decode(b, 68, "x", &r), KBV_ECORRUPT);
	assert_int_equal(kbv_repo_config_decode(g, 60, "x", &r), KBV_ECORRUPT);
}

static void test_retained_kinds(void **s)
{
	(void)s;
	assert_true(kbv_obj_retained(KBV_OBJ_CONFIG));
	assert_true(kbv_obj_retained(KBV_OBJ_KEY));
	assert_true(kbv_obj_retained(KBV_OBJ_PACK));
	assert_true(kbv_obj_retained(KBV_OBJ_SNAPSHOT));
	assert_true(kbv_obj_retained(KBV_OBJ_RECORD));
	assert_true(kbv_obj_retained(KBV_OBJ_INDEX));
	/* gc must be able to remove these whatever the retention */
	assert_false(kbv_obj_retained(KBV_OBJ_PLAN));
	assert_false(kbv_obj_retained(KBV_OBJ_LOCK));
}

static void test_versions_reply(void **s)
{
	(void)s;
	static const char reply[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListVersionsResult "
		"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/data/</Prefix>"
		"<IsTruncated>true</IsTruncated><NextKeyMarker>p/data/ab/abcd.pack</NextKeyMarker>"
		"<NextVersionIdMarker>v.3</NextVersionIdMarker>"
		"<DeleteMarker><Key>p/data/00/00112233445566778899aabbccddeeff.pack</Key><VersionId>m-1</VersionId>"
		"<IsLatest>true</IsLatest><LastModified>2026-12-01T13:30:35.893Z</LastModified></DeleteMarker>"
		"<Version><Key>p/data/00/00112233445566778899aabbccddeeff.pack</Key><VersionId>v.1</VersionId>"
		"<IsLatest>false</IsLatest><LastModified>2026-12-01T13:30:30.552Z</LastModified><Size>6</Size></Version>"
		"<Version><Key>p/snapshots/x</Key><VersionId>null</VersionId><Size>7</Size>"
		"<LastModified>2026-12-01T13:30:31Z</LastModified></Version>"
		"</ListVersionsResult>";
	struct kbv_s3_listing l = { 0 };
	assert_int_equal(kbv_s3_listing_parse(&l, reply, sizeof reply - 1), 0);
	assert_int_equal(l.n, 3);
	assert_true(l.truncated);
	assert_string_equal(l.next_key, "p/data/ab/abcd.pack");
	assert_string_equal(l.next_version, "v.3");
	assert_string_equal(l.items[0].name, "00112233445566778899aabbccddeeff");
	assert_string_equal(l.items[0].version, "m-1");
	assert_true(l.items[0].marker);
	assert_string_equal(l.items[1].version, "v.1");
	assert_false(l.items[1].marker);
	assert_int_equal(l.items[1].size, 6);
	assert_int_equal(l.items[1].mtime, kbv_s3_parse_time("2026-12-01T13:30:30Z"));
	assert_string_equal(l.items[2].name, "x");
	assert_string_equal(l.items[2].version, "null");
	/* a ListObjectsV2 page after it: no version, no marker, no next key */
	static const char v2[] = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>p/k</Key>"
				 "<LastModified>2026-12-01T13:30:32+00:00</LastModified>"
				 "<Size>1</Size></Contents></ListBucketResult>";
	assert_int_equal(kbv_s3_listing_parse(&l, v2, sizeof v2 - 1), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].version, "");
	assert_false(l.items[0].marker);
	assert_string_equal(l.next_key, "");
	assert_int_equal(l.items[0].mtime, kbv_s3_parse_time("2026-12-01T13:30:32Z"));
	kbv_s3_listing_release(&l);
}

/* gc reads an object's age off its LastModified: an entry without a readable one (or,
 * but for a delete marker, without a Size of digits) refuses the page rather than giving
 * the object the age of 1970 (a young pack or a live lock would look old). */
static void test_listing_needs_time_and_size(void **s)
{
	(void)s;
	static const char *const bad[] = {
		"<Contents><Key>p/k</Key><Size>1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified></LastModified><Size>1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>Tue, 01 Dec 2026 13:30:30 GMT</LastModified><Size>1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>2026-12-01T13:30:30+02:00</LastModified><Size>1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>1970-01-01T00:00:00Z</LastModified><Size>1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>2026-12-01T13:30:30Z</LastModified></Contents>",
		"<Contents><Key>p/k</Key><LastModified>2026-12-01T13:30:30Z</LastModified><Size>-1</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>2026-12-01T13:30:30Z</LastModified><Size>1e3</Size></Contents>",
		"<Contents><Key>p/k</Key><LastModified>2026-12-01T13:30:30Z</LastModified>"
		"<Size>99999999999999999999999</Size></Contents>",
		"<Version><Key>p/k</Key><VersionId>v</VersionId><Size>1</Size></Version>",
		"<DeleteMarker><Key>p/k</Key><VersionId>m</VersionId></DeleteMarker>",
	};
	char body[512];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct kbv_s3_listing l = { 0 };
		int n = snprintf(body, sizeof body, "<ListBucketResult><IsTruncated>false</IsTruncated>%s</ListBucketResult>",
				 bad[i]);
		assert_int_equal(kbv_s3_listing_parse(&l, body, (size_t)n), KBV_ECORRUPT);
		assert_non_null(strstr(l.bad_why, "'p/k' has no readable"));
		kbv_s3_listing_release(&l);
	}
	/* a delete marker has no Size; with its LastModified it is an item */
	struct kbv_s3_listing l = { 0 };
	static const char dm[] = "<ListVersionsResult><DeleteMarker><Key>p/k</Key><VersionId>m</VersionId>"
				 "<LastModified>2026-12-01T13:30:30.5Z</LastModified></DeleteMarker></ListVersionsResult>";
	assert_int_equal(kbv_s3_listing_parse(&l, dm, sizeof dm - 1), 0);
	assert_int_equal(l.n, 1);
	assert_true(l.items[0].marker);
	assert_int_equal(l.items[0].mtime, kbv_s3_parse_time("2026-12-01T13:30:30Z"));
	assert_true(l.items[0].mtime > 0);
	kbv_s3_listing_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_v2_golden),
		cmocka_unit_test(test_config_v2_checks),
		cmocka_unit_test(test_config_v3),
		cmocka_unit_test(test_retained_kinds),
		cmocka_unit_test(test_versions_reply),
		cmocka_unit_test(test_listing_needs_time_and_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
