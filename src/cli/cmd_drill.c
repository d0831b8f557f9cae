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
#include "kbv/shell.h"
#include "kbv/qdrant.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/kinds.h"
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

static void drill_warn(void *arg, const char *msg)
{
	(void)arg;
	cli_warn("%s", msg);
}

/* What a drill run carries from one snapshot to the next. */
struct drill_run {
	struct kbv_repo *repo;
	struct kbv_reader *rd;
	const char *dsn; /* [drill] postgres-dsn */
	const char *target_time; /* --target-time: where base backups' recovery stops */
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
		const struct kbv_source_kind *kind = kbv_source_kind_named(src->type);
		if (!kind || !kind->drill) {
			if (!cli.quiet && !cli.json)
				printf("drill %s: skipped (this kbvault cannot drill a %s source)\n", src->name, src->type);
			continue;
		}
		int physical = kbv_pg_is_physical(s, src->name); /* recovered in a scratch server of its own */
		if ((kind->drill_needs & KBV_DRILL_NEEDS_PG_DSN) && !d->dsn && !physical) {
			code = cli_usage("drill", "set [drill] postgres-dsn in the configuration: the server where scratch "
						  "databases may be created");
			goto done;
		}
		if ((kind->drill_needs & KBV_DRILL_NEEDS_LOAD_COMMAND) && (!sc || !sc->drill_load_command)) {
			if (!cli.quiet && !cli.json)
				printf("drill %s: skipped (no drill-load-command configured for this %s source)\n", src->name,
				       src->type);
			continue;
		}
		json_t *res = json_pack("{s:s, s:s}", "name", src->name, "type", src->type);
		int ok = 0;
		double ts = cli_now();
		struct cli_progress prog;
		cli_progress_init(&prog, "drill:");
		struct kbv_progress lp = cli_progress_of(&prog);
		struct kbv_sink_events ev = { drill_warn, NULL, NULL };
		struct cli_recovery cr;
		struct kbv_pg_recovery recovery = { .time = d->target_time };
		cli_pg_recovery(&cr, &recovery);
		struct kbv_drill_ctx ctx = { d->rd, s, src, sc, d->dsn, &lp, &ev, physical ? &recovery : NULL };
		rc = kind->drill(&ctx, res, &ok);
		cli_progress_done(&prog);
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
		{ "target-time", required_argument, NULL, 1302 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	char **only = calloc((size_t)argc + 1, sizeof *only);
	const char *target_time = NULL;
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
		if (c == 1302) {
			int64_t t;
			if (kbv_pg_parse_time(optarg, &t) < 0) {
				free(only);
				return cli_usage("drill", "--target-time '%s' is not a time such as '2026-11-30 14:05:00+00'",
						 optarg);
			}
			target_time = optarg;
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
	struct drill_run d = { .dsn = cli.cfg ? cli.cfg->drill_postgres_dsn : NULL, .target_time = target_time };
	struct kbv_snapshot **list = NULL, *s;
	struct kbv_snapshot_damage *bad = NULL;
	size_t n = 0, nbad = 0;
	int rc;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &d.repo)) != 0)
		goto done;
	if ((rc = cli_list_snapshots(d.repo, &list, &n, &bad, &nbad)) < 0 || (rc = kbv_reader_new(d.repo, cli_threads(), &d.rd)) < 0 ||
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
