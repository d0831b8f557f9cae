/* Garbage collection (format/repository.md, "gc"): drop snapshots, mark what the remaining
 * ones reference, delete packs with nothing live, repack packs that are mostly dead,
 * collect leftovers of interrupted writes, compact the index. Needs the exclusive lock. */
#ifndef KBV_GC_H
#define KBV_GC_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"
#include "kbv/repo.h"

struct kbv_gc_opts {
	double max_unused;   /* dead share of the blob bytes kept that is tolerated (0..1): packs are
			      * repacked, most dead first, until the rest is within it */
	uint64_t max_repack; /* bytes of packs to repack in one run; 0: no cap */
	int dry_run;         /* plan only: change nothing */
	/* Progress: phase ("mark", "sweep", "repack", "delete"), done and total in that phase's unit. */
	void (*progress)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *arg;
};

struct kbv_gc_result {
	uint64_t snapshots_dropped, snapshots_kept;
	uint64_t live_blobs;                  /* distinct blobs the kept snapshots reference */
	uint64_t packs, pack_bytes;           /* before */
	uint64_t packs_deleted, packs_repacked, packs_written, packs_left_mostly_dead;
	uint64_t bytes_deleted;               /* pack bytes removed (deleted and repacked packs) */
	uint64_t bytes_written;               /* pack bytes written by repacking */
	uint64_t bytes_after;                 /* pack bytes after (planned, with dry_run) */
	uint64_t tmp_removed;                 /* leftover files in tmp/ */
	uint64_t index_bytes_before, index_bytes_after;
	uint64_t index_objects_written, index_objects_removed; /* object storage (format/index.md) */
};

/* Remove the snapshots in `drop` (their manifests), then collect everything no remaining
 * snapshot references. Every remaining manifest is a root, whatever the caller thinks.
 * Refuses (KBV_ECORRUPT, telling to run `repair index`) if a referenced blob is missing
 * from the index, so a stale index can never make live data look dead. */
int kbv_gc(struct kbv_repo *r, const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop, const struct kbv_gc_opts *o,
	   struct kbv_gc_result *res);

#endif
