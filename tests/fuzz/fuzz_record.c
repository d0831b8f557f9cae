/* A record file (format/records.md) of an unencrypted repository: parses or fails cleanly;
 * what it accepts is a JSON object with kind and time. The id is computed from a raw
 * (codec 0) payload, so inputs reach the JSON parser. Corpus: a drill verdict. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/blob.h"
#include "kbv/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kbv_keys keys; /* all zero: a fixed id key */
	uint8_t id[KBV_ID_BYTES] = { 0 };
	struct kbv_codec *c = kbv_codec_new(&keys, 0, 3);
	json_t *j = NULL;
	if (!c)
		abort();
	if (size > 17 && data[16] == 0)
		kbv_blob_id(&keys, KBV_BLOB_RECORD, data + 17, size - 17, id);
	if (kbv_record_decode(c, id, data, size, "fuzz", &j) == 0) {
		if (!json_is_object(j) || !json_is_string(json_object_get(j, "kind")))
			abort();
		json_decref(j);
	}
	kbv_codec_free(c);
	return 0;
}
