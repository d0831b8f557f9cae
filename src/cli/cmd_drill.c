/* kbvault drill: restore every PostgreSQL source of a snapshot into a scratch database,
 * compare row counts and row checksums with what the snapshot recorded, drop the scratch
 * database, and keep the verdict in the repository (format/records.md). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_pg.h"
#include "shell.h"
#include "kbv/qdrant.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/pg.h"
#include "kbv/record.h"
#include "kbv/snapshot.h"

static int listed(const char *name, char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return 1;
	return 0;
}

/* Is the source `name` selected by --source (all are without one)? */
static int wanted(const char *name, char **only, size_t nonly)
{
	return !nonly || listed(name, only, nonly);
}

/* Drill one source; fills `res` (the verdict object). Returns 0 when the drill ran (pass
 * or fail), or the error that stopped it. */
static int drill_pg(struct kbv_reader *rd, struct kbv_snapshot *s, const char *source, const char *dsn, json_t *res,
		    int *ok)
{
	json_t *meta = NULL;
	struct kbv_pg_verdict v = { 0 };
	struct cli_progress prog;
	char scratch[64], id[2 * KBV_ID_BYTES + 1];
	int rc = 0, created = 0;
	kbv_hex(s->id, KBV_ID_BYTES, id);
	snprintf(scratch, sizeof scratch, "kbvault_drill_%.8s_%ld", id, (long)getpid());
	*ok = 0;
	cli_progress_init(&prog, "drill:");
	TRY(cli_pg_source(s, source, &meta));
	/* force: a scratch database of this name can only be the leftover of a drill killed
	 * before it could drop it. */
	TRY(kbv_pg_create_db(dsn, scratch, meta, 1, NULL));
	created = 1;
	TRY(cli_pg_load(rd, s, source, meta, dsn, scratch, &prog));
	cli_progress_done(&prog);
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
	cli_progress_done(&prog);
	if (created) {
		int drc = kbv_pg_drop_db(dsn, scratch);
		if (drc < 0) {
			cli_warn("%s (drop it by hand)", kbv_errmsg());
			if (rc == 0)
				rc = drc;
		}
	}
	json_decref(v.mismatches);
	json_decref(meta);
	return rc;
}

/* Qdrant: every collection uploaded as <name>_kbvault_drill_<pid> to the source's own
 * server, point counts compared, the scratch collections deleted. */
static int drill_qdrant(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src, json_t *res,
			int *ok)
{
	char suffix[64];
	json_t *meta = json_loads(src->meta, 0, NULL), *report = json_array(), *mism = json_array();
	struct kbv_source_cfg bare;
	const struct kbv_source_cfg *sc = cli_qdrant_cfg(src, meta, &bare);
	struct kbv_qdrant *q = NULL;
	*ok = 0;
	snprintf(suffix, sizeof suffix, "_kbvault_drill_%ld", (long)getpid());
	int rc = cli_qdrant_restore(rd, s, sc, meta, NULL, suffix, report);
	size_t i;
	json_t *r, *c;
	int64_t points = 0;
	json_array_foreach(report, i, r) {
		json_int_t got = json_integer_value(json_object_get(r, "points"));
		json_int_t want = json_integer_value(json_object_get(r, "recorded_points"));
		points += got;
		if (got != want) {
			char m[600];
			snprintf(m, sizeof m, "collection %s: %lld points, the snapshot recorded %lld",
				 json_string_value(json_object_get(r, "collection")), (long long)got, (long long)want);
			json_array_append_new(mism, json_string(m));
		}
	}
	/* Scratch collections go, including one a failed upload may have left. */
	if (cli_qdrant_open(sc, NULL, &q) == 0) {
		json_array_foreach(json_object_get(meta, "collections"), i, c) {
			char name[600];
			int64_t n;
			snprintf(name, sizeof name, "%s%s", json_string_value(json_object_get(c, "name")), suffix);
			if (kbv_qdrant_points(q, name, &n) == 0 && kbv_qdrant_drop(q, name) < 0)
				cli_warn("%s (delete it by hand)", kbv_errmsg());
		}
		kbv_qdrant_close(q);
	}
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "uploaded %zu collections as scratch collections; %lld points, counts match",
			 json_array_size(report), (long long)points);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "collections", json_integer((json_int_t)json_array_size(report)));
		json_object_set_new(res, "points", json_integer(points));
		json_object_set(res, "mismatches", mism);
		*ok = json_array_size(mism) == 0;
	}
	json_decref(mism);
	json_decref(report);
	json_decref(meta);
	return rc;
}

/* Path: every file restored into a scratch directory, read back from disk and hashed. */
static int drill_path(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src, json_t *res,
		      int *ok)
{
	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX], file[PATH_MAX + 32], prefix[128];
	size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", src->name);
	uint64_t files = 0, bytes = 0;
	json_t *mism = json_array();
	int rc = 0;
	*ok = 0;
	snprintf(dir, sizeof dir, "%s/kbvault-drill-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(dir)) {
		json_decref(mism);
		return kbv_error(KBV_EIO, "create a scratch directory: %s", strerror(errno));
	}
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind != KBV_ENTRY_FILE || strncmp(e->name, prefix, plen) != 0)
			continue;
		snprintf(file, sizeof file, "%s/%zu", dir, i);
		int fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = kbv_error(KBV_EIO, "create '%s': %s", file, strerror(errno));
			break;
		}
		rc = cli_restore_to_fd(rd, e, fd);
		if (rc == 0) {
			/* What landed on disk, hashed again. */
			crypto_generichash_state st;
			uint8_t h[32], buf[1 << 16];
			ssize_t got;
			uint64_t n = 0;
			crypto_generichash_init(&st, NULL, 0, 32);
			lseek(fd, 0, SEEK_SET);
			while ((got = read(fd, buf, sizeof buf)) > 0) {
				crypto_generichash_update(&st, buf, (size_t)got);
				n += (uint64_t)got;
			}
			crypto_generichash_final(&st, h, 32);
			if (got < 0 || n != e->size || memcmp(h, e->hash, 32) != 0) {
				char m[PATH_MAX + 64];
				snprintf(m, sizeof m, "%s: restored file does not hash to the snapshot's BLAKE2b", e->name);
				json_array_append_new(mism, json_string(m));
			}
			files++;
			bytes += n;
		}
		close(fd);
		unlink(file);
	}
	rmdir(dir);
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "restored %llu files (%llu bytes) into a scratch directory; every hash matches",
			 (unsigned long long)files, (unsigned long long)bytes);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "files", json_integer((json_int_t)files));
		json_object_set(res, "mismatches", mism);
		*ok = json_array_size(mism) == 0;
	}
	json_decref(mism);
	return rc;
}

static int drill_load_run(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src,
			  const struct kbv_source_cfg *sc, char *const env[], json_t *res, int *ok);

/* Command and neo4j: the stream into drill-load-command, whose exit status is the verdict;
 * then drill-cleanup-command, whatever happened. Both find where to put the scratch copy
 * in their environment: KBVAULT_DRILL_NAME (a name no other drill uses, for a scratch
 * database or directory), KBVAULT_DRILL_SOURCE and KBVAULT_DRILL_SNAPSHOT. */
static int drill_load(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src,
		      const struct kbv_source_cfg *sc, json_t *res, int *ok)
{
	char id[2 * KBV_ID_BYTES + 1], name[96], vsrc[128], vsnap[96];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	snprintf(name, sizeof name, "KBVAULT_DRILL_NAME=kbvault_drill_%.8s_%ld", id, (long)getpid());
	snprintf(vsrc, sizeof vsrc, "KBVAULT_DRILL_SOURCE=%s", src->name);
	snprintf(vsnap, sizeof vsnap, "KBVAULT_DRILL_SNAPSHOT=%s", id);
	char *env[] = { name, vsrc, vsnap, NULL };
	int rc = drill_load_run(rd, s, src, sc, env, res, ok);
	if (sc->drill_cleanup_command) {
		int crc = shell_hook_env(src->name, "drill-cleanup-command", sc->drill_cleanup_command, env);
		if (crc < 0) {
			cli_warn("%s (clean up by hand: %s)", kbv_errmsg(), name + strlen("KBVAULT_DRILL_NAME="));
			if (rc == 0)
				rc = crc;
			*ok = 0;
		}
	}
	return rc;
}

static int drill_load_run(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src,
			  const struct kbv_source_cfg *sc, char *const env[], json_t *res, int *ok)
{
	json_t *meta = json_loads(src->meta, 0, NULL);
	const char *name = json_string_value(json_object_get(json_object_get(meta, "streams"), "dump"));
	const struct kbv_entry *e = NULL;
	char what[200];
	int rc = 0;
	*ok = 0;
	for (size_t i = 0; name && i < s->nloaded && !e; i++)
		if (!strcmp(s->entries[i].name, name))
			e = &s->entries[i];
	json_decref(meta);
	if (!e)
		return kbv_error(KBV_ECORRUPT, "source '%s': the snapshot lacks the stream its metadata names", src->name);
	snprintf(what, sizeof what, "the drill-load-command of source '%s'", src->name);
	pid_t pid;
	int fd;
	rc = shell_start_writer_env(sc->drill_load_command, env, &pid, &fd);
	if (rc == 0)
		rc = cli_feed_child(rd, e, pid, fd, what, NULL);
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "%llu bytes loaded by its drill-load-command, which succeeded",
			 (unsigned long long)e->size);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "mismatches", json_array());
		*ok = 1;
	}
	return rc;
}

/* What a drill run carries from one snapshot to the next. */
struct drill_run {
	struct kbv_repo *repo;
	struct kbv_reader *rd;
	const char *dsn; /* [drill] postgres-dsn */
	size_t drilled;
	int any_fail, first_err;
};

/* Drill the sources of s named in only[] (all when nonly is 0) and record one verdict for
 * the snapshot. Returns 0 or an exit code, having printed why. */
static int drill_snapshot(struct drill_run *d, struct kbv_snapshot *s, char **only, size_t nonly)
{
	json_t *sources = json_array(), *rec = NULL;
	size_t drilled = 0;
	int rc, code = 0, any_fail = 0;
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	if ((rc = kbv_snapshot_load_entries(d->rd, s)) < 0) {
		code = cli_fail(rc);
		goto done;
	}
	double t0 = cli_now();
	for (size_t i = 0; i < s->nsources; i++) {
		const struct kbv_snapsource *src = &s->sources[i];
		if (!wanted(src->name, only, nonly))
			continue;
		const struct kbv_source_cfg *sc = cli.cfg ? kbv_config_source(cli.cfg, src->name) : NULL;
		int is_pg = !strcmp(src->type, "postgres"), is_cmd = !strcmp(src->type, "command") || !strcmp(src->type, "neo4j");
		if (is_pg && !d->dsn) {
			code = cli_usage("drill", "set [drill] postgres-dsn in the configuration: the server where scratch "
						  "databases may be created");
			goto done;
		}
		if (is_cmd && (!sc || !sc->drill_load_command)) {
			if (!cli.quiet && !cli.json)
				printf("drill %s: skipped (no drill-load-command configured for this %s source)\n", src->name,
				       src->type);
			continue;
		}
		json_t *res = json_pack("{s:s, s:s}", "name", src->name, "type", src->type);
		int ok = 0;
		double ts = cli_now();
		if (is_pg)
			rc = drill_pg(d->rd, s, src->name, d->dsn, res, &ok);
		else if (!strcmp(src->type, "qdrant"))
			rc = drill_qdrant(d->rd, s, src, res, &ok);
		else if (!strcmp(src->type, "path"))
			rc = drill_path(d->rd, s, src, res, &ok);
		else
			rc = drill_load(d->rd, s, src, sc, res, &ok);
		drilled++;
		if (rc < 0) {
			json_object_set_new(res, "error", json_string(kbv_errmsg()));
			if (!d->first_err)
				d->first_err = rc;
		}
		json_object_set_new(res, "ok", json_boolean(ok));
		json_array_append_new(sources, res);
		any_fail |= !ok;
		double secs = cli_now() - ts;
		cli_run_attempt(src->name, ok, secs);
		if (rc < 0) {
			cli_log(CLI_ERROR, "drill %s: FAIL: %s", src->name, kbv_errmsg());
		} else if (!ok) {
			size_t k;
			json_t *m;
			cli_log(CLI_ERROR, "drill %s: FAIL: the restore differs from snapshot %.8s", src->name, id);
			json_array_foreach(json_object_get(res, "mismatches"), k, m)
				cli_log(CLI_ERROR, "drill %s: %s", src->name, json_string_value(m));
		} else {
			const char *summary = json_string_value(json_object_get(res, "summary"));
			cli_log(CLI_INFO, "drill %s: PASS: snapshot %.8s: %s (%.1f s)", src->name, id, summary, secs);
			if (!cli.json && !cli.quiet)
				printf("drill %s: PASS: snapshot %.8s: %s (%.1f s)\n", src->name, id, summary, secs);
		}
	}
	if (!drilled)
		goto done;
	d->drilled += drilled;
	d->any_fail |= any_fail;
	char now[40];
	cli_utc_now(now, sizeof now);
	rec = json_pack("{s:s, s:s, s:s, s:b, s:f, s:O}", "kind", "drill", "time", now, "snapshot", id, "ok", !any_fail,
			"seconds", cli_now() - t0, "sources", sources);
	if ((rc = kbv_record_write(d->repo, rec)) < 0) {
		code = cli_fail(kbv_error_prefix(rc, "the drill ran, but its verdict could not be recorded"));
		goto done;
	}
	if (cli.json) {
		json_dumpf(rec, stdout, JSON_COMPACT);
		putchar('\n');
	}
done:
	json_decref(rec);
	json_decref(sources);
	return code;
}

/* Without a SNAPSHOT, each source is drilled at its own newest snapshot: the sources named
 * with --source, else the configured ones the repository holds, else every source it holds.
 * Sources whose newest snapshot is the same are drilled together (one verdict). */
static int drill_latest(struct drill_run *d, struct kbv_snapshot **list, size_t n, char **only, size_t nonly)
{
	for (size_t k = 0; k < nonly; k++) {
		const char *one[1] = { only[k] };
		struct kbv_snapshot_filter f = { .sources = one, .nsources = 1 };
		struct kbv_snapshot *s;
		if (kbv_snapshot_find_in(list, n, "latest", &f, &s) < 0)
			return cli_usage("drill", "no snapshot holds source '%s'", only[k]);
	}
	/* Which sources: --source, else the configured ones present, else all present. */
	int use_cfg = 0;
	for (size_t i = 0; i < n && !nonly && cli.cfg && !use_cfg; i++)
		for (size_t k = 0; k < list[i]->nsources && !use_cfg; k++)
			use_cfg = kbv_config_source(cli.cfg, list[i]->sources[k].name) != NULL;
	/* Newest first: a source is taken at the first snapshot that holds it. taken[] lists
	 * the sources in that order, so each snapshot's share of it is contiguous. */
	size_t cap = 0, ntaken = 0;
	for (size_t i = 0; i < n; i++)
		cap += list[i]->nsources;
	char **taken = calloc(cap + 1, sizeof *taken);
	if (!taken)
		return cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));
	int code = 0;
	for (size_t i = n; i-- > 0 && !code;) {
		struct kbv_snapshot *s = list[i];
		size_t from = ntaken;
		for (size_t k = 0; k < s->nsources; k++) {
			char *nm = s->sources[k].name;
			if (nonly ? !wanted(nm, only, nonly) : use_cfg && !kbv_config_source(cli.cfg, nm))
				continue;
			if (!listed(nm, taken, ntaken))
				taken[ntaken++] = nm;
		}
		if (ntaken > from)
			code = drill_snapshot(d, s, &taken[from], ntaken - from);
	}
	free(taken);
	return code;
}

static int drill_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 1301 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	char **only = calloc((size_t)argc + 1, sizeof *only);
	size_t nonly = 0;
	int c;
	if (!only)
		return EXIT_FAIL;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "drill"))
			continue;
		if (c == 1301) {
			only[nonly++] = optarg;
			continue;
		}
		free(only);
		return cli_bad_option("drill", argv);
	}
	if (argc - optind > 1) {
		free(only);
		return cli_usage("drill", "give at most one SNAPSHOT (default: each source's latest)");
	}
	const char *spec = optind < argc ? argv[optind] : NULL;
	cli_run_begin("drill");
	int code = cli_load_config();
	if (code) {
		free(only);
		return code;
	}
	struct drill_run d = { .dsn = cli.cfg ? cli.cfg->drill_postgres_dsn : NULL };
	struct kbv_snapshot **list = NULL, *s;
	struct kbv_snapshot_damage *bad = NULL;
	size_t n = 0, nbad = 0;
	int rc;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &d.repo)) != 0)
		goto done;
	if ((rc = cli_list_snapshots(d.repo, &list, &n, &bad, &nbad)) < 0 || (rc = kbv_reader_new(d.repo, 0, &d.rd)) < 0 ||
	    (spec && (rc = cli_damaged_spec(bad, nbad, spec)) < 0)) {
		code = cli_fail(rc);
		goto done;
	}
	if (!spec) {
		if (!n) {
			code = cli_fail(kbv_error(KBV_ENOTFOUND, "the repository has no snapshots"));
			goto done;
		}
		code = drill_latest(&d, list, n, only, nonly);
	} else {
		if ((rc = kbv_snapshot_find(list, n, spec, &s)) < 0) {
			code = cli_fail(rc);
			goto done;
		}
		for (size_t k = 0; k < nonly; k++)
			if (!kbv_snapshot_source(s, only[k])) {
				code = cli_usage("drill", "the snapshot has no source '%s'", only[k]);
				goto done;
			}
		code = drill_snapshot(&d, s, only, nonly);
	}
	if (code)
		goto done;
	if (!d.drilled) {
		code = cli_usage("drill", "%s no source this drill can check", spec ? "the snapshot has" : "the repository has");
		goto done;
	}
	code = !d.any_fail ? EXIT_OK : d.first_err ? cli_exit_code(d.first_err) : EXIT_CORRUPT;
done:
	kbv_reader_free(d.rd);
	kbv_snapshot_list_free(list, n);
	kbv_snapshot_damage_free(bad, nbad);
	if (d.repo)
		cli_run_repo(d.repo);
	kbv_repo_close(d.repo);
	free(only);
	return code;
}

int cmd_drill(int argc, char **argv)
{
	return cli_run_end(drill_main(argc, argv));
}
