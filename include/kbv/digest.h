/* Whole-stream digests (format/snapshot.md "Entry table"): what a snapshot records of each
 * stream so that a restore proves, independently of the chunk ids, that it gave back the
 * bytes that were snapshotted. Pure (buffers in, digest out) but for kbv_digest_fd(). */
#ifndef KBV_DIGEST_H
#define KBV_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

enum kbv_digest_alg {
	KBV_DIGEST_NONE = 0,        /* nothing recorded, nothing checked */
	KBV_DIGEST_BLAKE2B_256 = 1, /* unkeyed BLAKE2b-256 (entry formats 1 to 3) */
	KBV_DIGEST_XXH3_128 = 2,    /* XXH3-128, seed 0, canonical (big-endian) bytes (entry format 3) */
};
/* What new streams are hashed with. */
#define KBV_DIGEST_DEFAULT KBV_DIGEST_XXH3_128

/* A recorded digest: `len(alg)` bytes of v are the digest, the rest are zero. */
struct kbv_digest {
	uint8_t alg;
	uint8_t v[32];
};

/* A digest being computed. */
struct kbv_digester {
	uint8_t alg;
	crypto_generichash_blake2b_state b2;
	void *xxh; /* XXH3_state_t, allocated by init */
};

/* Is alg one this build knows? */
int kbv_digest_known(int alg);
/* Bytes of the digest (32, 16; 0 for NONE or an unknown alg). */
size_t kbv_digest_len(int alg);
/* "blake2b-256", "xxh3-128"; "none"; "unknown". */
const char *kbv_digest_name(int alg);
/* The key `snapshots --json` names it by: "blake2b_256", "xxh3_128"; NULL for NONE. */
const char *kbv_digest_json_key(int alg);
/* Same algorithm and same bytes (constant time in the bytes). */
int kbv_digest_equal(const struct kbv_digest *a, const struct kbv_digest *b);
/* Lower-case hex of the digest's len(alg) bytes into out (at least 65 bytes). */
void kbv_digest_hex(const struct kbv_digest *d, char *out);

/* Start a digest of `alg` (KBV_DIGEST_NONE: updates do nothing). KBV_ENOMEM, or
 * KBV_ECORRUPT for an unknown alg. */
int kbv_digester_init(struct kbv_digester *h, int alg);
void kbv_digester_update(struct kbv_digester *h, const void *p, size_t n);
/* The digest of everything updated; releases h. */
void kbv_digester_final(struct kbv_digester *h, struct kbv_digest *out);
/* Release h without a result (error paths); a released or zeroed h is fine. */
void kbv_digester_release(struct kbv_digester *h);

/* The digest of what is left to read from fd, and its byte count (size may be NULL).
 * KBV_ESOURCE naming `what` when a read fails. Leaves fd at its end. */
int kbv_digest_fd(int fd, int alg, const char *what, struct kbv_digest *out, uint64_t *size);

#endif
