/* A decoded bundle's member table (format/blob.md): looking up a member never reads
 * outside the bundle, whatever the table says. The first 8 bytes choose the offset and
 * length asked for; the id asked for is the first table entry's, when there is one. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/blob.h"
#include "kbv/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kbv_keys keys;
	static struct kbv_codec *c;
	if (!c) {
		if (sodium_init() < 0)
			abort();
		c = kbv_codec_new(&keys, 1, 3); /* encrypted: no id recomputation, pure table logic */
	}
	if (size < 8)
		return 0;
	uint32_t off = kbv_get32(data), len = kbv_get32(data + 4);
	struct kbv_buf plain = { (uint8_t *)data + 8, size - 8, size - 8 };
	uint8_t id[KBV_ID_BYTES] = { 0 };
	if (plain.len >= 4 + KBV_ID_BYTES)
		memcpy(id, plain.data + 4, KBV_ID_BYTES);
	const uint8_t *p;
	if (kbv_bundle_member(c, &plain, id, off, len, &p) == 0) {
		if (p < plain.data || p + len > plain.data + plain.len)
			abort();
	}
	return 0;
}
