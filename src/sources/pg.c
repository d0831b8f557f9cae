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
 *            everything -> the COPY-block scanner (rows, checksums) -> the pipe
 *
 * The reader of the pipe (the repository writer) sees a truncated stream if the thread
 * fails; kbv_pgdump_finish() reports the failure, and the caller records nothing. */
#include "kbv/pg.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

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
static const char TOOL_OPTIONS[] = "-c TimeZone=UTC -c bytea_output=hex";

/* A server's message as one line: libpq's text without trailing newlines, inner newlines
 * folded (messages may carry DETAIL and HINT lines). */
static const char *one_line(const char *msg, char *buf, size_t cap)
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

static int pg_connect(const char *dsn, const char *dbname, const char *what, PGconn **out)
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
				   err ? one_line(err, line, sizeof line) : "out of memory");
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
			       c ? one_line(PQerrorMessage(c), line, sizeof line) : "out of memory");
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
static int exec(PGconn *c, const char *sql, PGresult **res, const char *what)
{
	char line[1024];
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = kbv_error(KBV_ESOURCE, "%s: %s", what, one_line(PQerrorMessage(c), line, sizeof line));
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
	TRY(exec(c, "IDENTIFY_SYSTEM", &r, what));
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
	TRY(exec(c, "SHOW wal_segment_size", &r, what));
	out->seg_size = PQntuples(r) == 1 ? show_bytes(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	r = NULL;
	TRY(exec(c, "SHOW archive_mode", &r, what));
	snprintf(out->archive_mode, sizeof out->archive_mode, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	r = NULL;
	TRY(exec(c, "SHOW server_version_num", &r, what));
	out->version = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	if (out->seg_size == 0 || (out->seg_size & (out->seg_size - 1)))
		rc = kbv_error(KBV_ESOURCE, "%s: the server's wal_segment_size is not a power of two", what);
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

static int session_setup(PGconn *c, const char *encoding, const char *what)
{
	char line[1024];
	if (PQsetClientEncoding(c, encoding) != 0)
		return kbv_error(KBV_ESOURCE, "%s: cannot use client encoding %s: %s", what, encoding,
				 one_line(PQerrorMessage(c), line, sizeof line));
	return exec(c, SESSION_SQL, NULL, what);
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
				   err ? one_line(err, line, sizeof line) : "out of memory");
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
			       err ? one_line(err, line, sizeof line) : "out of memory");
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

/* ---- Dumping ---- */

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
	/* what the thread has for the stream and not written yet: rows come one by one from
	 * COPY, and a write(2) each (and a read(2) each on the writer's side) cost more than
	 * the rows */
	uint8_t *obuf;
	size_t olen;
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
	free(d->obuf);
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

static int flush_out(struct kbv_pgdump *d)
{
	int rc = d->olen ? kbv_write_full(d->wfd, d->obuf, d->olen, "the dump stream") : 0;
	d->olen = 0;
	return rc;
}

static int emit(struct kbv_pgdump *d, const void *p, size_t n)
{
	int rc = kbv_pgscan_feed(d->scan, p, n);
	if (rc < 0)
		return rc;
	if (d->olen + n > DUMP_OUT_BUF && (rc = flush_out(d)) < 0)
		return rc;
	if (n >= DUMP_OUT_BUF)
		return kbv_write_full(d->wfd, p, n, "the dump stream");
	memcpy(d->obuf + d->olen, p, n);
	d->olen += n;
	return 0;
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
		rc = kbv_error(KBV_ESOURCE, "COPY of table %s: %s", t->qname, one_line(PQerrorMessage(d->c), line, sizeof line));
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
				       one_line(PQerrorMessage(d->c), line, sizeof line));
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
				       one_line(PQerrorMessage(d->c), line, sizeof line));
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
	rc = flush_out(d);
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
	TRY(exec(d->c, "SELECT count(*) FROM pg_largeobject_metadata", &r, d->what));
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
	TRY(exec(d->c, "SELECT coalesce(string_agg(extname, ', '), '') FROM pg_extension WHERE extconfig IS NOT NULL",
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

	TRY(exec(d->c, TABLES_SQL, &r, d->what));
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
		TRY(exec(d->c, sql, NULL, d->what));
	}

	/* Sequence values: read now, written after the data, as pg_dump's SEQUENCE SET. */
	TRY(exec(d->c, SEQS_SQL, &r, d->what));
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
		TRY(exec(d->c, sql, &v, d->what));
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
	TRY(pg_connect(o->dsn, NULL, d->what, &d->c));
	TRY(exec(d->c,
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
	TRY(session_setup(d->c, PQgetvalue(r, 0, 0), d->what));
	PQclear(r);
	r = NULL;
	TRY(exec(d->c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, d->what));
	TRY(exec(d->c,
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
	if (!(d->obuf = malloc(DUMP_OUT_BUF))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
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

/* ---- Restoring and verifying ---- */

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
	TRY(pg_connect(dsn, NULL, what, &c));
	char *id = PQescapeIdentifier(c, name, strlen(name));
	if (!id) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	char sql[512];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", id);
	PQfreemem(id);
	rc = exec(c, sql, NULL, what);
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
	if ((rc = exec(c, sql, NULL, what)) < 0)
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
		if ((rc = exec(c, sql, NULL, what)) < 0)
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
	if (pg_connect(dsn, "postgres", what, &c) < 0)
		TRY(pg_connect(dsn, NULL, what, &c));
	const char *params[1] = { name };
	r = PQexecParams(c, "SELECT datname = current_database() FROM pg_database WHERE datname = $1", 1, NULL, params,
			 NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = kbv_error(KBV_ESOURCE, "%s: %s", what, one_line(PQerrorMessage(c), sql, sizeof sql));
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
		TRY(pg_connect(dsn, "postgres", what, &c));
	}
	if (exists) {
		TRY(pg_connect(dsn, name, what, &t));
		TRY(exec(t,
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
		TRY(exec(c, sql, NULL, what));
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
	if ((rc = exec(c, sql, NULL, what)) < 0) {
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
			rc = -1, snprintf(err, errcap, "%s", one_line(PQerrorMessage(c), line, sizeof line));
		PQclear(r);
		free(sql);
		return rc;
	}
	snprintf(sql, len, "COPY (SELECT %s FROM ONLY %s) TO STDOUT", cols, name);
	PGresult *r = PQexec(c, sql);
	free(sql);
	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		snprintf(err, errcap, "%s", one_line(PQerrorMessage(c), line, sizeof line));
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
			snprintf(err, errcap, "%s", one_line(PQerrorMessage(c), line, sizeof line));
			rc = -1;
			break;
		}
		(*rows)++;
		*sum += XXH3_64bits(row, n > 0 && row[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n);
		PQfreemem(row);
	}
	while ((r = PQgetResult(c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
			snprintf(err, errcap, "%s", one_line(PQerrorMessage(c), line, sizeof line));
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
	TRY(pg_connect(dsn, dbname, what, &c));
	TRY(session_setup(c, meta_str(meta, "encoding", "UTF8"), what));
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
