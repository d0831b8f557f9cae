/* Index objects (format/index.md, "Index objects"): on object storage, what the trailers of
 * some packs say, gathered in one object `idx/<id>`, so that a host whose index cache lacks
 * those packs fetches one object instead of reading every pack's trailer. */
#ifndef KBV_STORE_IDXOBJ_H
#define KBV_STORE_IDXOBJ_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"
#include "kbv/buf.h"
#include "store/index.h"
#include "store/repo_impl.h"

#define KBV_IDXOBJ_MAX_BODY (8u << 20) /* a writer starts another object past this */

/* Append one pack's part of a body (pack id, size, entry count, entries) to `out`. Pure. */
int kbv_idxobj_add_pack(struct kbv_buf *out, const struct kbv_pack_info *info, const struct kbv_pack_entry *e,
			size_t n);

/* Parse a decoded body: fn(arg, info, entries, n) for each pack, in order (entries valid
 * during the call); a non-zero return stops and is returned. Pure; KBV_ECORRUPT names
 * `what` when the lengths do not add up or an entry lies outside its pack's blob area. */
typedef int (*kbv_idxobj_fn)(void *arg, const struct kbv_pack_info *info, const struct kbv_pack_entry *e,
			     size_t n);
int kbv_idxobj_parse(const uint8_t *body, size_t len, const char *what, kbv_idxobj_fn fn, void *arg);

/* Seal `npacks` packs' body parts (concatenated in `parts`) as an index object file:
 * *name (65 bytes) its name, `file` its bytes. Pure but for the keys in `codec`. */
int kbv_idxobj_seal(const struct kbv_repo *r, struct kbv_codec *codec, uint32_t npacks, const struct kbv_buf *parts,
		    char name[65], struct kbv_buf *file);
/* Open an index object file named `name`: verify it and decode its body into `body`.
 * KBV_ECORRUPT or KBV_EVERSION name the object. */
int kbv_idxobj_open(const struct kbv_repo *r, struct kbv_codec *codec, const char *name, const uint8_t *file,
		    size_t len, struct kbv_buf *body);

/* What the writers call (no-ops on a local repository, which writes no index objects):
 * kbv_repo_note_packs remembers durable, indexed packs for the next index object (and
 * writes one when 8 MiB have gathered); kbv_repo_publish_index writes what is remembered
 * as one index object (create-if-absent) and records it as merged. Thread-safe. */
int kbv_repo_note_packs(struct kbv_repo *r, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks);
int kbv_repo_publish_index(struct kbv_repo *r);

/* gc: replace every index object listed now by objects that list the packs the index cache
 * holds (format/index.md, "Compaction"). `changed`: whether packs were added or removed;
 * when not, and there is at most one index object and nothing remembered, nothing is
 * written. *written and *removed count objects. */
int kbv_repo_compact_index_objects(struct kbv_repo *r, int changed, uint64_t *written, uint64_t *removed);

/* Refresh: index the packs of `want` (sorted by id, with their listed sizes) that index
 * objects not yet merged list with exactly that size; clears want[i].need for those.
 * Forgets merged objects no longer in the bucket. Counts objects fetched, packs added and
 * objects skipped as damaged (or of another version): their packs stay wanted. */
struct kbv_want_pack {
	uint8_t id[KBV_PACKID_BYTES];
	uint64_t size;
	int need;
};
int kbv_repo_merge_index_objects(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_want_pack *want,
				 size_t nwant, uint64_t *objects, uint64_t *packs, uint64_t *damaged, char first_damaged[65]);

/* Refresh, after dropping packs took blobs' only indexed location with them (a gc deleted
 * a pack while another copy sits in a pack this cache holds, indexed without that blob):
 * read every index object and give each blob the index does not locate the location an
 * object lists for it in a pack of this cache (same id and size). *filled counts them. */
int kbv_repo_fill_from_index_objects(struct kbv_repo *r, struct kbv_codec *codec, uint64_t *filled);

#endif
