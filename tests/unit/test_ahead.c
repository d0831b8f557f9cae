/* Objects of a listing fetched ahead (src/store/ahead.h), on an in-memory backend that
 * counts the GETs of each object: what a run holds, its bounds, what want() skips, and
 * what a failed run leaves (what it fetched handed out, the failed object its own GET,
 * the next run after it, a failing object fetched at most twice), on a backend of
 * parallel connections and on one of one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "kbv/error.h"
#include "store/ahead.h"
#include "store/backend_impl.h"
#include "store/metacache.h"

enum { N = 8 };

struct mem {
	struct kbv_backend base;
	pthread_mutex_t mu;
	unsigned gets[N]; /* GETs of object i */
	int fail;	  /* the object answered "not found", -1 none */
};

static size_t index_of(const char *name)
{
	unsigned v;
	return sscanf(name + 62, "%2x", &v) == 1 ? v : N;
}

static int mem_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out)
{
	struct mem *m = (struct mem *)be;
	size_t i = index_of(name);
	(void)kind;
	assert_true(i < N);
	pthread_mutex_lock(&m->mu);
	m->gets[i]++;
	pthread_mutex_unlock(&m->mu);
	if ((int)i == m->fail)
		return kbv_error(KBV_ENOTFOUND, "object %zu is gone", i);
	char body[32];
	int len = snprintf(body, sizeof body, "object %zu", i);
	out->len = 0;
	return kbv_buf_add(out, body, (size_t)len);
}

static const struct kbv_backend_ops mem_ops = { .name = "mem", .get = mem_get };

static struct kbv_meta_listed listing[N];

static void setup_mem(struct mem *m, unsigned parallel)
{
	memset(m, 0, sizeof *m);
	m->base.ops = &mem_ops;
	m->base.parallel = parallel;
	m->fail = -1;
	pthread_mutex_init(&m->mu, NULL);
	for (size_t i = 0; i < N; i++) {
		memset(listing[i].id, 0, KBV_ID_BYTES);
		listing[i].id[KBV_ID_BYTES - 1] = (uint8_t)i;
		listing[i].size = 10;
	}
}

static unsigned total(const struct mem *m)
{
	unsigned t = 0;
	for (size_t i = 0; i < N; i++)
		t += m->gets[i];
	return t;
}

static int want_all(void *arg, const struct kbv_meta_listed *l)
{
	(void)arg;
	(void)l;
	return 1;
}

static int want_even(void *arg, const struct kbv_meta_listed *l)
{
	(void)arg;
	return l->id[KBV_ID_BYTES - 1] % 2 == 0;
}

/* Ask for l[i] and check its bytes. */
static void get_ok(struct kbv_ahead *a, size_t i, size_t left)
{
	struct kbv_buf b = KBV_BUF_INIT;
	char want[32];
	assert_int_equal(kbv_ahead_get(a, listing, i, N, left, &b), 0);
	int len = snprintf(want, sizeof want, "object %zu", i);
	assert_int_equal(b.len, (size_t)len);
	assert_memory_equal(b.data, want, (size_t)len);
	kbv_buf_release(&b);
}

static void test_runs_of_most(void **state)
{
	struct mem m;
	struct kbv_ahead a;
	(void)state;
	setup_mem(&m, 4);
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 4, 0, want_all, NULL);
	get_ok(&a, 0, N);
	assert_int_equal(total(&m), 4); /* 0..3 in one run */
	for (size_t i = 1; i < 4; i++)
		get_ok(&a, i, N - i);
	assert_int_equal(total(&m), 4); /* taken, not fetched again */
	get_ok(&a, 4, N - 4);
	assert_int_equal(total(&m), 8); /* the next run: 4..7 */
	for (size_t i = 5; i < N; i++)
		get_ok(&a, i, N - i);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(m.gets[i], 1);
	kbv_ahead_release(&a);
}

static void test_bounds_and_skips(void **state)
{
	struct mem m;
	struct kbv_ahead a;
	(void)state;
	/* `left`: no more than the reader can still use. */
	setup_mem(&m, 8);
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 8, 0, want_all, NULL);
	get_ok(&a, 0, 2);
	assert_int_equal(total(&m), 2);
	kbv_ahead_release(&a);
	/* Listed bytes: 10 each, 25 at most: two. */
	setup_mem(&m, 8);
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 8, 25, want_all, NULL);
	get_ok(&a, 0, N);
	assert_int_equal(total(&m), 2);
	kbv_ahead_release(&a);
	/* want(): the odd ones are not fetched ahead; one asked anyway is a GET of its own,
	 * and the run goes on. */
	setup_mem(&m, 8);
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 3, 0, want_even, NULL);
	get_ok(&a, 0, N);
	assert_int_equal(total(&m), 3);
	assert_int_equal(m.gets[0] + m.gets[2] + m.gets[4], 3);
	get_ok(&a, 1, N - 1);
	assert_int_equal(m.gets[1], 1);
	get_ok(&a, 2, N - 2);
	get_ok(&a, 4, N - 4);
	assert_int_equal(total(&m), 4);
	/* Passed over (no longer wanted): released, the next asked starts a run. */
	get_ok(&a, 6, N - 6);
	assert_int_equal(m.gets[6], 1);
	kbv_ahead_release(&a);
	kbv_ahead_release(&a); /* twice: a no-op */
}

static void test_failed_run(void **state)
{
	struct mem m;
	struct kbv_ahead a;
	struct kbv_buf b = KBV_BUF_INIT;
	(void)state;
	setup_mem(&m, 4);
	m.fail = 2;
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 4, 0, want_all, NULL);
	/* In the run 0..3 object 2 fails (kbv_be_get_many starts none after a failure: object 3
	 * is fetched in the run or not). Those fetched are handed out; 2 is read on its own,
	 * and 3 too when the run did not fetch it: every object but the failed one once. */
	get_ok(&a, 0, N);
	assert_int_equal(m.gets[0], 1);
	get_ok(&a, 1, N - 1);
	assert_int_equal(m.gets[1], 1);
	assert_int_equal(kbv_ahead_get(&a, listing, 2, N, N - 2, &b), KBV_ENOTFOUND);
	assert_non_null(strstr(kbv_errmsg(), "object 2 is gone"));
	assert_int_equal(m.gets[2], 2); /* in the run, then on its own: never once per run */
	get_ok(&a, 3, N - 3);
	assert_int_equal(m.gets[3], 1);
	unsigned before = total(&m);
	get_ok(&a, 4, N - 4); /* after the failed run: a new one, 4..7 */
	assert_int_equal(total(&m), before + 4);
	for (size_t i = 5; i < N; i++)
		get_ok(&a, i, N - i);
	for (size_t i = 4; i < N; i++)
		assert_int_equal(m.gets[i], 1);
	kbv_buf_release(&b);
	kbv_ahead_release(&a);
}

static void test_one_connection(void **state)
{
	struct mem m;
	struct kbv_ahead a;
	(void)state;
	setup_mem(&m, 1);
	kbv_ahead_init(&a, &m.base, KBV_OBJ_INDEX, 8, 0, want_all, NULL);
	for (size_t i = 0; i < N; i++) {
		get_ok(&a, i, N - i);
		assert_int_equal(total(&m), i + 1); /* one at a time: nothing ahead */
	}
	kbv_ahead_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_of_most),
		cmocka_unit_test(test_bounds_and_skips),
		cmocka_unit_test(test_failed_run),
		cmocka_unit_test(test_one_connection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
