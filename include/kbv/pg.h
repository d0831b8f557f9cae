/* PostgreSQL sources through libpq: consistent dumps (native or pg_dump mode), loading a
 * dump into a new database, and verifying a restored database against the figures a
 * snapshot recorded (format/snapshot.md, "Source metadata: postgres"). Never prints;
 * pg_dump, pg_dumpall and psql write their own diagnostics to stderr. */
#ifndef KBV_PG_H
#define KBV_PG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- The COPY-block scanner: per-table rows and checksums of a plain SQL dump. ---- */

struct kbv_pgtable {
	char *name;    /* schema-qualified, quoted as in the COPY line */
	char *columns; /* the COPY line's column list; "" when it has none */
	uint64_t rows;
	uint64_t sum; /* sum mod 2^64 of XXH3-64 of every row line (order does not matter) */
};

struct kbv_pgscan;
struct kbv_pgscan *kbv_pgscan_new(void);
/* Feed the next bytes of the stream. KBV_ENOMEM only. */
int kbv_pgscan_feed(struct kbv_pgscan *s, const void *p, size_t n);
/* The stream ended: KBV_ESOURCE when it ended inside a COPY block (a truncated dump). */
int kbv_pgscan_end(struct kbv_pgscan *s);
const struct kbv_pgtable *kbv_pgscan_tables(const struct kbv_pgscan *s, size_t *n);
/* The version pg_dump wrote into its "-- Dumped by pg_dump version X" line, or NULL. */
const char *kbv_pgscan_dump_tool(const struct kbv_pgscan *s);
void kbv_pgscan_free(struct kbv_pgscan *s);

/* The order-independent row checksum, as 16 hex digits plus NUL. */
void kbv_pg_sum_hex(uint64_t sum, char out[17]);

/* ---- Dumping ---- */

/* Where PostgreSQL's client programs (pg_dump, pg_dumpall, psql, pg_restore) come from. */
struct kbv_pg_client {
	const char *bin_dir; /* run them from this directory (NULL: from PATH) */
	/* Words run in front of them, e.g. "docker exec -i -e PGPASSWORD kb-postgres-1": the
	 * client then runs where the server is. An environment does not cross such a prefix,
	 * so the connection settings (all but the password) go on the command line as a
	 * connection string; the password stays in PGPASSWORD of the prefix's environment. */
	const char *prefix;
};

struct kbv_pg_opts {
	const char *source; /* source name, for messages */
	struct kbv_pg_client client;
	const char *dsn;    /* libpq conninfo; never put into a message */
	int native;         /* 1: native mode (key-ordered COPY); 0: stock pg_dump */
	int jobs;           /* 0: one plain SQL stream; N: pg_dump -Fd -Z0 -j N (pg_dump mode) */
};

struct kbv_pgdump;

/* Connect, open a REPEATABLE READ READ ONLY transaction, export its snapshot, read what
 * the metadata needs, and start writing the database's SQL stream to *fd from a thread of
 * its own. Read *fd to its end (or stop early), close it, then call kbv_pgdump_finish().
 * KBV_ESOURCE for anything the server or pg_dump refuses. */
int kbv_pgdump_start(const struct kbv_pg_opts *o, struct kbv_pgdump **out, int *fd);

/* Directory format (o->jobs > 0, pg_dump mode): pg_dump -Fd -Z0 -j N --snapshot=S into
 * `dir` (which must not exist), then the per-table figures from pg_restore's data-only
 * script. On success *meta is the source metadata. The caller stores and removes `dir`. */
int kbv_pgdump_to_dir(const struct kbv_pg_opts *o, const char *dir, json_t **meta);

/* Wait for the dump and free it. Returns 0 only when the whole stream was written; then
 * *meta is the source metadata (a JSON object the caller owns). */
int kbv_pgdump_finish(struct kbv_pgdump *d, json_t **meta);

/* ---- Client programs ---- */

/* An environment for pg_dump, pg_dumpall or psql connecting as `dsn` says (each conninfo
 * setting becomes its PG* variable, so no password shows in a process listing), with the
 * database replaced by `dbname` when not NULL. NULL-terminated; free with kbv_pg_env_free. */
int kbv_pg_env(const char *dsn, const char *dbname, char ***env);
void kbv_pg_env_free(char **env);

/* How a client program connects: through its environment (behind a prefix, also
 * --dbname=<connection string>), always with --dbname (pg_restore), or not at all. */
enum { KBV_PG_CONN_ENV, KBV_PG_CONN_ARG, KBV_PG_CONN_NONE };
/* Start the client program tool_argv[0] ("pg_dump") with tool_argv's arguments as `cl`
 * says (NULL: from PATH), connecting as `dsn` says to database `dbname` (NULL: the dsn's),
 * with `add_options` added to the server options; stdin from in_fd, stdout to out_fd (-1:
 * /dev/null). The password never reaches its command line. */
int kbv_pg_client_spawn(const struct kbv_pg_client *cl, const char *dsn, const char *dbname, const char *add_options,
			int conn, char *const tool_argv[], int in_fd, int out_fd, pid_t *pid);
/* The major version `program --version` prints (15 for "pg_dump (PostgreSQL) 15.5"). */
int kbv_pg_client_major(const struct kbv_pg_client *cl, const char *program, int *major);

/* What a physical backup needs to know of a server, asked over a replication connection
 * (what a base backup's role may do): IDENTIFY_SYSTEM and a few settings. */
struct kbv_pg_cluster {
	char sysid[24];       /* system identifier, decimal */
	uint32_t timeline;
	char lsn[24];         /* current WAL flush position, "0/3000148" */
	uint64_t seg_size;    /* wal_segment_size, bytes */
	char archive_mode[16]; /* "on", "always", "off" */
	int version;          /* server_version_num */
};
int kbv_pg_cluster_facts(const char *dsn, const char *what, struct kbv_pg_cluster *out);

/* ---- Restoring and verifying ---- */

/* Who owns a database kbv_pg_create_db() makes. */
struct kbv_pg_owner {
	int restore;       /* give it the recorded owner and database ACL ("owner", "database_acl") */
	const char *owner; /* this role instead of the recorded owner (must exist) */
	/* Out: roles the recorded owner or ACL names that do not exist on the target server
	 * (left out; the database then belongs to the connecting role), or "" */
	char missing[256];
};

/* Create database `name` on the server `dsn` points at, with the encoding and locale that
 * `meta` recorded (TEMPLATE template0) and the owner `o` asks for (NULL: the connecting
 * role). When it exists: empty -> used as it is; holding relations -> KBV_EEXIST, unless
 * `force`, which drops and recreates it. A role without CREATEDB gets an error that says
 * so and points to --target-dsn. */
int kbv_pg_create_db(const char *dsn, const char *name, const json_t *meta, int force, struct kbv_pg_owner *o);
int kbv_pg_drop_db(const char *dsn, const char *name);

/* Start `psql` loading a plain SQL stream into database `dbname` (ON_ERROR_STOP, one
 * transaction). Write the stream to *fd, close it, then kbv_cmd_finish(pid, ...). */
int kbv_pg_load_start(const char *dsn, const char *dbname, const struct kbv_pg_client *cl, pid_t *pid, int *fd);

/* Load a directory-format dump with pg_restore --exit-on-error -j jobs into `dbname`. Not
 * one transaction: on failure the database holds part of the dump. */
int kbv_pg_restore_dir(const char *dsn, const char *dbname, const char *dir, int jobs, const struct kbv_pg_client *cl);

struct kbv_pg_verdict {
	size_t tables;     /* tables compared */
	uint64_t rows;     /* rows counted */
	json_t *mismatches; /* array of strings, one per table that differed */
};

/* Compare database `dbname` with the tables `meta` recorded: row counts, and with
 * `checksums` the order-independent row checksum. v->mismatches is always set on return
 * 0 (caller decrefs); a difference is not an error. */
int kbv_pg_verify(const char *dsn, const char *dbname, const json_t *meta, int checksums,
		  struct kbv_pg_verdict *v);

#endif
