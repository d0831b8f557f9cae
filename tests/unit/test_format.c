/* Manifest bodies and entry tables: round trips, and every truncation or stray byte is
 * refused cleanly (never a crash, never a half-parsed snapshot). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kbv/error.h"
#include "kbv/snapshot.h"

static void test_names(void **s)
{
	(void)s;
	assert_true(kbv_entry_name_ok("kb.sql"));
	assert_true(kbv_entry_name_ok("srv/exports/a.txt"));
	assert_true(kbv_entry_name_ok("..hidden/x"));
	assert_false(kbv_entry_name_ok(""));
	assert_false(kbv_entry_name_ok("/etc/passwd"));
	assert_false(kbv_entry_name_ok("../x"));
	assert_false(kbv_entry_name_ok("a/../../x"));
	assert_false(kbv_entry_name_ok("a//b"));
	assert_false(kbv_entry_name_ok("a/./b"));
	assert_false(kbv_entry_name_ok("a/"));
	assert_false(kbv_entry_name_ok(".."));
}

static struct kbv_entry sample[3];

static void make_sample(void)
{
	memset(sample, 0, sizeof sample);
	sample[0] = (struct kbv_entry){ KBV_ENTRY_STDIN, "kb.sql", 0600, 1764072000, 5, 123456789, { 1, { 0 } },
					{ 2, { 9 } }, NULL, 0, 0, NULL, NULL };
	sample[1] = (struct kbv_entry){ KBV_ENTRY_DIR, "etc", 040755, 1, 0, 0, { 0 }, { KBV_REF_EMPTY, { 0 } }, NULL,
					0, 0, NULL, NULL };
	sample[2] = (struct kbv_entry){ KBV_ENTRY_SYMLINK, "etc/link", 0120777, 2, 999999999, 6, { 0 },
					{ KBV_REF_EMPTY, { 0 } }, "target", 0, 0, NULL, NULL };
}

/* Entry format 3 names the digest algorithm; format 2 (body version 3) is format 3 without
 * that byte and always BLAKE2b-256; format 1 (body versions 1 and 2) is format 2 without
 * owners. Every older format still reads. */
static void test_entries_owners(void **s)
{
	(void)s;
	struct kbv_entry f = { KBV_ENTRY_FILE, "srv/pg.conf", 0104644, 5, 0, 0, { KBV_DIGEST_BLAKE2B_256, { 0xab } },
			       { KBV_REF_EMPTY, { 0 } }, NULL, 108, 114, "postgres", "ssl-cert" };
	struct kbv_buf b = KBV_BUF_INIT;
	struct kbv_entry *e;
	size_t n;
	assert_int_equal(kbv_entries_encode(&f, 1, &b), 0);
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), 0);
	assert_int_equal(e[0].hash.alg, KBV_DIGEST_BLAKE2B_256);
	assert_int_equal(e[0].hash.v[0], 0xab);
	kbv_entries_free(e, n);
	/* An unknown algorithm, a data entry without a digest, or bytes past a 16-byte digest:
	 * malformed. */
	size_t at = 1 + 4 + strlen(f.name) + 4 + 8 + 4 + 8; /* the algorithm byte */
	assert_int_equal(b.data[at], KBV_DIGEST_BLAKE2B_256);
	b.data[at] = 9;
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), KBV_ECORRUPT);
	b.data[at] = KBV_DIGEST_NONE;
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), KBV_ECORRUPT);
	b.data[at] = KBV_DIGEST_XXH3_128; /* v[0] is set, but so would v[16..31] have to be zero */
	b.data[at + 1 + 20] = 1;
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), KBV_ECORRUPT);
	b.data[at + 1 + 20] = 0;
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), 0);
	assert_int_equal(e[0].hash.alg, KBV_DIGEST_XXH3_128);
	kbv_entries_free(e, n);
	/* Format 2: the same without the algorithm byte. */
	memmove(b.data + at, b.data + at + 1, b.len - at - 1);
	b.len--;
	assert_int_equal(kbv_entries_decode_format(b.data, b.len, 2, &e, &n), 0);
	assert_int_equal(e[0].hash.alg, KBV_DIGEST_BLAKE2B_256);
	assert_int_equal(e[0].hash.v[0], 0xab);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].uid, 108);
	assert_int_equal(e[0].gid, 114);
	assert_string_equal(e[0].user, "postgres");
	assert_string_equal(e[0].group, "ssl-cert");
	kbv_entries_free(e, n);
	/* The same entry in format 1 is the format 2 bytes less the owner fields. */
	size_t owner = 4 + 4 + 2 + strlen("postgres") + 2 + strlen("ssl-cert");
	assert_int_equal(kbv_entries_decode_format(b.data, b.len - owner, 1, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_null(e[0].user);
	assert_null(e[0].group);
	assert_string_equal(e[0].name, "srv/pg.conf");
	kbv_entries_free(e, n);
	/* Format 2 bytes read as format 1 (or the reverse) do not pass as valid. */
	assert_int_equal(kbv_entries_decode(b.data, b.len - owner, &e, &n), KBV_ECORRUPT);
	kbv_buf_release(&b);
}

static void test_entries_roundtrip(void **s)
{
	(void)s;
	make_sample();
	struct kbv_buf b = KBV_BUF_INIT;
	assert_int_equal(kbv_entries_encode(sample, 3, &b), 0);
	struct kbv_entry *e;
	size_t n;
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(e[i].kind, sample[i].kind);
		assert_string_equal(e[i].name, sample[i].name);
		assert_int_equal(e[i].mode, sample[i].mode);
		assert_int_equal(e[i].mtime, sample[i].mtime);
		assert_int_equal(e[i].mtime_ns, sample[i].mtime_ns);
		assert_int_equal(e[i].size, sample[i].size);
		assert_true(kbv_digest_equal(&e[i].hash, &sample[i].hash));
		assert_int_equal(e[i].ref.depth, sample[i].ref.depth);
	}
	assert_string_equal(e[2].target, "target");
	assert_null(e[0].target);
	kbv_entries_free(e, n);

	/* Every truncation of the last entry fails cleanly. */
	for (size_t cut = 1; cut < b.len; cut++) {
		size_t cnt;
		int rc = kbv_entries_decode(b.data, b.len - cut, &e, &cnt);
		if (rc == 0) {
			/* A cut exactly at an entry boundary is a shorter, valid table. */
			assert_true(cnt < 3);
			kbv_entries_free(e, cnt);
		} else {
			assert_int_equal(rc, KBV_ECORRUPT);
		}
	}
	/* A traversal name is refused at decode time too. */
	struct kbv_entry bad = sample[0];
	bad.name = "../../etc/shadow";
	b.len = 0;
	assert_int_equal(kbv_entries_encode(&bad, 1, &b), 0);
	assert_int_equal(kbv_entries_decode(b.data, b.len, &e, &n), KBV_ECORRUPT);
	kbv_buf_release(&b);
}

static void test_body_roundtrip(void **s)
{
	(void)s;
	char *tags[] = { "nightly", "release" };
	struct kbv_snapsource src[] = { { "kb", "postgres", "{\"mode\":\"native\",\"tables\":[]}" },
					{ "files", "path", "{}" } };
	struct kbv_snapshot a = { .time = 1764072000, .nsec = 42, .tzoff = -18000, .host = "db1", .tags = tags,
				  .ntags = 2, .nentries = 3, .total_size = 1000, .table_ref = { 1, { 7 } },
				  .table_size = 300, .sources = src, .nsources = 2 };
	struct kbv_buf b = KBV_BUF_INIT;
	assert_int_equal(kbv_snapshot_encode_body(&a, &b), 0);
	struct kbv_snapshot *x = calloc(1, sizeof *x);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len, x), 0);
	assert_int_equal(x->time, a.time);
	assert_int_equal(x->nsec, 42);
	assert_int_equal(x->tzoff, -18000);
	assert_string_equal(x->host, "db1");
	assert_int_equal(x->ntags, 2);
	assert_string_equal(x->tags[1], "release");
	assert_int_equal(x->table_size, 300);
	assert_int_equal(x->body_version, 4); /* written as the newest version */
	assert_int_equal(x->nsources, 2);
	assert_string_equal(x->sources[0].name, "kb");
	assert_string_equal(x->sources[0].type, "postgres");
	assert_string_equal(x->sources[0].meta, src[0].meta);
	assert_non_null(kbv_snapshot_source(x, "files"));
	assert_null(kbv_snapshot_source(x, "nope"));
	kbv_snapshot_free(x);
	for (size_t len = 0; len < b.len; len++) {
		x = calloc(1, sizeof *x);
		assert_int_not_equal(kbv_snapshot_decode_body(b.data, len, x), 0);
		kbv_snapshot_free(x);
	}
	/* A trailing byte is refused: there are no optional fields. */
	kbv_buf_add_u8(&b, 0);
	x = calloc(1, sizeof *x);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len, x), KBV_ECORRUPT);
	kbv_snapshot_free(x);
	/* An unknown body version is a version error, not corruption. */
	b.data[0] = 5;
	x = calloc(1, sizeof *x);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len - 1, x), KBV_EVERSION);
	kbv_snapshot_free(x);
	kbv_buf_release(&b);

	/* Sources that a writer must refuse and a reader must reject. */
	struct kbv_snapsource bad[][2] = {
		{ { "kb", "postgres", "{}" }, { "kb", "path", "{}" } },       /* duplicate */
		{ { "a/b", "postgres", "{}" }, { "x", "path", "{}" } },       /* not one component */
		{ { "kb", "postgres", "[1]" }, { "x", "path", "{}" } },       /* not an object */
		{ { "kb", "postgres", "{\"a\":" }, { "x", "path", "{}" } }, /* not JSON */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct kbv_snapshot y = a;
		y.sources = bad[i];
		assert_int_equal(kbv_snapshot_encode_body(&y, &b), KBV_EINVAL);
		kbv_buf_release(&b);
	}
}

/* Body version 1 (no source table) is still read: it is what format v1 golden
 * repositories hold. */
static void test_body_v1(void **s)
{
	(void)s;
	struct kbv_snapshot a = { .time = 1764072000, .host = "old", .nentries = 1, .total_size = 5,
				  .table_ref = { 0, { 9 } }, .table_size = 80 };
	struct kbv_buf b = KBV_BUF_INIT;
	assert_int_equal(kbv_snapshot_encode_body(&a, &b), 0);
	/* A v4 body (written now) and v3 and v2 bodies have the same layout (they differ in
	 * their entry tables), and one with no sources is a v1 body plus the u16 source count 0. */
	assert_int_equal(b.data[0], 4);
	b.data[0] = 3;
	struct kbv_snapshot *v3 = calloc(1, sizeof *v3);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len, v3), 0);
	assert_int_equal(v3->body_version, 3);
	kbv_snapshot_free(v3);
	b.data[0] = 2;
	struct kbv_snapshot *v2 = calloc(1, sizeof *v2);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len, v2), 0);
	assert_int_equal(v2->body_version, 2);
	kbv_snapshot_free(v2);
	b.data[0] = 1;
	struct kbv_snapshot *x = calloc(1, sizeof *x);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len - 2, x), 0);
	assert_int_equal(x->body_version, 1);
	assert_int_equal(x->nsources, 0);
	assert_string_equal(x->host, "old");
	kbv_snapshot_free(x);
	/* ...and a v1 body with trailing bytes is malformed. */
	x = calloc(1, sizeof *x);
	assert_int_equal(kbv_snapshot_decode_body(b.data, b.len, x), KBV_ECORRUPT);
	kbv_snapshot_free(x);
	kbv_buf_release(&b);
}

static void test_find(void **s)
{
	(void)s;
	struct kbv_snapshot a = { .id = { 0xab, 0xcd, 0x01 } }, b = { .id = { 0xab, 0xcd, 0x02 } };
	struct kbv_snapshot *list[] = { &a, &b }, *got;
	assert_int_equal(kbv_snapshot_find(list, 2, "latest", &got), 0);
	assert_ptr_equal(got, &b);
	assert_int_equal(kbv_snapshot_find(list, 2, "abcd01", &got), 0);
	assert_ptr_equal(got, &a);
	assert_int_equal(kbv_snapshot_find(list, 2, "abcd", &got), KBV_EINVAL); /* ambiguous */
	assert_int_equal(kbv_snapshot_find(list, 2, "abc", &got), KBV_EINVAL);  /* too short */
	assert_int_equal(kbv_snapshot_find(list, 2, "ffff", &got), KBV_ENOTFOUND);
	assert_int_equal(kbv_snapshot_find(list, 0, "latest", &got), KBV_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names), cmocka_unit_test(test_entries_roundtrip),
		cmocka_unit_test(test_entries_owners),
		cmocka_unit_test(test_body_roundtrip), cmocka_unit_test(test_body_v1), cmocka_unit_test(test_find),
	};
	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
