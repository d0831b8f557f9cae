/* The local directory backend: a repository is a directory on a POSIX file system
 * (format/repository.md). An object is written to tmp/, fsynced, then linked (create-if-
 * absent) or renamed into place, and its directory fsynced: a crash leaves the whole object
 * or none of it (and garbage in tmp/). */
#include "backend_impl.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct local {
	struct kbv_backend base;
	char *root;
};

struct local_wr {
	struct kbv_be_wr base;
	int fd;
	int committed;
	enum kbv_obj kind;
	uint64_t written, kicked; /* bytes appended; of them, handed to writeback early */
	char tmp[PATH_MAX];
	char dst[PATH_MAX];
};

/* A pack's bytes are handed to the kernel's writeback every KICK_BYTES as they are
 * appended (sync_file_range, which does not wait), so that the fsync before the pack is
 * renamed into place waits for the last few MiB, not for all 16: the disk writes while
 * the writer reads and packs. The fsync alone still decides what is durable. */
#define KICK_BYTES (4u << 20)

struct local_rd {
	struct kbv_be_rd base;
	int fd;
	char path[PATH_MAX];
};

static const char *const kind_dir[KBV_OBJ_KINDS] = { "", "", "data", "snapshots", "records", "idx", "plans", "locks", "wal" };

static int obj_path(struct local *l, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	switch (kind) {
	case KBV_OBJ_CONFIG:
		return kbv_path(out, cap, "%s/config", l->root);
	case KBV_OBJ_KEY:
		return *name ? kbv_path(out, cap, "%s/keys/%s", l->root, name) : kbv_path(out, cap, "%s/key", l->root);
	case KBV_OBJ_PACK:
		return kbv_path(out, cap, "%s/data/%.2s/%s.pack", l->root, name, name);
	default:
		return kbv_path(out, cap, "%s/%s/%s", l->root, kind_dir[kind], name);
	}
}

static void local_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	if (obj_path((struct local *)be, kind, name, out, cap) < 0)
		snprintf(out, cap, "%s", name);
}

static int local_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out)
{
	struct local *l = (struct local *)be;
	struct local_wr *w = calloc(1, sizeof *w);
	int rc = 0;
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	w->base.be = be;
	w->fd = -1;
	w->kind = kind;
	TRY(obj_path(l, kind, name, w->dst, sizeof w->dst));
	/* Packs have random names: tmp/<packid>.pack.tmp (what check and gc know to be a pack
	 * in flight). Other objects: tmp/<name>.<pid>.<random>.tmp (hosts sharing the
	 * directory have PIDs in common). */
	if (kind == KBV_OBJ_PACK)
		TRY(kbv_path(w->tmp, sizeof w->tmp, "%s/tmp/%s.pack.tmp", l->root, name));
	else
		TRY(kbv_path(w->tmp, sizeof w->tmp, "%s/tmp/%s.%ld.%08x.tmp", l->root,
			     *name ? name : (kind == KBV_OBJ_KEY ? "key" : "config"), (long)getpid(),
			     (unsigned)randombytes_random()));
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (kind == KBV_OBJ_PACK ? O_EXCL : 0), 0600);
	if (w->fd < 0) {
		rc = kbv_error(KBV_EIO, "create '%s': %s", w->tmp, strerror(errno));
		goto out;
	}
	*out = &w->base;
	w = NULL;
out:
	if (w)
		free(w);
	return rc;
}

static int local_append(struct kbv_be_wr *bw, const void *p, size_t n)
{
	struct local_wr *w = (struct local_wr *)bw;
	int rc = kbv_write_full(w->fd, p, n, w->tmp);
	if (rc < 0)
		return rc;
	w->written += n;
	if (w->kind == KBV_OBJ_PACK && w->written - w->kicked >= KICK_BYTES) {
		/* a hint: where it fails (a file system without it) the fsync does it all */
		(void)sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->written - w->kicked), SYNC_FILE_RANGE_WRITE);
		w->kicked = w->written;
	}
	return 0;
}

/* Create dir if missing; when it was created, fsync its parent so the new entry lasts. */
static int ensure_dir(const char *dir)
{
	char parent[PATH_MAX];
	int created = 0, rc = 0;
	TRY(kbv_mkdir(dir, &created));
	if (created) {
		TRY(kbv_path(parent, sizeof parent, "%s", dir));
		*strrchr(parent, '/') = 0;
		TRY(kbv_fsync_dir(parent));
	}
out:
	return rc;
}

static int local_commit(struct kbv_be_wr *bw, unsigned flags)
{
	struct local_wr *w = (struct local_wr *)bw;
	char dir[PATH_MAX];
	int rc = 0;
	if (fsync(w->fd) < 0)
		return kbv_error(KBV_EIO, "fsync '%s': %s", w->tmp, strerror(errno));
	TRY(kbv_path(dir, sizeof dir, "%s", w->dst));
	*strrchr(dir, '/') = 0;
	if (w->kind == KBV_OBJ_PACK || w->kind == KBV_OBJ_RECORD || w->kind == KBV_OBJ_KEY ||
	    w->kind == KBV_OBJ_INDEX || w->kind == KBV_OBJ_PLAN || w->kind == KBV_OBJ_LOCK || w->kind == KBV_OBJ_WAL)
		TRY(ensure_dir(dir)); /* data/XX/, records/, keys/, idx/, plans/ and wal/ are made on first use */
	if (flags & KBV_PUT_EXCL) {
		/* link() fails if the destination exists: an existing object is never replaced. */
		if (link(w->tmp, w->dst) < 0)
			return errno == EEXIST ? kbv_error(KBV_EEXIST, "'%s' already exists", w->dst)
					       : kbv_error(KBV_EIO, "rename '%s' to '%s': %s", w->tmp, w->dst,
							   strerror(errno));
		unlink(w->tmp);
	} else if (rename(w->tmp, w->dst) < 0) {
		return kbv_error(KBV_EIO, "rename '%s' to '%s': %s", w->tmp, w->dst, strerror(errno));
	}
	w->committed = 1;
	TRY(kbv_fsync_dir(dir));
out:
	return rc;
}

static void local_discard(struct kbv_be_wr *bw)
{
	struct local_wr *w = (struct local_wr *)bw;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed)
		unlink(w->tmp);
	free(w);
}

static int local_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out,
		      uint64_t *size)
{
	struct local_rd *rd = calloc(1, sizeof *rd);
	struct stat st;
	int rc = 0;
	if (!rd)
		return kbv_error(KBV_ENOMEM, "out of memory");
	rd->base.be = be;
	rd->fd = -1;
	TRY(obj_path((struct local *)be, kind, name, rd->path, sizeof rd->path));
	rd->fd = open(rd->path, O_RDONLY | O_CLOEXEC);
	if (rd->fd < 0) {
		rc = kbv_error(errno == ENOENT ? KBV_ENOTFOUND : KBV_EIO, "open '%s': %s", rd->path, strerror(errno));
		goto out;
	}
	if (fstat(rd->fd, &st) < 0) {
		rc = kbv_error(KBV_EIO, "stat '%s': %s", rd->path, strerror(errno));
		goto out;
	}
	if (size)
		*size = (uint64_t)st.st_size;
	*out = &rd->base;
	rd = NULL;
out:
	if (rd) {
		if (rd->fd >= 0)
			close(rd->fd);
		free(rd);
	}
	return rc;
}

static int local_read(struct kbv_be_rd *brd, void *p, size_t n, uint64_t off)
{
	struct local_rd *rd = (struct local_rd *)brd;
	return kbv_pread_full(rd->fd, p, n, (off_t)off, rd->path);
}

static void local_close(struct kbv_be_rd *brd)
{
	struct local_rd *rd = (struct local_rd *)brd;
	if (rd->fd >= 0)
		close(rd->fd);
	free(rd);
}

/* List one directory: objects whose file names (after stripping `suffix`) have the kind's
 * shape and start with `prefix` (NULL: any). */
static int list_dir(const char *dir, enum kbv_obj kind, const char *prefix, const char *suffix, kbv_be_list_fn fn,
		    void *arg)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : kbv_error(KBV_EIO, "open '%s': %s", dir, strerror(errno));
	size_t sl = strlen(suffix);
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		char name[128];
		size_t len = strlen(de->d_name);
		if (len <= sl || len - sl >= sizeof name || strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		memcpy(name, de->d_name, len - sl);
		name[len - sl] = 0;
		if (!kbv_obj_name_ok(kind, name) || (prefix && strncmp(name, prefix, strlen(prefix)) != 0))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue; /* gone meanwhile (gc), or not a file */
		rc = fn(arg, name, (uint64_t)st.st_size, (int64_t)st.st_mtime);
	}
	closedir(d);
	return rc;
}

static int local_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	struct local *l = (struct local *)be;
	char dir[PATH_MAX];
	int rc = 0;
	if (kind == KBV_OBJ_CONFIG || kind == KBV_OBJ_KEY) {
		struct stat st;
		TRY(obj_path(l, kind, "", dir, sizeof dir));
		if (stat(dir, &st) == 0)
			rc = fn(arg, "", (uint64_t)st.st_size, (int64_t)st.st_mtime);
		if (rc || kind == KBV_OBJ_CONFIG)
			return rc;
		/* keys/<keyid> (format/keyfile.md); none before the first `key add` */
		TRY(kbv_path(dir, sizeof dir, "%s/keys", l->root));
		if (stat(dir, &st) != 0)
			return 0;
		return list_dir(dir, kind, NULL, "", fn, arg);
	}
	TRY(kbv_path(dir, sizeof dir, "%s/%s", l->root, kind_dir[kind]));
	if (kind != KBV_OBJ_PACK)
		return list_dir(dir, kind, NULL, "", fn, arg);
	/* data/XX/<packid>.pack; a pack in the wrong XX is not one (format/repository.md) */
	DIR *d = opendir(dir);
	if (!d)
		return kbv_error(KBV_EIO, "open '%s': %s", dir, strerror(errno));
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		char sub[PATH_MAX + 8];
		if (strlen(de->d_name) != 2 || !strchr("0123456789abcdef", de->d_name[0]) ||
		    !strchr("0123456789abcdef", de->d_name[1]))
			continue;
		if ((rc = kbv_path(sub, sizeof sub, "%s/%.2s", dir, de->d_name)) == 0)
			rc = list_dir(sub, kind, de->d_name, ".pack", fn, arg);
	}
	closedir(d);
out:
	return rc;
}

static int local_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	char path[PATH_MAX];
	int rc = 0;
	TRY(obj_path((struct local *)be, kind, name, path, sizeof path));
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		return kbv_error(KBV_EIO, "remove '%s': %s", path, strerror(errno));
	}
	*strrchr(path, '/') = 0;
	TRY(kbv_fsync_dir(path));
out:
	return rc;
}

/* The file system's "now": the mtime it gives a file it creates now (on a network file
 * system the server sets it, so hosts sharing the repository read one clock, whatever
 * their own). A new name each time: processes and hosts read the clock at once. */
static int local_clock(struct kbv_backend *be, int64_t *now)
{
	struct local *l = (struct local *)be;
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;
	TRY(kbv_path(path, sizeof path, "%s/tmp/clock.%ld.%08x", l->root, (long)getpid(), (unsigned)randombytes_random()));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		rc = kbv_error(KBV_EIO, "read the clock of '%s' through '%s': %s", l->root, path, strerror(errno));
	else
		*now = (int64_t)st.st_mtime;
	if (fd >= 0) {
		close(fd);
		(void)unlink(path); /* tmp/ holds only what is being written */
	}
out:
	return rc;
}

static void local_free(struct kbv_backend *be)
{
	struct local *l = (struct local *)be;
	free(l->root);
	free(l);
}

static const struct kbv_backend_ops local_ops = {
	.name = "local",
	.create = local_create,
	.append = local_append,
	.commit = local_commit,
	.discard = local_discard,
	.open = local_open,
	.read = local_read,
	.close = local_close,
	.list = local_list,
	.remove = local_remove,
	.clock = local_clock,
	.describe = local_describe,
	.free = local_free,
};

static int local_new(const char *root, unsigned features, struct kbv_backend **out)
{
	struct local *l = calloc(1, sizeof *l);
	if (!l || !(l->root = strdup(root))) {
		free(l);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	l->base.ops = &local_ops;
	l->base.features = features;
	l->base.root = l->root;
	*out = &l->base;
	return 0;
}

int kbv_backend_local_new(const char *root, struct kbv_backend **out)
{
	return local_new(root, KBV_BE_LOCAL, out);
}

int kbv_backend_shared_new(const char *root, struct kbv_backend **out)
{
	return local_new(root, 0, out);
}
