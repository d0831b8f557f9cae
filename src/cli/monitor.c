/* Monitoring of a run of snapshot, gc or drill: the Prometheus textfile metrics
 * (format/metrics.md) and healthchecks.io-style pings ([monitor] ping-url). Neither may
 * change a run's outcome: their failures are logged as warnings and the exit status is the
 * command's own. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "kbv/check.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/gc.h"
#include "kbv/snapshot.h"
#include "kbv/wal.h"

/* ---- the metric families (format/metrics.md) ---- */

static const struct family {
	const char *name, *type, *help;
} families[] = {
	{ "kbvault_last_attempt_timestamp_seconds", "gauge", "Unix time the last attempt ended." },
	{ "kbvault_last_attempt_success", "gauge", "1 if the last attempt succeeded, else 0." },
	{ "kbvault_last_attempt_exit_code", "gauge", "Exit status of the last run." },
	{ "kbvault_last_success_timestamp_seconds", "gauge", "Unix time of the last successful attempt." },
	{ "kbvault_last_duration_seconds", "gauge", "Wall time of the last attempt in seconds." },
	{ "kbvault_errors_total", "counter", "Failed attempts." },
	{ "kbvault_snapshot_raw_bytes", "gauge", "Bytes read by the last successful snapshot." },
	{ "kbvault_snapshot_new_bytes", "gauge", "Bytes of the last successful snapshot not stored before." },
	{ "kbvault_snapshot_stored_bytes", "gauge", "Pack bytes the last successful snapshot added." },
	{ "kbvault_snapshot_dedup_ratio", "gauge", "Raw bytes over stored bytes of the last successful snapshot." },
	{ "kbvault_snapshot_chunks", "gauge", "Chunks of the last successful snapshot." },
	{ "kbvault_snapshot_new_chunks", "gauge", "Chunks the last successful snapshot stored new." },
	{ "kbvault_gc_removed_snapshots", "gauge", "Snapshots removed by the last successful gc." },
	{ "kbvault_gc_freed_bytes", "gauge", "Pack bytes freed by the last successful gc." },
	{ "kbvault_gc_condemned_packs", "gauge", "Packs the last successful gc left waiting in deletion plans." },
	{ "kbvault_repository_size_bytes", "gauge", "Bytes of all indexed packs." },
	{ "kbvault_repository_packs", "gauge", "Indexed packs." },
	{ "kbvault_repository_snapshots", "gauge", "Snapshots in the repository." },
	{ "kbvault_host_last_snapshot_timestamp_seconds", "gauge", "Unix time of each host's newest snapshot." },
	{ "kbvault_gc_lock_held", "gauge", "1 while a gc holds the repository's gc lock, else 0." },
	{ "kbvault_gc_lock_stale", "gauge", "1 when the gc lock is held but stale (a dead gc's), else 0." },
	{ "kbvault_object_lock_oldest_retention_timestamp_seconds", "gauge",
	  "Lowest Object Lock retain-until date among the repository's objects, as the last gc saw it." },
	{ "kbvault_wal_segments", "gauge", "WAL segments in the archive of each source." },
	{ "kbvault_wal_last_archived_timestamp_seconds", "gauge",
	  "Unix time (the storage's clock) the newest WAL segment of each source was archived." },
	{ "kbvault_wal_gaps", "gauge", "WAL segments missing from the archive of each source (recovery cannot pass a gap)." },
};
#define NFAMILIES (sizeof families / sizeof *families)

struct sample {
	char *key; /* name{labels}, as written */
	double v;
	int fam;
};
struct samples {
	struct sample *v;
	size_t n, cap;
};

struct attempt {
	char *source;
	int ok;
	double seconds;
};

static struct {
	const char *command;
	int active;
	double t0;
	char rid[40];
	struct samples set; /* measured by this run */
	struct attempt *att;
	size_t natt;
} run;

static int family_of(const char *key)
{
	size_t n = strcspn(key, "{ ");
	for (size_t f = 0; f < NFAMILIES; f++)
		if (strlen(families[f].name) == n && !strncmp(families[f].name, key, n))
			return (int)f;
	return -1;
}

static void escape_label(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	for (; *in && o + 3 < cap; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = 0;
}

/* "kbvault_<name>{command="...",source="..."}" with either label optional. */
static void make_key(const char *name, const char *command, const char *source, char *out, size_t cap)
{
	char src[256], labels[512] = "";
	if (command && source) {
		escape_label(source, src, sizeof src);
		snprintf(labels, sizeof labels, "{command=\"%s\",source=\"%s\"}", command, src);
	} else if (command) {
		snprintf(labels, sizeof labels, "{command=\"%s\"}", command);
	} else if (source) {
		escape_label(source, src, sizeof src);
		snprintf(labels, sizeof labels, "{source=\"%s\"}", src);
	}
	snprintf(out, cap, "kbvault_%s%s", name, labels);
}

static struct sample *find(struct samples *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].key, key))
			return &s->v[i];
	return NULL;
}

static int put(struct samples *s, const char *key, double v)
{
	struct sample *x = find(s, key);
	if (x) {
		x->v = v;
		return 0;
	}
	int fam = family_of(key);
	if (fam < 0)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 32;
		struct sample *nv = realloc(s->v, cap * sizeof *nv);
		if (!nv)
			return -1;
		s->v = nv;
		s->cap = cap;
	}
	if (!(s->v[s->n].key = strdup(key)))
		return -1;
	s->v[s->n].v = v;
	s->v[s->n].fam = fam;
	s->n++;
	return 0;
}

static void samples_free(struct samples *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static void set_metric(const char *name, const char *command, const char *source, double v)
{
	char key[768];
	make_key(name, command, source, key, sizeof key);
	if (put(&run.set, key, v) < 0)
		cli_log(CLI_WARN, "metrics: out of memory");
}

static void set_host_metric(const char *name, const char *host, double v)
{
	char h[256], key[768];
	escape_label(host, h, sizeof h);
	snprintf(key, sizeof key, "kbvault_%s{host=\"%s\"}", name, h);
	if (put(&run.set, key, v) < 0)
		cli_log(CLI_WARN, "metrics: out of memory");
}

void cli_run_metric(const char *name, const char *source, double v)
{
	if (run.active)
		set_metric(name, NULL, source, v);
}

void cli_run_repo(struct kbv_repo *r)
{
	struct kbv_repo_usage u;
	/* Only the metrics file shows these; without one they would cost listings (object
	 * storage: four requests) for nothing. */
	if (!run.active || !cli.cfg || !cli.cfg->metrics_file)
		return;
	if (kbv_repo_usage(r, &u) < 0) {
		cli_log(CLI_WARN, "metrics: %s", kbv_errmsg());
		return;
	}
	set_metric("repository_size_bytes", NULL, NULL, (double)u.pack_bytes);
	set_metric("repository_packs", NULL, NULL, (double)u.packs);
	set_metric("repository_snapshots", NULL, NULL, (double)u.snapshots);
	/* A shared repository: each host's newest snapshot, and who holds the gc lock. */
	struct kbv_snapshot **list = NULL;
	size_t n = 0;
	if (kbv_snapshot_list(r, &list, &n) < 0) {
		cli_log(CLI_WARN, "metrics: %s", kbv_errmsg());
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int newer = 0;
		for (size_t k = 0; k < n && !newer; k++)
			newer = k != i && !strcmp(list[k]->host, list[i]->host) &&
				(list[k]->time > list[i]->time || (list[k]->time == list[i]->time && k > i));
		if (!newer)
			set_host_metric("host_last_snapshot_timestamp_seconds", list[i]->host, (double)list[i]->time);
	}
	/* The WAL archive of each source that has one. */
	struct kbv_wal_summary *wal = NULL;
	size_t nwal = 0;
	if (kbv_wal_summarize(r, list, n, &wal, &nwal) < 0)
		cli_log(CLI_WARN, "metrics: %s", kbv_errmsg());
	for (size_t i = 0; i < nwal; i++) {
		set_metric("wal_segments", NULL, wal[i].source, (double)wal[i].segments);
		set_metric("wal_last_archived_timestamp_seconds", NULL, wal[i].source, (double)wal[i].last_time);
		set_metric("wal_gaps", NULL, wal[i].source, (double)wal[i].gaps);
	}
	free(wal);
	kbv_snapshot_list_free(list, n);
	struct kbv_gclock_info gl;
	if (kbv_gclock_info(r, &gl) < 0) {
		cli_log(CLI_WARN, "metrics: %s", kbv_errmsg());
		return;
	}
	set_metric("gc_lock_held", NULL, NULL, gl.held ? 1 : 0);
	set_metric("gc_lock_stale", NULL, NULL, gl.held && (gl.stale_in <= 0 || gl.dead) ? 1 : 0);
}

void cli_run_attempt(const char *source, int ok, double seconds)
{
	if (!run.active)
		return;
	for (size_t i = 0; i < run.natt; i++)
		if (!strcmp(run.att[i].source, source)) {
			run.att[i].ok = ok;
			run.att[i].seconds = seconds;
			return;
		}
	struct attempt *na = realloc(run.att, (run.natt + 1) * sizeof *na);
	if (!na || !(na[run.natt].source = strdup(source))) {
		if (na)
			run.att = na;
		cli_log(CLI_WARN, "metrics: out of memory");
		return;
	}
	run.att = na;
	run.att[run.natt].ok = ok;
	run.att[run.natt].seconds = seconds;
	run.natt++;
}

/* ---- the file ---- */

/* Read the previous file's samples. Returns 0, or -1 when it exists but does not parse. */
static int read_previous(const char *path, struct samples *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char line[2048];
	int rc = 0;
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		if (!n || line[0] == '#')
			continue;
		char *sp = strrchr(line, ' ');
		if (!sp || strncmp(line, "kbvault_", 8)) {
			rc = -1;
			break;
		}
		*sp = 0;
		char *end;
		double v = strtod(sp + 1, &end);
		if (end == sp + 1 || *end) {
			rc = -1;
			break;
		}
		if (put(out, line, v) < 0) {
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	return x->fam != y->fam ? x->fam - y->fam : strcmp(x->key, y->key);
}

static void format_value(double v, char *out, size_t cap)
{
	if (isinf(v))
		snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		snprintf(out, cap, "NaN");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(out, cap, "%.0f", v);
	else
		snprintf(out, cap, "%.15g", v); /* enough for a timestamp in ms */
}

/* The exposition text of all samples, families in table order. *out is malloc'd. */
static int render(struct samples *all, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	if (!f)
		return -1;
	qsort(all->v, all->n, sizeof *all->v, cmp_sample);
	int last = -1;
	for (size_t i = 0; i < all->n; i++) {
		const struct family *fm = &families[all->v[i].fam];
		char val[64];
		if (all->v[i].fam != last) {
			fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fm->name, fm->help, fm->name, fm->type);
			last = all->v[i].fam;
		}
		format_value(all->v[i].v, val, sizeof val);
		fprintf(f, "%s %s\n", all->v[i].key, val);
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* The attempt rows of the run (source NULL) or of one source. */
static int put_rows(struct samples *all, const char *src, int ok, double now, double secs)
{
	const char *cmd = run.command;
	char key[768];
	int fail = 0;
	make_key("errors_total", cmd, src, key, sizeof key);
	struct sample *prev = find(all, key);
	fail |= put(all, key, (prev ? prev->v : 0) + !ok);
	make_key("last_attempt_timestamp_seconds", cmd, src, key, sizeof key);
	fail |= put(all, key, now);
	make_key("last_attempt_success", cmd, src, key, sizeof key);
	fail |= put(all, key, ok);
	make_key("last_duration_seconds", cmd, src, key, sizeof key);
	fail |= put(all, key, secs);
	if (ok) {
		make_key("last_success_timestamp_seconds", cmd, src, key, sizeof key);
		fail |= put(all, key, now);
	}
	return fail;
}

static void write_metrics(const char *path, int code, double now, double secs)
{
	char lockpath[PATH_MAX], key[768];
	struct samples all = { 0 };
	snprintf(lockpath, sizeof lockpath, "%s.lock", path);
	int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
		cli_log(CLI_WARN, "metrics: cannot lock '%s': %s; metrics not written", lockpath, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return;
	}
	if (read_previous(path, &all) < 0) {
		cli_log(CLI_WARN, "metrics: '%s' is not a kbvault metrics file; replacing it", path);
		samples_free(&all);
	}
	/* The run's own rows (no source label), then each source's, then what it measured. */
	int fail = put_rows(&all, NULL, code == EXIT_OK, now, secs);
	for (size_t i = 0; i < run.natt; i++)
		fail |= put_rows(&all, run.att[i].source, run.att[i].ok, now, run.att[i].seconds);
	make_key("last_attempt_exit_code", run.command, NULL, key, sizeof key);
	fail |= put(&all, key, code);
	for (size_t i = 0; i < run.set.n; i++)
		fail |= put(&all, run.set.v[i].key, run.set.v[i].v);
	char *text = NULL;
	size_t len = 0;
	if (fail || render(&all, &text, &len) < 0)
		cli_log(CLI_WARN, "metrics: out of memory; '%s' not written", path);
	else if (kbv_write_replace(path, text, len, 0644) < 0)
		cli_log(CLI_WARN, "metrics: %s", kbv_errmsg());
	else
		cli_log(CLI_DEBUG, "metrics written to '%s'", path);
	free(text);
	samples_free(&all);
	close(lfd); /* releases the lock */
}

/* ---- pings ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* scheme://host[:port] of a ping URL: what a log line may show (the path is the secret). */
static void url_origin(const char *url, char *out, size_t cap)
{
	const char *s = strstr(url, "://");
	const char *h = s ? s + 3 : url;
	const char *at = strchr(h, '@'), *slash = strchr(h, '/');
	if (at && (!slash || at < slash))
		h = at + 1;
	size_t n = slash ? (size_t)(slash - h) : strlen(h);
	snprintf(out, cap, "%.*s%.*s", s ? (int)(s + 3 - url) : 0, url, (int)n, h);
}

static long ping_timeout(void)
{
	long t = 10; /* the configuration checked it: 1..600 */
	if (cli.cfg && cli.cfg->ping_timeout)
		kbv_parse_long(cli.cfg->ping_timeout, 1, 600, &t);
	return t;
}

/* POST `body` to ping-url + suffix (?rid=...). Three tries, 0.5 s and 1 s apart; connection
 * failures, timeouts and 5xx are retried, other statuses are not. */
static void ping(const char *suffix, const char *what, const char *body)
{
	const char *base = cli.cfg ? cli.cfg->ping_url : NULL;
	if (!base || !*base)
		return;
	static int curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
			cli_log(CLI_WARN, "ping (%s): libcurl failed to initialize", what);
			return;
		}
		curl_ready = 1;
	}
	char url[2048], origin[512], err[CURL_ERROR_SIZE] = "";
	/* The suffix goes after the path, before any query string the URL carries. */
	const char *q = strchr(base, '?');
	size_t bl = q ? (size_t)(q - base) : strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof url, "%.*s%s?%s%srid=%s", (int)bl, base, suffix, q ? q + 1 : "", q && q[1] ? "&" : "",
		 run.rid);
	url_origin(base, origin, sizeof origin);
	CURL *h = curl_easy_init();
	if (!h) {
		cli_log(CLI_WARN, "ping (%s) to %s: libcurl failed", what, origin);
		return;
	}
	long timeout = ping_timeout();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "kbvault/" KBVAULT_VERSION);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	char why[CURL_ERROR_SIZE + 64] = "";
	for (int attempt = 1; attempt <= 3; attempt++) {
		err[0] = 0;
		CURLcode cc = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (cc == CURLE_OK && status >= 200 && status < 300) {
			cli_log(CLI_DEBUG, "ping (%s) to %s: HTTP %ld", what, origin, status);
			curl_easy_cleanup(h);
			return;
		}
		if (cc != CURLE_OK)
			snprintf(why, sizeof why, "%s", err[0] ? err : curl_easy_strerror(cc));
		else
			snprintf(why, sizeof why, "HTTP %ld", status);
		if (cc == CURLE_OK && status < 500)
			break; /* the server answered: trying again will not change its mind */
		if (attempt < 3) {
			struct timespec ts = { 0, attempt * 500000000L };
			nanosleep(&ts, NULL);
		}
	}
	cli_log(CLI_WARN, "ping (%s) to %s failed: %s; the run itself is not affected", what, origin, why);
	curl_easy_cleanup(h);
}

/* ---- the run ---- */

void cli_run_begin(const char *command)
{
	uint8_t r[16];
	run.command = command;
	run.active = 1;
	run.t0 = cli_now();
	randombytes_buf(r, sizeof r);
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* UUID version 4 */
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
	snprintf(run.rid, sizeof run.rid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
		 r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	cli_log_capture_children();
	if (cli_load_config() != 0)
		return; /* the command reports it */
	cli_log(CLI_INFO, "%s started", command);
	ping("/start", "start", NULL);
}

int cli_run_end(int code)
{
	if (!run.active)
		return code;
	double secs = cli_now() - run.t0;
	cli_log_capture_end();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
	if (code == EXIT_OK)
		cli_log(CLI_INFO, "%s finished in %.1f s", run.command, secs);
	else
		cli_log(CLI_ERROR, "%s failed (exit %d) after %.1f s", run.command, code, secs);
	if (cli.cfg && cli.cfg->metrics_file)
		write_metrics(cli.cfg->metrics_file, code, now, secs);
	if (code == EXIT_OK)
		ping("", "success", cli_log_tail());
	else
		ping("/fail", "failure", cli_log_tail());
	samples_free(&run.set);
	for (size_t i = 0; i < run.natt; i++)
		free(run.att[i].source);
	free(run.att);
	run.att = NULL;
	run.natt = 0;
	run.active = 0;
	return code;
}
