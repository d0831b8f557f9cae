#include "kbv/fsio.h"
#include "kbv/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

int kbv_write_full(int fd, const void *p, size_t n, const char *what)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t w = write(fd, q, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return kbv_error(KBV_EIO, "write '%s': %s", what, strerror(errno));
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

void kbv_pipe_widen(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < KBV_PIPE_BYTES)
		(void)fcntl(fd, F_SETPIPE_SZ, KBV_PIPE_BYTES);
}

/* Do the n bytes at `at` lie within what an off_t can say? */
static int off_range(uint64_t at, uint64_t n)
{
	return at <= INT64_MAX && n <= (uint64_t)INT64_MAX - at;
}

int kbv_prealloc(int fd, uint64_t at, uint64_t n, const char *what)
{
	struct statfs fs;
	if (n < KBV_PREALLOC_MIN || !off_range(at, n) || fstatfs(fd, &fs) < 0)
		return 0;
	if (fs.f_type != EXT4_SUPER_MAGIC && fs.f_type != XFS_SUPER_MAGIC && fs.f_type != TMPFS_MAGIC)
		return 0;
	int rc;
	do
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)at, (off_t)n);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return 1;
	if (errno == ENOSPC || errno == EDQUOT || errno == EFBIG) {
		int e = errno;
		kbv_prealloc_drop(fd, at, n);
		return kbv_error(KBV_EIO, "no room for '%s' (%llu bytes): %s", what, (unsigned long long)n, strerror(e));
	}
	return 0;
}

void kbv_prealloc_drop(int fd, uint64_t at, uint64_t n)
{
	if (n && off_range(at, n))
		(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)at, (off_t)n);
}

int kbv_wbuf_init(struct kbv_wbuf *w, int fd, size_t cap, const char *what)
{
	*w = (struct kbv_wbuf){ .fd = fd, .what = what, .cap = cap };
	if (!(w->p = malloc(cap)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	return 0;
}

static int wbuf_write(struct kbv_wbuf *w, const void *p, size_t n)
{
	int rc = kbv_write_full(w->fd, p, n, w->what);
	w->failed |= rc < 0;
	return rc;
}

int kbv_wbuf_flush(struct kbv_wbuf *w)
{
	int rc = w->len ? wbuf_write(w, w->p, w->len) : 0;
	w->len = 0;
	return rc;
}

int kbv_wbuf_put(struct kbv_wbuf *w, const void *p, size_t n)
{
	int rc;
	if (w->len + n > w->cap && (rc = kbv_wbuf_flush(w)) < 0)
		return rc;
	if (n >= w->cap)
		return wbuf_write(w, p, n);
	memcpy(w->p + w->len, p, n);
	w->len += n;
	return 0;
}

void kbv_wbuf_free(struct kbv_wbuf *w)
{
	free(w->p);
	w->p = NULL;
	w->len = 0;
}

int kbv_pwrite_full(int fd, const void *p, size_t n, off_t off, const char *what)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t w = pwrite(fd, q, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return kbv_error(KBV_EIO, "write '%s' at offset %lld: %s", what, (long long)off, strerror(errno));
		}
		q += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int kbv_pread_full(int fd, void *p, size_t n, off_t off, const char *what)
{
	uint8_t *q = p;
	while (n) {
		ssize_t r = pread(fd, q, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return kbv_error(KBV_EIO, "read '%s' at offset %lld: %s", what, (long long)off, strerror(errno));
		}
		if (r == 0)
			return kbv_error(KBV_ECORRUPT, "'%s' is truncated: no data at offset %lld", what, (long long)off);
		q += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int kbv_read_upto(int fd, void *p, size_t n, size_t *got, const char *what)
{
	uint8_t *q = p;
	size_t total = 0;
	while (total < n) {
		ssize_t r = read(fd, q + total, n - total);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return kbv_error(KBV_EIO, "read '%s': %s", what, strerror(errno));
		}
		if (r == 0)
			break;
		total += (size_t)r;
	}
	*got = total;
	return 0;
}

int kbv_pread_upto(int fd, void *p, size_t n, uint64_t off, size_t *got, const char *what)
{
	uint8_t *q = p;
	size_t total = 0;
	while (total < n) {
		ssize_t r = pread(fd, q + total, n - total, (off_t)(off + total));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return kbv_error(KBV_EIO, "read '%s' at byte %llu: %s", what, (unsigned long long)(off + total),
					 strerror(errno));
		}
		if (r == 0)
			break;
		total += (size_t)r;
	}
	*got = total;
	return 0;
}

int kbv_read_file(const char *path, struct kbv_buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kbv_error(errno == ENOENT ? KBV_ENOTFOUND : KBV_EIO, "open '%s': %s", path, strerror(errno));
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = kbv_error(KBV_EIO, "stat '%s': %s", path, strerror(errno));
		goto out;
	}
	out->len = 0;
	TRY(kbv_buf_reserve(out, (size_t)st.st_size + 1));
	size_t got;
	TRY(kbv_read_upto(fd, out->data, (size_t)st.st_size, &got, path));
	out->len = got;
out:
	close(fd);
	return rc;
}

int kbv_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kbv_error(KBV_EIO, "open directory '%s': %s", dir, strerror(errno));
	int rc = 0;
	if (fsync(fd) < 0)
		rc = kbv_error(KBV_EIO, "fsync directory '%s': %s", dir, strerror(errno));
	close(fd);
	return rc;
}

int kbv_mkdir(const char *path, int *created)
{
	if (created)
		*created = 0;
	if (mkdir(path, 0700) == 0) {
		if (created)
			*created = 1;
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	return kbv_error(KBV_EIO, "create directory '%s': %s", path, strerror(errno));
}

int kbv_mkdir_parents(const char *path)
{
	char tmp[PATH_MAX];
	int rc = kbv_path(tmp, sizeof tmp, "%s", path);
	if (rc < 0)
		return rc;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return kbv_error(KBV_EIO, "create directory '%s': %s", tmp, strerror(errno));
		*p = '/';
	}
	return 0;
}

int kbv_path(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap)
		return kbv_error(KBV_EINVAL, "path too long: %s...", out);
	return 0;
}

/* Write p[0..n) to a new file `tmp` (mode `mode`) and fsync it. */
static int write_synced(const char *tmp, const void *p, size_t n, mode_t mode)
{
	int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return kbv_error(KBV_EIO, "create '%s': %s", tmp, strerror(errno));
	TRY(kbv_write_full(fd, p, n, tmp));
	if (fsync(fd) < 0)
		rc = kbv_error(KBV_EIO, "fsync '%s': %s", tmp, strerror(errno));
out:
	close(fd);
	return rc;
}

int kbv_write_atomic(const char *tmpdir, const char *dir, const char *name, const void *p, size_t n)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int rc = 0;
	TRY(kbv_path(tmp, sizeof tmp, "%s/%s.%ld.tmp", tmpdir, name, (long)getpid()));
	TRY(kbv_path(dst, sizeof dst, "%s/%s", dir, name));
	TRY(write_synced(tmp, p, n, 0600));
	/* link() fails if the destination exists, so an existing file is never replaced. */
	if (link(tmp, dst) < 0) {
		rc = errno == EEXIST ? kbv_error(KBV_EEXIST, "'%s' already exists", dst)
				     : kbv_error(KBV_EIO, "rename '%s' to '%s': %s", tmp, dst, strerror(errno));
		goto out;
	}
	TRY(kbv_fsync_dir(dir));
out:
	unlink(tmp);
	return rc;
}

int kbv_write_replace(const char *path, const void *p, size_t n, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int rc = 0;
	TRY(kbv_path(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()));
	TRY(kbv_path(dir, sizeof dir, "%s", path));
	TRY(write_synced(tmp, p, n, mode));
	if (rename(tmp, path) < 0) {
		rc = kbv_error(KBV_EIO, "rename '%s' to '%s': %s", tmp, path, strerror(errno));
		goto out;
	}
	TRY(kbv_fsync_dir(dirname(dir)));
out:
	unlink(tmp); /* gone after a rename; left by a failure */
	return rc;
}

int kbv_rmdir_flat(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	return rmdir(dir) == 0 ? 0 : -1;
}

int kbv_dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 1 : kbv_error(KBV_EIO, "open '%s': %s", dir, strerror(errno));
	struct dirent *de;
	int empty = 1;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

int kbv_fault(const char *point)
{
	static const char *const points[] = { "index-commit", "gc-index-commit", "gc-index-batch", "repair-pack" };
	/* counted for the process: a snapshot commits the index on its packing thread and at
	 * its end on the calling one */
	static atomic_int counts[sizeof points / sizeof *points];
	const char *spec = getenv("KBVAULT_FAULT");
	if (!spec)
		return 0;
	size_t len = strlen(point);
	if (strncmp(spec, point, len) != 0 || spec[len] != ':')
		return 0;
	for (size_t i = 0; i < sizeof points / sizeof *points; i++)
		if (strcmp(points[i], point) == 0) {
			long n;
			return kbv_parse_long(spec + len + 1, 1, LONG_MAX, &n) == 0 && atomic_fetch_add(&counts[i], 1) + 1 == n;
		}
	return 0;
}

int kbv_disk_full(const char *path)
{
	struct statvfs vfs;
	return statvfs(path, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20);
}
