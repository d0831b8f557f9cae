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
	struct kbv_gclock *lock; /* held by the caller (object storage): refreshed as gc goes */
	uint32_t keep_delete; /* seconds a condemned pack waits in its deletion plan before a later
			       * gc may delete it (format/repository.md, "Many writers and gc");
			       * 0: this run deletes it, after listing the snapshots again */
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
	/* Deletion plans: packs named in this run's new plan, those of them waiting out
	 * keep_delete and their bytes, packs left waiting in older plans, packs a ripe plan
	 * named that turned out to be needed (kept), plans removed (done for a week), plans
	 * skipped as damaged. */
	uint64_t plan_packs, packs_planned, bytes_planned, packs_waiting, packs_kept_needed, plans_removed,
		plans_damaged;
	/* Object Lock: snapshots the policy drops and packs gc would delete or repack that are
	 * still retained (left for a later gc), and the retention of what is left (extended
	 * by this gc when due; kbv_repo_retention()). */
	uint64_t snapshots_retained, packs_retained;
	struct kbv_retention_report retention;
	/* The WAL archive (format/wal.md "Retention"): files kept (and their bytes), files
	 * older than the oldest kept base backup needs, removed (planned, with dry_run). */
	uint64_t wal_files_kept, wal_bytes_kept, wal_files_dropped;
};

/* Remove the snapshots in `drop` (their manifests), then collect everything no remaining
 * snapshot references. Every remaining manifest is a root, whatever the caller thinks.
 * Refuses (KBV_ECORRUPT, telling to run `repair index`) if a referenced blob is missing
 * from the index, so a stale index can never make live data look dead. */
int kbv_gc(struct kbv_repo *r, const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop, const struct kbv_gc_opts *o,
	   struct kbv_gc_result *res);

/* What gc's deletion plans hold now (format/repository.md, "Many writers and gc"), for
 * status: plans, the packs they name that the repository still holds and their bytes (per
 * the index), of those the packs a gc may delete now (ripe), the seconds on the storage's
 * clock until the next plan ripens (-1: none waits), and plans skipped as damaged. */
struct kbv_plan_summary {
	uint64_t plans, packs, bytes, ripe_packs, damaged;
	int64_t next_ripe_in;
};
int kbv_gc_plan_summary(struct kbv_repo *r, struct kbv_plan_summary *out);

/* The gc lock of a repository on object storage (format/repository.md, "The gc lock"):
 * `locks/gc`, so that one gc runs at a time across hosts. It goes stale when the
 * storage's clock says it was not refreshed for KBV_GCLOCK_STALE seconds (the environment's
 * KBVAULT_GC_LOCK_STALE, in seconds, when set); its holder refreshes it every
 * KBV_GCLOCK_REFRESH seconds. On a local repository there is no lock object: gc holds the
 * exclusive flock. */
#define KBV_GCLOCK_STALE 1800
#define KBV_GCLOCK_STALE_MAX (366L * 86400) /* the most KBVAULT_GC_LOCK_STALE may say */
#define KBV_GCLOCK_REFRESH 300
struct kbv_gclock;
struct kbv_gclock_info {
	int held;
	char host[256];
	long pid;
	char token[33];
	int64_t age;      /* seconds since it was taken or last refreshed (storage's clock) */
	int64_t stale_in; /* seconds until it goes stale; <= 0: stale */
	int dead;         /* this host's, and its process is gone: stale now */
};
/* Who holds the gc lock (held 0: nobody). */
int kbv_gclock_info(struct kbv_repo *r, struct kbv_gclock_info *out);
/* Take it (create-if-absent; a stale or dead one is removed first) as `host`; KBV_ELOCKED naming
 * the holder when another gc holds it. *out is released with kbv_gclock_release(). */
int kbv_gclock_take(struct kbv_repo *r, const char *host, struct kbv_gclock **out);
/* Refresh it when KBV_GCLOCK_REFRESH has passed (force: now), after checking it is still
 * ours: KBV_ELOCKED when another gc took it over (stop before changing more). NULL: 0. */
int kbv_gclock_refresh(struct kbv_gclock *l, int force);
/* Remove it if still ours, and free. NULL is a no-op. */
void kbv_gclock_release(struct kbv_gclock *l);
/* `unlock`: remove the gc lock only when it is stale or dead; *was says who held it. */
int kbv_gclock_break(struct kbv_repo *r, struct kbv_gclock_info *was, int *removed);

#endif
