/* The entry table of a snapshot (format/snapshot.md): any bytes parse or fail cleanly in
 * every entry format, and what parses in the newest re-encodes to no more bytes. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_entry *e;
	size_t n;
	if (kbv_entries_decode(data, size, &e, &n) == 0) {
		struct kbv_buf b = KBV_BUF_INIT;
		if (kbv_entries_encode(e, n, &b) != 0 || b.len > size)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!kbv_entry_name_ok(e[i].name))
				abort();
		kbv_buf_release(&b);
		kbv_entries_free(e, n);
	}
	for (int format = 1; format <= 2; format++)
		if (kbv_entries_decode_format(data, size, format, &e, &n) == 0)
			kbv_entries_free(e, n);
	return 0;
}
