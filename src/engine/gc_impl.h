/* The inside of garbage collection (engine/gc.c runs the steps in order; format/repository.md,
 * "gc"): the live set and the mark (gc_mark.c), the sweep that finds where each live blob is
 * and plans each pack (gc_sweep.c), and the repack of mostly dead packs (gc_repack.c).
 * Nothing outside src/engine/gc*.c includes it. */
#ifndef KBV_ENGINE_GC_IMPL_H
#define KBV_ENGINE_GC_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"
#include "kbv/buf.h"
#include "kbv/gc.h"
#include "kbv/idset.h"
#include "store/index.h"

struct kbv_repo;
struct kbv_reader;
struct kbv_snapshot;
struct kbv_codec;

/* ---- the live set and the mark (gc_mark.c) ---- */

/* The live set: sorted 64-bit id prefixes (8 bytes per blob: ~8 MB per million). */
struct live {
	uint64_t *v;
	size_t n, cap, uniq; /* v[0..uniq) sorted and unique; v[uniq..n) appended since */
};
/* The prefix of an id as the live set keeps it. */
uint64_t gc_prefix(const uint8_t *id);
/* Sort and deduplicate what was added (before gc_live_find). */
void gc_live_compact(struct live *l);
/* Position of the id's prefix in the live set, or -1. */
long gc_live_find(const struct live *l, const uint8_t *id);

struct mark {
	struct kbv_repo *r;
	struct kbv_idset trees; /* TREE ids walked already: shared subtrees once */
	struct live live;
	const char *snap; /* short id, for messages */
};
/* Add every blob a snapshot references to m's live set. */
int gc_mark_snapshot(struct mark *m, struct kbv_reader *rd, struct kbv_snapshot *s);
/* Mark one blob a stream references (a kbv_visit_fn; arg: the mark). */
int gc_mark_id(void *arg, int type, const uint8_t id[KBV_ID_BYTES]);

/* The WAL archive (gc_wal.c): per source, the first segment the oldest kept base backup
 * needs. gc_wal_note() takes a kept snapshot's base backups into account; gc_mark_wal()
 * marks every archived file from there on and (remove) removes the older ones. */
#define GC_WAL_SOURCES 64
struct wal_floor {
	struct {
		char name[65];
		uint64_t segno, seg_size;
	} src[GC_WAL_SOURCES];
	size_t n;
};
void gc_wal_note(struct wal_floor *f, const struct kbv_snapshot *s);
int gc_mark_wal(struct mark *m, struct kbv_reader *rd, const struct wal_floor *f, int remove,
		struct kbv_gc_result *res);

/* Was this TREE id marked (arg: the mark's trees)? For kbv_meta_retain. */
int gc_tree_marked(void *arg, const uint8_t id[KBV_ID_BYTES]);

/* ---- the sweep (gc_sweep.c) ---- */

struct packno_map {
	uint8_t id[KBV_PACKID_BYTES];
	uint32_t no;
};

struct plan_pack {
	uint8_t id[KBV_PACKID_BYTES];
	long no; /* -1: not indexed */
	uint64_t size, live, total;
	size_t nlive; /* planned from the index: live blobs it locates here */
	struct kbv_buf entries; /* unused once swept */
	size_t n;
	uint8_t *is_live;       /* per entry, while sweeping */
	int action;             /* 0 keep, 1 delete, 2 repack (a candidate until the plan) */
	int must;               /* repacked whatever the policy says (a damaged trailer) */
	int now;                /* action 1 and named by a ripe plan: deleted in this pass */
	int64_t mtime;          /* as listed */
};

/* Where the index puts a live blob: sorted by (pack, offset, raw_off). */
struct loctuple {
	uint32_t pack, offset, raw_off, live; /* live: position in the live set */
	uint32_t stored_len;                  /* of its envelope */
};

struct listed_pack {
	uint8_t id[KBV_PACKID_BYTES];
	uint64_t size;
	int64_t mtime; /* LastModified: Object Lock's retention is at least this + its period */
};

struct sweep {
	uint8_t *found; /* one bit per live prefix: seen at its indexed location */
	uint64_t scanned;
	struct loctuple *locs;
	size_t nlocs, caplocs;
	struct kbv_repo *r;
	struct kbv_codec *codec;
	MDB_txn *txn;
	const struct live *live;
	struct packno_map *map;
	size_t nmap, capmap;
	struct plan_pack *p;
	size_t np, capp;
	const struct kbv_gc_opts *o;
	uint64_t done, total;
	/* Object storage: plan from the index, not from every pack's trailer (below). */
	int from_index;
	uint64_t *indexed; /* per pack number: bytes of the envelopes the index locates there */
	size_t nindexed;
	struct kbv_idset envelopes; /* (pack, offset) of each envelope counted in indexed[] */
	struct listed_pack *listed; /* the storage's listing of the packs */
	size_t nlisted, caplisted;
};

/* Step 3 (sw->r, sw->o set, the rest zero): where every live blob of `live` is, and a
 * plan_pack for every pack the storage lists (sw->p), each with its action. Stops
 * (KBV_ECORRUPT) when a live blob is not where the index says. */
int gc_sweep(struct sweep *sw, const struct live *live);
/* Free what gc_sweep made. */
void gc_sweep_release(struct sweep *sw);
/* Which entries of pack p's trailer are the index's copy of a live blob (is_live[i] set,
 * and the blob counted as found). */
void gc_mark_live(struct sweep *s, const struct plan_pack *p, const struct kbv_pack_entry *e, size_t n,
		  uint8_t *is_live);
/* A pack's blobs: from its trailer; when the trailer is damaged but walking the pack proves
 * every envelope up to it (kbv_pack_salvage), from the walk, and *salvaged is set (gc then
 * rewrites the pack, which gives it a sound trailer). `known` and `keep` as for
 * kbv_pack_open_trailer (*keep stays NULL when the pack was salvaged). */
struct kbv_be_rd;
int gc_pack_entries_open(struct kbv_repo *r, struct kbv_codec *c, const uint8_t id[KBV_PACKID_BYTES],
			 uint64_t known, struct kbv_be_rd **keep, struct kbv_buf *entries, size_t *n, uint64_t *size,
			 int *salvaged);

/* ---- the repack (gc_repack.c) ---- */

/* Step 4: copy the live envelopes of every pack sw plans to repack (action 2) into new
 * packs, durable and indexed when it returns; adds to res->packs_written, bytes_written. */
int gc_repack(struct kbv_repo *r, struct sweep *sw, const struct kbv_gc_opts *o, struct kbv_gc_result *res);

#endif
