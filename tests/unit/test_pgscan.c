/* The pure parts of the PostgreSQL source: the COPY-block scanner that gives snapshots
 * their per-table row counts and checksums (format/snapshot.md) -- what it counts, what it
 * must not count, and that the result does not depend on how the stream is split -- and
 * the environment that carries a connection string to pg_dump and psql. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "kbv/error.h"
#include "kbv/pg.h"

static const char DUMP[] =
	"--\n-- PostgreSQL database dump\n--\n\n"
	"-- Dumped from database version 15.20\n"
	"-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)\n\n"
	"CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$\n"
	"COPY public.decoy (a) FROM stdin;\n" /* a function body, not data: no TABLE DATA header */
	"$$;\n\n"
	"--\n-- Data for Name: docs; Type: TABLE DATA; Schema: public; Owner: kb\n--\n\n"
	"COPY public.docs (id, body) FROM stdin;\n"
	"1\tone\\ttab\n"
	"2\t\\\\.\n" /* a backslash and a dot: escaped, so not the end marker */
	"3\t\\N\n"
	"\\.\n\n\n"
	"--\n-- Data for Name: my table; Type: TABLE DATA; Schema: odd schema; Owner: kb\n--\n\n"
	"COPY \"odd schema\".\"my table\" FROM stdin;\n"
	"\n"
	"\n"
	"\\.\n\n"
	"--\n-- Data for Name: empty; Type: TABLE DATA; Schema: public; Owner: kb\n--\n\n"
	"COPY public.empty (x) FROM stdin;\n"
	"\\.\n\n"
	"SELECT pg_catalog.setval('public.s', 3, true);\n";

static uint64_t h(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

static void check_tables(struct kbv_pgscan *s)
{
	size_t n;
	const struct kbv_pgtable *t = kbv_pgscan_tables(s, &n);
	assert_int_equal(n, 3);
	assert_string_equal(t[0].name, "public.docs");
	assert_string_equal(t[0].columns, "id, body");
	assert_int_equal(t[0].rows, 3);
	assert_true(t[0].sum == h("1\tone\\ttab") + h("2\t\\\\.") + h("3\t\\N"));
	assert_string_equal(t[1].name, "\"odd schema\".\"my table\"");
	assert_string_equal(t[1].columns, "");
	assert_int_equal(t[1].rows, 2); /* a table without columns: one empty line per row */
	assert_true(t[1].sum == 2 * h(""));
	assert_string_equal(t[2].name, "public.empty");
	assert_int_equal(t[2].rows, 0);
	assert_true(t[2].sum == 0);
	assert_string_equal(kbv_pgscan_dump_tool(s), "15.20 (Debian 15.20-0+deb12u1)");
}

static void test_whole(void **st)
{
	(void)st;
	struct kbv_pgscan *s = kbv_pgscan_new();
	assert_int_equal(kbv_pgscan_feed(s, DUMP, strlen(DUMP)), 0);
	assert_int_equal(kbv_pgscan_end(s), 0);
	check_tables(s);
	kbv_pgscan_free(s);
}

/* Every split of the stream gives the same figures (the scanner sees pipe reads). */
static void test_splits(void **st)
{
	(void)st;
	size_t len = strlen(DUMP);
	for (size_t step = 1; step < 40; step += 3) {
		struct kbv_pgscan *s = kbv_pgscan_new();
		for (size_t off = 0; off < len; off += step)
			assert_int_equal(kbv_pgscan_feed(s, DUMP + off, off + step > len ? len - off : step), 0);
		assert_int_equal(kbv_pgscan_end(s), 0);
		check_tables(s);
		kbv_pgscan_free(s);
	}
}

/* Row order does not change a table's checksum; a changed row does. */
static void test_order(void **st)
{
	(void)st;
	static const char a[] = "-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: x\n"
				"COPY public.t (a) FROM stdin;\nx\ny\nz\n\\.\n";
	static const char b[] = "-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: x\n"
				"COPY public.t (a) FROM stdin;\nz\nx\ny\n\\.\n";
	static const char c[] = "-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: x\n"
				"COPY public.t (a) FROM stdin;\nz\nx\nY\n\\.\n";
	uint64_t sums[3];
	const char *in[3] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		struct kbv_pgscan *s = kbv_pgscan_new();
		size_t n;
		assert_int_equal(kbv_pgscan_feed(s, in[i], strlen(in[i])), 0);
		assert_int_equal(kbv_pgscan_end(s), 0);
		sums[i] = kbv_pgscan_tables(s, &n)[0].sum;
		assert_int_equal(n, 1);
		kbv_pgscan_free(s);
	}
	assert_true(sums[0] == sums[1]);
	assert_true(sums[0] != sums[2]);
	char hex[17];
	kbv_pg_sum_hex(0x0123456789abcdefull, hex);
	assert_string_equal(hex, "0123456789abcdef");
}

/* Rows of 0 to ~3,000 bytes (across XXH3's short, medium and long paths) fed whole, a row
 * per piece (as COPY hands them over) and in pieces that split them: the same figures, each
 * row's hash the one-shot XXH3-64 of its bytes. */
static void test_long_rows(void **st)
{
	(void)st;
	static const char head[] = "-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: x\n"
				   "COPY public.t (a) FROM stdin;\n";
	size_t cap = 200000, len = 0, nrows = 0;
	char *in = malloc(cap);
	size_t starts[64];
	uint64_t want = 0;
	assert_non_null(in);
	memcpy(in, head, sizeof head - 1);
	len = sizeof head - 1;
	for (size_t r = 0; r * 97 < 3100; r++) {
		size_t n = r * 97 + (r % 3);
		starts[nrows++] = len;
		for (size_t i = 0; i < n; i++)
			in[len + i] = (char)('a' + (r * 31 + i * 7) % 26);
		want += XXH3_64bits(in + len, n);
		len += n;
		in[len++] = '\n';
	}
	starts[nrows] = len;
	memcpy(in + len, "\\.\n", 3);
	len += 3;
	for (int way = 0; way < 4; way++) {
		struct kbv_pgscan *s = kbv_pgscan_new();
		size_t n;
		if (way == 0) {
			assert_int_equal(kbv_pgscan_feed(s, in, len), 0);
		} else if (way == 1) {
			assert_int_equal(kbv_pgscan_feed(s, in, starts[0]), 0);
			for (size_t r = 0; r <= nrows; r++) /* the last piece: the end marker */
				assert_int_equal(kbv_pgscan_feed(s, in + starts[r],
								 (r < nrows ? starts[r + 1] : len) - starts[r]), 0);
		} else {
			size_t step = way == 2 ? 7 : 1000;
			for (size_t off = 0; off < len; off += step)
				assert_int_equal(kbv_pgscan_feed(s, in + off, off + step > len ? len - off : step), 0);
		}
		assert_int_equal(kbv_pgscan_end(s), 0);
		const struct kbv_pgtable *t = kbv_pgscan_tables(s, &n);
		assert_int_equal(n, 1);
		assert_int_equal(t[0].rows, nrows);
		assert_true(t[0].sum == want);
		kbv_pgscan_free(s);
	}
	free(in);
}

/* A dump that stops inside a COPY block is truncated, and says which table. */
static void test_truncated(void **st)
{
	(void)st;
	size_t cut = (size_t)(strstr(DUMP, "3\t\\N") - DUMP);
	struct kbv_pgscan *s = kbv_pgscan_new();
	assert_int_equal(kbv_pgscan_feed(s, DUMP, cut), 0);
	assert_int_equal(kbv_pgscan_end(s), KBV_ESOURCE);
	assert_non_null(strstr(kbv_errmsg(), "public.docs"));
	kbv_pgscan_free(s);
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	const char *found = NULL;
	for (; *env; env++)
		if (!strncmp(*env, name, n) && (*env)[n] == '=') {
			if (found)
				fail_msg("%s is set twice", name);
			found = *env + n + 1;
		}
	return found;
}

/* Each conninfo setting becomes its PG* variable (so no password is on a command line);
 * a database override replaces dbname; our own PGDATABASE/PGOPTIONS do not leak through. */
static void test_env(void **st)
{
	(void)st;
	char **env = NULL;
	setenv("PGDATABASE", "from_env", 1);
	setenv("PGCLIENTENCODING", "LATIN1", 1);
	setenv("KBV_TEST_KEEP", "yes", 1);
	assert_int_equal(kbv_pg_env("host=db.example port=6543 dbname=kb user=u password=s3cret client_encoding=LATIN1 "
				    "options='-c work_mem=64MB'",
				    "target", &env),
			 0);
	assert_string_equal(env_get(env, "PGHOST"), "db.example");
	assert_string_equal(env_get(env, "PGPORT"), "6543");
	assert_string_equal(env_get(env, "PGUSER"), "u");
	assert_string_equal(env_get(env, "PGPASSWORD"), "s3cret");
	assert_string_equal(env_get(env, "PGDATABASE"), "target");
	assert_string_equal(env_get(env, "PGOPTIONS"), "-c work_mem=64MB");
	assert_null(env_get(env, "PGCLIENTENCODING")); /* the dump is in the database's encoding */
	assert_string_equal(env_get(env, "KBV_TEST_KEEP"), "yes");
	kbv_pg_env_free(env);
	env = NULL;
	assert_int_equal(kbv_pg_env("host=h", NULL, &env), 0);
	assert_string_equal(env_get(env, "PGDATABASE"), "from_env"); /* not overridden: as libpq would */
	kbv_pg_env_free(env);
	assert_int_equal(kbv_pg_env("host='unterminated", NULL, &env), KBV_EINVAL);
	unsetenv("PGDATABASE");
	unsetenv("PGCLIENTENCODING");
	unsetenv("KBV_TEST_KEEP");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_splits),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_long_rows),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_env),
	};
	return cmocka_run_group_tests_name("pgscan", tests, NULL, NULL);
}
