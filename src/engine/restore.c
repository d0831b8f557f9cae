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

/* The directory part of `name` opened (created when missing), *base its last component. */
static int open_parent(int rootfd, const char *name, const struct kbv_restore_opts *o, int *pfd, const char **base)
{
	const char *slash = strrchr(name, '/');
	*base = slash ? slash + 1 : name;
	return open_dir(rootfd, name, slash ? (size_t)(slash - name) : 0, 1, o->follow_trusted_links, pfd);
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

/* The owner to give an entry: only as root (nobody else may), only when the snapshot
 * recorded one (entry format 2), by name when that name exists here, else by number.
 * Returns 1 with *uid and *gid set, or 0. */
static int owner_for(const struct kbv_entry *e, uid_t *uid, gid_t *gid)
{
	if (geteuid() != 0 || !e->user || !e->group)
		return 0;
	struct passwd pw, *pr = NULL;
	struct group gr, *gres = NULL;
	char buf[1024];
	*uid = *e->user && getpwnam_r(e->user, &pw, buf, sizeof buf, &pr) == 0 && pr ? pr->pw_uid : (uid_t)e->uid;
	*gid = *e->group && getgrnam_r(e->group, &gr, buf, sizeof buf, &gres) == 0 && gres ? gres->gr_gid : (gid_t)e->gid;
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
static int set_owner(const struct kbv_entry *e, int fd, int pfd, const char *name, const char *path)
{
	uid_t uid;
	gid_t gid;
	if (!owner_for(e, &uid, &gid))
		return 0;
	int r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return kbv_error(KBV_EIO, "set the owner of '%s' to %u:%u: %s", path, (unsigned)uid, (unsigned)gid,
				 strerror(errno));
	return 1;
}

static int restore_file(struct kbv_reader *rd, const struct kbv_entry *e, int rootfd, const char *name,
			const struct kbv_restore_opts *o, struct kbv_restore_result *res, int *skipped)
{
	const char *base;
	char tmp[64];
	int pfd, rc;
	struct stat st;
	*skipped = 0;
	if ((rc = open_parent(rootfd, name, o, &pfd, &base)) < 0)
		return rc;
	if (!o->overwrite && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		close(pfd);
		*skipped = 1;
		return 0;
	}
	struct file_sink f = { .name = name, .o = o, .res = res };
	do {
		temp_name(tmp, sizeof tmp);
		f.fd = openat(pfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (f.fd < 0 && errno == EEXIST);
	if (f.fd < 0) {
		int err = errno;
		close(pfd);
		return kbv_error(KBV_EIO, "create a file beside '%s': %s", name, strerror(err));
	}
	rc = kbv_reader_stream_fd(rd, &e->ref, e->size, &e->hash, f.fd, name, file_written, &f);
	if (rc == 0 && e->kind == KBV_ENTRY_FILE) {
		struct timespec tv[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		int owned = set_owner(e, f.fd, -1, NULL, name);
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
	close(pfd);
	return rc;
}

static int restore_symlink(const struct kbv_entry *e, int rootfd, const char *name, const struct kbv_restore_opts *o,
			   int *skipped)
{
	const char *base;
	char tmp[64];
	int pfd, rc, r;
	*skipped = 0;
	if ((rc = open_parent(rootfd, name, o, &pfd, &base)) < 0)
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
		rc = set_owner(e, -1, pfd, tmp, name);
		if (rc < 0)
			unlinkat(pfd, tmp, 0);
		else
			rc = put_in_place(pfd, tmp, base, name, o->overwrite);
		if (rc == 1) {
			*skipped = 1;
			rc = 0;
		}
	}
	close(pfd);
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
	int rc = 0, rootfd, skipped;
	uint8_t *created = calloc(s->nloaded + 1, 1); /* directories this restore made */
	memset(res, 0, sizeof *res);
	if (!created)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = kbv_error(KBV_EIO, "create directory '%s': %s", dir, strerror(errno));
		free(created);
		return rc;
	}
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		rc = restore_file(rd, e, rootfd, name, o, res, &skipped);
		if (rc == 0 && skipped)
			skip(o, res, name);
		else if (rc == 0)
			res->entries++;
	}
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind != KBV_ENTRY_SYMLINK || !wanted(e, o))
			continue;
		rc = restore_symlink(e, rootfd, e->name + o->strip, o, &skipped);
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
		int owned = set_owner(e, fd, -1, NULL, name);
		if (owned < 0)
			rc = owned;
		else if (fchmod(fd, safe_mode(e->mode, owned)) < 0 || futimens(fd, tv) < 0)
			rc = kbv_error(KBV_EIO, "set mode and time of directory '%s': %s", name, strerror(errno));
		close(fd);
	}
	close(rootfd);
	free(created);
	return rc;
}
