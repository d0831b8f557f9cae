/* A decoded pack trailer (format/pack.md): entries parse or fail cleanly and every parsed
 * entry lies inside the pack's blob area. The first 8 bytes give the trailer offset. */
#include <stdlib.h>

#include "fuzz.h"
#include "store/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t toff = kbv_get64(data) & 0xffffffffu;
	struct kbv_buf entries = KBV_BUF_INIT;
	size_t n;
	if (kbv_trailer_parse(data + 8, size - 8, toff, "fuzz", &entries, &n) == 0) {
		const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
		for (size_t i = 0; i < n; i++)
			if (e[i].offset < KBV_PACK_HEADER || (uint64_t)e[i].offset + e[i].stored_len > toff)
				abort();
	}
	kbv_buf_release(&entries);
	return 0;
}
