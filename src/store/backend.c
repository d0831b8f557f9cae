/* The generic layer of the storage backends: dispatch to the implementation, and what is
 * built from its operations (put, get). */
#include "backend_impl.h"
#include "kbv/beside.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_name(const char *name, size_t len)
{
	if (strlen(name) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return 1;
}

int kbv_obj_name_ok(enum kbv_obj kind, const char *name)
{
	switch (kind) {
	case KBV_OBJ_CONFIG:
		return name[0] == 0;
	case KBV_OBJ_KEY: /* `key`, or keys/<32 hex> */
		return name[0] == 0 || hex_name(name, 32);
	case KBV_OBJ_PACK:
		return hex_name(name, 32);
	case KBV_OBJ_SNAPSHOT:
	case KBV_OBJ_RECORD:
	case KBV_OBJ_INDEX:
	case KBV_OBJ_PLAN:
		return hex_name(name, 64);
	case KBV_OBJ_LOCK:
		return !strcmp(name, "gc");
	case KBV_OBJ_WAL:
		return kbv_wal_name_ok(name);
	default:
		return 0;
	}
}

static int upper_hex(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F')))
			return 0;
	return 1;
}

int kbv_wal_file_ok(const char *f)
{
	size_t n = strlen(f);
	if (n == 24)
		return upper_hex(f, 24); /* a segment */
	if (n == 32 && !strcmp(f + 24, ".partial"))
		return upper_hex(f, 24);
	if (n == 16 && !strcmp(f + 8, ".history"))
		return upper_hex(f, 8);
	if (n == 40 && f[24] == '.' && !strcmp(f + 33, ".backup"))
		return upper_hex(f, 24) && upper_hex(f + 25, 8);
	return 0;
}

int kbv_wal_name_ok(const char *name)
{
	const char *t = strchr(name, '~');
	size_t sl = t ? (size_t)(t - name) : 0;
	if (!t || sl == 0 || sl > 64 || (sl == 1 && name[0] == '.') || (sl == 2 && !strncmp(name, "..", 2)))
		return 0;
	for (size_t i = 0; i < sl; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return kbv_wal_file_ok(t + 1);
}

static int bad_name(enum kbv_obj kind, const char *name)
{
	return kbv_error(KBV_EINVAL, "'%s' is not a valid name for a repository object of kind %d", name, (int)kind);
}

/* ---- a listing made ahead of its use (kbv_be_list_ahead) ---- */

struct ahead_entry {
	uint64_t size;
	int64_t mtime;
	size_t name; /* offset in names */
};

struct kbv_be_ahead {
	uint64_t done; /* kbv_be_tick() once its last reply was in */
	struct kbv_buf entries; /* struct ahead_entry, in the order listed */
	struct kbv_buf names;   /* each name with its NUL */
};

/* Guards be->ahead and be->changed of every backend (taken for a few instructions). */
static pthread_mutex_t ahead_mu = PTHREAD_MUTEX_INITIALIZER;

static _Atomic uint64_t ticks;

uint64_t kbv_be_tick(void)
{
	return ++ticks;
}

static void ahead_free(struct kbv_be_ahead *a)
{
	if (!a)
		return;
	kbv_buf_release(&a->entries);
	kbv_buf_release(&a->names);
	free(a);
}

static int ahead_add(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct kbv_be_ahead *a = arg;
	struct ahead_entry e = { size, mtime, a->names.len };
	int rc = kbv_buf_add(&a->names, name, strlen(name) + 1);
	return rc < 0 ? rc : kbv_buf_add(&a->entries, &e, sizeof e);
}

/* ---- objects of a kept listing fetched ahead (kbv_be_get_listed_ahead) ---- */

struct kbv_be_kept {
	size_t n;
	char **names;
	struct kbv_buf *bufs; /* names[i]'s bytes; emptied (and names[i] freed) once taken */
};

static void kept_free(struct kbv_be_kept *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++) {
		free(k->names[i]);
		kbv_buf_release(&k->bufs[i]);
	}
	free(k->names);
	free(k->bufs);
	free(k);
}

/* The bytes kept of (kind, name) into out, taken: 1; else 0. */
static int kept_take(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out)
{
	int found = 0;
	pthread_mutex_lock(&ahead_mu);
	struct kbv_be_kept *k = be->changed ? NULL : be->kept[kind];
	for (size_t i = 0; k && i < k->n && !found; i++)
		if (k->names[i] && !strcmp(k->names[i], name)) {
			kbv_buf_release(out);
			*out = k->bufs[i];
			k->bufs[i] = (struct kbv_buf)KBV_BUF_INIT;
			free(k->names[i]);
			k->names[i] = NULL;
			found = 1;
		}
	pthread_mutex_unlock(&ahead_mu);
	return found;
}

void kbv_be_get_listed_ahead(struct kbv_backend *be, enum kbv_obj kind, size_t most, uint64_t bytes)
{
	struct kbv_be_kept *k = calloc(1, sizeof *k), *old = NULL;
	int *rcs = NULL;
	uint64_t sum = 0;
	if (!k || !(k->names = calloc(most ? most : 1, sizeof *k->names)) ||
	    !(k->bufs = calloc(most ? most : 1, sizeof *k->bufs)))
		goto drop;
	pthread_mutex_lock(&ahead_mu);
	const struct kbv_be_ahead *a = be->changed ? NULL : be->ahead[kind];
	const struct ahead_entry *e = a ? (const struct ahead_entry *)a->entries.data : NULL;
	for (size_t i = 0; a && i < a->entries.len / sizeof *e && k->n < most; i++) {
		if (sum + e[i].size > bytes)
			break;
		if (!(k->names[k->n] = strdup((const char *)a->names.data + e[i].name)))
			break;
		sum += e[i].size;
		k->n++;
	}
	pthread_mutex_unlock(&ahead_mu);
	if (!k->n || !(rcs = calloc(k->n, sizeof *rcs)))
		goto drop;
	/* Best effort: those fetched are kept; one that failed (or was not fetched after a
	 * failure) is read when asked for, and reports what it meets. */
	kbv_be_get_many(be, kind, (const char *const *)k->names, k->n, k->bufs, rcs);
	for (size_t i = 0; i < k->n; i++)
		if (rcs[i] != 0) {
			kbv_buf_release(&k->bufs[i]);
			free(k->names[i]);
			k->names[i] = NULL;
		}
	free(rcs);
	pthread_mutex_lock(&ahead_mu);
	if (be->changed) {
		old = k; /* a write began while they were fetched */
	} else {
		old = be->kept[kind];
		be->kept[kind] = k;
	}
	pthread_mutex_unlock(&ahead_mu);
	kept_free(old);
	return;
drop:
	kept_free(k);
}

/* A write or removal begins: a listing kept from before it is out of date, and none is kept
 * from now on. */
static void changing(struct kbv_backend *be)
{
	struct kbv_be_ahead *old[KBV_OBJ_KINDS];
	struct kbv_be_kept *kept[KBV_OBJ_KINDS];
	pthread_mutex_lock(&ahead_mu);
	be->changed = 1;
	for (int k = 0; k < KBV_OBJ_KINDS; k++) {
		old[k] = be->ahead[k];
		be->ahead[k] = NULL;
		kept[k] = be->kept[k];
		be->kept[k] = NULL;
	}
	pthread_mutex_unlock(&ahead_mu);
	for (int k = 0; k < KBV_OBJ_KINDS; k++) {
		ahead_free(old[k]);
		kept_free(kept[k]);
	}
}

void kbv_be_list_ahead(struct kbv_backend *be, enum kbv_obj kind)
{
	struct kbv_be_ahead *a = calloc(1, sizeof *a), *old = NULL;
	if (!a)
		return;
	if (be->ops->list(be, kind, ahead_add, a) < 0) {
		ahead_free(a); /* the lookup asks again and reports what it meets */
		return;
	}
	a->done = kbv_be_tick();
	pthread_mutex_lock(&ahead_mu);
	if (be->changed) { /* a write began while it was listed */
		old = a;
	} else {
		old = be->ahead[kind];
		be->ahead[kind] = a;
	}
	pthread_mutex_unlock(&ahead_mu);
	ahead_free(old);
}

/* The listing kept for `kind`, taken (the caller frees it), or NULL. */
static struct kbv_be_ahead *ahead_take(struct kbv_backend *be, enum kbv_obj kind)
{
	struct kbv_be_ahead *a = NULL;
	pthread_mutex_lock(&ahead_mu);
	if (be->ahead[kind] && !be->changed) {
		a = be->ahead[kind];
		be->ahead[kind] = NULL;
	}
	pthread_mutex_unlock(&ahead_mu);
	return a;
}

void kbv_be_list_drop(struct kbv_backend *be, enum kbv_obj kind)
{
	struct kbv_be_ahead *a;
	struct kbv_be_kept *k;
	pthread_mutex_lock(&ahead_mu);
	a = be->ahead[kind];
	be->ahead[kind] = NULL;
	k = be->kept[kind];
	be->kept[kind] = NULL;
	pthread_mutex_unlock(&ahead_mu);
	ahead_free(a);
	kept_free(k);
}

void kbv_backend_free(struct kbv_backend *be)
{
	if (!be)
		return;
	for (int k = 0; k < KBV_OBJ_KINDS; k++) {
		ahead_free(be->ahead[k]);
		kept_free(be->kept[k]);
	}
	be->ops->free(be);
}

unsigned kbv_backend_parallel(const struct kbv_backend *be)
{
	return be->parallel ? be->parallel : 1;
}

unsigned kbv_backend_features(const struct kbv_backend *be)
{
	return be->features;
}

const char *kbv_backend_root(const struct kbv_backend *be)
{
	return (be->features & KBV_BE_LOCAL) ? be->root : NULL;
}

void kbv_be_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	be->ops->describe(be, kind, name, out, cap);
}

int kbv_be_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	changing(be);
	return be->ops->create(be, kind, name, out);
}

int kbv_be_append(struct kbv_be_wr *w, const void *p, size_t n)
{
	return n ? w->be->ops->append(w, p, n) : 0;
}

int kbv_be_commit(struct kbv_be_wr *w, unsigned flags)
{
	return w->be->ops->commit(w, flags);
}

int kbv_be_sync(struct kbv_backend *be)
{
	return be->ops->sync ? be->ops->sync(be) : 0;
}

void kbv_be_discard(struct kbv_be_wr *w)
{
	if (w)
		w->be->ops->discard(w);
}

int kbv_be_put(struct kbv_backend *be, enum kbv_obj kind, const char *name, const void *p, size_t n, unsigned flags)
{
	struct kbv_be_wr *w = NULL;
	int rc = 0;
	TRY(kbv_be_create(be, kind, name, &w));
	TRY(kbv_be_append(w, p, n));
	TRY(kbv_be_commit(w, flags));
out:
	kbv_be_discard(w);
	return rc;
}

int kbv_be_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out, uint64_t *size)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	return be->ops->open(be, kind, name, out, size);
}

int kbv_be_open_known(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t *size,
		      struct kbv_be_rd **out)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	if (be->ops->open_known)
		return be->ops->open_known(be, kind, name, *size, out);
	return be->ops->open(be, kind, name, out, size);
}

int kbv_be_read(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off)
{
	return n ? rd->be->ops->read(rd, p, n, off) : 0;
}

int kbv_be_read_once(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off)
{
	if (!n)
		return 0;
	return rd->be->ops->read_once ? rd->be->ops->read_once(rd, p, n, off) : rd->be->ops->read(rd, p, n, off);
}

void kbv_be_close(struct kbv_be_rd *rd)
{
	if (rd)
		rd->be->ops->close(rd);
}

void kbv_be_read_then(struct kbv_be_rd *rd, enum kbv_obj kind, const char *name, uint64_t size)
{
	if (rd->be->ops->read_then && kbv_obj_name_ok(kind, name))
		rd->be->ops->read_then(rd, kind, name, size);
}

int kbv_be_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out)
{
	struct kbv_be_rd *rd = NULL;
	uint64_t size;
	int rc = 0;
	if (kept_take(be, kind, name, out))
		return 0;
	if (be->ops->get) {
		if (!kbv_obj_name_ok(kind, name))
			return bad_name(kind, name);
		return be->ops->get(be, kind, name, out);
	}
	TRY(kbv_be_open(be, kind, name, &rd, &size));
	if (size > ((uint64_t)1 << 40)) {
		rc = kbv_error(KBV_ECORRUPT, "object of %llu bytes is too large to read whole", (unsigned long long)size);
		goto out;
	}
	out->len = 0;
	TRY(kbv_buf_reserve(out, (size_t)size + 1));
	TRY(kbv_be_read(rd, out->data, (size_t)size, 0));
	out->len = (size_t)size;
out:
	kbv_be_close(rd);
	return rc;
}

/* ---- several small objects fetched side by side (kbv_be_get_many) ---- */

struct get_many {
	struct kbv_backend *be;
	enum kbv_obj kind;
	const char *const *names;
	struct kbv_buf *bufs;
	int *rcs;
};

static int get_one(void *arg, unsigned t, size_t i)
{
	struct get_many *g = arg;
	(void)t;
	int rc = kbv_be_get(g->be, g->kind, g->names[i], &g->bufs[i]);
	if (g->rcs)
		g->rcs[i] = rc;
	return rc;
}

int kbv_be_get_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n,
		    struct kbv_buf *bufs, int *rcs)
{
	struct get_many g = { .be = be, .kind = kind, .names = names, .bufs = bufs, .rcs = rcs };
	for (size_t i = 0; rcs && i < n; i++)
		rcs[i] = 1;
	return kbv_beside_each(n, kbv_backend_parallel(be), get_one, &g);
}

int kbv_be_list_done(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg, uint64_t *done)
{
	struct kbv_be_ahead *a = ahead_take(be, kind);
	int rc = 0;
	if (!a) {
		rc = be->ops->list(be, kind, fn, arg);
		if (done)
			*done = kbv_be_tick();
		return rc;
	}
	const struct ahead_entry *e = (const struct ahead_entry *)a->entries.data;
	for (size_t i = 0; rc == 0 && i < a->entries.len / sizeof *e; i++)
		rc = fn(arg, (const char *)a->names.data + e[i].name, e[i].size, e[i].mtime);
	if (done)
		*done = a->done;
	ahead_free(a);
	return rc;
}

int kbv_be_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	return kbv_be_list_done(be, kind, fn, arg, NULL);
}

int kbv_be_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!kbv_obj_name_ok(kind, names[i]))
			return bad_name(kind, names[i]);
	if (n)
		changing(be);
	if (be->ops->remove_many)
		return n ? be->ops->remove_many(be, kind, names, n) : 0;
	for (size_t i = 0; i < n; i++) {
		int rc = be->ops->remove(be, kind, names[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int kbv_be_clock(struct kbv_backend *be, int64_t *now)
{
	return be->ops->clock(be, now);
}

int kbv_be_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	changing(be);
	return be->ops->remove(be, kind, name);
}

int kbv_shared_url_ok(const char *url)
{
	return url && !strncmp(url, "shared:", 7);
}

int kbv_obj_retained(enum kbv_obj kind)
{
	return kind == KBV_OBJ_CONFIG || kind == KBV_OBJ_KEY || kind == KBV_OBJ_PACK || kind == KBV_OBJ_SNAPSHOT ||
	       kind == KBV_OBJ_RECORD || kind == KBV_OBJ_INDEX || kind == KBV_OBJ_WAL;
}

int kbv_be_set_retention(struct kbv_backend *be, int64_t seconds)
{
	if (!be->ops->set_retention)
		return kbv_error(KBV_EINVAL, "Object Lock needs a repository on object storage (this one is on %s storage)",
				 be->ops->name);
	return be->ops->set_retention(be, seconds);
}

int kbv_be_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	*until = 0;
	return be->ops->retention ? be->ops->retention(be, kind, name, until) : 0;
}

int kbv_be_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until)
{
	if (!kbv_obj_name_ok(kind, name))
		return bad_name(kind, name);
	if (!be->ops->extend)
		return kbv_error(KBV_EINVAL, "Object Lock needs a repository on object storage");
	return be->ops->extend(be, kind, name, until);
}

int kbv_be_exists(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	struct kbv_be_rd *rd = NULL;
	uint64_t size = 0;
	int rc = kbv_be_open(be, kind, name, &rd, &size);
	if (rc == KBV_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	kbv_be_close(rd);
	return 1;
}
