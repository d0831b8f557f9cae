/* A WAL object body (format/wal.md): it decodes or fails cleanly; a decoded body names the
 * file it was asked for, holds the very numbers its JSON writes (none narrowed or wrapped
 * into range), and encodes back to a body that decodes to the same fields. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_wal_info w, again;
	if (kbv_wal_decode((const char *)data, size, "kbp", "000000010000000000000003", &w) != 0)
		return 0;
	if (strcmp(w.source, "kbp") || strcmp(w.file, "000000010000000000000003"))
		abort();
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!j || json_integer_value(json_object_get(j, "digest")) != w.hash.alg ||
	    json_integer_value(json_object_get(j, "timeline")) != (json_int_t)w.timeline ||
	    json_integer_value(json_object_get(j, "size")) != (json_int_t)w.size ||
	    json_integer_value(json_object_get(j, "time")) != (json_int_t)w.time)
		abort();
	json_decref(j);
	char *json = NULL;
	if (kbv_wal_encode(&w, &json) != 0)
		abort();
	if (kbv_wal_decode(json, strlen(json), "kbp", "000000010000000000000003", &again) != 0 || again.size != w.size ||
	    again.sysid != w.sysid || again.timeline != w.timeline || again.time != w.time ||
	    memcmp(&again.ref, &w.ref, sizeof w.ref) || again.hash.alg != w.hash.alg ||
	    memcmp(again.hash.v, w.hash.v, sizeof w.hash.v))
		abort();
	free(json);
	return 0;
}
