/* kbvault snapshot: PostgreSQL sources (the dump itself is src/pg.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pg.h"
#include "kbv/source.h"

/* Roles and tablespaces: pg_dumpall --globals-only as "<source>/globals.sql". */
static int add_globals(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t *streams)
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
		rc = snap_store_child(c, name, pid, p[0], what);
	if (rc == 0)
		json_object_set_new(streams, "globals", json_string(name));
	return rc;
}

int snap_add_postgres(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char name[256], what[160];
	struct kbv_pgdump *d;
	struct kbv_stream_result res;
	int fd, native = !sc->mode || !strcmp(sc->mode, "native");
	struct kbv_pg_opts o = { .source = sc->name, .client = { sc->pg_bin_dir, sc->client_command_prefix },
				 .dsn = sc->dsn, .native = native };
	json_t *streams = json_object();

	if (sc->jobs) {
		/* pg_dump -Fd -j N writes files; they are spooled into the repository's tmp/ and
		 * stored as entries "<source>/dump/...". */
		char tmp[PATH_MAX], dir[PATH_MAX + 64];
		o.jobs = atoi(sc->jobs);
		int rc = kbv_repo_sub(c->repo, "tmp", tmp, sizeof tmp);
		snprintf(dir, sizeof dir, "%s/pgdump-%s-%ld", tmp, sc->name, (long)getpid());
		snprintf(name, sizeof name, "%s/dump", sc->name);
		kbv_rmdir_flat(dir);
		if (rc == 0)
			rc = kbv_pgdump_to_dir(&o, dir, meta);
		if (rc == 0)
			rc = kbv_walk(dir, name, snap_add_path, c);
		kbv_rmdir_flat(dir);
		if (rc == 0)
			json_object_set_new(streams, "directory", json_string(name));
		if (rc == 0 && kbv_config_bool(sc->globals) == 1)
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
	struct kbv_entry *x = snap_add_entry(c, KBV_ENTRY_COMMAND, name);
	rc = x ? kbv_writer_fd(c->w, fd, what, &res) : KBV_EINVAL;
	close(fd); /* a dump still writing now fails with EPIPE and stops */
	int rc2 = kbv_pgdump_finish(d, meta);
	if (rc < 0 || (rc = rc2) < 0)
		goto out;
	x->mode = 0600;
	snap_set_result(x, &res);
	json_object_set_new(streams, "database", json_string(name));

	if (kbv_config_bool(sc->globals) == 1 && (rc = add_globals(c, sc, streams)) < 0)
		goto out;
	json_object_set(*meta, "streams", streams);
out:
	json_decref(streams);
	return rc;
}

void snap_print_postgres(const char *name, const json_t *meta)
{
	size_t i;
	const json_t *t;
	uint64_t rows = 0, keyed = 0;
	json_array_foreach(json_object_get(meta, "tables"), i, t) {
		rows += (uint64_t)json_integer_value(json_object_get(t, "rows"));
		keyed += !strcmp(json_string_value(json_object_get(t, "order")), "key");
	}
	char size[32];
	cli_bytes((uint64_t)json_integer_value(json_object_get(meta, "database_size")), size, sizeof size);
	printf("  %s: PostgreSQL %s, %s mode, %zu tables (%llu in key order), %llu rows, database %s, LSN %s\n", name,
	       json_string_value(json_object_get(meta, "server_version")),
	       json_string_value(json_object_get(meta, "mode")), json_array_size(json_object_get(meta, "tables")),
	       (unsigned long long)keyed, (unsigned long long)rows, size, json_string_value(json_object_get(meta, "wal_lsn")));
}

