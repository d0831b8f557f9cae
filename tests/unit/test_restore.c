/* Restoring a tree (kbv_restore_dir) with its small files written by the writer threads:
 * every file whole, with its mode and time, across job boundaries (files, bytes) and the
 * large files written in between; entries of a crafted snapshot (a name twice, a file with
 * a name below it) come out as they would one after another; a damaged file stops the
 * restore with every file before it whole and nothing of it or after it on disk. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/reader.h"
#include "kbv/restore.h"
#include "kbv/snapshot.h"
#include "kbv/writer.h"
#include "store/pack.h"
#include "store/repo_impl.h"

static char dir[64], target[96];

/* A repository (encrypted, cheap key derivation) and a target path beside it. */
static struct kbv_repo *new_repo(void)
{
	struct kbv_repo *r;
	snprintf(dir, sizeof dir, "/tmp/kbv-restore-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(target, sizeof target, "%s-target", dir);
	struct kbv_init_opts o = { .encrypted = 1, .kdf_ops = 1, .kdf_mem = 8 << 20 };
	assert_int_equal(kbv_repo_init(dir, &o, "pw", 2), 0);
	assert_int_equal(kbv_repo_open(dir, KBV_LOCK_SHARED, &r), 0);
	assert_int_equal(kbv_repo_unlock(r, "pw", 2), 0);
	return r;
}

static void done_repo(struct kbv_repo *r)
{
	char cmd[256];
	kbv_repo_close(r);
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, target);
	assert_int_equal(system(cmd), 0);
}

/* A snapshot's entry table built by hand: n entries, their contents stored. */
struct tree {
	struct kbv_snapshot s;
	uint8_t **data;
};

static void tree_init(struct tree *t, size_t n)
{
	memset(t, 0, sizeof *t);
	t->s.entries = calloc(n, sizeof *t->s.entries);
	t->data = calloc(n, sizeof *t->data);
	assert_non_null(t->s.entries);
	assert_non_null(t->data);
}

static void tree_dir(struct tree *t, const char *name)
{
	struct kbv_entry *e = &t->s.entries[t->s.nloaded++];
	e->kind = KBV_ENTRY_DIR;
	e->name = strdup(name);
	e->mode = 0750;
	e->mtime = 1700000000;
}

/* A file of `size` random bytes (size 0 allowed) stored through w. */
static void tree_file(struct tree *t, struct kbv_writer *w, const char *name, size_t size)
{
	size_t i = t->s.nloaded++;
	struct kbv_entry *e = &t->s.entries[i];
	struct kbv_stream_result res;
	t->data[i] = malloc(size + 1);
	randombytes_buf(t->data[i], size);
	assert_int_equal(kbv_writer_mem(w, t->data[i], size, &res), 0);
	e->kind = KBV_ENTRY_FILE;
	e->name = strdup(name);
	e->mode = 0600 | (i % 2 ? 044 : 0);
	e->mtime = 1600000000 + (int64_t)i;
	e->mtime_ns = (uint32_t)i * 1000;
	e->size = res.size;
	e->hash = res.hash;
	e->ref = res.ref;
}

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->s.nloaded; i++) {
		free(t->s.entries[i].name);
		free(t->data[i]);
	}
	free(t->s.entries);
	free(t->data);
}

/* Entry i on disk under the target: 1 when it is there, byte for byte with its mode and
 * time (asserted), 0 when nothing is at its name. */
static int on_disk(const struct tree *t, size_t i)
{
	const struct kbv_entry *e = &t->s.entries[i];
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", target, e->name);
	if (lstat(path, &st) < 0)
		return 0;
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, e->mode & 07777);
	assert_int_equal(st.st_mtim.tv_sec, e->mtime);
	assert_int_equal(st.st_mtim.tv_nsec, e->mtime_ns);
	struct kbv_buf got = KBV_BUF_INIT;
	assert_int_equal(kbv_read_file(path, &got), 0);
	assert_int_equal(got.len, e->size);
	if (e->size)
		assert_memory_equal(got.data, t->data[i], e->size);
	kbv_buf_release(&got);
	return 1;
}

/* No temporary name of a restore is left anywhere under the target. */
static void no_partial(void)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "test -z \"$(find %s -name '.kbvault-*')\"", target);
	assert_int_equal(system(cmd), 0);
}

static int restore(struct kbv_repo *r, size_t threads, const struct tree *t, int overwrite,
		   struct kbv_restore_result *res)
{
	struct kbv_reader *rd;
	struct kbv_restore_opts o = { .overwrite = overwrite };
	assert_int_equal(kbv_reader_new(r, threads, &rd), 0);
	int rc = kbv_restore_dir(rd, &t->s, target, &o, res);
	kbv_reader_free(rd);
	return rc;
}

/* 400 entries: files of 0-5,000 bytes (two empty) in four directories, a run of 200 KB files (a job
 * full by its bytes before its count), and two files larger than a bundle (written by the
 * reader's workers) among them; with one writer and with three. */
static void test_tree(void **state)
{
	(void)state;
	struct kbv_repo *r = new_repo();
	struct kbv_writer *w;
	struct tree t;
	char name[64];
	uint64_t bytes = 0;
	tree_init(&t, 400);
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	for (int d = 0; d < 4; d++) {
		snprintf(name, sizeof name, "d%d", d);
		tree_dir(&t, name);
	}
	for (int i = 0; i < 396; i++) {
		size_t size = (size_t)randombytes_uniform(5001);
		if (i == 0 || i == 7) /* empty: the first file of the first job, and one later */
			size = 0;
		if (i >= 100 && i < 110)
			size = 200000;
		if (i == 50 || i == 300)
			size = 400000;
		snprintf(name, sizeof name, "d%d/f%03d", i / 100, i);
		tree_file(&t, w, name, size);
		bytes += size;
	}
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	size_t threads[] = { 1, 3 };
	for (size_t k = 0; k < 2; k++) {
		struct kbv_restore_result res;
		assert_int_equal(restore(r, threads[k], &t, 0, &res), 0);
		assert_int_equal(res.entries, 400);
		assert_int_equal(res.skipped, 0);
		assert_int_equal(res.bytes, bytes);
		for (size_t i = 4; i < t.s.nloaded; i++)
			assert_true(on_disk(&t, i));
		no_partial();
		/* Again without --overwrite: every file left as it is, and counted so. */
		assert_int_equal(restore(r, threads[k], &t, 0, &res), 0);
		assert_int_equal(res.skipped, 396);
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", target);
		assert_int_equal(system(cmd), 0);
	}
	tree_free(&t);
	done_repo(r);
}

/* A crafted snapshot: the same name twice (the later wins with --overwrite, the earlier
 * stays without it, as one after another), and a file with a name below it (an error at
 * the second, as one after another: the first is a file by then). */
static void test_crafted(void **state)
{
	(void)state;
	struct kbv_repo *r = new_repo();
	struct kbv_writer *w;
	struct kbv_restore_result res;
	struct tree t;
	char name[64];
	tree_init(&t, 64);
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	tree_file(&t, w, "x", 3000);
	for (int i = 0; i < 40; i++) { /* so that the first "x" is still with the writers */
		snprintf(name, sizeof name, "y/f%02d", i);
		tree_file(&t, w, name, 100);
	}
	tree_file(&t, w, "x", 2000);
	assert_int_equal(kbv_writer_flush(w), 0);
	assert_int_equal(restore(r, 2, &t, 1, &res), 0);
	assert_true(on_disk(&t, 41));
	assert_int_equal(res.entries, 42);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", target);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(restore(r, 2, &t, 0, &res), 0);
	assert_true(on_disk(&t, 0));
	assert_int_equal(res.entries, 41);
	assert_int_equal(res.skipped, 1);
	assert_int_equal(system(cmd), 0);
	tree_free(&t);

	tree_init(&t, 4);
	tree_file(&t, w, "a", 3000);
	tree_file(&t, w, "a/b", 3000);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	assert_int_equal(restore(r, 2, &t, 0, &res), KBV_EINVAL);
	assert_non_null(strstr(kbv_errmsg(), "'a' is a symlink or not a directory"));
	assert_true(on_disk(&t, 0));
	assert_int_equal(res.entries, 1);
	no_partial();
	tree_free(&t);
	done_repo(r);
}

/* Collect a stream's DATA leaves (kbv_reader_visit). */
struct leaf {
	uint8_t id[KBV_ID_BYTES];
	int found;
};

static int first_leaf(void *arg, int type, const uint8_t *id)
{
	struct leaf *l = arg;
	if (type == KBV_BLOB_DATA && !l->found) {
		memcpy(l->id, id, KBV_ID_BYTES);
		l->found = 1;
	}
	return 0;
}

/* 300 files of ~3 KB (a bundle holds ~80 of them), file 150's bundle damaged: the restore
 * fails naming the first file of that bundle, every file before it is whole, nothing of it
 * or after it is on disk, no temporary file is left. */
static void test_damaged(void **state)
{
	(void)state;
	struct kbv_repo *r = new_repo();
	struct kbv_writer *w;
	struct kbv_restore_result res;
	struct kbv_reader *rd;
	struct tree t;
	char name[64];
	tree_init(&t, 300);
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "d%d/f%03d", i / 50, i);
		tree_file(&t, w, name, 2500 + (size_t)randombytes_uniform(1000));
	}
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	struct leaf l = { .found = 0 };
	struct kbv_loc loc;
	struct kbv_pack_info info;
	MDB_txn *txn;
	char hex[2 * KBV_PACKID_BYTES + 1], pack[512];
	assert_int_equal(kbv_reader_new(r, 1, &rd), 0);
	assert_int_equal(kbv_reader_visit(rd, &t.s.entries[150].ref, first_leaf, &l), 0);
	kbv_reader_free(rd);
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	assert_int_equal(kbv_index_get(r->idx, txn, l.id, &loc), 0);
	assert_int_equal(kbv_index_pack(r->idx, txn, loc.pack, &info), 0);
	kbv_index_rend(txn);
	kbv_hex(info.id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, pack, sizeof pack);
	int pf = open(pack, O_RDWR);
	uint8_t byte;
	assert_true(pf >= 0);
	assert_int_equal(pread(pf, &byte, 1, loc.offset + loc.stored_len / 2), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(pf, &byte, 1, loc.offset + loc.stored_len / 2), 1);
	close(pf);

	assert_int_equal(restore(r, 2, &t, 0, &res), KBV_ECORRUPT);
	const char *msg = kbv_errmsg(), *at = strstr(msg, "restore 'd");
	assert_non_null(at);
	assert_non_null(strstr(msg, hex));
	int bad = atoi(at + strlen("restore 'd0/f"));
	assert_true(bad > 0 && bad <= 150);
	for (int i = 0; i < 300; i++)
		assert_int_equal(on_disk(&t, (size_t)i), i < bad);
	assert_int_equal(res.entries, (size_t)bad);
	no_partial();
	tree_free(&t);
	done_repo(r);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_crafted),
		cmocka_unit_test(test_damaged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
