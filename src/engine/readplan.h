/* Planned reads of a restore from object storage (docs/design.md "Restore"): the chunks
 * of the next part of a stream are looked up first, their envelopes grouped by pack into
 * spans, and each span is fetched with one ranged GET, ahead of the workers by
 * s3-connections threads, in the order the stream needs them (a worker that needs a span
 * before it came fetches it itself). Memory: the spans of one part (KBV_PLAN_STORED of
 * stored bytes needed, at most as much again in gaps), in one buffer kept from part to
 * part. */
#ifndef KBV_READPLAN_H
#define KBV_READPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "store/index.h"
#include "store/pack.h"

/* A part ends when its chunks need this many stored bytes, or has this many chunks. */
#define KBV_PLAN_STORED (32u << 20)
#define KBV_PLAN_LEAVES 32768u

/* One chunk of the part, in stream order: where it is, and the span that holds it. */
struct kbv_rleaf {
	uint8_t id[KBV_ID_BYTES];
	struct kbv_loc loc;
	uint32_t span;
};

struct kbv_readplan;

int kbv_readplan_new(struct kbv_repo *r, struct kbv_readplan **out);
void kbv_readplan_free(struct kbv_readplan *p);

/* Add the next chunk of the stream to the part being planned: looked up in the index
 * (`txn`, the caller's) and checked against its pack's size. Returns 1 when the part is
 * full (kbv_readplan_build it before adding more), 0 otherwise, or an error. */
int kbv_readplan_add(struct kbv_readplan *p, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES]);
/* Plan the spans of the part added so far (nothing of an earlier part may still be read)
 * and give its chunks in stream order (*n of them, valid until the next add). */
int kbv_readplan_build(struct kbv_readplan *p, const struct kbv_rleaf **leaves, size_t *n);
/* Decode one chunk of the built part into `out` (any thread): its span is fetched first
 * if no one has (or waited for while another worker fetches it); `bc` is the calling
 * thread's bundle cache. Every chunk of the part is read exactly once, or the part is
 * abandoned with kbv_readplan_reset. */
int kbv_readplan_read(struct kbv_readplan *p, struct kbv_codec *codec, struct kbv_bundle_cache *bc,
		      const struct kbv_rleaf *leaf, struct kbv_buf *out);
/* Forget the part (planned or not) and free what its spans hold; no reads may be running. */
void kbv_readplan_reset(struct kbv_readplan *p);

/* Parts of at most `stored` needed bytes from now on (tests: many parts from a small
 * stream); KBV_PLAN_STORED is the default. */
void kbv_readplan_part(struct kbv_readplan *p, uint64_t stored);
/* Requests and bytes the spans fetched since kbv_readplan_new (for tests and stats). */
void kbv_readplan_fetched(const struct kbv_readplan *p, uint64_t *gets, uint64_t *bytes);

#endif
