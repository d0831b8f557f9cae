/* Keyed BLAKE3-256 of many messages at once (codec-internal; blake3_batch.c says how). */
#ifndef KBV_CODEC_BLAKE3_BATCH_H
#define KBV_CODEC_BLAKE3_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = keyed BLAKE3 (32 bytes) of base[offs[i] .. offs[i] + lens[i]) with `key`, for
 * i < n: exactly blake3_hasher_init_keyed / update / finalize of each. */
void kbv_blake3_keyed_batch(const uint8_t key[32], const uint8_t *base, const uint32_t *offs, const uint32_t *lens,
			    size_t n, uint8_t (*out)[32]);

#endif
