/* FastCDC (Xia et al. 2016/2020): Gear hash, cut-point skipping, normalized chunking with
 * level 2, two bytes per step. format/chunker.md is the definition. */
#include "kbv/chunker.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <sodium.h>

static uint64_t spread_mask(unsigned bits)
{
	uint64_t m = 0;
	for (unsigned j = 0; j < bits; j++)
		m |= 1ULL << (16 + (j * 46) / (bits - 1));
	return m;
}

static int log2_exact(size_t v)
{
	int b = 0;
	while (((size_t)1 << b) < v)
		b++;
	return ((size_t)1 << b) == v ? b : -1;
}

int kbv_cdc_check_params(size_t min, size_t avg, size_t max)
{
	int b = log2_exact(avg);
	if (b < 10 || b > 22)
		return kbv_error(KBV_EINVAL, "chunk average %zu must be a power of two from 1 KiB to 4 MiB", avg);
	if (min < 64 || min > avg)
		return kbv_error(KBV_EINVAL, "chunk minimum %zu must be from 64 bytes to the average %zu", min, avg);
	if (max < avg || max > 16u << 20)
		return kbv_error(KBV_EINVAL, "chunk maximum %zu must be from the average %zu to 16 MiB", max, avg);
	return 0;
}

int kbv_cdc_init(struct kbv_cdc *c, const uint8_t gear_key[32], size_t min, size_t avg, size_t max)
{
	int rc = kbv_cdc_check_params(min, avg, max);
	if (rc < 0)
		return rc;
	uint8_t stream[256 * 8];
	static const uint8_t nonce[crypto_stream_xchacha20_NONCEBYTES];
	crypto_stream_xchacha20(stream, sizeof stream, nonce, gear_key);
	for (int i = 0; i < 256; i++) {
		c->gear[i] = kbv_get64(stream + 8 * i);
		c->gear_ls[i] = c->gear[i] << 1;
	}
	unsigned b = (unsigned)log2_exact(avg);
	c->mask_s = spread_mask(b + 2);
	c->mask_l = spread_mask(b - 2);
	c->mask_s_ls = c->mask_s << 1;
	c->mask_l_ls = c->mask_l << 1;
	c->min = min;
	c->avg = avg;
	c->max = max;
	return 0;
}

size_t kbv_cdc_cut_reference(const struct kbv_cdc *c, const uint8_t *p, size_t n)
{
	if (n <= c->min)
		return n;
	size_t end = n < c->max ? n : c->max;
	size_t normal = c->avg < end ? c->avg : end;
	uint64_t fp = 0;
	for (size_t i = c->min; i < end; i++) {
		fp = (fp << 1) + c->gear[p[i]];
		if (!(fp & (i < normal ? c->mask_s : c->mask_l)))
			return i + 1;
	}
	return end;
}

/* Two bytes of the scan, at i and i + 1: the cut after either (i + 1 or i + 2), or 0. */
static inline size_t step2(const struct kbv_cdc *c, const uint8_t *p, size_t i, uint64_t *fp, uint64_t mask,
			   uint64_t mask_ls)
{
	*fp = (*fp << 2) + c->gear_ls[p[i]];
	if (!(*fp & mask_ls))
		return i + 1;
	*fp += c->gear[p[i + 1]];
	if (!(*fp & mask))
		return i + 2;
	return 0;
}

/* One region of the scan with a fixed mask pair. Returns the cut length, or 0 with *ip and
 * *fpp advanced to `lim` when no cut was found. */
static inline size_t scan(const struct kbv_cdc *c, const uint8_t *p, size_t *ip, size_t lim,
			  uint64_t *fpp, uint64_t mask, uint64_t mask_ls)
{
	size_t i = *ip, cut;
	uint64_t fp = *fpp;
	/* four bytes per round: the bound is checked once for them */
	for (; i + 4 <= lim; i += 4)
		if ((cut = step2(c, p, i, &fp, mask, mask_ls)) || (cut = step2(c, p, i + 2, &fp, mask, mask_ls)))
			return cut;
	if (i + 2 <= lim) {
		if ((cut = step2(c, p, i, &fp, mask, mask_ls)))
			return cut;
		i += 2;
	}
	if (i < lim) {
		fp = (fp << 1) + c->gear[p[i]];
		if (!(fp & mask))
			return i + 1;
		i++;
	}
	*ip = i;
	*fpp = fp;
	return 0;
}

size_t kbv_cdc_cut(const struct kbv_cdc *c, const uint8_t *p, size_t n)
{
	if (n <= c->min)
		return n;
	size_t end = n < c->max ? n : c->max;
	size_t normal = c->avg < end ? c->avg : end;
	size_t i = c->min, cut;
	uint64_t fp = 0;
	if ((cut = scan(c, p, &i, normal, &fp, c->mask_s, c->mask_s_ls)))
		return cut;
	if ((cut = scan(c, p, &i, end, &fp, c->mask_l, c->mask_l_ls)))
		return cut;
	return end;
}
