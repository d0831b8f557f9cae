/* Shared by restore and drill: find a PostgreSQL source in a snapshot and load its SQL
 * stream into a database with psql. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_pg.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pg.h"
#include "kbv/source.h"

int cli_pg_source(const struct kbv_snapshot *s, const char *name, json_t **meta, const struct kbv_entry **db)
{
	const struct kbv_snapsource *src = kbv_snapshot_source(s, name);
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	if (!src)
		return kbv_error(KBV_ENOTFOUND, "snapshot %.8s has no source '%s'", id, name);
	if (strcmp(src->type, "postgres") != 0)
		return kbv_error(KBV_EINVAL, "source '%s' of snapshot %.8s is a %s source, not postgres", name, id, src->type);
	json_t *m = json_loads(src->meta, 0, NULL);
	const char *entry = json_string_value(json_object_get(json_object_get(m, "streams"), "database"));
	if (!m || !entry || !json_is_array(json_object_get(m, "tables"))) {
		json_decref(m);
		return kbv_error(KBV_ECORRUPT, "snapshot %.8s: the metadata of source '%s' is incomplete", id, name);
	}
	for (size_t i = 0; i < s->nloaded; i++)
		if (!strcmp(s->entries[i].name, entry)) {
			*db = &s->entries[i];
			*meta = m;
			return 0;
		}
	json_decref(m);
	return kbv_error(KBV_ECORRUPT, "snapshot %.8s: source '%s' names stream '%s', which the snapshot lacks", id, name,
			 entry);
}

struct load_sink {
	int fd;
	uint64_t done, total;
	struct cli_progress *prog;
};

static int load_write(void *arg, const uint8_t *p, size_t n)
{
	struct load_sink *s = arg;
	int rc = kbv_write_full(s->fd, p, n, "psql's input");
	s->done += n;
	if (s->prog)
		cli_progress_bytes(s->prog, s->done, s->total, 0, 0);
	return rc;
}

int cli_pg_load(struct kbv_reader *rd, const struct kbv_entry *e, const char *dsn, const char *db,
		struct cli_progress *prog)
{
	pid_t pid;
	int fd, rc = kbv_pg_load_start(dsn, db, &pid, &fd);
	if (rc < 0)
		return rc;
	struct load_sink sk = { .fd = fd, .total = e->size, .prog = prog };
	rc = kbv_reader_stream(rd, &e->ref, e->size, e->hash, load_write, &sk);
	char what[160];
	snprintf(what, sizeof what, "psql loading '%s' into database '%s'", e->name, db);
	if (rc < 0) {
		/* psql must not see the end of its input: it would COMMIT what it has. Killed
		 * first, its connection drops and the server rolls the transaction back. */
		kill(pid, SIGKILL);
		close(fd);
		kbv_cmd_finish(pid, what, 0);
		return kbv_error_prefix(rc, "load into database '%s' abandoned and rolled back", db);
	}
	close(fd);
	return kbv_cmd_finish(pid, what, 0);
}
