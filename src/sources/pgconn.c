/* PostgreSQL connections and client programs, for the dump (pgdump.c), the load and its
 * checks (pgload.c), base backups and WAL (pgbase.c):
 *
 *   libpq sessions: kbv_pg_connect(), the fixed session settings every dump and
 *                   verification uses, one-statement kbv_pg_exec(), a server message folded
 *                   onto one line; a replication session for the cluster's facts that a
 *                   base backup records (kbv_pg_cluster_facts)
 *   client programs: a conninfo turned into the PG* environment of pg_dump, psql and
 *                   pg_restore (so no password is on a command line), spawned directly or
 *                   behind a client-command-prefix (docker exec ...), and their version
 */
#include "kbv/pg.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/proc.h"
#include "pgconn.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* The settings every dump and every verification session uses, so that row text (and
 * so the checksums) do not depend on the server's or the user's defaults. pg_dump sets
 * DateStyle, IntervalStyle and extra_float_digits itself; TimeZone and bytea_output reach
 * it through PGOPTIONS. */
static const char SESSION_SQL[] =
	"SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
	"SET TimeZone = 'UTC'; SET bytea_output = hex; SET row_security = off; "
	"SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
	"SET synchronize_seqscans = off";

/* A server's message as one line: libpq's text without trailing newlines, inner newlines
 * folded (messages may carry DETAIL and HINT lines). */
const char *kbv_pg_one_line(const char *msg, char *buf, size_t cap)
{
	size_t n = 0;
	for (const char *p = msg; *p && n + 3 < cap; p++) {
		if (*p == '\n') {
			if (p[1] == 0)
				break;
			buf[n++] = ';';
			buf[n++] = ' ';
		} else {
			buf[n++] = *p;
		}
	}
	buf[n] = 0;
	return buf;
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int pg_connect_as(const char *dsn, const char *dbname, const char *replication, const char *what,
			 PGconn **out);

int kbv_pg_connect(const char *dsn, const char *dbname, const char *what, PGconn **out)
{
	return pg_connect_as(dsn, dbname, NULL, what, out);
}

/* pg_connect, as a replication connection when `replication` is "true" or "database". */
static int pg_connect_as(const char *dsn, const char *dbname, const char *replication, const char *what,
			 PGconn **out)
{
	char *err = NULL, line[1024];
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	if (!opts) {
		int rc = kbv_error(KBV_EINVAL, "%s: the connection string does not parse: %s", what,
				   err ? kbv_pg_one_line(err, line, sizeof line) : "out of memory");
		PQfreemem(err);
		return rc;
	}
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	const char **keys = calloc(n + 4, sizeof *keys), **vals = calloc(n + 4, sizeof *vals);
	int rc = 0, has_app = 0;
	if (!keys || !vals) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	size_t k = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || (dbname && !strcmp(o->keyword, "dbname")))
			continue;
		has_app |= !strcmp(o->keyword, "application_name");
		keys[k] = o->keyword;
		vals[k++] = o->val;
	}
	if (dbname) {
		keys[k] = "dbname";
		vals[k++] = dbname;
	}
	if (!has_app) {
		keys[k] = "application_name";
		vals[k++] = "kbvault";
	}
	if (replication) {
		keys[k] = "replication";
		vals[k++] = replication;
	}
	PGconn *c = PQconnectdbParams(keys, vals, 0);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		rc = kbv_error(KBV_ESOURCE, "%s: cannot connect: %s", what,
			       c ? kbv_pg_one_line(PQerrorMessage(c), line, sizeof line) : "out of memory");
		PQfinish(c);
		goto out;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	*out = c;
out:
	free(keys);
	free(vals);
	PQconninfoFree(opts);
	return rc;
}

/* Run one statement; *res (when not NULL) receives a TUPLES_OK result to PQclear. */
int kbv_pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what)
{
	char line[1024];
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = kbv_error(KBV_ESOURCE, "%s: %s", what, kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

/* "16MB", "1GB", "64kB", "8192" (bytes) into bytes; 0 when it does not parse. */
static uint64_t show_bytes(const char *v)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (!strcmp(end, "kB"))
		return n << 10;
	if (!strcmp(end, "MB"))
		return n << 20;
	if (!strcmp(end, "GB"))
		return n << 30;
	return *end ? 0 : n;
}

int kbv_pg_cluster_facts(const char *dsn, const char *what, struct kbv_pg_cluster *out)
{
	PGconn *c = NULL;
	PGresult *r = NULL;
	int rc = 0;
	memset(out, 0, sizeof *out);
	TRY(pg_connect_as(dsn, NULL, "true", what, &c));
	TRY(kbv_pg_exec(c, "IDENTIFY_SYSTEM", &r, what));
	if (PQntuples(r) != 1 || PQnfields(r) < 3) {
		rc = kbv_error(KBV_ESOURCE, "%s: IDENTIFY_SYSTEM answered %d rows of %d columns", what, PQntuples(r),
			       PQnfields(r));
		goto out;
	}
	snprintf(out->sysid, sizeof out->sysid, "%s", PQgetvalue(r, 0, 0));
	out->timeline = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
	snprintf(out->lsn, sizeof out->lsn, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	r = NULL;
	TRY(kbv_pg_exec(c, "SHOW wal_segment_size", &r, what));
	out->seg_size = PQntuples(r) == 1 ? show_bytes(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	r = NULL;
	TRY(kbv_pg_exec(c, "SHOW archive_mode", &r, what));
	snprintf(out->archive_mode, sizeof out->archive_mode, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	r = NULL;
	TRY(kbv_pg_exec(c, "SHOW server_version_num", &r, what));
	out->version = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	if (out->seg_size == 0 || (out->seg_size & (out->seg_size - 1)))
		rc = kbv_error(KBV_ESOURCE, "%s: the server's wal_segment_size is not a power of two", what);
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

int kbv_pg_session_setup(PGconn *c, const char *encoding, const char *what)
{
	char line[1024];
	if (PQsetClientEncoding(c, encoding) != 0)
		return kbv_error(KBV_ESOURCE, "%s: cannot use client encoding %s: %s", what, encoding,
				 kbv_pg_one_line(PQerrorMessage(c), line, sizeof line));
	return kbv_pg_exec(c, SESSION_SQL, NULL, what);
}

/* ---- Client program environments ---- */

static int env_add(char ***env, size_t *n, const char *name, const char *val)
{
	size_t len = strlen(name) + strlen(val) + 2;
	char *s = malloc(len);
	if (!s)
		return kbv_error(KBV_ENOMEM, "out of memory");
	snprintf(s, len, "%s=%s", name, val);
	(*env)[(*n)++] = s;
	return 0;
}

static int pg_env(const char *dsn, const char *dbname, const char *add_options, char ***out)
{
	char *err = NULL, line[1024];
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	if (!opts) {
		int rc = kbv_error(KBV_EINVAL, "the connection string does not parse: %s",
				   err ? kbv_pg_one_line(err, line, sizeof line) : "out of memory");
		PQfreemem(err);
		return rc;
	}
	size_t nenv = 0, nopt = 0, n = 0;
	while (environ[nenv])
		nenv++;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		nopt++;
	char **env = calloc(nenv + nopt + 4, sizeof *env);
	int rc = 0;
	if (!env) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	const char *options = getenv("PGOPTIONS");
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && !strcmp(o->keyword, "options"))
			options = o->val;
	/* Our own environment, minus every variable the connection string decides. */
	for (size_t i = 0; i < nenv; i++) {
		const char *e = environ[i];
		const char *eq = strchr(e, '=');
		size_t len = eq ? (size_t)(eq - e) : strlen(e);
		int drop = (len == 9 && !memcmp(e, "PGOPTIONS", 9)) || (len == 16 && !memcmp(e, "PGCLIENTENCODING", 16)) ||
			   (dbname && len == 10 && !memcmp(e, "PGDATABASE", 10));
		for (PQconninfoOption *o = opts; o->keyword && !drop; o++)
			drop = o->val && o->envvar && strlen(o->envvar) == len && !memcmp(e, o->envvar, len);
		if (drop)
			continue;
		env[n] = strdup(e);
		if (!env[n++]) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		/* client_encoding: dumps are always in the database's encoding (the checksums and
		 * the restore depend on it); the script sets it for psql itself. */
		if (!o->val || !o->envvar || !strcmp(o->keyword, "options") || !strcmp(o->keyword, "client_encoding") ||
		    (dbname && !strcmp(o->keyword, "dbname")))
			continue;
		TRY(env_add(&env, &n, o->envvar, o->val));
	}
	if (dbname)
		TRY(env_add(&env, &n, "PGDATABASE", dbname));
	if (options || add_options) {
		char buf[4096];
		snprintf(buf, sizeof buf, "%s%s%s", options ? options : "", options && add_options ? " " : "",
			 add_options ? add_options : "");
		TRY(env_add(&env, &n, "PGOPTIONS", buf));
	}
	*out = env;
	env = NULL;
out:
	kbv_pg_env_free(env);
	PQconninfoFree(opts);
	return rc;
}

/* Append " key='value'" (quotes and backslashes escaped) to a connection string. */
static int conninfo_add(struct kbv_buf *b, const char *key, const char *val)
{
	int rc = 0;
	if (b->len)
		TRY(kbv_buf_add(b, " ", 1));
	TRY(kbv_buf_add(b, key, strlen(key)));
	TRY(kbv_buf_add(b, "='", 2));
	for (const char *p = val; *p; p++) {
		if (*p == '\'' || *p == '\\')
			TRY(kbv_buf_add(b, "\\", 1));
		TRY(kbv_buf_add(b, p, 1));
	}
	TRY(kbv_buf_add(b, "'", 1));
out:
	return rc;
}

/* The connection string a client behind a prefix gets: every setting of `dsn` but the
 * password (which stays in PGPASSWORD) and client_encoding, the database `dbname` when
 * given, `add_options` added to options. */
static int prefix_conninfo(const char *dsn, const char *dbname, const char *add_options, struct kbv_buf *out)
{
	char *err = NULL, line[1024];
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	int rc = 0;
	if (!opts) {
		rc = kbv_error(KBV_EINVAL, "the connection string does not parse: %s",
			       err ? kbv_pg_one_line(err, line, sizeof line) : "out of memory");
		PQfreemem(err);
		return rc;
	}
	const char *options = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "options"))
			options = o->val;
		else if (o->val && strcmp(o->keyword, "password") && strcmp(o->keyword, "client_encoding") &&
			 (strcmp(o->keyword, "dbname") || !dbname))
			TRY(conninfo_add(out, o->keyword, o->val));
	}
	if (dbname)
		TRY(conninfo_add(out, "dbname", dbname));
	if (options || add_options) {
		char buf[4096];
		snprintf(buf, sizeof buf, "%s%s%s", options ? options : "", options && add_options ? " " : "",
			 add_options ? add_options : "");
		TRY(conninfo_add(out, "options", buf));
	}
	TRY(kbv_buf_add(out, "", 1)); /* NUL */
out:
	PQconninfoFree(opts);
	return rc;
}

int kbv_pg_client_spawn(const struct kbv_pg_client *cl, const char *dsn, const char *dbname, const char *add_options,
			int conn, char *const tool_argv[], int in_fd, int out_fd, pid_t *pid)
{
	char **env = NULL, **argv = NULL, *words = NULL, *tool = NULL, *dbarg = NULL;
	struct kbv_buf ci = KBV_BUF_INIT;
	const char *prefix = cl && cl->prefix && *cl->prefix ? cl->prefix : NULL;
	size_t nw = 0, nt = 0, n = 0;
	int rc = 0;
	TRY(pg_env(dsn, dbname, add_options, &env));
	if (conn != KBV_PG_CONN_NONE && prefix) {
		TRY(prefix_conninfo(dsn, dbname, add_options, &ci));
		dbarg = malloc(ci.len + 16);
		if (dbarg)
			snprintf(dbarg, ci.len + 16, "--dbname=%s", (const char *)ci.data);
	} else if (conn == KBV_PG_CONN_ARG) {
		dbarg = malloc(strlen(dbname ? dbname : "") + 16);
		if (dbarg)
			snprintf(dbarg, strlen(dbname ? dbname : "") + 16, "--dbname=%s", dbname ? dbname : "");
	}
	if (conn != KBV_PG_CONN_NONE && (prefix || conn == KBV_PG_CONN_ARG) && !dbarg) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	/* The prefix, split at white space (no quoting: write a script for anything more). */
	if (prefix && !(words = strdup(prefix))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (char *p = words; p && *p; nw++) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	while (tool_argv[nt])
		nt++;
	argv = calloc(nw + nt + 2, sizeof *argv);
	if (cl && cl->bin_dir && *cl->bin_dir) {
		size_t len = strlen(cl->bin_dir) + strlen(tool_argv[0]) + 2;
		if ((tool = malloc(len)))
			snprintf(tool, len, "%s/%s", cl->bin_dir, tool_argv[0]);
	}
	if (!argv || (cl && cl->bin_dir && *cl->bin_dir && !tool)) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (char *p = words; p && *p;) {
		while (*p == ' ' || *p == '\t')
			*p++ = 0;
		if (!*p)
			break;
		argv[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	argv[n++] = tool ? tool : tool_argv[0];
	for (size_t i = 1; i < nt; i++)
		argv[n++] = tool_argv[i];
	if (dbarg)
		argv[n++] = dbarg;
	rc = kbv_cmd_spawn(argv, env, in_fd, out_fd, pid);
	if (rc < 0 && (prefix || tool))
		kbv_error_prefix(rc, "%s%s%s", prefix ? "client-command-prefix '" : "pg-bin-dir", prefix ? prefix : "",
				 prefix ? "'" : "");
out:
	kbv_pg_env_free(env);
	kbv_buf_release(&ci);
	free(argv);
	free(words);
	free(tool);
	free(dbarg);
	return rc;
}

int kbv_pg_client_major(const struct kbv_pg_client *cl, const char *program, int *major)
{
	char *argv[] = { (char *)program, "--version", NULL }, buf[256], what[96];
	int p[2], rc;
	pid_t pid;
	size_t n = 0;
	ssize_t got;
	*major = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	rc = kbv_pg_client_spawn(cl, "", NULL, NULL, KBV_PG_CONN_NONE, argv, -1, p[1], &pid);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	while (n < sizeof buf - 1 && ((got = read(p[0], buf + n, sizeof buf - 1 - n)) > 0 || (got < 0 && errno == EINTR)))
		n += got > 0 ? (size_t)got : 0;
	close(p[0]);
	buf[n] = 0;
	snprintf(what, sizeof what, "%s --version", program);
	if ((rc = kbv_cmd_finish(pid, what, 0)) < 0)
		return rc;
	/* "pg_dump (PostgreSQL) 15.5 (Debian 15.5-0+deb12u1)" */
	const char *v = strstr(buf, ") ");
	char *end = NULL;
	long m = v ? strtol(v + 2, &end, 10) : 0;
	if (!v || end == v + 2 || m <= 0 || m > 1000)
		return kbv_error(KBV_ESOURCE, "%s printed no version: '%.80s'", what, buf);
	*major = (int)m;
	return 0;
}

int kbv_pg_env(const char *dsn, const char *dbname, char ***env)
{
	return pg_env(dsn, dbname, NULL, env);
}

void kbv_pg_env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}
