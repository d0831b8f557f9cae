/* The parts of `kbvault snapshot` shared by its source kinds (cmd_snapshot.c, snap_pg.c,
 * snap_cmd.c). */
#ifndef KBV_CLI_SNAP_H
#define KBV_CLI_SNAP_H

#include <jansson.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/snapshot.h"

struct snap_ctx {
	struct kbv_repo *repo;
	struct kbv_snapsource *src;
	size_t nsrc;
	struct kbv_writer *w;
	struct kbv_entry *e;
	size_t n, cap;
	struct cli_progress prog;
	int64_t now;
	int hook_failed; /* an after hook failed although its dump succeeded */
	const char *exclude; /* the path source being walked: its exclude patterns (borrowed) */
	/* per recorded source (parallel to src): what its dump added, and how long it took */
	struct kbv_writer_stats *src_st;
	double *src_secs;
};

/* A new entry of `kind` named `name` (validated); NULL with the error set. The pointer is
 * valid until the next call. */
struct kbv_entry *snap_add_entry(struct snap_ctx *c, int kind, const char *name);
void snap_set_result(struct kbv_entry *x, const struct kbv_stream_result *res);
/* kbv_walk() callback: store a file, directory or symlink as an entry. */
int snap_add_path(void *arg, const char *path, const char *name, const struct stat *st);
/* Store the output of a started child as entry `name` and wait for it. */
int snap_store_child(struct snap_ctx *c, const char *name, pid_t pid, int fd, const char *what);

/* Source kinds: each adds its entries ("<source>/...") and sets *meta. */
int snap_add_postgres(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta);
/* type = command and type = neo4j: before hook, dump-command, after hook (always). */
int snap_add_dump_command(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta);
/* type = qdrant: every (or each configured) collection's snapshot. */
int snap_add_qdrant(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta);
/* type = path: the listed absolute paths, recursively. */
int snap_add_paths(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta);
void snap_print_postgres(const char *name, const json_t *meta);

#endif
