/* PostgreSQL pieces of restore and drill. */
#ifndef KBV_CLI_PG_H
#define KBV_CLI_PG_H

#include <jansson.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/pg.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"

/* Stream entry e into a started child's stdin (fd), then wait for it. The stream is
 * verified before the child sees the end of its input; on any failure the child is
 * killed first. */
int cli_feed_child(struct kbv_reader *rd, const struct kbv_entry *e, pid_t pid, int fd, const char *what,
		   struct cli_progress *prog);

/* Restore entry e (verified) into fd. */
int cli_restore_to_fd(struct kbv_reader *rd, const struct kbv_entry *e, int fd);

struct kbv_qdrant;
/* The Qdrant source's configuration here, or, when it is not configured, `bare` filled
 * with the URL the snapshot recorded (no API key). */
const struct kbv_source_cfg *cli_qdrant_cfg(const struct kbv_snapsource *src, const json_t *meta,
					     struct kbv_source_cfg *bare);
/* A client for Qdrant source sc (its url, or `url`), with its API key and timeout. */
int cli_qdrant_open(const struct kbv_source_cfg *sc, const char *url, struct kbv_qdrant **q);
/* Upload every collection of a Qdrant source's snapshot to the server (sc's, or `url`)
 * as <collection><suffix>, then read back its point count; one object per collection
 * ({collection, restored_as, points, recorded_points}) is appended to `report`. */
int cli_qdrant_restore(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_source_cfg *sc,
		       const json_t *meta, const char *url, const char *suffix, json_t *report);

/* The postgres source `name` of s: its metadata (caller decrefs). */
int cli_pg_source(const struct kbv_snapshot *s, const char *name, json_t **meta);

/* Load the source described by `meta` (entries of s loaded) into database `db` on the
 * server `dsn` names. A plain SQL stream goes through psql in one transaction; its size
 * and hash are verified before psql sees the end of its input, and on any failure psql is
 * killed first, so nothing is committed. A directory-format dump is restored and verified
 * into a scratch directory, then loaded by pg_restore -j N. */
int cli_pg_load(struct kbv_reader *rd, const struct kbv_snapshot *s, const char *source, const json_t *meta, const char *dsn,
		const char *db, struct cli_progress *prog);

/* The client programs configured for source `source` (pg-bin-dir, client-command-prefix);
 * both NULL without a configuration. Borrowed from the configuration. */
void cli_pg_client(const char *source, struct kbv_pg_client *cl);

#endif
