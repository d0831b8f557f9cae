/* Whole-stream digests: BLAKE2b-256 (libsodium) and XXH3-128 (libxxhash). */
#include "kbv/digest.h"
#include "kbv/error.h"
#include "codec/xxh.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int kbv_digest_known(int alg)
{
	return alg == KBV_DIGEST_BLAKE2B_256 || alg == KBV_DIGEST_XXH3_128;
}

size_t kbv_digest_len(int alg)
{
	switch (alg) {
	case KBV_DIGEST_BLAKE2B_256:
		return 32;
	case KBV_DIGEST_XXH3_128:
		return 16;
	default:
		return 0;
	}
}

const char *kbv_digest_name(int alg)
{
	switch (alg) {
	case KBV_DIGEST_NONE:
		return "none";
	case KBV_DIGEST_BLAKE2B_256:
		return "blake2b-256";
	case KBV_DIGEST_XXH3_128:
		return "xxh3-128";
	default:
		return "unknown";
	}
}

const char *kbv_digest_json_key(int alg)
{
	switch (alg) {
	case KBV_DIGEST_BLAKE2B_256:
		return "blake2b_256";
	case KBV_DIGEST_XXH3_128:
		return "xxh3_128";
	default:
		return NULL;
	}
}

int kbv_digest_equal(const struct kbv_digest *a, const struct kbv_digest *b)
{
	return a->alg == b->alg && sodium_memcmp(a->v, b->v, sizeof a->v) == 0;
}

void kbv_digest_hex(const struct kbv_digest *d, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t n = kbv_digest_len(d->alg);
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d->v[i] >> 4];
		out[2 * i + 1] = hx[d->v[i] & 15];
	}
	out[2 * n] = 0;
}

int kbv_digester_init(struct kbv_digester *h, int alg)
{
	memset(h, 0, sizeof *h);
	h->alg = (uint8_t)alg;
	switch (alg) {
	case KBV_DIGEST_NONE:
		return 0;
	case KBV_DIGEST_BLAKE2B_256:
		crypto_generichash_blake2b_init(&h->b2, NULL, 0, 32);
		return 0;
	case KBV_DIGEST_XXH3_128:
		if (!(h->xxh = XXH3_createState()))
			return kbv_error(KBV_ENOMEM, "out of memory");
		XXH3_128bits_reset(h->xxh);
		return 0;
	default:
		return kbv_error(KBV_ECORRUPT, "unknown stream digest algorithm %d", alg);
	}
}

void kbv_digester_update(struct kbv_digester *h, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (h->alg == KBV_DIGEST_BLAKE2B_256)
		crypto_generichash_blake2b_update(&h->b2, p, n);
	else if (h->alg == KBV_DIGEST_XXH3_128)
		XXH3_128bits_update(h->xxh, p, n);
}

void kbv_digester_final(struct kbv_digester *h, struct kbv_digest *out)
{
	memset(out, 0, sizeof *out);
	out->alg = h->alg;
	if (h->alg == KBV_DIGEST_BLAKE2B_256) {
		crypto_generichash_blake2b_final(&h->b2, out->v, 32);
	} else if (h->alg == KBV_DIGEST_XXH3_128) {
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->xxh));
		memcpy(out->v, c.digest, sizeof c.digest);
	}
	kbv_digester_release(h);
}

void kbv_digester_release(struct kbv_digester *h)
{
	if (h->xxh)
		XXH3_freeState(h->xxh);
	h->xxh = NULL;
	h->alg = KBV_DIGEST_NONE;
}

int kbv_digest_fd(int fd, int alg, const char *what, struct kbv_digest *out, uint64_t *size)
{
	struct kbv_digester h;
	static __thread uint8_t buf[1 << 16];
	uint64_t n = 0;
	int rc = kbv_digester_init(&h, alg);
	if (rc < 0)
		return rc;
	for (;;) {
		ssize_t got = read(fd, buf, sizeof buf);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			kbv_digester_release(&h);
			return kbv_error(KBV_ESOURCE, "read '%s': %s", what, strerror(errno));
		}
		if (got == 0)
			break;
		kbv_digester_update(&h, buf, (size_t)got);
		n += (uint64_t)got;
	}
	kbv_digester_final(&h, out);
	if (size)
		*size = n;
	return 0;
}
