#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/sink.h"
#include "kbv/snapshot.h"
#include "kbv/proc.h"

/* One run of `kbvault snapshot`: the sink its sources write into, and what is reported. */
struct snap_ctx {
	struct kbv_repo *repo;
	struct kbv_writer *w;
	struct kbv_sink *sink;
	struct kbv_snapsource *src;
	size_t nsrc;
	struct cli_progress prog;
	/* per recorded source (parallel to src): what its dump added, and how long it took */
	struct kbv_writer_stats *src_st;
	double *src_secs;
};

static void sink_warn(void *arg, const char *msg)
{
	(void)arg;
	cli_warn("%s", msg);
}

static void sink_info(void *arg, const char *msg)
{
	(void)arg;
	cli_log(CLI_INFO, "%s", msg);
}

static void print_postgres(const char *name, const json_t *meta)
{
	size_t i;
	const json_t *t;
	uint64_t rows = 0, keyed = 0;
	const char *mode = json_string_value(json_object_get(meta, "mode"));
	if (mode && !strcmp(mode, "physical")) {
		printf("  %s: PostgreSQL base backup (server %lld, system %s, timeline %lld), WAL %s to %s\n", name,
		       (long long)json_integer_value(json_object_get(meta, "server_version_num")),
		       json_string_value(json_object_get(meta, "system_identifier")),
		       (long long)json_integer_value(json_object_get(meta, "timeline")),
		       json_string_value(json_object_get(meta, "start_lsn")), json_string_value(json_object_get(meta, "stop_lsn")));
		return;
	}
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

static void progress(void *arg, const struct kbv_writer_stats *st)
{
	struct snap_ctx *c = arg;
	cli_progress_bytes(&c->prog, st->raw_bytes, 0, st->new_raw_bytes, 0);
}

/* A dump that died before writing anything still leaves an empty, readable pipe: an empty
 * --stdin stream is refused unless the user says it may be empty. */
static int add_stdin(struct snap_ctx *c, const char *name, int allow_empty)
{
	struct kbv_stream_result res;
	if (isatty(STDIN_FILENO))
		return kbv_error(KBV_EINVAL, "--stdin reads a pipe or a file, and standard input is a terminal");
	struct kbv_entry *x = kbv_sink_entry(c->sink, KBV_ENTRY_STDIN, name);
	if (!x)
		return KBV_EINVAL; /* the message is set */
	x->mode = 0600;
	int rc = kbv_writer_fd(c->w, STDIN_FILENO, "stdin", &res);
	if (rc < 0)
		return kbv_error_prefix(rc, "stream '%s' (stdin)", name);
	if (res.size == 0 && !allow_empty)
		return kbv_error(KBV_ESOURCE,
				 "stream '%s': standard input was empty; no snapshot recorded (did the dump fail? run a "
				 "pipeline with 'set -o pipefail', or pass --allow-empty if empty is right)",
				 name);
	kbv_sink_set_result(x, &res);
	return 0;
}

static int add_command(struct snap_ctx *c, const char *name, char **argv)
{
	struct kbv_stream_result res;
	char what[512];
	pid_t pid;
	int fd;
	struct kbv_entry *x = kbv_sink_entry(c->sink, KBV_ENTRY_COMMAND, name);
	if (!x)
		return KBV_EINVAL; /* the message is set */
	x->mode = 0600;
	snprintf(what, sizeof what, "command '%s' (stream '%s')", argv[0], name);
	int rc = kbv_cmd_start(argv, &pid, &fd);
	if (rc < 0)
		return kbv_error_prefix(rc, "stream '%s'", name);
	rc = kbv_writer_fd(c->w, fd, what, &res);
	close(fd);
	if (rc < 0) {
		kbv_cmd_finish(pid, what, 1);
		return rc;
	}
	if ((rc = kbv_cmd_finish(pid, what, 0)) < 0)
		return kbv_error_prefix(rc, "no snapshot recorded");
	kbv_sink_set_result(x, &res);
	return 0;
}

static int source_wanted(const struct kbv_source_cfg *sc, const char **only, size_t nonly)
{
	for (size_t k = 0; k < nonly; k++)
		if (!strcmp(only[k], sc->name))
			return 1;
	return nonly == 0;
}

/* kbvault_snapshot_* for one source (name) or the whole snapshot (NULL). */
static void snapshot_metrics(const char *name, const struct kbv_writer_stats *st)
{
	cli_run_metric("snapshot_raw_bytes", name, (double)st->raw_bytes);
	cli_run_metric("snapshot_new_bytes", name, (double)st->new_raw_bytes);
	cli_run_metric("snapshot_stored_bytes", name, (double)st->new_stored_bytes);
	cli_run_metric("snapshot_dedup_ratio", name,
		       st->new_stored_bytes ? (double)st->raw_bytes / (double)st->new_stored_bytes : INFINITY);
	cli_run_metric("snapshot_chunks", name, (double)st->chunks);
	cli_run_metric("snapshot_new_chunks", name, (double)st->new_chunks);
}

/* One application snapshot: every selected source of the configuration, or nothing. */
static int add_sources(struct snap_ctx *c, const char **only, size_t nonly)
{
	const struct kbv_config *cfg = cli.cfg;
	c->src = calloc(cfg->nsources + 1, sizeof *c->src);
	c->src_st = calloc(cfg->nsources + 1, sizeof *c->src_st);
	c->src_secs = calloc(cfg->nsources + 1, sizeof *c->src_secs);
	if (!c->src || !c->src_st || !c->src_secs)
		return kbv_error(KBV_ENOMEM, "out of memory");
	/* Every selected source's attempt fails unless the snapshot is recorded (all or
	 * nothing); cmd_snapshot() marks them done after the commit. */
	for (size_t i = 0; i < cfg->nsources; i++)
		if (source_wanted(&cfg->sources[i], only, nonly))
			cli_run_attempt(cfg->sources[i].name, 0, 0);
	for (size_t i = 0; i < cfg->nsources; i++) {
		const struct kbv_source_cfg *sc = &cfg->sources[i];
		if (!source_wanted(sc, only, nonly))
			continue;
		json_t *meta = NULL;
		struct kbv_writer_stats before = *kbv_writer_stats(c->w);
		double t0 = cli_now();
		int rc;
		cli_log(CLI_INFO, "source '%s' (%s): dumping", sc->name, kbv_source_type_name(sc->type));
		rc = kbv_source_snapshot(c->sink, sc, &meta);
		double secs = cli_now() - t0;
		cli_run_attempt(sc->name, 0, secs);
		if (rc < 0) {
			json_decref(meta);
			return kbv_error_prefix(rc, "source '%s' failed, no snapshot recorded", sc->name);
		}
		const struct kbv_writer_stats *after = kbv_writer_stats(c->w);
		struct kbv_writer_stats *d = &c->src_st[c->nsrc];
		d->raw_bytes = after->raw_bytes - before.raw_bytes;
		d->new_raw_bytes = after->new_raw_bytes - before.new_raw_bytes;
		d->new_stored_bytes = after->new_stored_bytes - before.new_stored_bytes;
		d->chunks = after->chunks - before.chunks;
		d->new_chunks = after->new_chunks - before.new_chunks;
		c->src_secs[c->nsrc] = secs;
		cli_log(CLI_INFO, "source '%s': %llu bytes read, %llu new, in %.1f s", sc->name,
			(unsigned long long)d->raw_bytes, (unsigned long long)d->new_raw_bytes, secs);
		struct kbv_snapsource *x = &c->src[c->nsrc++];
		x->name = strdup(sc->name);
		x->type = strdup(kbv_source_type_name(sc->type));
		x->meta = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(meta);
		if (!x->name || !x->type || !x->meta)
			return kbv_error(KBV_ENOMEM, "out of memory");
	}
	return 0;
}

static void free_sources(struct snap_ctx *c)
{
	for (size_t i = 0; i < c->nsrc; i++) {
		free(c->src[i].name);
		free(c->src[i].type);
		free(c->src[i].meta);
	}
	free(c->src);
	free(c->src_st);
	free(c->src_secs);
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stdin", required_argument, NULL, 's' },
		{ "command", required_argument, NULL, 1101 },
		{ "tag", required_argument, NULL, 't' },
		{ "host", required_argument, NULL, 'H' },
		{ "source", required_argument, NULL, 1102 },
		{ "allow-empty", no_argument, NULL, 1103 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	const char *stdin_name = NULL, *host = NULL;
	const char **cmd_names = calloc((size_t)argc, sizeof *cmd_names);
	char **tags = calloc((size_t)argc, sizeof *tags);
	const char **only = calloc((size_t)argc, sizeof *only);
	size_t ncmd = 0, ntags = 0, nonly = 0;
	struct snap_ctx c = { 0 };
	struct kbv_snapshot s = { 0 };
	char ***groups = NULL;
	size_t ngroups = 0;
	int rc = 0, code = EXIT_OK, allow_empty = 0;
	if (!cmd_names || !tags || !only)
		return cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));

	int dd = argc;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dd = i;
			break;
		}
	int o;
	while ((o = getopt_long(dd, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(o, optarg, "snapshot"))
			continue;
		switch (o) {
		case 's':
			if (stdin_name) {
				code = cli_usage("snapshot", "--stdin may be given once");
				goto done;
			}
			stdin_name = optarg;
			break;
		case 1101: cmd_names[ncmd++] = optarg; break;
		case 't': tags[ntags++] = optarg; break;
		case 'H': host = optarg; break;
		case 1102: only[nonly++] = optarg; break;
		case 1103: allow_empty = 1; break;
		default: code = cli_bad_option("snapshot", argv); goto done;
		}
	}
	cli_run_begin("snapshot");
	/* Command groups after "--", separated by "--"; each is ended in place by NULLing the
	 * separator after it (argv[argc] ends the last). */
	groups = calloc((size_t)argc, sizeof *groups);
	if (!groups) {
		code = cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));
		goto done;
	}
	for (int i = dd; i < argc;) {
		int start = i + 1, end = start;
		while (end < argc && strcmp(argv[end], "--"))
			end++;
		if (end == start) {
			code = cli_usage("snapshot", "empty command after '--'");
			goto done;
		}
		groups[ngroups++] = &argv[start];
		if (end < argc)
			argv[end] = NULL;
		i = end;
	}
	if (ngroups != ncmd) {
		code = cli_usage("snapshot", "%zu --command name(s) but %zu command(s) after '--'", ncmd, ngroups);
		goto done;
	}
	int npaths = dd - optind;
	int adhoc = stdin_name || ncmd || npaths > 0;
	if (adhoc && nonly) {
		code = cli_usage("snapshot", "--source takes configured sources; it does not mix with --stdin, --command or paths");
		goto done;
	}
	if (!adhoc) {
		if ((code = cli_load_config()) != 0)
			goto done;
		if (!cli.cfg || !cli.cfg->nsources) {
			code = cli_usage("snapshot", "nothing to store: configure sources ([source NAME] in the config file), "
						     "or give --stdin NAME, --command NAME -- CMD, or paths");
			goto done;
		}
		for (size_t k = 0; k < nonly; k++)
			if (!kbv_config_source(cli.cfg, only[k])) {
				code = cli_usage("snapshot", "no source '%s' in %s", only[k], cli.cfg->file);
				goto done;
			}
	}

	if ((code = cli_open(KBV_LOCK_SHARED, 1, &c.repo)) != 0)
		goto done;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	s.time = ts.tv_sec;
	s.nsec = (uint32_t)ts.tv_nsec;
	s.tzoff = (int32_t)tm.tm_gmtoff;
	char hostbuf[256] = "";
	if (!host) {
		gethostname(hostbuf, sizeof hostbuf - 1);
		host = hostbuf;
	}
	s.host = (char *)host;
	s.tags = tags;
	s.ntags = ntags;
	double t0 = cli_now();
	cli_progress_init(&c.prog, "snapshot:");

	rc = kbv_writer_new(c.repo, cli_threads(), &c.w);
	if (rc == 0)
		kbv_writer_set_progress(c.w, progress, &c);
	struct kbv_sink_events ev = { sink_warn, sink_info, NULL };
	if (rc == 0)
		rc = kbv_sink_new(c.repo, c.w, ts.tv_sec, &ev, &c.sink);
	if (rc == 0 && !adhoc)
		rc = add_sources(&c, only, nonly);
	if (rc == 0 && stdin_name)
		rc = add_stdin(&c, stdin_name, allow_empty);
	for (size_t i = 0; rc == 0 && i < ncmd; i++)
		rc = add_command(&c, cmd_names[i], groups[i]);
	for (int i = optind; rc == 0 && i < dd; i++) {
		char name[PATH_MAX];
		if ((rc = kbv_path_to_name(argv[i], name, sizeof name)) == 0)
			rc = kbv_sink_tree(c.sink, argv[i], name, NULL);
	}
	size_t nent = 0;
	const struct kbv_entry *ent = c.sink ? kbv_sink_entries(c.sink, &nent) : NULL;
	if (rc == 0 && nent == 0)
		rc = kbv_error(KBV_ESOURCE, "nothing was stored (the paths given hold no regular file, directory or "
					    "symlink); no snapshot recorded");
	if (rc == 0)
		rc = kbv_sink_check(c.sink);
	s.sources = c.src;
	s.nsources = c.nsrc;
	if (rc == 0)
		rc = kbv_snapshot_commit(c.repo, c.w, &s, ent, nent);
	cli_progress_done(&c.prog);
	if (rc < 0) {
		code = cli_fail(rc);
		goto done;
	}

	const struct kbv_writer_stats *st = kbv_writer_stats(c.w);
	double secs = cli_now() - t0;
	/* What the streams and files held; the writer's raw_bytes also counts the snapshot's
	 * own entry table. */
	uint64_t read = 0;
	for (size_t i = 0; i < nent; i++)
		read += ent[i].size;
	char id[2 * KBV_ID_BYTES + 1];
	kbv_hex(s.id, KBV_ID_BYTES, id);
	for (size_t i = 0; i < c.nsrc; i++) {
		cli_run_attempt(c.src[i].name, 1, c.src_secs[i]);
		snapshot_metrics(c.src[i].name, &c.src_st[i]);
	}
	snapshot_metrics(NULL, st);
	cli_log(CLI_INFO, "snapshot %.8s saved: %zu %s, %llu bytes read, %llu new, %llu stored", id, nent,
		nent == 1 ? "entry" : "entries", (unsigned long long)read, (unsigned long long)st->new_raw_bytes,
		(unsigned long long)st->new_stored_bytes);
	cli_log(CLI_INFO, "snapshot %.8s: %llu of the bytes read cut where their stream's last snapshot from this host cut "
			  "(cut hints)",
		id, (unsigned long long)st->hinted_bytes);
	if (cli.json) {
		json_t *j = json_pack("{s:s, s:s#, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "id", id, "short_id", id, 8,
				      "streams", (json_int_t)nent, "raw_bytes", (json_int_t)st->raw_bytes, "new_bytes",
				      (json_int_t)st->new_raw_bytes, "stored_bytes", (json_int_t)st->new_stored_bytes,
				      "chunks", (json_int_t)st->chunks, "new_chunks", (json_int_t)st->new_chunks,
				      "seconds", secs);
		json_t *srcs = json_array();
		for (size_t i = 0; i < c.nsrc; i++)
			json_array_append_new(srcs, json_pack("{s:s, s:s, s:o}", "name", c.src[i].name, "type", c.src[i].type,
							      "meta", json_loads(c.src[i].meta, 0, NULL)));
		json_object_set_new(j, "sources", srcs);
		json_object_set_new(j, "read_bytes", json_integer((json_int_t)read));
		json_object_set_new(j, "hinted_bytes", json_integer((json_int_t)st->hinted_bytes));
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else if (!cli.quiet) {
		char raw[32], fresh[32], stored[32];
		cli_bytes(read, raw, sizeof raw);
		cli_bytes(st->new_raw_bytes, fresh, sizeof fresh);
		cli_bytes(st->new_stored_bytes, stored, sizeof stored);
		printf("snapshot %.8s saved: %zu %s, %s read, %s new (%s stored), %.1f s, %.1f MiB/s\n", id, nent,
		       nent == 1 ? "entry" : "entries", raw, fresh, stored, secs,
		       secs > 0 ? (double)read / secs / (1 << 20) : 0.0);
		for (size_t i = 0; i < c.nsrc; i++) {
			json_t *meta = json_loads(c.src[i].meta, 0, NULL);
			if (!strcmp(c.src[i].type, "postgres"))
				print_postgres(c.src[i].name, meta);
			json_decref(meta);
		}
	}
	if (kbv_sink_degraded(c.sink)) {
		cli_warn("snapshot %.8s is recorded, but an after hook failed (see above): check that the source is running", id);
		code = EXIT_FAIL;
	}
	/* 3-2-1: the second copy, filled after each snapshot ([repository] copy-to) */
	int ccode = cli_copy_to(c.repo);
	if (ccode != EXIT_OK && code == EXIT_OK)
		code = ccode;
done:
	if (c.repo)
		cli_run_repo(c.repo);
	code = cli_run_end(code);
	free(groups);
	kbv_sink_free(c.sink);
	kbv_writer_free(c.w);
	kbv_repo_close(c.repo);
	free_sources(&c);
	free(cmd_names);
	free(tags);
	free(only);
	return code;
}
