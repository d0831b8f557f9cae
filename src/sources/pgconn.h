/* What pgconn.c lends the other PostgreSQL files of this folder (not a public API: the
 * public one is include/kbv/pg.h). */
#ifndef KBV_SOURCES_PGCONN_H
#define KBV_SOURCES_PGCONN_H

#include <libpq-fe.h>
#include <stddef.h>

/* A server's message as one line in buf: libpq's text without trailing newlines, inner
 * newlines folded (messages may carry DETAIL and HINT lines). */
const char *kbv_pg_one_line(const char *msg, char *buf, size_t cap);

/* Connect to dsn (its dbname replaced by `dbname` when not NULL); errors name `what`. */
int kbv_pg_connect(const char *dsn, const char *dbname, const char *what, PGconn **out);

/* Run one statement; *res (when not NULL) receives a TUPLES_OK result to PQclear. */
int kbv_pg_exec(PGconn *c, const char *sql, PGresult **res, const char *what);

/* The client encoding and the fixed session settings every dump and verification uses,
 * so that row text (and so the checksums) does not depend on the server's defaults. */
int kbv_pg_session_setup(PGconn *c, const char *encoding, const char *what);

#endif
