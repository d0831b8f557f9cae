/* kbvault unlock: remove the gc lock of a repository on object storage when it is stale
 * (its gc died: the storage's clock says it was not refreshed for the stale period). A
 * live gc's lock is left alone: unlock never takes a lock from someone who may hold it. */
#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "kbv/gc.h"

int cmd_unlock(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1)
		if (!cli_global_option(c, optarg, "unlock"))
			return cli_bad_option("unlock", argv);
	if (optind < argc)
		return cli_usage("unlock", "unexpected argument '%s'", argv[optind]);
	struct kbv_repo *r;
	struct kbv_gclock_info was;
	int removed = 0, rc;
	int code = cli_open(KBV_LOCK_SHARED, 0, &r);
	if (code)
		return code;
	if ((rc = kbv_gclock_break(r, &was, &removed)) < 0) {
		code = cli_fail(rc);
		goto out;
	}
	code = was.held && !removed ? EXIT_LOCKED : EXIT_OK;
	if (cli.json) {
		json_t *j = json_pack("{s:b, s:b}", "held", was.held, "removed", removed);
		if (was.held) {
			json_object_set_new(j, "host", json_string(was.host));
			json_object_set_new(j, "pid", json_integer(was.pid));
			json_object_set_new(j, "age_seconds", json_integer(was.age));
			json_object_set_new(j, "stale_in_seconds", json_integer(was.stale_in > 0 ? was.stale_in : 0));
		}
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else if (!cli.quiet) {
		if (!was.held)
			printf("no gc lock is held\n");
		else if (removed)
			printf("removed the stale gc lock of host %s (PID %ld%s), last refreshed %lld s ago\n", was.host,
			       was.pid, was.dead ? ", gone" : "", (long long)was.age);
		else
			printf("the gc lock of host %s (PID %ld) was refreshed %lld s ago and goes stale in %lld s: "
			       "left in place (its gc may be running)\n",
			       was.host, was.pid, (long long)was.age, (long long)was.stale_in);
	}
out:
	kbv_repo_close(r);
	return code;
}
