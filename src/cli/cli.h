/* Shared pieces of the kbvault command line. The library never prints; this layer does. */
#ifndef KBV_CLI_H
#define KBV_CLI_H

#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kbv/repo.h"
#include "kbv/writer.h"

#define KBVAULT_VERSION "0.1.0"

/* Exit codes (documented in docs/kbvault.1 and README.md). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,       /* i/o or other runtime failure */
	EXIT_USAGE = 2,      /* bad command line or arguments */
	EXIT_NOREPO = 3,     /* no repository there, or a format version this build does not read */
	EXIT_PASSWORD = 4,   /* wrong or missing password */
	EXIT_CORRUPT = 5,    /* data failed verification (check found problems, restore refused) */
	EXIT_LOCKED = 6,     /* repository lock not available */
	EXIT_SOURCE = 7,     /* a source failed: dump command exited non-zero, input unreadable */
};

struct kbv_config;

struct cli_opts {
	const char *config_path; /* -c */
	struct kbv_config *cfg;  /* loaded by cli_load_config(); NULL without a file */
	int cfg_loaded;
	const char *repo;
	const char *password_file;
	int quiet;
	int json;
	int verbose;
	double lock_wait; /* --lock-wait, seconds (default 10 minutes) */
	int closed_std;   /* bit fd set: standard descriptor fd was closed at start (now /dev/null) */
};
extern struct cli_opts cli;

/* getopt_long entries every command accepts, and their codes. A command's own options must
 * not use the codes 'c', 'r', 'q', 'v', 'h' or 1001-1002 (cmd_snapshot and cmd_init use
 * 1101 for their --command and --chunk-avg). */
#define CLI_OPT_PASSWORD_FILE 1001
#define CLI_OPT_JSON 1002
#define CLI_OPT_LOCK_WAIT 1003
#define CLI_GLOBAL_OPTIONS                                                    \
	{ "config", required_argument, NULL, 'c' },                           \
	{ "repo", required_argument, NULL, 'r' },                             \
	{ "password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE },  \
	{ "quiet", no_argument, NULL, 'q' },                                  \
	{ "json", no_argument, NULL, CLI_OPT_JSON },                          \
	{ "verbose", no_argument, NULL, 'v' },                                \
	{ "lock-wait", required_argument, NULL, CLI_OPT_LOCK_WAIT },          \
	{ "help", no_argument, NULL, 'h' }
#define CLI_GLOBAL_SHORT "c:r:qvh"

/* The event log (log.c): "TIME LEVEL kbvault CMD[PID]: message", one line per event, to
 * stderr (WARN and ERROR; -v adds INFO, -vv DEBUG) and to [monitor] log-file (INFO and up).
 * Passwords in conninfo strings and URIs are masked in every sink. */
enum { CLI_DEBUG, CLI_INFO, CLI_WARN, CLI_ERROR };
void cli_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_vlog(int level, const char *fmt, va_list ap);
void cli_log_command(const char *command);
/* Append to `path` from now on; -errno on failure. */
int cli_log_open(const char *path);
void cli_log_progress_shown(int shown);
/* The last few KiB of INFO-and-up lines (the body of a failure ping). */
const char *cli_log_tail(void);
void cli_log_redact(const char *in, char *out, size_t cap);
/* From now on children's stderr is logged line by line ("output: ..."); _end drains it. */
/* While children are captured, their stderr and the stdout of hooks and load commands
 * (kbv_cmd_stdout()) are logged as INFO; else they go to our stderr. */
void cli_log_capture_children(void);
void cli_log_capture_end(void);

/* A monitored run (monitor.c) of snapshot, gc or drill: begin loads the configuration and
 * sends the start ping; the command reports per-source attempts, figures and the
 * repository; end writes [monitor] metrics-file (format/metrics.md), sends the success or
 * failure ping with the log's tail, and returns `code` unchanged. */
void cli_run_begin(const char *command);
void cli_run_attempt(const char *source, int ok, double seconds);
/* kbvault_<name>{source="..."} (source NULL: the whole run). */
void cli_run_metric(const char *name, const char *source, double v);
void cli_run_repo(struct kbv_repo *r);
int cli_run_end(int code);

/* --lock-wait DURATION: 0, 30s, 10m, 1h. 0 or EXIT_USAGE (printed). */
int cli_lock_wait(const char *arg);
/* Handle a global option; returns 1 if `c` was one. 'h' prints the command's help. */
int cli_global_option(int c, const char *arg, const char *cmd);

/* Print "kbvault: <message>" for a library failure and return the exit code for it. */
int cli_fail(int rc);
int cli_exit_code(int rc);
/* Print "kbvault <cmd>: <message>" and a hint, return EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one message for an option getopt_long refused (named), EXIT_USAGE. */
int cli_bad_option(const char *cmd, char **argv);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_help(const char *cmd);
/* Is `name` a command (help.c's table)? */
int cli_is_command(const char *name);

/* Find and load the configuration file once (-c, KBVAULT_CONFIG, ./kbvault.conf,
 * /etc/kbvault/kbvault.conf). Returns 0 or an exit code, having printed the error. */
int cli_load_config(void);

/* The repository path: -r, KBVAULT_REPO, the config file's [repository] path, or the
 * built-in default under the user's data directory. */
const char *cli_repo_path(void);
/* Read the password per the documented order. `confirm` asks twice on a terminal. *pw is in
 * sodium_malloc() memory; free with cli_password_free(). Returns 0 or an exit code. */
int cli_password(int confirm, char **pw, size_t *len);
void cli_password_free(char *pw);
/* The first line of a password file (a warning when others can read it). */
int cli_password_file(const char *path, char **pw, size_t *len);
/* A new password (key add, key passwd): from `file` (--new-password-file), else
 * $KBVAULT_NEW_PASSWORD_FILE, else typed twice on the terminal. */
int cli_new_password(const char *file, char **pw, size_t *len);
/* Move kbvault's own secrets (KBVAULT_PASSWORD) out of the environment, before any child
 * process can be started; cli_password() still finds it. */
void cli_take_env_secrets(void);
/* The same for the S3 secret key and session token (cli_remote.c). */
void cli_take_s3_secrets(void);
/* For a repository on object storage (an s3: URL), hand the library its credentials and
 * options from the environment and the configuration; a no-op for a local path. Returns 0
 * or a KBV_E* code with its message set (the caller reports it with cli_fail()). */
int cli_remote_setup(const char *path);
/* Say what refreshing the cache of a repository on object storage did. */
void cli_remote_report(const struct kbv_repo *r);
/* With -v: the requests this run sent to object storage, by kind (none: nothing said). */
void cli_remote_requests(void);
/* What cli_open() does after opening: unlock (derive the key), and list meanwhile the
 * kinds of objects the command looks up first (kbv_repo_will_list): CLI_LIST(KBV_OBJ_...)
 * for each, its snapshots, records, WAL. */
#define CLI_UNLOCK 1
#define CLI_LIST(kind) (2 << (kind))
#define CLI_UNLOCK_SNAPSHOTS (CLI_UNLOCK | CLI_LIST(KBV_OBJ_SNAPSHOT))
/* Open, lock and (with CLI_UNLOCK in `unlock`) unlock the repository. Returns 0 or an exit
 * code, having printed why. */
int cli_open(enum kbv_lock lock, int unlock, struct kbv_repo **out);

/* Every snapshot that reads (kbv_snapshot_list_damaged), with one warning per damaged
 * manifest saying what it costs and how to remove it. */
struct kbv_snapshot;
struct kbv_snapshot_damage;
int cli_list_snapshots(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n, struct kbv_snapshot_damage **bad,
		       size_t *nbad);
/* KBV_ECORRUPT naming the damage when `spec` (an id or prefix) names a damaged manifest,
 * else 0. */
int cli_damaged_spec(const struct kbv_snapshot_damage *bad, size_t nbad, const char *spec);

/* "500M", "2G", "8KiB", "1.5T", "4096": a size in bytes (binary units). -1 if not one. */
int cli_parse_size(const char *s, uint64_t *out);
/* A plain decimal number at the start of s ("10", "2.5", ".5"): digits and at most one
 * point; no sign, space, exponent, hex, inf or nan (strtod takes them all). 0 with *end
 * after it, or -1. */
int cli_parse_decimal(const char *s, double *v, const char **end);

/* Formatting. */
/* `s` with control characters written as \xNN (names from a snapshot reach a terminal);
 * cut to fit `cap`. Returns out. */
const char *cli_printable(const char *s, char *out, size_t cap);
void cli_bytes(uint64_t n, char *out, size_t cap);
void cli_time(int64_t t, int32_t tzoff, char *out, size_t cap);
double cli_now(void);
/* Now as RFC 3339 UTC with milliseconds, "2026-11-25T16:00:00.123Z" (records' "time"). */
void cli_utc_now(char *out, size_t cap);
/* KBVAULT_THREADS (1-256): the worker threads of snapshot, restore, drill and copy; 0 when
 * unset (one per CPU). Benchmarks measure scaling with it. */
size_t cli_threads(void);
#define CLI_THREADS_MAX 256
int cli_show_progress(void);

/* Progress line on stderr, at most 4 updates a second. */
struct cli_progress {
	const char *verb;
	double start, last;
	int shown;
};
void cli_progress_init(struct cli_progress *p, const char *verb);
void cli_progress_bytes(struct cli_progress *p, uint64_t done, uint64_t total, uint64_t fresh, int force);
void cli_progress_done(struct cli_progress *p);

/* Commands. */
int cmd_init(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_copy(int argc, char **argv);
/* After a snapshot: copy what [repository] copy-to lacks from `src` (cmd_copy.c). EXIT_OK
 * when there is no copy-to or all went well, else an exit code (said why). */
int cli_copy_to(struct kbv_repo *src);
int cmd_drill(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_wal_push(int argc, char **argv);
int cmd_wal_fetch(int argc, char **argv);

#endif
