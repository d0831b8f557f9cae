/* The WAL archive's pure parts (format/wal.md): which names PostgreSQL archives and how
 * objects are named, segment arithmetic, the object body and its refusal of another
 * file's name, and the gap count status and restore rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/wal.h"

static void test_names(void **state)
{
	(void)state;
	assert_true(kbv_wal_file_ok("000000010000000000000003"));
	assert_true(kbv_wal_file_ok("00000002000000A1000000FF"));
	assert_true(kbv_wal_file_ok("000000010000000000000003.partial"));
	assert_true(kbv_wal_file_ok("00000002.history"));
	assert_true(kbv_wal_file_ok("000000010000000000000003.00000028.backup"));
	assert_false(kbv_wal_file_ok("00000001000000000000000a")); /* lower case */
	assert_false(kbv_wal_file_ok("0000000100000000000000031"));
	assert_false(kbv_wal_file_ok("RECOVERYXLOG"));
	assert_false(kbv_wal_file_ok("00000002.HISTORY"));
	assert_false(kbv_wal_file_ok("000000010000000000000003.0000002.backup"));
	assert_false(kbv_wal_file_ok("../00000002.history"));
	assert_false(kbv_wal_file_ok(""));
	assert_true(kbv_wal_name_ok("kbp~000000010000000000000003"));
	assert_true(kbv_wal_name_ok("kb.prod_1-a~00000002.history"));
	assert_false(kbv_wal_name_ok("~000000010000000000000003"));
	assert_false(kbv_wal_name_ok("..~000000010000000000000003"));
	assert_false(kbv_wal_name_ok("k/b~000000010000000000000003"));
	assert_false(kbv_wal_name_ok("kbp000000010000000000000003"));
	assert_false(kbv_wal_name_ok("kbp~x~000000010000000000000003"));
	char long_src[96];
	memset(long_src, 'a', 65);
	snprintf(long_src + 65, sizeof long_src - 65, "~00000002.history");
	assert_false(kbv_wal_name_ok(long_src));
	assert_true(kbv_obj_name_ok(KBV_OBJ_WAL, "kbp~00000002.history"));
	assert_false(kbv_obj_name_ok(KBV_OBJ_WAL, "0123456789abcdef0123456789abcdef"));
	assert_true(kbv_obj_retained(KBV_OBJ_WAL));
}

static void test_segments(void **state)
{
	(void)state;
	uint32_t tli;
	uint64_t segno, s16 = 16u << 20;
	char name[25];
	/* 16 MiB segments: 256 per "xlogid" */
	assert_int_equal(kbv_wal_segno("0000000300000002000000FF", s16, &tli, &segno), 0);
	assert_int_equal(tli, 3);
	assert_int_equal(segno, 2 * 256 + 255);
	kbv_wal_segname(3, segno + 1, s16, name);
	assert_string_equal(name, "000000030000000300000000");
	assert_int_equal(kbv_wal_segno("000000010000000000000100", s16, &tli, &segno), -1); /* no such segment */
	assert_int_equal(kbv_wal_segno("00000001000000000000000", s16, &tli, &segno), -1);
	/* 1 GiB segments: 4 per xlogid */
	assert_int_equal(kbv_wal_segno("000000010000000100000003", 1u << 30, &tli, &segno), 0);
	assert_int_equal(segno, 7);
	assert_int_equal(kbv_wal_lsn_segno("0/3000028", s16, &segno), 0);
	assert_int_equal(segno, 3);
	assert_int_equal(kbv_wal_lsn_segno("2/FF000000", s16, &segno), 0);
	assert_int_equal(segno, 2 * 256 + 255);
	assert_int_equal(kbv_wal_lsn_segno("0/3000028x", s16, &segno), -1);
	assert_int_equal(kbv_wal_lsn_segno("3000028", s16, &segno), -1);
}

static void test_body(void **state)
{
	(void)state;
	struct kbv_wal_info w = { .source = "kbp", .file = "000000010000000000000003", .size = 16777216, .time = 1764600000,
				  .sysid = 7448115206411111111ull, .timeline = 1 };
	struct kbv_wal_info back;
	char *json = NULL;
	w.hash.alg = 1;
	memset(w.hash.v, 0xab, 32);
	w.ref.depth = 1;
	memset(w.ref.id, 0x5c, sizeof w.ref.id);
	assert_int_equal(kbv_wal_encode(&w, &json), 0);
	assert_int_equal(kbv_wal_decode(json, strlen(json), "kbp", "000000010000000000000003", &back), 0);
	assert_string_equal(back.source, "kbp");
	assert_int_equal(back.size, w.size);
	assert_int_equal(back.sysid, w.sysid);
	assert_int_equal(back.timeline, 1);
	assert_int_equal(back.ref.depth, 1);
	assert_memory_equal(back.ref.id, w.ref.id, sizeof w.ref.id);
	assert_memory_equal(back.hash.v, w.hash.v, 32);
	/* the same body under another file's or source's name is damage, not that file */
	assert_int_equal(kbv_wal_decode(json, strlen(json), "kbp", "000000010000000000000004", &back), KBV_ECORRUPT);
	assert_int_equal(kbv_wal_decode(json, strlen(json), "other", "000000010000000000000003", &back), KBV_ECORRUPT);
	assert_int_equal(kbv_wal_decode(json, strlen(json) - 1, "kbp", "000000010000000000000003", &back), KBV_ECORRUPT);
	/* fields out of their range are damage, not a value narrowed or wrapped into it */
	static const char *const bad[][2] = {
		{ "\"digest\":1,", "\"digest\":4294967297," }, /* (int) of it is 1 */
		{ "\"digest\":1,", "\"digest\":-255," },
		{ "\"sysid\":\"", "\"sysid\":\"-" },	/* strtoull would wrap it */
		{ "\"sysid\":\"", "\"sysid\":\" " },
		{ "\"sysid\":\"", "\"sysid\":\"+" },
		{ "\"timeline\":1", "\"timeline\":4294967297" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *at = strstr(json, bad[i][0]);
		char body[1024];
		assert_non_null(at);
		int n = snprintf(body, sizeof body, "%.*s%s%s", (int)(at - json), json, bad[i][1], at + strlen(bad[i][0]));
		assert_true(n > 0 && (size_t)n < sizeof body);
		assert_int_equal(kbv_wal_decode(body, (size_t)n, "kbp", "000000010000000000000003", &back), KBV_ECORRUPT);
	}
	free(json);
	const char *v2 = "{\"digest\":1,\"file\":\"00000002.history\",\"hash\":\"ab\",\"ref\":\"00\",\"size\":1,\"source\":\"kbp\","
			 "\"sysid\":\"0\",\"time\":0,\"timeline\":2,\"version\":2}";
	assert_int_equal(kbv_wal_decode(v2, strlen(v2), "kbp", "00000002.history", &back), KBV_EVERSION);
}

static struct kbv_wal_archive archive(const uint64_t *segnos, size_t n)
{
	struct kbv_wal_archive a = { calloc(n, sizeof(struct kbv_wal_seg)), n, 16u << 20, n };
	for (size_t i = 0; i < n; i++) {
		a.segs[i].segno = segnos[i];
		a.segs[i].tli = 1;
	}
	return a;
}

static void test_gaps(void **state)
{
	(void)state;
	uint64_t first;
	size_t before;
	const uint64_t whole[] = { 3, 4, 5, 5, 6 }; /* 5 twice: a partial segment and the new timeline's */
	struct kbv_wal_archive a = archive(whole, 5);
	assert_int_equal(kbv_wal_gaps(&a, 0, 0, &first, &before), 0);
	assert_true(first == UINT64_MAX);
	kbv_wal_archive_release(&a);
	const uint64_t holes[] = { 3, 4, 7, 8, 10 };
	a = archive(holes, 5);
	assert_int_equal(kbv_wal_gaps(&a, 0, 0, &first, &before), 3);
	assert_int_equal(first, 5);
	assert_int_equal(before, 1);
	/* from the oldest kept base backup on: what lies before it is not a gap */
	assert_int_equal(kbv_wal_gaps(&a, 7, 0, &first, &before), 1);
	assert_int_equal(first, 9);
	assert_int_equal(kbv_wal_gaps(&a, 10, 0, &first, &before), 0);
	/* exact (a restore from a base backup that starts there): the start itself must be
	 * archived, and the first gap is the first segment missing from it on */
	assert_int_equal(kbv_wal_gaps(&a, 7, 1, &first, &before), 1);
	assert_int_equal(first, 9);
	assert_int_equal(before, 3);
	assert_int_equal(kbv_wal_gaps(&a, 6, 1, &first, &before), 2);
	assert_int_equal(first, 6);
	assert_true(before == SIZE_MAX);
	assert_int_equal(kbv_wal_gaps(&a, 11, 1, &first, &before), 1);
	assert_int_equal(first, 11);
	kbv_wal_archive_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_gaps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
