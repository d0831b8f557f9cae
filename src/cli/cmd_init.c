#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/buf.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/repo.h"

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-encryption", no_argument, NULL, 'n' },
		{ "chunk-avg", required_argument, NULL, 1101 },
		{ "zstd-level", required_argument, NULL, 'z' },
		{ "kdf-ops", required_argument, NULL, 'o' },
		{ "kdf-mem-mib", required_argument, NULL, 'm' },
		{ "object-lock-days", required_argument, NULL, 1102 },
		{ "id-hash", required_argument, NULL, 1103 },
		{ "copy-chunker-params", no_argument, NULL, 1104 },
		{ "from-repo", required_argument, NULL, 1104 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	struct kbv_init_opts io = { .encrypted = 1 };
	long v;
	int c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "init"))
			continue;
		switch (c) {
		case 'n': io.encrypted = 0; break;
		case 1101:
			if (kbv_parse_long(optarg, 0, UINT32_MAX, &v) < 0)
				return cli_usage("init", "--chunk-avg takes a number of bytes");
			io.chunk_avg = (uint32_t)v;
			break;
		case 1102:
			if (kbv_parse_long(optarg, 1, KBV_MAX_LOCK_DAYS, &v) < 0)
				return cli_usage("init", "--object-lock-days takes 1..%u", KBV_MAX_LOCK_DAYS);
			io.object_lock_days = (uint32_t)v;
			break;
		case 1103:
			if (!strcmp(optarg, "blake3"))
				io.id_hash = KBV_ID_BLAKE3;
			else if (!strcmp(optarg, "blake2b"))
				io.id_hash = KBV_ID_BLAKE2B;
			else
				return cli_usage("init", "--id-hash takes blake3 or blake2b");
			break;
		case 1104: /* restic's way to make copied data deduplicate: not needed here */
			return cli_usage("init",
					 "init needs no source repository (restic's --copy-chunker-params): 'kbvault copy' "
					 "cuts what it brings with this repository's own chunker, so copied snapshots "
					 "deduplicate against its own; run 'kbvault init', then 'kbvault copy --from-repo "
					 "REPO'");
		case 'z':
			if (kbv_parse_long(optarg, 1, 19, &v) < 0)
				return cli_usage("init", "--zstd-level takes 1..19");
			io.zstd_level = (int)v;
			break;
		case 'o':
			if (kbv_parse_long(optarg, 1, LONG_MAX, &v) < 0)
				return cli_usage("init", "--kdf-ops takes a positive number");
			io.kdf_ops = (uint64_t)v;
			break;
		case 'm':
			if (kbv_parse_long(optarg, 1, 65536, &v) < 0)
				return cli_usage("init", "--kdf-mem-mib takes 1..65536");
			io.kdf_mem = (uint64_t)v << 20;
			break;
		default: return cli_bad_option("init", argv);
		}
	}
	if (optind < argc)
		return cli_usage("init", "unexpected argument '%s'", argv[optind]);

	int rc;
	if ((rc = cli_load_config()) != 0)
		return rc;
	const char *path = cli_repo_path();
	/* The default location may need its parents. */
	if (!cli.repo && !getenv("KBVAULT_REPO") && !(cli.cfg && cli.cfg->repo_path) &&
	    (rc = kbv_mkdir_parents(path)) < 0)
		return cli_fail(rc);
	if ((rc = cli_remote_setup(path)) < 0)
		return cli_fail(rc);
	char *pw = NULL;
	size_t len = 0;
	if (io.encrypted && (rc = cli_password(1, &pw, &len)) != 0)
		return rc;
	rc = kbv_repo_init(path, &io, pw, len);
	cli_password_free(pw);
	if (rc < 0)
		return cli_fail(rc);
	if (cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:I, s:s}", "path", path, "encrypted", io.encrypted, "object_lock_days",
				      (json_int_t)io.object_lock_days, "id_hash",
				      kbv_id_hash_name(io.id_hash ? io.id_hash : KBV_DEFAULT_ID_HASH));
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else if (!cli.quiet) {
		printf("created %s repository at %s\n", io.encrypted ? "encrypted" : "UNENCRYPTED", path);
		if (io.object_lock_days)
			printf("Object Lock: every pack, index object, key and snapshot is retained %u days (COMPLIANCE)\n",
			       io.object_lock_days);
	}
	return EXIT_OK;
}
