/* Blob envelopes: round trip, compression choice, and that no altered, moved or retyped
 * blob ever decodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "kbv/blob.h"
#include "kbv/error.h"

static struct kbv_keys keys;

static void roundtrip(int encrypted)
{
	struct kbv_codec *c = kbv_codec_new(&keys, encrypted, 3);
	struct kbv_buf env = KBV_BUF_INIT, out = KBV_BUF_INIT;
	uint8_t text[20000], rnd[20000], id[32], id2[32];
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = "abcdefgh "[i % 9];
	randombytes_buf(rnd, sizeof rnd);

	kbv_blob_id(&keys, KBV_BLOB_DATA, text, sizeof text, id);
	assert_int_equal(kbv_blob_encode(c, KBV_BLOB_DATA, id, text, sizeof text, &env), 0);
	assert_true(env.len < 1000); /* compressed */
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_DATA, id, env.data, env.len, sizeof text, &out), 0);
	assert_int_equal(out.len, sizeof text);
	assert_memory_equal(out.data, text, sizeof text);

	kbv_blob_id(&keys, KBV_BLOB_DATA, rnd, sizeof rnd, id2);
	assert_int_equal(kbv_blob_encode(c, KBV_BLOB_DATA, id2, rnd, sizeof rnd, &env), 0);
	/* Incompressible: stored raw, one codec byte (+ envelope when encrypted). */
	assert_int_equal(env.len, sizeof rnd + 1 + (encrypted ? KBV_SEAL_OVERHEAD : 0));
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_DATA, id2, env.data, env.len, sizeof rnd, &out), 0);
	assert_memory_equal(out.data, rnd, sizeof rnd);

	/* Every single flipped bit anywhere is refused. */
	for (size_t i = 0; i < env.len; i += 97) {
		env.data[i] ^= 0x10;
		assert_int_equal(kbv_blob_decode(c, KBV_BLOB_DATA, id2, env.data, env.len, sizeof rnd, &out),
				 KBV_ECORRUPT);
		env.data[i] ^= 0x10;
	}
	/* Moved to another id, or presented as another type. */
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_DATA, id, env.data, env.len, sizeof rnd, &out), KBV_ECORRUPT);
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_TREE, id2, env.data, env.len, sizeof rnd, &out), KBV_ECORRUPT);
	/* Truncated. */
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_DATA, id2, env.data, env.len - 1, sizeof rnd, &out),
			 KBV_ECORRUPT);
	kbv_buf_release(&env);
	kbv_buf_release(&out);
	kbv_codec_free(c);
}

static void test_encrypted(void **s) { (void)s; roundtrip(1); }
static void test_plain(void **s) { (void)s; roundtrip(0); }

static void test_id_domains(void **s)
{
	(void)s;
	uint8_t a[32], b[32], c[32];
	kbv_blob_id(&keys, KBV_BLOB_DATA, "x", 1, a);
	kbv_blob_id(&keys, KBV_BLOB_TREE, "x", 1, b);
	kbv_blob_id(&keys, KBV_BLOB_SNAPSHOT, "x", 1, c);
	assert_memory_not_equal(a, b, 32);
	assert_memory_not_equal(a, c, 32);
	assert_memory_not_equal(b, c, 32);
	struct kbv_keys other = keys;
	other.id[0] ^= 1;
	kbv_blob_id(&other, KBV_BLOB_DATA, "x", 1, b);
	assert_memory_not_equal(a, b, 32);
}

static void test_other_key(void **s)
{
	(void)s;
	struct kbv_keys other = keys;
	other.enc[5] ^= 1;
	struct kbv_codec *c = kbv_codec_new(&keys, 1, 3), *o = kbv_codec_new(&other, 1, 3);
	struct kbv_buf env = KBV_BUF_INIT, out = KBV_BUF_INIT;
	uint8_t id[32];
	kbv_blob_id(&keys, KBV_BLOB_DATA, "hello", 5, id);
	assert_int_equal(kbv_blob_encode(c, KBV_BLOB_DATA, id, "hello", 5, &env), 0);
	assert_int_equal(kbv_blob_decode(o, KBV_BLOB_DATA, id, env.data, env.len, 5, &out), KBV_ECORRUPT);
	kbv_buf_release(&env);
	kbv_buf_release(&out);
	kbv_codec_free(c);
	kbv_codec_free(o);
}

static void test_empty(void **s)
{
	(void)s;
	struct kbv_codec *c = kbv_codec_new(&keys, 1, 3);
	struct kbv_buf env = KBV_BUF_INIT, out = KBV_BUF_INIT;
	uint8_t id[32];
	kbv_blob_id(&keys, KBV_BLOB_TREE, "", 0, id);
	assert_int_equal(kbv_blob_encode(c, KBV_BLOB_TREE, id, "", 0, &env), 0);
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_TREE, id, env.data, env.len, 0, &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(kbv_blob_decode(c, KBV_BLOB_TREE, id, env.data, env.len, KBV_RAW_UNKNOWN, &out), 0);
	kbv_buf_release(&env);
	kbv_buf_release(&out);
	kbv_codec_free(c);
}

static void bundle(int encrypted)
{
	struct kbv_codec *c = kbv_codec_new(&keys, encrypted, 3);
	struct kbv_buf env = KBV_BUF_INIT, plain = KBV_BUF_INIT;
	uint8_t data[3][5000], ids[3][32];
	uint32_t lens[3] = { 5000, 1, 4096 };
	const uint8_t *ptrs[3];
	for (int i = 0; i < 3; i++) {
		memset(data[i], 'a' + i, sizeof data[i]);
		kbv_blob_id(&keys, KBV_BLOB_DATA, data[i], lens[i], ids[i]);
		ptrs[i] = data[i];
	}
	assert_int_equal(kbv_bundle_encode(c, 3, (const uint8_t(*)[32])ids, lens, ptrs, &env), 0);
	assert_true(env.len < 500); /* compressed together */
	assert_int_equal(kbv_bundle_open(c, env.data, env.len, &plain), 0);
	uint64_t before = 0;
	for (int i = 0; i < 3; i++) {
		const uint8_t *p;
		uint32_t off = kbv_bundle_offset(3, before);
		assert_int_equal(kbv_bundle_member(c, &plain, ids[i], off, lens[i], &p), 0);
		assert_memory_equal(p, data[i], lens[i]);
		/* What a tampered index might claim: another member's place, or a wrong length. */
		assert_int_equal(kbv_bundle_member(c, &plain, ids[(i + 1) % 3], off, lens[i], &p), KBV_ECORRUPT);
		assert_int_equal(kbv_bundle_member(c, &plain, ids[i], off + 1, lens[i], &p), KBV_ECORRUPT);
		assert_int_equal(kbv_bundle_member(c, &plain, ids[i], off, lens[i] + 1, &p), KBV_ECORRUPT);
		before += lens[i];
	}
	/* Damage anywhere fails the whole envelope. */
	env.data[env.len / 2] ^= 1;
	if (encrypted)
		assert_int_equal(kbv_bundle_open(c, env.data, env.len, &plain), KBV_ECORRUPT);
	else if (kbv_bundle_open(c, env.data, env.len, &plain) == 0) {
		const uint8_t *p;
		int bad = 0;
		before = 0;
		for (int i = 0; i < 3; i++) {
			bad |= kbv_bundle_member(c, &plain, ids[i], kbv_bundle_offset(3, before), lens[i], &p) != 0;
			before += lens[i];
		}
		assert_true(bad);
	}
	kbv_buf_release(&env);
	kbv_buf_release(&plain);
	kbv_codec_free(c);
}

static void test_bundle_encrypted(void **s) { (void)s; bundle(1); }
static void test_bundle_plain(void **s) { (void)s; bundle(0); }

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(&keys, sizeof keys);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encrypted), cmocka_unit_test(test_plain),  cmocka_unit_test(test_id_domains),
		cmocka_unit_test(test_other_key), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bundle_encrypted), cmocka_unit_test(test_bundle_plain),
	};
	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
