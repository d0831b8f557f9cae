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
	char name[112]; /* the key's last path element, without ".pack"; "" when too long */
	uint64_t size;
	int64_t mtime; /* LastModified, seconds since the epoch (every item has one, see below) */
	/* ListObjectVersions only: the version's id ("" when too long) and whether it is a
	 * delete marker (a version without data that hides the ones before it) */
	char version[128];
	int marker;
};

/* One page of a listing. Zero-initialise; each parse replaces items, truncated, token. */
struct kbv_s3_listing {
	struct kbv_s3_item *items;
	size_t n, cap;
	int truncated;    /* IsTruncated was "true" */
	char token[1024]; /* NextContinuationToken ("" when none) */
	/* ListObjectVersions: where the next page starts ("" when none) */
	char next_key[1024], next_version[1024];
	/* Why a page was refused (KBV_ECORRUPT for a well-formed reply): "" otherwise */
	char bad_why[160];
	/* parser state */
	int in_contents, bad, marker, have_size, have_mtime;
	struct kbv_buf text;
	char key[1024], version[1024];
	uint64_t size;
	int64_t mtime;
};

/* Parse one ListObjectsV2 reply, or one ListObjectVersions reply (each Version and
 * DeleteMarker an item). 0; KBV_ECORRUPT for a reply that is not well-formed XML, or
 * whose item lacks a readable LastModified, or (but for a delete marker) a Size of digits
 * (bad_why says which): gc judges an object's age by its LastModified, and an age read as
 * 1970 would make a young pack or a live lock look old; KBV_ENOMEM. Errors are not
 * recorded with kbv_error (the caller names the request). */
int kbv_s3_listing_parse(struct kbv_s3_listing *l, const void *body, size_t len);
void kbv_s3_listing_release(struct kbv_s3_listing *l);

/* An ISO 8601 UTC time as S3 writes it ("2026-12-01T13:30:30.552Z"; also without the
 * fraction, or with the Z written +00:00 or left out; fractions ignored) in seconds since
 * the epoch; 0 when it does not parse (nothing else after the seconds, no time before
 * 1970-01-02). */
int64_t kbv_s3_parse_time(const char *s);

/* The text of the first <tag>…</tag> in body into out (cut to cap - 1 bytes; "" when
 * absent). For small flat replies. */
void kbv_s3_xml_field(const void *body, size_t len, const char *tag, char *out, size_t cap);

#endif
