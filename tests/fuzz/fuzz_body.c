/* A snapshot manifest body (format/snapshot.md): parse or fail cleanly; round-trips. Every
 * body re-encodes as the newest version (4); a version 1 body gains an empty source table. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_snapshot *s = calloc(1, sizeof *s);
	if (kbv_snapshot_decode_body(data, size, s) == 0) {
		struct kbv_buf b = KBV_BUF_INIT;
		int v1 = s->body_version == 1;
		if (kbv_snapshot_encode_body(s, &b) != 0 || b.len != size + (v1 ? 2 : 0) ||
		    memcmp(b.data + 4, data + 4, size - 4) != 0 || kbv_get32(b.data) != 4)
			abort();
		if (v1 && (b.data[size] || b.data[size + 1]))
			abort();
		kbv_buf_release(&b);
	}
	kbv_snapshot_free(s);
	return 0;
}
