#include "kbv/config.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/snapshot.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct parse {
	struct kbv_config *c;
	FILE *f;
	int line;                /* lines read so far: the handler sees the latest */
	int continued;           /* that line was indented: a continuation of the last value */
	char err[512];           /* first error found by the handler... */
	int failed;
	int err_line;            /* ...and its line */
	char section[128];       /* current section as written */
	int long_line, max_line; /* the first line too long for libinih's buffer, and the limit */
	struct kbv_source_cfg *src; /* current [source], or NULL */
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
	if (!p->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err, sizeof p->err, fmt, ap);
		va_end(ap);
		p->failed = 1;
		p->err_line = p->line;
	}
	return 0; /* tells inih this line is an error; it returns the first such line */
}

static int set(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst != NULL;
}

static int retention_key(struct parse *p, const char *key, const char *value)
{
	static const struct {
		const char *key;
		size_t off;
	} ints[] = {
		{ "keep-last", offsetof(struct kbv_policy, last) },     { "keep-hourly", offsetof(struct kbv_policy, hourly) },
		{ "keep-daily", offsetof(struct kbv_policy, daily) },   { "keep-weekly", offsetof(struct kbv_policy, weekly) },
		{ "keep-monthly", offsetof(struct kbv_policy, monthly) }, { "keep-yearly", offsetof(struct kbv_policy, yearly) },
	};
	p->c->has_retention = 1;
	for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
		if (strcmp(key, ints[i].key))
			continue;
		char *end;
		long v = strtol(value, &end, 10);
		if (!*value || *end || v < 0 || v > 1000000)
			return fail(p, "%s must be a whole number, not '%s'", key, value);
		*(int *)((char *)&p->c->retention + ints[i].off) = (int)v;
		return 1;
	}
	if (!strcmp(key, "keep-within")) {
		if (kbv_duration_parse(value, &p->c->retention.within) < 0)
			return fail(p, "keep-within: '%s' is not a duration (e.g. 2d, 36h, 1y6m)", value);
		return 1;
	}
	return fail(p, "unknown key '%s' in [retention]", key);
}

int kbv_age_parse(const char *s, long long *secs)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || v <= 0 || errno || v > 100LL * 365 * 86400)
		return -1;
	long long mul = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") || !*end ? 3600
		      : !strcmp(end, "d") ? 86400 : !strcmp(end, "w") ? 604800 : -1;
	if (mul < 0)
		return -1;
	*secs = v * mul;
	return 0;
}

/* The key `name` of a source of type `type`, as its kind registers it, or NULL. */
static const struct kbv_source_key *source_key(int type, const char *name)
{
	const struct kbv_source_kind *k = kbv_source_kind((enum kbv_source_type)type);
	for (const struct kbv_source_key *sk = k ? k->keys : NULL; sk && sk->name; sk++)
		if (!strcmp(sk->name, name))
			return sk;
	return NULL;
}

/* Does some kind have the key `name` (for "does not apply" rather than "unknown")? */
static int any_kind_has(const char *name)
{
	for (int t = KBV_SOURCE_POSTGRES; t <= KBV_SOURCE_PATH; t++)
		if (source_key(t, name))
			return 1;
	return 0;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	struct kbv_config *c = p->c;
	if (p->failed)
		return 1; /* report only the first error */
	if (!*section)
		return fail(p, "'%s' is outside any section (start with [repository], [source NAME], ...)", key);
	if (strcmp(section, p->section) != 0) {
		/* A new section. Debian's libinih does not call the handler for a section header,
		 * so a section with no keys at all is never seen (and has nothing to check). */
		snprintf(p->section, sizeof p->section, "%s", section);
		p->src = NULL;
		if (!strncmp(section, "source ", 7)) {
			const char *name = section + 7;
			while (*name == ' ')
				name++;
			if (!kbv_source_name_ok(name))
				return fail(p, "[%s]: a source name is 1 to 64 letters, digits, '.', '_' or '-'", section);
			if (kbv_config_source(c, name))
				return fail(p, "source '%s' is defined twice", name);
			struct kbv_source_cfg *ns = realloc(c->sources, (c->nsources + 1) * sizeof *ns);
			if (!ns)
				return fail(p, "out of memory");
			c->sources = ns;
			p->src = &c->sources[c->nsources++];
			memset(p->src, 0, sizeof *p->src);
			p->src->type = -1;
			p->src->line = p->line;
			if (!set(&p->src->name, name))
				return fail(p, "out of memory");
		} else if (strcmp(section, "repository") && strcmp(section, "drill") && strcmp(section, "retention") &&
			   strcmp(section, "monitor")) {
			return fail(p, "unknown section [%s] (repository, source NAME, drill, retention, monitor)", section);
		}
	}
	if (!strncmp(section, "source ", 7)) {
		struct kbv_source_cfg *s = p->src;
		if (!s)
			return 1;
		if (!strcmp(key, "type")) {
			if (s->type >= 0) /* inih reports no section headers: a repeated [source x] looks like this */
				return fail(p, "[source %s] is defined twice, or sets 'type' twice", s->name);
			const struct kbv_source_kind *k = kbv_source_kind_named(value);
			if (!k) {
				char names[128];
				kbv_source_kind_list(names, sizeof names);
				return fail(p, "unknown source type '%s' (%s)", value, names);
			}
			s->type = (int)k->type;
			return 1;
		}
		if (s->type < 0)
			return fail(p, "'type' must come first in [source %s]", s->name);
		const struct kbv_source_key *sk = source_key(s->type, key);
		if (!sk) {
			if (any_kind_has(key))
				return fail(p, "key '%s' does not apply to a %s source", key, kbv_source_type_name(s->type));
			return fail(p, "unknown key '%s' in [source %s]", key, s->name);
		}
		char **dst = (char **)((char *)s + sk->off);
		if (*dst && p->continued) { /* an indented line continues the value */
			size_t n = strlen(*dst) + strlen(value) + 2;
			char *joined = malloc(n);
			if (!joined)
				return fail(p, "out of memory");
			snprintf(joined, n, "%s %s", *dst, value);
			free(*dst);
			*dst = joined;
			return 1;
		}
		if (*dst)
			return fail(p, "'%s' is set twice in [source %s]", key, s->name);
		return set(dst, value) ? 1 : fail(p, "out of memory");
	}
	if (!strcmp(section, "repository")) {
		if (!strcmp(key, "path"))
			return set(&c->repo_path, value) ? 1 : fail(p, "out of memory");
		if (!strcmp(key, "password-file") || !strcmp(key, "copy-to-password-file")) {
			if (access(value, R_OK) != 0)
				return fail(p, "password file '%s' is not readable: %s", value, strerror(errno));
			char **dst = !strcmp(key, "password-file") ? &c->password_file : &c->copy_to_password_file;
			return set(dst, value) ? 1 : fail(p, "out of memory");
		}
		if (!strcmp(key, "s3-region"))
			return set(&c->s3_region, value) ? 1 : fail(p, "out of memory");
		if (!strcmp(key, "s3-connections")) {
			long n;
			if (kbv_parse_long(value, 1, 32, &n) < 0)
				return fail(p, "s3-connections must be a number from 1 to 32, not '%s'", value);
			c->s3_connections = (int)n;
			return 1;
		}
		if (!strcmp(key, "copy-to"))
			return set(&c->copy_to, value) ? 1 : fail(p, "out of memory");
		if (!strcmp(key, "s3-credentials-file") || !strcmp(key, "s3-ca-file")) {
			if (access(value, R_OK) != 0)
				return fail(p, "%s '%s' is not readable: %s", key, value, strerror(errno));
			char **dst = !strcmp(key, "s3-credentials-file") ? &c->s3_credentials_file : &c->s3_ca_file;
			return set(dst, value) ? 1 : fail(p, "out of memory");
		}
		return fail(p, "unknown key '%s' in [repository]", key);
	}
	if (!strcmp(section, "drill")) {
		if (!strcmp(key, "postgres-dsn"))
			return set(&c->drill_postgres_dsn, value) ? 1 : fail(p, "out of memory");
		return fail(p, "unknown key '%s' in [drill]", key);
	}
	if (!strcmp(section, "retention"))
		return retention_key(p, key, value);
	/* [monitor] */
	char **dst = !strcmp(key, "max-age")        ? &c->max_age
		     : !strcmp(key, "metrics-file") ? &c->metrics_file
		     : !strcmp(key, "ping-url")     ? &c->ping_url
		     : !strcmp(key, "log-file")     ? &c->log_file
		     : !strcmp(key, "ping-timeout") ? &c->ping_timeout
						    : NULL;
	if (!dst)
		return fail(p, "unknown key '%s' in [monitor]", key);
	long t;
	if (dst == &c->ping_timeout) {
		if (kbv_parse_long(value, 1, 600, &t) < 0)
			return fail(p, "ping-timeout must be seconds from 1 to 600, not '%s'", value);
	}
	if (dst == &c->max_age) {
		long long secs;
		if (kbv_age_parse(value, &secs) < 0)
			return fail(p, "max-age must be a duration (90s, 30m, 26h, 2d, 1w), not '%s'", value);
	}
	if (dst == &c->ping_url && strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
		return fail(p, "ping-url must be an http:// or https:// URL");
	return set(dst, value) ? 1 : fail(p, "out of memory");
}

/* Line reader for ini_parse_stream: counts lines so errors can name them. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *r = fgets(str, num, p->f);
	if (r) {
		p->line++;
		p->continued = str[0] == ' ' || str[0] == '\t';
		size_t len = strlen(str);
		if (len == (size_t)num - 1 && str[len - 1] != '\n') {
			/* Longer than libinih's line buffer: refused below, by line; the rest of
			 * the physical line is dropped so line numbers stay right. */
			int ch;
			if (!p->long_line) {
				p->long_line = p->line;
				p->max_line = num - 2;
			}
			while ((ch = fgetc(p->f)) != EOF && ch != '\n')
				;
		}
		/* An inline comment starts with '#' after white space, as one with ';' does in
		 * libinih: "max-age = 26h  # for status" is "26h" for every command. */
		for (char *h = str + 1; (h = strchr(h, '#')) != NULL; h++)
			if (h[-1] == ' ' || h[-1] == '\t') {
				h[0] = '\n';
				h[1] = 0;
				break;
			}
	}
	return r;
}

int kbv_config_find(const char *explicit_path, char **path)
{
	*path = NULL;
	const char *cand[] = { explicit_path, getenv("KBVAULT_CONFIG"), "kbvault.conf", "/etc/kbvault/kbvault.conf" };
	for (int i = 0; i < 4; i++) {
		if (!cand[i] || !*cand[i])
			continue;
		if (access(cand[i], F_OK) != 0) {
			if (i < 2)
				return kbv_error(KBV_ENOTFOUND, "config file '%s' does not exist", cand[i]);
			continue;
		}
		*path = strdup(cand[i]);
		return *path ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
	}
	return 0;
}

int kbv_config_load(const char *path, struct kbv_config **out)
{
	struct kbv_config *c = calloc(1, sizeof *c);
	struct parse p = { .c = c };
	int rc = 0;
	if (!c || !(c->file = strdup(path))) {
		free(c);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	p.f = fopen(path, "r");
	if (!p.f) {
		rc = kbv_error(KBV_EIO, "cannot read config file '%s': %s", path, strerror(errno));
		goto out;
	}
	int line = ini_parse_stream(read_line, &p, handler, &p);
	fclose(p.f);
	if (line < 0) {
		rc = kbv_error(KBV_EIO, "cannot read config file '%s'", path);
		goto out;
	}
	if (p.long_line && (line == 0 || p.long_line <= line)) {
		rc = kbv_error(KBV_EINVAL, "%s:%d: a line longer than %d characters; continue a long value on indented lines",
			       path, p.long_line, p.max_line);
		goto out;
	}
	if (line > 0) {
		/* inih returns the first bad line; if that is not the handler's, it is a syntax
		 * error (a missing ']', a line without '='). */
		if (p.failed && p.err_line == line)
			rc = kbv_error(KBV_EINVAL, "%s:%d: %s", path, line, p.err);
		else
			rc = kbv_error(KBV_EINVAL, "%s:%d: syntax error (expected [section] or key = value)", path, line);
		goto out;
	}
	/* Whole-section checks, reported at the section header's line. */
	for (size_t i = 0; i < c->nsources; i++) {
		struct kbv_source_cfg *s = &c->sources[i];
		if (s->type < 0) {
			rc = kbv_error(KBV_EINVAL, "%s:%d: [source %s] has no type", path, s->line, s->name);
			goto out;
		}
		const struct kbv_source_kind *k = kbv_source_kind((enum kbv_source_type)s->type);
		for (const struct kbv_source_key *sk = k->keys; sk->name; sk++)
			if (sk->required && !*(char **)((char *)s + sk->off)) {
				rc = kbv_error(KBV_EINVAL, "%s:%d: [source %s] (%s) needs '%s'", path, s->line, s->name,
					       k->name, sk->name);
				goto out;
			}
		char msg[512];
		if (k->check && k->check(s, msg, sizeof msg) < 0) {
			rc = kbv_error(KBV_EINVAL, "%s:%d: [source %s] %s", path, s->line, s->name, msg);
			goto out;
		}
	}
	*out = c;
	c = NULL;
out:
	kbv_config_free(c);
	return rc;
}

const struct kbv_source_cfg *kbv_config_source(const struct kbv_config *c, const char *name)
{
	for (size_t i = 0; i < c->nsources; i++)
		if (!strcmp(c->sources[i].name, name))
			return &c->sources[i];
	return NULL;
}

void kbv_config_free(struct kbv_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsources; i++) {
		struct kbv_source_cfg *s = &c->sources[i];
		free(s->name);
		const struct kbv_source_kind *k = kbv_source_kind((enum kbv_source_type)s->type);
		for (const struct kbv_source_key *sk = k ? k->keys : NULL; sk && sk->name; sk++)
			free(*(char **)((char *)s + sk->off));
	}
	free(c->sources);
	free(c->file);
	free(c->repo_path);
	free(c->password_file);
	free(c->s3_region);
	free(c->s3_credentials_file);
	free(c->s3_ca_file);
	free(c->copy_to);
	free(c->copy_to_password_file);
	free(c->drill_postgres_dsn);
	free(c->max_age);
	free(c->metrics_file);
	free(c->ping_url);
	free(c->log_file);
	free(c->ping_timeout);
	free(c);
}
