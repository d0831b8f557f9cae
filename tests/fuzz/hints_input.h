/* What the cut-hints fuzz target (fuzz_hints.c) and its seeds (seeds.c) share: a stream
 * with repeated runs, a small chunker so it has a few hundred chunks, the hint key, the
 * stream's name, and the writer's slots (engine/writer.c) in small. */
#ifndef KBV_FUZZ_HINTS_INPUT_H
#define KBV_FUZZ_HINTS_INPUT_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hints.h"
#include "kbv/chunker.h"

#define HINTS_N (128u << 10)
#define HINTS_SLOT (16u << 10)
#define HINTS_NAME "db/dump"

static const uint8_t hints_key[32] = { 7, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 10, 11, 12 };

/* Pseudo-random bytes, a run of them repeated, and a stretch of zeros. */
static inline void hints_stream(uint8_t *p)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (size_t i = 0; i < HINTS_N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	for (size_t off = 20000; off + 1700 <= 70000; off += 1700)
		memcpy(p + off, p + 20000, 1700);
	memset(p + 90000, 0, 12000);
}

static inline int hints_cdc(struct kbv_cdc *c)
{
	static const uint8_t gear_key[32];
	return kbv_cdc_init(c, gear_key, 256, 1024, 4096);
}

/* The hints file of HINTS_NAME in dir (format/repository.md, "Cut hints"). */
static inline void hints_file(const char *dir, char *path, size_t cap)
{
	uint8_t nh[32];
	char hex[65];
	crypto_generichash_blake2b(nh, sizeof nh, (const uint8_t *)HINTS_NAME, strlen(HINTS_NAME), hints_key,
				   sizeof hints_key);
	sodium_bin2hex(hex, sizeof hex, nh, sizeof nh);
	snprintf(path, cap, "%s/%s", dir, hex);
}

/* Cut p[0..n) as the writer does, slot by slot, with h (the plain loop: no helpers); the
 * lengths to lens, their number returned. */
static inline size_t hints_cut_all(struct kbv_hints *h, const struct kbv_cdc *c, const uint8_t *p, size_t n,
				   uint32_t *lens, size_t maxn)
{
	size_t cap = HINTS_SLOT + c->max, tail = 0, pos = 0, fed = 0, k = 0;
	while (fed < n || tail) {
		size_t take = cap - tail < n - fed ? cap - tail : n - fed, cnt;
		size_t have = tail + take;
		int eof = fed + take == n;
		fed += take;
		size_t len = kbv_hints_cut(h, NULL, p + pos, have, eof, HINTS_SLOT, lens + k, maxn - k, &cnt);
		k += cnt;
		pos += len;
		tail = have - len;
		if (!len && eof && have)
			abort(); /* nothing cut at the end: would loop */
	}
	return k;
}

#endif
