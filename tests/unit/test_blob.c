/* Blob envelopes: round trip, compression choice, and that no altered, moved or retyped
 * blob ever decodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "kbv/blob.h"
#include "kbv/error.h"

#include "codec/aead.h"
#include "codec/blake3_batch.h"
#include "blake3.h" /* the library kbvault links (Debian's copy of the reference C) */

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

/* Under either id hash: types never share an id, and the id key changes every id. */
static void test_id_domains(void **s)
{
	(void)s;
	for (int h = KBV_ID_BLAKE2B; h <= KBV_ID_BLAKE3; h++) {
		struct kbv_keys k = keys;
		kbv_keys_set_id_hash(&k, h);
		uint8_t a[32], b[32], c[32];
		kbv_blob_id(&k, KBV_BLOB_DATA, "x", 1, a);
		kbv_blob_id(&k, KBV_BLOB_TREE, "x", 1, b);
		kbv_blob_id(&k, KBV_BLOB_SNAPSHOT, "x", 1, c);
		assert_memory_not_equal(a, b, 32);
		assert_memory_not_equal(a, c, 32);
		assert_memory_not_equal(b, c, 32);
		struct kbv_keys other = keys;
		other.id[0] ^= 1;
		kbv_keys_set_id_hash(&other, h);
		kbv_blob_id(&other, KBV_BLOB_DATA, "x", 1, b);
		assert_memory_not_equal(a, b, 32);
	}
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

/* BLAKE3 as linked, against the first 32 bytes of the published keyed_hash vectors
 * (BLAKE3-team/BLAKE3, test_vectors/test_vectors.json): input byte i is i % 251, the key is
 * the 32 ASCII bytes "whats the Elvish word for friend". The lengths cross the 1 KiB chunk
 * and the 4/8/16-chunk SIMD batches. */
static void test_blake3_vectors(void **s)
{
	(void)s;
	/* mode 'k': keyed_hash; mode 'd': derive_key (what makes the per-type id keys), context
	 * "BLAKE3 2019-12-27 16:29:52 test vectors context" */
	static const struct {
		char mode;
		size_t len;
		const char *hex;
	} v[] = {
		{ 'k', 0, "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26" },
		{ 'k', 1, "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b" },
		{ 'k', 1023, "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e" },
		{ 'k', 1024, "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4" },
		{ 'k', 1025, "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69" },
		{ 'k', 2048, "879cf1fa2ea0e79126cb1063617a05b6ad9d0b696d0d757cf053439f60a99dd1" },
		{ 'k', 4096, "befc660aea2f1718884cd8deb9902811d332f4fc4a38cf7c7300d597a081bfc0" },
		{ 'k', 8192, "dc9637c8845a770b4cbf76b8daec0eebf7dc2eac11498517f08d44c8fc00d58a" },
		{ 'k', 8193, "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5" },
		{ 'k', 16384, "9e9fc4eb7cf081ea7c47d1807790ed211bfec56aa25bb7037784c13c4b707b0d" },
		{ 'k', 31744, "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419" },
		{ 'k', 102400, "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7" },
		{ 'd', 0, "2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d" },
		{ 'd', 1024, "7356cd7720d5b66b6d0697eb3177d9f8d73a4a5c5e968896eb6a689684302706" },
	};
	static uint8_t in[102400];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(i % 251);
	for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
		uint8_t out[32], want[32];
		blake3_hasher h;
		if (v[k].mode == 'k')
			blake3_hasher_init_keyed(&h, (const uint8_t *)"whats the Elvish word for friend");
		else
			blake3_hasher_init_derive_key(&h, "BLAKE3 2019-12-27 16:29:52 test vectors context");
		blake3_hasher_update(&h, in, v[k].len);
		blake3_hasher_finalize(&h, out, 32);
		assert_int_equal(sodium_hex2bin(want, 32, v[k].hex, 64, NULL, NULL, NULL), 0);
		if (memcmp(out, want, 32))
			fail_msg("BLAKE3 %s of %zu bytes differs from the published vector",
				 v[k].mode == 'k' ? "keyed_hash" : "derive_key", v[k].len);
	}
}

/* Many ids at once (codec/blake3_batch.c) are each exactly blake3_hasher's: the published
 * keyed vectors in one batch, then random bytes at unaligned offsets with lengths at and
 * around every chunk and tree boundary up to past the batch's 64-chunk limit, in batches of
 * 1 to all; and kbv_blob_ids gives kbv_blob_id's ids for both id hashes. */
static void test_blake3_batch(void **s)
{
	(void)s;
	static const struct {
		uint32_t len;
		const char *hex;
	} v[] = {
		{ 0, "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26" },
		{ 1023, "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e" },
		{ 1024, "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4" },
		{ 1025, "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69" },
		{ 2048, "879cf1fa2ea0e79126cb1063617a05b6ad9d0b696d0d757cf053439f60a99dd1" },
		{ 8193, "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5" },
		{ 31744, "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419" },
		{ 102400, "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7" },
	};
	enum { NV = sizeof v / sizeof v[0] };
	static uint8_t in[102400];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(i % 251);
	uint32_t offs[NV], lens[NV];
	uint8_t got[NV][32], want[32];
	for (size_t k = 0; k < NV; k++) {
		offs[k] = 0;
		lens[k] = v[k].len;
	}
	kbv_blake3_keyed_batch((const uint8_t *)"whats the Elvish word for friend", in, offs, lens, NV, got);
	for (size_t k = 0; k < NV; k++) {
		assert_int_equal(sodium_hex2bin(want, 32, v[k].hex, 64, NULL, NULL, NULL), 0);
		if (memcmp(got[k], want, 32))
			fail_msg("batched keyed BLAKE3 of %u bytes differs from the published vector", v[k].len);
	}

	enum { N = 700 };
	static const uint32_t edges[] = { 0,     1,     63,    64,    65,    1023,  1024,  1025,  2047,  2048,
					  2049,  3071,  3072,  3073,  4095,  4096,  4097,  7167,  8191,  8192,
					  8193,  9216,  16383, 16384, 16385, 32767, 32768, 32769, 33792, 65535,
					  65536, 65537, 66560, 70000, 131072 };
	enum { NE = sizeof edges / sizeof edges[0] };
	size_t room = 4u << 20;
	uint8_t *base = malloc(room), key[32];
	uint32_t *o = malloc(N * sizeof *o), *l = malloc(N * sizeof *l);
	uint8_t(*ids)[32] = malloc(N * 32);
	randombytes_buf(base, room);
	randombytes_buf(key, sizeof key);
	for (size_t i = 0; i < N; i++) {
		l[i] = i < NE ? edges[i] : i < 2 * NE ? edges[i - NE] + (uint32_t)(i % 3) : randombytes_uniform(40000);
		o[i] = randombytes_uniform((uint32_t)(room - l[i]));
	}
	static const size_t batch[] = { 1, 15, 16, 17, N };
	for (size_t b = 0; b < sizeof batch / sizeof *batch; b++) {
		memset(ids, 0, N * 32);
		for (size_t i = 0; i < N; i += batch[b])
			kbv_blake3_keyed_batch(key, base, o + i, l + i, N - i < batch[b] ? N - i : batch[b], ids + i);
		for (size_t i = 0; i < N; i++) {
			blake3_hasher h;
			blake3_hasher_init_keyed(&h, key);
			blake3_hasher_update(&h, base + o[i], l[i]);
			blake3_hasher_finalize(&h, want, 32);
			if (memcmp(ids[i], want, 32))
				fail_msg("batched keyed BLAKE3 of %u bytes (message %zu, batches of %zu) differs", l[i], i,
					 batch[b]);
		}
	}
	struct kbv_keys k3 = keys;
	for (int hash = 0; hash < 2; hash++) {
		kbv_keys_set_id_hash(&k3, hash ? KBV_ID_BLAKE3 : KBV_ID_BLAKE2B);
		kbv_blob_ids(&k3, KBV_BLOB_DATA, base, o, l, 100, ids);
		for (size_t i = 0; i < 100; i++) {
			kbv_blob_id(&k3, KBV_BLOB_DATA, base + o[i], l[i], want);
			assert_memory_equal(ids[i], want, 32);
		}
	}
	free(base);
	free(o);
	free(l);
	free(ids);
}

/* A BLAKE3 id is what format/blob.md says, computed by an independent implementation:
 * Debian's b3sum (Rust) derives the type's key from the id key, then hashes the chunk keyed.
 * Also: the two id hashes never agree, and switching back gives the BLAKE2b ids again. */
static void test_blake3_ids(void **s)
{
	(void)s;
	struct kbv_keys k3 = keys;
	kbv_keys_set_id_hash(&k3, KBV_ID_BLAKE3);
	uint8_t a[32], b[32], c[32];
	kbv_blob_id(&k3, KBV_BLOB_DATA, "x", 1, a);
	kbv_blob_id(&keys, KBV_BLOB_DATA, "x", 1, c);
	assert_memory_not_equal(a, c, 32);
	kbv_keys_set_id_hash(&k3, KBV_ID_BLAKE2B);
	kbv_blob_id(&k3, KBV_BLOB_DATA, "x", 1, b);
	assert_memory_equal(b, c, 32); /* back to BLAKE2b: the old ids */

	if (access("/usr/bin/b3sum", X_OK) != 0) {
		fail_msg("b3sum (Debian package b3sum) is needed for this test: run scripts/deps.sh");
		return;
	}
	kbv_keys_set_id_hash(&k3, KBV_ID_BLAKE3);
	char dir[] = "/tmp/kbv-b3-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char pk[64], pc[64], cmd[512];
	snprintf(pk, sizeof pk, "%s/idkey", dir);
	snprintf(pc, sizeof pc, "%s/chunk", dir);
	FILE *f = fopen(pk, "wb");
	assert_non_null(f);
	fwrite(keys.id, 1, 32, f);
	fclose(f);
	static uint8_t chunk[20000];
	randombytes_buf(chunk, sizeof chunk);
	static const struct {
		int type;
		const char *name;
	} t[] = { { KBV_BLOB_DATA, "kbvault-data" }, { KBV_BLOB_TREE, "kbvault-tree" },
		  { KBV_BLOB_SNAPSHOT, "kbvault-snap" }, { KBV_BLOB_WAL, "kbvault-wal0" } };
	static const size_t lens[] = { 0, 1, 1024, 8191, 20000 };
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
			f = fopen(pc, "wb");
			assert_non_null(f);
			fwrite(chunk, 1, lens[j], f);
			fclose(f);
			snprintf(cmd, sizeof cmd,
				 "b3sum --raw --derive-key 'kbvault 2026-12-01 blob id %s' %s | b3sum --keyed --no-names %s",
				 t[i].name, pk, pc);
			FILE *p = popen(cmd, "r");
			assert_non_null(p);
			char hex[80] = "";
			assert_non_null(fgets(hex, sizeof hex, p));
			assert_int_equal(pclose(p), 0);
			uint8_t want[32], got[32];
			assert_int_equal(sodium_hex2bin(want, 32, hex, 64, NULL, NULL, NULL), 0);
			kbv_blob_id(&k3, t[i].type, chunk, lens[j], got);
			if (memcmp(got, want, 32))
				fail_msg("BLAKE3 id of type %s, %zu bytes, differs from b3sum's", t[i].name, lens[j]);
		}
	unlink(pk);
	unlink(pc);
	rmdir(dir);
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

/* The envelope cipher (codec/aead.h): draft-irtf-cfrg-xchacha-03's XChaCha20-Poly1305
 * vector (Appendix A.1), then both implementations against libsodium's own functions on
 * messages of many lengths, each opening what the other sealed, and a changed byte of the
 * ciphertext, tag, associated data or nonce refused. */
static void unhex(uint8_t *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void test_aead(void **s)
{
	(void)s;
	static const char *pt = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
				"future, sunscreen would be it.";
	static const char *want_hex =
		"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
		"ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
		"21f9664c97637da9768812f615c68b13b52e"
		"c0875924c1c7987947deafd8780acf49"; /* the tag */
	uint8_t ad[12], key[32], nonce[24], want[114 + 16], got[114 + 16], back[114];
	unhex(ad, "50515253c0c1c2c3c4c5c6c7");
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	for (int i = 0; i < 24; i++)
		nonce[i] = (uint8_t)(0x40 + i);
	unhex(want, want_hex);
	assert_int_equal(strlen(pt), 114);
	struct kbv_aead *ossl = kbv_aead_new(1), *sod = kbv_aead_new(0);
	assert_true(kbv_aead_openssl(ossl)); /* Debian's OpenSSL has ChaCha20-Poly1305 */
	assert_false(kbv_aead_openssl(sod));
	struct kbv_aead *both[2] = { ossl, sod };
	for (int k = 0; k < 2; k++) {
		assert_int_equal(kbv_aead_seal(both[k], got, (const uint8_t *)pt, 114, ad, sizeof ad, nonce, key), 0);
		assert_memory_equal(got, want, sizeof want);
		assert_int_equal(kbv_aead_open(both[k], back, want, sizeof want, ad, sizeof ad, nonce, key), 0);
		assert_memory_equal(back, pt, 114);
	}

	static const size_t lens[] = { 0, 1, 15, 16, 63, 64, 65, 255, 256, 4095, 65536, 262144 + 37 };
	uint8_t *m = malloc(262144 + 64), *c = malloc(262144 + 64), *c2 = malloc(262144 + 64),
		*o = malloc(262144 + 64);
	for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
		size_t n = lens[t];
		uint8_t ad2[37];
		randombytes_buf(m, n);
		randombytes_buf(ad2, sizeof ad2);
		randombytes_buf(key, sizeof key);
		randombytes_buf(nonce, sizeof nonce);
		crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, n, ad2, sizeof ad2, NULL, nonce, key);
		for (int k = 0; k < 2; k++) {
			assert_int_equal(kbv_aead_seal(both[k], c2, m, n, ad2, sizeof ad2, nonce, key), 0);
			assert_memory_equal(c2, c, n + 16);
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), 0);
			if (n)
				assert_memory_equal(o, m, n);
			/* each changed input refused: a byte of the ciphertext (or the tag), of the
			 * associated data, of the nonce; and a message shorter than a tag */
			c[n / 2] ^= 1;
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), -1);
			c[n / 2] ^= 1;
			c[n + 15] ^= 0x80;
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), -1);
			c[n + 15] ^= 0x80;
			ad2[36] ^= 1;
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), -1);
			ad2[36] ^= 1;
			nonce[3] ^= 1;
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), -1);
			nonce[3] ^= 1;
			assert_int_equal(kbv_aead_open(both[k], o, c, 15, ad2, sizeof ad2, nonce, key), -1);
			assert_int_equal(kbv_aead_open(both[k], o, c, n + 16, ad2, sizeof ad2, nonce, key), 0);
		}
	}
	free(m);
	free(c);
	free(c2);
	free(o);
	kbv_aead_free(ossl);
	kbv_aead_free(sod);
	kbv_aead_free(NULL);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(&keys, sizeof keys);
	kbv_keys_set_id_hash(&keys, KBV_ID_BLAKE2B);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encrypted), cmocka_unit_test(test_plain),  cmocka_unit_test(test_id_domains),
		cmocka_unit_test(test_other_key), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bundle_encrypted), cmocka_unit_test(test_bundle_plain),
		cmocka_unit_test(test_blake3_vectors), cmocka_unit_test(test_blake3_ids),
		cmocka_unit_test(test_blake3_batch), cmocka_unit_test(test_aead),
	};
	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
