/* PostgreSQL physical base backups (mode = physical; format/wal.md): pg_basebackup's tar
 * of the data directory streamed into the snapshot as "<source>/base.tar"; the WAL from
 * its start on comes from the archive `kbvault wal-push` fills, which the snapshot checks
 * (the server's backup history file must arrive there). And the restore of one into an
 * empty directory, set up to recover from that archive to a target. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/kinds.h"
#include "kbv/pg.h"
#include "kbv/pgbase.h"
#include "kbv/proc.h"
#include "kbv/wal.h"

/* ---- snapshot ---- */

/* What a child wrote to the memory file fd (at most cap - 1 bytes, NUL-terminated). */
static void read_memfd(int fd, char *out, size_t cap)
{
	size_t got = 0;
	if (lseek(fd, 0, SEEK_SET) < 0 || kbv_read_upto(fd, out, cap - 1, &got, "pg_basebackup's messages") < 0)
		got = 0;
	out[got] = 0;
}

/* The last line of text that says "error" or "FATAL", else the last line; into out. */
static void last_error_line(const char *text, char *out, size_t cap)
{
	const char *best = NULL, *last = NULL;
	for (const char *p = text; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n) {
			last = p;
			if (memmem(p, n, "error", 5) || memmem(p, n, "FATAL", 5))
				best = p;
		}
		p += n + (e ? 1 : 0);
	}
	const char *l = best ? best : last;
	size_t n = l ? strcspn(l, "\n") : 0;
	snprintf(out, cap, "%.*s", (int)n, l ? l : "");
}

/* What the backup history file says (PostgreSQL writes it at the end of a base backup and
 * archives it as <start segment>.<offset>.backup). */
struct history {
	char start_lsn[32], stop_lsn[32], start_seg[25], stop_seg[25], label[160];
	uint32_t tli;
};

/* "KEY: value" of a backup history file into out ("" when absent). */
static void history_line(const char *text, const char *key, char *out, size_t cap)
{
	const char *p = strstr(text, key);
	*out = 0;
	if (!p || (p != text && p[-1] != '\n'))
		return;
	p += strlen(key);
	size_t n = strcspn(p, "\n");
	snprintf(out, cap, "%.*s", (int)n, p);
}

static int parse_history(const char *text, struct history *h)
{
	char start[96], stop[96], tli[32];
	memset(h, 0, sizeof *h);
	history_line(text, "START WAL LOCATION: ", start, sizeof start);
	history_line(text, "STOP WAL LOCATION: ", stop, sizeof stop);
	history_line(text, "LABEL: ", h->label, sizeof h->label);
	history_line(text, "START TIMELINE: ", tli, sizeof tli);
	h->tli = (uint32_t)strtoul(tli, NULL, 10);
	return sscanf(start, "%31s (file %24[0-9A-F])", h->start_lsn, h->start_seg) == 2 &&
			       sscanf(stop, "%31s (file %24[0-9A-F])", h->stop_lsn, h->stop_seg) == 2
		       ? 0
		       : -1;
}

struct hist_scan {
	uint64_t from, seg_size;
	struct kbv_buf names; /* NUL-terminated .backup file names at or after `from` */
};

static int on_history(void *arg, const char *source, const char *file, int64_t mtime)
{
	struct hist_scan *h = arg;
	uint32_t tli;
	uint64_t segno;
	char seg[25];
	(void)source;
	(void)mtime;
	if (strlen(file) != 40 || strcmp(file + 33, ".backup"))
		return 0;
	memcpy(seg, file, 24);
	seg[24] = 0;
	if (kbv_wal_segno(seg, h->seg_size, &tli, &segno) < 0 || segno < h->from)
		return 0;
	return kbv_buf_add(&h->names, file, strlen(file) + 1);
}

/* Wait (up to KBV_ARCHIVE_TIMEOUT s, or $KBVAULT_ARCHIVE_TIMEOUT seconds) for the backup
 * history file of `label` in the source's archive and read it. Its arrival proves the server archives into this repository under this source,
 * so the WAL the backup needs is there: pg_basebackup returns only after the server has
 * archived the backup's last segment. */
static int await_history(struct kbv_repo *r, const char *source, const char *label, uint64_t from, uint64_t seg_size,
			 struct history *out)
{
	struct kbv_reader *rd = NULL;
	struct kbv_buf text = KBV_BUF_INIT;
	struct hist_scan hs = { from, seg_size, KBV_BUF_INIT };
	int rc = 0;
	long secs = kbv_env_long("KBVAULT_ARCHIVE_TIMEOUT", 1, KBV_ARCHIVE_TIMEOUT_MAX, KBV_ARCHIVE_TIMEOUT);
	TRY(kbv_reader_new(r, 1, &rd));
	for (long tries = 0; tries < 4 * secs; tries++) {
		hs.names.len = 0;
		TRY(kbv_wal_list(r, source, on_history, &hs));
		for (size_t off = 0; off < hs.names.len;) {
			const char *f = (const char *)hs.names.data + off;
			off += strlen(f) + 1;
			TRY(kbv_wal_get(r, rd, source, f, &text));
			TRY(kbv_buf_add(&text, "", 1));
			if (parse_history((const char *)text.data, out) == 0 && !strcmp(out->label, label))
				goto out;
		}
		struct timespec ts = { 0, 250000000 };
		nanosleep(&ts, NULL);
	}
	rc = kbv_error(KBV_ESOURCE,
		       "PostgreSQL source '%s': the base backup ended, but its backup history file did not reach this "
		       "repository's WAL archive of source '%s' within %ld s: without that WAL the backup cannot be "
		       "recovered (is archive_command = 'kbvault wal-push --source %s %%p' with this repository?)",
		       source, source, secs, source);
out:
	kbv_buf_release(&hs.names);
	kbv_buf_release(&text);
	kbv_reader_free(rd);
	return rc;
}

int kbv_pgbase_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	struct kbv_pg_cluster cl;
	struct kbv_pg_client client = { sc->pg_bin_dir, sc->client_command_prefix };
	struct history h;
	char name[256], what[200], label[160], *msgs = NULL;
	int p[2] = { -1, -1 }, efd = -1, rc = 0, old_err = kbv_cmd_stderr();
	uint64_t from;
	pid_t pid;
	snprintf(what, sizeof what, "PostgreSQL source '%s'", sc->name);
	TRY(kbv_pg_cluster_facts(sc->dsn, what, &cl));
	if (strcmp(cl.archive_mode, "on") && strcmp(cl.archive_mode, "always")) {
		rc = kbv_error(KBV_ESOURCE,
			       "%s: archive_mode is '%s': a base backup recovers only with the WAL written during and "
			       "after it; set archive_mode = on and archive_command = 'kbvault wal-push %%p'",
			       what, cl.archive_mode);
		goto out;
	}
	if (kbv_wal_lsn_segno(cl.lsn, cl.seg_size, &from) < 0)
		from = 0;
	int64_t t0 = (int64_t)time(NULL);
	snprintf(label, sizeof label, "kbvault %s %" PRId64 " %ld", sc->name, t0, (long)getpid());
	snprintf(name, sizeof name, "%s/base.tar", sc->name);
	/* --wal-method=none: the WAL comes from the archive. (fetch would put it in the tar, but
	 * a busy server may recycle a segment before the backup's end fetches it.) */
	char *argv[] = { "pg_basebackup", "--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast",
			 "--no-manifest", "--verbose", "--label", label, NULL };
	/* pg_basebackup's messages go to a memory file, then to the log line by line */
	if ((efd = memfd_create("pg_basebackup", MFD_CLOEXEC)) < 0 || pipe2(p, O_CLOEXEC) < 0) {
		rc = kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	kbv_cmd_set_stderr(efd);
	rc = kbv_pg_client_spawn(&client, sc->dsn, NULL, NULL, KBV_PG_CONN_ENV, argv, -1, p[1], &pid);
	kbv_cmd_set_stderr(old_err);
	close(p[1]);
	p[1] = -1;
	snprintf(what, sizeof what, "pg_basebackup of PostgreSQL source '%s'", sc->name);
	if (rc == 0) {
		rc = kbv_sink_child(c, name, pid, p[0], what);
		p[0] = -1;
	}
	if (!(msgs = malloc(65536))) {
		rc = rc ? rc : kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	read_memfd(efd, msgs, 65536);
	if (rc < 0) {
		char line[512];
		last_error_line(msgs, line, sizeof line);
		if (*line)
			kbv_error_prefix(rc, "%s", line);
	}
	for (char *l = strtok(msgs, "\n"); l; l = strtok(NULL, "\n"))
		kbv_sink_info(c, "%s", l);
	if (rc < 0)
		goto out;
	int64_t t1 = (int64_t)time(NULL);
	TRY(await_history(kbv_sink_repo(c), sc->name, label, from, cl.seg_size, &h));
	*meta = json_pack("{s:s, s:s, s:i, s:I, s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:{s:s}}", "mode", "physical",
			  "system_identifier", cl.sysid, "timeline", (int)(h.tli ? h.tli : cl.timeline),
			  "wal_segment_size", (json_int_t)cl.seg_size, "server_version_num", cl.version, "start_lsn",
			  h.start_lsn, "stop_lsn", h.stop_lsn, "start_segment", h.start_seg, "stop_segment", h.stop_seg,
			  "start_time", (json_int_t)t0, "stop_time", (json_int_t)t1, "label", label, "streams", "base",
			  name);
	if (!*meta)
		rc = kbv_error(KBV_ENOMEM, "out of memory");
out:
	free(msgs);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (efd >= 0)
		close(efd);
	return rc;
}

/* ---- restore ---- */

int kbv_pg_parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -1;
	if (*p == ' ' || *p == 'T') {
		const char *q = strptime(p + 1, "%H:%M:%S", &tm);
		if (!q && !(q = strptime(p + 1, "%H:%M", &tm)))
			return -1;
		p = q;
	}
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	while (*p == ' ')
		p++;
	long off = 0;
	int zone = 0;
	if (*p == 'Z' || !strcmp(p, "UTC")) {
		zone = 1;
		p += *p == 'Z' ? 1 : 3;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0, n = 0;
		if (sscanf(p + 1, "%2d%n", &hh, &n) != 1)
			return -1;
		p += 1 + n;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char)*p) && sscanf(p, "%2d%n", &mm, &n) == 1)
			p += n;
		off = sign * (hh * 3600L + mm * 60L);
		zone = 1;
	}
	if (*p)
		return -1;
	if (zone) {
		*out = (int64_t)timegm(&tm) - off;
	} else {
		tm.tm_isdst = -1;
		*out = (int64_t)mktime(&tm);
	}
	return 0;
}

struct pipe_out {
	int fd;
};

static int to_pipe(void *arg, const uint8_t *p, size_t n)
{
	struct pipe_out *o = arg;
	return kbv_write_full(o->fd, p, n, "tar's input");
}

/* A word for a shell command line, single-quoted when it needs to be. */
static int shell_word(struct kbv_buf *b, const char *w)
{
	int rc = 0;
	if (*w && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-:=+@%,") == strlen(w))
		return kbv_buf_add(b, w, strlen(w));
	TRY(kbv_buf_add(b, "'", 1));
	for (const char *p = w; *p; p++)
		TRY(*p == '\'' ? kbv_buf_add(b, "'\\''", 4) : kbv_buf_add(b, p, 1));
	TRY(kbv_buf_add(b, "'", 1));
out:
	return rc;
}

/* A value for postgresql.conf: single quotes, a quote doubled. */
static int conf_value(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s = '", key);
	for (const char *p = v; *p; p++)
		fputs(*p == '\'' ? "''" : (char[2]){ *p, 0 }, f);
	return fputs("'\n", f) < 0 ? -1 : 0;
}

/* Can recovery reach the target with the archive as it is? From the backup's start
 * segment to its stop segment every segment is needed to reach consistency; after it the
 * archive must be whole up to the target. A gap is refused (KBV_ECORRUPT naming the
 * segment) when the target surely lies past it: any gap before consistency; after it, the
 * end of the archive, an LSN at or past the gap, a time at or after the archiving of the
 * segment before the gap (WAL in a segment is older than its archiving). A transaction id
 * cannot be placed: a warning. An earlier time passes: if its WAL still lies past the gap,
 * PostgreSQL stops with "recovery ended before configured recovery target was reached",
 * never with a wrong result. */
static int check_archive(struct kbv_repo *r, const char *source, const json_t *meta, const struct kbv_pg_recovery *rec,
			 json_t *report)
{
	struct kbv_wal_archive a = { 0 };
	const char *start_seg = json_string_value(json_object_get(meta, "start_segment"));
	const char *stop_seg = json_string_value(json_object_get(meta, "stop_segment"));
	json_int_t seg_size = json_integer_value(json_object_get(meta, "wal_segment_size"));
	int64_t before_time = 0;
	uint32_t tli, tli2;
	uint64_t start, stop, gap;
	char gapname[25], lastname[25] = "", target[200] = "";
	int rc = 0, blocked = 0;
	if (!start_seg || !stop_seg || seg_size <= 0 || kbv_wal_segno(start_seg, (uint64_t)seg_size, &tli, &start) < 0 ||
	    kbv_wal_segno(stop_seg, (uint64_t)seg_size, &tli2, &stop) < 0)
		return kbv_error(KBV_ECORRUPT, "source '%s': the base backup's metadata names no start and stop segment",
				 source);
	TRY(kbv_wal_archive_read(r, source, &a));
	/* Every segment from the backup's start on, up to the first one missing. */
	size_t before; /* the last segment archived before the gap (SIZE_MAX: the start is missing) */
	kbv_wal_gaps(&a, start, 1, &gap, &before);
	if (gap == UINT64_MAX) { /* whole from the start to the newest: a.n > 0 */
		before = a.n - 1;
		if (a.segs[before].segno < stop)
			gap = a.segs[before].segno + 1; /* the archive ends before the backup's last segment */
	}
	if (before != SIZE_MAX)
		before_time = a.segs[before].mtime; /* when the WAL before the gap ends */
	if (a.n)
		kbv_wal_segname(a.segs[a.n - 1].tli, a.segs[a.n - 1].segno, (uint64_t)seg_size, lastname);
	if (gap == UINT64_MAX)
		goto out;
	kbv_wal_segname(tli, gap, (uint64_t)seg_size, gapname);
	int64_t t;
	uint64_t lsn_seg;
	if (gap <= stop) {
		blocked = 1;
		snprintf(target, sizeof target, "the end of the base backup (%s)", stop_seg);
	} else if (rec->immediate) {
		blocked = 0;
	} else if (rec->time) {
		blocked = kbv_pg_parse_time(rec->time, &t) == 0 && t >= before_time;
		snprintf(target, sizeof target, "time %s", rec->time);
	} else if (rec->lsn) {
		blocked = kbv_wal_lsn_segno(rec->lsn, (uint64_t)seg_size, &lsn_seg) < 0 || lsn_seg >= gap;
		snprintf(target, sizeof target, "LSN %s", rec->lsn);
	} else if (rec->xid) {
		kbv_report_add(report, "lines",
			       "WARNING: WAL segment %s of source '%s' is missing from the archive; recovery to "
			       "transaction %s fails if that transaction lies past it",
			       gapname, source, rec->xid);
	} else {
		blocked = 1;
		snprintf(target, sizeof target, "the end of the archive (%s)", lastname);
	}
	if (blocked) {
		char when[40] = "the backup's end";
		struct tm tm;
		time_t bt = (time_t)before_time;
		if (gap > stop)
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S+00", gmtime_r(&bt, &tm));
		rc = kbv_error(KBV_ECORRUPT,
			       "WAL segment %s of source '%s' is missing from the archive: recovery to %s would need it "
			       "(the WAL before it reaches %s; restore to an earlier --target-time, or from a base "
			       "backup taken after the gap)",
			       gapname, source, target, when);
	}
out:
	kbv_wal_archive_release(&a);
	return rc;
}

int kbv_pgbase_restore(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_snapsource *src,
		       const char *dir, const struct kbv_pg_recovery *rec, json_t *report)
{
	char name[256], path[PATH_MAX + 64], id[2 * KBV_ID_BYTES + 1];
	const struct kbv_entry *e = NULL;
	struct kbv_buf cmd = KBV_BUF_INIT;
	json_t *meta = json_loads(src->meta, 0, NULL);
	int rc = 0, created = 0;
	pid_t pid;
	kbv_hex(s->id, KBV_ID_BYTES, id);
	snprintf(name, sizeof name, "%s/base.tar", src->name);
	for (size_t i = 0; i < s->nloaded; i++)
		if (!strcmp(s->entries[i].name, name))
			e = &s->entries[i];
	if (!meta || strcmp(json_string_value(json_object_get(meta, "mode")) ?: "", "physical") || !e) {
		rc = kbv_error(KBV_EINVAL, "source '%s' of snapshot %.8s is not a physical base backup (mode = physical)",
			       src->name, id);
		goto out;
	}
	TRY(check_archive(kbv_reader_repo(rd), src->name, meta, rec, report));
	if ((rc = kbv_dir_empty(dir)) <= 0) {
		if (rc == 0)
			rc = kbv_error(KBV_EEXIST, "'%s' is not empty: a base backup is restored into an empty directory",
				       dir);
		goto out;
	}
	rc = 0;
	if (mkdir(dir, 0700) == 0)
		created = 1;
	else if (errno != EEXIST) {
		rc = kbv_error(KBV_EIO, "create '%s': %s", dir, strerror(errno));
		goto out;
	}
	/* the tar goes to tar(1), which keeps the owners pg_basebackup recorded when run as root */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	char *argv[] = { "tar", "-x", "-f", "-", "-C", (char *)dir, NULL };
	rc = kbv_cmd_spawn(argv, NULL, p[0], -1, &pid);
	close(p[0]);
	if (rc < 0) {
		close(p[1]);
		goto out;
	}
	struct pipe_out po = { p[1] };
	rc = kbv_reader_stream(rd, &e->ref, e->size, &e->hash, to_pipe, &po);
	close(p[1]);
	int rc2 = kbv_cmd_finish(pid, "tar -x of the base backup", rc < 0);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		goto out;
	/* The directory belongs to whoever owns the files (the server's user), mode 0700. */
	struct stat st;
	TRY(kbv_path(path, sizeof path, "%s/PG_VERSION", dir));
	if (stat(path, &st) < 0) {
		rc = kbv_error(KBV_ECORRUPT, "the base backup of snapshot %.8s has no PG_VERSION", id);
		goto out;
	}
	if (chmod(dir, 0700) < 0 || (geteuid() == 0 && chown(dir, st.st_uid, st.st_gid) < 0)) {
		rc = kbv_error(KBV_EIO, "chmod/chown '%s': %s", dir, strerror(errno));
		goto out;
	}
	/* Recovery: restore_command fetches WAL from this repository; recovery.signal starts it. */
	TRY(shell_word(&cmd, rec->kbvault));
	for (size_t i = 0; rec->args && rec->args[i]; i++) {
		TRY(kbv_buf_add(&cmd, " ", 1));
		TRY(shell_word(&cmd, rec->args[i]));
	}
	TRY(kbv_buf_add(&cmd, " wal-fetch --source ", 20));
	TRY(shell_word(&cmd, src->name));
	TRY(kbv_buf_add(&cmd, " %f %p", 7)); /* with the NUL */
	TRY(kbv_path(path, sizeof path, "%s/postgresql.auto.conf", dir));
	FILE *f = fopen(path, "a");
	if (!f) {
		rc = kbv_error(KBV_EIO, "open '%s': %s", path, strerror(errno));
		goto out;
	}
	fprintf(f, "\n# kbvault restore of snapshot %.8s (source '%s'): recovery from its WAL archive\n", id, src->name);
	conf_value(f, "restore_command", (const char *)cmd.data);
	if (rec->time)
		conf_value(f, "recovery_target_time", rec->time);
	else if (rec->lsn)
		conf_value(f, "recovery_target_lsn", rec->lsn);
	else if (rec->xid)
		conf_value(f, "recovery_target_xid", rec->xid);
	else if (rec->immediate)
		conf_value(f, "recovery_target", "immediate");
	if (rec->time || rec->lsn || rec->xid || rec->immediate)
		conf_value(f, "recovery_target_action", "promote");
	/* the archive_command of the original server would push this one's WAL as its own */
	conf_value(f, "archive_mode", "off");
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		fclose(f);
		rc = kbv_error(KBV_EIO, "write '%s': %s", path, strerror(errno));
		goto out;
	}
	fclose(f);
	if (geteuid() == 0)
		(void)chown(path, st.st_uid, st.st_gid);
	TRY(kbv_path(path, sizeof path, "%s/recovery.signal", dir));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fsync(fd) < 0) {
		rc = kbv_error(KBV_EIO, "create '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (geteuid() == 0)
		(void)fchown(fd, st.st_uid, st.st_gid);
	close(fd);
	kbv_report_add(report, "lines",
		       "restored the base backup of source '%s' (snapshot %.8s, WAL from %s) into '%s'; start PostgreSQL "
		       "there to recover%s%s",
		       src->name, id, json_string_value(json_object_get(meta, "start_segment")) ?: "?", dir,
		       rec->time ? " to " : rec->lsn ? " to LSN " : rec->xid ? " to transaction " : rec->immediate ? " to the end of the backup" : " to the end of the archive",
		       rec->time ? rec->time : rec->lsn ? rec->lsn : rec->xid ? rec->xid : "");
	json_object_set_new(report, "has_json", json_true());
	json_object_set_new(report, "json",
			    json_pack("{s:s, s:s, s:s, s:O}", "id", id, "source", src->name, "target_dir", dir, "backup",
				      meta));
out:
	if (rc < 0 && created)
		kbv_report_add(report, "lines", "'%s' holds a partial restore: remove it before trying again", dir);
	kbv_buf_release(&cmd);
	json_decref(meta);
	return rc;
}

int kbv_pg_is_physical(const struct kbv_snapshot *s, const char *source)
{
	const struct kbv_snapsource *src = kbv_snapshot_source(s, source);
	json_t *meta = src ? json_loads(src->meta, 0, NULL) : NULL;
	const char *mode = json_string_value(json_object_get(meta, "mode"));
	int physical = mode && !strcmp(mode, "physical");
	json_decref(meta);
	return physical;
}

int kbv_pgbase_choose(struct kbv_snapshot **list, size_t n, const char *source, int64_t before,
		      struct kbv_snapshot **out)
{
	size_t any = 0;
	for (size_t i = n; i-- > 0;) {
		const struct kbv_snapsource *src = kbv_snapshot_source(list[i], source);
		if (!src)
			continue;
		json_t *meta = json_loads(src->meta, 0, NULL);
		const char *mode = json_string_value(json_object_get(meta, "mode"));
		json_int_t stop = json_integer_value(json_object_get(meta, "stop_time"));
		int physical = mode && !strcmp(mode, "physical");
		json_decref(meta);
		if (!physical)
			continue;
		any++;
		if (stop <= before) {
			*out = list[i];
			return 0;
		}
	}
	if (!any)
		return kbv_error(KBV_ENOTFOUND, "no snapshot holds a base backup of source '%s' (mode = physical)", source);
	return kbv_error(KBV_ENOTFOUND,
			 "none of the %zu base backups of source '%s' had ended by the target time: the oldest point "
			 "they recover to is the end of the oldest",
			 any, source);
}
