#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "kbv/buf.h"
#include "kbv/check.h"

static void report(void *arg, int sev, const char *msg)
{
	(void)arg;
	if (sev == KBV_INFO && !cli.verbose)
		return;
	fprintf(cli.json ? stderr : stdout, "%s: %s\n", sev == KBV_PROBLEM ? "problem" : sev == KBV_WARNING ? "warning" : "info",
		msg);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = { { "read-data", no_argument, NULL, 'd' },
					      { "read-data-subset", required_argument, NULL, 1501 }, CLI_GLOBAL_OPTIONS, { 0 } };
	struct kbv_check_opts co = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "check"))
			continue;
		if (c == 'd')
			co.read_data = 1;
		else if (c == 1501) {
			const char *end;
			double v;
			if (cli_parse_decimal(optarg, &v, &end) < 0 || (*end && strcmp(end, "%")) || v <= 0 || v > 100)
				return cli_usage("check", "--read-data-subset takes a percentage such as 10%%, not '%s'", optarg);
			co.read_data = 1;
			co.subset_pct = v;
			/* KBVAULT_CHECK_DAY pins the rotation (tests); otherwise today's share. */
			co.subset_day = (uint32_t)kbv_env_long("KBVAULT_CHECK_DAY", 0, UINT32_MAX, time(NULL) / 86400);
		} else
			return cli_bad_option("check", argv);
	}
	if (optind < argc)
		return cli_usage("check", "unexpected argument '%s'", argv[optind]);
	struct kbv_repo *r;
	struct kbv_check_result res;
	int code = cli_open(KBV_LOCK_SHARED, 1, &r), rc;
	if (code)
		return code;
	double t0 = cli_now();
	if ((rc = kbv_check(r, &co, report, NULL, &res)) < 0) {
		code = cli_fail(rc);
		goto out;
	}
	code = res.problems ? EXIT_CORRUPT : EXIT_OK;
	if (cli.json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "ok", !res.problems, "problems",
				      (json_int_t)res.problems, "warnings", (json_int_t)res.warnings, "packs",
				      (json_int_t)res.packs, "blobs", (json_int_t)res.blobs, "snapshots",
				      (json_int_t)res.snapshots, "bytes_read", (json_int_t)res.bytes_read, "seconds",
				      cli_now() - t0);
		json_object_set_new(j, "wal_files", json_integer((json_int_t)res.wal_files));
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else if (!cli.quiet || res.problems) {
		char wal[64] = "";
		if (res.wal_files)
			snprintf(wal, sizeof wal, ", %llu WAL files", (unsigned long long)res.wal_files);
		printf("check%s%s: %llu packs, %llu blobs, %llu snapshots%s: %s%llu problem%s, %llu warning%s\n",
		       co.read_data ? " --read-data" : "", co.subset_pct > 0 ? "-subset" : "", (unsigned long long)res.packs, (unsigned long long)res.blobs,
		       (unsigned long long)res.snapshots, wal, res.problems ? "" : "ok, ", (unsigned long long)res.problems,
		       res.problems == 1 ? "" : "s", (unsigned long long)res.warnings, res.warnings == 1 ? "" : "s");
	}
out:
	kbv_repo_close(r);
	return code;
}
