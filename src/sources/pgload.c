/* PostgreSQL restores and their checks: a target database created as the snapshot
 * recorded it (encoding, locale, owner, access list), a plain dump loaded through psql or a
 * directory-format dump through pg_restore -j, and every table's rows counted and
 * checksummed the way the dump's scanner did (format/snapshot.md), for restore and drill. */
#include "kbv/pg.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/proc.h"
#include "pgconn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static const char *meta_str(const json_t *meta, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(meta, key));
	return s ? s : dflt;
}

int kbv_pg_drop_db(const char *dsn, const char *name)
{
	PGconn *c = NULL;
	int rc = 0;
	char what[160];
	snprintf(what, sizeof what, "drop database '%s'", name);
	TRY(kbv_pg_connect(dsn, NULL, what, &c));
	char *id = PQescapeIdentifier(c, name, strlen(name));
	if (!id) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	char sql[512];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", id);
	PQfreemem(id);
	rc = kbv_pg_exec(c, sql, NULL, what);
out:
	if (c)
		PQfinish(c);
	return rc;
}

static int role_exists(PGconn *c, const char *role)
{
	const char *params[1] = { role };
	PGresult *r = PQexecParams(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, NULL, params, NULL, NULL, 0);
	int yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
	PQclear(r);
	return yes;
}

static void note_missing(struct kbv_pg_owner *o, const char *role)
{
	size_t len = strlen(o->missing);
	if (!strstr(o->missing, role))
		snprintf(o->missing + len, sizeof o->missing - len, "%s%s", len ? ", " : "", role);
}

/* One aclitem's grantee ("" for PUBLIC), its privileges and grant option, from text such
 * as kb=CTc/postgres or "odd name"=c*\/postgres. Returns the text after it, or NULL. */
static const char *acl_item(const char *p, char *grantee, size_t cap, char *privs, size_t pcap)
{
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
			if (*p == '"')
				p++;
			if (n + 1 < cap)
				grantee[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != '=' && n + 1 < cap)
			grantee[n++] = *p++;
	}
	grantee[n] = 0;
	if (*p++ != '=')
		return NULL;
	n = 0;
	while (*p && *p != '/' && n + 1 < pcap)
		privs[n++] = *p++;
	privs[n] = 0;
	while (*p && *p != ',' && *p != '}')
		p++; /* the grantor */
	return p;
}

/* Replay a database's ACL ("{=Tc/postgres,kb=CTc/postgres}") on database `id` (quoted):
 * PUBLIC loses its defaults, then each grantee that exists gets what it had. */
static int apply_db_acl(PGconn *c, const char *id, const char *acl, struct kbv_pg_owner *o, const char *what)
{
	char sql[1024], grantee[128], privs[32];
	int rc = 0;
	snprintf(sql, sizeof sql, "REVOKE ALL ON DATABASE %s FROM PUBLIC", id);
	if ((rc = kbv_pg_exec(c, sql, NULL, what)) < 0)
		return rc;
	for (const char *p = acl + (*acl == '{'); p && *p && *p != '}'; p += *p == ',') {
		p = acl_item(p, grantee, sizeof grantee, privs, sizeof privs);
		if (!p)
			break;
		char list[64] = "";
		int grant_option = strchr(privs, '*') != NULL;
		for (const char *k = privs; *k; k++) {
			const char *word = *k == 'C' ? "CREATE" : *k == 'T' ? "TEMPORARY" : *k == 'c' ? "CONNECT" : NULL;
			if (word) {
				size_t len = strlen(list);
				snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", word);
			}
		}
		if (!*list)
			continue;
		if (*grantee && !role_exists(c, grantee)) {
			note_missing(o, grantee);
			continue;
		}
		char *who = *grantee ? PQescapeIdentifier(c, grantee, strlen(grantee)) : NULL;
		snprintf(sql, sizeof sql, "GRANT %s ON DATABASE %s TO %s%s", list, id, who ? who : "PUBLIC",
			 grant_option ? " WITH GRANT OPTION" : "");
		PQfreemem(who);
		if ((rc = kbv_pg_exec(c, sql, NULL, what)) < 0)
			return rc;
	}
	return 0;
}

int kbv_pg_create_db(const char *dsn, const char *name, const json_t *meta, int force, struct kbv_pg_owner *o)
{
	PGconn *c = NULL, *t = NULL;
	PGresult *r = NULL;
	char what[160], sql[1024];
	char *id = NULL, *enc = NULL, *coll = NULL, *ctype = NULL;
	int rc = 0;
	if (strlen(name) > 63)
		return kbv_error(KBV_EINVAL, "database name '%s' is longer than PostgreSQL allows (63 bytes)", name);
	snprintf(what, sizeof what, "create database '%s'", name);
	/* From the maintenance database, as createdb does: the database the connection string
	 * names may be the one that is gone. Its own database if "postgres" is not open to us. */
	if (kbv_pg_connect(dsn, "postgres", what, &c) < 0)
		TRY(kbv_pg_connect(dsn, NULL, what, &c));
	const char *params[1] = { name };
	r = PQexecParams(c, "SELECT datname = current_database() FROM pg_database WHERE datname = $1", 1, NULL, params,
			 NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = kbv_error(KBV_ESOURCE, "%s: %s", what, kbv_pg_one_line(PQerrorMessage(c), sql, sizeof sql));
		goto out;
	}
	int exists = PQntuples(r) > 0, current = exists && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	r = NULL;
	if (current) {
		/* Restoring over the very database the connection string names: work from the
		 * maintenance database, as createdb and dropdb do. */
		PQfinish(c);
		c = NULL;
		TRY(kbv_pg_connect(dsn, "postgres", what, &c));
	}
	if (exists) {
		TRY(kbv_pg_connect(dsn, name, what, &t));
		TRY(kbv_pg_exec(t,
				"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
				"WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND c.relkind IN ('r','p','v','m','S','f')",
				&r, what));
		long rels = 0;
		kbv_parse_long(PQgetvalue(r, 0, 0), 0, LONG_MAX, &rels); /* count(*): a number */
		PQclear(r);
		r = NULL;
		PQfinish(t);
		t = NULL;
		if (rels == 0)
			goto out; /* empty: load into it as it is */
		if (!force) {
			rc = kbv_error(KBV_EEXIST,
				       "database '%s' exists and is not empty (%ld tables, views or sequences); "
				       "use --force to drop and recreate it",
				       name, rels);
			goto out;
		}
	}
	id = PQescapeIdentifier(c, name, strlen(name));
	const char *e = meta_str(meta, "encoding", "UTF8"), *co = meta_str(meta, "collate", "C"),
		   *ct = meta_str(meta, "ctype", "C");
	enc = PQescapeLiteral(c, e, strlen(e));
	coll = PQescapeLiteral(c, co, strlen(co));
	ctype = PQescapeLiteral(c, ct, strlen(ct));
	if (!id || !enc || !coll || !ctype) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	if (exists) {
		snprintf(sql, sizeof sql, "DROP DATABASE %s", id);
		TRY(kbv_pg_exec(c, sql, NULL, what));
	}
	const char *owner = o ? o->owner : NULL;
	if (o && !owner && o->restore) {
		owner = json_string_value(json_object_get(meta, "owner"));
		if (owner && !role_exists(c, owner)) {
			note_missing(o, owner);
			owner = NULL;
		}
	} else if (owner && !role_exists(c, owner)) {
		rc = kbv_error(KBV_EINVAL, "%s: role '%s' does not exist on that server", what, owner);
		goto out;
	}
	char *own = owner ? PQescapeIdentifier(c, owner, strlen(owner)) : NULL;
	snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s%s%s", id,
		 enc, coll, ctype, own ? " OWNER " : "", own ? own : "");
	PQfreemem(own);
	if ((rc = kbv_pg_exec(c, sql, NULL, what)) < 0) {
		if (strstr(kbv_errmsg(), "permission denied to create database"))
			rc = kbv_error_prefix(rc, "the role of this connection may not create databases (it lacks CREATEDB): "
						  "give --target-dsn a role that may, such as user=postgres");
		goto out;
	}
	const char *acl = json_string_value(json_object_get(meta, "database_acl"));
	if (o && o->restore && acl)
		TRY(apply_db_acl(c, id, acl, o, what));
out:
	PQfreemem(id), PQfreemem(enc), PQfreemem(coll), PQfreemem(ctype);
	PQclear(r);
	if (t)
		PQfinish(t);
	if (c)
		PQfinish(c);
	return rc;
}

int kbv_pg_restore_dir(const char *dsn, const char *dbname, const char *dir, int jobs, const struct kbv_pg_client *cl)
{
	char j[16];
	pid_t pid;
	int rc;
	snprintf(j, sizeof j, "%d", jobs < 1 ? 1 : jobs);
	char *argv[] = { "pg_restore", "--exit-on-error", "-j", j, (char *)dir, NULL };
	/* --dbname (added) takes the database; host, port, user and password come from env. */
	rc = kbv_pg_client_spawn(cl, dsn, dbname, NULL, KBV_PG_CONN_ARG, argv, -1, -1, &pid);
	if (rc < 0)
		return rc;
	char what[160];
	snprintf(what, sizeof what, "pg_restore into database '%s'", dbname);
	return kbv_cmd_finish(pid, what, 0);
}

int kbv_pg_load_start(const char *dsn, const char *dbname, const struct kbv_pg_client *cl, pid_t *pid, int *fd)
{
	int p[2], rc;
	char *argv[] = { "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-", NULL };
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	rc = kbv_pg_client_spawn(cl, dsn, dbname, NULL, KBV_PG_CONN_ENV, argv, p[0], -1, pid);
	close(p[0]);
	if (rc < 0) {
		close(p[1]);
		return rc;
	}
	*fd = p[1];
	return 0;
}

static int count_rows(PGconn *c, const char *name, const char *cols, int checksums, uint64_t *rows, uint64_t *sum,
		      char *err, size_t errcap)
{
	size_t len = strlen(name) + strlen(cols) + 64;
	char *sql = malloc(len);
	char line[1024];
	int rc = 0;
	*rows = *sum = 0;
	if (!sql)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (!checksums) {
		PGresult *r;
		snprintf(sql, len, "SELECT count(*) FROM ONLY %s", name);
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			*rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		else
			rc = -1, snprintf(err, errcap, "%s", kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
		PQclear(r);
		free(sql);
		return rc;
	}
	snprintf(sql, len, "COPY (SELECT %s FROM ONLY %s) TO STDOUT", cols, name);
	PGresult *r = PQexec(c, sql);
	free(sql);
	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		snprintf(err, errcap, "%s", kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
		PQclear(r);
		return -1;
	}
	PQclear(r);
	for (;;) {
		char *row = NULL;
		int n = PQgetCopyData(c, &row, 0);
		if (n == -1)
			break;
		if (n < 0) {
			snprintf(err, errcap, "%s", kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
			rc = -1;
			break;
		}
		(*rows)++;
		*sum += XXH3_64bits(row, n > 0 && row[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n);
		PQfreemem(row);
	}
	while ((r = PQgetResult(c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
			snprintf(err, errcap, "%s", kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
			rc = -1;
		}
		PQclear(r);
	}
	return rc;
}

int kbv_pg_verify(const char *dsn, const char *dbname, const json_t *meta, int checksums, struct kbv_pg_verdict *v)
{
	PGconn *c = NULL;
	char what[160];
	int rc = 0;
	memset(v, 0, sizeof *v);
	snprintf(what, sizeof what, "verify database '%s'", dbname);
	TRY(kbv_pg_connect(dsn, dbname, what, &c));
	TRY(kbv_pg_session_setup(c, meta_str(meta, "encoding", "UTF8"), what));
	v->mismatches = json_array();
	const json_t *tables = json_object_get(meta, "tables");
	size_t i;
	const json_t *t;
	json_array_foreach(tables, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *cols = json_string_value(json_object_get(t, "columns"));
		const json_t *jrows = json_object_get(t, "rows");
		const char *want_sum = json_string_value(json_object_get(t, "checksum"));
		if (!name || !cols || !json_is_integer(jrows) || !want_sum) {
			rc = kbv_error(KBV_ECORRUPT, "%s: the snapshot's table list is malformed (entry %zu)", what, i);
			goto out;
		}
		uint64_t rows, sum;
		char err[1024], msg[1400], got_sum[17];
		v->tables++;
		if (count_rows(c, name, cols, checksums, &rows, &sum, err, sizeof err) < 0) {
			snprintf(msg, sizeof msg, "%s: cannot read it: %s", name, err);
			json_array_append_new(v->mismatches, json_string(msg));
			continue;
		}
		v->rows += rows;
		if (rows != (uint64_t)json_integer_value(jrows)) {
			snprintf(msg, sizeof msg, "%s: %llu rows, the snapshot recorded %lld", name, (unsigned long long)rows,
				 (long long)json_integer_value(jrows));
			json_array_append_new(v->mismatches, json_string(msg));
			continue;
		}
		kbv_pg_sum_hex(sum, got_sum);
		if (checksums && strcmp(got_sum, want_sum) != 0) {
			snprintf(msg, sizeof msg, "%s: row checksum %s, the snapshot recorded %s", name, got_sum, want_sum);
			json_array_append_new(v->mismatches, json_string(msg));
		}
	}
out:
	if (rc < 0) {
		json_decref(v->mismatches);
		v->mismatches = NULL;
	}
	if (c)
		PQfinish(c);
	return rc;
}
