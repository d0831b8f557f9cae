/* The storage backend interface (include/kbv/backend.h) on the local directory backend and
 * through the fault-injecting wrapper: what every implementation must do. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbv/backend.h"
#include "kbv/error.h"

#define PACK_A "0123456789abcdef0123456789abcdef"
#define PACK_B "ffffffffffffffffffffffffffffff00"
#define SNAP_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static char dir[64];

static struct kbv_backend *local(void)
{
	char sub[128];
	struct kbv_backend *be;
	snprintf(dir, sizeof dir, "/tmp/kbv-be-XXXXXX");
	assert_non_null(mkdtemp(dir));
	static const char *const subs[] = { "data", "snapshots", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
		assert_int_equal(mkdir(sub, 0700), 0);
	}
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	return be;
}

static void cleanup(struct kbv_backend *be)
{
	char cmd[128];
	kbv_backend_free(be);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static int tmp_files(void)
{
	char cmd[160];
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/tmp)\"", dir);
	return system(cmd) != 0;
}

struct seen {
	char names[8][80];
	uint64_t sizes[8];
	int n;
};

static int collect(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct seen *s = arg;
	assert_true(mtime > 0);
	assert_true(s->n < 8);
	snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
	s->sizes[s->n++] = size;
	return 0;
}

static void test_put_get_list_remove(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_buf b = KBV_BUF_INIT;
	assert_true(kbv_backend_features(be) & KBV_BE_LOCAL);
	assert_string_equal(kbv_backend_root(be), dir);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), KBV_ENOTFOUND);
	assert_int_equal(kbv_be_put(be, KBV_OBJ_PACK, PACK_A, "hello pack", 10, 0), 0);
	assert_int_equal(kbv_be_put(be, KBV_OBJ_PACK, PACK_B, "x", 1, 0), 0);
	assert_int_equal(kbv_be_put(be, KBV_OBJ_SNAPSHOT, SNAP_A, "manifest", 8, KBV_PUT_EXCL), 0);
	/* create-if-absent: the first manifest stays */
	assert_int_equal(kbv_be_put(be, KBV_OBJ_SNAPSHOT, SNAP_A, "other", 5, KBV_PUT_EXCL), KBV_EEXIST);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, SNAP_A, &b), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "manifest", 8);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), 0);
	assert_memory_equal(b.data, "hello pack", 10);
	/* the layout of format/repository.md */
	char path[300];
	kbv_be_describe(be, KBV_OBJ_PACK, PACK_A, path, sizeof path);
	char want[300];
	snprintf(want, sizeof want, "%s/data/01/%s.pack", dir, PACK_A);
	assert_string_equal(path, want);
	assert_int_equal(access(want, R_OK), 0);

	struct seen s = { 0 };
	assert_int_equal(kbv_be_list(be, KBV_OBJ_PACK, collect, &s), 0);
	assert_int_equal(s.n, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(s.sizes[i], strcmp(s.names[i], PACK_A) ? 1 : 10);
	/* names of another shape (editor leftovers) are not objects */
	snprintf(path, sizeof path, "%s/snapshots/%s~", dir, SNAP_A);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	memset(&s, 0, sizeof s);
	assert_int_equal(kbv_be_list(be, KBV_OBJ_SNAPSHOT, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], SNAP_A);
	/* records/ does not exist yet: an empty listing */
	memset(&s, 0, sizeof s);
	assert_int_equal(kbv_be_list(be, KBV_OBJ_RECORD, collect, &s), 0);
	assert_int_equal(s.n, 0);

	assert_int_equal(kbv_be_remove(be, KBV_OBJ_PACK, PACK_A), 0);
	assert_int_equal(kbv_be_remove(be, KBV_OBJ_PACK, PACK_A), 0); /* gone already: fine */
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), KBV_ENOTFOUND);
	/* bad names never reach the storage */
	assert_int_equal(kbv_be_put(be, KBV_OBJ_PACK, "../../etc/passwd", "x", 1, 0), KBV_EINVAL);
	assert_int_equal(kbv_be_remove(be, KBV_OBJ_SNAPSHOT, "abc"), KBV_EINVAL);
	assert_false(tmp_files());
	kbv_buf_release(&b);
	cleanup(be);
}

/* Names of manifests other hosts write. */
static const char *const snap[] = {
	"1111111111111111111111111111111111111111111111111111111111111111",
	"2222222222222222222222222222222222222222222222222222222222222222",
	"3333333333333333333333333333333333333333333333333333333333333333",
};

/* An object written behind the backend's back into folder `sub` (another host's, as far as
 * it knows): one byte, `c`. */
static void write_in(const char *sub, const char *name, char c)
{
	char path[300];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	if (mkdir(path, 0700) < 0)
		assert_int_equal(errno, EEXIST);
	snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputc(c, f);
	fclose(f);
}

/* A manifest written behind the backend's back. */
static void write_behind(const char *name)
{
	write_in("snapshots", name, 'm');
}

/* How many manifests a listing through `be` shows. */
static int snapshots_listed(struct kbv_backend *be)
{
	struct seen s = { 0 };
	assert_int_equal(kbv_be_list(be, KBV_OBJ_SNAPSHOT, collect, &s), 0);
	return s.n;
}

/* kbv_be_list_ahead: the next listing of that kind replays what was listed then (one
 * listing only, of that kind only), and none is replayed once this backend wrote or
 * removed anything. */
static void test_list_ahead(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct seen s = { 0 };
	write_behind(SNAP_A);
	uint64_t before = kbv_be_tick(), done = 0, packs_done = 0;
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	uint64_t after = kbv_be_tick();
	write_behind(snap[0]);
	assert_int_equal(kbv_be_list_done(be, KBV_OBJ_PACK, collect, &s, &packs_done), 0); /* another kind: asked */
	assert_int_equal(s.n, 0);
	assert_true(packs_done > after);
	assert_int_equal(kbv_be_list_done(be, KBV_OBJ_SNAPSHOT, collect, &s, &done), 0);
	assert_int_equal(s.n, 1); /* what was listed ahead, size and all */
	assert_string_equal(s.names[0], SNAP_A);
	assert_int_equal(s.sizes[0], 1);
	/* its replies were in when it was made, not when it was replayed */
	assert_true(before < done && done < after);
	assert_int_equal(snapshots_listed(be), 2); /* used once: the storage is asked again */

	/* one listing of each kind is kept at once, each replayed once */
	static const char extra[] = "4444444444444444444444444444444444444444444444444444444444444444";
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_list_ahead(be, KBV_OBJ_PACK); /* does not replace the snapshots' */
	write_behind(extra);
	s.n = 0;
	assert_int_equal(kbv_be_list(be, KBV_OBJ_PACK, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(snapshots_listed(be), 2); /* kept: without the one written since */
	assert_int_equal(snapshots_listed(be), 3); /* asked */
	assert_int_equal(kbv_be_remove(be, KBV_OBJ_SNAPSHOT, extra), 0);

	/* a listing dropped is not replayed: the storage is asked (dropping none: a no-op) */
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	write_behind(extra);
	kbv_be_list_drop(be, KBV_OBJ_SNAPSHOT);
	kbv_be_list_drop(be, KBV_OBJ_SNAPSHOT);
	kbv_be_list_drop(be, KBV_OBJ_PACK);
	assert_int_equal(snapshots_listed(be), 3);
	assert_int_equal(kbv_be_remove(be, KBV_OBJ_SNAPSHOT, extra), 0);

	/* once this backend writes, nothing listed before (or after) is replayed */
	struct kbv_backend *be2;
	assert_int_equal(kbv_backend_local_new(dir, &be2), 0);
	kbv_be_list_ahead(be2, KBV_OBJ_SNAPSHOT);
	assert_int_equal(kbv_be_put(be2, KBV_OBJ_PACK, PACK_A, "p", 1, 0), 0);
	write_behind(snap[1]);
	assert_int_equal(snapshots_listed(be2), 3);
	kbv_be_list_ahead(be2, KBV_OBJ_SNAPSHOT);
	write_behind(snap[2]);
	assert_int_equal(snapshots_listed(be2), 4);
	kbv_backend_free(be2);

	/* a removal too; and a listing kept but never used is freed with the backend */
	assert_int_equal(kbv_backend_local_new(dir, &be2), 0);
	kbv_be_list_ahead(be2, KBV_OBJ_SNAPSHOT);
	assert_int_equal(kbv_be_remove(be2, KBV_OBJ_SNAPSHOT, snap[0]), 0);
	assert_int_equal(snapshots_listed(be2), 3);
	kbv_backend_free(be2);
	assert_int_equal(kbv_backend_local_new(dir, &be2), 0);
	kbv_be_list_ahead(be2, KBV_OBJ_SNAPSHOT);
	kbv_backend_free(be2);
	cleanup(be);
}

/* Remove an object of folder `sub` behind the backend's back (another host's forget, gc). */
static void remove_in(const char *sub, const char *name)
{
	char path[300];
	snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
	assert_int_equal(unlink(path), 0);
}

static void remove_behind(const char *name)
{
	remove_in("snapshots", name);
}

/* The three manifests written, listed ahead, fetched ahead with these bounds, then removed
 * behind the backend's back: how many are still read (from what was kept). */
static int kept_after(struct kbv_backend *be, size_t most, uint64_t bytes)
{
	struct kbv_buf b = KBV_BUF_INIT;
	int kept = 0;
	for (int i = 0; i < 3; i++)
		write_behind(snap[i]);
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, most, bytes);
	for (int i = 0; i < 3; i++)
		remove_behind(snap[i]);
	for (int i = 0; i < 3; i++)
		kept += kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[i], &b) == 0;
	kbv_buf_release(&b);
	return kept;
}

/* kbv_be_get_listed_ahead: the objects of the listing kept are fetched and kept, each for
 * one kbv_be_get (no request: one removed meanwhile is still read whole from what was
 * kept, once); bounded by count and listed bytes; nothing kept once the backend writes. */
static void test_get_listed_ahead(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_buf b = KBV_BUF_INIT;
	for (int i = 0; i < 3; i++)
		write_behind(snap[i]);
	/* nothing listed ahead: nothing fetched */
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	remove_behind(snap[0]);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[0], &b), KBV_ENOTFOUND);
	write_behind(snap[0]);

	/* all three kept (1 byte each); each read once from what was kept */
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	for (int i = 0; i < 3; i++)
		remove_behind(snap[i]);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[i], &b), 0);
		assert_int_equal(b.len, 1);
		assert_memory_equal(b.data, "m", 1);
		assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[i], &b), KBV_ENOTFOUND); /* taken */
	}
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), KBV_ENOTFOUND); /* another kind */

	/* bounded: by count, and by listed bytes */
	assert_int_equal(kept_after(be, 1, 1 << 20), 1);
	assert_int_equal(kept_after(be, 8, 2), 2);

	/* one gone when fetched: those fetched before it are kept (a local backend fetches one
	 * at a time, in the listing's order, and starts none after a failure) */
	struct seen s = { 0 };
	for (int i = 0; i < 3; i++)
		write_behind(snap[i]);
	assert_int_equal(kbv_be_list(be, KBV_OBJ_SNAPSHOT, collect, &s), 0); /* the order */
	assert_int_equal(s.n, 3);
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	remove_behind(s.names[1]);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	remove_behind(s.names[0]);
	remove_behind(s.names[2]);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, s.names[0], &b), 0); /* kept */
	assert_memory_equal(b.data, "m", 1);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, s.names[1], &b), KBV_ENOTFOUND);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, s.names[2], &b), KBV_ENOTFOUND); /* not fetched */

	/* once the backend writes, nothing kept is handed out (and the rest is freed) */
	for (int i = 0; i < 3; i++)
		write_behind(snap[i]);
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	assert_int_equal(kbv_be_put(be, KBV_OBJ_PACK, PACK_A, "p", 1, 0), 0);
	remove_behind(snap[1]);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[1], &b), KBV_ENOTFOUND);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[0], &b), 0); /* from the storage */
	/* and kept ones never asked for are freed with the backend (ASan's leak check) */
	struct kbv_backend *be2;
	assert_int_equal(kbv_backend_local_new(dir, &be2), 0);
	kbv_be_list_ahead(be2, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be2, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	kbv_backend_free(be2);
	kbv_buf_release(&b);
	cleanup(be);
}

/* One set of each kind is kept at once (a new host's manifests and index objects); the
 * bytes kept of a kind go with kbv_be_list_drop() of it (the end of a refresh). */
static void test_get_listed_ahead_kinds(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_buf b = KBV_BUF_INIT;
	write_behind(snap[0]);
	write_in("idx", snap[1], 'i');
	write_in("idx", snap[2], 'i');
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	kbv_be_list_ahead(be, KBV_OBJ_INDEX);
	kbv_be_get_listed_ahead(be, KBV_OBJ_INDEX, 8, 1 << 20); /* does not replace the manifests' */
	remove_behind(snap[0]);
	remove_in("idx", snap[1]);
	remove_in("idx", snap[2]);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_INDEX, snap[1], &b), 0);
	assert_int_equal(b.len, 1);
	assert_memory_equal(b.data, "i", 1);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[1], &b), KBV_ENOTFOUND); /* kept as an index object */
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[0], &b), 0);
	assert_memory_equal(b.data, "m", 1);
	/* dropped: the index object not asked for yet is read from the storage (gone there) */
	kbv_be_list_drop(be, KBV_OBJ_INDEX);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_INDEX, snap[2], &b), KBV_ENOTFOUND);
	/* the manifests' are not the index objects': dropping those left these */
	write_behind(snap[1]);
	kbv_be_list_ahead(be, KBV_OBJ_SNAPSHOT);
	kbv_be_get_listed_ahead(be, KBV_OBJ_SNAPSHOT, 8, 1 << 20);
	remove_behind(snap[1]);
	kbv_be_list_drop(be, KBV_OBJ_INDEX);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_SNAPSHOT, snap[1], &b), 0);
	kbv_buf_release(&b);
	cleanup(be);
}

static void test_ranges_and_truncation(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_be_rd *rd;
	uint64_t size;
	char buf[8];
	assert_int_equal(kbv_be_put(be, KBV_OBJ_PACK, PACK_A, "0123456789", 10, 0), 0);
	assert_int_equal(kbv_be_open(be, KBV_OBJ_PACK, PACK_A, &rd, &size), 0);
	assert_int_equal(size, 10);
	assert_int_equal(kbv_be_read(rd, buf, 4, 3), 0);
	assert_memory_equal(buf, "3456", 4);
	/* past the end: truncated, never short data */
	assert_int_equal(kbv_be_read(rd, buf, 4, 8), KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), "truncated"));
	kbv_be_close(rd);
	assert_int_equal(kbv_be_open(be, KBV_OBJ_PACK, PACK_B, &rd, &size), KBV_ENOTFOUND);
	cleanup(be);
}

static void test_uncommitted_is_invisible(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_be_wr *w;
	struct kbv_buf b = KBV_BUF_INIT;
	assert_int_equal(kbv_be_create(be, KBV_OBJ_PACK, PACK_A, &w), 0);
	assert_int_equal(kbv_be_append(w, "part", 4), 0);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), KBV_ENOTFOUND);
	kbv_be_discard(w); /* never committed: nothing left, not even in tmp/ */
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), KBV_ENOTFOUND);
	assert_false(tmp_files());
	assert_int_equal(kbv_be_create(be, KBV_OBJ_PACK, PACK_A, &w), 0);
	assert_int_equal(kbv_be_append(w, "whole", 5), 0);
	assert_int_equal(kbv_be_commit(w, 0), 0);
	kbv_be_discard(w);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), 0);
	assert_int_equal(b.len, 5);
	kbv_buf_release(&b);
	cleanup(be);
}

/* A pack of many appends (its bytes handed to writeback every 4 MiB on the way) comes
 * back whole after the commit, byte for byte. */
static void test_large_pack(void **st)
{
	(void)st;
	struct kbv_backend *be = local();
	struct kbv_be_wr *w;
	struct kbv_buf b = KBV_BUF_INIT;
	size_t n = (9u << 20) + 12345, step = (1u << 20) - 7;
	uint8_t *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 12));
	assert_int_equal(kbv_be_create(be, KBV_OBJ_PACK, PACK_A, &w), 0);
	for (size_t off = 0; off < n; off += step)
		assert_int_equal(kbv_be_append(w, data + off, off + step <= n ? step : n - off), 0);
	assert_int_equal(kbv_be_commit(w, 0), 0);
	kbv_be_discard(w);
	assert_int_equal(kbv_be_get(be, KBV_OBJ_PACK, PACK_A, &b), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, data, n);
	assert_false(tmp_files());
	kbv_buf_release(&b);
	free(data);
	cleanup(be);
}

static void test_fault_wrapper(void **st)
{
	(void)st;
	struct kbv_backend *be = local(), *f;
	struct kbv_buf b = KBV_BUF_INIT;
	/* the 2nd pack commit fails; other kinds pass */
	assert_int_equal(kbv_backend_fault_new(be, "commit:pack:2", &f), 0);
	assert_int_equal(kbv_be_put(f, KBV_OBJ_PACK, PACK_A, "a", 1, 0), 0);
	assert_int_equal(kbv_be_put(f, KBV_OBJ_SNAPSHOT, SNAP_A, "s", 1, 0), 0);
	assert_int_equal(kbv_be_put(f, KBV_OBJ_PACK, PACK_B, "b", 1, 0), KBV_EIO);
	assert_non_null(strstr(kbv_errmsg(), "injected fault"));
	assert_int_equal(kbv_backend_fault_count(f), 2);
	assert_int_equal(kbv_be_get(f, KBV_OBJ_PACK, PACK_B, &b), KBV_ENOTFOUND); /* nothing half there */
	assert_int_equal(kbv_be_put(f, KBV_OBJ_PACK, PACK_B, "b", 1, 0), 0);     /* only the 2nd fails */
	kbv_backend_free(f);

	/* ENOSPC on the first write of anything; a short read looks truncated */
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "write:1:enospc", &f), 0);
	assert_int_equal(kbv_be_put(f, KBV_OBJ_RECORD, SNAP_A, "r", 1, 0), KBV_EIO);
	assert_non_null(strstr(kbv_errmsg(), "No space left on device"));
	kbv_backend_free(f);
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "read:pack:1:short", &f), 0);
	assert_int_equal(kbv_be_get(f, KBV_OBJ_PACK, PACK_A, &b), KBV_ECORRUPT);
	assert_int_equal(kbv_be_get(f, KBV_OBJ_PACK, PACK_A, &b), 0);
	kbv_backend_free(f);
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "remove:snapshot:1", &f), 0);
	assert_int_equal(kbv_be_remove(f, KBV_OBJ_SNAPSHOT, SNAP_A), KBV_EIO);
	assert_int_equal(kbv_be_get(f, KBV_OBJ_SNAPSHOT, SNAP_A, &b), 0); /* still there */
	kbv_backend_free(f);
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "list:1", &f), 0);
	struct seen s = { 0 };
	assert_int_equal(kbv_be_list(f, KBV_OBJ_PACK, collect, &s), KBV_EIO);
	kbv_backend_free(f);

	/* a pause is no failure: the operation goes on once "go" is there, after "reached"
	 * said where it stopped; without KBVAULT_FAULT_PAUSE it fails, naming the variable */
	char pdir[sizeof dir + 8], path[sizeof pdir + 16];
	snprintf(pdir, sizeof pdir, "%s/pause", dir);
	assert_int_equal(mkdir(pdir, 0700), 0);
	snprintf(path, sizeof path, "%s/go", pdir);
	fclose(fopen(path, "w"));
	setenv("KBVAULT_FAULT_PAUSE", pdir, 1);
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "list:pack:1:pause", &f), 0);
	memset(&s, 0, sizeof s);
	assert_int_equal(kbv_be_list(f, KBV_OBJ_PACK, collect, &s), 0);
	assert_int_equal(s.n, 2); /* both packs: the listing ran after the pause */
	assert_int_equal(kbv_backend_fault_count(f), 1);
	snprintf(path, sizeof path, "%s/reached", pdir);
	assert_int_equal(access(path, F_OK), 0);
	kbv_backend_free(f);
	unsetenv("KBVAULT_FAULT_PAUSE");
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	assert_int_equal(kbv_backend_fault_new(be, "list:pack:1:pause", &f), 0);
	assert_int_equal(kbv_be_list(f, KBV_OBJ_PACK, collect, &s), KBV_EIO);
	assert_non_null(strstr(kbv_errmsg(), "KBVAULT_FAULT_PAUSE"));
	kbv_backend_free(f);

	/* specs that do not parse are refused (and free the inner backend) */
	static const char *const bad[] = { "", "write", "write:0", "write:pack", "burn:1", "write:1:ebad",
					   "write:pack:1:eio:x", "write:pack:x", "list:1:pause:x" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(kbv_backend_local_new(dir, &be), 0);
		assert_int_equal(kbv_backend_fault_new(be, bad[i], &f), KBV_EINVAL);
	}
	assert_int_equal(kbv_backend_local_new(dir, &be), 0);
	kbv_buf_release(&b);
	cleanup(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_list_remove),
		cmocka_unit_test(test_list_ahead),
		cmocka_unit_test(test_get_listed_ahead),
		cmocka_unit_test(test_get_listed_ahead_kinds),
		cmocka_unit_test(test_ranges_and_truncation),
		cmocka_unit_test(test_uncommitted_is_invisible),
		cmocka_unit_test(test_large_pack),
		cmocka_unit_test(test_fault_wrapper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
