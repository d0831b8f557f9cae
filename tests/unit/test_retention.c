/* Retention: table-driven cases across DST changes, month ends, leap years, ISO week 53,
 * empty buckets, identical timestamps, groups, and unions of policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <time.h>

#include "kbv/error.h"
#include "kbv/retention.h"

/* "2026-03-29 01:30 +0100" -> UTC seconds and offset. */
static void at(struct kbv_retention_item *it, const char *local, const char *group)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, oh, om;
	char sign;
	assert_int_equal(sscanf(local, "%d-%d-%d %d:%d %c%2d%2d", &y, &mo, &d, &h, &mi, &sign, &oh, &om), 8);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	int32_t off = (sign == '-' ? -1 : 1) * (oh * 3600 + om * 60);
	memset(it, 0, sizeof *it);
	it->time = (int64_t)timegm(&tm) - off;
	it->tzoff = off;
	it->group = group;
}

struct row {
	const char *name;
	struct kbv_policy policy;
	const char *times[12]; /* local times, +HHMM offsets */
	const char *keep;      /* one char per time: K keep, . forget */
};

static const struct row rows[] = {
	{ "keep-last 3 of 5", { .last = 3 },
	  { "2026-01-01 10:00 +0000", "2026-01-02 10:00 +0000", "2026-01-03 10:00 +0000", "2026-01-04 10:00 +0000",
	    "2026-01-05 10:00 +0000" },
	  "..KKK" },
	{ "daily keeps the newest of each day; empty days do not count", { .daily = 3 },
	  { "2026-01-01 09:00 +0000", "2026-01-01 21:00 +0000", "2026-01-03 08:00 +0000", "2026-01-07 01:00 +0000",
	    "2026-01-07 23:59 +0000" },
	  ".KK.K" },
	{ "DST spring forward (Berlin): 01:30 CET and 03:30 CEST are the same local day", { .daily = 2 },
	  { "2026-03-28 22:00 +0100", "2026-03-29 01:30 +0100", "2026-03-29 03:30 +0200" },
	  "K.K" },
	{ "DST fall back (Berlin): 02:30 CEST then 02:30 CET share the local hour", { .hourly = 5 },
	  { "2026-10-25 01:10 +0200", "2026-10-25 02:30 +0200", "2026-10-25 02:30 +0100", "2026-10-25 03:05 +0100" },
	  "K.KK" },
	{ "local day, not UTC day: 23:30 -0500 belongs to that day", { .daily = 2 },
	  { "2026-06-01 08:00 -0500", "2026-06-01 23:30 -0500", "2026-06-02 00:30 -0500" },
	  ".KK" },
	{ "month ends and leap day", { .monthly = 3 },
	  { "2028-01-31 23:00 +0000", "2028-02-01 00:00 +0000", "2028-02-29 12:00 +0000", "2028-03-01 00:00 +0000" },
	  "K.KK" },
	{ "ISO week 53 spans the new year; Jan 4 starts week 1", { .weekly = 3 },
	  { "2026-12-27 12:00 +0000", "2026-12-28 12:00 +0000", "2026-12-31 12:00 +0000", "2027-01-01 12:00 +0000",
	    "2027-01-04 12:00 +0000" },
	  "K..KK" },
	{ "yearly", { .yearly = 2 },
	  { "2024-06-01 00:00 +0000", "2025-01-01 00:00 +0000", "2025-12-31 23:00 +0000", "2026-03-01 00:00 +0000" },
	  "..KK" },
	{ "union: last 1 plus monthly 2", { .last = 1, .monthly = 2 },
	  { "2026-01-10 00:00 +0000", "2026-02-10 00:00 +0000", "2026-02-20 00:00 +0000", "2026-03-05 00:00 +0000",
	    "2026-03-06 00:00 +0000" },
	  "..K.K" },
	{ "keep-within 2d of the newest", { .within = { 0, 0, 2, 0 } },
	  { "2026-11-20 12:00 +0000", "2026-11-23 11:59 +0000", "2026-11-23 12:00 +0000", "2026-11-25 12:00 +0000" },
	  "..KK" },
	{ "keep-within 1m from March 31 normalizes", { .within = { 0, 1, 0, 0 } },
	  { "2026-03-02 12:00 +0000", "2026-03-03 12:00 +0000", "2026-03-31 12:00 +0000" },
	  ".KK" },
};

static void test_table(void **s)
{
	(void)s;
	for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
		struct kbv_retention_item it[12];
		size_t n = 0;
		while (n < 12 && rows[r].times[n]) {
			at(&it[n], rows[r].times[n], "g");
			n++;
		}
		assert_int_equal(kbv_retention_apply(&rows[r].policy, it, n), 0);
		char got[13] = { 0 };
		for (size_t i = 0; i < n; i++)
			got[i] = it[i].keep ? 'K' : '.';
		if (strcmp(got, rows[r].keep) != 0)
			fail_msg("%s: got %s, want %s", rows[r].name, got, rows[r].keep);
	}
}

static void test_identical_times_and_reasons(void **s)
{
	(void)s;
	struct kbv_retention_item it[3];
	for (int i = 0; i < 3; i++)
		at(&it[i], "2026-05-05 05:05 +0000", "g");
	struct kbv_policy p = { .last = 1, .daily = 1 };
	assert_int_equal(kbv_retention_apply(&p, it, 3), 0);
	assert_int_equal(it[0].keep + it[1].keep + it[2].keep, 1); /* exactly one, deterministically */
	assert_true(it[2].keep);
	assert_string_equal(it[2].reasons, "last, daily");
	assert_string_equal(it[0].reasons, "");
}

static void test_groups_and_tags(void **s)
{
	(void)s;
	static const char *const release[] = { "release" };
	static const char *const want_tags[] = { "release" };
	struct kbv_retention_item it[4];
	at(&it[0], "2025-01-01 00:00 +0000", "only-kb"); /* old, alone in its group: kept */
	at(&it[1], "2026-01-01 00:00 +0000", "everything");
	at(&it[2], "2026-01-02 00:00 +0000", "everything");
	at(&it[3], "2026-01-03 00:00 +0000", "everything");
	it[1].tags = release;
	it[1].ntags = 1;
	struct kbv_policy p = { .last = 1, .tags = want_tags, .ntags = 1 };
	assert_int_equal(kbv_retention_apply(&p, it, 4), 0);
	assert_true(it[0].keep);
	assert_true(it[1].keep);
	assert_string_equal(it[1].reasons, "tag");
	assert_false(it[2].keep);
	assert_true(it[3].keep);
}

static void test_empty_policy_and_durations(void **s)
{
	(void)s;
	struct kbv_policy p = { 0 };
	assert_true(kbv_policy_is_empty(&p));
	p.within.hours = 1;
	assert_false(kbv_policy_is_empty(&p));
	struct kbv_duration d;
	assert_int_equal(kbv_duration_parse("1y2m3d4h", &d), 0);
	assert_int_equal(d.years, 1);
	assert_int_equal(d.months, 2);
	assert_int_equal(d.days, 3);
	assert_int_equal(d.hours, 4);
	assert_int_equal(kbv_duration_parse("36h", &d), 0);
	assert_int_equal(d.hours, 36);
	assert_int_equal(kbv_duration_parse("", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("2w", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("d", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("-1d", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("+1d", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse(" 1d", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("1d 2h", &d), KBV_EINVAL);
	assert_int_equal(kbv_duration_parse("100000y", &d), 0);
	assert_int_equal(d.years, 100000);
	/* a unit repeated adds up, but no further than one can be (no int overflow) */
	assert_int_equal(kbv_duration_parse("1d2d", &d), 0);
	assert_int_equal(d.days, 3);
	assert_int_equal(kbv_duration_parse("100000y1y", &d), KBV_EINVAL);
	char *many = malloc(21475 * 7 + 1);
	assert_non_null(many);
	for (int i = 0; i < 21475; i++)
		memcpy(many + 7 * i, "100000y", 7);
	many[21475 * 7] = 0;
	assert_int_equal(kbv_duration_parse(many, &d), KBV_EINVAL);
	free(many);
	struct kbv_retention_item none;
	assert_int_equal(kbv_retention_apply(&p, &none, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_identical_times_and_reasons),
		cmocka_unit_test(test_groups_and_tags),
		cmocka_unit_test(test_empty_policy_and_durations),
	};
	return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
