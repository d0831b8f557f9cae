/* kbvault drill: restore every PostgreSQL source of a snapshot into a scratch database,
 * compare row counts and row checksums with what the snapshot recorded, drop the scratch
 * database, and keep the verdict in the repository (format/records.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_pg.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/pg.h"
#include "kbv/record.h"
#include "kbv/snapshot.h"

static int wanted(const char *name, char **only, size_t nonly)
{
	if (!nonly)
		return 1;
	for (size_t i = 0; i < nonly; i++)
		if (!strcmp(only[i], name))
			return 1;
	return 0;
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
	TRY(kbv_pg_create_db(dsn, scratch, meta, 1));
	created = 1;
	TRY(cli_pg_load(rd, s, meta, dsn, scratch, &prog));
	cli_progress_done(&prog);
	TRY(kbv_pg_verify(dsn, scratch, meta, 1, &v));
	json_object_set_new(res, "tables", json_integer((json_int_t)v.tables));
	json_object_set_new(res, "rows", json_integer((json_int_t)v.rows));
	json_object_set(res, "mismatches", v.mismatches);
	*ok = json_array_size(v.mismatches) == 0;
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

int cmd_drill(int argc, char **argv)
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
		return cli_usage("drill", "unknown option");
	}
	if (argc - optind > 1) {
		free(only);
		return cli_usage("drill", "give at most one SNAPSHOT (default: latest)");
	}
	const char *spec = optind < argc ? argv[optind] : "latest";
	int code = cli_load_config();
	if (code) {
		free(only);
		return code;
	}
	const char *dsn = cli.cfg ? cli.cfg->drill_postgres_dsn : NULL;

	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL, *s;
	struct kbv_reader *rd = NULL;
	json_t *sources = json_array(), *rec = NULL;
	size_t n = 0, drilled = 0;
	int rc, any_fail = 0, first_err = 0;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &r)) != 0)
		goto done;
	if ((rc = kbv_snapshot_list(r, &list, &n)) < 0 || (rc = kbv_snapshot_find(list, n, spec, &s)) < 0 ||
	    (rc = kbv_reader_new(r, 0, &rd)) < 0 || (rc = kbv_snapshot_load_entries(rd, s)) < 0) {
		code = cli_fail(rc);
		goto done;
	}
	for (size_t k = 0; k < nonly; k++)
		if (!kbv_snapshot_source(s, only[k])) {
			code = cli_usage("drill", "the snapshot has no source '%s'", only[k]);
			goto done;
		}
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	double t0 = cli_now();
	for (size_t i = 0; i < s->nsources; i++) {
		const struct kbv_snapsource *src = &s->sources[i];
		if (!wanted(src->name, only, nonly))
			continue;
		if (strcmp(src->type, "postgres") != 0) {
			if (!cli.quiet && !cli.json)
				printf("drill %s: skipped (%s sources are not drilled by this version)\n", src->name, src->type);
			continue;
		}
		if (!dsn) {
			code = cli_usage("drill", "set [drill] postgres-dsn in the configuration: the server where scratch "
						  "databases may be created");
			goto done;
		}
		json_t *res = json_pack("{s:s, s:s}", "name", src->name, "type", src->type);
		int ok = 0;
		double ts = cli_now();
		rc = drill_pg(rd, s, src->name, dsn, res, &ok);
		drilled++;
		if (rc < 0) {
			json_object_set_new(res, "error", json_string(kbv_errmsg()));
			if (!first_err)
				first_err = rc;
		}
		json_object_set_new(res, "ok", json_boolean(ok));
		json_array_append_new(sources, res);
		any_fail |= !ok;
		if (!cli.json && (!cli.quiet || !ok)) {
			FILE *f = ok ? stdout : stderr;
			if (rc < 0)
				fprintf(f, "drill %s: FAIL: %s\n", src->name, kbv_errmsg());
			else if (!ok) {
				size_t k;
				json_t *m;
				fprintf(f, "drill %s: FAIL: the restored database differs from snapshot %.8s\n", src->name, id);
				json_array_foreach(json_object_get(res, "mismatches"), k, m)
					fprintf(f, "  %s\n", json_string_value(m));
			} else
				fprintf(f, "drill %s: PASS: restored snapshot %.8s into a scratch database; %lld tables, %lld rows, "
					   "row counts and checksums match (%.1f s)\n",
					src->name, id, (long long)json_integer_value(json_object_get(res, "tables")),
					(long long)json_integer_value(json_object_get(res, "rows")), cli_now() - ts);
		}
	}
	if (!drilled) {
		code = cli_usage("drill", "snapshot %.8s has no PostgreSQL source to drill", id);
		goto done;
	}
	char now[40], secs[24];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(now, sizeof now, "%s.%03ldZ", secs, ts.tv_nsec / 1000000);
	rec = json_pack("{s:s, s:s, s:s, s:b, s:f, s:O}", "kind", "drill", "time", now, "snapshot", id, "ok", !any_fail,
			"seconds", cli_now() - t0, "sources", sources);
	if ((rc = kbv_record_write(r, rec)) < 0) {
		code = cli_fail(kbv_error_prefix(rc, "the drill ran, but its verdict could not be recorded"));
		goto done;
	}
	if (cli.json) {
		json_dumpf(rec, stdout, JSON_COMPACT);
		putchar('\n');
	}
	code = !any_fail ? EXIT_OK : first_err ? cli_exit_code(first_err) : EXIT_CORRUPT;
done:
	json_decref(rec);
	json_decref(sources);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_repo_close(r);
	free(only);
	return code;
}
