#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kbv/error.h"
#include "kbv/record.h"
#include "kbv/snapshot.h"

static const char *kind_name(int k)
{
	switch (k) {
	case KBV_ENTRY_STDIN: return "stdin";
	case KBV_ENTRY_COMMAND: return "command";
	case KBV_ENTRY_FILE: return "file";
	case KBV_ENTRY_DIR: return "dir";
	default: return "symlink";
	}
}

int cmd_snapshots(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1)
		if (!cli_global_option(c, optarg, "snapshots"))
			return cli_bad_option("snapshots", argv);
	if (optind < argc)
		return cli_usage("snapshots", "unexpected argument '%s'", argv[optind]);

	struct kbv_repo *r = NULL;
	struct kbv_snapshot **list = NULL;
	struct kbv_reader *rd = NULL;
	size_t n = 0;
	int code, rc;
	if ((code = cli_open(KBV_LOCK_SHARED, CLI_UNLOCK_SNAPSHOTS | (cli.json ? CLI_LIST(KBV_OBJ_RECORD) : 0), &r)) != 0)
		return code;
	json_t *drills = NULL;
	struct kbv_snapshot_damage *bad = NULL;
	size_t nbad = 0;
	if ((rc = cli_list_snapshots(r, &list, &n, &bad, &nbad)) < 0 || (rc = kbv_reader_new(r, 1, &rd)) < 0 ||
	    (cli.json && (rc = kbv_record_list(r, "drill", &drills)) < 0)) {
		code = cli_fail(rc);
		goto out;
	}
	kbv_snapshot_load_entries_all(r, list, n); /* side by side; each reported below */
	json_t *arr = cli.json ? json_array() : NULL;
	if (!cli.json)
		printf("%-8s  %-25s  %-16s  %10s  %s\n", "ID", "TIME", "HOST", "SIZE", "SOURCES OR STREAMS");
	for (size_t i = 0; i < n; i++) {
		struct kbv_snapshot *s = list[i];
		char id[2 * KBV_ID_BYTES + 1], t[64], sz[32];
		/* A snapshot whose entries cannot be read (a pack gone) is listed all the same,
		 * with the reason; the others are not affected. */
		char unreadable[600] = "";
		if ((rc = kbv_snapshot_load_entries(rd, s)) < 0) {
			if (rc != KBV_ECORRUPT && rc != KBV_EVERSION) {
				json_decref(arr);
				code = cli_fail(rc);
				goto out;
			}
			snprintf(unreadable, sizeof unreadable, "%s", kbv_errmsg());
			cli_log(CLI_WARN, "%s", unreadable);
			code = EXIT_CORRUPT; /* everything is listed; the status says something is damaged */
			rc = 0;
		}
		kbv_hex(s->id, KBV_ID_BYTES, id);
		cli_time(s->time, s->tzoff, t, sizeof t);
		if (cli.json) {
			json_t *tags = json_array(), *streams = json_array();
			for (size_t k = 0; k < s->ntags; k++)
				json_array_append_new(tags, json_string(s->tags[k]));
			for (size_t k = 0; k < s->nloaded; k++) {
				struct kbv_entry *e = &s->entries[k];
				char h[65];
				kbv_digest_hex(&e->hash, h);
				json_t *o = json_pack("{s:s, s:s, s:I}", "name", e->name, "kind", kind_name(e->kind), "size",
						      (json_int_t)e->size);
				/* named by its algorithm: the key says which tool reproduces it */
				if (kbv_entry_has_data(e) && kbv_digest_json_key(e->hash.alg))
					json_object_set_new(o, kbv_digest_json_key(e->hash.alg), json_string(h));
				if (e->user && e->kind >= KBV_ENTRY_FILE)
					json_object_set_new(o, "owner", json_pack("{s:I, s:I, s:s, s:s}", "uid", (json_int_t)e->uid,
										  "gid", (json_int_t)e->gid, "user", e->user,
										  "group", e->group));
				json_array_append_new(streams, o);
			}
			json_t *srcs = json_array();
			for (size_t k = 0; k < s->nsources; k++)
				json_array_append_new(srcs, json_pack("{s:s, s:s, s:o}", "name", s->sources[k].name, "type",
								      s->sources[k].type, "meta",
								      json_loads(s->sources[k].meta, 0, NULL)));
			json_t *o = json_pack("{s:s, s:s#, s:s, s:s, s:o, s:I, s:o, s:o}", "id", id, "short_id", id, 8, "time",
					      t, "host", s->host, "tags", tags, "size", (json_int_t)s->total_size, "sources",
					      srcs, "streams", streams);
			if (*unreadable)
				json_object_set_new(o, "error", json_string(unreadable));
			/* The newest drill of this snapshot, if any (format/records.md). */
			size_t k;
			json_t *d, *last = NULL;
			json_array_foreach(drills, k, d)
				if (!strcmp(json_string_value(json_object_get(d, "snapshot")), id))
					last = d;
			if (last)
				json_object_set_new(o, "last_drill", json_pack("{s:O, s:O}", "time", json_object_get(last, "time"),
									       "ok", json_object_get(last, "ok")));
			json_array_append_new(arr, o);
		} else {
			cli_bytes(s->total_size, sz, sizeof sz);
			char pr[1024];
			printf("%.8s  %-25s  %-16s  %10s  ", id, t, cli_printable(s->host, pr, sizeof pr), sz);
			size_t shown = 0;
			for (size_t k = 0; k < s->nsources; k++)
				printf("%s%s (%s)", k ? ", " : "", s->sources[k].name, s->sources[k].type);
			for (size_t k = 0; k < s->nloaded && shown < 4 && !s->nsources; k++) {
				if (s->entries[k].kind == KBV_ENTRY_DIR)
					continue;
				printf("%s%s", shown ? ", " : "", cli_printable(s->entries[k].name, pr, sizeof pr));
				shown++;
			}
			if (s->nloaded > shown && !s->nsources)
				printf(" (%llu entries)", (unsigned long long)s->nloaded);
			if (*unreadable)
				printf("  DAMAGED: entries unreadable");
			for (size_t k = 0; k < s->ntags; k++)
				printf("%s#%s", k ? " " : "  ", cli_printable(s->tags[k], pr, sizeof pr));
			putchar('\n');
		}
	}
	/* Damaged manifests: listed, never silently left out; the exit status says so. */
	if (nbad)
		code = EXIT_CORRUPT;
	for (size_t i = 0; i < nbad; i++) {
		char id[2 * KBV_ID_BYTES + 1];
		kbv_hex(bad[i].id, KBV_ID_BYTES, id);
		if (cli.json)
			json_array_append_new(arr, json_pack("{s:s, s:s#, s:b, s:s}", "id", id, "short_id", id, 8, "damaged", 1,
							     "error", bad[i].msg));
		else
			printf("%.8s  DAMAGED: %s\n", id, bad[i].msg);
	}
	if (cli.json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(arr);
	}
out:
	kbv_snapshot_damage_free(bad, nbad);
	json_decref(drills);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_repo_close(r);
	return code;
}
