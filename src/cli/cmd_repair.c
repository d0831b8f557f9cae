#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kbv/check.h"

static void report(void *arg, int sev, const char *msg)
{
	(void)arg;
	(void)sev;
	cli_log(CLI_WARN, "%s", msg);
}

int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1)
		if (!cli_global_option(c, optarg, "repair"))
			return cli_bad_option("repair", argv);
	if (optind + 1 != argc || strcmp(argv[optind], "index"))
		return cli_usage("repair", "the only repair is 'kbvault repair index'");
	struct kbv_repo *r;
	uint64_t packs = 0, blobs = 0;
	int code = cli_open(KBV_LOCK_EXCLUSIVE, 1, &r), rc;
	if (code)
		return code;
	if ((rc = kbv_repair_index(r, report, NULL, &packs, &blobs)) < 0)
		code = cli_fail(rc);
	else if (cli.json)
		printf("{\"packs\":%llu,\"blobs\":%llu}\n", (unsigned long long)packs, (unsigned long long)blobs);
	else if (!cli.quiet)
		printf("index rebuilt from %llu packs: %llu blobs\n", (unsigned long long)packs, (unsigned long long)blobs);
	kbv_repo_close(r);
	return code;
}
