/* The CLI's side of loading restored streams (the loading itself is src/sources/load.c):
 * the configured PostgreSQL client programs, and progress shown on the terminal. */
#include "cli.h"
#include "cli_pg.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_pg_client(const char *source, struct kbv_pg_client *cl)
{
	const struct kbv_source_cfg *sc = cli.cfg ? kbv_config_source(cli.cfg, source) : NULL;
	cl->bin_dir = sc ? sc->pg_bin_dir : NULL;
	cl->prefix = sc ? sc->client_command_prefix : NULL;
}

static void prog_bytes(void *arg, uint64_t done, uint64_t total)
{
	cli_progress_bytes(arg, done, total, 0, 0);
}

static void prog_done(void *arg)
{
	cli_progress_done(arg);
}

struct kbv_progress cli_progress_of(struct cli_progress *prog)
{
	struct kbv_progress p = { prog ? prog_bytes : NULL, prog ? prog_done : NULL, prog };
	return p;
}

void cli_pg_recovery(struct cli_recovery *cr, struct kbv_pg_recovery *rec)
{
	size_t k = 0;
	ssize_t len = readlink("/proc/self/exe", cr->exe, sizeof cr->exe - 1);
	cr->exe[len > 0 ? len : 0] = 0;
	if (cli.cfg && cli.cfg->file && realpath(cli.cfg->file, cr->cfg)) {
		cr->args[k++] = "-c";
		cr->args[k++] = cr->cfg;
	}
	if (cli.repo) {
		cr->args[k++] = "-r";
		cr->args[k++] = cli.repo;
	}
	if (cli.password_file && realpath(cli.password_file, cr->pwf)) {
		cr->args[k++] = "--password-file";
		cr->args[k++] = cr->pwf;
	}
	cr->args[k] = NULL;
	/* The server runs restore_command with its own environment, not this shell's. */
	if (!strncmp(cli_repo_path(), "s3:", 3) && !(cli.cfg && cli.cfg->s3_credentials_file))
		cli_warn("the restored server's restore_command reads the S3 credentials from the configuration: give them in "
			 "[repository] s3-credentials-file, or it will not find the WAL");
	rec->kbvault = cr->exe;
	rec->args = cr->args;
}
