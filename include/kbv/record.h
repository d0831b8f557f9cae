/* Records: small sealed JSON documents about the repository's life, such as drill
 * verdicts (format/records.md). */
#ifndef KBV_RECORD_H
#define KBV_RECORD_H

#include <jansson.h>

#include "kbv/repo.h"

/* Seal `rec` (a JSON object with "kind" and "time") and write it durably to records/. */
int kbv_record_write(struct kbv_repo *r, const json_t *rec);

/* Every record of `kind`, oldest first (by "time"), as a new JSON array. A record that
 * fails verification is KBV_ECORRUPT naming its file. */
int kbv_record_list(struct kbv_repo *r, const char *kind, json_t **out);
/* The same for several kinds from one listing (and one read of each record): out[i] the
 * records of kinds[i]. On object storage a record is read once per host, then from its
 * metadata cache (format/repository.md). */
int kbv_record_lists(struct kbv_repo *r, const char *const *kinds, size_t nkinds, json_t **out);

/* One record file's bytes (magic, version, sealed RECORD blob of id `id`) into a new JSON
 * object; KBV_ECORRUPT / KBV_EVERSION naming `what`. For kbv_record_list and fuzzing. */
struct kbv_codec;
int kbv_record_decode(struct kbv_codec *codec, const uint8_t id[KBV_ID_BYTES], const uint8_t *p, size_t len,
		      const char *what, json_t **out);

#endif
