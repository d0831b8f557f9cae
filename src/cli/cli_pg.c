/* The CLI's side of loading restored streams (the loading itself is src/sources/load.c):
 * the configured PostgreSQL client programs, and progress shown on the terminal. */
#include "cli.h"
#include "cli_pg.h"

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
