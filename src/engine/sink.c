/* The sink of a snapshot being built (include/kbv/sink.h): entries with names checked the
 * moment they are added, streams through the writer, trees walked with owners. */
#include "kbv/sink.h"
#include "kbv/error.h"
#include "kbv/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Files of at least this size have cut hints (engine/hints.h). */
#define HINTED_FILE (4u << 20)

struct kbv_sink {
	struct kbv_repo *repo;
	struct kbv_writer *w;
	struct kbv_sink_events ev;
	int64_t now;
	struct kbv_entry *e;
	size_t n, cap;
	int degraded;
	const char *exclude; /* of the tree being walked (borrowed) */
};

int kbv_sink_new(struct kbv_repo *r, struct kbv_writer *w, int64_t now, const struct kbv_sink_events *ev,
		 struct kbv_sink **out)
{
	struct kbv_sink *s = calloc(1, sizeof *s);
	if (!s)
		return kbv_error(KBV_ENOMEM, "out of memory");
	s->repo = r;
	s->w = w;
	s->now = now;
	if (ev)
		s->ev = *ev;
	*out = s;
	return 0;
}

void kbv_sink_free(struct kbv_sink *s)
{
	if (!s)
		return;
	kbv_entries_free(s->e, s->n);
	free(s);
}

struct kbv_writer *kbv_sink_writer(struct kbv_sink *s)
{
	return s->w;
}

struct kbv_repo *kbv_sink_repo(struct kbv_sink *s)
{
	return s->repo;
}

const struct kbv_entry *kbv_sink_entries(const struct kbv_sink *s, size_t *n)
{
	*n = s->n;
	return s->e;
}

void kbv_sink_set_degraded(struct kbv_sink *s)
{
	s->degraded = 1;
}

int kbv_sink_degraded(const struct kbv_sink *s)
{
	return s->degraded;
}

static void say(void (*fn)(void *, const char *), void *arg, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (fn)
		fn(arg, msg);
}

void kbv_events_warn(const struct kbv_sink_events *ev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (ev)
		say(ev->warn, ev->arg, fmt, ap);
	va_end(ap);
}

void kbv_sink_warn(struct kbv_sink *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(s->ev.warn, s->ev.arg, fmt, ap);
	va_end(ap);
}

void kbv_sink_info(struct kbv_sink *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(s->ev.info, s->ev.arg, fmt, ap);
	va_end(ap);
}

/* Can `name` be restored as a file under a directory? Path components of at most NAME_MAX
 * bytes, a whole name well below PATH_MAX; and a name the user typed (a stream, not a file
 * found on disk) holds no control characters, which would reach terminals raw. */
static int restorable_name(int kind, const char *name)
{
	size_t comp = 0, total = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++, total++) {
		comp = *p == '/' ? 0 : comp + 1;
		if (comp > NAME_MAX || ((kind == KBV_ENTRY_STDIN || kind == KBV_ENTRY_COMMAND) && (*p < 0x20 || *p == 0x7f)))
			return 0;
	}
	return total <= 3072;
}

struct kbv_entry *kbv_sink_entry(struct kbv_sink *c, int kind, const char *name)
{
	if (!kbv_entry_name_ok(name)) {
		kbv_error(KBV_EINVAL, "'%s' is not a valid stream name (a relative path, not empty, without '.', '..' "
				      "or empty components)",
			  name);
		return NULL;
	}
	if (!restorable_name(kind, name)) {
		kbv_error(KBV_EINVAL, "stream name '%.80s%s' cannot be restored: no control characters, at most %d bytes "
				      "between slashes and 3072 in all",
			  name, strlen(name) > 80 ? "..." : "", NAME_MAX);
		return NULL;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct kbv_entry *ne = realloc(c->e, cap * sizeof *ne);
		if (!ne) {
			kbv_error(KBV_ENOMEM, "out of memory");
			return NULL;
		}
		c->e = ne;
		c->cap = cap;
	}
	struct kbv_entry *x = &c->e[c->n];
	memset(x, 0, sizeof *x);
	x->kind = (uint8_t)kind;
	x->name = strdup(name);
	if (!x->name) {
		kbv_error(KBV_ENOMEM, "out of memory");
		return NULL;
	}
	x->ref.depth = KBV_REF_EMPTY;
	x->mtime = c->now;
	c->n++;
	/* A stream's bytes come next: cut where this name's last snapshot cut (hints.h). */
	if ((kind == KBV_ENTRY_STDIN || kind == KBV_ENTRY_COMMAND) && kbv_writer_hint(c->w, name) < 0)
		return NULL;
	return x;
}

void kbv_sink_set_result(struct kbv_entry *x, const struct kbv_stream_result *res)
{
	x->size = res->size;
	x->hash = res->hash;
	x->ref = res->ref;
}

int kbv_sink_fd(struct kbv_sink *s, const char *name, int fd, const char *what)
{
	struct kbv_stream_result res;
	struct kbv_entry *x = kbv_sink_entry(s, KBV_ENTRY_COMMAND, name);
	if (!x)
		return KBV_EINVAL; /* the message is set */
	int rc = kbv_writer_fd(s->w, fd, what, &res);
	if (rc < 0)
		return rc;
	x->mode = 0600;
	kbv_sink_set_result(x, &res);
	return 0;
}

int kbv_sink_child(struct kbv_sink *s, const char *name, pid_t pid, int fd, const char *what)
{
	struct kbv_stream_result res;
	struct kbv_entry *x = kbv_sink_entry(s, KBV_ENTRY_COMMAND, name);
	int rc = x ? kbv_writer_fd(s->w, fd, what, &res) : KBV_EINVAL;
	close(fd);
	int rc2 = kbv_cmd_finish(pid, what, rc < 0);
	if (rc < 0)
		return rc;
	if (rc2 < 0)
		return rc2;
	x->mode = 0600;
	kbv_sink_set_result(x, &res);
	return 0;
}

/* The owner of a file by number and by name (names resolve to the right numbers on
 * another host); the last lookups are kept, most files of a tree share one owner. */
static int owner_of(const struct stat *st, struct kbv_entry *x)
{
	static uid_t last_uid = (uid_t)-1;
	static gid_t last_gid = (gid_t)-1;
	static char user[64], group[64];
	if (st->st_uid != last_uid) {
		struct passwd pw, *res = NULL;
		char buf[1024];
		last_uid = st->st_uid;
		snprintf(user, sizeof user, "%s",
			 getpwuid_r(st->st_uid, &pw, buf, sizeof buf, &res) == 0 && res ? res->pw_name : "");
	}
	if (st->st_gid != last_gid) {
		struct group gr, *res = NULL;
		char buf[1024];
		last_gid = st->st_gid;
		snprintf(group, sizeof group, "%s",
			 getgrgid_r(st->st_gid, &gr, buf, sizeof buf, &res) == 0 && res ? res->gr_name : "");
	}
	x->uid = st->st_uid;
	x->gid = st->st_gid;
	x->user = strdup(user);
	x->group = strdup(group);
	return x->user && x->group ? 0 : -1;
}

/* Does an exclude pattern (path sources' `exclude`, separated by white space) match? A
 * pattern with a '/' matches the whole path, one without the last component (fnmatch). */
static int excluded(const char *patterns, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (const char *p = patterns; p && *p;) {
		char pat[PATH_MAX];
		size_t n = strcspn(p, " \t");
		if (n && n < sizeof pat) {
			memcpy(pat, p, n);
			pat[n] = 0;
			if (strchr(pat, '/') ? fnmatch(pat, path, FNM_PATHNAME) == 0 : fnmatch(pat, base, 0) == 0)
				return 1;
		}
		p += n;
		p += strspn(p, " \t");
	}
	return 0;
}

static int add_path(void *arg, const char *path, const char *name, const struct stat *st)
{
	struct kbv_sink *c = arg;
	struct kbv_stream_result res;
	int kind = S_ISREG(st->st_mode) ? KBV_ENTRY_FILE : S_ISDIR(st->st_mode) ? KBV_ENTRY_DIR
						      : S_ISLNK(st->st_mode) ? KBV_ENTRY_SYMLINK : 0;
	if (!kind) {
		kbv_sink_warn(c, "skipping '%s': not a regular file, directory or symlink", path);
		return 0;
	}
	if (excluded(c->exclude, path)) {
		kbv_sink_info(c, "excluded: %s", path);
		return KBV_WALK_SKIP;
	}
	struct kbv_entry *x = kbv_sink_entry(c, kind, name);
	if (!x)
		return KBV_EINVAL;
	if (owner_of(st, x) < 0)
		return kbv_error(KBV_ENOMEM, "out of memory");
	x->mode = st->st_mode;
	x->mtime = st->st_mtim.tv_sec;
	x->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	if (kind == KBV_ENTRY_SYMLINK) {
		char t[PATH_MAX];
		ssize_t n = readlink(path, t, sizeof t - 1);
		if (n < 0)
			return kbv_error(KBV_ESOURCE, "cannot read symlink '%s': %s", path, strerror(errno));
		t[n] = 0;
		x->target = strdup(t);
		x->size = (uint64_t)n;
		if (!x->target)
			return kbv_error(KBV_ENOMEM, "out of memory");
		return 0;
	}
	if (kind == KBV_ENTRY_DIR)
		return 0;
	/* A file large enough to pay for its cut hints' file (a tree of small files would
	 * make one each) is cut where it was cut last time (hints.h). */
	if (st->st_size >= HINTED_FILE && kbv_writer_hint(c->w, name) < 0)
		return kbv_error(KBV_ENOMEM, "out of memory");
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		kbv_writer_hint(c->w, NULL);
		return kbv_error(KBV_ESOURCE, "cannot open '%s': %s", path, strerror(errno));
	}
	int rc = kbv_writer_fd(c->w, fd, path, &res);
	struct stat after;
	if (rc == 0 && fstat(fd, &after) == 0 &&
	    (after.st_mtim.tv_sec != st->st_mtim.tv_sec || after.st_mtim.tv_nsec != st->st_mtim.tv_nsec))
		kbv_sink_warn(c, "'%s' changed while it was read; the snapshot holds what was read", path);
	close(fd);
	if (rc < 0)
		return kbv_error_prefix(rc, "file '%s'", path);
	kbv_sink_set_result(x, &res);
	return 0;
}

int kbv_sink_tree(struct kbv_sink *s, const char *path, const char *name, const char *exclude)
{
	s->exclude = exclude;
	int rc = kbv_walk(path, name, add_path, s);
	s->exclude = NULL;
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(const struct kbv_entry *const *)a)->name, (*(const struct kbv_entry *const *)b)->name);
}

int kbv_sink_check(struct kbv_sink *c)
{
	const struct kbv_entry **v = malloc((c->n + 1) * sizeof *v);
	int rc = 0;
	if (!v)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n; i++)
		v[i] = &c->e[i];
	qsort(v, c->n, sizeof *v, cmp_name);
	for (size_t i = 1; i < c->n && !rc; i++)
		if (!strcmp(v[i - 1]->name, v[i]->name))
			rc = kbv_error(KBV_EINVAL, "two streams are named '%s'", v[i]->name);
	/* A stream or file that is also the directory of another entry ("p" and "p/q") could
	 * never be restored into a directory: refused now, not found out at restore time. */
	for (size_t i = 0; i < c->n && !rc; i++) {
		if (v[i]->kind == KBV_ENTRY_DIR)
			continue;
		size_t len = strlen(v[i]->name), lo = i + 1, hi = c->n;
		while (lo < hi) { /* the first name not below "<name>/" */
			size_t mid = lo + (hi - lo) / 2;
			int cmp = strncmp(v[mid]->name, v[i]->name, len);
			if (cmp < 0 || (cmp == 0 && v[mid]->name[len] < '/'))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < c->n && !strncmp(v[lo]->name, v[i]->name, len) && v[lo]->name[len] == '/')
			rc = kbv_error(KBV_EINVAL, "stream '%s' would also be the directory holding '%s': give them names "
						   "that can both be restored",
				       v[i]->name, v[lo]->name);
	}
	free(v);
	return rc;
}
