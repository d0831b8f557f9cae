/* Repositories on object storage: where the S3 credentials and options come from.
 * Environment first (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_DEFAULT_REGION or AWS_REGION), as AWS's own tools do, then the configuration's
 * [repository] s3-credentials-file (the AWS shared-credentials format; profile
 * $AWS_PROFILE or "default"), s3-region and s3-ca-file. The secret key and session token
 * are moved out of the environment at start-up so no child process receives them. */
#include <ini.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/backend.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/repo.h"

static char *env_secret, *env_token; /* sodium_malloc()ed copies */

static char *take(const char *name)
{
	const char *v = getenv(name);
	char *copy = NULL;
	if (!v)
		return NULL;
	size_t n = strlen(v);
	copy = sodium_malloc(n + 1);
	if (copy)
		memcpy(copy, v, n + 1);
	sodium_memzero((char *)v, n); /* ps e, /proc/PID/environ */
	unsetenv(name);
	return copy;
}

void cli_take_s3_secrets(void)
{
	env_secret = take("AWS_SECRET_ACCESS_KEY");
	env_token = take("AWS_SESSION_TOKEN");
}

/* One profile of an AWS shared-credentials file. */
struct creds {
	const char *profile;
	char *access, *secret, *token;
	int found;
};

static int creds_key(void *arg, const char *section, const char *key, const char *value)
{
	struct creds *c = arg;
	char **dst = NULL;
	/* "[default]" or "[NAME]"; config-file style "[profile NAME]" is accepted too */
	if (strcmp(section, c->profile) && !(strncmp(section, "profile ", 8) == 0 && !strcmp(section + 8, c->profile)))
		return 1;
	c->found = 1;
	if (!strcmp(key, "aws_access_key_id"))
		dst = &c->access;
	else if (!strcmp(key, "aws_secret_access_key"))
		dst = &c->secret;
	else if (!strcmp(key, "aws_session_token"))
		dst = &c->token;
	if (dst) {
		if (*dst) {
			sodium_memzero(*dst, strlen(*dst));
			free(*dst);
		}
		*dst = strdup(value);
		if (!*dst)
			return 0;
	}
	return 1;
}

static void wipe(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

int cli_remote_setup(const char *path)
{
	if (!kbv_s3_url_ok(path))
		return 0;
	const struct kbv_config *cfg = cli.cfg;
	const char *region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		region = getenv("AWS_REGION");
	if ((!region || !*region) && cfg)
		region = cfg->s3_region;
	struct creds c = { getenv("AWS_PROFILE") && *getenv("AWS_PROFILE") ? getenv("AWS_PROFILE") : "default", NULL,
			   NULL, NULL, 0 };
	const char *access = getenv("AWS_ACCESS_KEY_ID"), *secret = env_secret, *token = env_token;
	int rc = 0;
	if ((!access || !*access || !secret || !*secret) && cfg && cfg->s3_credentials_file) {
		int line = ini_parse(cfg->s3_credentials_file, creds_key, &c);
		if (line != 0) {
			rc = kbv_error(KBV_EINVAL, "s3-credentials-file '%s': %s", cfg->s3_credentials_file,
				       line < 0 ? "cannot be read" : "not in the AWS shared-credentials format");
			goto out;
		}
		if (!c.found || !c.access || !c.secret) {
			rc = kbv_error(KBV_EINVAL, "s3-credentials-file '%s' has no profile [%s] with "
						   "aws_access_key_id and aws_secret_access_key",
				       cfg->s3_credentials_file, c.profile);
			goto out;
		}
		access = c.access;
		secret = c.secret;
		token = c.token;
	}
	struct kbv_s3_opts o = { access, secret, token, region, cfg ? cfg->s3_ca_file : NULL,
				 cfg ? cfg->s3_connections : 0 };
	rc = kbv_repo_set_remote(&o, NULL);
out:
	wipe(c.access);
	wipe(c.secret);
	wipe(c.token);
	return rc;
}

void cli_remote_requests(void)
{
	struct kbv_be_requests q;
	kbv_s3_requests(&q);
	uint64_t total = 0;
	for (int i = 0; i < KBV_REQ_KINDS; i++)
		total += q.n[i];
	if (total)
		cli_log(CLI_INFO, "object storage requests: %llu GET, %llu PUT, %llu HEAD, %llu LIST, %llu DELETE (%llu of "
				  "them retries)",
			(unsigned long long)q.n[KBV_REQ_GET], (unsigned long long)q.n[KBV_REQ_PUT],
			(unsigned long long)q.n[KBV_REQ_HEAD], (unsigned long long)q.n[KBV_REQ_LIST],
			(unsigned long long)q.n[KBV_REQ_DELETE], (unsigned long long)q.retries);
}

void cli_remote_report(const struct kbv_repo *r)
{
	struct kbv_cache_report c;
	kbv_repo_cache_report(r, &c);
	if (c.from_index || c.from_trailers || c.dropped)
		cli_log(CLI_INFO,
			"cache of %s: %llu packs indexed from %llu index objects, %llu from pack trailers; %llu "
			"dropped (gone from the storage)",
			kbv_repo_path(r), (unsigned long long)c.from_index, (unsigned long long)c.index_objects,
			(unsigned long long)c.from_trailers, (unsigned long long)c.dropped);
	if (c.damaged)
		cli_log(CLI_WARN, "cache of %s: %llu packs could not be indexed (damaged trailer): run 'kbvault check'",
			kbv_repo_path(r), (unsigned long long)c.damaged);
	if (c.damaged_index)
		cli_log(CLI_WARN,
			"cache of %s: %llu index objects are damaged or of another version, '%s' the first (their "
			"packs were read from their trailers): 'kbvault repair index' replaces them",
			kbv_repo_path(r), (unsigned long long)c.damaged_index, c.damaged_index_name);
}
