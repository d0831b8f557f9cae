/* The drill of a PostgreSQL base backup (mode = physical): restored into a scratch data
 * directory, recovered through the WAL archive to the target in a scratch server on a free
 * loopback port, then every database looked at (tables and rows counted, B-tree indexes
 * checked with amcheck where the server has it), the server stopped and the directory
 * removed. */
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/kinds.h"
#include "kbv/pgbase.h"
#include "kbv/proc.h"

/* A TCP port on 127.0.0.1 nobody listens on now. */
static int free_port(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return kbv_error(KBV_EIO, "find a free port: %s", strerror(e));
	}
	*port = ntohs(a.sin_port);
	close(fd);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Where the server programs are: pg-bin-dir, else Debian's directory of the recorded
 * major version, else PATH (NULL). */
static const char *server_bin(const struct kbv_source_cfg *sc, int version, char *buf, size_t cap)
{
	struct stat st;
	if (sc && sc->pg_bin_dir)
		return sc->pg_bin_dir;
	snprintf(buf, cap, "/usr/lib/postgresql/%d/bin", version / 10000);
	return stat(buf, &st) == 0 ? buf : NULL;
}

static int pg_ctl(const char *bin, char *const args[], const char *what)
{
	char tool[PATH_MAX], *argv[16];
	size_t n = 0;
	pid_t pid;
	int rc = 0;
	snprintf(tool, sizeof tool, "%s%spg_ctl", bin ? bin : "", bin ? "/" : "");
	argv[n++] = tool;
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	TRY(kbv_cmd_spawn(argv, NULL, -1, -1, &pid));
	rc = kbv_cmd_finish(pid, what, 0);
out:
	return rc;
}

static int one_value(PGconn *c, const char *sql, char *out, size_t cap)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	snprintf(out, cap, "%s", ok ? PQgetvalue(r, 0, 0) : "");
	if (!ok)
		snprintf(out, cap, "%s", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Counts of one database, and amcheck of its B-tree indexes; problems appended. */
static int census_db(const char *conn_base, const char *db, json_t *res, json_t *problems)
{
	char conninfo[PATH_MAX + 1024], v[512], quoted[600];
	size_t k = 0;
	for (const char *p = db; *p && k + 3 < sizeof quoted; p++) { /* a conninfo value: \ and ' escaped */
		if (*p == '\'' || *p == '\\')
			quoted[k++] = '\\';
		quoted[k++] = *p;
	}
	quoted[k] = 0;
	snprintf(conninfo, sizeof conninfo, "%s dbname='%s'", conn_base, quoted);
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		json_array_append_new(problems, json_sprintf("database %s: cannot connect: %s", db, PQerrorMessage(c)));
		PQfinish(c);
		return 0;
	}
	PGresult *t = PQexec(c, "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON "
				"n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', "
				"'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1");
	json_int_t tables = 0, rows = 0, indexes = 0;
	for (int i = 0; PQresultStatus(t) == PGRES_TUPLES_OK && i < PQntuples(t); i++) {
		char sql[1024];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM ONLY %s", PQgetvalue(t, i, 0));
		if (one_value(c, sql, v, sizeof v) < 0) {
			json_array_append_new(problems, json_sprintf("%s: table %s: %s", db, PQgetvalue(t, i, 0), v));
			continue;
		}
		tables++;
		rows += strtoll(v, NULL, 10);
	}
	PQclear(t);
	/* amcheck, where the server has it (Debian's postgresql package does) */
	if (one_value(c, "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'", v, sizeof v) == 0 &&
	    !strcmp(v, "1")) {
		PGresult *e = PQexec(c, "CREATE EXTENSION IF NOT EXISTS amcheck");
		PQclear(e);
		PGresult *ix = PQexec(c, "SELECT c.oid::regclass::text, c.oid FROM pg_index i JOIN pg_class c ON c.oid = "
					 "i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND "
					 "c.relpersistence <> 't' AND i.indisvalid AND i.indisready ORDER BY 2");
		for (int i = 0; PQresultStatus(ix) == PGRES_TUPLES_OK && i < PQntuples(ix); i++) {
			char sql[128];
			snprintf(sql, sizeof sql, "SELECT bt_index_check(%s::oid::regclass, true)::text", PQgetvalue(ix, i, 1));
			if (one_value(c, sql, v, sizeof v) < 0)
				json_array_append_new(problems,
						      json_sprintf("%s: index %s: amcheck: %s", db, PQgetvalue(ix, i, 0), v));
			else
				indexes++;
		}
		PQclear(ix);
		json_object_set_new(res, "amcheck", json_true());
	}
	json_object_set_new(res, "tables", json_integer(json_integer_value(json_object_get(res, "tables")) + tables));
	json_object_set_new(res, "rows", json_integer(json_integer_value(json_object_get(res, "rows")) + rows));
	json_object_set_new(res, "indexes_checked",
			    json_integer(json_integer_value(json_object_get(res, "indexes_checked")) + indexes));
	PQfinish(c);
	return 0;
}

/* The last FATAL or PANIC line of the server's log (the reason recovery stopped), or "". */
static void log_fatal(const char *log, char *out, size_t cap)
{
	struct kbv_buf b = KBV_BUF_INIT;
	*out = 0;
	if (kbv_read_file(log, &b) < 0 || kbv_buf_add(&b, "", 1) < 0) {
		kbv_buf_release(&b);
		return;
	}
	for (char *l = strtok((char *)b.data, "\n"); l; l = strtok(NULL, "\n")) {
		char *f = strstr(l, "FATAL:");
		if (!f)
			f = strstr(l, "PANIC:");
		if (f)
			snprintf(out, cap, "%s", f);
	}
	kbv_buf_release(&b);
}

/* Wait until the scratch server has left recovery; the time of the last transaction it
 * replayed into recovered. pg_ctl returns as soon as a hot standby accepts connections,
 * before recovery ends; a server that then stops (PostgreSQL ends it with FATAL when the
 * target cannot be reached) fails the wait with its log's FATAL line. */
static int await_promotion(const char *conn_base, const char *data, const char *log, char *recovered, size_t cap)
{
	char conninfo[PATH_MAX + 256], v[256], pidfile[PATH_MAX + 32], line[512];
	struct stat st;
	snprintf(conninfo, sizeof conninfo, "%s dbname=postgres", conn_base);
	snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", data);
	for (int i = 0; i < 6000; i++) {
		if (stat(pidfile, &st) < 0) {
			log_fatal(log, line, sizeof line);
			return kbv_error(KBV_ESOURCE, "recovery in the scratch server failed%s%s", *line ? ": " : "",
					 *line ? line : " (it stopped)");
		}
		PGconn *c = PQconnectdb(conninfo);
		if (PQstatus(c) == CONNECTION_OK && one_value(c, "SELECT pg_is_in_recovery()::text", v, sizeof v) == 0 &&
		    !strcmp(v, "false")) {
			if (one_value(c, "SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')", recovered, cap) < 0)
				*recovered = 0;
			PQfinish(c);
			return 0;
		}
		PQfinish(c);
		struct timespec ts = { 0, 100000000 };
		nanosleep(&ts, NULL);
	}
	return kbv_error(KBV_ESOURCE, "the scratch server did not finish recovery within 10 minutes (its log: %s)", log);
}

int kbv_pgbase_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok)
{
	char scratch[PATH_MAX], data[PATH_MAX + 8], log[PATH_MAX + 16], binbuf[64], portarg[PATH_MAX + 256],
		conn_base[PATH_MAX + 128], recovered[128] = "";
	const char *tmp = getenv("TMPDIR");
	json_t *report = json_object(), *meta = json_loads(d->src->meta, 0, NULL), *problems = json_array();
	int rc = 0, started = 0, port = 0;
	*ok = 0;
	*scratch = 0;
	if (geteuid() == 0) {
		rc = kbv_error(KBV_EINVAL, "source '%s': the drill of a base backup starts PostgreSQL, which does not run as "
					  "root: run kbvault drill as the server's user",
			       d->src->name);
		goto out;
	}
	if (!d->recovery) {
		rc = kbv_error(KBV_EINVAL, "source '%s': no recovery settings for the drill", d->src->name);
		goto out;
	}
	TRY(kbv_path(scratch, sizeof scratch, "%s/kbvault-drill-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp"));
	if (!mkdtemp(scratch)) {
		rc = kbv_error(KBV_EIO, "create a scratch directory '%s': %s", scratch, strerror(errno));
		*scratch = 0;
		goto out;
	}
	snprintf(data, sizeof data, "%s/data", scratch);
	snprintf(log, sizeof log, "%s/server.log", scratch);
	TRY(kbv_pgbase_restore(d->rd, d->s, d->src, data, d->recovery, report));
	TRY(free_port(&port));
	const char *bin = server_bin(d->sc, (int)json_integer_value(json_object_get(meta, "server_version_num")), binbuf,
				     sizeof binbuf);
	snprintf(portarg, sizeof portarg,
		 "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c archive_mode=off "
		 "-c shared_buffers=32MB",
		 port, scratch);
	char *start[] = { "-D", data, "-l", log, "-w", "-t", "600", "-o", portarg, "start", NULL };
	rc = pg_ctl(bin, start, "pg_ctl start of the scratch server");
	started = 1; /* pg_ctl may fail after the server started */
	if (rc < 0) {
		char line[512];
		log_fatal(log, line, sizeof line);
		rc = kbv_error(rc, "source '%s': recovery in the scratch server failed%s%s", d->src->name,
			       *line ? ": " : "", line);
		goto out;
	}
	struct passwd *pw = getpwuid(geteuid());
	snprintf(conn_base, sizeof conn_base, "host=%s port=%d user=%s application_name=kbvault-drill", scratch, port,
		 pw ? pw->pw_name : "postgres");
	rc = await_promotion(conn_base, data, log, recovered, sizeof recovered);
	if (rc < 0) {
		kbv_error_prefix(rc, "source '%s'", d->src->name);
		goto out;
	}
	/* every database the server lets us into */
	char dbq[PATH_MAX + 256];
	snprintf(dbq, sizeof dbq, "%s dbname=postgres", conn_base);
	PGconn *c = PQconnectdb(dbq);
	PGresult *dbs = PQstatus(c) == CONNECTION_OK ? PQexec(c, "SELECT datname FROM pg_database WHERE datallowconn "
								 "AND NOT datistemplate ORDER BY 1")
						       : NULL;
	json_int_t ndb = 0;
	json_object_set_new(res, "tables", json_integer(0));
	json_object_set_new(res, "rows", json_integer(0));
	json_object_set_new(res, "indexes_checked", json_integer(0));
	json_object_set_new(res, "amcheck", json_false());
	for (int i = 0; PQresultStatus(dbs) == PGRES_TUPLES_OK && i < PQntuples(dbs); i++, ndb++)
		census_db(conn_base, PQgetvalue(dbs, i, 0), res, problems);
	if (!ndb)
		json_array_append_new(problems, json_sprintf("the scratch server lists no database: %s", PQerrorMessage(c)));
	PQclear(dbs);
	PQfinish(c);
	json_object_set_new(res, "databases", json_integer(ndb));
	json_object_set_new(res, "target_time", d->recovery->time ? json_string(d->recovery->time) : json_null());
	json_object_set_new(res, "recovered_to", json_string(recovered));
	json_object_set_new(res, "mismatches", json_incref(problems));
	*ok = json_array_size(problems) == 0;
	char sum[512];
	const char *checked = !json_is_true(json_object_get(res, "amcheck")) ? "amcheck not installed"
			      : *ok ? "amcheck passed on every B-tree index" : "PROBLEMS found";
	snprintf(sum, sizeof sum,
		 "recovered %s%s in a scratch server (last transaction %s); %lld databases, %lld tables, %lld rows, "
		 "%lld indexes; %s",
		 d->recovery->time ? "to " : "to the end of the WAL archive", d->recovery->time ? d->recovery->time : "",
		 *recovered ? recovered : "none replayed", (long long)ndb,
		 (long long)json_integer_value(json_object_get(res, "tables")),
		 (long long)json_integer_value(json_object_get(res, "rows")),
		 (long long)json_integer_value(json_object_get(res, "indexes_checked")), checked);
	json_object_set_new(res, "summary", json_string(sum));
out:
	if (started) {
		/* the first failure is the one to report: keep its message over the stop's */
		char msg[1024];
		snprintf(msg, sizeof msg, "%s", rc < 0 ? kbv_errmsg() : "");
		char pidfile[PATH_MAX + 32];
		struct stat st;
		snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", data);
		if (stat(pidfile, &st) == 0) {
			char *stop[] = { "-D", data, "-m", "fast", "-w", "-t", "120", "stop", NULL };
			int src = pg_ctl(server_bin(d->sc, (int)json_integer_value(json_object_get(meta, "server_version_num")),
						    binbuf, sizeof binbuf),
					 stop, "pg_ctl stop of the scratch server");
			if (src < 0 && rc == 0)
				rc = src;
		}
		if (*msg)
			kbv_error(rc, "%s", msg);
	}
	if (*scratch && nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		kbv_events_warn(d->ev, "the drill's scratch directory '%s' could not be removed: remove it by hand", scratch);
	json_decref(problems);
	json_decref(report);
	json_decref(meta);
	return rc;
}
