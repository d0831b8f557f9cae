/* kbvault status: is the backup alive? Nagios/Icinga plugin conventions: the first line
 * of stdout is "KBVAULT <STATE> - summary | perfdata", exit 0 OK, 1 WARNING, 2 CRITICAL,
 * 3 UNKNOWN. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "kbv/check.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/gc.h"
#include "kbv/reader.h"
#include "kbv/record.h"
#include "kbv/snapshot.h"
#include "kbv/wal.h"

enum { ST_OK, ST_WARNING, ST_CRITICAL, ST_UNKNOWN };
static const char *const state_name[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

/* "90s", "30m", "26h", "2d", "1w" -> seconds; -1 if malformed. */
static long long parse_age(const char *s)
{
	long long secs;
	return kbv_age_parse(s, &secs) < 0 ? -1 : secs;
}

static void age_text(long long secs, char *out, size_t cap)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, cap, "%llds", secs);
	else if (secs < 7200)
		snprintf(out, cap, "%lldm", secs / 60);
	else if (secs < 172800)
		snprintf(out, cap, "%lldh", secs / 3600);
	else
		snprintf(out, cap, "%lldd", secs / 86400);
}

/* RFC 3339 UTC "2026-11-25T16:00:00.123Z" -> epoch seconds. */
static long long parse_rfc3339(const char *s)
{
	struct tm tm = { 0 };
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (long long)timegm(&tm);
}

struct src_state {
	const char *name;
	long long time; /* 0: never */
	uint64_t size;
	char id[2 * KBV_ID_BYTES + 1];
	json_t *drill; /* this source's verdict in its newest drill record (borrowed), or NULL */
	json_t *drill_rec; /* that record (borrowed) */
};

/* Each source's newest drill verdict: a drill of one source says nothing of another. */
static void find_drills(struct src_state *src, size_t nsrc, json_t *drills)
{
	for (size_t i = 0; i < nsrc; i++)
		for (size_t d = json_array_size(drills); d-- > 0 && !src[i].drill;) {
			json_t *rec = json_array_get(drills, d), *v;
			size_t k;
			json_array_foreach(json_object_get(rec, "sources"), k, v)
				if (!strcmp(json_string_value(json_object_get(v, "name")) ?: "", src[i].name)) {
					src[i].drill = v;
					src[i].drill_rec = rec;
					break;
				}
		}
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = { { "max-age", required_argument, NULL, 1601 }, CLI_GLOBAL_OPTIONS, { 0 } };
	const char *max_age_s = NULL;
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "status"))
			continue;
		if (c == 1601)
			max_age_s = optarg;
		else {
			printf("KBVAULT UNKNOWN - unknown option (kbvault help status)\n");
			return ST_UNKNOWN;
		}
	}
	if (optind < argc) {
		printf("KBVAULT UNKNOWN - unexpected argument '%s'\n", argv[optind]);
		return ST_UNKNOWN;
	}
	if (cli_load_config() != 0) {
		printf("KBVAULT UNKNOWN - the configuration file cannot be read\n");
		return ST_UNKNOWN;
	}
	if (!max_age_s)
		max_age_s = cli.cfg && cli.cfg->max_age ? cli.cfg->max_age : "26h";
	long long max_age = parse_age(max_age_s);
	if (max_age < 0) {
		printf("KBVAULT UNKNOWN - max-age '%s' is not a duration (90s, 30m, 26h, 2d)\n", max_age_s);
		return ST_UNKNOWN;
	}

	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL;
	struct kbv_reader *rd = NULL;
	struct kbv_repo_stats st;
	json_t *recs[2] = { NULL, NULL }; /* the drill records, gc's: one listing for both */
	json_t *drills, *gcs;
	struct src_state *src = NULL;
	struct kbv_snapshot_damage *bad = NULL;
	struct kbv_wal_summary *wal = NULL;
	size_t n = 0, nsrc = 0, nbad = 0, nwal = 0;
	int state = ST_OK, rc;
	char problem[512] = "";
	if (cli_open(KBV_LOCK_SHARED, CLI_UNLOCK_SNAPSHOTS | CLI_LIST(KBV_OBJ_RECORD) | CLI_LIST(KBV_OBJ_WAL) | CLI_LIST(KBV_OBJ_LOCK), &r) != 0) {
		printf("KBVAULT UNKNOWN - the repository cannot be opened (%s)\n", cli_repo_path());
		return ST_UNKNOWN;
	}
	if ((rc = kbv_snapshot_list_damaged(r, &list, &n, &bad, &nbad)) < 0 || (rc = kbv_reader_new(r, 1, &rd)) < 0 ||
	    (rc = kbv_record_lists(r, (const char *const[]){ "drill", "gc" }, 2, recs)) < 0 ||
	    (rc = kbv_repo_stats_of(r, list, n, &st)) < 0 || (rc = kbv_wal_summarize(r, list, n, &wal, &nwal)) < 0) {
		printf("KBVAULT UNKNOWN - %s\n", kbv_errmsg());
		state = ST_UNKNOWN;
		goto out;
	}
	/* The sources to watch: the configured ones, else whatever the snapshots hold. */
	size_t cap = (cli.cfg ? cli.cfg->nsources : 0) + n + 1;
	src = calloc(cap, sizeof *src);
	if (!src) {
		printf("KBVAULT UNKNOWN - out of memory\n");
		state = ST_UNKNOWN;
		goto out;
	}
	for (size_t i = 0; cli.cfg && i < cli.cfg->nsources; i++)
		src[nsrc++].name = cli.cfg->sources[i].name;
	/* Newest first: each source's newest snapshot is the only one whose entries are read. */
	for (size_t i = n; i-- > 0;) {
		size_t k = list[i]->nsources ? list[i]->nsources : 1;
		for (size_t j = 0; j < k; j++) {
			const char *name = list[i]->nsources ? list[i]->sources[j].name : "(ad-hoc streams)";
			size_t f = 0;
			while (f < nsrc && strcmp(src[f].name, name))
				f++;
			if (f == nsrc) {
				if (cli.cfg && cli.cfg->nsources)
					continue; /* configured set: others are history */
				src[nsrc++].name = name;
			}
			if (src[f].time)
				continue; /* a newer snapshot of it was seen already */
			src[f].time = list[i]->time;
			kbv_hex(list[i]->id, KBV_ID_BYTES, src[f].id);
			src[f].size = 0;
			if (kbv_snapshot_load_entries(rd, list[i]) == 0)
				for (size_t e = 0; e < list[i]->nloaded; e++) {
					size_t len = strlen(name);
					if (!list[i]->nsources || (!strncmp(list[i]->entries[e].name, name, len) &&
								  list[i]->entries[e].name[len] == '/'))
						src[f].size += list[i]->entries[e].size;
				}
		}
	}
	long long now = (long long)time(NULL), oldest = 0;
	for (size_t i = 0; i < nsrc; i++) {
		long long age = src[i].time ? now - src[i].time : -1;
		int s = age < 0 ? ST_CRITICAL : age > 2 * max_age ? ST_CRITICAL : age > max_age ? ST_WARNING : ST_OK;
		if (age > oldest)
			oldest = age;
		if (s > state) {
			state = s;
			char a[32];
			age_text(age, a, sizeof a);
			if (age < 0)
				snprintf(problem, sizeof problem, "no snapshot of %s", src[i].name);
			else
				snprintf(problem, sizeof problem, "last snapshot of %s is %s old (max %s)", src[i].name, a,
					 max_age_s);
		}
	}
	if (!nsrc) {
		state = ST_CRITICAL;
		snprintf(problem, sizeof problem, "no snapshots at all");
	}
	drills = recs[0];
	gcs = recs[1];
	json_t *last_drill = json_array_size(drills) ? json_array_get(drills, json_array_size(drills) - 1) : NULL;
	json_t *last_gc = json_array_size(gcs) ? json_array_get(gcs, json_array_size(gcs) - 1) : NULL;
	/* Drills per source: a failed drill of one source is not hidden by a later pass of
	 * another, and a source never drilled is named. */
	find_drills(src, nsrc, drills);
	size_t ndrilled = 0, nfailed = 0;
	long long oldest_drill = -1;
	const char *failed = NULL, *failed_time = NULL;
	for (size_t i = 0; i < nsrc; i++) {
		if (!src[i].drill)
			continue;
		ndrilled++;
		long long t = parse_rfc3339(json_string_value(json_object_get(src[i].drill_rec, "time")));
		if (oldest_drill < 0 || t < oldest_drill)
			oldest_drill = t;
		if (!json_is_true(json_object_get(src[i].drill, "ok")) && !nfailed++) {
			failed = src[i].name;
			failed_time = json_string_value(json_object_get(src[i].drill_rec, "time"));
		}
	}
	if (nbad && state < ST_WARNING) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(bad[0].id, KBV_ID_BYTES, hex);
		state = ST_WARNING;
		snprintf(problem, sizeof problem, "%zu damaged snapshot manifest%s (%.8s%s): kbvault snapshots, "
						  "docs/recovery.md",
			 nbad, nbad == 1 ? "" : "s", hex, nbad > 1 ? ", ..." : "");
	}
	/* The WAL archive: a gap is CRITICAL (recovery cannot pass it); an archive that has not
	 * grown for longer than max-age is a WARNING (archive_command failing, or an idle server
	 * without archive_timeout). */
	for (size_t i = 0; i < nwal; i++) {
		char a[32];
		long long lag = wal[i].last_time ? now - wal[i].last_time : -1;
		age_text(lag, a, sizeof a);
		if (wal[i].gaps && state < ST_CRITICAL) {
			state = ST_CRITICAL;
			snprintf(problem, sizeof problem,
				 "WAL archive of %s has a GAP: segment %s%s missing: recovery cannot pass it", wal[i].source,
				 wal[i].first_gap, wal[i].gaps > 1 ? " and others" : "");
		} else if (lag > max_age && state < ST_WARNING) {
			state = ST_WARNING;
			snprintf(problem, sizeof problem, "last WAL segment of %s was archived %s ago (max %s)",
				 wal[i].source, a, max_age_s);
		}
	}
	if (nfailed && state < ST_WARNING) {
		state = ST_WARNING;
		snprintf(problem, sizeof problem, "the last drill of %s FAILED (%s)%s", failed, failed_time ?: "?",
			 nfailed > 1 ? " and of other sources" : "");
	}

	char oa[32], drill[160] = "never drilled", gc[96] = "never collected", repo[32];
	age_text(oldest, oa, sizeof oa);
	cli_bytes(st.pack_bytes, repo, sizeof repo);
	if (ndrilled) {
		char a[32], never[64] = "";
		age_text(now - oldest_drill, a, sizeof a);
		if (ndrilled < nsrc)
			snprintf(never, sizeof never, ", %zu source%s never drilled", nsrc - ndrilled, nsrc - ndrilled == 1 ? "" : "s");
		if (nfailed)
			snprintf(drill, sizeof drill, "last drill FAIL for %zu of %zu sources%s", nfailed, nsrc, never);
		else
			snprintf(drill, sizeof drill, "last drill PASS %s ago%s", a, never);
	}
	if (last_gc) {
		char a[32];
		age_text(now - parse_rfc3339(json_string_value(json_object_get(last_gc, "time"))), a, sizeof a);
		snprintf(gc, sizeof gc, "last gc %s ago", a);
	}
	/* A shared repository: each host's newest snapshot, and what gc has condemned. */
	json_t *hosts = json_array();
	for (size_t i = n; i-- > 0;) {
		int seen = 0;
		for (size_t k = i + 1; k < n && !seen; k++)
			seen = !strcmp(list[k]->host, list[i]->host);
		if (seen)
			continue;
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(list[i]->id, KBV_ID_BYTES, hex);
		json_array_append_new(hosts, json_pack("{s:s, s:s, s:I, s:I}", "host", list[i]->host, "last_snapshot", hex,
						       "time", (json_int_t)list[i]->time, "age_seconds",
						       (json_int_t)(now - list[i]->time)));
	}
	struct kbv_plan_summary ps;
	struct kbv_gclock_info gl;
	struct kbv_retention_report ret;
	if ((rc = kbv_gc_plan_summary(r, &ps)) < 0 || (rc = kbv_gclock_info(r, &gl)) < 0 ||
	    (rc = kbv_repo_retention(r, 0, &ret)) < 0) {
		printf("KBVAULT UNKNOWN - %s\n", kbv_errmsg());
		json_decref(hosts);
		state = ST_UNKNOWN;
		goto out;
	}
	/* Object Lock: retention that lapses within a quarter of its period is a warning (gc
	 * extends it once half is gone: it has not run since, or not from here). */
	char lapse[40] = "";
	if (ret.oldest) {
		cli_time(ret.oldest, 0, lapse, sizeof lapse);
		if (ret.oldest < ret.now + ret.seconds / 4 && state < ST_WARNING) {
			char a[32];
			age_text(ret.oldest > ret.now ? ret.oldest - ret.now : ret.now - ret.oldest, a, sizeof a);
			state = ST_WARNING;
			snprintf(problem, sizeof problem,
				 "Object Lock retention of the oldest objects %s %s%s (as this host knows): run kbvault gc, "
				 "which extends it",
				 ret.oldest > ret.now ? "lapses in" : "LAPSED", a, ret.oldest > ret.now ? "" : " ago");
		}
	}
	if (cli.json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < nsrc; i++) {
			json_t *o = json_pack("{s:s, s:I}", "name", src[i].name, "size", (json_int_t)src[i].size);
			if (src[i].time) {
				json_object_set_new(o, "last_snapshot", json_string(src[i].id));
				json_object_set_new(o, "time", json_integer(src[i].time));
				json_object_set_new(o, "age_seconds", json_integer(now - src[i].time));
			}
			json_object_set_new(o, "last_drill",
					    src[i].drill ? json_pack("{s:O, s:O, s:O, s:O?}", "time",
								     json_object_get(src[i].drill_rec, "time"), "snapshot",
								     json_object_get(src[i].drill_rec, "snapshot"), "ok",
								     json_object_get(src[i].drill, "ok"), "error",
								     json_object_get(src[i].drill, "error"))
							 : json_null());
			json_array_append_new(arr, o);
		}
		json_t *j = json_pack("{s:s, s:i, s:s, s:I, s:o, s:I, s:f, s:O?, s:O?}", "status", state_name[state], "code",
				      state, "problem", problem, "max_age_seconds", (json_int_t)max_age, "sources", arr,
				      "repository_bytes", (json_int_t)st.pack_bytes, "dedup_ratio",
				      st.unique_raw_bytes ? (double)st.raw_bytes / (double)st.unique_raw_bytes : 0.0,
				      "last_drill", last_drill, "last_gc", last_gc);
		json_object_set_new(j, "damaged_snapshots", json_integer((json_int_t)nbad));
		json_object_set_new(j, "hosts", hosts);
		json_object_set_new(j, "gc_lock",
				    gl.held ? json_pack("{s:s, s:I, s:I, s:I, s:b}", "host", gl.host, "pid", (json_int_t)gl.pid,
							"age_seconds", (json_int_t)gl.age, "stale_in_seconds",
							(json_int_t)gl.stale_in, "stale", gl.stale_in <= 0 || gl.dead)
					    : json_null());
		json_object_set_new(j, "deletion_plans",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "plans", (json_int_t)ps.plans, "packs",
					      (json_int_t)ps.packs, "bytes", (json_int_t)ps.bytes, "ripe_packs",
					      (json_int_t)ps.ripe_packs, "next_ripe_in_seconds", (json_int_t)ps.next_ripe_in,
					      "damaged", (json_int_t)ps.damaged));
		json_object_set_new(j, "object_lock",
				    ret.days ? json_pack("{s:s, s:I, s:I, s:s, s:I}", "mode", "COMPLIANCE", "days",
							 (json_int_t)ret.days, "objects", (json_int_t)ret.objects,
							 "oldest_retention", lapse, "oldest_retention_timestamp",
							 (json_int_t)ret.oldest)
					     : json_null());
		json_t *wj = json_array();
		for (size_t i = 0; i < nwal; i++)
			json_array_append_new(
				wj, json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:s?}", "source", wal[i].source,
					      "files", (json_int_t)wal[i].files, "segments", (json_int_t)wal[i].segments,
					      "first_segment", wal[i].first, "last_segment", wal[i].last,
					      "last_archived_timestamp", (json_int_t)wal[i].last_time, "lag_seconds",
					      (json_int_t)(wal[i].last_time ? now - wal[i].last_time : -1), "gaps",
					      (json_int_t)wal[i].gaps, "first_gap", *wal[i].first_gap ? wal[i].first_gap : NULL));
		json_object_set_new(j, "wal", wj);
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
		goto out;
	}
	printf("KBVAULT %s - %s%s%zu source%s, oldest last snapshot %s ago, %s, %s, repository %s | oldest_age=%llds;%lld;%lld "
	       "repository_bytes=%lluB\n",
	       state_name[state], problem, *problem ? "; " : "", nsrc, nsrc == 1 ? "" : "s", oa, drill, gc, repo, oldest,
	       max_age, 2 * max_age, (unsigned long long)st.pack_bytes);
	for (size_t i = 0; i < nsrc; i++) {
		char a[32], sz[32];
		if (!src[i].time) {
			printf("%s: no snapshot\n", src[i].name);
			continue;
		}
		char dr[96] = "never drilled";
		age_text(now - src[i].time, a, sizeof a);
		cli_bytes(src[i].size, sz, sizeof sz);
		if (src[i].drill) {
			char da[32];
			age_text(now - parse_rfc3339(json_string_value(json_object_get(src[i].drill_rec, "time"))), da, sizeof da);
			snprintf(dr, sizeof dr, "drill %s %s ago (snapshot %.8s)",
				 json_is_true(json_object_get(src[i].drill, "ok")) ? "PASS" : "FAIL", da,
				 json_string_value(json_object_get(src[i].drill_rec, "snapshot")) ?: "?");
		}
		printf("%s: snapshot %.8s, %s ago, %s, %s\n", src[i].name, src[i].id, a, sz, dr);
	}
	for (size_t i = 0; i < nwal; i++) {
		char a[32], gap[96] = "no gaps";
		age_text(wal[i].last_time ? now - wal[i].last_time : 0, a, sizeof a);
		if (wal[i].gaps)
			snprintf(gap, sizeof gap, "GAP: %s missing (%llu segment%s)", wal[i].first_gap,
				 (unsigned long long)wal[i].gaps, wal[i].gaps == 1 ? "" : "s in all");
		printf("%s: WAL archive %llu segments (%s .. %s), last archived %s ago, %s\n", wal[i].source,
		       (unsigned long long)wal[i].segments, wal[i].first, wal[i].last, a, gap);
	}
	if (json_array_size(hosts) > 1) {
		printf("hosts:");
		for (size_t i = 0; i < json_array_size(hosts); i++) {
			char a[32];
			json_t *h = json_array_get(hosts, i);
			age_text(json_integer_value(json_object_get(h, "age_seconds")), a, sizeof a);
			printf("%s %s last snapshot %s ago", i ? "," : "", json_string_value(json_object_get(h, "host")), a);
		}
		printf("\n");
	}
	json_decref(hosts);
	if (ps.packs) {
		char b[32], in[32] = "";
		cli_bytes(ps.bytes, b, sizeof b);
		if (ps.next_ripe_in >= 0)
			age_text(ps.next_ripe_in, in, sizeof in);
		printf("deletion plans: %llu packs (%s) condemned by gc, %llu deletable now%s%s\n",
		       (unsigned long long)ps.packs, b, (unsigned long long)ps.ripe_packs,
		       ps.next_ripe_in >= 0 ? ", more in " : "", in);
	}
	if (gl.held && gl.stale_in > 0 && !gl.dead)
		printf("gc lock: held by %s (PID %ld), refreshed %llds ago, stale in %llds\n", gl.host, gl.pid,
		       (long long)gl.age, (long long)gl.stale_in);
	else if (gl.held)
		printf("gc lock: held by %s (PID %ld), STALE (%s): the next gc or kbvault unlock removes it\n", gl.host,
		       gl.pid, gl.dead ? "its process is gone" : "not refreshed in time");
	if (ps.damaged)
		printf("deletion plans: %llu damaged, ignored (kbvault check names them)\n", (unsigned long long)ps.damaged);
	if (ret.days) {
		char nx[40] = "";
		if (ret.next_extension)
			cli_time(ret.next_extension, 0, nx, sizeof nx);
		printf("object lock: COMPLIANCE, %u days; %llu objects retained until %s or later; gc extends them from %s\n",
		       ret.days, (unsigned long long)ret.objects, *lapse ? lapse : "-", *nx ? nx : "-");
	}
out:
	free(src);
	free(wal);
	json_decref(recs[0]);
	json_decref(recs[1]);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_snapshot_damage_free(bad, nbad);
	kbv_repo_close(r);
	return state;
}
