/* Repository verification and statistics. */
#ifndef KBV_CHECK_H
#define KBV_CHECK_H

#include <stdint.h>

#include "kbv/repo.h"

enum kbv_severity { KBV_INFO = 0, KBV_WARNING = 1, KBV_PROBLEM = 2 };

/* Receives each finding, one line naming pack, blob or snapshot. */
typedef void (*kbv_report_fn)(void *arg, int severity, const char *msg);

struct kbv_check_opts {
	int read_data;     /* decode and hash every blob in every pack */
	double subset_pct; /* with read_data: only this share of the packs (0: all) ... */
	uint32_t subset_day; /* ... the share chosen by this number (days since the epoch) */
};

/* Is the pack in today's share? Packs fall into k = round(100 / pct) classes by their id;
 * day d reads class d mod k, so k consecutive days read every pack once. */
int kbv_check_in_subset(const uint8_t packid[KBV_PACKID_BYTES], double pct, uint32_t day);

struct kbv_check_result {
	uint64_t packs, blobs, snapshots, bytes_read;
	uint64_t problems, warnings;
	uint64_t wal_files; /* archived WAL files checked (format/wal.md) */
};

/* Check structure: packs against the index, every snapshot's references; with read_data
 * every blob. Returns 0 when the check ran (look at res->problems), or a KBV_E* code when
 * it could not run. The repository must be unlocked. */
int kbv_check(struct kbv_repo *r, const struct kbv_check_opts *opts, kbv_report_fn report, void *arg,
	      struct kbv_check_result *res);

struct kbv_repo_stats {
	uint64_t snapshots;
	uint64_t raw_bytes;         /* sum of all snapshots' stream sizes */
	uint64_t unique_raw_bytes;  /* sum of raw lengths of indexed DATA blobs */
	uint64_t unique_stored_bytes; /* envelopes holding indexed blobs (each counted once) */
	uint64_t data_blobs, tree_blobs;
	uint64_t packs, pack_bytes; /* indexed packs and their file sizes */
};

int kbv_repo_stats(struct kbv_repo *r, struct kbv_repo_stats *st);
/* The same for the snapshots the caller listed already (kbv_snapshot_list_damaged: before
 * this reads the index, as there). */
struct kbv_snapshot;
int kbv_repo_stats_of(struct kbv_repo *r, struct kbv_snapshot *const *list, size_t n, struct kbv_repo_stats *st);

/* Cheap figures: snapshot files, indexed packs and their bytes (no blob is visited). */
struct kbv_repo_usage {
	uint64_t snapshots, packs, pack_bytes;
};
int kbv_repo_usage(struct kbv_repo *r, struct kbv_repo_usage *u);

/* Rebuild the index from the pack trailers (needs an exclusive lock); on object storage,
 * then replace the index objects by ones written from the rebuilt index. */
int kbv_repair_index(struct kbv_repo *r, kbv_report_fn report, void *arg, uint64_t *packs, uint64_t *blobs);

#endif
