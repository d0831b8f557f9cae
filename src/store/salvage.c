/* Recovering the blobs of a pack whose trailer is damaged (include/kbv/salvage.h).
 *
 * Envelopes carry no length: the trailer is what delimits them. Without it, the walk finds
 * each envelope's end from its own content and keeps it only when it verifies as a whole:
 *   - the payload's codec byte, then for zstd the frame's own length
 *     (ZSTD_findFrameCompressedSize), for a raw bundle the length its member table adds up
 *     to, for a raw TREE node every multiple of 32 bytes up to 64 KiB;
 *   - encrypted: the payload prefix is read by running XChaCha20 over the ciphertext (no
 *     byte of it is trusted), then each candidate length must pass the AEAD tag with the
 *     type and id in the associated data (a bundle's id is all zero; a TREE's is the keyed
 *     hash of its decoded content);
 *   - unencrypted: a bundle's members must hash to the ids in its table; a TREE node
 *     cannot be proven at all (its id is the hash of whatever bytes are taken for it), so
 *     the walk of an unencrypted pack stops at its first TREE node.
 * The first envelope that cannot be proven ends the walk: everything after it is lost and
 * said so. */
#include "store/salvage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "kbv/blob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/repo_impl.h"

#define WINDOW ((size_t)1 << 20) /* larger than any envelope a writer makes */
#define TREE_MAX (2048 * 32)

static const uint8_t zero_id[KBV_ID_BYTES];

/* The payload bytes at `env` (n bytes available), decrypted without verification when
 * encrypted, into `out`. */
static int payload_prefix(struct kbv_repo *r, const uint8_t *env, size_t n, struct kbv_buf *out)
{
	int rc = 0;
	out->len = 0;
	if (!r->encrypted) {
		TRY(kbv_buf_add(out, env, n));
		return 0;
	}
	if (n < KBV_SEAL_OVERHEAD + 1)
		return KBV_ECORRUPT;
	TRY(kbv_buf_reserve(out, n - 24));
	/* The AEAD's message keystream starts at block 1 (block 0 keys Poly1305). */
	crypto_stream_xchacha20_xor_ic(out->data, env + 24, n - 24, env, 1, r->keys->enc);
	out->len = n - 24;
out:
	return rc;
}

static int add_entry(struct kbv_buf *entries, int type, const uint8_t id[KBV_ID_BYTES], uint64_t off, size_t stored,
		     uint32_t raw_off, uint32_t raw_len, const uint8_t *env)
{
	struct kbv_pack_entry e = { .type = (uint8_t)type, .offset = (uint32_t)off, .stored_len = (uint32_t)stored,
				    .raw_off = raw_off, .raw_len = raw_len, .xxh = XXH3_64bits(env, stored) };
	memcpy(e.id, id, KBV_ID_BYTES);
	return kbv_buf_add(entries, &e, sizeof e);
}

/* A decoded bundle whose table and members are consistent (and, unencrypted, whose
 * members hash to their ids): its members as entries. 0, or KBV_ECORRUPT. */
static int take_bundle(struct kbv_codec *c, const struct kbv_buf *plain, uint64_t off, size_t stored,
		       const uint8_t *env, struct kbv_buf *entries, size_t *n)
{
	int rc = 0;
	if (plain->len < 4)
		return KBV_ECORRUPT;
	uint32_t m = kbv_get32(plain->data);
	uint64_t before = 0;
	if (!m || 4 + (uint64_t)KBV_BUNDLE_ENTRY * m > plain->len)
		return KBV_ECORRUPT;
	size_t mark = entries->len;
	for (uint32_t i = 0; i < m; i++) {
		const uint8_t *t = plain->data + 4 + (size_t)KBV_BUNDLE_ENTRY * i;
		uint32_t len = kbv_get32(t + KBV_ID_BYTES), roff = kbv_bundle_offset(m, before);
		const uint8_t *p;
		if ((uint64_t)roff + len > plain->len || kbv_bundle_member(c, plain, t, roff, len, &p) < 0) {
			entries->len = mark;
			return KBV_ECORRUPT;
		}
		TRY(add_entry(entries, KBV_BLOB_DATA, t, off, stored, roff, len, env));
		before += len;
	}
	*n += m;
out:
	return rc;
}

/* One envelope at `off` (`avail` bytes up to the limit at env): its stored length in
 * *stored and its blobs appended to entries, or KBV_ECORRUPT when nothing verifies. */
static int one_envelope(struct kbv_repo *r, struct kbv_codec *c, const uint8_t *env, size_t avail, uint64_t off,
			struct kbv_buf *pl, struct kbv_buf *plain, struct kbv_buf *entries, size_t *n, size_t *stored)
{
	size_t over = r->encrypted ? KBV_SEAL_OVERHEAD : 0;
	size_t window = avail < WINDOW ? avail : WINDOW;
	if (payload_prefix(r, env, window, pl) < 0 || pl->len < 1)
		return KBV_ECORRUPT;
	const uint8_t *p = pl->data;
	size_t plen = pl->len - (r->encrypted ? 16 : 0); /* payload bytes the window can hold */
	if (r->encrypted && pl->len < 16)
		return KBV_ECORRUPT;
	if (p[0] == 1) {
		size_t f = ZSTD_findFrameCompressedSize(p + 1, plen - 1);
		if (ZSTD_isError(f))
			return KBV_ECORRUPT;
		size_t s = 1 + f + over;
		if (s > avail)
			return KBV_ECORRUPT;
		/* A bundle (zero id), else a TREE node whose id is its content's hash. */
		if (kbv_blob_decode(c, KBV_BLOB_BUNDLE, zero_id, env, s, KBV_RAW_UNKNOWN, plain) == 0 &&
		    take_bundle(c, plain, off, s, env, entries, n) == 0) {
			*stored = s;
			return 0;
		}
		/* A TREE node: only the AEAD tag proves one (its id is its content's hash, so
		 * unencrypted any bytes would pass for one). */
		unsigned long long raw = ZSTD_getFrameContentSize(p + 1, f);
		if (!r->encrypted || raw == 0 || raw > TREE_MAX || raw % 32)
			return KBV_ECORRUPT;
		struct kbv_buf tree = KBV_BUF_INIT;
		uint8_t id[KBV_ID_BYTES];
		int rc = kbv_buf_reserve(&tree, (size_t)raw);
		size_t d = rc == 0 ? ZSTD_decompress(tree.data, (size_t)raw, p + 1, f) : 0;
		rc = rc == 0 && !ZSTD_isError(d) && d == raw ? 0 : KBV_ECORRUPT;
		if (rc == 0) {
			kbv_blob_id(r->keys, KBV_BLOB_TREE, tree.data, (size_t)raw, id);
			rc = kbv_blob_decode(c, KBV_BLOB_TREE, id, env, s, (size_t)raw, plain);
		}
		kbv_buf_release(&tree);
		if (rc < 0)
			return KBV_ECORRUPT;
		*stored = s;
		if ((rc = add_entry(entries, KBV_BLOB_TREE, id, off, s, 0, (uint32_t)raw, env)) < 0)
			return rc;
		++*n;
		return 0;
	}
	if (p[0] != 0)
		return KBV_ECORRUPT;
	/* Raw: a bundle's table says how long it is. */
	if (plen >= 5) {
		uint32_t m = kbv_get32(p + 1);
		uint64_t total = 4 + (uint64_t)KBV_BUNDLE_ENTRY * m;
		if (m && total + 1 <= plen) {
			for (uint32_t i = 0; i < m && total <= KBV_BUNDLE_MAX_RAW; i++)
				total += kbv_get32(p + 1 + 4 + (size_t)KBV_BUNDLE_ENTRY * i + KBV_ID_BYTES);
			size_t s = 1 + total + over;
			if (total <= KBV_BUNDLE_MAX_RAW && s <= avail &&
			    kbv_blob_decode(c, KBV_BLOB_BUNDLE, zero_id, env, s, KBV_RAW_UNKNOWN, plain) == 0 &&
			    take_bundle(c, plain, off, s, env, entries, n) == 0) {
				*stored = s;
				return 0;
			}
		}
	}
	/* A raw TREE node: only the AEAD tag can prove where it ends. */
	if (!r->encrypted)
		return KBV_ECORRUPT;
	for (size_t k = 1; k * 32 <= TREE_MAX && 1 + k * 32 <= plen; k++) {
		uint8_t id[KBV_ID_BYTES];
		size_t s = 1 + k * 32 + over;
		kbv_blob_id(r->keys, KBV_BLOB_TREE, p + 1, k * 32, id);
		if (kbv_blob_decode(c, KBV_BLOB_TREE, id, env, s, k * 32, plain) == 0) {
			*stored = s;
			int rc = add_entry(entries, KBV_BLOB_TREE, id, off, s, 0, (uint32_t)(k * 32), env);
			if (rc == 0)
				++*n;
			return rc;
		}
	}
	return KBV_ECORRUPT;
}

int kbv_pack_salvage(struct kbv_repo *r, struct kbv_codec *c, const uint8_t packid[KBV_PACKID_BYTES],
		     struct kbv_buf *entries, size_t *n, uint64_t *lost_from, uint64_t *size)
{
	char path[PATH_MAX], hex[2 * KBV_PACKID_BYTES + 1];
	struct kbv_buf file = KBV_BUF_INIT, pl = KBV_BUF_INIT, plain = KBV_BUF_INIT;
	int rc = 0;
	entries->len = 0;
	*n = 0;
	*lost_from = 0;
	kbv_hex(packid, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, path, sizeof path);
	TRY(kbv_be_get(r->be, KBV_OBJ_PACK, hex, &file));
	*size = file.len;
	if (file.len < KBV_PACK_HEADER || memcmp(file.data, "KBVPACK\0", 8) != 0 ||
	    memcmp(file.data + 16, packid, KBV_PACKID_BYTES) != 0) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s': header damaged too; nothing can be recovered", path);
		goto out;
	}
	/* The blobs end where the footer says the trailer begins, when it can still say so. */
	uint64_t limit = file.len;
	if (file.len >= KBV_PACK_HEADER + KBV_PACK_FOOTER &&
	    !memcmp(file.data + file.len - KBV_PACK_FOOTER + 24, "KBVPEND\0", 8)) {
		uint64_t toff = kbv_get64(file.data + file.len - KBV_PACK_FOOTER);
		if (toff >= KBV_PACK_HEADER && toff <= file.len - KBV_PACK_FOOTER)
			limit = toff;
	}
	uint64_t off = KBV_PACK_HEADER;
	while (off < limit) {
		size_t stored = 0;
		rc = one_envelope(r, c, file.data + off, (size_t)(limit - off), off, &pl, &plain, entries, n, &stored);
		if (rc == KBV_ENOMEM)
			goto out;
		if (rc < 0) {
			*lost_from = off;
			rc = 0;
			break;
		}
		off += stored;
	}
out:
	kbv_buf_release(&file);
	kbv_buf_release(&pl);
	kbv_buf_release(&plain);
	return rc;
}
