/* A WAL object body (format/wal.md): it decodes or fails cleanly; a decoded body names the
 * file it was asked for, and encodes back to a body that decodes to the same fields. */
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
