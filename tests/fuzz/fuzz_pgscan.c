/* The COPY-block scanner (src/sources/pgscan.c) on arbitrary streams, fed in two pieces split at
 * a point the first byte chooses: no crash, and the figures do not depend on the split. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/pg.h"

static void scan(const uint8_t *p, size_t n, size_t cut, uint64_t *rows, uint64_t *sum, size_t *nt)
{
	struct kbv_pgscan *s = kbv_pgscan_new();
	if (!s)
		abort();
	kbv_pgscan_feed(s, p, cut);
	kbv_pgscan_feed(s, p + cut, n - cut);
	kbv_pgscan_end(s);
	const struct kbv_pgtable *t = kbv_pgscan_tables(s, nt);
	*rows = *sum = 0;
	for (size_t i = 0; i < *nt; i++) {
		*rows += t[i].rows;
		*sum += t[i].sum;
		if (!t[i].name || !t[i].columns)
			abort();
	}
	kbv_pgscan_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1, cut = n ? data[0] % (n + 1) : 0;
	uint64_t r1, s1, r2, s2;
	size_t t1, t2;
	scan(data + 1, n, cut, &r1, &s1, &t1);
	scan(data + 1, n, n, &r2, &s2, &t2);
	if (r1 != r2 || s1 != s2 || t1 != t2)
		abort();
	return 0;
}
