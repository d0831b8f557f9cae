/* The envelope's cipher, XChaCha20-Poly1305-IETF (format/blob.md), on the hot path.
 *
 * libsodium's crypto_aead_xchacha20poly1305_ietf_* is the construction's definition here;
 * this computes the same bytes through OpenSSL's ChaCha20-Poly1305, which has AVX-512 code
 * (2.8x libsodium's speed on this project's machines, docs/benchmarks.md): HChaCha20 of the
 * key and the nonce's first 16 bytes (libsodium's crypto_core_hchacha20) is the subkey, four
 * zero bytes and the nonce's last 8 the IETF nonce. Where OpenSSL cannot (a FIPS-only
 * provider has no ChaCha20), libsodium does the work. tests/unit/test_blob.c holds the
 * draft-irtf-cfrg-xchacha-03 vector and checks both against each other. */
#ifndef KBV_AEAD_H
#define KBV_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define KBV_AEAD_NONCE 24
#define KBV_AEAD_TAG 16

struct kbv_aead;

/* One per thread. use_openssl 0: libsodium only (tests). NULL when out of memory. */
struct kbv_aead *kbv_aead_new(int use_openssl);
/* NULL is a no-op. */
void kbv_aead_free(struct kbv_aead *a);
/* 1 when OpenSSL does the work. */
int kbv_aead_openssl(const struct kbv_aead *a);

/* c receives n + KBV_AEAD_TAG bytes: the ciphertext, then the tag. m and c must not
 * overlap. Returns 0, or KBV_EINVAL (n too large for one call) / KBV_ENOMEM. */
int kbv_aead_seal(struct kbv_aead *a, uint8_t *c, const uint8_t *m, size_t n, const uint8_t *ad, size_t adlen,
		  const uint8_t nonce[KBV_AEAD_NONCE], const uint8_t key[32]);
/* m receives clen - KBV_AEAD_TAG bytes when the tag matches (0); -1 when it does not, or clen
 * is shorter than a tag (m's contents are then undefined). m and c must not overlap. */
int kbv_aead_open(struct kbv_aead *a, uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		  const uint8_t nonce[KBV_AEAD_NONCE], const uint8_t key[32]);

#endif
