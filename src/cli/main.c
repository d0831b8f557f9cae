/* kbvault: start-up, global options and the command table. */
#include <sodium.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/buf.h"
#include "kbv/backend.h"
#include "kbv/gc.h"
#include "kbv/pgbase.h"
#include "kbv/repo.h"

/* The commands; each lives in cmd_<name>.c, its help in help.c. */
struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "init", cmd_init },
	{ "snapshot", cmd_snapshot },
	{ "snapshots", cmd_snapshots },
	{ "restore", cmd_restore },
	{ "drill", cmd_drill },
	{ "forget", cmd_forget },
	{ "gc", cmd_gc },
	{ "status", cmd_status },
	{ "stats", cmd_stats },
	{ "check", cmd_check },
	{ "repair", cmd_repair },
	{ "key", cmd_key },
	{ "copy", cmd_copy },
	{ "bench", cmd_bench },
	{ "unlock", cmd_unlock },
	{ "wal-push", cmd_wal_push },
	{ "wal-fetch", cmd_wal_fetch },
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

/* The environment's numbers are checked before any command runs, as options are: a
 * KBVAULT_THREADS of "four" or "0" is a usage error, not quietly one worker per CPU.
 * An empty value is unset. 0 or EXIT_USAGE (printed). */
static int check_env(void)
{
	static const struct {
		const char *name;
		long min, max;
		const char *what;
	} nums[] = {
		{ "KBVAULT_THREADS", 1, CLI_THREADS_MAX, "worker threads" },
		{ "KBVAULT_READ_PIECES", 0, 1, "1: read a file in pieces" },
		{ "KBVAULT_GC_LOCK_STALE", 1, KBV_GCLOCK_STALE_MAX, "seconds" },
		{ "KBVAULT_CHECK_DAY", 0, UINT32_MAX, "days since 1970-01-01" },
		/* test hooks (kbvault(1) names them) */
		{ "KBVAULT_ARCHIVE_TIMEOUT", 1, KBV_ARCHIVE_TIMEOUT_MAX, "seconds" },
		{ "KBVAULT_OBJECT_LOCK_DAY", 1, KBV_LOCK_DAY_MAX, "seconds in a day of Object Lock" },
		{ "KBVAULT_PACK_SIZE", KBV_PACK_SIZE_HOOK_MIN, KBV_PACK_SIZE_HOOK_MAX, "bytes" },
		{ "KBVAULT_S3_LIST_PAGE", 1, KBV_S3_LIST_PAGE_MAX, "keys" },
		{ "KBVAULT_S3_DELETE_BATCH", 1, KBV_S3_DELETE_BATCH_MAX, "keys" },
	};
	for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
		const char *v = getenv(nums[i].name);
		long n;
		if (v && *v && kbv_parse_long(v, nums[i].min, nums[i].max, &n) < 0) {
			char shown[64];
			cli_log(CLI_ERROR, "%s must be a whole number from %ld to %ld (%s), not '%s'", nums[i].name,
				nums[i].min, nums[i].max, nums[i].what, cli_printable(v, shown, sizeof shown));
			return EXIT_USAGE;
		}
	}
	return 0;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (sodium_init() < 0) {
		fprintf(stderr, "kbvault: libsodium failed to initialize\n");
		return EXIT_FAIL;
	}
	/* A reader that goes away (psql stopping on an error, `| head`) is an error we report,
	 * not a silent death by SIGPIPE. */
	/* A closed 0, 1 or 2 would be taken by the next file or pipe we open (kbvault would
	 * then hold the write end of its own stdin and wait forever): fill them with
	 * /dev/null first. */
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			if (open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
				return EXIT_FAIL;
			cli.closed_std |= 1 << fd; /* data for it must not go to /dev/null unnoticed */
		}
	cli_take_env_secrets();
	cli_take_s3_secrets();
	signal(SIGPIPE, SIG_IGN);
	/* Commands report a refused option themselves, once (cli_bad_option). */
	opterr = 0;
	cli.lock_wait = 600;
	/* Global options may come before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc)
			cli.config_path = argv[++i];
		else if (!strncmp(a, "--config=", 9))
			cli.config_path = a + 9;
		else if ((!strcmp(a, "-r") || !strcmp(a, "--repo")) && i + 1 < argc)
			cli.repo = argv[++i];
		else if (!strncmp(a, "--repo=", 7))
			cli.repo = a + 7;
		else if (!strcmp(a, "--password-file") && i + 1 < argc)
			cli.password_file = argv[++i];
		else if (!strncmp(a, "--password-file=", 16))
			cli.password_file = a + 16;
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			cli.quiet = 1;
		else if (!strcmp(a, "--json"))
			cli.json = 1;
		else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
			cli.verbose++;
		else if (!strcmp(a, "--lock-wait") && i + 1 < argc) {
			if (cli_lock_wait(argv[++i]) != 0)
				return EXIT_USAGE;
		} else if (!strncmp(a, "--lock-wait=", 12)) {
			if (cli_lock_wait(a + 12) != 0)
				return EXIT_USAGE;
		} else if (!strcmp(a, "-vv"))
			cli.verbose += 2;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cli_help(NULL);
			return EXIT_OK;
		} else if (!strcmp(a, "--version")) {
			printf("kbvault %s\n", KBVAULT_VERSION);
			return EXIT_OK;
		} else {
			cli_log(CLI_ERROR, "unknown option '%s' (see 'kbvault help')", a);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		cli_help(NULL);
		return EXIT_USAGE;
	}
	const char *name = argv[i];
	if (!strcmp(name, "help")) {
		const char *what = i + 1 < argc ? argv[i + 1] : NULL;
		if (what && strcmp(what, "help") && strcmp(what, "version") && !cli_is_command(what)) {
			cli_log(CLI_ERROR, "'%s' is not a command (see 'kbvault help')", what);
			return EXIT_USAGE;
		}
		cli_help(what);
		return EXIT_OK;
	}
	if (!strcmp(name, "version")) {
		printf("kbvault %s\n", KBVAULT_VERSION);
		return EXIT_OK;
	}
	const struct command *cmd = find_command(name);
	if (cmd) {
		if (check_env() != 0)
			return EXIT_USAGE;
		cli_log_command(cmd->name);
		int code = cmd->run(argc - i, argv + i);
		cli_remote_requests();
		return code;
	}
	cli_log(CLI_ERROR, "'%s' is not a command (see 'kbvault help')", name);
	return EXIT_USAGE;
}
