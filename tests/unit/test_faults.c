/* Every failure point of a snapshot and of a gc, the SQLite way: through the fault-
 * injecting backend, fail operation n of each kind (write, commit, read, list, remove) for
 * every n the operation reaches; afterwards the repository checks without a problem, every
 * committed snapshot restores byte for byte, and the next run succeeds.
 *
 * The repository is opened with KBVAULT_FAULT naming the fault, as the CLI's tests do
 * (kbv_repo_backend()). Prints how many failure points it enumerated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include <unistd.h>

#include "kbv/check.h"
#include "kbv/error.h"
#include "kbv/gc.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"
#include "kbv/writer.h"
#include "store/repo_impl.h"

#define MIB (1u << 20)

static char tmpl[64], work[80];
static uint8_t *data_a, *data_b;
static size_t len_a, len_b;
static unsigned points;

/* Text-like bytes (compressible, deduplicable in parts) from a seed. */
static uint8_t *gen(size_t n, uint32_t seed)
{
	static const char *const words[] = { "select", "insert", "knowledge", "vector", "0.1234", "entity",
					     "relation", "\n", "\t", "document", "the", "of" };
	uint8_t *p = malloc(n);
	assert_non_null(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n;) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		const char *w = words[x % 12];
		size_t l = strlen(w);
		if (x % 2 == 0) { /* noise, so that the streams fill a few packs */
			for (int k = 0; k < 4 && i < n; k++)
				p[i++] = (uint8_t)(x >> (8 * k));
			continue;
		}
		for (size_t k = 0; k < l && i < n; k++)
			p[i++] = (uint8_t)w[k];
	}
	return p;
}

static void sh(const char *fmt, const char *a, const char *b)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, fmt, a, b);
	assert_int_equal(system(cmd), 0);
}

static struct kbv_repo *open_repo(const char *dir, const char *fault, enum kbv_lock lock, int *rc)
{
	struct kbv_repo *r = NULL;
	if (fault)
		setenv("KBVAULT_FAULT", fault, 1);
	else
		unsetenv("KBVAULT_FAULT");
	*rc = kbv_repo_open(dir, lock, &r);
	if (*rc == 0 && (*rc = kbv_repo_unlock(r, "pw", 2)) < 0) {
		kbv_repo_close(r);
		r = NULL;
	}
	unsetenv("KBVAULT_FAULT");
	return r;
}

/* A snapshot of one stream named `name`, from host `host`. */
static int snapshot(struct kbv_repo *r, const char *host, const char *name, const uint8_t *p, size_t n)
{
	struct kbv_writer *w = NULL;
	struct kbv_stream_result res;
	int rc = kbv_writer_new(r, 1, &w);
	if (rc == 0)
		rc = kbv_writer_mem(w, p, n, &res);
	if (rc == 0) {
		struct kbv_entry e = { .kind = KBV_ENTRY_FILE, .name = (char *)name, .mode = 0100644, .size = res.size,
				       .ref = res.ref };
		e.hash = res.hash;
		struct kbv_snapshot s = { .time = 1, .host = (char *)host };
		rc = kbv_snapshot_commit(r, w, &s, &e, 1);
	}
	kbv_writer_free(w);
	return rc;
}

static void quiet(void *arg, int severity, const char *msg)
{
	(void)arg;
	(void)severity;
	(void)msg;
}

/* check --read-data finds no problem (garbage from the failure is allowed: warnings), and
 * every snapshot restores to what was stored under its stream's name. Returns how many
 * snapshots there are. */
static size_t verify(const char *dir)
{
	int rc;
	struct kbv_repo *r = open_repo(dir, NULL, KBV_LOCK_SHARED, &rc);
	assert_non_null(r);
	struct kbv_check_opts co = { .read_data = 1 };
	struct kbv_check_result cr;
	assert_int_equal(kbv_check(r, &co, quiet, NULL, &cr), 0);
	if (cr.problems)
		fail_msg("check found %llu problems", (unsigned long long)cr.problems);
	struct kbv_snapshot **list;
	size_t n;
	struct kbv_reader *rd;
	assert_int_equal(kbv_snapshot_list(r, &list, &n), 0);
	assert_int_equal(kbv_reader_new(r, 1, &rd), 0);
	for (size_t i = 0; i < n; i++) {
		struct kbv_buf out = KBV_BUF_INIT;
		assert_int_equal(kbv_snapshot_load_entries(rd, list[i]), 0);
		assert_int_equal(list[i]->nloaded, 1);
		const struct kbv_entry *e = &list[i]->entries[0];
		assert_int_equal(kbv_reader_mem(rd, &e->ref, e->size, &out), 0);
		int is_a = strcmp(e->name, "a.sql") == 0;
		assert_int_equal(out.len, is_a ? len_a : len_b);
		assert_memory_equal(out.data, is_a ? data_a : data_b, out.len);
		kbv_buf_release(&out);
	}
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_repo_close(r);
	return n;
}

static const char *const ops[] = { "write", "commit", "read", "list", "remove" };

/* How many operations of `op` the run makes (a fault that never fires counts them). */
typedef int (*run_fn)(struct kbv_repo *r);

static uint64_t count_ops(const char *op, run_fn run, enum kbv_lock lock)
{
	char spec[64];
	int rc;
	snprintf(spec, sizeof spec, "%s:1000000000", op);
	sh("rm -rf %2$s && cp -a %1$s %2$s", tmpl, work);
	struct kbv_repo *r = open_repo(work, spec, lock, &rc);
	assert_non_null(r);
	assert_int_equal(run(r), 0);
	uint64_t n = kbv_backend_fault_count(r->be);
	kbv_repo_close(r);
	return n;
}

/* Fail every operation of every kind that `run` makes, one at a time. `before` and
 * `after_ok` are the snapshot counts a failed and a successful run leave (a failure may
 * leave either: the manifest is the last step). */
static void enumerate(run_fn run, enum kbv_lock lock, size_t before, size_t after_ok)
{
	for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
		/* the open itself reads config and key: counted, and failed, too */
		uint64_t total = count_ops(ops[o], run, lock);
		char spec[64];
		printf("  %s: %llu\n", ops[o], (unsigned long long)total);
		for (uint64_t n = 1; n <= total; n++) {
			int rc;
			snprintf(spec, sizeof spec, "%s:%llu", ops[o], (unsigned long long)n);
			sh("rm -rf %2$s && cp -a %1$s %2$s", tmpl, work);
			struct kbv_repo *r = open_repo(work, spec, lock, &rc);
			uint64_t seen = n;
			if (r) {
				rc = run(r);
				seen = kbv_backend_fault_count(r->be);
				kbv_repo_close(r);
			}
			/* Reads are shared among reader threads: another run may make fewer. */
			if (rc >= 0 && seen < n)
				continue;
			if (rc >= 0)
				fail_msg("%s: the run succeeded although operation %llu failed", spec, (unsigned long long)n);
			if (!strstr(kbv_errmsg(), "injected fault"))
				fail_msg("%s: failed with another error: %s", spec, kbv_errmsg());
			size_t k = verify(work);
			if (k != before && k != after_ok)
				fail_msg("%s: %zu snapshots after the failure", spec, k);
			/* the next run finishes the job */
			r = open_repo(work, NULL, lock, &rc);
			assert_non_null(r);
			if (run(r) < 0)
				fail_msg("%s: the next run failed: %s", spec, kbv_errmsg());
			kbv_repo_close(r);
			assert_int_equal(verify(work), after_ok);
			points++;
		}
	}
}

static int run_snapshot_b(struct kbv_repo *r)
{
	return snapshot(r, "unit", "b.sql", data_b, len_b);
}

static void test_every_failure_of_a_snapshot(void **st)
{
	(void)st;
	/* template: one committed snapshot of a.sql */
	int rc;
	struct kbv_repo *r = open_repo(tmpl, NULL, KBV_LOCK_SHARED, &rc);
	assert_non_null(r);
	assert_int_equal(snapshot(r, "unit", "a.sql", data_a, len_a), 0);
	kbv_repo_close(r);
	unsigned before = points;
	enumerate(run_snapshot_b, KBV_LOCK_SHARED, 1, 2);
	printf("snapshot: %u failure points, each checked\n", points - before);
}

static int run_gc_drop_a(struct kbv_repo *r)
{
	struct kbv_snapshot **list;
	size_t n;
	uint8_t drop[1][KBV_ID_BYTES];
	size_t ndrop = 0;
	int rc = kbv_snapshot_list(r, &list, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (list[i]->host && !strcmp(list[i]->host, "unit-a")) {
			memcpy(drop[0], list[i]->id, KBV_ID_BYTES);
			ndrop = 1;
		}
	kbv_snapshot_list_free(list, n);
	struct kbv_gc_opts o = { .max_unused = 0.0 }; /* repack every pack with a dead byte */
	struct kbv_gc_result res;
	return kbv_gc(r, drop, ndrop, &o, &res);
}

static void test_every_failure_of_a_gc(void **st)
{
	(void)st;
	/* template: a.sql (host unit-a, dropped by the gc) and b.sql (kept; shares chunks) */
	sh("rm -rf %s%s", tmpl, "");
	struct kbv_init_opts io = { .encrypted = 1, .pack_size = MIB, .kdf_ops = 1, .kdf_mem = 8 << 20 };
	assert_int_equal(kbv_repo_init(tmpl, &io, "pw", 2), 0);
	int rc;
	struct kbv_repo *r = open_repo(tmpl, NULL, KBV_LOCK_SHARED, &rc);
	assert_non_null(r);
	assert_int_equal(snapshot(r, "unit-a", "a.sql", data_a, len_a), 0);
	assert_int_equal(snapshot(r, "unit", "b.sql", data_b, len_b), 0);
	kbv_repo_close(r);
	unsigned before = points;
	enumerate(run_gc_drop_a, KBV_LOCK_EXCLUSIVE, 2, 1);
	printf("gc: %u failure points, each checked\n", points - before);
}

static int setup(void **st)
{
	(void)st;
	assert_int_equal(sodium_init() < 0, 0);
	len_a = 3 * MIB + 12345;
	data_a = gen(len_a, 1);
	/* b: a with an edit in the middle, and new data at the end */
	len_b = len_a + 2 * MIB;
	data_b = malloc(len_b);
	assert_non_null(data_b);
	memcpy(data_b, data_a, len_a);
	memset(data_b + len_a / 2, 'x', 5000);
	uint8_t *extra = gen(2 * MIB, 2);
	memcpy(data_b + len_a, extra, 2 * MIB);
	free(extra);
	snprintf(tmpl, sizeof tmpl, "/tmp/kbv-faults-XXXXXX");
	assert_non_null(mkdtemp(tmpl));
	snprintf(work, sizeof work, "%s.work", tmpl);
	rmdir(tmpl);
	struct kbv_init_opts io = { .encrypted = 1, .pack_size = MIB, .kdf_ops = 1, .kdf_mem = 8 << 20 };
	assert_int_equal(kbv_repo_init(tmpl, &io, "pw", 2), 0);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	sh("rm -rf %s %s", tmpl, work);
	free(data_a);
	free(data_b);
	printf("failure points: %u in all\n", points);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_failure_of_a_snapshot),
		cmocka_unit_test(test_every_failure_of_a_gc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
