/* A configured source: one [source NAME] section of kbvault.conf, as the parser
 * (src/config/config.c) fills it from the keys its kind registers (kinds.h). */
#ifndef KBV_SOURCE_H
#define KBV_SOURCE_H

#include <stddef.h>

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

/* A key a kind accepts in its [source] section: its name in the file, where its value goes
 * (offsetof a `char *` field of struct kbv_source_cfg) and whether the kind needs it. */
struct kbv_source_key {
	const char *name;
	size_t off;
	int required;
};
#define KBV_SOURCE_KEY(name, field, required) { name, offsetof(struct kbv_source_cfg, field), required }

#endif
