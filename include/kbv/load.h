/* Restored streams into their consumers: a file descriptor, a child process's stdin, a
 * PostgreSQL database. Shared by restore and drill of every source kind. */
#ifndef KBV_LOAD_H
#define KBV_LOAD_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "kbv/pg.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"

/* Progress of a long restore: bytes(arg, done, total) now and then, done(arg) at the end;
 * either may be NULL. */
struct kbv_progress {
	void (*bytes)(void *arg, uint64_t done, uint64_t total);
	void (*done)(void *arg);
	void *arg;
};

/* Restore entry e (verified) into fd. */
int kbv_load_to_fd(struct kbv_reader *rd, const struct kbv_entry *e, int fd);
/* Stream entry e into a started child's stdin (fd, closed here), then wait for it. The
 * stream is verified before the child sees the end of its input; on any failure the child
 * is killed first, so it never takes a short stream for a whole one. prog may be NULL. */
int kbv_load_child(struct kbv_reader *rd, const struct kbv_entry *e, pid_t pid, int fd, const char *what,
		   const struct kbv_progress *prog);

/* The postgres source `name` of s: its metadata (the caller's, json_decref). KBV_ENOTFOUND,
 * KBV_EINVAL (another kind) or KBV_ECORRUPT (incomplete metadata) naming it. */
int kbv_pg_source_meta(const struct kbv_snapshot *s, const char *name, json_t **meta);

/* Load the source described by `meta` (entries of s loaded) into database `db` on the
 * server `dsn` names, with the client programs of `client` (NULL: from PATH). A plain SQL
 * stream goes through psql in one transaction, verified before psql sees its end; a
 * directory dump is restored (and verified) into a scratch directory, then loaded by
 * pg_restore -j N. prog may be NULL. */
int kbv_pg_load_snapshot(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_pg_client *client,
			 const json_t *meta, const char *dsn, const char *db, const struct kbv_progress *prog);

/* One table of a PostgreSQL source (its plain SQL stream, through the filter of
 * kbv/pgtable.h) as SQL into fd; what the filter left out that a user may miss goes to
 * *left_out (the caller's, free(); NULL when nothing). KBV_ENOTFOUND when the stream has
 * no such table. */
int kbv_pg_table_stream(struct kbv_reader *rd, const struct kbv_snapshot *s, const json_t *meta, const char *qname,
			int fd, char **left_out);
/* The same into database `db` through psql in one transaction; psql is killed before the
 * end of its input when the stream fails, so nothing of it is committed. */
int kbv_pg_load_table(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_pg_client *client,
		      const json_t *meta, const char *qname, const char *dsn, const char *db, char **left_out);

#endif
