/* Restored streams into their consumers (include/kbv/load.h): a file, a child's stdin, a
 * PostgreSQL database through psql or pg_restore. The stream is verified before a consumer
 * sees its end. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/load.h"
#include "kbv/pgtable.h"
#include "kbv/proc.h"

int kbv_pg_source_meta(const struct kbv_snapshot *s, const char *name, json_t **meta)
{
	const struct kbv_snapsource *src = kbv_snapshot_source(s, name);
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	if (!src)
		return kbv_error(KBV_ENOTFOUND, "snapshot %.8s has no source '%s'", id, name);
	if (strcmp(src->type, "postgres") != 0)
		return kbv_error(KBV_EINVAL, "source '%s' of snapshot %.8s is a %s source, not postgres", name, id, src->type);
	json_t *m = json_loads(src->meta, 0, NULL);
	json_t *streams = json_object_get(m, "streams");
	if (!m || !json_is_array(json_object_get(m, "tables")) ||
	    !(json_is_string(json_object_get(streams, "database")) || json_is_string(json_object_get(streams, "directory")))) {
		json_decref(m);
		return kbv_error(KBV_ECORRUPT, "snapshot %.8s: the metadata of source '%s' is incomplete", id, name);
	}
	*meta = m;
	return 0;
}

/* The entry named `name`, or NULL. */
static const struct kbv_entry *entry(const struct kbv_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nloaded; i++)
		if (!strcmp(s->entries[i].name, name))
			return &s->entries[i];
	return NULL;
}

struct load_sink {
	int fd;
	int write_failed; /* the child stopped reading (it exited, or closed its input) */
	uint64_t done, total;
	const struct kbv_progress *prog;
};

static int load_write(void *arg, const uint8_t *p, size_t n)
{
	struct load_sink *s = arg;
	int rc = kbv_write_full(s->fd, p, n, "the child's input");
	s->write_failed |= rc < 0;
	s->done += n;
	if (s->prog && s->prog->bytes)
		s->prog->bytes(s->prog->arg, s->done, s->total);
	return rc;
}

int kbv_load_to_fd(struct kbv_reader *rd, const struct kbv_entry *e, int fd)
{
	struct load_sink sk = { .fd = fd, .total = e->size };
	int rc = kbv_reader_stream(rd, &e->ref, e->size, &e->hash, load_write, &sk);
	return rc < 0 ? kbv_error_prefix(rc, "restore '%s'", e->name) : 0;
}

int kbv_load_child(struct kbv_reader *rd, const struct kbv_entry *e, pid_t pid, int fd, const char *what,
		   const struct kbv_progress *prog)
{
	struct load_sink sk = { .fd = fd, .total = e->size, .prog = prog };
	int rc = kbv_reader_stream(rd, &e->ref, e->size, &e->hash, load_write, &sk);
	if (rc < 0 && sk.write_failed) {
		/* The child stopped reading: its own exit status says why, if it failed. */
		close(fd);
		int crc = kbv_cmd_finish(pid, what, 0);
		return crc < 0 ? crc : kbv_error_prefix(rc, "%s stopped reading its input", what);
	}
	if (rc < 0) {
		/* The child must not see the end of its input: psql would COMMIT what it has, a
		 * load command would take a short stream for a whole one. Killed first. */
		kill(pid, SIGKILL);
		close(fd);
		kbv_cmd_finish(pid, what, 0);
		return kbv_error_prefix(rc, "%s abandoned (killed before the end of its input)", what);
	}
	close(fd);
	return kbv_cmd_finish(pid, what, 0);
}

static int load_plain(struct kbv_reader *rd, const struct kbv_entry *e, const char *dsn, const char *db,
		      const struct kbv_pg_client *cl, const struct kbv_progress *prog)
{
	pid_t pid;
	int fd, rc = kbv_pg_load_start(dsn, db, cl, &pid, &fd);
	if (rc < 0)
		return rc;
	char what[160];
	snprintf(what, sizeof what, "psql loading '%s' into database '%s'", e->name, db);
	rc = kbv_load_child(rd, e, pid, fd, what, prog);
	if (rc == KBV_ECORRUPT)
		kbv_error_prefix(rc, "load into database '%s' rolled back", db);
	return rc;
}

/* Directory format: every file of the dump is restored (and verified) into a scratch
 * directory first, then pg_restore -j N loads it. */
static int load_directory(struct kbv_reader *rd, const struct kbv_snapshot *s, const char *prefix, int jobs,
			  const char *dsn, const char *db, const struct kbv_pg_client *cl, const struct kbv_progress *prog)
{
	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX], path[PATH_MAX + 256];
	int rc = 0;
	size_t plen = strlen(prefix);
	snprintf(dir, sizeof dir, "%s/kbvault-pgrestore-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(dir))
		return kbv_error(KBV_EIO, "create a scratch directory in %s: %s", tmpdir ? tmpdir : "/tmp", strerror(errno));
	struct load_sink sk = { .fd = -1, .prog = prog };
	for (size_t i = 0; i < s->nloaded; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind == KBV_ENTRY_FILE && !strncmp(e->name, prefix, plen) && e->name[plen] == '/')
			sk.total += e->size;
	}
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind != KBV_ENTRY_FILE || strncmp(e->name, prefix, plen) != 0 || e->name[plen] != '/' ||
		    strchr(e->name + plen + 1, '/'))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->name + plen + 1);
		sk.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (sk.fd < 0) {
			rc = kbv_error(KBV_EIO, "create '%s': %s", path, strerror(errno));
			break;
		}
		rc = kbv_reader_stream(rd, &e->ref, e->size, &e->hash, load_write, &sk);
		if (close(sk.fd) < 0 && rc == 0)
			rc = kbv_error(KBV_EIO, "close '%s': %s", path, strerror(errno));
		if (rc < 0)
			kbv_error_prefix(rc, "restore '%s'", e->name);
	}
	if (prog && prog->done)
		prog->done(prog->arg);
	if (rc == 0)
		rc = kbv_pg_restore_dir(dsn, db, dir, jobs, cl);
	kbv_rmdir_flat(dir);
	return rc;
}

int kbv_pg_load_snapshot(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_pg_client *client,
			 const json_t *meta, const char *dsn, const char *db, const struct kbv_progress *prog)
{
	struct kbv_pg_client cl = client ? *client : (struct kbv_pg_client){ 0 };
	const json_t *streams = json_object_get(meta, "streams");
	const char *plain = json_string_value(json_object_get(streams, "database"));
	const char *directory = json_string_value(json_object_get(streams, "directory"));
	if (directory)
		return load_directory(rd, s, directory, (int)json_integer_value(json_object_get(meta, "jobs")), dsn, db,
				      &cl, prog);
	const struct kbv_entry *e = entry(s, plain);
	if (!e)
		return kbv_error(KBV_ECORRUPT, "the snapshot names stream '%s', which it lacks", plain);
	return load_plain(rd, e, dsn, db, &cl, prog);
}

/* ---- one table ---- */

/* The filter hands over the table's SQL a line (a COPY row) at a time; the consumer gets
 * it TABLE_OUT_BUF bytes at a time, not in a write(2) per row. */
#define TABLE_OUT_BUF (256u << 10)

struct table_sink {
	struct kbv_pgtable_filter *f;
	struct kbv_wbuf out;
};

static int table_out(void *arg, const char *p, size_t n)
{
	return kbv_wbuf_put(&((struct table_sink *)arg)->out, p, n);
}

static int table_in(void *arg, const uint8_t *p, size_t n)
{
	return kbv_pgtable_filter_feed(((struct table_sink *)arg)->f, p, n);
}

int kbv_pg_table_stream(struct kbv_reader *rd, const struct kbv_snapshot *s, const json_t *meta, const char *qname,
			int fd, char **left_out)
{
	const char *plain = json_string_value(json_object_get(json_object_get(meta, "streams"), "database"));
	char schema[256], name[256];
	struct table_sink t = { 0 };
	int rc = 0;
	*left_out = NULL;
	if (!plain)
		return kbv_error(KBV_EINVAL, "one table is restored from a plain SQL stream (mode = native or pg_dump "
					     "without jobs); this snapshot holds a directory dump: restore it whole");
	const struct kbv_entry *e = entry(s, plain);
	if (!e)
		return kbv_error(KBV_ECORRUPT, "the snapshot names stream '%s', which it lacks", plain);
	if (kbv_pg_split_qname(qname, schema, sizeof schema, name, sizeof name) < 0)
		return kbv_error(KBV_EINVAL, "'%s' is not a schema-qualified table name", qname);
	TRY(kbv_wbuf_init(&t.out, fd, TABLE_OUT_BUF, "the table's SQL"));
	TRY(kbv_pgtable_filter_new(schema, name, qname, table_out, &t, &t.f));
	rc = kbv_reader_stream(rd, &e->ref, e->size, &e->hash, table_in, &t);
	if (rc == 0)
		rc = kbv_pgtable_filter_end(t.f);
	if (rc == 0) /* on a failure the rest is dropped: the caller kills the consumer first */
		rc = kbv_wbuf_flush(&t.out);
	if (rc == 0 && *kbv_pgtable_filter_left_out(t.f) && !(*left_out = strdup(kbv_pgtable_filter_left_out(t.f))))
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	if (rc < 0 && t.out.failed)
		rc = kbv_error(KBV_EIO, "the consumer of table %s stopped reading", qname);
out:
	kbv_pgtable_filter_free(t.f);
	kbv_wbuf_free(&t.out);
	return rc;
}

int kbv_pg_load_table(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_pg_client *client,
		      const json_t *meta, const char *qname, const char *dsn, const char *db, char **left_out)
{
	struct kbv_pg_client cl = client ? *client : (struct kbv_pg_client){ 0 };
	char what[512];
	pid_t pid;
	int fd, rc = kbv_pg_load_start(dsn, db, &cl, &pid, &fd);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "psql loading table %s into database '%s'", qname, db);
	rc = kbv_pg_table_stream(rd, s, meta, qname, fd, left_out);
	if (rc < 0 && rc != KBV_EIO) {
		/* psql must not see the end of its input: it would commit a part */
		kill(pid, SIGKILL);
		close(fd);
		kbv_cmd_finish(pid, what, 0);
		return kbv_error_prefix(rc, "%s abandoned (killed before the end of its input)", what);
	}
	close(fd);
	int crc = kbv_cmd_finish(pid, what, 0);
	return rc < 0 ? (crc < 0 ? crc : rc) : crc;
}
