/* PostgreSQL through libpq: one exported snapshot for everything a dump holds.
 *
 * Data path of kbv_pgdump_start() (format/snapshot.md, "Source metadata: postgres"):
 *
 *   session: REPEATABLE READ READ ONLY, pg_export_snapshot() -> S, metadata, table plan,
 *            ACCESS SHARE locks, sequence values
 *   thread:  native:  pg_dump --section=pre-data --snapshot=S
 *                     COPY (SELECT cols FROM ONLY t ORDER BY key) TO STDOUT, per table
 *                     setval() per sequence
 *                     pg_dump --section=post-data --snapshot=S
 *            pg_dump: pg_dump -Fp --snapshot=S
 *            everything -> the COPY-block scanner (rows, checksums) -> a 256 KiB
 *            buffer -> the pipe
 *
 * The reader of the pipe (the repository writer) sees a truncated stream if the thread
 * fails; kbv_pgdump_finish() reports the failure, and the caller records nothing. */
#include "kbv/pg.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/proc.h"
#include "pgconn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* what pg_dump and the other client programs run with (beside the conninfo's PGOPTIONS) */
static const char TOOL_OPTIONS[] = "-c TimeZone=UTC -c bytea_output=hex";

struct table {
	char *qname, *schema, *rel, *owner, *cols, *keys; /* keys: ORDER BY list, "" for none */
};

#define DUMP_OUT_BUF (256u << 10)

struct kbv_pgdump {
	char *source, *dsn;
	int native;
	PGconn *c;
	char what[160];
	char snapshot[128];
	struct kbv_pg_client client; /* borrowed from the options */
	json_t *meta;
	struct table *t;
	size_t nt;
	char *setvals; /* the sequence section, ready to emit */
	struct kbv_pgscan *scan;
	int wfd;
	/* the stream gathered before each write to wfd: rows come one by one from COPY, and a
	 * write(2) each (and a read(2) each on the writer's side) cost more than the rows */
	struct kbv_wbuf out;
	pthread_t th;
	int started;
	int rc;
	char err[1024];
};

static void dump_free(struct kbv_pgdump *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nt; i++) {
		struct table *t = &d->t[i];
		free(t->qname), free(t->schema), free(t->rel), free(t->owner), free(t->cols), free(t->keys);
	}
	free(d->t);
	free(d->setvals);
	kbv_wbuf_free(&d->out);
	json_decref(d->meta);
	kbv_pgscan_free(d->scan);
	if (d->c)
		PQfinish(d->c);
	if (d->wfd >= 0)
		close(d->wfd);
	free(d->source);
	free(d->dsn);
	free(d);
}

static int emit(struct kbv_pgdump *d, const void *p, size_t n)
{
	int rc = kbv_pgscan_feed(d->scan, p, n);
	return rc < 0 ? rc : kbv_wbuf_put(&d->out, p, n);
}

static int emit_str(struct kbv_pgdump *d, const char *s)
{
	return emit(d, s, strlen(s));
}

/* Run a client program with the source's environment; its output goes through the
 * scanner and, when `forward`, on into the dump stream. */
static int run_tool(struct kbv_pgdump *d, char *const argv[], const char *what, int forward)
{
	char buf[1 << 16];
	pid_t pid;
	int fd, p[2], rc;
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	rc = kbv_pg_client_spawn(&d->client, d->dsn, NULL, TOOL_OPTIONS, KBV_PG_CONN_ENV, argv, -1, p[1], &pid);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	fd = p[0];
	for (;;) {
		ssize_t got = read(fd, buf, sizeof buf);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = kbv_error(KBV_ESOURCE, "read %s's output: %s", what, strerror(errno));
			break;
		}
		if (got == 0)
			break;
		rc = forward ? emit(d, buf, (size_t)got) : kbv_pgscan_feed(d->scan, buf, (size_t)got);
		if (rc < 0)
			break;
	}
	close(fd);
	if (rc < 0) {
		kbv_cmd_finish(pid, what, 1);
		return rc;
	}
	return kbv_cmd_finish(pid, what, 0);
}

/* pg_dump -Fp [section] --snapshot=S, passed on into the stream. */
static int run_pg_dump(struct kbv_pgdump *d, const char *section)
{
	char snap[160], what[64];
	snprintf(snap, sizeof snap, "--snapshot=%s", d->snapshot);
	snprintf(what, sizeof what, "pg_dump%s%s", section ? " " : "", section ? section : "");
	char *argv[] = { "pg_dump", "-Fp", snap, (char *)section, NULL };
	return run_tool(d, argv, what, 1);
}

/* Comment text may not carry a line break into the script (psql meta-commands). */
static void comment_safe(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

static int copy_table(struct kbv_pgdump *d, const struct table *t)
{
	char line[1024];
	size_t len = strlen(t->schema) + strlen(t->rel) + strlen(t->owner) + strlen(t->qname) + strlen(t->cols) +
		     strlen(t->keys) + 256;
	char *s = malloc(len);
	int rc = 0;
	if (!s)
		return kbv_error(KBV_ENOMEM, "out of memory");
	char *schema = strdup(t->schema), *rel = strdup(t->rel), *owner = strdup(t->owner);
	if (!schema || !rel || !owner) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	comment_safe(schema), comment_safe(rel), comment_safe(owner);
	snprintf(s, len, "\n--\n-- Data for Name: %s; Type: TABLE DATA; Schema: %s; Owner: %s\n--\n\nCOPY %s%s%s%s FROM stdin;\n",
		 rel, schema, owner, t->qname, *t->cols ? " (" : "", t->cols, *t->cols ? ")" : "");
	TRY(emit_str(d, s));
	snprintf(s, len, "COPY (SELECT %s FROM ONLY %s%s%s) TO STDOUT", t->cols, t->qname, *t->keys ? " ORDER BY " : "",
		 t->keys);
	PGresult *r = PQexec(d->c, s);
	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		rc = kbv_error(KBV_ESOURCE, "COPY of table %s: %s", t->qname, kbv_pg_one_line(PQerrorMessage(d->c), line, sizeof line));
		PQclear(r);
		goto out;
	}
	PQclear(r);
	for (;;) {
		char *row = NULL;
		int n = PQgetCopyData(d->c, &row, 0);
		if (n == -1)
			break;
		if (n < 0) {
			rc = kbv_error(KBV_ESOURCE, "COPY of table %s: %s", t->qname,
				       kbv_pg_one_line(PQerrorMessage(d->c), line, sizeof line));
			goto out;
		}
		rc = emit(d, row, (size_t)n);
		PQfreemem(row);
		if (rc < 0)
			goto out;
	}
	while ((r = PQgetResult(d->c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
			rc = kbv_error(KBV_ESOURCE, "COPY of table %s: %s", t->qname,
				       kbv_pg_one_line(PQerrorMessage(d->c), line, sizeof line));
		PQclear(r);
	}
	if (rc == 0)
		rc = emit_str(d, "\\.\n\n\n");
out:
	free(schema), free(rel), free(owner);
	free(s);
	return rc;
}

static void *dump_thread(void *arg)
{
	struct kbv_pgdump *d = arg;
	int rc = 0;
	if (!d->native) {
		TRY(run_pg_dump(d, NULL));
	} else {
		TRY(run_pg_dump(d, "--section=pre-data"));
		for (size_t i = 0; i < d->nt; i++)
			TRY(copy_table(d, &d->t[i]));
		if (d->setvals)
			TRY(emit_str(d, d->setvals));
		TRY(run_pg_dump(d, "--section=post-data"));
	}
	rc = kbv_wbuf_flush(&d->out);
out:
	if (rc < 0) {
		d->rc = rc;
		snprintf(d->err, sizeof d->err, "%s", kbv_errmsg());
	}
	/* The reader sees the end of the stream; finish() tells it whether that was the end. */
	close(d->wfd);
	d->wfd = -1;
	return NULL;
}

static char *dupval(PGresult *r, int row, int col)
{
	return strdup(PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* The tables whose data a native dump holds, in a stable order, with their COPY column
 * list and the key to order rows by: the primary key, else the first valid unique index
 * without expressions or predicate whose key columns are all NOT NULL. */
static const char TABLES_SQL[] =
	"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname, "
	"       pg_get_userbyid(c.relowner), "
	"       coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a "
	"                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), ''), "
	"       coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) "
	"                 FROM (SELECT i.indkey, i.indnkeyatts FROM pg_index i "
	"                       WHERE i.indrelid = c.oid AND i.indisvalid AND (i.indisprimary OR (i.indisunique "
	"                         AND i.indexprs IS NULL AND i.indpred IS NULL AND NOT EXISTS ("
	"                           SELECT 1 FROM unnest(i.indkey::int2[]) u(attnum) JOIN pg_attribute na "
	"                           ON na.attrelid = c.oid AND na.attnum = u.attnum WHERE NOT na.attnotnull))) "
	"                       ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) ix, "
	"                      unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord) "
	"                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
	"                 WHERE k.ord <= ix.indnkeyatts), '') "
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind = 'r' AND c.relpersistence <> 't' "
	"  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
	"  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid "
	"                  AND e.deptype = 'e') "
	"ORDER BY n.nspname, c.relname";

static const char SEQS_SQL[] =
	"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
	"  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid "
	"                  AND e.deptype = 'e') "
	"ORDER BY n.nspname, c.relname";

static int plan_native(struct kbv_pgdump *d)
{
	PGresult *r = NULL;
	int rc = 0;
	char *buf = NULL;
	TRY(kbv_pg_exec(d->c, "SELECT count(*) FROM pg_largeobject_metadata", &r, d->what));
	long nlo = 0;
	if (kbv_parse_long(PQgetvalue(r, 0, 0), 0, LONG_MAX, &nlo) < 0) {
		rc = kbv_error(KBV_ESOURCE, "%s: the server answered a count of large objects that is not a number", d->what);
		goto out;
	}
	PQclear(r);
	r = NULL;
	if (nlo > 0) {
		rc = kbv_error(KBV_ESOURCE,
			       "%s: the database holds %ld large object(s), which mode = native does not dump; set "
			       "mode = pg_dump for this source",
			       d->what, nlo);
		goto out;
	}
	TRY(kbv_pg_exec(d->c,
			"SELECT coalesce(string_agg(extname, ', '), '') FROM pg_extension WHERE extconfig IS NOT NULL",
			&r, d->what));
	if (*PQgetvalue(r, 0, 0)) {
		rc = kbv_error(KBV_ESOURCE,
			       "%s: extension(s) %s keep configuration tables whose rows pg_dump dumps, which mode = "
			       "native does not reproduce; set mode = pg_dump for this source",
			       d->what, PQgetvalue(r, 0, 0));
		goto out;
	}
	PQclear(r);
	r = NULL;

	TRY(kbv_pg_exec(d->c, TABLES_SQL, &r, d->what));
	int n = PQntuples(r);
	d->t = calloc((size_t)n + 1, sizeof *d->t);
	if (!d->t) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct table *t = &d->t[i];
		d->nt++;
		t->qname = dupval(r, i, 0), t->schema = dupval(r, i, 1), t->rel = dupval(r, i, 2);
		t->owner = dupval(r, i, 3), t->cols = dupval(r, i, 4), t->keys = dupval(r, i, 5);
		if (!t->qname || !t->schema || !t->rel || !t->owner || !t->cols || !t->keys) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
	}
	PQclear(r);
	r = NULL;
	/* As pg_dump does: hold ACCESS SHARE on every table until the dump ends, so no
	 * ALTER, DROP, VACUUM FULL or CLUSTER can change one under us. */
	for (size_t i = 0; i < d->nt; i++) {
		char sql[1024 + 64];
		if (strlen(d->t[i].qname) > 1024) {
			rc = kbv_error(KBV_EINVAL, "%s: table name too long", d->what);
			goto out;
		}
		snprintf(sql, sizeof sql, "LOCK TABLE ONLY %s IN ACCESS SHARE MODE", d->t[i].qname);
		TRY(kbv_pg_exec(d->c, sql, NULL, d->what));
	}

	/* Sequence values: read now, written after the data, as pg_dump's SEQUENCE SET. */
	TRY(kbv_pg_exec(d->c, SEQS_SQL, &r, d->what));
	n = PQntuples(r);
	size_t cap = 256, len = 0;
	buf = malloc(cap);
	if (!buf) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	len = (size_t)snprintf(buf, cap, "\n--\n-- Sequence values\n--\n\n");
	for (int i = 0; i < n; i++) {
		const char *seq = PQgetvalue(r, i, 0);
		char sql[1100];
		PGresult *v = NULL;
		if (strlen(seq) > 1024) {
			rc = kbv_error(KBV_EINVAL, "%s: sequence name too long", d->what);
			goto out;
		}
		snprintf(sql, sizeof sql, "SELECT last_value, is_called FROM %s", seq);
		TRY(kbv_pg_exec(d->c, sql, &v, d->what));
		char *lit = PQescapeLiteral(d->c, seq, strlen(seq));
		size_t need = len + strlen(lit ? lit : "") + 128;
		if (lit && need > cap) {
			while (cap < need)
				cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				PQfreemem(lit);
				PQclear(v);
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			buf = nb;
		}
		if (lit)
			len += (size_t)snprintf(buf + len, cap - len, "SELECT pg_catalog.setval(%s, %s, %s);\n", lit,
						PQgetvalue(v, 0, 0), !strcmp(PQgetvalue(v, 0, 1), "t") ? "true" : "false");
		PQfreemem(lit);
		PQclear(v);
		if (!lit) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (n > 0) {
		d->setvals = buf;
		buf = NULL;
	}
out:
	free(buf);
	PQclear(r);
	return rc;
}

/* Connect, open the transaction, export the snapshot, read the metadata (and the table
 * plan in native mode), and prepare the client programs' environment. */
static int dump_open(const struct kbv_pg_opts *o, struct kbv_pgdump **out)
{
	struct kbv_pgdump *d = calloc(1, sizeof *d);
	PGresult *r = NULL;
	int rc = 0;
	if (!d)
		return kbv_error(KBV_ENOMEM, "out of memory");
	d->wfd = -1;
	d->native = o->native;
	d->source = strdup(o->source);
	d->dsn = strdup(o->dsn);
	d->scan = kbv_pgscan_new();
	d->meta = json_object();
	if (!d->source || !d->dsn || !d->scan || !d->meta) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(d->what, sizeof d->what, "PostgreSQL source '%s'", o->source);
	TRY(kbv_pg_connect(o->dsn, NULL, d->what, &d->c));
	TRY(kbv_pg_exec(d->c,
			"SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba), datacl::text "
			"FROM pg_database WHERE datname = current_database()",
			&r, d->what));
	json_object_set_new(d->meta, "mode", json_string(d->native ? "native" : "pg_dump"));
	json_object_set_new(d->meta, "format", json_string(o->jobs ? "directory" : "plain"));
	if (o->jobs)
		json_object_set_new(d->meta, "jobs", json_integer(o->jobs));
	json_object_set_new(d->meta, "encoding", json_string(PQgetvalue(r, 0, 0)));
	json_object_set_new(d->meta, "collate", json_string(PQgetvalue(r, 0, 1)));
	json_object_set_new(d->meta, "ctype", json_string(PQgetvalue(r, 0, 2)));
	/* What pg_dump leaves out without --create: who owns the database and who may connect
	 * to it (on PostgreSQL 15 the owner is who may create tables in public). */
	json_object_set_new(d->meta, "owner", json_string(PQgetvalue(r, 0, 3)));
	if (!PQgetisnull(r, 0, 4))
		json_object_set_new(d->meta, "database_acl", json_string(PQgetvalue(r, 0, 4)));
	TRY(kbv_pg_session_setup(d->c, PQgetvalue(r, 0, 0), d->what));
	PQclear(r);
	r = NULL;
	TRY(kbv_pg_exec(d->c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, d->what));
	TRY(kbv_pg_exec(d->c,
			"SELECT pg_export_snapshot(), current_database(), pg_database_size(current_database()), "
			"(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text, "
			"current_setting('server_version'), current_setting('server_version_num')::int",
			&r, d->what));
	snprintf(d->snapshot, sizeof d->snapshot, "%s", PQgetvalue(r, 0, 0));
	json_object_set_new(d->meta, "database", json_string(PQgetvalue(r, 0, 1)));
	json_object_set_new(d->meta, "database_size", json_integer(strtoll(PQgetvalue(r, 0, 2), NULL, 10)));
	json_object_set_new(d->meta, "wal_lsn", json_string(PQgetvalue(r, 0, 3)));
	json_object_set_new(d->meta, "server_version", json_string(PQgetvalue(r, 0, 4)));
	json_object_set_new(d->meta, "server_version_num", json_integer(strtoll(PQgetvalue(r, 0, 5), NULL, 10)));
	json_object_set_new(d->meta, "snapshot", json_string(d->snapshot));
	PQclear(r);
	r = NULL;
	if (d->native)
		TRY(plan_native(d));
	/* pg_dump refuses a server newer than itself; say so before anything runs, and how
	 * to give it a client of the server's version. */
	int major, server_major = (int)(json_integer_value(json_object_get(d->meta, "server_version_num")) / 10000);
	TRY(kbv_pg_client_major(&o->client, "pg_dump", &major));
	if (major < server_major) {
		rc = kbv_error(KBV_ESOURCE,
			       "pg_dump is version %d and the server %d: a client older than the server cannot dump "
			       "it; set pg-bin-dir to the directory of a pg_dump %d or newer, or client-command-prefix "
			       "to run the server's own (docker exec ...)",
			       major, server_major, server_major);
		goto out;
	}
	json_object_set_new(d->meta, "client_major", json_integer(major));
	d->client.bin_dir = o->client.bin_dir;
	d->client.prefix = o->client.prefix;
	*out = d;
	d = NULL;
out:
	PQclear(r);
	dump_free(d);
	return rc;
}

/* The scanner's figures into the metadata; hands the metadata to *meta. */
static int dump_meta(struct kbv_pgdump *d, json_t **meta)
{
	int rc = kbv_pgscan_end(d->scan);
	if (rc < 0)
		return kbv_error_prefix(rc, "%s", d->what);
	size_t n;
	const struct kbv_pgtable *t = kbv_pgscan_tables(d->scan, &n);
	/* In native mode we wrote the COPY blocks ourselves: the scanner must have seen
	 * exactly those. Anything else is a bug, and the figures would be wrong. */
	if (d->native && n != d->nt)
		return kbv_error(KBV_EINTERNAL, "%s: wrote %zu tables but read back %zu", d->what, d->nt, n);
	json_t *tables = json_array();
	for (size_t i = 0; i < n; i++) {
		char sum[17];
		if (d->native && strcmp(t[i].name, d->t[i].qname) != 0) {
			json_decref(tables);
			return kbv_error(KBV_EINTERNAL, "%s: wrote table %s but read back %s", d->what, d->t[i].qname,
					 t[i].name);
		}
		kbv_pg_sum_hex(t[i].sum, sum);
		json_array_append_new(tables, json_pack("{s:s, s:s, s:I, s:s, s:s}", "name", t[i].name, "columns",
							t[i].columns, "rows", (json_int_t)t[i].rows, "order",
							d->native && *d->t[i].keys ? "key" : "physical", "checksum", sum));
	}
	json_object_set_new(d->meta, "tables", tables);
	const char *tool = kbv_pgscan_dump_tool(d->scan);
	json_object_set_new(d->meta, "dump_tool", json_string(tool ? tool : ""));
	*meta = d->meta;
	d->meta = NULL;
	return 0;
}

int kbv_pgdump_start(const struct kbv_pg_opts *o, struct kbv_pgdump **out, int *fd)
{
	struct kbv_pgdump *d = NULL;
	int p[2] = { -1, -1 }, rc = 0;
	if (o->jobs)
		return kbv_error(KBV_EINVAL, "a directory-format dump is taken with kbv_pgdump_to_dir()");
	TRY(dump_open(o, &d));
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	d->wfd = p[1];
	p[1] = -1;
	TRY(kbv_wbuf_init(&d->out, d->wfd, DUMP_OUT_BUF, "the dump stream"));
	int e = pthread_create(&d->th, NULL, dump_thread, d);
	if (e != 0) {
		rc = kbv_error(KBV_EIO, "cannot start the dump thread: %s", strerror(e));
		goto out;
	}
	d->started = 1;
	*fd = p[0];
	p[0] = -1;
	*out = d;
	d = NULL;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	dump_free(d);
	return rc;
}

int kbv_pgdump_to_dir(const struct kbv_pg_opts *o, const char *dir, json_t **meta)
{
	struct kbv_pgdump *d = NULL;
	char snap[160], jobs[16];
	int rc = 0;
	if (o->native || o->jobs < 1)
		return kbv_error(KBV_EINVAL, "a directory-format dump needs mode = pg_dump and jobs >= 1");
	TRY(dump_open(o, &d));
	snprintf(snap, sizeof snap, "--snapshot=%s", d->snapshot);
	snprintf(jobs, sizeof jobs, "%d", o->jobs);
	char *dump[] = { "pg_dump", "-Fd", "-Z0", "-j", jobs, snap, "-f", (char *)dir, NULL };
	TRY(run_tool(d, dump, "pg_dump -Fd", 0));
	/* The figures: pg_restore writes the data back out as a plain script, which the
	 * scanner reads like any other (no server involved). */
	char *scan[] = { "pg_restore", "--data-only", "-f", "-", (char *)dir, NULL };
	TRY(run_tool(d, scan, "pg_restore --data-only", 0));
	TRY(dump_meta(d, meta));
out:
	if (rc < 0 && d)
		kbv_error_prefix(rc, "%s", d->what);
	dump_free(d);
	return rc;
}

int kbv_pgdump_finish(struct kbv_pgdump *d, json_t **meta)
{
	int rc = 0;
	pthread_join(d->th, NULL);
	if (d->rc < 0)
		rc = kbv_error(d->rc, "%s: %s", d->what, d->err);
	else
		rc = dump_meta(d, meta);
	dump_free(d);
	return rc;
}
