/* FastCDC content-defined chunker (format/chunker.md). Pure: buffer in, cut length out. */
#ifndef KBV_CHUNKER_H
#define KBV_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

struct kbv_cdc {
	uint64_t gear[256];
	uint64_t gear_ls[256];
	uint64_t mask_s, mask_l, mask_s_ls, mask_l_ls;
	size_t min, avg, max;
};

/* Check chunk-size parameters against format/chunker.md. Returns 0 or KBV_EINVAL with a
 * message naming the bad value. */
int kbv_cdc_check_params(size_t min, size_t avg, size_t max);

/* Build the keyed Gear table and masks. Returns 0 or KBV_EINVAL. */
int kbv_cdc_init(struct kbv_cdc *c, const uint8_t gear_key[32], size_t min, size_t avg, size_t max);

/* Length of the chunk starting at p. `n` is the number of bytes available; pass at least
 * c->max unless the stream ends within n bytes. Returns a value in [1, n] for n > 0. */
size_t kbv_cdc_cut(const struct kbv_cdc *c, const uint8_t *p, size_t n);

/* The same decision one byte per step, exactly as specified; for tests. */
size_t kbv_cdc_cut_reference(const struct kbv_cdc *c, const uint8_t *p, size_t n);

#endif
