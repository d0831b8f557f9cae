/* A backend that passes everything to another one and fails the n-th operation of a chosen
 * kind (the SQLite way of testing every failure point): tests enumerate n over a whole
 * snapshot or gc and check that each failure loses nothing. Or, as "pause", holds the n-th
 * operation until a test says go, so that a test can put another process's work at that
 * exact point (a rendezvous through two files in $KBVAULT_FAULT_PAUSE). */
#include "backend_impl.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fop { F_WRITE, F_COMMIT, F_READ, F_LIST, F_REMOVE };
enum ferr { E_IO, E_NOSPC, E_SHORT, E_PAUSE };

#define PAUSE_LIMIT_S 300 /* a test that never says go fails instead of hanging */

struct fault {
	struct kbv_backend base;
	struct kbv_backend *inner;
	enum fop op;
	int kind; /* -1: any */
	enum ferr err;
	uint64_t n;
	atomic_uint_fast64_t seen; /* readers of several threads count here */
};

struct fault_wr {
	struct kbv_be_wr base;
	struct kbv_be_wr *inner;
	enum kbv_obj kind;
	char what[300];
};

struct fault_rd {
	struct kbv_be_rd base;
	struct kbv_be_rd *inner;
	enum kbv_obj kind;
	char what[300];
};

static const char *const op_names[] = { "write", "commit", "read", "list", "remove" };
static const char *const kind_names[KBV_OBJ_KINDS] = { "config", "key", "pack", "snapshot", "record", "index", "plan", "lock", "wal" };

/* "pause": create <dir>/reached, then wait for <dir>/go. 0 once told to go. */
static int pause_here(void)
{
	const char *dir = getenv("KBVAULT_FAULT_PAUSE");
	char path[4096];
	if (!dir || snprintf(path, sizeof path, "%s/reached", dir) >= (int)sizeof path)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(path, sizeof path, "%s/go", dir);
	for (int i = 0; i < PAUSE_LIMIT_S * 100; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return -1;
}

/* Is this the operation to fail? Counts it when it is of the chosen op and kind. A pause
 * is not a failure: the operation goes on once the test says go. */
static int hit(struct fault *f, enum fop op, enum kbv_obj kind)
{
	if (op != f->op || (f->kind >= 0 && (int)kind != f->kind))
		return 0;
	if (atomic_fetch_add(&f->seen, 1) + 1 != f->n)
		return 0;
	return f->err != E_PAUSE || pause_here() < 0;
}

static int fail(struct fault *f, enum fop op, const char *what)
{
	if (f->err == E_PAUSE)
		return kbv_error(KBV_EIO, "%s '%s': paused, and no '%s/go' came within %d s (injected fault)", op_names[op],
				 what, getenv("KBVAULT_FAULT_PAUSE") ? getenv("KBVAULT_FAULT_PAUSE") : "$KBVAULT_FAULT_PAUSE",
				 PAUSE_LIMIT_S);
	return kbv_error(KBV_EIO, "%s '%s': %s (injected fault)", op_names[op], what,
			 f->err == E_NOSPC ? strerror(ENOSPC) : strerror(EIO));
}

static void fault_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	kbv_be_describe(((struct fault *)be)->inner, kind, name, out, cap);
}

static int fault_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out)
{
	struct fault *f = (struct fault *)be;
	struct fault_wr *w = calloc(1, sizeof *w);
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	int rc = kbv_be_create(f->inner, kind, name, &w->inner);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->base.be = be;
	w->kind = kind;
	kbv_be_describe(f->inner, kind, name, w->what, sizeof w->what);
	*out = &w->base;
	return 0;
}

static int fault_append(struct kbv_be_wr *bw, const void *p, size_t n)
{
	struct fault_wr *w = (struct fault_wr *)bw;
	struct fault *f = (struct fault *)bw->be;
	if (hit(f, F_WRITE, w->kind)) {
		if (f->err == E_SHORT)
			kbv_be_append(w->inner, p, n / 2);
		return fail(f, F_WRITE, w->what);
	}
	return kbv_be_append(w->inner, p, n);
}

static int fault_commit(struct kbv_be_wr *bw, unsigned flags)
{
	struct fault_wr *w = (struct fault_wr *)bw;
	struct fault *f = (struct fault *)bw->be;
	if (hit(f, F_COMMIT, w->kind))
		return fail(f, F_COMMIT, w->what);
	return kbv_be_commit(w->inner, flags);
}

static void fault_discard(struct kbv_be_wr *bw)
{
	struct fault_wr *w = (struct fault_wr *)bw;
	kbv_be_discard(w->inner);
	free(w);
}

static int fault_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out,
		      uint64_t *size)
{
	struct fault *f = (struct fault *)be;
	struct fault_rd *rd = calloc(1, sizeof *rd);
	if (!rd)
		return kbv_error(KBV_ENOMEM, "out of memory");
	int rc = kbv_be_open(f->inner, kind, name, &rd->inner, size);
	if (rc < 0) {
		free(rd);
		return rc;
	}
	rd->base.be = be;
	rd->kind = kind;
	kbv_be_describe(f->inner, kind, name, rd->what, sizeof rd->what);
	*out = &rd->base;
	return 0;
}

/* A read's injected fault, if this one is hit (else 0). */
static int read_fault(struct fault_rd *rd, uint64_t off)
{
	struct fault *f = (struct fault *)rd->base.be;
	if (!hit(f, F_READ, rd->kind))
		return 0;
	if (f->err == E_SHORT)
		return kbv_error(KBV_ECORRUPT, "'%s' is truncated: no data at offset %llu (injected fault)", rd->what,
				 (unsigned long long)off);
	return fail(f, F_READ, rd->what);
}

static int fault_read(struct kbv_be_rd *brd, void *p, size_t n, uint64_t off)
{
	struct fault_rd *rd = (struct fault_rd *)brd;
	int rc = read_fault(rd, off);
	return rc < 0 ? rc : kbv_be_read(rd->inner, p, n, off);
}

static int fault_read_once(struct kbv_be_rd *brd, void *p, size_t n, uint64_t off)
{
	struct fault_rd *rd = (struct fault_rd *)brd;
	int rc = read_fault(rd, off);
	return rc < 0 ? rc : kbv_be_read_once(rd->inner, p, n, off);
}

static void fault_close(struct kbv_be_rd *brd)
{
	struct fault_rd *rd = (struct fault_rd *)brd;
	kbv_be_close(rd->inner);
	free(rd);
}

/* Advice is passed on, not counted: it is no operation that could fail. */
static void fault_read_then(struct kbv_be_rd *brd, enum kbv_obj kind, const char *name, uint64_t size)
{
	kbv_be_read_then(((struct fault_rd *)brd)->inner, kind, name, size);
}

static int fault_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	struct fault *f = (struct fault *)be;
	if (hit(f, F_LIST, kind))
		return fail(f, F_LIST, kind_names[kind]);
	return kbv_be_list(f->inner, kind, fn, arg);
}

static int fault_clock(struct kbv_backend *be, int64_t *now)
{
	return kbv_be_clock(((struct fault *)be)->inner, now);
}

static int fault_set_retention(struct kbv_backend *be, int64_t seconds)
{
	return kbv_be_set_retention(((struct fault *)be)->inner, seconds);
}

static int fault_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until)
{
	return kbv_be_retention(((struct fault *)be)->inner, kind, name, until);
}

static int fault_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until)
{
	return kbv_be_extend(((struct fault *)be)->inner, kind, name, until);
}

static int fault_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	struct fault *f = (struct fault *)be;
	if (hit(f, F_REMOVE, kind)) {
		char what[300];
		kbv_be_describe(f->inner, kind, name, what, sizeof what);
		return fail(f, F_REMOVE, what);
	}
	return kbv_be_remove(f->inner, kind, name);
}

/* Each name counts as one remove, so that the n-th remove fails whether objects go one by
 * one or in batches: the ones before it are removed, it and the rest are not. */
static int fault_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct fault *f = (struct fault *)be;
	for (size_t i = 0; i < n; i++) {
		if (hit(f, F_REMOVE, kind)) {
			char what[300];
			int rc = kbv_be_remove_many(f->inner, kind, names, i);
			if (rc < 0)
				return rc;
			kbv_be_describe(f->inner, kind, names[i], what, sizeof what);
			return fail(f, F_REMOVE, what);
		}
	}
	return kbv_be_remove_many(f->inner, kind, names, n);
}

static int fault_sync(struct kbv_backend *be)
{
	return kbv_be_sync(((struct fault *)be)->inner);
}

static void fault_free(struct kbv_backend *be)
{
	struct fault *f = (struct fault *)be;
	kbv_backend_free(f->inner);
	free(f);
}

static const struct kbv_backend_ops fault_ops = {
	.name = "fault",
	.create = fault_create,
	.append = fault_append,
	.commit = fault_commit,
	.discard = fault_discard,
	.open = fault_open,
	.read = fault_read,
	.read_once = fault_read_once,
	.close = fault_close,
	.read_then = fault_read_then,
	.list = fault_list,
	.remove = fault_remove,
	.clock = fault_clock,
	.set_retention = fault_set_retention,
	.retention = fault_retention,
	.extend = fault_extend,
	.remove_many = fault_remove_many,
	.sync = fault_sync,
	.describe = fault_describe,
	.free = fault_free,
};

static int lookup(const char *const *names, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0)
			return (int)i;
	return -1;
}

/* "OP[:KIND]:N[:ERROR]" */
static int parse(struct fault *f, const char *spec)
{
	char part[4][32];
	int np = 0;
	for (const char *p = spec;;) {
		const char *c = strchr(p, ':');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (np == 4 || len == 0 || len >= sizeof part[0])
			return -1;
		memcpy(part[np], p, len);
		part[np++][len] = 0;
		if (!c)
			break;
		p = c + 1;
	}
	int op = lookup(op_names, 5, part[0], strlen(part[0])), i = 1;
	if (op < 0 || np < 2)
		return -1;
	f->op = (enum fop)op;
	f->kind = lookup(kind_names, KBV_OBJ_KINDS, part[1], strlen(part[1]));
	if (f->kind >= 0)
		i++;
	if (i >= np)
		return -1;
	long n;
	if (kbv_parse_long(part[i], 1, LONG_MAX, &n) < 0) /* strtoull took "-1" as 2^64-1: never hit */
		return -1;
	f->n = (uint64_t)n;
	f->err = E_IO;
	if (++i < np) {
		static const char *const errs[] = { "eio", "enospc", "short", "pause" };
		int e = lookup(errs, 4, part[i], strlen(part[i]));
		if (e < 0 || i + 1 < np)
			return -1;
		f->err = (enum ferr)e;
	}
	return 0;
}

int kbv_backend_fault_new(struct kbv_backend *inner, const char *spec, struct kbv_backend **out)
{
	struct fault *f = calloc(1, sizeof *f);
	if (!f) {
		kbv_backend_free(inner);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	if (parse(f, spec) < 0) {
		free(f);
		kbv_backend_free(inner);
		return kbv_error(KBV_EINVAL, "fault '%s': expected OP[:KIND]:N[:ERROR]", spec);
	}
	f->inner = inner;
	f->base.ops = &fault_ops;
	f->base.features = inner->features;
	f->base.parallel = inner->parallel;
	f->base.root = inner->root;
	*out = &f->base;
	return 0;
}

uint64_t kbv_backend_fault_count(const struct kbv_backend *be)
{
	return be->ops == &fault_ops ? atomic_load(&((struct fault *)be)->seen) : 0;
}
