#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_pg.h"
#include "kbv/shell.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/pg.h"
#include "kbv/pgbase.h"
#include "kbv/fsio.h"
#include "kbv/restore.h"
#include "kbv/snapshot.h"

struct sink {
	size_t strip; /* leading bytes of entry names left out on disk ("<source>/" for --in-place) */
	int fd;
	const char *what;
	uint64_t done, total;
	struct cli_progress *prog;
};

/* A piece that reached stdout: the count (what reached it, not what was offered) and the
 * progress. kbv_reader_stream_fd() calls it once it wrote the piece itself. */
static int written_sink(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;
	(void)p;
	s->done += n;
	cli_progress_bytes(s->prog, s->done, s->total, 0, 0);
	return 0;
}

static int write_sink(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;
	int rc = kbv_write_full(s->fd, p, n, s->what);
	return rc < 0 ? rc : written_sink(arg, p, n);
}

static int selected(const struct kbv_entry *e, char **streams, size_t nstreams)
{
	if (!nstreams)
		return 1;
	for (size_t i = 0; i < nstreams; i++) {
		size_t n = strlen(streams[i]);
		if (!strncmp(e->name, streams[i], n) && (e->name[n] == 0 || e->name[n] == '/'))
			return 1;
	}
	return 0;
}

struct select_arg {
	char **streams;
	size_t nstreams;
};

static int select_entry(const struct kbv_entry *e, void *arg)
{
	struct select_arg *sa = arg;
	return selected(e, sa->streams, sa->nstreams);
}

static void restore_progress(void *arg, uint64_t bytes)
{
	struct sink *sk = arg;
	sk->done = bytes;
	cli_progress_bytes(sk->prog, sk->done, sk->total, 0, 0);
}

static void restore_skipped(void *arg, const char *path)
{
	size_t *n = arg;
	if (++*n <= 10)
		cli_warn("'%s' exists and was left as it is (--overwrite replaces it)", path);
}

/* The selected entries under dir (kbv_restore_dir: no symlink of the target followed).
 * Something already at an entry's path is kept unless `overwrite`: then the restore goes
 * on, says what it skipped, and fails at its end (EXIT_FAIL through *skipped). */
static int restore_target(struct kbv_reader *rd, struct kbv_snapshot *s, const char *dir, char **streams,
			  size_t nstreams, struct sink *sk, int overwrite, int in_place, size_t *count, size_t *skipped)
{
	struct select_arg sa = { streams, nstreams };
	size_t nskipped = 0;
	struct kbv_restore_opts o = {
		.select = select_entry, .select_arg = &sa, .strip = sk->strip, .overwrite = overwrite,
		.follow_trusted_links = in_place, .progress = restore_progress, .progress_arg = sk,
		.skipped = restore_skipped, .skipped_arg = &nskipped,
	};
	struct kbv_restore_result res;
	int rc = kbv_restore_dir(rd, s, dir, &o, &res);
	*count += res.entries;
	*skipped += res.skipped;
	sk->done = res.bytes;
	if (res.skipped > 10)
		cli_warn("... and %zu more left as they were", res.skipped - 10);
	return rc;
}

/* Show what a kind's restore reported: differences as errors; with --json, for a kind
 * that has a JSON result, that result (when the restore ran) on standard output; else its
 * lines on standard error unless --quiet (or "always"). */
static void show_report(const json_t *report)
{
	size_t i;
	const json_t *line;
	json_array_foreach(json_object_get(report, "errors"), i, line)
		cli_log(CLI_ERROR, "%s", json_string_value(line));
	if (cli.json && json_is_true(json_object_get(report, "has_json"))) {
		const json_t *j = json_object_get(report, "json");
		if (j) {
			json_dumpf(j, stdout, JSON_COMPACT);
			putchar('\n');
		}
		return;
	}
	if (cli.quiet && !json_is_true(json_object_get(report, "always")))
		return;
	json_array_foreach(json_object_get(report, "lines"), i, line)
		fprintf(stderr, "%s\n", json_string_value(line));
}

static void restore_warn(void *arg, const char *msg)
{
	(void)arg;
	cli_warn("%s", msg);
}

/* What restoring into sources needs besides the snapshot. */
struct into_opts {
	int force;
	const char *target_url, *suffix, *owner;
	struct cli_progress *prog;
};

/* One source back where it came from through its kind (restore_needs passed): PostgreSQL
 * into its recorded database on its configured server, Qdrant by upload, Neo4j and
 * command through their load or restore command, paths in place. Sets *mismatch when a
 * verified restore differs. */
static int restore_source(struct kbv_reader *rd, struct kbv_snapshot *s, const struct kbv_snapsource *src,
			  const struct into_opts *o, int *mismatch)
{
	const struct kbv_source_kind *kind = kbv_source_kind_named(src->type);
	cli_log(CLI_INFO, "restoring source '%s' (%s)", src->name, src->type);
	if (!kind || !kind->restore)
		return kbv_error(KBV_EINVAL, "source '%s' (%s) cannot be restored this way; give --target DIR", src->name,
				 src->type);
	struct kbv_progress lp = cli_progress_of(o->prog);
	struct kbv_sink_events ev = { restore_warn, NULL, NULL };
	struct kbv_restore_ctx c = { rd, s, src, cli.cfg ? kbv_config_source(cli.cfg, src->name) : NULL, o->force,
				     o->owner, o->target_url, o->suffix, &lp, &ev };
	json_t *report = json_object();
	int rc = kind->restore(&c, report, mismatch);
	cli_progress_done(o->prog);
	show_report(report);
	json_decref(report);
	return rc;
}

/* restore --source NAME --target-db DB: create DB, load the source's SQL stream, compare
 * row counts with the snapshot. */
static int restore_db(struct kbv_reader *rd, struct kbv_snapshot *s, const char *source, const char *table,
		      const char *db, const char *dsn, int force, const char *owner, struct cli_progress *prog,
		      int *mismatch)
{
	struct kbv_pg_client cl;
	struct kbv_progress lp = cli_progress_of(prog);
	struct kbv_sink_events ev = { restore_warn, NULL, NULL };
	struct kbv_restore_ctx c = { rd, s, NULL, NULL, force, owner, NULL, NULL, &lp, &ev };
	json_t *report = json_object();
	cli_pg_client(source, &cl);
	int rc = table ? kbv_pg_restore_table(&c, source, table, db, dsn, &cl, report, mismatch)
		       : kbv_pg_restore_db(&c, source, db, dsn, &cl, report, mismatch);
	cli_progress_done(prog);
	if (rc == 0)
		show_report(report);
	json_decref(report);
	return rc;
}

/* Has s every stream in streams[] (entries loaded)? */
static int has_streams(const struct kbv_snapshot *s, char **streams, size_t nstreams)
{
	for (size_t k = 0; k < nstreams; k++) {
		int found = 0;
		for (size_t i = 0; i < s->nloaded && !found; i++)
			found = selected(&s->entries[i], &streams[k], 1);
		if (!found)
			return 0;
	}
	return 1;
}

/* The snapshot `spec` names, its entries loaded. For "latest" it is the newest that passes
 * the filter and holds every stream in streams[]; an id names one snapshot whatever it
 * holds (what it lacks is reported later). */
static int find_snapshot(struct kbv_reader *rd, struct kbv_snapshot **list, size_t n, const char *spec,
			 const struct kbv_snapshot_filter *f, char **streams, size_t nstreams, struct kbv_snapshot **out)
{
	int rc = kbv_snapshot_find_in(list, n, spec, f, out);
	if (rc < 0)
		return rc;
	if (strcmp(spec, "latest") || !nstreams)
		return kbv_snapshot_load_entries(rd, *out);
	int newest = 1;
	for (size_t i = n; i-- > 0;) {
		if (!kbv_snapshot_matches(list[i], f))
			continue;
		/* The newest is read alone (it usually holds the streams); past it, as many
		 * entry tables as the storage reads side by side, newest first (one round trip
		 * for them, not one each; at most that many less one read in vain). */
		if (!newest && !list[i]->entries)
			kbv_snapshot_load_entries_before(kbv_reader_repo(rd), list, i, f);
		newest = 0;
		if ((rc = kbv_snapshot_load_entries(rd, list[i])) < 0)
			return rc;
		if (has_streams(list[i], streams, nstreams)) {
			*out = list[i];
			return 0;
		}
	}
	char what[512];
	kbv_snapshot_filter_describe(f, what, sizeof what);
	return kbv_error(KBV_ENOTFOUND, "no stream '%s'%s in any snapshot%s%s", streams[0],
			 nstreams > 1 ? " (with the other streams named)" : "", *what ? " " : "", what);
}

/* What `restore` was asked: its options, checked by parse_args(). */
struct restore_args {
	int to_stdout, force, in_place, all_sources, overwrite;
	int into_source; /* --source NAME... or --all-sources alone: back into the sources */
	const char *spec, *target, *source, *target_db, *dsn, *target_url, *suffix, *host, *owner;
	const char *target_dir;        /* a physical base backup into this directory */
	const char *table;             /* one table of a PostgreSQL source */
	struct kbv_pg_recovery rec;    /* and where its recovery stops */
	char **streams;  /* --stream (and --source NAME with --target DIR: "<source>/...") */
	size_t nstreams, nadhoc_streams;
	const char **sources, **tags;
	size_t nsources, ntags;
};

static void args_release(struct restore_args *a)
{
	free(a->streams);
	free(a->sources);
	free(a->tags);
}

/* Parse and check restore's options into *a (released by args_release() in every case).
 * Returns 0 or the exit code of a usage error (already reported). */
static int parse_args(int argc, char **argv, struct restore_args *a)
{
	static const struct option opts[] = {
		{ "stdout", no_argument, NULL, 'o' },
		{ "target", required_argument, NULL, 't' },
		{ "stream", required_argument, NULL, 's' },
		{ "source", required_argument, NULL, 1201 },
		{ "target-db", required_argument, NULL, 1202 },
		{ "target-dsn", required_argument, NULL, 1203 },
		{ "force", no_argument, NULL, 1204 },
		{ "in-place", no_argument, NULL, 1205 },
		{ "target-url", required_argument, NULL, 1206 },
		{ "collection-suffix", required_argument, NULL, 1207 },
		{ "all-sources", no_argument, NULL, 1208 },
		{ "host", required_argument, NULL, 1209 },
		{ "tag", required_argument, NULL, 1210 },
		{ "overwrite", no_argument, NULL, 1211 },
		{ "owner", required_argument, NULL, 1212 },
		{ "target-dir", required_argument, NULL, 1213 },
		{ "target-time", required_argument, NULL, 1214 },
		{ "target-lsn", required_argument, NULL, 1215 },
		{ "target-xid", required_argument, NULL, 1216 },
		{ "target-immediate", no_argument, NULL, 1217 },
		{ "table", required_argument, NULL, 1218 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	int c, code = 0;
	const char *target_dsn = NULL;
	a->streams = calloc((size_t)argc + 1, sizeof *a->streams);
	a->sources = calloc((size_t)argc + 1, sizeof *a->sources);
	a->tags = calloc((size_t)argc + 1, sizeof *a->tags);
	if (!a->streams || !a->sources || !a->tags)
		return cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "restore"))
			continue;
		switch (c) {
		case 'o': a->to_stdout = 1; break;
		case 't': a->target = optarg; break;
		case 's': a->streams[a->nstreams++] = optarg; break;
		case 1201: a->source = a->sources[a->nsources++] = optarg; break;
		case 1202: a->target_db = optarg; break;
		case 1203: target_dsn = optarg; break;
		case 1204: a->force = 1; break;
		case 1205: a->in_place = 1; break;
		case 1206: a->target_url = optarg; break;
		case 1207: a->suffix = optarg; break;
		case 1208: a->all_sources = 1; break;
		case 1209: a->host = optarg; break;
		case 1210: a->tags[a->ntags++] = optarg; break;
		case 1211: a->overwrite = 1; break;
		case 1212: a->owner = optarg; break;
		case 1213: a->target_dir = optarg; break;
		case 1214: a->rec.time = optarg; break;
		case 1215: a->rec.lsn = optarg; break;
		case 1216: a->rec.xid = optarg; break;
		case 1217: a->rec.immediate = 1; break;
		case 1218: a->table = optarg; break;
		default: return cli_bad_option("restore", argv);
		}
	}
	a->dsn = target_dsn;
	int ntargets = !!a->rec.time + !!a->rec.lsn + !!a->rec.xid + a->rec.immediate;
	if (a->target_dir) {
		int64_t t;
		if (optind + 1 != argc || a->nsources != 1 || a->to_stdout || a->target || a->target_db || a->nstreams ||
		    a->all_sources)
			return cli_usage("restore", "--target-dir DIR restores a base backup: give one SNAPSHOT (latest: the "
						    "newest before the target) and --source NAME alone");
		if (ntargets > 1)
			return cli_usage("restore", "give at most one of --target-time, --target-lsn, --target-xid and "
						    "--target-immediate");
		if (a->rec.time && kbv_pg_parse_time(a->rec.time, &t) < 0)
			return cli_usage("restore", "--target-time '%s' is not a time such as '2026-11-30 14:05:00+00'",
					 a->rec.time);
		a->spec = argv[optind];
		return cli_load_config();
	}
	if (ntargets)
		return cli_usage("restore", "--target-time, --target-lsn, --target-xid and --target-immediate go with "
					    "--target-dir (a base backup)");
	if (a->table) {
		if (optind + 1 != argc || a->nsources != 1 || a->target || a->nstreams || a->all_sources ||
		    !!a->target_db + a->to_stdout != 1)
			return cli_usage("restore", "--table NAME restores one table: give one SNAPSHOT, --source NAME (a "
						    "PostgreSQL source) and --target-db DB or --stdout");
		a->spec = argv[optind];
		a->dsn = target_dsn;
		if (a->to_stdout)
			return cli_load_config();
	}
	a->into_source = (a->source || a->all_sources) && !a->to_stdout && !a->target && !a->target_db;
	if (optind + 1 != argc || a->to_stdout + !!a->target + !!a->target_db + a->into_source != 1 ||
	    (a->in_place && !a->into_source) || (a->all_sources && !a->into_source) ||
	    (a->nsources > 1 && !a->into_source))
		return cli_usage("restore", "give one SNAPSHOT and one of --stdout, --target DIR, --source NAME --target-db DB, "
					    "or --source NAME... / --all-sources alone (back into each source)");
	a->spec = argv[optind];
	/* "latest" means the newest snapshot that holds what was asked for (restic filters
	 * latest by host, tag and path the same way): the sources named, then below the
	 * streams named. */
	a->nadhoc_streams = a->nstreams;
	if (a->target_db) {
		if (!a->source || a->nstreams)
			return cli_usage("restore", "--target-db needs --source NAME (a PostgreSQL source) and no --stream");
		if (!a->dsn && (code = cli_load_config()) == 0) {
			const struct kbv_source_cfg *sc = cli.cfg ? kbv_config_source(cli.cfg, a->source) : NULL;
			if (!sc || sc->type != KBV_SOURCE_POSTGRES || !sc->dsn)
				return cli_usage("restore", "no PostgreSQL source '%s' in the configuration to take the server "
							    "from; give --target-dsn CONNINFO",
						 a->source);
			a->dsn = sc->dsn;
		}
		return code;
	}
	if (target_dsn || (a->force && !a->into_source) || (a->owner && !a->into_source))
		return cli_usage("restore", "--target-dsn goes with --target-db; --force and --owner with --target-db or a "
					    "restore into PostgreSQL sources");
	if (a->into_source)
		return cli_load_config();
	if (a->source)
		a->streams[a->nstreams++] = (char *)a->source; /* its entries are "<source>/..." */
	return 0;
}

/* Back into the sources themselves (--source NAME... or --all-sources). Everything is
 * checked before anything is restored. Returns the exit code. */
static int into_sources(struct kbv_reader *rd, struct kbv_snapshot *s, const struct restore_args *a,
			struct cli_progress *prog)
{
	struct into_opts io = { a->force, a->target_url, a->suffix, a->owner, prog };
	int any_path = 0, any_qdrant = 0, mismatch = 0, code = EXIT_OK, rc = 0;
	size_t n = a->all_sources ? s->nsources : a->nsources;
	const char **names = a->all_sources ? calloc(n + 1, sizeof *names) : a->sources;
	if (!names)
		return cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));
	for (size_t i = 0; a->all_sources && i < n; i++)
		names[i] = s->sources[i].name;
	if (!n) {
		rc = kbv_error(KBV_ENOTFOUND, "the snapshot has no sources (it holds ad-hoc streams: use --target DIR)");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		const struct kbv_snapsource *src = kbv_snapshot_source(s, names[k]);
		if (!src) {
			rc = kbv_error(KBV_ENOTFOUND, "the snapshot has no source '%s'", names[k]);
			goto out;
		}
		const struct kbv_source_kind *kind = kbv_source_kind_named(src->type);
		unsigned flags = kind ? kind->restore_flags : 0;
		any_path |= (flags & KBV_RESTORE_IN_PLACE) != 0;
		any_qdrant |= (flags & KBV_RESTORE_URL) != 0;
		if ((flags & KBV_RESTORE_IN_PLACE) && !a->in_place) {
			code = cli_usage("restore", "source '%s' holds files: give --target DIR, or --in-place to write "
						    "them back where they were", src->name);
			goto out;
		}
		const char *need = kind && kind->restore_needs
					   ? kind->restore_needs(cli.cfg ? kbv_config_source(cli.cfg, src->name) : NULL)
					   : NULL;
		if (need) {
			code = cli_usage("restore", "source '%s' (%s) needs %s in the configuration to be restored "
						    "into; nothing was restored", src->name, src->type, need);
			goto out;
		}
	}
	if (a->in_place && !any_path && !a->all_sources) {
		code = cli_usage("restore", "--in-place is for path sources");
		goto out;
	}
	if ((a->target_url || a->suffix) && !any_qdrant) {
		code = cli_usage("restore", "--target-url and --collection-suffix are for Qdrant sources");
		goto out;
	}
	for (size_t k = 0; k < n && rc == 0; k++) {
		int mm = 0;
		rc = restore_source(rd, s, kbv_snapshot_source(s, names[k]), &io, &mm);
		mismatch |= mm;
	}
	if (rc == 0)
		code = mismatch ? EXIT_CORRUPT : EXIT_OK;
out:
	if (rc < 0) {
		cli_progress_done(prog);
		code = cli_fail(rc);
	}
	if (names != a->sources)
		free(names);
	return code;
}

/* The one selected stream to standard output; *done counts the bytes written. */
static int to_stdout(struct kbv_reader *rd, struct kbv_snapshot *s, const struct restore_args *a, struct sink *sk)
{
	const struct kbv_entry *one = NULL;
	size_t ndata = 0;
	for (size_t i = 0; i < s->nloaded; i++)
		if (selected(&s->entries[i], a->streams, a->nstreams) && kbv_entry_has_data(&s->entries[i])) {
			one = &s->entries[i];
			ndata++;
		}
	if (ndata != 1)
		return kbv_error(KBV_EINVAL, "--stdout needs exactly one stream, and %zu are selected: choose one with "
					     "--stream NAME",
				 ndata);
	if (cli.closed_std & (1 << STDOUT_FILENO))
		return kbv_error(KBV_EIO, "restore '%s' to stdout: standard output is closed (0 bytes written before "
					  "the failure)",
				 one->name);
	sk->fd = STDOUT_FILENO;
	sk->what = "stdout";
	/* stdout and stderr one file (2>&1): what is said on stderr lands at the file's
	 * offset, which only writes in order move along */
	struct stat so, se;
	int shared = fstat(STDOUT_FILENO, &so) == 0 && fstat(STDERR_FILENO, &se) == 0 && so.st_dev == se.st_dev &&
		     so.st_ino == se.st_ino;
	kbv_pipe_widen(STDOUT_FILENO); /* into pg_restore or psql, say: written in order */
	int rc = shared ? kbv_reader_stream(rd, &one->ref, one->size, &one->hash, write_sink, sk)
			: kbv_reader_stream_fd(rd, &one->ref, one->size, &one->hash, STDOUT_FILENO, "stdout",
					       written_sink, sk);
	if (rc < 0)
		kbv_error_prefix(rc, "restore '%s' to stdout (%llu bytes written before the failure)", one->name,
				 (unsigned long long)sk->done);
	return rc;
}

/* restore --source NAME --target-dir DIR: a base backup (the newest that ended before
 * --target-time, for "latest") with recovery set up to fetch WAL through this kbvault, this
 * configuration, repository and password file. Returns the exit code. */
static int base_backup(struct kbv_reader *rd, struct kbv_snapshot **list, size_t n, struct restore_args *a)
{
	struct cli_recovery cr;
	int64_t before = INT64_MAX;
	struct kbv_snapshot *s;
	json_t *report = json_object();
	int rc = 0;
	cli_pg_recovery(&cr, &a->rec);
	if (a->rec.time)
		(void)kbv_pg_parse_time(a->rec.time, &before);
	if (!strcmp(a->spec, "latest"))
		TRY(kbv_pgbase_choose(list, n, a->source, before, &s));
	else
		TRY(kbv_snapshot_find(list, n, a->spec, &s));
	const struct kbv_snapsource *src = kbv_snapshot_source(s, a->source);
	if (!src) {
		rc = kbv_error(KBV_ENOTFOUND, "the snapshot has no source '%s'", a->source);
		goto out;
	}
	TRY(kbv_snapshot_load_entries(rd, s));
	rc = kbv_pgbase_restore(rd, s, src, a->target_dir, &a->rec, report);
out:
	show_report(report);
	json_decref(report);
	return rc < 0 ? cli_fail(rc) : EXIT_OK;
}

/* What a restore to stdout or a directory did, as text or JSON; the exit code. */
static int summary(const struct kbv_snapshot *s, const struct restore_args *a, const struct sink *sk, size_t count,
		   size_t skipped, double secs)
{
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	if (cli.json) {
		/* With --stdout the restored stream owns standard output: the summary goes to
		 * standard error, never after the data. */
		FILE *out = a->to_stdout ? stderr : stdout;
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:f}", "id", id, "entries", (json_int_t)count, "skipped",
				      (json_int_t)skipped, "bytes", (json_int_t)sk->done, "seconds", secs);
		json_dumpf(j, out, JSON_COMPACT);
		fputc('\n', out);
		json_decref(j);
	} else if (!cli.quiet) {
		char b[32];
		cli_bytes(sk->done, b, sizeof b);
		fprintf(stderr, "restored snapshot %.8s: %zu %s, %s, verified, %.1f s\n", id, count,
			count == 1 ? "entry" : "entries", b, secs);
	}
	if (!skipped)
		return EXIT_OK;
	cli_log(CLI_ERROR, "%zu %s already existed in '%s' and %s left as %s: restore with --overwrite to replace them",
		skipped, skipped == 1 ? "entry" : "entries", a->target, skipped == 1 ? "was" : "were",
		skipped == 1 ? "it was" : "they were");
	return EXIT_FAIL;
}

int cmd_restore(int argc, char **argv)
{
	struct restore_args a = { 0 };
	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL, *s;
	struct kbv_reader *rd = NULL;
	struct kbv_snapshot_damage *bad = NULL;
	struct cli_progress prog;
	size_t n = 0, nbad = 0, count = 0, skipped = 0;
	int code, rc, mismatch = 0;
	cli_progress_init(&prog, "restore:");
	if ((code = parse_args(argc, argv, &a)) != 0 || (code = cli_open(KBV_LOCK_SHARED, CLI_UNLOCK_SNAPSHOTS, &r)) != 0)
		goto out;
	struct kbv_snapshot_filter filter = { a.host, a.tags, a.ntags, a.sources, a.nsources };
	double t0 = cli_now();
	if ((rc = cli_list_snapshots(r, &list, &n, &bad, &nbad)) < 0 || (rc = cli_damaged_spec(bad, nbad, a.spec)) < 0 ||
	    (rc = kbv_reader_new(r, cli_threads(), &rd)) < 0)
		goto fail;
	if (!a.target_dir && (rc = find_snapshot(rd, list, n, a.spec, &filter, a.streams, a.nadhoc_streams, &s)) < 0)
		goto fail;
	if (a.target_dir) {
		code = base_backup(rd, list, n, &a);
		goto out;
	}
	if (a.table && a.to_stdout) {
		int mm = 0;
		if ((rc = restore_db(rd, s, a.source, a.table, NULL, NULL, 0, NULL, &prog, &mm)) < 0)
			goto fail;
		code = EXIT_OK;
		goto out;
	}
	if (a.target_db) {
		if ((rc = restore_db(rd, s, a.source, a.table, a.target_db, a.dsn, a.force, a.owner, &prog, &mismatch)) < 0)
			goto fail;
		code = mismatch ? EXIT_CORRUPT : EXIT_OK;
		goto out;
	}
	if (a.into_source) {
		code = into_sources(rd, s, &a, &prog);
		goto out;
	}
	for (size_t k = 0; k < a.nstreams; k++)
		if (!has_streams(s, &a.streams[k], 1)) {
			rc = kbv_error(KBV_ENOTFOUND, "snapshot has no stream '%s'", a.streams[k]);
			goto fail;
		}
	struct sink sk = { .prog = &prog };
	for (size_t i = 0; i < s->nloaded; i++)
		if (selected(&s->entries[i], a.streams, a.nstreams) && kbv_entry_has_data(&s->entries[i]))
			sk.total += s->entries[i].size;
	if (a.to_stdout) {
		count = 1;
		rc = to_stdout(rd, s, &a, &sk);
	} else {
		rc = restore_target(rd, s, a.target, a.streams, a.nstreams, &sk, a.overwrite, 0, &count, &skipped);
	}
	if (rc < 0)
		goto fail;
	cli_progress_done(&prog);
	cli_log(CLI_DEBUG, "%llu bytes of bundles decoded", (unsigned long long)kbv_reader_decoded(rd));
	code = summary(s, &a, &sk, count, skipped, cli_now() - t0);
	goto out;
fail:
	cli_progress_done(&prog);
	code = cli_fail(rc);
out:
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_snapshot_damage_free(bad, nbad);
	kbv_repo_close(r);
	args_release(&a);
	return code;
}
