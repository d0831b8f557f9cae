/* What an S3 server answers (src/store/s3/xml.c): a ListObjectsV2 or ListObjectVersions
 * reply parses or fails
 * cleanly, and what it hands out is bounded: every name a NUL-terminated string shorter than
 * its field and without '/', every item with an age (a LastModified after 1970), a
 * continuation token only with its NUL; the fields of a flat
 * reply (an error's Code, a DeleteObjects failure's Key) are cut to their buffers. Parsing
 * the same page twice with one listing (as the continuation loop does) gives the same
 * result. Corpus: replies recorded from Debian's radosgw and hand-made edge cases. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/error.h"
#include "store/s3/xml.h"

static void check_page(const struct kbv_s3_listing *l)
{
	if (l->n > l->cap || memchr(l->token, 0, sizeof l->token) == NULL ||
	    !memchr(l->next_key, 0, sizeof l->next_key) || !memchr(l->next_version, 0, sizeof l->next_version))
		abort();
	for (size_t i = 0; i < l->n; i++) {
		const char *nm = l->items[i].name;
		if (!memchr(nm, 0, sizeof l->items[i].name) || strchr(nm, '/') ||
		    !memchr(l->items[i].version, 0, sizeof l->items[i].version) || l->items[i].mtime <= 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_s3_listing l = { 0 };
	int rc = kbv_s3_listing_parse(&l, data, size);
	if (rc != 0 && rc != KBV_ECORRUPT && rc != KBV_ENOMEM)
		abort();
	if (rc == 0) {
		check_page(&l);
		size_t n = l.n;
		int truncated = l.truncated;
		char token[sizeof l.token];
		memcpy(token, l.token, sizeof token);
		if (kbv_s3_listing_parse(&l, data, size) != 0 || l.n != n || l.truncated != truncated ||
		    strcmp(token, l.token))
			abort();
		check_page(&l);
	}
	kbv_s3_listing_release(&l);
	char code[64], key[4];
	kbv_s3_xml_field(data, size, "Code", code, sizeof code);
	kbv_s3_xml_field(data, size, "Key", key, sizeof key);
	if (strlen(code) >= sizeof code || strlen(key) >= sizeof key)
		abort();
	return 0;
}
