/* A snapshot manifest body (format/snapshot.md): parse or fail cleanly; round-trips. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_snapshot *s = calloc(1, sizeof *s);
	if (kbv_snapshot_decode_body(data, size, s) == 0) {
		struct kbv_buf b = KBV_BUF_INIT;
		if (kbv_snapshot_encode_body(s, &b) != 0 || b.len != size || memcmp(b.data, data, size) != 0)
			abort();
		kbv_buf_release(&b);
	}
	kbv_snapshot_free(s);
	return 0;
}
