/* Blob ids, payload codec and encryption envelope (format/blob.md). Pure: no I/O. */
#ifndef KBV_BLOB_H
#define KBV_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/buf.h"

#define KBV_ID_BYTES 32
#define KBV_SEAL_OVERHEAD 40 /* nonce + tag of an encrypted envelope */

enum kbv_blob_type {
	KBV_BLOB_DATA = 1,
	KBV_BLOB_TREE = 2,
	KBV_BLOB_SNAPSHOT = 3,
	KBV_BLOB_TRAILER = 4,
	KBV_BLOB_BUNDLE = 5, /* envelope type of a bundle of DATA blobs */
	KBV_BLOB_RECORD = 6, /* a record body (format/records.md) */
	KBV_BLOB_INDEX = 7,  /* an index object (format/index.md) */
	KBV_BLOB_PLAN = 8,   /* a deletion plan of gc (format/repository.md) */
	KBV_BLOB_WAL = 9,    /* the body of a WAL object (format/wal.md) */
};

#define KBV_BUNDLE_MAX_RAW (16u << 20) /* largest decoded bundle a reader accepts */
/* What writers put in one bundle: consecutive new chunks up to this many bytes of content
 * (format/blob.md; the size was chosen by measurement, docs/benchmarks.md). */
#define KBV_BUNDLE_TARGET (256u << 10)
#define KBV_BUNDLE_ENTRY 36          /* id + u32 length in the member table */

/* The keyed hash that makes blob ids (format/blob.md), chosen at init and recorded in the
 * config (format/repository.md). 0 in a zeroed kbv_keys means BLAKE2b. */
enum kbv_id_hash {
	KBV_ID_BLAKE2B = 1, /* keyed BLAKE2b-256 with a personalization per type */
	KBV_ID_BLAKE3 = 2,  /* keyed BLAKE3-256 with a key derived per type */
};
/* Blob types are 1..KBV_BLOB_TYPES-1. A new type needs this raised and a personalization
 * of its own in codec/blob.c (format/blob.md): a type past the table would share the
 * SNAPSHOT id key. */
#define KBV_BLOB_TYPES 10

/* Master key material (format/keyfile.md): the first 96 bytes are what a key file wraps.
 * Lives in sodium_malloc() memory. */
struct kbv_keys {
	uint8_t enc[32];
	uint8_t id[32];
	uint8_t gear[32];
	int id_hash;                          /* enum kbv_id_hash; set by kbv_keys_set_id_hash() */
	uint8_t id3[KBV_BLOB_TYPES][32];      /* BLAKE3: the id key of each blob type */
};

/* Choose the id hash of `keys` (from the repository's config); for BLAKE3 this derives the
 * per-type keys from keys->id, so call it after the key material is in place. */
void kbv_keys_set_id_hash(struct kbv_keys *keys, int id_hash);
/* The name of an id hash for users ("blake2b", "blake3"). */
const char *kbv_id_hash_name(int id_hash);

/* Per-thread coding state: zstd contexts and scratch space. */
struct kbv_codec;

/* A codec for one thread. `keys` is borrowed and must outlive the codec. Returns NULL when
 * out of memory. */
struct kbv_codec *kbv_codec_new(const struct kbv_keys *keys, int encrypted, int zstd_level);
void kbv_codec_free(struct kbv_codec *c);

/* The keyed id of a blob of `type` (1..KBV_BLOB_TYPES-1) with the repository's id hash. */
void kbv_blob_id(const struct kbv_keys *keys, int type, const void *p, size_t n, uint8_t id[KBV_ID_BYTES]);
/* The ids of n blobs of one type at base + offs[i], lens[i] bytes each: what kbv_blob_id
 * gives for each, with BLAKE3 several at a time (codec/blake3_batch.c). */
void kbv_blob_ids(const struct kbv_keys *keys, int type, const uint8_t *base, const uint32_t *offs,
		  const uint32_t *lens, size_t n, uint8_t (*ids)[KBV_ID_BYTES]);

/* Largest envelope encode() can produce for n raw bytes. */
size_t kbv_blob_bound(size_t n);

/* Compress (when it helps) and seal `n` bytes as a blob of `type` with the given id,
 * replacing the contents of `out` with the envelope. Returns 0 or a KBV_E* code. */
int kbv_blob_encode(struct kbv_codec *c, int type, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n,
		    struct kbv_buf *out);

/* raw_len for kbv_blob_decode() when the caller does not know it (pack trailers): the
 * payload's own length (raw) or the zstd frame's content size (at most 256 MiB) is used. */
#define KBV_RAW_UNKNOWN SIZE_MAX

/* Verify and decode an envelope into `out` (replacing its contents). `raw_len` is the
 * expected decoded length, or KBV_RAW_UNKNOWN. No byte is returned unless authentication (encrypted) or the id
 * (unencrypted DATA/TREE/SNAPSHOT) verified. Returns 0 or KBV_ECORRUPT (a failed tag is
 * corruption or tampering, not a password problem); the message says which check failed. */
int kbv_blob_decode(struct kbv_codec *c, int type, const uint8_t id[KBV_ID_BYTES], const void *stored, size_t n,
		    size_t raw_len, struct kbv_buf *out);

/* Seal n DATA blobs (ids[i], lens[i] bytes at ptrs[i]) as one bundle envelope into `out`
 * (format/blob.md "Bundles"). Returns 0 or a KBV_E* code. */
int kbv_bundle_encode(struct kbv_codec *c, uint32_t n, const uint8_t (*ids)[KBV_ID_BYTES], const uint32_t *lens,
		      const uint8_t *const *ptrs, struct kbv_buf *out);

/* Offset of member i's content inside a decoded bundle whose first i members have
 * `before` bytes in total: 4 + 36n + before. */
static inline uint32_t kbv_bundle_offset(uint32_t n, uint64_t before)
{
	return (uint32_t)(4 + (uint64_t)KBV_BUNDLE_ENTRY * n + before);
}

/* Verify and decode a bundle envelope into `plain` (its whole decoded content). */
int kbv_bundle_open(struct kbv_codec *c, const void *stored, size_t n, struct kbv_buf *plain);

/* Find member `id` in a decoded bundle at content offset raw_off with raw_len bytes, as
 * the pack trailer or index claims. *p points into plain. KBV_ECORRUPT when the table does
 * not say so (a tampered index, or a damaged bundle). In an unencrypted repository the
 * member's id is recomputed from its bytes. */
int kbv_bundle_member(struct kbv_codec *c, const struct kbv_buf *plain, const uint8_t id[KBV_ID_BYTES],
		      uint32_t raw_off, uint32_t raw_len, const uint8_t **p);

#endif
