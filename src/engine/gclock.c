/* The gc lock of a repository on object storage (format/repository.md, "The gc lock"):
 * one object `locks/gc`, created if absent by the gc that runs, refreshed while it runs,
 * stale when the storage's clock says it was not refreshed for KBV_GCLOCK_STALE seconds. */
#include "kbv/gc.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct kbv_gclock {
	struct kbv_repo *r;
	char token[33];
	struct kbv_buf body;
	double refreshed; /* monotonic seconds */
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* KBV_GCLOCK_STALE, or KBVAULT_GC_LOCK_STALE seconds when the environment sets it. */
static int64_t stale_after(void)
{
	return kbv_env_long("KBVAULT_GC_LOCK_STALE", 1, KBV_GCLOCK_STALE_MAX, KBV_GCLOCK_STALE);
}

static int on_lock(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	(void)size;
	if (!strcmp(name, "gc"))
		*(int64_t *)arg = mtime;
	return 0;
}

int kbv_gclock_info(struct kbv_repo *r, struct kbv_gclock_info *out)
{
	struct kbv_buf b = KBV_BUF_INIT;
	int64_t mtime = -1, now = 0;
	int rc = 0;
	memset(out, 0, sizeof *out);
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL)
		return 0; /* a directory: gc holds the exclusive flock instead */
	TRY(kbv_be_list(r->be, KBV_OBJ_LOCK, on_lock, &mtime));
	if (mtime < 0)
		goto out;
	TRY(kbv_be_clock(r->be, &now));
	rc = kbv_be_get(r->be, KBV_OBJ_LOCK, "gc", &b);
	if (rc == KBV_ENOTFOUND) { /* released since the listing */
		rc = 0;
		goto out;
	}
	TRY(rc);
	out->held = 1;
	out->age = now - mtime;
	out->stale_in = mtime + stale_after() - now;
	json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
	snprintf(out->host, sizeof out->host, "%s", json_string_value(json_object_get(j, "host")) ?: "?");
	snprintf(out->token, sizeof out->token, "%s", json_string_value(json_object_get(j, "token")) ?: "");
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	out->pid = pid > 0 && pid <= INT_MAX ? (long)pid : 0; /* 0: no process id (pid_t's range) */
	json_decref(j);
	/* A gc of this very host whose process is gone is dead whatever the clock says. A pid
	 * outside pid_t's range is no process's: narrowed it could name a dead one (or, as -1,
	 * every process), so such a lock only goes stale by the clock. */
	char me[256] = "";
	gethostname(me, sizeof me - 1);
	out->dead = out->pid > 0 && !strcmp(out->host, me) && kill((pid_t)out->pid, 0) < 0 && errno == ESRCH;
out:
	kbv_buf_release(&b);
	return rc;
}

static int put_lock(struct kbv_gclock *l, unsigned flags)
{
	return kbv_be_put(l->r->be, KBV_OBJ_LOCK, "gc", l->body.data, l->body.len, flags);
}

int kbv_gclock_take(struct kbv_repo *r, const char *host, struct kbv_gclock **out)
{
	struct kbv_gclock *l = calloc(1, sizeof *l);
	uint8_t rnd[16];
	int rc = 0;
	*out = NULL;
	if (!l)
		return kbv_error(KBV_ENOMEM, "out of memory");
	l->r = r;
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL) {
		*out = l; /* nothing to hold: the exclusive flock is the lock */
		return 0;
	}
	randombytes_buf(rnd, sizeof rnd);
	kbv_hex(rnd, sizeof rnd, l->token);
	json_t *j = json_pack("{s:s, s:s, s:I}", "host", host ? host : "?", "token", l->token, "pid", (json_int_t)getpid());
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s || kbv_buf_add(&l->body, s, strlen(s)) < 0) {
		free(s);
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	free(s);
	for (int attempt = 0; attempt < 2; attempt++) {
		/* A bucket with Object Lock keeps versions, where Ceph RGW 16 ignores
		 * If-None-Match: look first there (two gcs that race past this both hold it
		 * until the read-back before deleting stops the one overwritten). */
		int there = r->lock_days ? kbv_be_exists(r->be, KBV_OBJ_LOCK, "gc") : 0;
		TRY(there);
		rc = there ? KBV_EEXIST : put_lock(l, KBV_PUT_EXCL);
		if (rc != KBV_EEXIST)
			break;
		struct kbv_gclock_info in;
		TRY(kbv_gclock_info(r, &in));
		if (!in.held)
			continue; /* released meanwhile: try again */
		if ((in.stale_in > 0 && !in.dead) || attempt) {
			rc = kbv_error(KBV_ELOCKED,
				       "gc is running on host %s (PID %ld): its lock was refreshed %lld s ago and goes stale "
				       "in %lld s by the storage's clock",
				       in.host, in.pid, (long long)in.age, (long long)(in.stale_in > 0 ? in.stale_in : 0));
			goto out;
		}
		/* A dead gc's lock: not refreshed for the stale period on the storage's clock, or
		 * this host's and its process is gone. */
		TRY(kbv_be_remove(r->be, KBV_OBJ_LOCK, "gc"));
	}
	if (rc < 0) {
		kbv_error_prefix(rc, "take the gc lock");
		goto out;
	}
	l->refreshed = mono();
	*out = l;
	l = NULL;
out:
	if (l) {
		kbv_buf_release(&l->body);
		free(l);
	}
	return rc;
}

/* Is the lock object still the one this gc wrote (one GET: no listing needed)? */
static int still_ours(struct kbv_gclock *l, int *ours)
{
	struct kbv_buf b = KBV_BUF_INIT;
	int rc = kbv_be_get(l->r->be, KBV_OBJ_LOCK, "gc", &b);
	*ours = rc == 0 && b.len == l->body.len && !memcmp(b.data, l->body.data, b.len);
	if (rc == KBV_ENOTFOUND)
		rc = 0;
	kbv_buf_release(&b);
	return rc;
}

int kbv_gclock_refresh(struct kbv_gclock *l, int force)
{
	int rc = 0, ours = 0;
	double every = (double)stale_after() / 6;
	if (every > KBV_GCLOCK_REFRESH)
		every = KBV_GCLOCK_REFRESH;
	if (!l || !l->token[0] || (!force && mono() - l->refreshed < every))
		return 0;
	TRY(still_ours(l, &ours));
	if (!ours) {
		rc = kbv_error(KBV_ELOCKED, "the gc lock is no longer this gc's: it went stale and was removed or taken by "
					    "another gc; stopping before anything more changes");
		goto out;
	}
	rc = put_lock(l, 0); /* the same bytes again: a new LastModified */
	if (rc < 0) {
		kbv_error_prefix(rc, "refresh the gc lock");
		goto out;
	}
	l->refreshed = mono();
out:
	return rc;
}

void kbv_gclock_release(struct kbv_gclock *l)
{
	if (!l)
		return;
	int ours = 0;
	if (l->token[0] && still_ours(l, &ours) == 0 && ours)
		(void)kbv_be_remove(l->r->be, KBV_OBJ_LOCK, "gc");
	kbv_buf_release(&l->body);
	free(l);
}

int kbv_gclock_break(struct kbv_repo *r, struct kbv_gclock_info *was, int *removed)
{
	int rc = 0;
	*removed = 0;
	TRY(kbv_gclock_info(r, was));
	if (was->held && (was->stale_in <= 0 || was->dead)) {
		TRY(kbv_be_remove(r->be, KBV_OBJ_LOCK, "gc"));
		*removed = 1;
	}
out:
	return rc;
}
