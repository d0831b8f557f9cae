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

/* What a restore keeps from one entry to the next: the directory the last file went into,
 * held open (a tree's files come directory by directory, and walking each one's path from
 * the root again was three opens per file), and the last owner names looked up (reading
 * /etc/passwd and /etc/group again for every file was four more). */
struct restore_ctx {
	int rootfd;
	const struct kbv_restore_opts *o;
	struct kbv_restore_result *res;
	int pfd;             /* the last parent directory, or -1 */
	size_t plen;         /* its path's length below rootfd */
	char ppath[PATH_MAX];
	int root;            /* running as root: owners are restored */
	struct owner_name {  /* the last user and group names looked up */
		char name[64]; /* "" none */
		uint32_t id;
		int found;
	} user, group;
};

/* The directory part of `name` (created when missing), *base its last component. The
 * descriptor is the context's: the same directory's next file finds it open. It is the
 * directory that was walked to without following a link, so holding it open is no less
 * safe than walking again: a name swapped for a symlink afterwards is never followed. */
static int open_parent(struct restore_ctx *c, const char *name, int *pfd, const char **base)
{
	const char *slash = strrchr(name, '/');
	size_t len = slash ? (size_t)(slash - name) : 0;
	*base = slash ? slash + 1 : name;
	if (c->pfd >= 0 && len == c->plen && memcmp(name, c->ppath, len) == 0) {
		*pfd = c->pfd;
		return 0;
	}
	int fd, rc = open_dir(c->rootfd, name, len, 1, c->o->follow_trusted_links, &fd);
	if (rc < 0)
		return rc;
	if (c->pfd >= 0)
		close(c->pfd);
	c->pfd = -1;
	if (len < sizeof c->ppath) { /* else (open_dir walks any length) not kept: walked again */
		memcpy(c->ppath, name, len);
		c->plen = len;
		c->pfd = fd;
	}
	*pfd = fd;
	return 0;
}

/* Done with a parent from open_parent (it stays open when the context holds it). */
static void parent_done(struct restore_ctx *c, int pfd)
{
	if (pfd != c->pfd)
		close(pfd);
}

/* A fresh name beside the final one: nobody can have planted anything there. */
static void temp_name(char *out, size_t cap)
{
	uint8_t r[8];
	char hex[17];
	randombytes_buf(r, sizeof r);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	snprintf(out, cap, ".kbvault-%s.partial", hex);
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

struct file_sink {
	int fd;
	const char *name;
	uint64_t done;
	const struct kbv_restore_opts *o;
	struct kbv_restore_result *res;
};

/* Each piece once it is in the file (kbv_reader_stream_fd): the counts and progress. */
static int file_written(void *arg, const uint8_t *p, size_t n)
{
	struct file_sink *f = arg;
	(void)p;
	f->done += n;
	f->res->bytes += n;
	if (f->o->progress)
		f->o->progress(f->o->progress_arg, f->res->bytes);
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

/* Give fd (or, with fd < 0, pfd/name without following a symlink) the entry's owner; 1
 * when it was given, 0 when there is none to give, <0 on failure. chown clears setuid
 * bits, so it comes before the mode. */
static int set_owner(struct restore_ctx *c, const struct kbv_entry *e, int fd, int pfd, const char *name,
		     const char *path)
{
	uid_t uid;
	gid_t gid;
	if (!owner_for(c, e, &uid, &gid))
		return 0;
	int r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return kbv_error(KBV_EIO, "set the owner of '%s' to %u:%u: %s", path, (unsigned)uid, (unsigned)gid,
				 strerror(errno));
	return 1;
}

static int restore_file(struct kbv_reader *rd, struct restore_ctx *c, const struct kbv_entry *e, const char *name,
			int *skipped)
{
	const struct kbv_restore_opts *o = c->o;
	const char *base;
	char tmp[64];
	int pfd, rc;
	struct stat st;
	*skipped = 0;
	if ((rc = open_parent(c, name, &pfd, &base)) < 0)
		return rc;
	if (!o->overwrite && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		parent_done(c, pfd);
		*skipped = 1;
		return 0;
	}
	struct file_sink f = { .name = name, .o = o, .res = c->res };
	do {
		temp_name(tmp, sizeof tmp);
		f.fd = openat(pfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (f.fd < 0 && errno == EEXIST);
	if (f.fd < 0) {
		int err = errno;
		parent_done(c, pfd);
		return kbv_error(KBV_EIO, "create a file beside '%s': %s", name, strerror(err));
	}
	rc = kbv_reader_stream_fd(rd, &e->ref, e->size, &e->hash, f.fd, name, file_written, &f);
	if (rc == 0 && e->kind == KBV_ENTRY_FILE) {
		struct timespec tv[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		int owned = set_owner(c, e, f.fd, -1, NULL, name);
		if (owned < 0)
			rc = owned;
		else if (fchmod(f.fd, safe_mode(e->mode, owned)) < 0 || futimens(f.fd, tv) < 0)
			rc = kbv_error(KBV_EIO, "set mode and time of '%s': %s", name, strerror(errno));
	}
	if (close(f.fd) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "close '%s': %s", name, strerror(errno));
	if (rc < 0) {
		unlinkat(pfd, tmp, 0);
		kbv_error_prefix(rc, "restore '%s'", name);
	}
	else if ((rc = put_in_place(pfd, tmp, base, name, o->overwrite)) == 1) {
		*skipped = 1;
		rc = 0;
	}
	parent_done(c, pfd);
	return rc;
}

static int restore_symlink(struct restore_ctx *c, const struct kbv_entry *e, const char *name, int *skipped)
{
	const char *base;
	char tmp[64];
	int pfd, rc, r;
	*skipped = 0;
	if ((rc = open_parent(c, name, &pfd, &base)) < 0)
		return rc;
	do {
		temp_name(tmp, sizeof tmp);
		r = symlinkat(e->target, pfd, tmp);
	} while (r < 0 && errno == EEXIST);
	if (r < 0) {
		rc = kbv_error(KBV_EIO, "create symlink '%s': %s", name, strerror(errno));
	} else {
		struct timespec tv[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		utimensat(pfd, tmp, tv, AT_SYMLINK_NOFOLLOW);
		rc = set_owner(c, e, -1, pfd, tmp, name);
		if (rc < 0)
			unlinkat(pfd, tmp, 0);
		else
			rc = put_in_place(pfd, tmp, base, name, c->o->overwrite);
		if (rc == 1) {
			*skipped = 1;
			rc = 0;
		}
	}
	parent_done(c, pfd);
	return rc;
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

int kbv_restore_dir(struct kbv_reader *rd, const struct kbv_snapshot *s, const char *dir,
		    const struct kbv_restore_opts *o, struct kbv_restore_result *res)
{
	int rc = 0, skipped;
	struct restore_ctx c = { .o = o, .res = res, .pfd = -1, .root = geteuid() == 0 };
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
	/* Directories and files first; symlinks after every file, so nothing of this restore
	 * is written through a link it created. */
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		const char *name = e->name + o->strip;
		if (!wanted(e, o) || e->kind == KBV_ENTRY_SYMLINK)
			continue;
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
		rc = restore_file(rd, &c, e, name, &skipped);
		if (rc == 0 && skipped)
			skip(o, res, name);
		else if (rc == 0)
			res->entries++;
	}
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
		int fd;
		if (e->kind != KBV_ENTRY_DIR || !wanted(e, o) || (!created[i] && !o->overwrite))
			continue;
		if ((rc = open_dir(rootfd, name, strlen(name), 0, o->follow_trusted_links, &fd)) < 0)
			break;
		struct timespec tv[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		int owned = set_owner(&c, e, fd, -1, NULL, name);
		if (owned < 0)
			rc = owned;
		else if (fchmod(fd, safe_mode(e->mode, owned)) < 0 || futimens(fd, tv) < 0)
			rc = kbv_error(KBV_EIO, "set mode and time of directory '%s': %s", name, strerror(errno));
		close(fd);
	}
	if (c.pfd >= 0)
		close(c.pfd);
	close(rootfd);
	free(created);
	return rc;
}
