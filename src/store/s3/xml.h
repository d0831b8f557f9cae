/* What object storage answers, parsed: ListObjectsV2 results (with expat) and the
 * elements of small flat replies (an error's Code, a DeleteObjects failure's Key). Pure
 * functions of the reply's bytes, so that they can be fuzzed (tests/fuzz/fuzz_s3reply.c):
 * the bytes come from a server kbvault does not control. */
#ifndef KBV_STORE_S3XML_H
#define KBV_STORE_S3XML_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/buf.h"

struct kbv_s3_item {
	char name[80]; /* the key's last path element, without ".pack"; "" when too long */
	uint64_t size;
	int64_t mtime; /* LastModified, seconds since the epoch; 0 when absent or unparsable */
};

/* One page of a listing. Zero-initialise; each parse replaces items, truncated, token. */
struct kbv_s3_listing {
	struct kbv_s3_item *items;
	size_t n, cap;
	int truncated;    /* IsTruncated was "true" */
	char token[1024]; /* NextContinuationToken ("" when none) */
	/* parser state */
	int in_contents, bad;
	struct kbv_buf text;
	char key[1024];
	uint64_t size;
	int64_t mtime;
};

/* Parse one ListObjectsV2 reply. 0; KBV_ECORRUPT for a reply that is not well-formed XML;
 * KBV_ENOMEM. Errors are not recorded with kbv_error (the caller names the request). */
int kbv_s3_listing_parse(struct kbv_s3_listing *l, const void *body, size_t len);
void kbv_s3_listing_release(struct kbv_s3_listing *l);

/* The text of the first <tag>…</tag> in body into out (cut to cap - 1 bytes; "" when
 * absent). For small flat replies. */
void kbv_s3_xml_field(const void *body, size_t len, const char *tag, char *out, size_t cap);

#endif
