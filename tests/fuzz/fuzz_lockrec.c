/* This host's Object Lock record (format/repository.md, "Object Lock") as it might be found
 * in the cache directory: damaged, torn, of an older build. Whatever it holds, a record
 * is accepted only when it is exactly the line kbvault writes for its two numbers under
 * the keys (0 < T < U), and a refused one yields no numbers. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/error.h"
#include "lockrec_input.h"
#include "store/retain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kbv_keys k;
	static int ready;
	char line[KBV_LOCKREC_MAX];
	int64_t t = -1, u = -1;
	if (!ready) {
		lockrec_keys(&k);
		ready = 1;
	}
	int rc = kbv_lockrec_parse(&k, (const char *)data, size, &t, &u);
	if (rc == 0) {
		int n = kbv_lockrec_format(&k, t, u, line, sizeof line);
		if (t <= 0 || u <= t || n < 0 || (size_t)n != size || memcmp(line, data, size))
			abort();
	} else if (rc != KBV_ECORRUPT || t != 0 || u != 0) {
		abort();
	}
	return 0;
}
