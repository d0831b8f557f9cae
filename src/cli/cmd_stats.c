#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "kbv/check.h"
#include "kbv/record.h"

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1)
		if (!cli_global_option(c, optarg, "stats"))
			return cli_bad_option("stats", argv);
	if (optind < argc)
		return cli_usage("stats", "unexpected argument '%s'", argv[optind]);
	struct kbv_repo *r;
	struct kbv_repo_stats st;
	int code = cli_open(KBV_LOCK_SHARED, CLI_UNLOCK_SNAPSHOTS | CLI_LIST(KBV_OBJ_RECORD), &r), rc;
	if (code)
		return code;
	json_t *drills = NULL;
	if ((rc = kbv_repo_stats(r, &st)) < 0 || (rc = kbv_record_list(r, "drill", &drills)) < 0) {
		code = cli_fail(rc);
		goto out;
	}
	double dedup = st.unique_raw_bytes ? (double)st.raw_bytes / (double)st.unique_raw_bytes : 0;
	double comp = st.unique_stored_bytes ? (double)st.unique_raw_bytes / (double)st.unique_stored_bytes : 0;
	double total = st.pack_bytes ? (double)st.raw_bytes / (double)st.pack_bytes : 0;
	struct kbv_repo_params rp;
	kbv_repo_params(r, &rp);
	if (cli.json) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:b, s:i, s:s}", "snapshots",
				      (json_int_t)st.snapshots, "raw_bytes", (json_int_t)st.raw_bytes, "unique_bytes",
				      (json_int_t)st.unique_raw_bytes, "stored_bytes", (json_int_t)st.pack_bytes,
				      "blob_bytes", (json_int_t)st.unique_stored_bytes, "dedup_ratio", dedup,
				      "compression_ratio", comp, "total_ratio", total, "chunks", (json_int_t)st.data_blobs,
				      "tree_blobs", (json_int_t)st.tree_blobs, "packs", (json_int_t)st.packs, "chunk_avg",
				      (int)rp.chunk_avg, "encrypted", rp.encrypted, "zstd_level", rp.zstd_level, "id_hash",
				      kbv_id_hash_name(rp.id_hash));
		/* The newest drill, and the newest that passed (format/records.md). */
		json_t *last = NULL, *last_ok = NULL, *d;
		size_t i;
		json_array_foreach(drills, i, d) {
			last = d;
			if (json_is_true(json_object_get(d, "ok")))
				last_ok = d;
		}
		json_object_set(j, "last_drill", last ? last : json_null());
		json_object_set(j, "last_successful_drill", last_ok ? last_ok : json_null());
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		char a[32], b[32], d[32];
		cli_bytes(st.raw_bytes, a, sizeof a);
		cli_bytes(st.unique_raw_bytes, b, sizeof b);
		cli_bytes(st.pack_bytes, d, sizeof d);
		printf("repository:        %s (%s, chunks avg %u KiB, zstd %d, %s ids)\n", kbv_repo_path(r),
		       rp.encrypted ? "encrypted" : "unencrypted", rp.chunk_avg >> 10, rp.zstd_level,
		       kbv_id_hash_name(rp.id_hash));
		printf("snapshots:         %llu\n", (unsigned long long)st.snapshots);
		printf("raw bytes:         %s (all snapshots' streams)\n", a);
		printf("unique bytes:      %s after deduplication\n", b);
		printf("stored bytes:      %s in %llu packs\n", d, (unsigned long long)st.packs);
		printf("dedup ratio:       x%.2f\n", dedup);
		printf("compression ratio: x%.2f\n", comp);
		printf("total ratio:       x%.2f (raw / stored)\n", total);
		printf("chunks:            %llu (+ %llu chunk-list blobs)\n", (unsigned long long)st.data_blobs,
		       (unsigned long long)st.tree_blobs);
		size_t nd = json_array_size(drills);
		if (nd) {
			json_t *ld = json_array_get(drills, nd - 1);
			printf("last drill:        %s, snapshot %.8s: %s\n", json_string_value(json_object_get(ld, "time")),
			       json_string_value(json_object_get(ld, "snapshot")),
			       json_is_true(json_object_get(ld, "ok")) ? "PASS" : "FAIL");
		} else {
			printf("last drill:        none (kbvault drill)\n");
		}
	}
out:
	json_decref(drills);
	kbv_repo_close(r);
	return code;
}
