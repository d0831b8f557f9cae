/* File-system helpers: whole writes and reads, durable directory changes, paths. The
 * repository's objects are reached through the storage backend (backend.h), whose local
 * implementation uses these; the rest use them for local files (the index cache, spools,
 * restore targets). */
#ifndef KBV_FSIO_H
#define KBV_FSIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kbv/buf.h"

/* Write all n bytes; retries short writes and EINTR. Returns 0 or KBV_EIO naming `what`. */
int kbv_write_full(int fd, const void *p, size_t n, const char *what);
/* Small pieces (a COPY row, a line of SQL) gathered into `cap` bytes before each write(2)
 * to fd, for producers that would otherwise make a system call per piece. A piece of `cap`
 * bytes or more is written as it is, after what the buffer holds; the order is kept.
 * `failed` is set once a write has failed (the reader went away, say). */
struct kbv_wbuf {
	int fd;
	const char *what;
	uint8_t *p;
	size_t len, cap;
	int failed;
};
int kbv_wbuf_init(struct kbv_wbuf *w, int fd, size_t cap, const char *what);
int kbv_wbuf_put(struct kbv_wbuf *w, const void *p, size_t n);
/* Write what the buffer holds (nothing is written at kbv_wbuf_free). */
int kbv_wbuf_flush(struct kbv_wbuf *w);
void kbv_wbuf_free(struct kbv_wbuf *w);
/* When fd is a pipe (either end), ask the kernel to make it KBV_PIPE_BYTES wide: a pipe of
 * Linux's default 64 KiB makes its writer sleep and its reader wake every 64 KiB of a
 * stream. 1 MiB is what an unprivileged process may ask for by default (fs.pipe-max-size);
 * a pipe already as wide is left alone. Only the pipe's buffer changes, not what it carries;
 * a refusal (a lower limit, the user's pipe quota) leaves it as it was and is not an error.
 * The width counts against that quota (fs.pipe-user-pages-soft, 64 MiB of pipes a user by
 * default) while the pipe lives. Not a pipe: nothing happens. */
#define KBV_PIPE_BYTES (1 << 20)
void kbv_pipe_widen(int fd);
/* Reserve the n bytes at `at` of the regular file fd for a restore about to write them
 * (fallocate(2), FALLOC_FL_KEEP_SIZE: the file's size does not change, only its blocks are
 * allocated, so a reader still sees what has been written). Returns 1 when they were
 * reserved; 0 when nothing was done: fewer than KBV_PREALLOC_MIN bytes (a call per small
 * file cost a restore of 20,000 of them ~4%), a file system where a reservation is not what
 * it says (only ext2/3/4, XFS and tmpfs are asked: btrfs, for one, writes into reserved
 * extents without compressing them) or one that refuses the call; KBV_EIO, naming `what`,
 * when the file system has no room for them (ENOSPC, EDQUOT, EFBIG), before any byte is
 * written.
 * Reserved blocks past what the restore then writes are given back with kbv_prealloc_drop.
 * Measured: docs/benchmarks.md, "Restored files reserved before they are written". */
#define KBV_PREALLOC_MIN (1u << 20)
int kbv_prealloc(int fd, uint64_t at, uint64_t n, const char *what);
/* Give back the blocks reserved from `at` on (at is the file's size: the restore stopped
 * there); nothing is written or read. */
void kbv_prealloc_drop(int fd, uint64_t at, uint64_t n);
/* pwrite(2) all n bytes at off (retrying short writes and EINTR). */
int kbv_pwrite_full(int fd, const void *p, size_t n, off_t off, const char *what);
/* Read exactly n bytes at offset; KBV_ECORRUPT if the file is shorter ("truncated"). */
int kbv_pread_full(int fd, void *p, size_t n, off_t off, const char *what);
/* Read up to n bytes, stopping early only at end of file. *got = bytes read. */
int kbv_read_upto(int fd, void *p, size_t n, size_t *got, const char *what);
/* The same with pread(2) from offset off (the file's offset is left as it was). */
int kbv_pread_upto(int fd, void *p, size_t n, uint64_t off, size_t *got, const char *what);
/* Read a whole file into out (replacing its contents). */
int kbv_read_file(const char *path, struct kbv_buf *out);
/* fsync a directory so a rename or create in it is durable. */
int kbv_fsync_dir(const char *dir);
/* Create a directory if missing (parents must exist). `*created` set when it was made. */
int kbv_mkdir(const char *path, int *created);
/* Create the missing parent directories of `path` (mode 0755; the last component itself is
 * not created). */
int kbv_mkdir_parents(const char *path);
/* Durably create `dir/name` with the given content: write to `tmpdir`, fsync, rename,
 * fsync dir. The file must not exist yet (KBV_EEXIST otherwise). */
int kbv_write_atomic(const char *tmpdir, const char *dir, const char *name, const void *p, size_t n);
/* Durably replace `path` with the given content (created with `mode` if new): write
 * `path`.tmp.PID beside it, fsync, rename over `path`, fsync its directory. A reader sees
 * the old file or the new one, never a mix. */
int kbv_write_replace(const char *path, const void *p, size_t n, mode_t mode);
/* Remove a directory and the files directly in it (spool and scratch directories, which
 * hold no subdirectories). 0 when the directory is gone. */
int kbv_rmdir_flat(const char *dir);
/* Is dir empty or missing? 1 yes, 0 it holds an entry, KBV_EIO naming it when it cannot be
 * read (not a directory, no permission). */
int kbv_dir_empty(const char *dir);
/* Fault injection for tests at the index cache, which is not a backend object: when the
 * environment names KBVAULT_FAULT=<point>:<n>, the n-th time that point is reached in the
 * process fails (returns 1). Points: "index-commit", "gc-index-commit", "repair-pack". Faults of the
 * repository's objects go through the fault-injecting backend (kbv_repo_backend()). */
int kbv_fault(const char *point);
/* Has the file system holding `path` (almost) no space left (under 1 MiB for us)? For
 * messages: a failed write there is a full disk, not damage. */
int kbv_disk_full(const char *path);
/* snprintf that reports truncation as KBV_EINVAL. */
int kbv_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
