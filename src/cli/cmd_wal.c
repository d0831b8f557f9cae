/* kbvault wal-push PATH and wal-fetch FILE DEST: PostgreSQL's archive_command and
 * restore_command (format/wal.md). Both are quiet on success: the server's log is theirs.
 * The source whose archive they use is --source, else the one physical PostgreSQL source
 * of the configuration. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/reader.h"
#include "kbv/source.h"
#include "kbv/wal.h"

#define OPT_SOURCE 1201

/* The source named by --source, or the configuration's only physical PostgreSQL source. */
static int wal_source(const char *cmd, const char *given, const char **out)
{
	int code;
	if (given) {
		*out = given;
		return 0;
	}
	if ((code = cli_load_config()) != 0)
		return code;
	const char *found = NULL;
	size_t n = 0;
	for (size_t i = 0; cli.cfg && i < cli.cfg->nsources; i++) {
		const struct kbv_source_cfg *sc = &cli.cfg->sources[i];
		if (sc->type == KBV_SOURCE_POSTGRES && sc->mode && !strcmp(sc->mode, "physical")) {
			found = sc->name;
			n++;
		}
	}
	if (n != 1)
		return cli_usage(cmd, "%s: give --source NAME", n ? "the configuration has several physical PostgreSQL sources"
								 : "the configuration has no PostgreSQL source with mode = physical");
	*out = found;
	return 0;
}

static int parse(int argc, char **argv, const char *cmd, const char **source, int nargs)
{
	static const struct option opts[] = { CLI_GLOBAL_OPTIONS, { "source", required_argument, NULL, OPT_SOURCE }, { 0 } };
	int c;
	*source = NULL;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (c == OPT_SOURCE)
			*source = optarg;
		else if (!cli_global_option(c, optarg, cmd))
			return cli_bad_option(cmd, argv);
	}
	if (argc - optind != nargs)
		return cli_usage(cmd, nargs == 1 ? "give the path of one WAL file (%%p)"
						 : "give the file PostgreSQL asks for and where to put it (%%f %%p)");
	return wal_source(cmd, *source, source);
}

int cmd_wal_push(int argc, char **argv)
{
	const char *source;
	struct kbv_repo *r;
	int code, rc, existed = 0;
	if ((code = parse(argc, argv, "wal-push", &source, 1)) != 0)
		return code;
	const char *path = argv[optind];
	kbv_repo_kdf_cache(1); /* once per WAL file: Argon2id each time would cost most of it */
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &r)) != 0)
		return code;
	/* one thread: a segment is small, and the server archives one file at a time */
	rc = kbv_wal_push(r, source, path, 1, &existed);
	if (rc < 0)
		code = cli_fail(rc);
	else if (existed)
		cli_log(CLI_INFO, "WAL file '%s' of source '%s' was already archived with the same contents", path, source);
	else
		cli_log(CLI_INFO, "archived WAL file '%s' of source '%s'", path, source);
	kbv_repo_close(r);
	return code;
}

int cmd_wal_fetch(int argc, char **argv)
{
	const char *source;
	struct kbv_repo *r;
	struct kbv_reader *rd = NULL;
	int code, rc;
	if ((code = parse(argc, argv, "wal-fetch", &source, 2)) != 0)
		return code;
	const char *file = argv[optind], *dest = argv[optind + 1];
	kbv_repo_kdf_cache(1);
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &r)) != 0)
		return code;
	rc = kbv_reader_new(r, 2, &rd);
	if (rc == 0)
		rc = kbv_wal_fetch(r, rd, source, file, dest);
	if (rc == KBV_ENOTFOUND) {
		/* PostgreSQL asks for files that do not exist (the next timeline's history, the
		 * segment after the last): exit 1 without a word */
		code = EXIT_FAIL;
	} else if (rc < 0) {
		code = cli_fail(rc);
	}
	kbv_reader_free(rd);
	kbv_repo_close(r);
	return code;
}
