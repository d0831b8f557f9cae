/* PostgreSQL pieces of restore and drill. */
#ifndef KBV_CLI_PG_H
#define KBV_CLI_PG_H

#include <jansson.h>

#include "cli.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"

/* The postgres source `name` of s (entries loaded): its metadata (caller decrefs) and the
 * entry holding its SQL stream. */
int cli_pg_source(const struct kbv_snapshot *s, const char *name, json_t **meta, const struct kbv_entry **db);

/* Stream entry e into database `db` on the server `dsn` names, through psql in one
 * transaction. The stream's size and hash are verified before psql sees the end of its
 * input; on any failure psql is killed first, so nothing is committed. */
int cli_pg_load(struct kbv_reader *rd, const struct kbv_entry *e, const char *dsn, const char *db,
		struct cli_progress *prog);

#endif
