/* Source kinds as a table (src/sources/kinds.c): each kind registers its type name and the
 * configuration keys, the function that dumps a configured source into a snapshot's sink,
 * its drill and its restore. Adding a kind is one new file in src/sources/ and one entry in
 * the table (plus its type in source.h, and a field there for each key no kind had).
 *
 * A kind writes streams named "<source>/..." into the sink and returns, in *meta, the JSON
 * object the manifest records for the source (format/snapshot.md, "Source metadata"). It
 * reports through the sink's events and never prints. */
#ifndef KBV_KINDS_H
#define KBV_KINDS_H

#include <jansson.h>

#include "kbv/source.h"
#include "kbv/load.h"
#include "kbv/qdrant.h"
#include "kbv/reader.h"
#include "kbv/sink.h"

/* What a drill of one recorded source gets. */
struct kbv_pg_recovery;
struct kbv_drill_ctx {
	struct kbv_reader *rd;
	const struct kbv_snapshot *s;        /* entries loaded */
	const struct kbv_snapsource *src;    /* the source as the snapshot recorded it */
	const struct kbv_source_cfg *sc;     /* its configuration here, or NULL */
	const char *pg_dsn;                  /* [drill] postgres-dsn */
	const struct kbv_progress *progress; /* may be NULL */
	const struct kbv_sink_events *ev;    /* warnings (scratch copies left behind); may be NULL */
	/* PostgreSQL base backups: where recovery stops and how the scratch server runs
	 * wal-fetch (kbv/pgbase.h); NULL elsewhere */
	const struct kbv_pg_recovery *recovery;
};

/* What a restore of one recorded source back into its system gets. */
struct kbv_restore_ctx {
	struct kbv_reader *rd;
	const struct kbv_snapshot *s;        /* entries loaded */
	const struct kbv_snapsource *src;
	const struct kbv_source_cfg *sc;     /* its configuration here, or NULL */
	int force;                           /* PostgreSQL: replace a database that holds tables */
	const char *owner;                   /* PostgreSQL: the database's owner (NULL: as recorded) */
	const char *target_url, *suffix;     /* Qdrant: another server; collection names + suffix */
	const struct kbv_progress *progress; /* may be NULL */
	const struct kbv_sink_events *ev;    /* warnings; may be NULL */
};

/* What a restore reports, for the caller to show: the object `report` gets
 *   "lines":  array of strings, what was done (shown unless the user asked for quiet;
 *             "always": true shows them even then),
 *   "errors": array of strings, each a way the result differs from the snapshot,
 *   "json":   the machine-readable result, when the kind has one ("has_json": true) and
 *             the restore ran; a caller asked for JSON shows it instead of the lines. */

/* Add a printf-formatted line to the report's array `key` ("lines", "errors"). */
void kbv_report_add(json_t *report, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What a restore into the source needs that the configuration lacks. */
#define KBV_RESTORE_IN_PLACE 1u /* writes files back where they were: only with --in-place */
#define KBV_RESTORE_URL 2u      /* takes --target-url and --collection-suffix */

/* What a kind's drill needs from the configuration, checked before it runs. */
#define KBV_DRILL_NEEDS_PG_DSN 1u       /* [drill] postgres-dsn: else a usage error */
#define KBV_DRILL_NEEDS_LOAD_COMMAND 2u /* the source's drill-load-command: else skipped */

struct kbv_source_kind {
	enum kbv_source_type type;
	const char *name; /* as in the configuration: "postgres" */
	/* Dump source sc into s; *meta is the caller's (json_decref) on success. A failure
	 * leaves entries in the sink that the caller must not commit. */
	int (*snapshot)(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);
	/* Restore the recorded source somewhere scratch and check it against what the
	 * snapshot recorded; fills `res` (the verdict object: summary, mismatches, figures)
	 * and *ok. Returns 0 when the drill ran (pass or fail), or the error that stopped it.
	 * Scratch copies are removed in every case. */
	int (*drill)(const struct kbv_drill_ctx *d, json_t *res, int *ok);
	unsigned drill_needs; /* KBV_DRILL_NEEDS_* */
	/* Restore the recorded source back into its system (NULL: this kind cannot; give
	 * --target DIR); fills `report` as above, sets *mismatch when the verified result
	 * differs from the snapshot. Returns 0 when the restore ran. */
	int (*restore)(const struct kbv_restore_ctx *c, json_t *report, int *mismatch);
	/* What restoring into the source needs from its configuration sc (may be NULL) and sc
	 * lacks ("its restore-command"), or NULL when nothing is missing. NULL: nothing. */
	const char *(*restore_needs)(const struct kbv_source_cfg *sc);
	unsigned restore_flags; /* KBV_RESTORE_* */
	/* The keys its [source] section may have besides 'type'; ends with { NULL }. */
	const struct kbv_source_key *keys;
	/* Checks of the values (NULL: none): 0, or -1 with what is wrong in msg ("mode must be
	 * native or pg_dump, not 'x'"); the configuration adds file, line and source name. */
	int (*check)(const struct kbv_source_cfg *sc, char *msg, size_t cap);
};

/* The kind of a type, or NULL when this build has none. */
const struct kbv_source_kind *kbv_source_kind(enum kbv_source_type type);
/* The kind named `name` as a snapshot records it ("postgres"), or NULL. */
const struct kbv_source_kind *kbv_source_kind_named(const char *name);
/* The name of a type ("postgres"; "?" when there is none); static storage. */
const char *kbv_source_type_name(int type);
/* The kinds' names for a message, "postgres, qdrant, ...", into out. */
void kbv_source_kind_list(char *out, size_t cap);

/* Dump one configured source through its kind: KBV_EINVAL naming it when the kind is not
 * supported. */
int kbv_source_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);

/* The kinds' functions (one file each in src/sources/). */
int kbv_kind_postgres_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);
int kbv_kind_qdrant_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);
int kbv_kind_command_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);
int kbv_kind_path_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta);
int kbv_kind_postgres_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok);
/* The drill of a PostgreSQL base backup (src/sources/pgdrill.c). */
int kbv_pgbase_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok);
int kbv_kind_qdrant_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok);
int kbv_kind_command_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok);
int kbv_kind_path_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok);
int kbv_kind_postgres_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch);
int kbv_kind_qdrant_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch);
int kbv_kind_command_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch);
int kbv_kind_path_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch);
const char *kbv_kind_postgres_restore_needs(const struct kbv_source_cfg *sc);
extern const struct kbv_source_key kbv_kind_postgres_keys[], kbv_kind_qdrant_keys[], kbv_kind_neo4j_keys[],
	kbv_kind_command_keys[], kbv_kind_path_keys[];
int kbv_kind_postgres_check(const struct kbv_source_cfg *sc, char *msg, size_t cap);
int kbv_kind_qdrant_check(const struct kbv_source_cfg *sc, char *msg, size_t cap);
const char *kbv_kind_command_restore_needs(const struct kbv_source_cfg *sc);
const char *kbv_kind_neo4j_restore_needs(const struct kbv_source_cfg *sc);

/* PostgreSQL: create database `db` on the server `dsn` names (owner and access list as
 * the snapshot recorded, or `owner`; `force` replaces one that holds tables), load the
 * source `source` of s into it with the client programs of `client`, and compare row
 * counts and checksums with the snapshot; fills `report` as a restore does. Shared by
 * the kind's restore and `restore --target-db`. */
int kbv_pg_restore_db(const struct kbv_restore_ctx *c, const char *source, const char *db, const char *dsn,
		      const struct kbv_pg_client *client, json_t *report, int *mismatch);

/* PostgreSQL: one table of source `source` (native or plain pg_dump snapshot; kbv/pgtable.h
 * says what comes with it): into database `db` on `dsn` (created as recorded when missing;
 * an existing one is used as it is, and must not have the table), its rows then compared
 * with the snapshot's count and checksum; or, db NULL, as SQL to standard output. `table`
 * is schema.table, or a name one schema has; KBV_ENOTFOUND lists close names. */
int kbv_pg_restore_table(const struct kbv_restore_ctx *c, const char *source, const char *table, const char *db,
			 const char *dsn, const struct kbv_pg_client *client, json_t *report, int *mismatch);

/* A Qdrant client for source sc (its url, or `url` when non-NULL; its api-key-file, read
 * and wiped; its timeout). Used by snapshot, restore and drill. */
int kbv_qdrant_connect(const struct kbv_source_cfg *sc, const char *url, struct kbv_qdrant **q);

/* The Qdrant source's configuration: sc when it is one (configured here), else `bare`
 * filled with the URL the snapshot recorded (no API key): a new host restores from the
 * server the snapshot came from. */
const struct kbv_source_cfg *kbv_qdrant_source_cfg(const struct kbv_source_cfg *sc, const struct kbv_snapsource *src,
						   const json_t *meta, struct kbv_source_cfg *bare);
/* Upload every collection of a Qdrant source's snapshot (entries of s loaded) to the
 * server (sc's, or `url`) as <collection><suffix>, each restored and verified into a
 * scratch file first, then read back its point count; one object per collection
 * ({collection, restored_as, points, recorded_points}) is appended to `report`. */
int kbv_qdrant_restore_source(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_source_cfg *sc,
			      const json_t *meta, const char *url, const char *suffix, json_t *report);

#endif
