#include "kbv/blob.h"
#include "kbv/error.h"

#include "blake3.h"
#include "codec/aead.h"
#include "codec/blake3_batch.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

struct kbv_codec {
	const struct kbv_keys *keys;
	int encrypted;
	int level;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct kbv_aead *aead;
	struct kbv_buf scratch;
	struct kbv_buf plain; /* a bundle's content before encoding */
};

struct kbv_codec *kbv_codec_new(const struct kbv_keys *keys, int encrypted, int zstd_level)
{
	struct kbv_codec *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->keys = keys;
	c->encrypted = encrypted;
	c->level = zstd_level;
	c->cctx = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	c->aead = kbv_aead_new(1);
	if (!c->cctx || !c->dctx || !c->aead) {
		kbv_codec_free(c);
		return NULL;
	}
	return c;
}

void kbv_codec_free(struct kbv_codec *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	kbv_aead_free(c->aead);
	kbv_buf_release(&c->scratch);
	kbv_buf_release(&c->plain);
	free(c);
}

static const char *personal(int type)
{
	switch (type) {
	case KBV_BLOB_DATA: return "kbvault-data\0\0\0";
	case KBV_BLOB_TREE: return "kbvault-tree\0\0\0";
	case KBV_BLOB_RECORD: return "kbvault-rcrd\0\0\0";
	case KBV_BLOB_INDEX: return "kbvault-indx\0\0\0";
	case KBV_BLOB_PLAN: return "kbvault-plan\0\0\0";
	case KBV_BLOB_WAL: return "kbvault-wal0\0\0\0";
	default: return "kbvault-snap\0\0\0";
	}
}

_Static_assert(KBV_BLOB_WAL < KBV_BLOB_TYPES, "every blob type has a BLAKE3 id key (KBV_BLOB_TYPES)");

void kbv_keys_set_id_hash(struct kbv_keys *keys, int id_hash)
{
	keys->id_hash = id_hash;
	if (id_hash != KBV_ID_BLAKE3) {
		sodium_memzero(keys->id3, sizeof keys->id3);
		return;
	}
	/* One key per type, so that blobs of different types never share an id: BLAKE3's
	 * derive_key mode with the context "kbvault 2026-12-01 blob id <personalization>"
	 * and the id key as key material (format/blob.md). */
	for (int t = 0; t < KBV_BLOB_TYPES; t++) {
		char ctx[64];
		snprintf(ctx, sizeof ctx, "kbvault 2026-12-01 blob id %s", personal(t));
		blake3_hasher h;
		blake3_hasher_init_derive_key(&h, ctx);
		blake3_hasher_update(&h, keys->id, sizeof keys->id);
		blake3_hasher_finalize(&h, keys->id3[t], sizeof keys->id3[t]);
		sodium_memzero(&h, sizeof h);
	}
}

const char *kbv_id_hash_name(int id_hash)
{
	return id_hash == KBV_ID_BLAKE3 ? "blake3" : "blake2b";
}

void kbv_blob_id(const struct kbv_keys *keys, int type, const void *p, size_t n, uint8_t id[KBV_ID_BYTES])
{
	if (keys->id_hash == KBV_ID_BLAKE3) {
		/* A type outside the table cannot be asked for (callers pass enum values);
		 * it would fall back to the snapshot key, as personal() does. */
		int t = type > 0 && type < KBV_BLOB_TYPES ? type : KBV_BLOB_SNAPSHOT;
		blake3_hasher h;
		blake3_hasher_init_keyed(&h, keys->id3[t]);
		blake3_hasher_update(&h, p, n);
		blake3_hasher_finalize(&h, id, KBV_ID_BYTES);
		sodium_memzero(&h, sizeof h); /* it holds the type's id key */
		return;
	}
	static const uint8_t salt[16];
	crypto_generichash_blake2b_salt_personal(id, KBV_ID_BYTES, p, n, keys->id, sizeof keys->id, salt,
						 (const uint8_t *)personal(type));
}

void kbv_blob_ids(const struct kbv_keys *keys, int type, const uint8_t *base, const uint32_t *offs,
		  const uint32_t *lens, size_t n, uint8_t (*ids)[KBV_ID_BYTES])
{
	if (keys->id_hash == KBV_ID_BLAKE3) {
		int t = type > 0 && type < KBV_BLOB_TYPES ? type : KBV_BLOB_SNAPSHOT;
		kbv_blake3_keyed_batch(keys->id3[t], base, offs, lens, n, ids);
		return;
	}
	for (size_t i = 0; i < n; i++)
		kbv_blob_id(keys, type, base + offs[i], lens[i], ids[i]);
}

size_t kbv_blob_bound(size_t n)
{
	return 1 + ZSTD_compressBound(n) + KBV_SEAL_OVERHEAD;
}

static void make_ad(uint8_t ad[37], int type, const uint8_t id[KBV_ID_BYTES])
{
	memcpy(ad, "kbv1", 4);
	ad[4] = (uint8_t)type;
	memcpy(ad + 5, id, KBV_ID_BYTES);
}

int kbv_blob_encode(struct kbv_codec *c, int type, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n,
		    struct kbv_buf *out)
{
	/* Build the payload (codec byte + body) in scratch, or directly in out if unencrypted. */
	struct kbv_buf *pl = c->encrypted ? &c->scratch : out;
	pl->len = 0;
	int rc = kbv_buf_reserve(pl, 1 + ZSTD_compressBound(n));
	if (rc < 0)
		return rc;
	size_t z = ZSTD_compressCCtx(c->cctx, pl->data + 1, pl->cap - 1, p, n, c->level);
	if (!ZSTD_isError(z) && z < n) {
		pl->data[0] = 1;
		pl->len = 1 + z;
	} else {
		pl->data[0] = 0;
		memcpy(pl->data + 1, p, n);
		pl->len = 1 + n;
	}
	if (!c->encrypted)
		return 0;

	out->len = 0;
	if ((rc = kbv_buf_reserve(out, pl->len + KBV_SEAL_OVERHEAD)) < 0)
		return rc;
	uint8_t ad[37];
	make_ad(ad, type, id);
	uint8_t *nonce = out->data;
	randombytes_buf(nonce, KBV_AEAD_NONCE);
	if ((rc = kbv_aead_seal(c->aead, out->data + KBV_AEAD_NONCE, pl->data, pl->len, ad, sizeof ad, nonce,
				c->keys->enc)) < 0)
		return rc;
	out->len = KBV_AEAD_NONCE + pl->len + KBV_AEAD_TAG;
	return 0;
}

int kbv_blob_decode(struct kbv_codec *c, int type, const uint8_t id[KBV_ID_BYTES], const void *stored, size_t n,
		    size_t raw_len, struct kbv_buf *out)
{
	const uint8_t *pl = stored;
	size_t pl_len = n;
	int rc;
	if (c->encrypted) {
		if (n < KBV_SEAL_OVERHEAD + 1)
			return kbv_error(KBV_ECORRUPT, "envelope of %zu bytes is too short", n);
		c->scratch.len = 0;
		if ((rc = kbv_buf_reserve(&c->scratch, n)) < 0)
			return rc;
		uint8_t ad[37];
		make_ad(ad, type, id);
		if (kbv_aead_open(c->aead, c->scratch.data, pl + KBV_AEAD_NONCE, n - KBV_AEAD_NONCE, ad, sizeof ad, pl,
				  c->keys->enc) != 0)
			return kbv_error(KBV_ECORRUPT, "authentication failed (bytes changed, or blob moved)");
		pl = c->scratch.data;
		pl_len = n - KBV_SEAL_OVERHEAD;
	}
	if (pl_len < 1)
		return kbv_error(KBV_ECORRUPT, "empty payload");
	if (raw_len == KBV_RAW_UNKNOWN) {
		if (pl[0] == 0) {
			raw_len = pl_len - 1;
		} else {
			unsigned long long fs = ZSTD_getFrameContentSize(pl + 1, pl_len - 1);
			if (fs > (256u << 20))
				return kbv_error(KBV_ECORRUPT, "zstd frame has no usable content size");
			raw_len = (size_t)fs;
		}
	}
	out->len = 0;
	if ((rc = kbv_buf_reserve(out, raw_len ? raw_len : 1)) < 0)
		return rc;
	if (pl[0] == 0) {
		if (pl_len - 1 != raw_len)
			return kbv_error(KBV_ECORRUPT, "raw payload is %zu bytes, expected %zu", pl_len - 1, raw_len);
		memcpy(out->data, pl + 1, raw_len);
	} else if (pl[0] == 1) {
		unsigned long long fsize = ZSTD_getFrameContentSize(pl + 1, pl_len - 1);
		if (fsize != raw_len)
			return kbv_error(KBV_ECORRUPT, "zstd frame declares %llu bytes, expected %zu", fsize, raw_len);
		size_t d = ZSTD_decompressDCtx(c->dctx, out->data, raw_len, pl + 1, pl_len - 1);
		if (ZSTD_isError(d))
			return kbv_error(KBV_ECORRUPT, "zstd: %s", ZSTD_getErrorName(d));
		if (d != raw_len)
			return kbv_error(KBV_ECORRUPT, "decompressed %zu bytes, expected %zu", d, raw_len);
	} else {
		return kbv_error(KBV_ECORRUPT, "unknown codec %u", pl[0]);
	}
	out->len = raw_len;
	if (!c->encrypted && type != KBV_BLOB_TRAILER && type != KBV_BLOB_BUNDLE) {
		uint8_t got[KBV_ID_BYTES];
		kbv_blob_id(c->keys, type, out->data, raw_len, got);
		if (sodium_memcmp(got, id, KBV_ID_BYTES) != 0) {
			out->len = 0;
			return kbv_error(KBV_ECORRUPT, "content does not hash to its id");
		}
	}
	return 0;
}

static const uint8_t zero_id[KBV_ID_BYTES];

int kbv_bundle_encode(struct kbv_codec *c, uint32_t n, const uint8_t (*ids)[KBV_ID_BYTES], const uint32_t *lens,
		      const uint8_t *const *ptrs, struct kbv_buf *out)
{
	struct kbv_buf *b = &c->plain;
	int rc = 0;
	b->len = 0;
	TRY(kbv_buf_add_u32(b, n));
	for (uint32_t i = 0; i < n; i++) {
		TRY(kbv_buf_add(b, ids[i], KBV_ID_BYTES));
		TRY(kbv_buf_add_u32(b, lens[i]));
	}
	for (uint32_t i = 0; i < n; i++)
		TRY(kbv_buf_add(b, ptrs[i], lens[i]));
	if (b->len > KBV_BUNDLE_MAX_RAW)
		return kbv_error(KBV_EINVAL, "bundle of %zu bytes exceeds %u", b->len, KBV_BUNDLE_MAX_RAW);
	rc = kbv_blob_encode(c, KBV_BLOB_BUNDLE, zero_id, b->data, b->len, out);
out:
	return rc;
}

int kbv_bundle_open(struct kbv_codec *c, const void *stored, size_t n, struct kbv_buf *plain)
{
	int rc = kbv_blob_decode(c, KBV_BLOB_BUNDLE, zero_id, stored, n, KBV_RAW_UNKNOWN, plain);
	if (rc == 0 && plain->len > KBV_BUNDLE_MAX_RAW)
		rc = kbv_error(KBV_ECORRUPT, "bundle of %zu bytes exceeds %u", plain->len, KBV_BUNDLE_MAX_RAW);
	return rc;
}

int kbv_bundle_member(struct kbv_codec *c, const struct kbv_buf *plain, const uint8_t id[KBV_ID_BYTES],
		      uint32_t raw_off, uint32_t raw_len, const uint8_t **p)
{
	if (plain->len < 4)
		return kbv_error(KBV_ECORRUPT, "bundle of %zu bytes has no member table", plain->len);
	uint32_t n = kbv_get32(plain->data);
	uint64_t table = 4 + (uint64_t)KBV_BUNDLE_ENTRY * n;
	if (table > plain->len)
		return kbv_error(KBV_ECORRUPT, "bundle member table (%u members) exceeds the bundle", n);
	uint64_t off = table;
	int found = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = plain->data + 4 + (size_t)KBV_BUNDLE_ENTRY * i;
		uint32_t len = kbv_get32(e + KBV_ID_BYTES);
		if (off == raw_off && len == raw_len && memcmp(e, id, KBV_ID_BYTES) == 0)
			found = 1;
		off += len;
	}
	if (off != plain->len)
		return kbv_error(KBV_ECORRUPT, "bundle members add up to %llu bytes, the bundle has %zu",
				 (unsigned long long)off, plain->len);
	if (!found)
		return kbv_error(KBV_ECORRUPT, "the bundle does not hold this blob at offset %u (%u bytes): "
					       "index and pack disagree", raw_off, raw_len);
	*p = plain->data + raw_off;
	if (!c->encrypted) {
		uint8_t got[KBV_ID_BYTES];
		kbv_blob_id(c->keys, KBV_BLOB_DATA, *p, raw_len, got);
		if (sodium_memcmp(got, id, KBV_ID_BYTES) != 0)
			return kbv_error(KBV_ECORRUPT, "content does not hash to its id");
	}
	return 0;
}
