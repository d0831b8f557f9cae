/* Source kind "postgres": one consistent dump of a database (native key-ordered COPY or
 * pg_dump, src/sources/pgdump.c) as "<source>/database.sql", or pg_dump -Fd -j N spooled into
 * the repository's tmp/ as "<source>/dump/..."; with globals = yes, pg_dumpall
 * --globals-only as "<source>/globals.sql". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/kinds.h"
#include "kbv/load.h"
#include "kbv/pg.h"
#include "kbv/pgbase.h"
#include "kbv/pgtable.h"
#include "kbv/proc.h"

/* Roles and tablespaces: pg_dumpall --globals-only as "<source>/globals.sql". */
static int add_globals(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t *streams)
{
	char name[256], what[160];
	pid_t pid;
	int p[2];
	char *argv[] = { "pg_dumpall", "--globals-only", NULL };
	struct kbv_pg_client cl = { sc->pg_bin_dir, sc->client_command_prefix };
	snprintf(name, sizeof name, "%s/globals.sql", sc->name);
	snprintf(what, sizeof what, "pg_dumpall --globals-only of PostgreSQL source '%s'", sc->name);
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	int rc = kbv_pg_client_spawn(&cl, sc->dsn, NULL, NULL, KBV_PG_CONN_ENV, argv, -1, p[1], &pid);
	close(p[1]);
	if (rc < 0)
		close(p[0]);
	else
		rc = kbv_sink_child(c, name, pid, p[0], what);
	if (rc == 0)
		json_object_set_new(streams, "globals", json_string(name));
	return rc;
}

int kbv_kind_postgres_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char name[256], what[160];
	struct kbv_pgdump *d;
	int fd, native = !sc->mode || !strcmp(sc->mode, "native");
	struct kbv_pg_opts o = { .source = sc->name, .client = { sc->pg_bin_dir, sc->client_command_prefix },
				 .dsn = sc->dsn, .native = native };
	if (sc->mode && !strcmp(sc->mode, "physical"))
		return kbv_pgbase_snapshot(c, sc, meta);
	json_t *streams = json_object();

	if (sc->jobs) {
		/* pg_dump -Fd -j N writes files; they are spooled into the repository's tmp/ and
		 * stored as entries "<source>/dump/...". */
		char tmp[PATH_MAX], dir[PATH_MAX + 64];
		long jobs;
		int rc = kbv_parse_long(sc->jobs, 1, 64, &jobs);
		if (rc < 0)
			return kbv_error(rc, "source '%s': jobs must be 1..64, not '%s'", sc->name, sc->jobs);
		o.jobs = (int)jobs;
		rc = kbv_repo_sub(kbv_sink_repo(c), "tmp", tmp, sizeof tmp);
		snprintf(dir, sizeof dir, "%s/pgdump-%s-%ld", tmp, sc->name, (long)getpid());
		snprintf(name, sizeof name, "%s/dump", sc->name);
		kbv_rmdir_flat(dir);
		if (rc == 0)
			rc = kbv_pgdump_to_dir(&o, dir, meta);
		if (rc == 0)
			rc = kbv_sink_tree(c, dir, name, NULL);
		kbv_rmdir_flat(dir);
		if (rc == 0)
			json_object_set_new(streams, "directory", json_string(name));
		if (rc == 0 && kbv_parse_bool(sc->globals) == 1)
			rc = add_globals(c, sc, streams);
		if (rc == 0)
			json_object_set(*meta, "streams", streams);
		json_decref(streams);
		return rc;
	}
	snprintf(name, sizeof name, "%s/database.sql", sc->name);
	snprintf(what, sizeof what, "the dump of PostgreSQL source '%s'", sc->name);
	int rc = kbv_pgdump_start(&o, &d, &fd);
	if (rc < 0)
		goto out;
	rc = kbv_sink_fd(c, name, fd, what);
	close(fd); /* a dump still writing now fails with EPIPE and stops */
	int rc2 = kbv_pgdump_finish(d, meta);
	if (rc < 0 || (rc = rc2) < 0)
		goto out;
	json_object_set_new(streams, "database", json_string(name));

	if (kbv_parse_bool(sc->globals) == 1 && (rc = add_globals(c, sc, streams)) < 0)
		goto out;
	json_object_set(*meta, "streams", streams);
out:
	json_decref(streams);
	return rc;
}

/* A base backup (mode = physical) is not a dump: it restores into a data directory. */
static int refuse_physical(const struct kbv_snapshot *s, const char *source, const char *doing)
{
	if (!kbv_pg_is_physical(s, source))
		return 0;
	return kbv_error(KBV_EINVAL,
			 "source '%s' holds a base backup (mode = physical): %s; restore it with --source %s --target-dir "
			 "DIR [--target-time TIME]",
			 source, doing, source);
}

/* drill: restored into a scratch database on [drill] postgres-dsn, row counts and row
 * checksums compared with what the snapshot recorded, the scratch database dropped. */
int kbv_kind_postgres_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok)
{
	struct kbv_reader *rd = d->rd;
	const struct kbv_snapshot *s = d->s;
	const char *source = d->src->name, *dsn = d->pg_dsn;
	struct kbv_pg_client cl = { d->sc ? d->sc->pg_bin_dir : NULL, d->sc ? d->sc->client_command_prefix : NULL };
	json_t *meta = NULL;
	struct kbv_pg_verdict v = { 0 };
	char scratch[64], id[2 * KBV_ID_BYTES + 1];
	int rc = 0, created = 0;
	kbv_hex(s->id, KBV_ID_BYTES, id);
	snprintf(scratch, sizeof scratch, "kbvault_drill_%.8s_%ld", id, (long)getpid());
	*ok = 0;
	if (kbv_pg_is_physical(s, source))
		return kbv_pgbase_drill(d, res, ok); /* a base backup: recovered in a scratch server */
	TRY(kbv_pg_source_meta(s, source, &meta));
	/* force: a scratch database of this name can only be the leftover of a drill killed
	 * before it could drop it. */
	TRY(kbv_pg_create_db(dsn, scratch, meta, 1, NULL));
	created = 1;
	TRY(kbv_pg_load_snapshot(rd, s, &cl, meta, dsn, scratch, d->progress));
	TRY(kbv_pg_verify(dsn, scratch, meta, 1, &v));
	json_object_set_new(res, "tables", json_integer((json_int_t)v.tables));
	json_object_set_new(res, "rows", json_integer((json_int_t)v.rows));
	json_object_set(res, "mismatches", v.mismatches);
	*ok = json_array_size(v.mismatches) == 0;
	char sum[200];
	snprintf(sum, sizeof sum, "restored into a scratch database; %zu tables, %llu rows, row counts and checksums match",
		 v.tables, (unsigned long long)v.rows);
	json_object_set_new(res, "summary", json_string(sum));
out:
	if (d->progress && d->progress->done)
		d->progress->done(d->progress->arg);
	if (created) {
		int drc = kbv_pg_drop_db(dsn, scratch);
		if (drc < 0) {
			kbv_events_warn(d->ev, "%s (drop it by hand)", kbv_errmsg());
			if (rc == 0)
				rc = drc;
		}
	}
	json_decref(v.mismatches);
	json_decref(meta);
	return rc;
}

int kbv_pg_restore_db(const struct kbv_restore_ctx *c, const char *source, const char *db, const char *dsn,
		      const struct kbv_pg_client *client, json_t *report, int *mismatch)
{
	struct kbv_pg_owner own = { .restore = 1, .owner = c->owner };
	json_t *meta = NULL;
	struct kbv_pg_verdict v = { 0 };
	char id[2 * KBV_ID_BYTES + 1];
	int rc = 0;
	kbv_hex(c->s->id, KBV_ID_BYTES, id);
	json_object_set_new(report, "has_json", json_true());
	TRY(refuse_physical(c->s, source, "it does not load into a database"));
	TRY(kbv_pg_source_meta(c->s, source, &meta));
	TRY(kbv_pg_create_db(dsn, db, meta, c->force, &own));
	if (*own.missing)
		kbv_events_warn(c->ev,
				"database '%s': %s %s named by the snapshot as owner or in its access list %s not exist on "
				"this server and %s left out (the database belongs to the role you connect as): create the "
				"roles (globals = yes keeps them) or give --owner ROLE",
				db, strchr(own.missing, ',') ? "roles" : "role", own.missing,
				strchr(own.missing, ',') ? "do" : "does", strchr(own.missing, ',') ? "were" : "was");
	TRY(kbv_pg_load_snapshot(c->rd, c->s, client, meta, dsn, db, c->progress));
	if (c->progress && c->progress->done)
		c->progress->done(c->progress->arg);
	TRY(kbv_pg_verify(dsn, db, meta, 0, &v));
	size_t nbad = json_array_size(v.mismatches), i;
	json_t *m;
	json_array_foreach(v.mismatches, i, m) {
		kbv_report_add(report, "errors", "database '%s': %s", db, json_string_value(m));
	}
	*mismatch = nbad > 0;
	json_object_set_new(report, "json",
			    json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:O}", "id", id, "source", source, "database", db,
				      "tables", (json_int_t)v.tables, "rows", (json_int_t)v.rows, "row_counts_match", !nbad,
				      "mismatches", v.mismatches));
	kbv_report_add(report, "lines", "restored source '%s' of snapshot %.8s into database '%s': %zu tables, %llu rows; %s",
		       source, id, db, v.tables, (unsigned long long)v.rows,
		       nbad ? "ROW COUNTS DIFFER from the snapshot" : "row counts match the snapshot");
	if (nbad)
		json_object_set_new(report, "always", json_true());
out:
	json_decref(v.mismatches);
	json_decref(meta);
	return rc;
}

/* ---- one table ---- */

/* Edit distance of a and b (for "did you mean"), capped at 99. */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 98 || lb > 98)
		return 99;
	int d[99][99];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* The table of meta that `spec` names: its quoted name as the COPY line has it
 * ("public.documents"), matched as written, as schema.name unquoted, or by its name alone
 * when one schema has it. KBV_ENOTFOUND listing close names. */
static int find_table(const json_t *meta, const char *spec, const char *source, const char **qname)
{
	const json_t *tables = json_object_get(meta, "tables"), *t;
	size_t i, hits = 0;
	char schema[256], name[256], close[512] = "", bare_spec[256] = "", probe[300];
	/* a name without its schema, quoted or not: "Odd Name", documents */
	snprintf(probe, sizeof probe, "s.%s", spec);
	if (kbv_pg_split_qname(probe, schema, sizeof schema, bare_spec, sizeof bare_spec) < 0)
		*bare_spec = 0;
	json_array_foreach(tables, i, t) {
		const char *q = json_string_value(json_object_get(t, "name"));
		char plain[520];
		if (!q || kbv_pg_split_qname(q, schema, sizeof schema, name, sizeof name) < 0)
			continue;
		snprintf(plain, sizeof plain, "%s.%s", schema, name);
		if (!strcmp(q, spec) || !strcmp(plain, spec)) {
			*qname = q;
			return 0;
		}
		if (*bare_spec && !strcmp(name, bare_spec)) {
			*qname = q;
			hits++;
		}
	}
	if (hits == 1)
		return 0;
	if (hits > 1)
		return kbv_error(KBV_EINVAL, "table '%s' is in more than one schema of source '%s': give schema.table", spec,
				 source);
	/* close names: a small edit distance, or one name inside the other */
	json_array_foreach(tables, i, t) {
		const char *q = json_string_value(json_object_get(t, "name"));
		if (!q || kbv_pg_split_qname(q, schema, sizeof schema, name, sizeof name) < 0)
			continue;
		const char *bare = strchr(spec, '.') ? strchr(spec, '.') + 1 : spec;
		int d = distance(bare, name);
		if ((d <= 3 || (*bare && strstr(name, bare)) || strstr(bare, name)) && strlen(close) + strlen(q) + 3 < sizeof close)
			snprintf(close + strlen(close), sizeof close - strlen(close), "%s%s", *close ? ", " : "", q);
	}
	return kbv_error(KBV_ENOTFOUND, "source '%s' of this snapshot has no table '%s'%s%s", source, spec,
			 *close ? "; close names: " : " (kbvault snapshots --json lists its tables)", close);
}

int kbv_pg_restore_table(const struct kbv_restore_ctx *c, const char *source, const char *table, const char *db,
			 const char *dsn, const struct kbv_pg_client *client, json_t *report, int *mismatch)
{
	struct kbv_pg_owner own = { .restore = 1, .owner = c->owner };
	json_t *meta = NULL, *one = NULL;
	struct kbv_pg_verdict v = { 0 };
	const char *qname = NULL;
	char id[2 * KBV_ID_BYTES + 1], *left = NULL;
	int rc = 0;
	kbv_hex(c->s->id, KBV_ID_BYTES, id);
	TRY(refuse_physical(c->s, source, "one table comes from a native or pg_dump snapshot"));
	TRY(kbv_pg_source_meta(c->s, source, &meta));
	TRY(find_table(meta, table, source, &qname));
	if (!db) {
		rc = kbv_pg_table_stream(c->rd, c->s, meta, qname, STDOUT_FILENO, &left);
		goto out;
	}
	/* a new database as the snapshot recorded it, or one that exists (the table must not) */
	rc = kbv_pg_create_db(dsn, db, meta, 0, &own);
	if (rc == KBV_EEXIST)
		rc = 0;
	TRY(rc);
	TRY(kbv_pg_load_table(c->rd, c->s, client, meta, qname, dsn, db, &left));
	/* the table's rows against what the snapshot recorded */
	one = json_deep_copy(meta);
	json_t *tables = json_array(), *t;
	size_t i;
	json_array_foreach(json_object_get(meta, "tables"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "name")) ?: "", qname))
			json_array_append(tables, t);
	json_object_set_new(one, "tables", tables);
	TRY(kbv_pg_verify(dsn, db, one, 1, &v));
	size_t nbad = json_array_size(v.mismatches);
	json_t *m;
	json_array_foreach(v.mismatches, i, m)
		kbv_report_add(report, "errors", "database '%s': %s", db, json_string_value(m));
	*mismatch = nbad > 0;
	json_object_set_new(report, "has_json", json_true());
	json_object_set_new(report, "json",
			    json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:O, s:s}", "id", id, "source", source, "table", qname,
				      "database", db, "rows", (json_int_t)v.rows, "rows_match", !nbad, "mismatches",
				      v.mismatches, "left_out", left ? left : ""));
	kbv_report_add(report, "lines",
		       "restored table %s of source '%s' (snapshot %.8s) into database '%s': %llu rows with its indexes "
		       "and constraints; %s",
		       qname, source, id, db, (unsigned long long)v.rows,
		       nbad ? "ROWS DIFFER from the snapshot" : "row count and checksum match the snapshot");
	if (nbad)
		json_object_set_new(report, "always", json_true());
out:
	if (rc == 0 && left)
		for (char *l = strtok(left, "\n"); l; l = strtok(NULL, "\n"))
			kbv_events_warn(c->ev, "table %s: left out %s", qname, l);
	free(left);
	json_decref(v.mismatches);
	json_decref(one);
	json_decref(meta);
	return rc;
}

/* restore --source: into the database the snapshot recorded, on the configured server. */
int kbv_kind_postgres_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch)
{
	json_t *meta = json_loads(c->src->meta, 0, NULL);
	const char *db = json_string_value(json_object_get(meta, "database"));
	struct kbv_pg_client cl = { c->sc->pg_bin_dir, c->sc->client_command_prefix };
	int rc = db ? kbv_pg_restore_db(c, c->src->name, db, c->sc->dsn, &cl, report, mismatch)
		    : kbv_error(KBV_ECORRUPT, "source '%s': the snapshot does not record its database", c->src->name);
	json_decref(meta);
	return rc;
}

const char *kbv_kind_postgres_restore_needs(const struct kbv_source_cfg *sc)
{
	return sc && sc->dsn ? NULL : "a [source] with its dsn (or give --target-db DB --target-dsn CONNINFO)";
}

const struct kbv_source_key kbv_kind_postgres_keys[] = {
	KBV_SOURCE_KEY("dsn", dsn, 1),
	KBV_SOURCE_KEY("mode", mode, 0),
	KBV_SOURCE_KEY("globals", globals, 0),
	KBV_SOURCE_KEY("jobs", jobs, 0),
	KBV_SOURCE_KEY("pg-bin-dir", pg_bin_dir, 0),
	KBV_SOURCE_KEY("client-command-prefix", client_command_prefix, 0),
	{ NULL, 0, 0 },
};

int kbv_kind_postgres_check(const struct kbv_source_cfg *sc, char *msg, size_t cap)
{
	long jobs;
	if (sc->mode && strcmp(sc->mode, "native") && strcmp(sc->mode, "pg_dump") && strcmp(sc->mode, "physical"))
		snprintf(msg, cap, "mode must be native, pg_dump or physical, not '%s'", sc->mode);
	else if (sc->mode && !strcmp(sc->mode, "physical") && (sc->jobs || kbv_parse_bool(sc->globals) == 1))
		snprintf(msg, cap, "mode = physical copies the whole cluster: jobs and globals do not apply");
	else if (sc->jobs && kbv_parse_long(sc->jobs, 1, 64, &jobs) < 0)
		snprintf(msg, cap, "jobs must be a whole number from 1 to 64, not '%s'", sc->jobs);
	else if (sc->jobs && (!sc->mode || strcmp(sc->mode, "pg_dump") != 0))
		snprintf(msg, cap, "jobs (pg_dump's directory format) needs mode = pg_dump");
	else if (sc->jobs && sc->client_command_prefix)
		snprintf(msg, cap, "jobs writes pg_dump's files where pg_dump runs: it does not go with "
				   "client-command-prefix");
	else if (sc->pg_bin_dir && sc->pg_bin_dir[0] != '/')
		snprintf(msg, cap, "pg-bin-dir must be an absolute path, not '%s'", sc->pg_bin_dir);
	else if (sc->globals && kbv_parse_bool(sc->globals) < 0)
		snprintf(msg, cap, "globals must be yes or no, not '%s'", sc->globals);
	else
		return 0;
	return -1;
}
