/* PostgreSQL physical base backups and recovery from the WAL archive (format/wal.md). */
#ifndef KBV_PGBASE_H
#define KBV_PGBASE_H

#include <jansson.h>
#include <stdint.h>

#include "kbv/reader.h"
#include "kbv/sink.h"
#include "kbv/snapshot.h"
#include "kbv/source.h"

/* The longest wait for a base backup's history file (KBVAULT_ARCHIVE_TIMEOUT, seconds;
 * default KBV_ARCHIVE_TIMEOUT). */
#define KBV_ARCHIVE_TIMEOUT 60L
#define KBV_ARCHIVE_TIMEOUT_MAX 86400L

/* A base backup of source sc (mode = physical): pg_basebackup's tar of the data directory
 * as "<source>/base.tar"; *meta (the caller's) records the cluster's system identifier,
 * timeline, segment size, the backup's first and last WAL position and segment, and its
 * start and stop times. The server must archive its WAL (archive_mode on). */
int kbv_pgbase_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta);

/* Where recovery should stop (at most one of time, lsn, xid, immediate; none: the end of
 * the archive), and how the restored server runs `kbvault wal-fetch`: the program's path
 * and the global options it needs (-c FILE, -r REPO, --password-file FILE), NULL-ended. */
struct kbv_pg_recovery {
	const char *time, *lsn, *xid;
	int immediate;
	const char *kbvault;
	const char *const *args;
};

/* Restore the base backup of source src of s (entries loaded) into the empty or missing
 * directory dir, owned as the backup recorded, with recovery.signal and the recovery
 * settings in postgresql.auto.conf; fills `report` as a kind's restore does. KBV_EEXIST
 * for a directory that is not empty. */
int kbv_pgbase_restore(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_snapsource *src,
		       const char *dir, const struct kbv_pg_recovery *rec, json_t *report);

/* Is source `source` of s a base backup (mode = physical)? */
int kbv_pg_is_physical(const struct kbv_snapshot *s, const char *source);

/* The newest snapshot of list (oldest first) holding a base backup of `source` that ended
 * at or before `before` (INT64_MAX: any). KBV_ENOTFOUND saying why when there is none. */
int kbv_pgbase_choose(struct kbv_snapshot **list, size_t n, const char *source, int64_t before,
		      struct kbv_snapshot **out);

/* "2026-11-30 14:05:00+00", "2026-11-30T14:05:00Z", "2026-11-30 14:05:00.25 UTC" (no zone:
 * this machine's local time) into seconds since the epoch; -1 when it does not parse. */
int kbv_pg_parse_time(const char *s, int64_t *out);

#endif
