/* kbvault key list | add | remove ID | passwd: the repository's passwords (restic's `key`). */
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kbv/error.h"
#include "kbv/keys.h"

static void whoami(char *host, size_t hcap, char *user, size_t ucap)
{
	struct passwd *pw = getpwuid(getuid());
	if (gethostname(host, hcap) != 0)
		snprintf(host, hcap, "unknown");
	host[hcap - 1] = 0;
	snprintf(user, ucap, "%s", pw ? pw->pw_name : "unknown");
}

static int key_list(struct kbv_repo *r)
{
	struct kbv_key_info *v;
	size_t n;
	int rc = kbv_key_list(r, &v, &n);
	if (rc < 0)
		return cli_fail(rc);
	if (cli.json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:b, s:b, s:s, s:s, s:s}", "id", v[i].id, "current",
							   v[i].in_use, "damaged", v[i].damaged, "host", v[i].host,
							   "user", v[i].user, "created", v[i].created));
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
	} else {
		printf("  %-32s  %-20s  %-12s  %-20s\n", "ID", "HOST", "USER", "CREATED");
		for (size_t i = 0; i < n; i++)
			printf("%c %-32s  %-20s  %-12s  %-20s%s\n", v[i].in_use ? '*' : ' ', v[i].id,
			       v[i].damaged ? "(damaged)" : *v[i].host ? v[i].host : "-", *v[i].user ? v[i].user : "-",
			       *v[i].created ? v[i].created : v[i].damaged ? "-" : "(made by init)",
			       v[i].in_use ? "  (used now)" : "");
	}
	free(v);
	return EXIT_OK;
}

/* Add a key for a new password; its id into id. */
static int key_add(struct kbv_repo *r, const char *file, char id[33])
{
	char *pw = NULL, host[256], user[64];
	size_t len = 0;
	int code = cli_new_password(file, &pw, &len), rc;
	if (code)
		return code;
	whoami(host, sizeof host, user, sizeof user);
	rc = kbv_key_add(r, pw, len, host, user, id);
	cli_password_free(pw);
	return rc < 0 ? cli_fail(rc) : EXIT_OK;
}

int cmd_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "new-password-file", required_argument, NULL, 1301 },
		{ "force", no_argument, NULL, 1302 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	const char *newfile = NULL;
	int force = 0, c, code, rc;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "key"))
			continue;
		switch (c) {
		case 1301: newfile = optarg; break;
		case 1302: force = 1; break;
		default: return cli_bad_option("key", argv);
		}
	}
	const char *verb = optind < argc ? argv[optind] : "";
	int nargs = argc - optind - 1;
	int list = !strcmp(verb, "list"), add = !strcmp(verb, "add"), rm = !strcmp(verb, "remove"),
	    passwd = !strcmp(verb, "passwd");
	if (!(list || add || rm || passwd) || nargs != (rm ? 1 : 0))
		return cli_usage("key", "kbvault key list | add | remove ID | passwd");
	if ((force && !rm) || (newfile && !(add || passwd)))
		return cli_usage("key", "--force goes with remove, --new-password-file with add and passwd");
	struct kbv_repo *r;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &r)) != 0)
		return code;
	char id[33];
	if (list) {
		code = key_list(r);
	} else if (add) {
		if ((code = key_add(r, newfile, id)) == 0 && !cli.quiet)
			printf("added key %s\n", id);
	} else if (rm) {
		if ((rc = kbv_key_remove(r, argv[optind + 1], force)) < 0)
			code = cli_fail(rc);
		else if (!cli.quiet)
			printf("removed key %s\n", argv[optind + 1]);
	} else {
		/* passwd: the new key is durable before the old one goes. */
		struct kbv_key_info *v;
		size_t n;
		char old[40] = "";
		if ((rc = kbv_key_list(r, &v, &n)) < 0) {
			code = cli_fail(rc);
		} else {
			for (size_t i = 0; i < n; i++)
				if (v[i].in_use)
					snprintf(old, sizeof old, "%s", v[i].id);
			free(v);
			if ((code = key_add(r, newfile, id)) == 0) {
				if ((rc = kbv_key_remove(r, old, 1)) < 0) {
					cli_log(CLI_ERROR, "the new key %s is stored, but the old key %s could not be removed: "
							   "both passwords open the repository",
						id, old);
					code = cli_fail(rc);
				} else if (!cli.quiet) {
					printf("password changed: key %s replaces key %s\n", id, old);
				}
			}
		}
	}
	kbv_repo_close(r);
	return code;
}
