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

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(&keys, sizeof keys);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encrypted), cmocka_unit_test(test_plain),  cmocka_unit_test(test_id_domains),
		cmocka_unit_test(test_other_key), cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
