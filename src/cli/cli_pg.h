/* PostgreSQL pieces of restore and drill. */
#ifndef KBV_CLI_PG_H
#define KBV_CLI_PG_H

#include <jansson.h>
#include <limits.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/load.h"
#include "kbv/pg.h"
#include "kbv/pgbase.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"

/* Progress on the terminal for the library's loaders (prog may be NULL: none). */
struct kbv_progress cli_progress_of(struct cli_progress *prog);

/* The client programs configured for source `source` (pg-bin-dir, client-command-prefix);
 * both NULL without a configuration. Borrowed from the configuration. */
void cli_pg_client(const char *source, struct kbv_pg_client *cl);

/* How a restored or drilled base backup runs `kbvault wal-fetch` (its restore_command):
 * this program, with this run's configuration file, -r repository and password file
 * (absolute paths). Fills rec->kbvault and rec->args, which point into cr. */
struct cli_recovery {
	char exe[PATH_MAX], cfg[PATH_MAX], pwf[PATH_MAX];
	const char *args[8];
};
void cli_pg_recovery(struct cli_recovery *cr, struct kbv_pg_recovery *rec);

#endif
