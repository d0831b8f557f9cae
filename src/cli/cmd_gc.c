/* kbvault gc: apply a retention policy (flags, else [retention]) and collect garbage;
 * kbvault forget: remove named snapshots (space comes back at the next gc). */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kbv/buf.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/gc.h"
#include "kbv/record.h"
#include "kbv/reader.h"
#include "kbv/retention.h"
#include "kbv/snapshot.h"

static void gc_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	(void)arg;
	if (!cli_show_progress())
		return;
	fprintf(stderr, "\r\033[Kgc: %s %llu/%llu", phase, (unsigned long long)done, (unsigned long long)total);
	cli_log_progress_shown(done != total);
	if (done == total)
		fprintf(stderr, "\r\033[K");
}

static int gc_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keep-last", required_argument, NULL, 1401 },
		{ "keep-hourly", required_argument, NULL, 1402 },
		{ "keep-daily", required_argument, NULL, 1403 },
		{ "keep-weekly", required_argument, NULL, 1404 },
		{ "keep-monthly", required_argument, NULL, 1405 },
		{ "keep-yearly", required_argument, NULL, 1406 },
		{ "keep-within", required_argument, NULL, 1407 },
		{ "keep-tag", required_argument, NULL, 1408 },
		{ "keep-all", no_argument, NULL, 1409 },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "max-unused", required_argument, NULL, 1410 },
		{ "max-repack", required_argument, NULL, 1411 },
		{ "allow-remove-all", no_argument, NULL, 1412 },
		{ "keep-delete", required_argument, NULL, 1413 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	struct kbv_policy pol = { 0 };
	const char **tags = calloc((size_t)argc + 1, sizeof *tags);
	struct kbv_gc_opts go = { .max_unused = 0.10, .progress = gc_progress };
	int flags = 0, keep_all = 0, allow_all = 0, c;
	if (!tags)
		return EXIT_FAIL;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT "n", opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "gc"))
			continue;
		int *num = c == 1401 ? &pol.last : c == 1402 ? &pol.hourly : c == 1403 ? &pol.daily : c == 1404 ? &pol.weekly
			 : c == 1405 ? &pol.monthly : c == 1406 ? &pol.yearly : NULL;
		if (num) {
			long v;
			if (kbv_parse_long(optarg, 0, 1000000, &v) < 0) {
				free(tags);
				return cli_usage("gc", "%s needs a whole number, not '%s'", argv[optind - 1], optarg);
			}
			*num = (int)v;
			flags = 1;
			continue;
		}
		switch (c) {
		case 1407:
			if (kbv_duration_parse(optarg, &pol.within) < 0) {
				free(tags);
				return cli_usage("gc", "--keep-within: '%s' is not a duration (e.g. 2d, 36h, 1y6m)", optarg);
			}
			flags = 1;
			break;
		case 1408: tags[pol.ntags++] = optarg; flags = 1; break;
		case 1409: keep_all = 1; break;
		case 'n': go.dry_run = 1; break;
		case 1410: {
			const char *end;
			double v;
			if (cli_parse_decimal(optarg, &v, &end) < 0 || (*end && strcmp(end, "%")) || v < 0 || v > 100) {
				free(tags);
				return cli_usage("gc", "--max-unused takes a percentage from 0 to 100, not '%s'", optarg);
			}
			go.max_unused = v / 100;
			break;
		}
		case 1411:
			if (cli_parse_size(optarg, &go.max_repack) < 0) {
				free(tags);
				return cli_usage("gc", "--max-repack takes a size such as 500M or 2G, not '%s'", optarg);
			}
			break;
		case 1412: allow_all = 1; break;
		case 1413: {
			long long secs = 0;
			size_t len = strlen(optarg);
			if (strcmp(optarg, "0") &&
			    (!len || isdigit((unsigned char)optarg[len - 1]) || kbv_age_parse(optarg, &secs) < 0 ||
			     secs > 36500LL * 86400)) {
				free(tags);
				return cli_usage("gc", "--keep-delete takes a duration such as 0, 30s, 6h or 2d (at most 100 years), "
						       "not '%s'", optarg);
			}
			go.keep_delete = (uint32_t)secs;
			break;
		}
		default: free(tags); return cli_bad_option("gc", argv);
		}
	}
	pol.tags = tags;
	if (!go.dry_run)
		cli_run_begin("gc"); /* a dry run changes nothing: not a run to monitor */
	if (optind < argc) {
		free(tags);
		return cli_usage("gc", "unexpected argument '%s' (to remove given snapshots, use kbvault forget)", argv[optind]);
	}
	int code = cli_load_config();
	if (code) {
		free(tags);
		return code;
	}
	if (keep_all && flags) {
		free(tags);
		return cli_usage("gc", "--keep-all does not combine with --keep-* policies");
	}
	if (!flags && !keep_all) {
		if (cli.cfg && cli.cfg->has_retention) {
			const char *const *keep_tags = pol.tags;
			pol = cli.cfg->retention;
			pol.tags = keep_tags;
		} else {
			free(tags);
			return cli_usage("gc", "no retention policy: give --keep-* options, set [retention] in the configuration, "
					       "or --keep-all to only collect garbage (gc never guesses)");
		}
	}
	if (!keep_all && kbv_policy_is_empty(&pol)) {
		free(tags);
		return cli_usage("gc", "the retention policy keeps nothing; refusing (set a --keep-* value above 0)");
	}

	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL;
	struct kbv_reader *rd = NULL;
	struct kbv_retention_item *items = NULL;
	char **groups = NULL;
	uint8_t (*drop)[KBV_ID_BYTES] = NULL;
	size_t n = 0, ndrop = 0;
	json_t *jkeep = json_array(), *jdrop = json_array();
	int rc;
	if ((code = cli_open(KBV_LOCK_EXCLUSIVE, 1, &r)) != 0)
		goto done;
	if (!go.dry_run) {
		/* One gc at a time across hosts (object storage; a directory's flock is the lock). */
		char host[256] = "";
		gethostname(host, sizeof host - 1);
		if ((rc = kbv_gclock_take(r, host, &go.lock)) < 0) {
			code = cli_fail(rc);
			goto done;
		}
	}
	if ((rc = kbv_snapshot_list(r, &list, &n)) < 0 || (rc = kbv_reader_new(r, 1, &rd)) < 0) {
		/* What a damaged manifest referenced is unknown: gc deletes nothing until it is
		 * forgotten or put back from a copy. */
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION)
			kbv_error_prefix(rc, "gc deletes nothing while a snapshot manifest is damaged (a good copy of it "
					     "may still need its data): 'kbvault forget ID' removes it, or put back a copy "
					     "(docs/recovery.md)");
		code = cli_fail(rc);
		goto done;
	}
	items = calloc(n + 1, sizeof *items);
	groups = calloc(n + 1, sizeof *groups);
	drop = calloc(n + 1, sizeof *drop);
	if (!items || !groups || !drop) {
		code = cli_fail(kbv_error(KBV_ENOMEM, "out of memory"));
		goto done;
	}
	/* the ad-hoc snapshots are grouped by their streams: their entry tables side by side */
	struct kbv_snapshot **adhoc = calloc(n + 1, sizeof *adhoc);
	size_t nadhoc = 0;
	for (size_t i = 0; adhoc && i < n; i++)
		if (!list[i]->nsources)
			adhoc[nadhoc++] = list[i];
	kbv_snapshot_load_entries_all(r, adhoc, nadhoc); /* best effort: none when out of memory */
	free(adhoc);
	for (size_t i = 0; i < n; i++) {
		if ((rc = kbv_retention_group(rd, list[i], &groups[i])) < 0) {
			if (rc == KBV_ENOTFOUND || rc == KBV_ECORRUPT)
				kbv_error_prefix(rc, "gc stops before changing anything (if the index is stale, run 'kbvault "
						     "repair index')");
			code = cli_fail(rc);
			goto done;
		}
		items[i] = (struct kbv_retention_item){ .time = list[i]->time, .nsec = list[i]->nsec, .tzoff = list[i]->tzoff,
							 .group = groups[i], .tags = (const char *const *)list[i]->tags,
							 .ntags = list[i]->ntags, .keep = keep_all };
		if (keep_all)
			snprintf(items[i].reasons, sizeof items[i].reasons, "all");
	}
	if (!keep_all && (rc = kbv_retention_apply(&pol, items, n)) < 0) {
		code = cli_fail(rc);
		goto done;
	}
	/* Never every snapshot of a group, unless asked in so many words. */
	for (size_t i = 0; i < n && !allow_all; i++) {
		int kept = 0;
		for (size_t k = 0; k < n; k++)
			kept |= items[k].keep && !strcmp(groups[k], groups[i]);
		if (!kept) {
			code = cli_usage("gc", "the policy would remove every snapshot of '%s'; refusing without --allow-remove-all",
					 groups[i]);
			goto done;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char id[2 * KBV_ID_BYTES + 1], t[64];
		kbv_hex(list[i]->id, KBV_ID_BYTES, id);
		cli_time(list[i]->time, list[i]->tzoff, t, sizeof t);
		if (!items[i].keep)
			memcpy(drop[ndrop++], list[i]->id, KBV_ID_BYTES);
		json_array_append_new(items[i].keep ? jkeep : jdrop,
				      json_pack("{s:s, s:s, s:s, s:s}", "id", id, "time", t, "group", groups[i], "reasons",
						items[i].reasons));
		if (!cli.json && !cli.quiet)
			printf("%s %.8s  %s  %-30s %s\n", items[i].keep ? "keep  " : "remove", id, t, groups[i],
			       items[i].reasons);
	}
	kbv_reader_free(rd);
	rd = NULL;

	struct kbv_gc_result res;
	double t0 = cli_now();
	if ((rc = kbv_gc(r, (const uint8_t(*)[KBV_ID_BYTES])drop, ndrop, &go, &res)) < 0) {
		code = cli_fail(rc);
		goto done;
	}
	double secs = cli_now() - t0;
	cli_run_metric("gc_removed_snapshots", NULL, (double)res.snapshots_dropped);
	cli_run_metric("gc_freed_bytes", NULL, (double)(res.pack_bytes - res.bytes_after));
	cli_run_metric("gc_condemned_packs", NULL, (double)(res.packs_planned + res.packs_waiting));
	if (res.retention.oldest && !go.dry_run)
		cli_run_metric("object_lock_oldest_retention_timestamp_seconds", NULL, (double)res.retention.oldest);
	cli_log(CLI_INFO, "gc removed %llu snapshots, kept %llu; deleted %llu packs, repacked %llu; %llu bytes freed",
		(unsigned long long)res.snapshots_dropped, (unsigned long long)res.snapshots_kept,
		(unsigned long long)res.packs_deleted, (unsigned long long)res.packs_repacked,
		(unsigned long long)(res.pack_bytes - res.bytes_after));
	if (!go.dry_run) {
		/* For status and monitoring: when gc last ran, and what it did (format/records.md). */
		char now[40];
		cli_utc_now(now, sizeof now);
		json_t *rec = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f}", "kind", "gc", "time", now, "ok", 1,
					"snapshots_removed", (json_int_t)res.snapshots_dropped, "snapshots_kept",
					(json_int_t)res.snapshots_kept, "packs_deleted", (json_int_t)res.packs_deleted,
					"packs_repacked", (json_int_t)res.packs_repacked, "bytes_freed",
					(json_int_t)(res.pack_bytes - res.bytes_after), "seconds", secs);
		if ((rc = kbv_record_write(r, rec)) < 0)
			cli_warn("gc finished, but its record could not be written: %s", kbv_errmsg());
		json_decref(rec);
	}
	if (cli.json) {
		json_t *j = json_pack("{s:b, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}}",
				      "dry_run", go.dry_run, "kept", jkeep, "removed", jdrop, "gc", "live_blobs",
				      (json_int_t)res.live_blobs, "packs", (json_int_t)res.packs, "pack_bytes",
				      (json_int_t)res.pack_bytes, "packs_deleted", (json_int_t)res.packs_deleted,
				      "packs_repacked", (json_int_t)res.packs_repacked, "packs_written",
				      (json_int_t)res.packs_written, "packs_left_mostly_dead",
				      (json_int_t)res.packs_left_mostly_dead, "bytes_freed",
				      (json_int_t)(res.pack_bytes - res.bytes_after), "bytes_after",
				      (json_int_t)res.bytes_after, "tmp_removed", (json_int_t)res.tmp_removed,
				      "index_bytes_before", (json_int_t)res.index_bytes_before, "index_bytes_after",
				      (json_int_t)res.index_bytes_after, "index_objects_written",
				      (json_int_t)res.index_objects_written, "index_objects_removed",
				      (json_int_t)res.index_objects_removed, "seconds", secs);
		jkeep = jdrop = NULL;
		json_t *g = json_object_get(j, "gc");
		json_object_set_new(g, "keep_delete", json_integer((json_int_t)go.keep_delete));
		json_object_set_new(g, "packs_planned", json_integer((json_int_t)res.packs_planned));
		json_object_set_new(g, "bytes_planned", json_integer((json_int_t)res.bytes_planned));
		json_object_set_new(g, "packs_waiting", json_integer((json_int_t)res.packs_waiting));
		json_object_set_new(g, "packs_kept_needed", json_integer((json_int_t)res.packs_kept_needed));
		json_object_set_new(g, "plans_removed", json_integer((json_int_t)res.plans_removed));
		json_object_set_new(g, "plans_damaged", json_integer((json_int_t)res.plans_damaged));
		json_object_set_new(g, "wal_files_kept", json_integer((json_int_t)res.wal_files_kept));
		json_object_set_new(g, "wal_bytes_kept", json_integer((json_int_t)res.wal_bytes_kept));
		json_object_set_new(g, "wal_files_dropped", json_integer((json_int_t)res.wal_files_dropped));
		if (res.retention.days) {
			char oldest[40] = "";
			if (res.retention.oldest)
				cli_time(res.retention.oldest, 0, oldest, sizeof oldest);
			json_object_set_new(g, "object_lock",
					    json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "days", (json_int_t)res.retention.days,
						      "snapshots_retained", (json_int_t)res.snapshots_retained,
						      "packs_retained", (json_int_t)res.packs_retained, "objects",
						      (json_int_t)res.retention.objects, "extended",
						      (json_int_t)res.retention.extended, "oldest_retention", oldest));
		}
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else if (!cli.quiet) {
		char before[32], after[32], freed[32];
		cli_bytes(res.pack_bytes, before, sizeof before);
		cli_bytes(res.bytes_after, after, sizeof after);
		cli_bytes(res.pack_bytes - res.bytes_after, freed, sizeof freed);
		printf("gc%s: %s %llu snapshots, kept %llu; %llu live blobs; %s %llu of %llu packs, %s %llu (into %llu "
		       "new)%s; %s %s (%s -> %s), %.1f s\n",
		       go.dry_run ? " --dry-run" : "", go.dry_run ? "would remove" : "removed",
		       (unsigned long long)res.snapshots_dropped, (unsigned long long)res.snapshots_kept,
		       (unsigned long long)res.live_blobs, go.dry_run ? "would delete" : "deleted",
		       (unsigned long long)res.packs_deleted, (unsigned long long)res.packs,
		       go.dry_run ? "would repack" : "repacked", (unsigned long long)res.packs_repacked,
		       (unsigned long long)res.packs_written, res.packs_left_mostly_dead ? " (more next time: --max-repack)" : "",
		       go.dry_run ? "would free" : "freed", freed, before, after, secs);
		if (res.packs_planned) {
			char planned[32];
			cli_bytes(res.bytes_planned, planned, sizeof planned);
			printf("gc: %s %llu packs (%s) for deletion by a gc run %u s or more from now (--keep-delete)\n",
			       go.dry_run ? "would condemn" : "condemned", (unsigned long long)res.packs_planned, planned,
			       go.keep_delete);
		}
		if (res.wal_files_kept || res.wal_files_dropped) {
			char wb[32];
			cli_bytes(res.wal_bytes_kept, wb, sizeof wb);
			printf("gc: WAL archive: %s %llu files older than the oldest kept base backup needs, kept %llu (%s)\n",
			       go.dry_run ? "would remove" : "removed", (unsigned long long)res.wal_files_dropped,
			       (unsigned long long)res.wal_files_kept, wb);
		}
		if (res.packs_waiting)
			printf("gc: %llu packs wait in earlier deletion plans\n", (unsigned long long)res.packs_waiting);
		if (res.packs_kept_needed)
			printf("gc: %llu condemned packs were kept: snapshots committed since need them\n",
			       (unsigned long long)res.packs_kept_needed);
		if (res.snapshots_retained || res.packs_retained)
			printf("gc: Object Lock still retains %llu snapshots the policy drops and %llu packs gc would "
			       "delete or repack; a gc after their retention lapses removes them\n",
			       (unsigned long long)res.snapshots_retained, (unsigned long long)res.packs_retained);
		if (res.retention.days && res.retention.oldest) {
			char oldest[40];
			cli_time(res.retention.oldest, 0, oldest, sizeof oldest);
			printf("gc: Object Lock: %llu objects retained until %s or later; %llu extended%s\n",
			       (unsigned long long)res.retention.objects, oldest, (unsigned long long)res.retention.extended,
			       go.dry_run ? " (a dry run extends nothing)" : " by this run");
		}
	}
	if (res.plans_damaged)
		cli_warn("%llu deletion plans do not authenticate and were ignored (kbvault check names them)",
			 (unsigned long long)res.plans_damaged);
	code = EXIT_OK;
done:
	json_decref(jkeep);
	json_decref(jdrop);
	for (size_t i = 0; groups && i < n; i++)
		free(groups[i]);
	free(groups);
	free(items);
	free(drop);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_gclock_release(go.lock);
	if (r)
		cli_run_repo(r);
	kbv_repo_close(r);
	free(tags);
	return code;
}

int cmd_gc(int argc, char **argv)
{
	return cli_run_end(gc_main(argc, argv));
}

int cmd_forget(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1)
		if (!cli_global_option(c, optarg, "forget"))
			return cli_bad_option("forget", argv);
	if (optind >= argc)
		return cli_usage("forget", "name the snapshots to remove (ids, prefixes or latest)");
	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL, *s;
	size_t n = 0;
	int code, rc = 0;
	json_t *removed = json_array();
	struct kbv_snapshot_damage *bad = NULL;
	size_t nbad = 0;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &r)) != 0) {
		json_decref(removed);
		return code;
	}
	if ((rc = cli_list_snapshots(r, &list, &n, &bad, &nbad)) < 0)
		goto out;
	/* Resolve every name first: a typo removes nothing. A damaged manifest is named by its
	 * file name (id or a prefix of it): removing it is how it stops costing anything. */
	for (int i = optind; i < argc && rc == 0; i++)
		if (!kbv_snapshot_damage_find(bad, nbad, argv[i]))
			rc = kbv_snapshot_find(list, n, argv[i], &s);
	for (int i = optind; i < argc && rc == 0; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		const struct kbv_snapshot_damage *d = kbv_snapshot_damage_find(bad, nbad, argv[i]);
		const uint8_t *id = d ? d->id : NULL;
		if (!id) {
			kbv_snapshot_find(list, n, argv[i], &s);
			id = s->id;
		}
		kbv_hex(id, KBV_ID_BYTES, hex);
		if ((rc = kbv_snapshot_remove(r, id)) < 0)
			break;
		else if (cli.json)
			json_array_append_new(removed, json_string(hex));
		else if (!cli.quiet)
			printf("removed snapshot %.8s (its space comes back at the next gc)\n", hex);
	}
	if (rc == 0 && cli.json) {
		json_t *j = json_pack("{s:O}", "removed", removed);
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	}
out:
	if (rc < 0)
		code = cli_fail(rc);
	json_decref(removed);
	kbv_snapshot_damage_free(bad, nbad);
	kbv_snapshot_list_free(list, n);
	kbv_repo_close(r);
	return code;
}
