/* The configuration file (INI, parsed with libinih): repository, sources, drill, retention
 * and monitoring settings. Every error is one line naming file and line. */
#ifndef KBV_CONFIG_H
#define KBV_CONFIG_H

#include <stddef.h>

#include "kbv/retention.h"

enum kbv_source_type {
	KBV_SOURCE_POSTGRES,
	KBV_SOURCE_QDRANT,
	KBV_SOURCE_NEO4J,
	KBV_SOURCE_COMMAND,
	KBV_SOURCE_PATH,
};

/* One [source NAME] section. Strings are owned; NULL when not set. */
struct kbv_source_cfg {
	char *name;
	int type;
	int line; /* of the section's first key, for messages */
	char *dsn, *mode, *globals, *jobs;                   /* postgres */
	char *url, *api_key_file, *collections, *timeout;    /* qdrant */
	char *database, *load_command, *before, *after;      /* neo4j */
	char *dump_command, *restore_command, *drill_load_command, *drill_cleanup_command; /* neo4j, command */
	char *paths, *exclude;                               /* path */
	char *pg_bin_dir, *client_command_prefix;            /* postgres: where the client programs are */
};

struct kbv_config {
	char *file;
	char *repo_path;        /* [repository] path */
	char *password_file;    /* [repository] password-file */
	struct kbv_source_cfg *sources;
	size_t nsources;
	char *drill_postgres_dsn;
	struct kbv_policy retention; /* [retention]; tags not supported in the file yet */
	int has_retention;
	char *max_age, *metrics_file, *ping_url, *log_file, *ping_timeout; /* [monitor] */
};

/* Which file to read: `explicit_path` (-c) if given, else $KBVAULT_CONFIG, else
 * ./kbvault.conf, else /etc/kbvault/kbvault.conf if they exist. *path is NULL when there is
 * no configuration file (not an error); caller frees. KBV_ENOTFOUND when an explicitly
 * named file does not exist. */
int kbv_config_find(const char *explicit_path, char **path);

/* Parse and validate `path`. KBV_EINVAL with "FILE:LINE: message" for unknown sections,
 * keys or source types, missing required keys, duplicate sources, bad numbers, and an
 * unreadable password file; KBV_EIO when the file cannot be read. */
int kbv_config_load(const char *path, struct kbv_config **out);
void kbv_config_free(struct kbv_config *c);

/* The source named `name`, or NULL. */
const struct kbv_source_cfg *kbv_config_source(const struct kbv_config *c, const char *name);
const char *kbv_source_type_name(int type);
/* A maximum age: "90s", "30m", "26h" (also "26"), "2d", "1w". 0, or -1 when it is not one. */
int kbv_age_parse(const char *s, long long *secs);
/* yes/true/on/1 -> 1, no/false/off/0 and NULL -> 0, anything else -> -1. */
int kbv_config_bool(const char *v);

#endif
