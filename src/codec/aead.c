/* XChaCha20-Poly1305-IETF through OpenSSL, or libsodium (aead.h). */
#include "codec/aead.h"
#include "kbv/error.h"

#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct kbv_aead {
	EVP_CIPHER_CTX *enc, *dec; /* NULL: libsodium */
};

struct kbv_aead *kbv_aead_new(int use_openssl)
{
	struct kbv_aead *a = calloc(1, sizeof *a);
	if (!a || !use_openssl)
		return a;
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	/* the cipher chosen once; each message sets key and nonce */
	if (!a->enc || !a->dec || EVP_EncryptInit_ex(a->enc, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1 ||
	    EVP_DecryptInit_ex(a->dec, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1) {
		EVP_CIPHER_CTX_free(a->enc);
		EVP_CIPHER_CTX_free(a->dec);
		a->enc = a->dec = NULL;
	}
	return a;
}

void kbv_aead_free(struct kbv_aead *a)
{
	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->enc); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(a->dec);
	free(a);
}

int kbv_aead_openssl(const struct kbv_aead *a) { return a->enc != NULL; }

/* XChaCha20's subkey and the 12-byte IETF nonce of ChaCha20-Poly1305. */
static void xnonce(const uint8_t nonce[KBV_AEAD_NONCE], const uint8_t key[32], uint8_t sub[32], uint8_t iv[12])
{
	crypto_core_hchacha20(sub, nonce, key, NULL);
	memset(iv, 0, 4);
	memcpy(iv + 4, nonce + 16, 8);
}

int kbv_aead_seal(struct kbv_aead *a, uint8_t *c, const uint8_t *m, size_t n, const uint8_t *ad, size_t adlen,
		  const uint8_t nonce[KBV_AEAD_NONCE], const uint8_t key[32])
{
	if (n > INT_MAX - 64 || adlen > INT_MAX)
		return kbv_error(KBV_EINVAL, "a message of %zu bytes is too large to seal at once", n);
	if (!a->enc) {
		crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, n, ad, adlen, NULL, nonce, key);
		return 0;
	}
	uint8_t sub[32], iv[12];
	int adl = 0, l = 0, f = 0, ok;
	xnonce(nonce, key, sub, iv);
	ok = EVP_EncryptInit_ex(a->enc, NULL, NULL, sub, iv) == 1 &&
	     (!adlen || EVP_EncryptUpdate(a->enc, NULL, &adl, ad, (int)adlen) == 1) &&
	     (!n || EVP_EncryptUpdate(a->enc, c, &l, m, (int)n) == 1) && EVP_EncryptFinal_ex(a->enc, c + l, &f) == 1 &&
	     (size_t)l + (size_t)f == n && EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, KBV_AEAD_TAG, c + n) == 1;
	sodium_memzero(sub, sizeof sub);
	return ok ? 0 : kbv_error(KBV_ENOMEM, "ChaCha20-Poly1305 (OpenSSL) failed to seal %zu bytes", n);
}

int kbv_aead_open(struct kbv_aead *a, uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		  const uint8_t nonce[KBV_AEAD_NONCE], const uint8_t key[32])
{
	if (clen < KBV_AEAD_TAG || clen > INT_MAX - 64 || adlen > INT_MAX)
		return -1;
	if (!a->dec)
		return crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen, ad, adlen, nonce, key) == 0 ? 0
														       : -1;
	size_t n = clen - KBV_AEAD_TAG;
	uint8_t sub[32], iv[12], tag[KBV_AEAD_TAG];
	int adl = 0, l = 0, f = 0, ok;
	memcpy(tag, c + n, KBV_AEAD_TAG); /* the ctrl takes a non-const pointer */
	xnonce(nonce, key, sub, iv);
	ok = EVP_DecryptInit_ex(a->dec, NULL, NULL, sub, iv) == 1 &&
	     (!adlen || EVP_DecryptUpdate(a->dec, NULL, &adl, ad, (int)adlen) == 1) &&
	     (!n || EVP_DecryptUpdate(a->dec, m, &l, c, (int)n) == 1) &&
	     EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, KBV_AEAD_TAG, tag) == 1 &&
	     EVP_DecryptFinal_ex(a->dec, n ? m + l : tag, &f) == 1 && (size_t)l + (size_t)f == n; /* (writes none) */
	sodium_memzero(sub, sizeof sub);
	return ok ? 0 : -1;
}
