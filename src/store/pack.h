/* Pack files (format/pack.md): writing one, reading its trailer, reading one blob. */
#ifndef KBV_PACK_H
#define KBV_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/backend.h"
#include "store/index.h"
#include "kbv/repo.h"

#define KBV_PACK_HEADER 32
#define KBV_PACK_FOOTER 32
#define KBV_TRAILER_ENTRY 57

struct kbv_packw;

/* Start a new pack object (invisible until finished). `codec` (borrowed) seals the
 * trailer. */
int kbv_packw_new(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_packw **out);
/* Append one single-blob envelope (TREE, SNAPSHOT). */
int kbv_packw_add(struct kbv_packw *w, int type, const uint8_t id[KBV_ID_BYTES], const void *stored, size_t n,
		  uint32_t raw_len);
/* Append one bundle envelope holding n DATA blobs (ids[i], lens[i], in table order); xxh
 * is XXH3_64bits() of its `size` stored bytes (taken by the worker that sealed it, off the
 * writing thread). */
int kbv_packw_add_bundle(struct kbv_packw *w, const void *stored, size_t size, uint64_t xxh, uint32_t n,
			 const uint8_t (*ids)[KBV_ID_BYTES], const uint32_t *lens);
/* Append an envelope copied from another pack, with k of the trailer entries that
 * described it there (the blobs to keep; offsets are rewritten, raw_off and the rest
 * kept). KBV_ECORRUPT when the bytes do not match the entries' size and checksum. */
int kbv_packw_add_copy(struct kbv_packw *w, const void *stored, size_t size, const struct kbv_pack_entry *e, size_t k);
/* Bytes written so far and blobs added. */
uint64_t kbv_packw_size(const struct kbv_packw *w);
size_t kbv_packw_count(const struct kbv_packw *w);
/* Blobs added so far, in pack order; valid until the next add or free. */
const struct kbv_pack_entry *kbv_packw_entries(const struct kbv_packw *w);
/* Write trailer and footer and commit the pack object durably (with KBV_COMMIT_ASYNC in
 * `flags`: durable once kbv_be_sync() returned 0). *info describes the pack. After this
 * (success or not) only kbv_packw_free() may be called. */
int kbv_packw_finish(struct kbv_packw *w, unsigned flags, struct kbv_pack_info *info);
/* Free; an unfinished pack's temporary file is removed. NULL is a no-op. */
void kbv_packw_free(struct kbv_packw *w);

/* Every pack object of the repository: fn(arg, packid, size, mtime) for each, in no
 * particular order (mtime as the storage keeps it, seconds since the epoch); returns the
 * first non-zero. */
typedef int (*kbv_packfile_fn)(void *arg, const uint8_t packid[KBV_PACKID_BYTES], uint64_t size, int64_t mtime);
int kbv_each_packfile(struct kbv_repo *r, kbv_packfile_fn fn, void *arg);

/* Append the trailer plaintext of n entries (u32 count, then the 57-byte entries) to out. */
int kbv_trailer_encode(const struct kbv_pack_entry *e, size_t n, struct kbv_buf *out);
/* Parse a decoded trailer into struct kbv_pack_entry records (replacing `entries`),
 * checking every entry lies inside [header, trailer_off). Pure; KBV_ECORRUPT names `what`. */
int kbv_trailer_parse(const uint8_t *plain, size_t len, uint64_t trailer_off, const char *what,
		      struct kbv_buf *entries, size_t *n);

/* Read and verify a pack's header, footer and trailer. `entries` receives an array of
 * struct kbv_pack_entry (replacing its contents), *n their count, *size the file size.
 * Errors name the pack file. */
int kbv_pack_read_trailer(struct kbv_repo *r, struct kbv_codec *codec, const uint8_t packid[KBV_PACKID_BYTES],
			  struct kbv_buf *entries, size_t *n, uint64_t *size);
/* The same, for a pack whose size the index gives (`known`; 0: ask the storage), leaving
 * it open in *keep (when keep is non-NULL and 0 is returned) for reading its blobs: on
 * object storage, no HEAD, and the reads of the trailer serve the blob reads after it. */
int kbv_pack_open_trailer(struct kbv_repo *r, struct kbv_codec *codec, const uint8_t packid[KBV_PACKID_BYTES],
			  uint64_t known, struct kbv_be_rd **keep, struct kbv_buf *entries, size_t *n, uint64_t *size);

/* The last few decoded bundles, so that reading their members decodes each once even when
 * a stream's chunks alternate between bundles (an edited dump: new chunks between old).
 * Sixteen (4 MiB of bundles per reading thread): the tenth night of `make bench` restored
 * through four decoded 1,033 MB of bundles for its 337 MB, through sixteen 767 MB, and
 * through 64 or 256 no less (docs/benchmarks.md). Zero-filled is empty. */
#define KBV_BUNDLES_CACHED 16
struct kbv_bundle_cache {
	struct {
		int valid;
		uint32_t pack;
		uint32_t offset;
		uint64_t used;
		struct kbv_buf plain;
	} slot[KBV_BUNDLES_CACHED];
	uint64_t clock;
	uint64_t decoded; /* bytes of bundles decoded into it (what a restore cost) */
	unsigned limit;   /* slots it fills (0: all); a reader handing out whole bundles needs few */
};
/* Forget what it holds (keeping the memory) / free it. */
void kbv_bundle_cache_clear(struct kbv_bundle_cache *bc);
void kbv_bundle_cache_release(struct kbv_bundle_cache *bc);

/* Per-thread read state: a small cache of open packs and the last bundle. */
struct kbv_packfds {
	struct {
		uint32_t packno;
		struct kbv_be_rd *rd; /* NULL: a free slot */
		uint64_t size;        /* of the pack object */
		uint64_t used;
	} slot[8];
	uint64_t clock;
	uint32_t last;   /* the pack read last (when has_last) */
	int has_last;
	struct kbv_bundle_cache bundle;
};
void kbv_packfds_init(struct kbv_packfds *c);
void kbv_packfds_release(struct kbv_packfds *c);

/* Where blob `id` is, from the index (`txn` is the caller's read transaction): a blob the
 * index lacks or holds with another type is KBV_ECORRUPT naming it. */
int kbv_pack_locate(struct kbv_repo *r, MDB_txn *txn, int type, const uint8_t id[KBV_ID_BYTES], struct kbv_loc *loc);
/* Read blob `id` of the given type through the index (`txn` is the caller's read
 * transaction), verify the stored checksum and decode it into `out`. Errors name the pack,
 * offset and blob. */
int kbv_pack_read_blob(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds, int type,
		       const uint8_t id[KBV_ID_BYTES], struct kbv_buf *stored, struct kbv_buf *out);
/* kbv_pack_read_blob() of a blob already located (by kbv_pack_locate() in a read
 * transaction of the same repository, begun no later than `txn`). */
int kbv_pack_read_loc(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds,
		      const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc, struct kbv_buf *stored,
		      struct kbv_buf *out);

/* kbv_pack_read_loc() without the copy of a bundle's member: *p points at the blob's
 * loc->raw_len bytes, in fds's bundle cache (a member of a bundle) or in `out` (a blob of
 * its own envelope). Valid until the next read through `fds` or `out` that decodes another
 * envelope: reading more members of the same bundle leaves it in place. */
int kbv_pack_view_loc(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds,
		      const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc, struct kbv_buf *stored,
		      struct kbv_buf *out, const uint8_t **p);

/* Does `bc` hold the envelope of DATA blob `e` of pack `packno` decoded? */
int kbv_bundle_cached(const struct kbv_bundle_cache *bc, uint32_t packno, const struct kbv_pack_entry *e);
/* Verify and decode blob `e` from its envelope's stored bytes (e->stored_len of them at
 * `stored`, fetched by the caller; not read when `bc` holds the bundle already). */
int kbv_pack_decode_at(struct kbv_codec *codec, const char *packname, uint32_t packno, const struct kbv_pack_entry *e,
		       struct kbv_bundle_cache *bc, const uint8_t *stored, struct kbv_buf *out);

/* Read and decode the blob at a known location of the open pack `rd` (pack number
 * `packno`, for the cache; used by check and repair too; `packname` for messages). Bundles
 * go through `bc` (may be NULL). The blob's bytes end up in `out`. */
int kbv_pack_read_at(struct kbv_codec *codec, struct kbv_be_rd *rd, const char *packname, uint32_t packno,
		     const struct kbv_pack_entry *e, struct kbv_bundle_cache *bc, struct kbv_buf *stored,
		     struct kbv_buf *out);

#endif
