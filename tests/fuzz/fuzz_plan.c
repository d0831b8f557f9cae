/* A decoded deletion plan body (format/repository.md, "Many writers and gc"): it parses
 * or fails cleanly, and a parsed plan's pack count is exactly what its length holds. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "store/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_plan p;
	memset(&p, 0, sizeof p);
	if (kbv_plan_parse(data, size, "fuzz", &p) == 0) {
		if (p.npacks == 0 || 8 + 24 * p.npacks != size)
			abort();
		volatile uint64_t sum = 0;
		for (size_t i = 0; i < p.npacks; i++)
			sum += p.sizes[i] + p.packs[i][0] + p.packs[i][15];
		(void)sum;
	}
	kbv_plan_release(&p);
	return 0;
}
