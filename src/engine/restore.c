/* Restore entries of a snapshot into a directory tree (include/kbv/restore.h).
 *
 * The target may belong to someone hostile: a directory component may be a planted
 * symlink to /etc, a file's name may already be a symlink to a victim. So every path is
 * walked from a directory descriptor with O_NOFOLLOW, each file is written to a fresh
 * O_EXCL name in its own directory and renamed over the final name (rename replaces a
 * symlink, it does not write through it), and modes are applied through descriptors. */
#include "kbv/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pool.h"

/* Open the directory at the first `len` bytes of `rel` below `rootfd` (len 0: rootfd
 * itself), component by component, never following a symlink unless `trusted` allows it
 * (owned by root or by us). Missing components are created (0700) when `create`. */
static int open_dir(int rootfd, const char *rel, size_t len, int create, int trusted, int *out)
{
	int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return kbv_error(KBV_EIO, "dup: %s", strerror(errno));
	const char *p = rel, *end = rel + len;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = (size_t)((slash ? slash : end) - p);
		char comp[NAME_MAX + 1];
		if (n > NAME_MAX) {
			close(fd);
			return kbv_error(KBV_EINVAL, "'%.*s': a name longer than %d bytes", (int)len, rel, NAME_MAX);
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		p += n + 1;
		if (!n)
			continue;
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
				int e = errno;
				close(fd);
				return kbv_error(KBV_EIO, "create directory '%.*s': %s",
						 (int)(p - 1 - rel), rel, strerror(e));
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0 && (errno == ELOOP || errno == ENOTDIR) && trusted) {
			struct stat st;
			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
			    (st.st_uid == 0 || st.st_uid == geteuid()))
				nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			else
				errno = ELOOP;
		}
		if (nfd < 0) {
			int e = errno;
			close(fd);
			if (e == ELOOP || e == ENOTDIR)
				return kbv_error(KBV_EINVAL, "'%.*s' is a symlink or not a directory in the target; "
							     "kbvault does not follow it",
						 (int)(p - 1 - rel), rel);
			return kbv_error(KBV_EIO, "open directory '%.*s': %s", (int)(p - 1 - rel), rel, strerror(e));
		}
		close(fd);
		fd = nfd;
	}
	*out = fd;
	return 0;
}

/* A directory a restore writes files into, held open (below). Only the restoring thread
 * takes and drops references; a file handed to a writer holds one until its result is
 * taken back on that thread. */
struct pdir {
	int fd;
	unsigned refs;
	size_t len; /* its path's length below the root; kept only when < PATH_MAX */
	char path[];
};

static void pdir_put(struct pdir *d)
{
	if (d && --d->refs == 0) {
		close(d->fd);
		free(d);
	}
}

/* Small files are written by writer threads (kbv_reader_threads of them) while this thread
 * reads and proves the next ones (docs/design.md, "Restore"). A job is a run of files (up
 * to FILES_PER_JOB, or JOB_BYTES and one more file): one hand-off per file cost more than
 * the file. The writers' results come back to this thread in order: counts, progress and
 * errors stay here. */
#define WRITE_SLOTS_PER_THREAD 4
#define WRITE_SLOTS_MAX 32
#define FILES_PER_JOB 32
#define JOB_BYTES (512u << 10)

/* A file's owner, mode and times as this restore applies them. */
struct file_meta {
	int apply; /* a file entry (a stream entry has none of these) */
	int owned; /* uid and gid to give (root, and the snapshot recorded them) */
	uid_t uid;
	gid_t gid;
	mode_t mode;
	struct timespec tv[2];
};

struct wfile {
	struct pdir *pd; /* a reference */
	const char *name, *base;
	size_t off, len; /* its bytes in the job's data */
	struct file_meta m;
	int skipped; /* the writer found something at its name (without --overwrite) */
};

struct wjob {
	struct wfile f[FILES_PER_JOB];
	size_t n;            /* files */
	size_t done;         /* files the writer put in place, in order */
	struct kbv_buf data; /* their bytes, proven; the buffer stays with the slot */
	int overwrite;
	int rc;        /* the writer's failure (at file `done`), its message in msg */
	char msg[1024];
};

/* What a restore keeps from one entry to the next: the directory the last file went into,
 * held open (a tree's files come directory by directory, and walking each one's path from
 * the root again was three opens per file), the last owner names looked up (reading
 * /etc/passwd and /etc/group again for every file was four more), and the writers. */
struct restore_ctx {
	int rootfd;
	const struct kbv_restore_opts *o;
	struct kbv_restore_result *res;
	struct pdir *pd; /* the last parent directory (a reference), or NULL */
	int root;        /* running as root: owners are restored */
	struct owner_name { /* the last user and group names looked up */
		char name[64]; /* "" none */
		uint32_t id;
		int found;
	} user, group;
	struct kbv_pool *pool; /* the writers (started at the first small file), or NULL */
	void **wstate;
	struct wjob *open;     /* the job being filled (acquired, not submitted), or NULL */
	const char **inflight; /* the names of the files in jobs not taken back, oldest first */
	size_t nflight, flight0, ncap;
	int wrc; /* the first writer's failure, its message in wmsg */
	char wmsg[1024];
};

/* The directory part of `name` (created when missing) with a reference for the caller,
 * *base its last component. The context keeps the last one: the same directory's next file
 * finds it open. It is the directory that was walked to without following a link, so
 * holding it open is no less safe than walking again: a name swapped for a symlink
 * afterwards is never followed. */
static int open_parent(struct restore_ctx *c, const char *name, struct pdir **out, const char **base)
{
	const char *slash = strrchr(name, '/');
	size_t len = slash ? (size_t)(slash - name) : 0;
	*base = slash ? slash + 1 : name;
	if (c->pd && len == c->pd->len && memcmp(name, c->pd->path, len) == 0) {
		c->pd->refs++;
		*out = c->pd;
		return 0;
	}
	int keep = len < PATH_MAX; /* else (open_dir walks any length) not kept: walked again */
	struct pdir *d = malloc(sizeof *d + (keep ? len : 0));
	if (!d)
		return kbv_error(KBV_ENOMEM, "out of memory");
	int rc = open_dir(c->rootfd, name, len, 1, c->o->follow_trusted_links, &d->fd);
	if (rc < 0) {
		free(d);
		return rc;
	}
	d->refs = 1;
	d->len = keep ? len : SIZE_MAX;
	if (keep) {
		memcpy(d->path, name, len);
		pdir_put(c->pd);
		c->pd = d;
		d->refs++;
	}
	*out = d;
	return 0;
}

/* A fresh name beside the final one: nobody can have planted anything there. */
static void temp_name(char *out, size_t cap)
{
	uint8_t r[8];
	char hex[17];
	randombytes_buf(r, sizeof r);
	sodium_bin2hex(hex, sizeof hex, r, sizeof r);
	snprintf(out, cap, ".kbvault-%s.partial", hex);
}

/* A new file under a fresh name `tmp` in pfd, open for reading and writing; or <0. */
static int create_temp(int pfd, char *tmp, size_t cap, const char *name)
{
	int fd;
	do {
		temp_name(tmp, cap);
		fd = openat(pfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EEXIST);
	if (fd < 0)
		return kbv_error(KBV_EIO, "create a file beside '%s': %s", name, strerror(errno));
	return fd;
}

/* Move tmp over base (overwrite) or next to nothing (RENAME_NOREPLACE): 1 when base
 * existed and was left alone. */
static int put_in_place(int pfd, const char *tmp, const char *base, const char *name, int overwrite)
{
	int r = overwrite ? renameat(pfd, tmp, pfd, base) : renameat2(pfd, tmp, pfd, base, RENAME_NOREPLACE);
	if (r == 0)
		return 0;
	int e = errno;
	unlinkat(pfd, tmp, 0);
	if (!overwrite && e == EEXIST)
		return 1;
	return kbv_error(KBV_EIO, "put '%s' in place: %s", name, strerror(e));
}

/* n more file bytes in place: counted, and the progress told. */
static void count_bytes(struct restore_ctx *c, uint64_t n)
{
	c->res->bytes += n;
	if (c->o->progress)
		c->o->progress(c->o->progress_arg, c->res->bytes);
}

/* Each piece once it is in the file (kbv_reader_stream_fd; arg the restore's context). */
static int file_written(void *arg, const uint8_t *p, size_t n)
{
	(void)p;
	count_bytes(arg, n);
	return 0;
}

/* Owner names to numbers here: getpwnam_r and getgrnam_r, 1 with *id when the name exists. */
static int user_id(const char *name, uint32_t *id)
{
	struct passwd pw, *pr = NULL;
	char buf[1024];
	if (getpwnam_r(name, &pw, buf, sizeof buf, &pr) != 0 || !pr)
		return 0;
	*id = (uint32_t)pr->pw_uid;
	return 1;
}

static int group_id(const char *name, uint32_t *id)
{
	struct group gr, *gres = NULL;
	char buf[1024];
	if (getgrnam_r(name, &gr, buf, sizeof buf, &gres) != 0 || !gres)
		return 0;
	*id = (uint32_t)gres->gr_gid;
	return 1;
}

/* The number for owner name `name` here (by `lookup`), or the `recorded` one when the
 * name is empty or does not exist here; the last name looked up is remembered in m. */
static uint32_t owner_id(struct owner_name *m, const char *name, uint32_t recorded,
			 int (*lookup)(const char *, uint32_t *))
{
	if (!*name)
		return recorded;
	if (strcmp(name, m->name) != 0) {
		uint32_t id = 0;
		int found = lookup(name, &id);
		size_t n = strlen(name);
		if (n >= sizeof m->name) /* not remembered */
			return found ? id : recorded;
		memcpy(m->name, name, n + 1);
		m->found = found;
		m->id = id;
	}
	return m->found ? m->id : recorded;
}

/* The owner to give an entry: only as root (nobody else may), only when the snapshot
 * recorded one (entry format 2), by name when that name exists here, else by number.
 * Returns 1 with *uid and *gid set, or 0. */
static int owner_for(struct restore_ctx *c, const struct kbv_entry *e, uid_t *uid, gid_t *gid)
{
	if (!c->root || !e->user || !e->group)
		return 0;
	*uid = (uid_t)owner_id(&c->user, e->user, e->uid, user_id);
	*gid = (gid_t)owner_id(&c->group, e->group, e->gid, group_id);
	return 1;
}

/* Mode bits a restore applies: setuid and setgid only when the owner was restored too (a
 * user's setuid file must never come back as a setuid-root one). */
static mode_t safe_mode(uint32_t mode, int owned)
{
	return (mode_t)(mode & (owned ? 07777 : 01777));
}

/* What to give a file or directory entry (looked up on the restoring thread). */
static void meta_of(struct restore_ctx *c, const struct kbv_entry *e, struct file_meta *m)
{
	m->apply = e->kind == KBV_ENTRY_FILE || e->kind == KBV_ENTRY_DIR;
	m->owned = owner_for(c, e, &m->uid, &m->gid);
	m->mode = safe_mode(e->mode, m->owned);
	m->tv[0] = m->tv[1] = (struct timespec){ e->mtime, e->mtime_ns };
}

/* Apply m through fd (`what` "" or "directory ", for errors). chown clears setuid bits, so
 * it comes before the mode. */
static int meta_apply(int fd, const struct file_meta *m, const char *what, const char *name)
{
	if (!m->apply)
		return 0;
	if (m->owned && fchown(fd, m->uid, m->gid) < 0)
		return kbv_error(KBV_EIO, "set the owner of '%s' to %u:%u: %s", name, (unsigned)m->uid,
				 (unsigned)m->gid, strerror(errno));
	if (fchmod(fd, m->mode) < 0 || futimens(fd, m->tv) < 0)
		return kbv_error(KBV_EIO, "set mode and time of %s'%s': %s", what, name, strerror(errno));
	return 0;
}

/* A file whose bytes are not all in memory: read into it here (kbv_reader_stream_fd, the
 * reader's workers), then its owner, mode and time, then renamed into place. */
static int restore_file(struct kbv_reader *rd, struct restore_ctx *c, const struct kbv_entry *e, const char *name,
			struct pdir *pd, const char *base, int *skipped)
{
	char tmp[64];
	struct file_meta m;
	int fd = create_temp(pd->fd, tmp, sizeof tmp, name);
	if (fd < 0)
		return fd;
	meta_of(c, e, &m);
	int rc = kbv_reader_stream_fd(rd, &e->ref, e->size, &e->hash, fd, name, file_written, c);
	if (rc == 0)
		rc = meta_apply(fd, &m, "", name);
	if (close(fd) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "close '%s': %s", name, strerror(errno));
	if (rc < 0) {
		unlinkat(pd->fd, tmp, 0);
		return kbv_error_prefix(rc, "restore '%s'", name);
	}
	if ((rc = put_in_place(pd->fd, tmp, base, name, c->o->overwrite)) == 1) {
		*skipped = 1;
		rc = 0;
	}
	return rc;
}

/* One file of a writer's job: its proven bytes into a fresh name, owner, mode, time,
 * renamed into place. */
static int write_small(const struct wjob *j, struct wfile *f)
{
	char tmp[64];
	int fd = create_temp(f->pd->fd, tmp, sizeof tmp, f->name);
	if (fd < 0)
		return fd;
	int rc = f->len ? kbv_write_full(fd, j->data.data + f->off, f->len, f->name) : 0; /* data may be NULL */
	if (rc == 0)
		rc = meta_apply(fd, &f->m, "", f->name);
	if (close(fd) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "close '%s': %s", f->name, strerror(errno));
	if (rc < 0) {
		unlinkat(f->pd->fd, tmp, 0);
		return kbv_error_prefix(rc, "restore '%s'", f->name);
	}
	rc = put_in_place(f->pd->fd, tmp, f->base, f->name, j->overwrite);
	f->skipped = rc == 1;
	return rc < 0 ? rc : 0;
}

/* A writer: the job's files in order, up to the first that fails. */
static void write_job(void *worker, void *job)
{
	struct wjob *j = job;
	(void)worker;
	j->rc = 0;
	for (j->done = 0; j->done < j->n; j->done++)
		if ((j->rc = write_small(j, &j->f[j->done])) < 0) {
			snprintf(j->msg, sizeof j->msg, "%s", kbv_errmsg());
			break;
		}
}

static int wanted(const struct kbv_entry *e, const struct kbv_restore_opts *o)
{
	return strlen(e->name) > o->strip && (!o->select || o->select(e, o->select_arg));
}

static void skip(const struct kbv_restore_opts *o, struct kbv_restore_result *res, const char *name)
{
	res->skipped++;
	if (o->skipped)
		o->skipped(o->skipped_arg, name);
}

/* A writer's results, taken back on the restoring thread in order: counted, or the first
 * failure kept (the jobs handed over after it are still written, each file whole). */
static int job_done(void *arg, void *job)
{
	struct restore_ctx *c = arg;
	struct wjob *j = job;
	uint64_t bytes = 0;
	for (size_t i = 0; i < j->n; i++) {
		struct wfile *f = &j->f[i];
		if (i < j->done && f->skipped) {
			skip(c->o, c->res, f->name);
		} else if (i < j->done) {
			c->res->entries++;
			bytes += f->len;
		}
		pdir_put(f->pd);
		f->pd = NULL;
	}
	c->flight0 += j->n;
	c->nflight -= j->n;
	if (j->rc < 0 && !c->wrc) {
		c->wrc = j->rc;
		snprintf(c->wmsg, sizeof c->wmsg, "%s", j->msg);
	}
	count_bytes(c, bytes);
	return 0;
}

/* Hand the job being filled to the writers. */
static void writers_submit(struct restore_ctx *c)
{
	if (c->open && c->open->n)
		kbv_pool_submit(c->pool);
	c->open = NULL; /* an empty one was never submitted: the next acquire returns it again */
}

/* Hand over what is filled, wait for every file handed to the writers, take the results. */
static void writers_drain(struct restore_ctx *c)
{
	if (!c->pool)
		return;
	writers_submit(c);
	kbv_pool_consume(c->pool, job_done, c, 1);
}

static int writers_start(struct kbv_reader *rd, struct restore_ctx *c)
{
	size_t n = kbv_reader_threads(rd);
	if (!n)
		n = 1;
	size_t nslots = n * WRITE_SLOTS_PER_THREAD > WRITE_SLOTS_MAX ? WRITE_SLOTS_MAX : n * WRITE_SLOTS_PER_THREAD;
	c->ncap = (nslots + 1) * FILES_PER_JOB;
	c->wstate = calloc(n, sizeof *c->wstate);
	c->inflight = calloc(c->ncap, sizeof *c->inflight);
	if (!c->wstate || !c->inflight)
		return kbv_error(KBV_ENOMEM, "out of memory");
	c->pool = kbv_pool_new(n, nslots, sizeof(struct wjob), write_job, c->wstate, NULL, NULL);
	if (!c->pool)
		return kbv_error(KBV_ENOMEM, "cannot start %zu threads", n);
	kbv_pool_name(c->pool, "kbv-write", NULL, NULL);
	return 0;
}

static void writers_stop(struct restore_ctx *c)
{
	writers_drain(c);
	if (c->pool) {
		for (size_t i = 0; i < kbv_pool_nslots(c->pool); i++)
			kbv_buf_release(&((struct wjob *)kbv_pool_slot(c->pool, i))->data);
		kbv_pool_free(c->pool);
	}
	free(c->wstate);
	free(c->inflight);
}

/* 1 when a file handed to the writers and not back yet has this name, or a name this one
 * lies below. Only a crafted snapshot holds such a pair (a name twice; a file and a
 * directory of one name): the entry then waits for the writers, so that the two go in
 * one after the other, as they would without them. */
static int must_wait(const struct restore_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nflight; i++) {
		const char *f = c->inflight[(c->flight0 + i) % c->ncap];
		size_t n = strlen(f);
		if (strncmp(f, name, n) == 0 && (name[n] == 0 || name[n] == '/'))
			return 1;
	}
	return 0;
}

/* A small file (kbv_reader_is_small): read and proven here, added to the job being
 * filled; the job goes to the writers when it is full. */
static int restore_small(struct kbv_reader *rd, struct restore_ctx *c, const struct kbv_entry *e, const char *name,
			 struct pdir *pd, const char *base)
{
	int rc;
	if (!c->pool && (rc = writers_start(rd, c)) < 0)
		return rc;
	if (!c->open) {
		while (!(c->open = kbv_pool_acquire(c->pool)))
			kbv_pool_consume(c->pool, job_done, c, 0);
		c->open->n = 0;
		c->open->data.len = 0;
		c->open->overwrite = c->o->overwrite;
	}
	struct wjob *j = c->open;
	size_t off = j->data.len;
	if ((rc = kbv_reader_take(rd, &e->ref, e->size, &e->hash, &j->data)) < 0)
		return kbv_error_prefix(rc, "restore '%s'", name);
	struct wfile *f = &j->f[j->n++];
	pd->refs++;
	f->pd = pd;
	f->name = name;
	f->base = base;
	f->off = off;
	f->len = j->data.len - off;
	meta_of(c, e, &f->m);
	c->inflight[(c->flight0 + c->nflight++) % c->ncap] = name;
	if (j->n == FILES_PER_JOB || j->data.len >= JOB_BYTES)
		writers_submit(c);
	while (kbv_pool_ready(c->pool)) /* results as they come, without waiting */
		kbv_pool_consume(c->pool, job_done, c, 0);
	return 0;
}

/* A file or stream entry: left alone when something is at its name (unless overwriting);
 * a small one handed to the writers, any other written here. */
static int restore_entry(struct kbv_reader *rd, struct restore_ctx *c, const struct kbv_entry *e, const char *name)
{
	const char *base;
	struct pdir *pd;
	struct stat st;
	int rc, skipped = 0;
	if ((rc = open_parent(c, name, &pd, &base)) < 0)
		return rc;
	if (!c->o->overwrite && fstatat(pd->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		skipped = 1;
	else if (kbv_reader_is_small(rd, e->size))
		rc = restore_small(rd, c, e, name, pd, base);
	else if ((rc = restore_file(rd, c, e, name, pd, base, &skipped)) == 0 && !skipped)
		c->res->entries++;
	if (rc == 0 && skipped)
		skip(c->o, c->res, name);
	pdir_put(pd);
	return rc;
}

static int restore_symlink(struct restore_ctx *c, const struct kbv_entry *e, const char *name, int *skipped)
{
	const char *base;
	char tmp[64];
	struct pdir *pd;
	uid_t uid;
	gid_t gid;
	int rc, r;
	*skipped = 0;
	if ((rc = open_parent(c, name, &pd, &base)) < 0)
		return rc;
	do {
		temp_name(tmp, sizeof tmp);
		r = symlinkat(e->target, pd->fd, tmp);
	} while (r < 0 && errno == EEXIST);
	if (r < 0) {
		rc = kbv_error(KBV_EIO, "create symlink '%s': %s", name, strerror(errno));
	} else {
		struct timespec tv[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		utimensat(pd->fd, tmp, tv, AT_SYMLINK_NOFOLLOW);
		if (owner_for(c, e, &uid, &gid) && fchownat(pd->fd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = kbv_error(KBV_EIO, "set the owner of '%s' to %u:%u: %s", name, (unsigned)uid,
				       (unsigned)gid, strerror(errno));
			unlinkat(pd->fd, tmp, 0);
		} else if ((rc = put_in_place(pd->fd, tmp, base, name, c->o->overwrite)) == 1) {
			*skipped = 1;
			rc = 0;
		}
	}
	pdir_put(pd);
	return rc;
}

int kbv_restore_dir(struct kbv_reader *rd, const struct kbv_snapshot *s, const char *dir,
		    const struct kbv_restore_opts *o, struct kbv_restore_result *res)
{
	int rc = 0, skipped;
	struct restore_ctx c = { .o = o, .res = res, .root = geteuid() == 0 };
	uint8_t *created = calloc(s->nloaded + 1, 1); /* directories this restore made */
	memset(res, 0, sizeof *res);
	if (!created)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = kbv_error(KBV_EIO, "create directory '%s': %s", dir, strerror(errno));
		free(created);
		return rc;
	}
	int rootfd = c.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = kbv_error(KBV_EIO, "open directory '%s': %s", dir, strerror(errno));
		free(created);
		return rc;
	}
	/* Directories and files first; symlinks after every file is in place (the writers
	 * drained), so nothing of this restore is written through a link it created. */
	for (size_t i = 0; i < s->nloaded && rc == 0 && !c.wrc; i++) {
		const struct kbv_entry *e = &s->entries[i];
		const char *name = e->name + o->strip;
		if (!wanted(e, o) || e->kind == KBV_ENTRY_SYMLINK)
			continue;
		if (must_wait(&c, name))
			writers_drain(&c);
		if (e->kind == KBV_ENTRY_DIR) {
			struct stat st;
			int fd;
			created[i] = fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0;
			if ((rc = open_dir(rootfd, name, strlen(name), 1, o->follow_trusted_links, &fd)) == 0) {
				close(fd);
				res->entries++;
			}
			continue;
		}
		rc = restore_entry(rd, &c, e, name);
	}
	writers_drain(&c);
	if (rc == 0 && c.wrc) /* a writer's failure: its message, on this thread */
		rc = kbv_error(c.wrc, "%s", c.wmsg);
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind != KBV_ENTRY_SYMLINK || !wanted(e, o))
			continue;
		rc = restore_symlink(&c, e, e->name + o->strip, &skipped);
		if (rc == 0 && skipped)
			skip(o, res, e->name + o->strip);
		else if (rc == 0)
			res->entries++;
	}
	/* Directory modes and times last, deepest first, so writing into them did not change
	 * their times afterwards; a directory that was there before keeps its own unless the
	 * restore overwrites. */
	for (size_t i = s->nloaded; i-- > 0 && rc == 0;) {
		const struct kbv_entry *e = &s->entries[i];
		const char *name = e->name + o->strip;
		struct file_meta m;
		int fd;
		if (e->kind != KBV_ENTRY_DIR || !wanted(e, o) || (!created[i] && !o->overwrite))
			continue;
		if ((rc = open_dir(rootfd, name, strlen(name), 0, o->follow_trusted_links, &fd)) < 0)
			break;
		meta_of(&c, e, &m);
		rc = meta_apply(fd, &m, "directory ", name);
		close(fd);
	}
	writers_stop(&c);
	pdir_put(c.pd);
	close(rootfd);
	free(created);
	return rc;
}
