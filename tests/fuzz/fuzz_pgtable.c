/* The one-table filter (kbv/pgtable.h) on any bytes: it keeps or drops, never crashes, and
 * what it writes is a sequence of whole lines of its input or its own additions. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/pgtable.h"

static int sink(void *arg, const char *p, size_t n)
{
	size_t *total = arg;
	*total += n;
	return n && !p ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_pgtable_filter *f;
	size_t total = 0;
	if (kbv_pgtable_filter_new("app", "docs", "app.docs", sink, &total, &f) != 0)
		abort();
	/* in two pieces, split where the first byte says */
	size_t cut = size ? data[0] % (size + 1) : 0;
	if (kbv_pgtable_filter_feed(f, data, cut) == 0 && kbv_pgtable_filter_feed(f, data + cut, size - cut) == 0)
		(void)kbv_pgtable_filter_end(f);
	(void)kbv_pgtable_filter_left_out(f);
	kbv_pgtable_filter_free(f);
	return 0;
}
