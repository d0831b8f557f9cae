/* Object Lock at the repository level (format/repository.md, "Object Lock"): is an object
 * still retained, and the extension of what is kept before its retention lapses.
 *
 * Every retained object was written with retain-until = the storage's clock + L (L the
 * repository's retention), so LastModified + L (less a minute of slack for the clock the
 * writer read) is a lower bound of its retain-until that a listing gives for free. An
 * extension raises it for everything listed; this host remembers the lowest retain-until
 * it left among the objects that existed when it listed them (the file `object-lock` in
 * its cache directory, a line with a MAC under the repository's keys), which lifts the
 * lower bound of every object that old. Only exact answers (a HEAD) are trusted for
 * deleting; lower bounds decide only what to extend, where being low costs a request,
 * never an object. */
#include "kbv/backend.h"
#include "kbv/beside.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/metacache.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <sodium.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t kbv_repo_lock_seconds(const struct kbv_repo *r)
{
	/* Tests shorten a day (KBVAULT_OBJECT_LOCK_DAY, seconds) to see retention lapse. */
	return (int64_t)r->lock_days * kbv_env_long("KBVAULT_OBJECT_LOCK_DAY", 1, KBV_LOCK_DAY_MAX, 86400);
}

/* Seconds the clock a writer read may lag its PUT: a minute (less for the short days of
 * tests, KBVAULT_OBJECT_LOCK_DAY). */
static int64_t slack(const struct kbv_repo *r)
{
	int64_t L = kbv_repo_lock_seconds(r);
	return L / 10 < 60 ? L / 10 : 60;
}

/* The host's record: every object listed at storage time `t` or before is retained until
 * `until` at least. */
struct record {
	int64_t t, until;
};

#define RECORD_LABEL "kbvault object lock record v1"
#define RECORD_HEAD "kbvault-object-lock 2 " /* the version 2 line up to T */

int kbv_lockrec_format(const struct kbv_keys *keys, int64_t t, int64_t until, char *line, size_t cap)
{
	uint8_t key[32], mac[32];
	char hex[2 * sizeof mac + 1];
	int n = snprintf(line, cap, RECORD_HEAD "%lld %lld", (long long)t, (long long)until);
	if (n < 0 || (size_t)n >= cap)
		return kbv_error(KBV_EINVAL, "object lock record: a line of %zu bytes", cap);
	kbv_meta_local_key(keys, RECORD_LABEL, key);
	crypto_generichash_blake2b(mac, sizeof mac, (const uint8_t *)line, (size_t)n, key, sizeof key);
	sodium_memzero(key, sizeof key);
	kbv_hex(mac, sizeof mac, hex);
	int m = snprintf(line + n, cap - (size_t)n, " %s\n", hex);
	if (m < 0 || (size_t)m >= cap - (size_t)n)
		return kbv_error(KBV_EINVAL, "object lock record: a line of %zu bytes", cap);
	return n + m;
}

int kbv_lockrec_parse(const struct kbv_keys *keys, const char *line, size_t len, int64_t *t, int64_t *until)
{
	static const char head[] = RECORD_HEAD;
	char copy[KBV_LOCKREC_MAX], expect[KBV_LOCKREC_MAX];
	long a, b;
	*t = *until = 0;
	if (len >= sizeof copy || len < sizeof head - 1 || memcmp(line, head, sizeof head - 1) != 0)
		return KBV_ECORRUPT;
	memcpy(copy, line, len);
	copy[len] = 0;
	char *ts = copy + sizeof head - 1, *us = strchr(ts, ' '), *end;
	if (!us || !(end = strchr(us + 1, ' ')))
		return KBV_ECORRUPT;
	*us++ = 0;
	*end = 0;
	if (kbv_parse_long(ts, 1, LONG_MAX, &a) < 0 || kbv_parse_long(us, 1, LONG_MAX, &b) < 0 || b <= a)
		return KBV_ECORRUPT;
	/* The one line this code writes for (a, b) under these keys, byte for byte: its MAC and
	 * the numbers' spelling both checked. */
	int n = kbv_lockrec_format(keys, a, b, expect, sizeof expect);
	if (n < 0 || (size_t)n != len || sodium_memcmp(expect, line, len) != 0)
		return KBV_ECORRUPT;
	*t = a;
	*until = b;
	return 0;
}

/* This host's record, as of the storage's clock `now`. A record that is not authentic
 * (damaged, another repository's, or written by a build before version 2) is ignored, and
 * lower bounds then come from LastModified alone; so is one this code cannot have written
 * as of now: a listing time later than now, or a retain-until further after it than a
 * retention and the longest pass allowed for (an hour, or a quarter of the retention if
 * more: a clock that went back). A wrong record must not raise lower bounds past the truth:
 * gc would stop extending and status would stay OK while retention lapses. */
static void record_read(struct kbv_repo *r, int64_t now, struct record *rec)
{
	char p[PATH_MAX], line[KBV_LOCKREC_MAX];
	int64_t L = kbv_repo_lock_seconds(r);
	int64_t pass = L / 4 > 3600 ? L / 4 : 3600, t, u;
	rec->t = rec->until = 0;
	if (!r->keys || kbv_path(p, sizeof p, "%s/object-lock", r->local) < 0)
		return;
	FILE *f = fopen(p, "re");
	if (!f)
		return;
	size_t n = fread(line, 1, sizeof line, f);
	fclose(f);
	if (kbv_lockrec_parse(r->keys, line, n, &t, &u) == 0 && t <= now + slack(r) && u - t <= L + pass) {
		rec->t = t;
		rec->until = u;
	}
}

static int record_write(struct kbv_repo *r, const struct record *rec)
{
	char p[PATH_MAX], line[KBV_LOCKREC_MAX];
	int rc = 0, n;
	if (!r->keys)
		return 0;
	TRY(kbv_path(p, sizeof p, "%s/object-lock", r->local));
	TRY(n = kbv_lockrec_format(r->keys, rec->t, rec->until, line, sizeof line));
	rc = kbv_write_replace(p, line, (size_t)n, 0600);
out:
	return rc;
}

/* The lower bound of an object's retain-until from what a listing says of it. */
static int64_t lower_bound(const struct kbv_repo *r, const struct record *rec, int64_t mtime)
{
	int64_t lb = mtime ? mtime + kbv_repo_lock_seconds(r) - slack(r) : 0;
	if (mtime && rec->t && mtime <= rec->t && rec->until > lb)
		lb = rec->until;
	return lb;
}

int kbv_repo_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, int64_t mtime, int64_t *until)
{
	struct record rec;
	int64_t now;
	int rc = 0;
	*until = 0;
	if (!r->lock_days || !kbv_obj_retained(kind))
		return 0;
	TRY(kbv_be_clock(r->be, &now));
	record_read(r, now, &rec);
	int64_t lb = lower_bound(r, &rec, mtime);
	if (lb > now + slack(r)) {
		*until = lb;
		return 1;
	}
	rc = kbv_be_retention(r->be, kind, name, until);
	if (rc == KBV_ENOTFOUND) {
		*until = 0;
		return 0;
	}
	TRY(rc);
	/* on the storage's clock as of that HEAD */
	TRY(kbv_be_clock(r->be, &now));
	return *until > now ? 1 : 0;
out:
	return rc;
}

int kbv_repo_refuse_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, const char *what)
{
	int64_t until;
	int rc = kbv_repo_retained(r, kind, name, 0, &until);
	if (rc <= 0)
		return rc;
	time_t t = (time_t)until;
	struct tm tm;
	char when[64];
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return kbv_error(KBV_ELOCKED, "%s is retained by Object Lock until %s: nobody can remove it before then", what,
			 when);
}

/* ---- extension ---- */

struct obj {
	enum kbv_obj kind;
	char name[112];
	int64_t mtime, lb;
};

struct scan {
	enum kbv_obj kind;
	struct kbv_buf objs; /* struct obj */
};

static int on_obj(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct scan *s = arg;
	struct obj o = { .kind = s->kind, .mtime = mtime };
	(void)size;
	if (strlen(name) >= sizeof o.name)
		return 0;
	snprintf(o.name, sizeof o.name, "%s", name);
	return kbv_buf_add(&s->objs, &o, sizeof o);
}

/* The kinds listed side by side, each into its own scan. */
struct scans {
	struct kbv_repo *r;
	struct scan *each;
};

static int scan_kind(void *arg, unsigned t, size_t k)
{
	struct scans *ss = arg;
	(void)t;
	return kbv_be_list(ss->r->be, ss->each[k].kind, on_obj, &ss->each[k]);
}

/* The retention of the objects the listing gave no time for, asked by a HEAD each, side by
 * side. */
enum { HEADS = 16 };
struct heads {
	struct kbv_repo *r;
	struct obj **o;
};

static int head_obj(void *arg, unsigned t, size_t i)
{
	struct heads *h = arg;
	struct obj *o = h->o[i];
	(void)t;
	int rc = kbv_be_retention(h->r->be, o->kind, o->name, &o->lb);
	if (rc == KBV_ENOTFOUND) {
		o->lb = INT64_MAX; /* gone meanwhile */
		rc = 0;
	}
	return rc;
}

int kbv_repo_retention(struct kbv_repo *r, int extend, struct kbv_retention_report *out)
{
	static const enum kbv_obj kinds[] = { KBV_OBJ_CONFIG, KBV_OBJ_KEY,    KBV_OBJ_PACK,
					      KBV_OBJ_SNAPSHOT, KBV_OBJ_RECORD, KBV_OBJ_INDEX, KBV_OBJ_WAL };
	enum { NKINDS = sizeof kinds / sizeof *kinds };
	struct scan each[NKINDS];
	struct scans ss = { .r = r, .each = each };
	struct heads hs = { .r = r, .o = NULL };
	struct record rec, next;
	struct scan s = { .objs = KBV_BUF_INIT };
	int64_t t0, now, L = kbv_repo_lock_seconds(r);
	int rc = 0;
	memset(out, 0, sizeof *out);
	for (size_t k = 0; k < NKINDS; k++)
		each[k] = (struct scan){ .kind = kinds[k], .objs = KBV_BUF_INIT };
	if (!r->lock_days)
		return 0;
	out->days = r->lock_days;
	out->seconds = L;
	TRY(kbv_be_clock(r->be, &t0));
	record_read(r, t0, &rec);
	/* every kind listed side by side (a round trip for all, not one each), then taken in
	 * this order; the first kind's error is the one reported */
	rc = kbv_beside_each(NKINDS, NKINDS, scan_kind, &ss);
	for (size_t k = 0; k < NKINDS; k++) {
		if (rc == 0)
			rc = kbv_buf_add(&s.objs, each[k].objs.data, each[k].objs.len);
		kbv_buf_release(&each[k].objs);
	}
	TRY(rc);
	/* Lower bounds; an object the listing gives no time for (the config and the keys,
	 * found by a HEAD) is asked for its retention (those HEADs side by side too, HEADS at
	 * a time; the first one's error reported). */
	struct obj *v = (struct obj *)s.objs.data;
	size_t n = s.objs.len / sizeof *v, nh = 0;
	int due = 0;
	TRY(kbv_be_clock(r->be, &now));
	if (!(hs.o = calloc(n ? n : 1, sizeof *hs.o))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].lb = lower_bound(r, &rec, v[i].mtime);
		if (!v[i].mtime)
			hs.o[nh++] = &v[i];
	}
	TRY(kbv_beside_each(nh, HEADS, head_obj, &hs));
	for (size_t i = 0; i < n; i++)
		due |= v[i].lb < now + L / 2;
	out->objects = n;
	/* Due when anything has less than half the retention left: then everything not
	 * written within the last hour (an eighth of the retention, if less) is extended to
	 * now + L, so the next extension is due about L/2 later: a pass every L/2 costs a
	 * request per object. */
	if (extend && due) {
		TRY(kbv_be_clock(r->be, &now));
		int64_t until = now + L, fresh = now + L - (L / 8 < 3600 ? L / 8 : 3600);
		for (size_t i = 0; i < n; i++) {
			struct obj *o = &v[i];
			if (o->lb >= fresh)
				continue;
			rc = kbv_be_extend(r->be, o->kind, o->name, until);
			if (rc == KBV_ENOTFOUND) { /* removed since the listing (a forget, a gc) */
				o->lb = INT64_MAX;
				rc = 0;
				continue;
			}
			if (rc < 0) {
				char what[512];
				kbv_be_describe(r->be, o->kind, o->name, what, sizeof what);
				rc = kbv_error(rc, "extend the Object Lock retention of %s: %s", what, kbv_errmsg());
				goto out;
			}
			o->lb = until;
			out->extended++;
		}
	}
	/* What is left: the lowest retain-until (as known here), and what this host may
	 * remember of everything listed. */
	next.t = t0;
	next.until = INT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (v[i].lb < next.until)
			next.until = v[i].lb;
	out->now = now;
	if (next.until != INT64_MAX) {
		out->oldest = next.until;
		out->next_extension = next.until - L / 2;
	}
	if (extend && next.until != INT64_MAX && next.until > next.t)
		TRY(record_write(r, &next));
out:
	free(hs.o);
	kbv_buf_release(&s.objs);
	return rc;
}
