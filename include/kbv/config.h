/* The configuration file (INI, parsed with libinih): repository, sources, drill, retention
 * and monitoring settings. Every error is one line naming file and line. */
#ifndef KBV_CONFIG_H
#define KBV_CONFIG_H

#include <stddef.h>

#include "kbv/retention.h"
#include "kbv/source.h"

struct kbv_config {
	char *file;
	char *repo_path;        /* [repository] path */
	char *password_file;    /* [repository] password-file */
	char *s3_region, *s3_credentials_file, *s3_ca_file; /* [repository] s3-*: object storage */
	char *copy_to, *copy_to_password_file; /* [repository] copy-to: filled after each snapshot */
	int s3_connections;                     /* [repository] s3-connections; 0: the default */
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
/* A maximum age: "90s", "30m", "26h" (also "26"), "2d", "1w". 0, or -1 when it is not one. */
int kbv_age_parse(const char *s, long long *secs);

#endif
