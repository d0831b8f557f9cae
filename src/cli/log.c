/* The event log: one line per event, "TIME LEVEL kbvault CMD[PID]: message", to stderr and,
 * when [monitor] log-file is set, appended to that file. Every line passes through
 * log_redact() first, so a password that reaches a message (a conninfo in a libpq error, a
 * URI with user:password@) is masked in every sink. The last lines are also kept in memory
 * for the failure ping's body (monitor.c). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kbv/proc.h"

#define LOG_TAIL 8192 /* bytes of recent lines kept for the failure ping */

static struct {
	pthread_mutex_t mu;
	const char *command;
	int fd; /* log file, -1 without */
	int progress_shown;
	char tail[LOG_TAIL];
	size_t tail_len;
} lg = { .mu = PTHREAD_MUTEX_INITIALIZER, .command = "", .fd = -1 };

static const char *const level_name[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void cli_log_command(const char *command)
{
	lg.command = command;
}

int cli_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = fd;
	return 0;
}

void cli_log_progress_shown(int shown)
{
	lg.progress_shown = shown;
}

/* Copy `in` to `out` (capacity cap) with the value after "password =" (conninfo keywords, PGPASSWORD=..., quoted values included) and the password of
 * "scheme://user:password@host" replaced by "***". */
void cli_log_redact(const char *in, char *out, size_t cap)
{
	size_t o = 0;
#define PUT(c)                       \
	do {                         \
		if (o + 1 < cap)     \
			out[o++] = (c); \
	} while (0)
	for (const char *p = in; *p;) {
		const char *v = NULL;
		if (!strncasecmp(p, "password", 8)) {
			const char *q = p + 8;
			while (*q == ' ')
				q++;
			if (*q == '=') {
				q++;
				while (*q == ' ')
					q++;
				v = q;
			}
		} else if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
			const char *at = p + 3, *colon = NULL;
			for (; *at && *at != '@' && *at != '/' && !isspace((unsigned char)*at) && *at != '\'' && *at != '"'; at++)
				if (*at == ':' && !colon)
					colon = at;
			if (*at == '@' && colon) {
				while (p <= colon)
					PUT(*p++);
				for (int k = 0; k < 3; k++)
					PUT('*');
				p = at;
				continue;
			}
		}
		if (!v || !*v) {
			PUT(*p++);
			continue;
		}
		while (p < v)
			PUT(*p++);
		if (*p == '\'' || *p == '"') {
			char qc = *p++;
			for (; *p && *p != qc; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p)
				p++;
		} else {
			while (*p && !isspace((unsigned char)*p) && *p != '\'' && *p != '"' && *p != ',' && *p != ';' &&
			       *p != '&')
				p++;
		}
		for (int k = 0; k < 3; k++)
			PUT('*');
	}
#undef PUT
	if (cap)
		out[o] = 0;
}

static void keep_tail(const char *line, size_t n)
{
	if (n >= LOG_TAIL) {
		line += n - LOG_TAIL + 1;
		n = LOG_TAIL - 1;
	}
	if (lg.tail_len + n > LOG_TAIL - 1) {
		/* drop whole lines from the front */
		size_t drop = lg.tail_len + n - (LOG_TAIL - 1);
		char *nl = memchr(lg.tail + drop, '\n', lg.tail_len - drop);
		drop = nl ? (size_t)(nl - lg.tail) + 1 : lg.tail_len;
		memmove(lg.tail, lg.tail + drop, lg.tail_len - drop);
		lg.tail_len -= drop;
	}
	memcpy(lg.tail + lg.tail_len, line, n);
	lg.tail_len += n;
	lg.tail[lg.tail_len] = 0;
}

const char *cli_log_tail(void)
{
	return lg.tail;
}

/* Not kbv_write_full(): a failed log write must not replace the library error (kbv_errmsg())
 * that a caller may still read after logging it. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Threshold per sink: stderr shows warnings and errors, -v adds INFO, -vv DEBUG; the log
 * file takes INFO and up (DEBUG with -vv). */
static int stderr_min(void)
{
	return cli.verbose >= 2 ? CLI_DEBUG : cli.verbose == 1 ? CLI_INFO : CLI_WARN;
}

void cli_vlog(int level, const char *fmt, va_list ap)
{
	char raw[4096], msg[4096], line[4352], ts[40];
	vsnprintf(raw, sizeof raw, fmt, ap);
	for (char *p = raw; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = (p[1] ? ' ' : 0); /* one event, one line */
	cli_log_redact(raw, msg, sizeof msg);
	cli_utc_now(ts, sizeof ts);
	int n = snprintf(line, sizeof line, "%s %-5s kbvault %s[%ld]: %s\n", ts, level_name[level], lg.command,
			 (long)getpid(), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	pthread_mutex_lock(&lg.mu);
	if (level >= CLI_INFO)
		keep_tail(line, (size_t)n);
	if (lg.fd >= 0 && level >= (cli.verbose >= 2 ? CLI_DEBUG : CLI_INFO))
		write_all(lg.fd, line, (size_t)n);
	if (level >= stderr_min()) {
		if (lg.progress_shown)
			write_all(STDERR_FILENO, "\r\033[K", 4);
		write_all(STDERR_FILENO, line, (size_t)n);
	}
	pthread_mutex_unlock(&lg.mu);
}

void cli_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vlog(level, fmt, ap);
	va_end(ap);
}

/* ---- children's output ---- */

/* One relay per level: children's stderr is logged as WARN (it is where tools say what
 * went wrong), the standard output of hooks and load commands as INFO (psql's "CREATE
 * TABLE" of a passing drill is no warning). */
struct relay {
	int level;
	int rfd, wfd;
	pthread_t th;
	int running;
};
static struct relay relay_err = { CLI_WARN, -1, -1, 0, 0 }, relay_out = { CLI_INFO, -1, -1, 0, 0 };

static void *relay_main(void *arg)
{
	struct relay *rl = arg;
	char buf[2048];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(rl->rfd, buf + n, sizeof buf - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', n - (size_t)(start - buf)))) {
			*nl = 0;
			if (nl > start)
				cli_log(rl->level, "output: %s", start);
			start = nl + 1;
		}
		n -= (size_t)(start - buf);
		memmove(buf, start, n);
		if (n == sizeof buf - 1) { /* a very long line: log it in pieces */
			buf[n] = 0;
			cli_log(rl->level, "output: %s", buf);
			n = 0;
		}
	}
	if (n) {
		buf[n] = 0;
		cli_log(rl->level, "output: %s", buf);
	}
	return NULL;
}

static void relay_start(struct relay *rl)
{
	int p[2];
	if (rl->running || pipe2(p, O_CLOEXEC) != 0)
		return;
	rl->rfd = p[0];
	rl->wfd = p[1];
	if (pthread_create(&rl->th, NULL, relay_main, rl) != 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	rl->running = 1;
}

static void relay_end(struct relay *rl)
{
	if (!rl->running)
		return;
	close(rl->wfd);
	/* EOF comes when the last child holding the pipe exits; a daemon a hook left behind
	 * may hold it forever, so wait at most two seconds. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	if (pthread_timedjoin_np(rl->th, NULL, &ts) == 0)
		close(rl->rfd);
	else
		pthread_detach(rl->th);
	rl->running = 0;
}

void cli_log_capture_children(void)
{
	relay_start(&relay_err);
	relay_start(&relay_out);
	if (relay_err.running)
		kbv_cmd_set_stderr(relay_err.wfd);
	if (relay_out.running)
		kbv_cmd_set_stdout(relay_out.wfd);
}

void cli_log_capture_end(void)
{
	kbv_cmd_set_stderr(-1);
	kbv_cmd_set_stdout(-1);
	relay_end(&relay_err);
	relay_end(&relay_out);
}
