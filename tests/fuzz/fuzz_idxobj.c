/* A decoded index object body (format/index.md "Index objects"): it parses or fails
 * cleanly, and every entry handed out lies inside its pack's blob area. */
#include <stdlib.h>

#include "fuzz.h"
#include "store/idxobj.h"
#include "store/pack.h"

static int check_pack(void *arg, const struct kbv_pack_info *info, const struct kbv_pack_entry *e, size_t n)
{
	(void)arg;
	if (info->size < KBV_PACK_HEADER + KBV_PACK_FOOTER || info->blobs != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (e[i].offset < KBV_PACK_HEADER || (uint64_t)e[i].offset + e[i].stored_len > info->size - KBV_PACK_FOOTER)
			abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kbv_idxobj_parse(data, size, "fuzz", check_pack, NULL);
	return 0;
}
