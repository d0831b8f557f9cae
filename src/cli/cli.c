#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/snapshot.h"

int cli_load_config(void)
{
	static int result;
	char *path = NULL;
	int rc;
	if (cli.cfg_loaded)
		return result; /* reported the first time */
	cli.cfg_loaded = 1;
	if ((rc = kbv_config_find(cli.config_path, &path)) < 0)
		return result = cli_fail(KBV_EINVAL);
	if (path)
		rc = kbv_config_load(path, &cli.cfg);
	free(path);
	if (rc < 0)
		return result = cli_fail(rc == KBV_EIO ? rc : KBV_EINVAL);
	if (cli.cfg && cli.cfg->log_file && (rc = cli_log_open(cli.cfg->log_file)) < 0)
		cli_log(CLI_WARN, "cannot open log file '%s' ([monitor] log-file): %s; logging to stderr only",
			cli.cfg->log_file, strerror(-rc));
	return 0;
}

int cli_global_option(int c, const char *arg, const char *cmd)
{
	switch (c) {
	case 'c': cli.config_path = arg; return 1;
	case 'r': cli.repo = arg; return 1;
	case CLI_OPT_PASSWORD_FILE: cli.password_file = arg; return 1;
	case 'q': cli.quiet = 1; return 1;
	case CLI_OPT_JSON: cli.json = 1; return 1;
	case 'v': cli.verbose++; return 1;
	case CLI_OPT_LOCK_WAIT:
		if (cli_lock_wait(arg) != 0)
			exit(EXIT_USAGE);
		return 1;
	case 'h': cli_help(cmd); exit(EXIT_OK);
	}
	return 0;
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case KBV_OK: return EXIT_OK;
	case KBV_EINVAL: return EXIT_USAGE;
	case KBV_ENOREPO:
	case KBV_EVERSION: return EXIT_NOREPO;
	case KBV_EAUTH: return EXIT_PASSWORD;
	case KBV_ECORRUPT: return EXIT_CORRUPT;
	case KBV_ELOCKED: return EXIT_LOCKED;
	case KBV_ESOURCE: return EXIT_SOURCE;
	default: return EXIT_FAIL;
	}
}

int cli_fail(int rc)
{
	cli_log(CLI_ERROR, "%s", kbv_errmsg());
	return cli_exit_code(rc);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cli_log(CLI_ERROR, "%s (see 'kbvault help %s')", msg, cmd);
	return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char **argv)
{
	/* getopt_long (opterr = 0) has stepped past the argument it refused. */
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	return cli_usage(cmd, "'%s' is not an option of %s, or its value is missing", arg, cmd);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vlog(CLI_WARN, fmt, ap);
	va_end(ap);
}

const char *cli_repo_path(void)
{
	static char def[PATH_MAX];
	if (cli.repo)
		return cli.repo;
	const char *env = getenv("KBVAULT_REPO");
	if (env && *env)
		return env;
	if (cli.cfg && cli.cfg->repo_path)
		return cli.cfg->repo_path;
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	if (xdg && *xdg)
		snprintf(def, sizeof def, "%s/kbvault/repo", xdg);
	else
		snprintf(def, sizeof def, "%s/.local/share/kbvault/repo", home && *home ? home : ".");
	return def;
}

int cli_password_file(const char *path, char **pw, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		cli_log(CLI_ERROR, "cannot read password file '%s': %s", path, strerror(errno));
		return EXIT_PASSWORD;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		cli_log(CLI_WARN, "password file '%s' can be read by %s (mode %04o): 'chmod 600 %s'", path,
			st.st_mode & 07 ? "every user" : "its group", (unsigned)(st.st_mode & 07777), path);
	char *buf = sodium_malloc(4096);
	if (!buf) {
		close(fd);
		cli_log(CLI_ERROR, "out of secure memory");
		return EXIT_FAIL;
	}
	size_t n = 0;
	ssize_t r;
	while (n < 4095 && (r = read(fd, buf + n, 4095 - n)) > 0)
		n += (size_t)r;
	close(fd);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	if (!n) {
		sodium_free(buf);
		cli_log(CLI_ERROR, "password file '%s' is empty", path);
		return EXIT_PASSWORD;
	}
	*pw = buf;
	*len = n;
	return 0;
}

static int prompt(int tty, const char *text, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	if (write(tty, text, strlen(text)) < 0)
		return -1;
	tcgetattr(tty, &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(tty, TCSAFLUSH, &quiet);
	size_t n = 0;
	char c;
	while (n + 1 < cap && read(tty, &c, 1) == 1 && c != '\n')
		buf[n++] = c;
	buf[n] = 0;
	tcsetattr(tty, TCSAFLUSH, &old);
	if (write(tty, "\n", 1) < 0)
		return -1;
	*len = n;
	return 0;
}

/* KBVAULT_PASSWORD, taken out of the environment at start-up (cli_take_env_secrets) so no
 * child process (pg_dump, psql, dump commands, hooks) ever receives it. */
static char *env_password;

void cli_take_env_secrets(void)
{
	const char *v = getenv("KBVAULT_PASSWORD");
	if (v) {
		size_t n = strlen(v);
		env_password = sodium_malloc(n + 1);
		if (env_password)
			memcpy(env_password, v, n + 1);
		/* Overwrite the value in place (ps e, /proc/PID/environ) before removing it. */
		sodium_memzero((char *)v, n);
		unsetenv("KBVAULT_PASSWORD");
	}
}

static int tty_password(const char *label, int confirm, const char *none, char **pw, size_t *len);

int cli_password(int confirm, char **pw, size_t *len)
{
	const char *file = cli.password_file ? cli.password_file : getenv("KBVAULT_PASSWORD_FILE");
	if (file && *file)
		return cli_password_file(file, pw, len);
	const char *env = env_password;
	if (env && *env) {
		*len = strlen(env);
		*pw = sodium_malloc(*len + 1);
		if (!*pw)
			return EXIT_FAIL;
		memcpy(*pw, env, *len + 1);
		return 0;
	}
	if (cli.cfg && cli.cfg->password_file)
		return cli_password_file(cli.cfg->password_file, pw, len);
	return tty_password("repository password: ", confirm,
			    "the repository is encrypted and no password was given: use --password-file, "
			    "KBVAULT_PASSWORD_FILE or KBVAULT_PASSWORD",
			    pw, len);
}

int cli_new_password(const char *file, char **pw, size_t *len)
{
	if (!file || !*file)
		file = getenv("KBVAULT_NEW_PASSWORD_FILE");
	if (file && *file)
		return cli_password_file(file, pw, len);
	return tty_password("new password: ", 1,
			    "no new password was given: use --new-password-file or KBVAULT_NEW_PASSWORD_FILE", pw, len);
}

/* A password typed on the terminal (twice when confirm); `none` is the error without one. */
static int tty_password(const char *label, int confirm, const char *none, char **pw, size_t *len)
{
	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (tty < 0) {
		cli_log(CLI_ERROR, "%s", none);
		return EXIT_PASSWORD;
	}
	char *a = sodium_malloc(1024), *b = sodium_malloc(1024);
	size_t la = 0, lb = 0;
	int rc = EXIT_PASSWORD;
	if (a && b && prompt(tty, label, a, 1024, &la) == 0 && la &&
	    (!confirm || (prompt(tty, "enter it again: ", b, 1024, &lb) == 0 && la == lb && !memcmp(a, b, la)))) {
		*pw = a;
		*len = la;
		a = NULL;
		rc = 0;
	} else {
		cli_log(CLI_ERROR, "%s", la ? "the passwords differ" : "empty password");
	}
	close(tty);
	if (a)
		sodium_free(a);
	if (b)
		sodium_free(b);
	return rc;
}

void cli_password_free(char *pw)
{
	if (pw)
		sodium_free(pw);
}

static void lock_waiting(void *arg, const char *holder)
{
	(void)arg;
	cli_log(CLI_WARN, "the repository is locked by %s; waiting up to %.0f s for it (--lock-wait)", holder,
		cli.lock_wait);
}

int cli_lock_wait(const char *arg)
{
	long long secs = 0;
	/* "0", or a number with its unit (a bare number would read as hours in kbv_age_parse) */
	size_t len = strlen(arg);
	if (strcmp(arg, "0") && (!len || isdigit((unsigned char)arg[len - 1]) || kbv_age_parse(arg, &secs) < 0)) {
		cli_log(CLI_ERROR, "--lock-wait takes a duration such as 0, 30s, 10m or 1h, not '%s'", arg);
		return EXIT_USAGE;
	}
	cli.lock_wait = (double)secs;
	return 0;
}

int cli_open(enum kbv_lock lock, int unlock, struct kbv_repo **out)
{
	struct kbv_repo *r;
	int rc = cli_load_config();
	if (rc)
		return rc;
	struct kbv_lock_wait w = { cli.lock_wait, lock_waiting, NULL };
	if ((rc = cli_remote_setup(cli_repo_path())) < 0)
		return cli_fail(rc);
	rc = kbv_repo_open_wait(cli_repo_path(), lock, &w, &r);
	if (rc < 0)
		return cli_fail(rc);
	if (unlock) {
		char *pw = NULL;
		size_t len = 0;
		if (kbv_repo_needs_password(r) && (rc = cli_password(0, &pw, &len)) != 0) {
			kbv_repo_close(r);
			return rc;
		}
		for (int k = 0; k < KBV_OBJ_KINDS; k++)
			if (unlock & CLI_LIST(k))
				kbv_repo_will_list(r, (enum kbv_obj)k);
		rc = kbv_repo_unlock(r, pw, len);
		cli_password_free(pw);
		if (rc < 0) {
			kbv_repo_close(r);
			return cli_fail(rc);
		}
		cli_remote_report(r);
	}
	*out = r;
	return 0;
}

int cli_parse_decimal(const char *s, double *v, const char **end)
{
	size_t n = strspn(s, "0123456789.");
	const char *dot = memchr(s, '.', n);
	if (!n || (n == 1 && dot) || (dot && memchr(dot + 1, '.', n - (size_t)(dot - s) - 1)))
		return -1;
	char *e;
	*v = strtod(s, &e);
	if (e != s + n) /* strtod went on: an exponent or hex digits */
		return -1;
	*end = e;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	double v;
	uint64_t mul = 1;
	if (cli_parse_decimal(s, &v, &end) < 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	}
	if (mul > 1 && end[0] == 'i' && end[1] == 'B')
		end += 2;
	if (*end || v * (double)mul >= 18446744073709551616.0) /* 2^64: the cast would be undefined */
		return -1;
	*out = (uint64_t)(v * (double)mul);
	return 0;
}

const char *cli_printable(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < cap; p++) {
		if (*p < 0x20 || *p == 0x7f)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = 0;
	return out;
}

void cli_bytes(uint64_t n, char *out, size_t cap)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)n);
	else
		snprintf(out, cap, "%.2f %s", v, unit[u]);
}

void cli_time(int64_t t, int32_t tzoff, char *out, size_t cap)
{
	time_t lt = (time_t)(t + tzoff);
	struct tm tm;
	gmtime_r(&lt, &tm);
	int off = tzoff < 0 ? -tzoff : tzoff;
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, tzoff < 0 ? '-' : '+', off / 3600, off / 60 % 60);
}



int cli_show_progress(void)
{
	return !cli.quiet && isatty(STDERR_FILENO);
}

void cli_progress_init(struct cli_progress *p, const char *verb)
{
	p->verb = verb;
	p->start = p->last = cli_now();
	p->shown = 0;
}

void cli_progress_bytes(struct cli_progress *p, uint64_t done, uint64_t total, uint64_t fresh, int force)
{
	if (!cli_show_progress())
		return;
	double now = cli_now();
	if (!force && now - p->last < 0.25)
		return;
	p->last = now;
	char d[32], t[32], f[32];
	cli_bytes(done, d, sizeof d);
	double el = now - p->start;
	double rate = el > 0 ? (double)done / el / (1 << 20) : 0;
	if (total) {
		cli_bytes(total, t, sizeof t);
		fprintf(stderr, "\r\033[K%s %s of %s (%.0f%%), %.1f MiB/s", p->verb, d, t, 100.0 * (double)done / (double)total,
			rate);
	} else {
		cli_bytes(fresh, f, sizeof f);
		fprintf(stderr, "\r\033[K%s %s, %.1f MiB/s, %s new, dedup x%.2f", p->verb, d, rate, f,
			fresh ? (double)done / (double)fresh : 0.0);
	}
	p->shown = 1;
	cli_log_progress_shown(1);
}

void cli_progress_done(struct cli_progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r\033[K");
	p->shown = 0;
	cli_log_progress_shown(0);
}

int cli_list_snapshots(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n, struct kbv_snapshot_damage **bad,
		       size_t *nbad)
{
	int rc = kbv_snapshot_list_damaged(r, list, n, bad, nbad);
	for (size_t i = 0; rc == 0 && i < *nbad; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex((*bad)[i].id, KBV_ID_BYTES, hex);
		cli_log(CLI_WARN, "snapshot %.8s is damaged and cannot be restored (%s); the others are not affected: "
				  "'kbvault forget %.8s' removes it (docs/recovery.md)",
			hex, (*bad)[i].msg, hex);
	}
	return rc;
}

int cli_damaged_spec(const struct kbv_snapshot_damage *bad, size_t nbad, const char *spec)
{
	const struct kbv_snapshot_damage *d = kbv_snapshot_damage_find(bad, nbad, spec);
	char hex[2 * KBV_ID_BYTES + 1];
	if (!d)
		return 0;
	kbv_hex(d->id, KBV_ID_BYTES, hex);
	return kbv_error(KBV_ECORRUPT, "snapshot %.8s is damaged: %s", hex, d->msg);
}
