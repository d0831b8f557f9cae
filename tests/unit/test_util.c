/* Small pieces: bounds-checked reader, hex, stream names from paths, buffer ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "kbv/beside.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/proc.h"

static void test_reader_bounds(void **s)
{
	(void)s;
	uint8_t b[6] = { 1, 0, 0, 0, 9, 9 };
	struct kbv_rd r = kbv_rd_make(b, sizeof b);
	assert_int_equal(kbv_rd_u32(&r), 1);
	assert_int_equal(r.bad, 0);
	assert_int_equal(kbv_rd_u32(&r), 0); /* only 2 bytes left */
	assert_int_equal(r.bad, 1);
	assert_int_equal(kbv_rd_u8(&r), 0); /* stays bad */
	uint8_t str[] = { 3, 0, 'a', 0, 'b' };
	r = kbv_rd_make(str, sizeof str);
	assert_null(kbv_rd_str16(&r)); /* embedded NUL */
	assert_int_equal(r.bad, 1);
}

static void test_hex(void **s)
{
	(void)s;
	uint8_t in[3] = { 0x00, 0xab, 0xff }, out[3];
	char hex[7];
	kbv_hex(in, 3, hex);
	assert_string_equal(hex, "00abff");
	assert_int_equal(kbv_unhex("00ABff", out, 3), 0);
	assert_memory_equal(in, out, 3);
	assert_int_not_equal(kbv_unhex("00abf", out, 3), 0);
	assert_int_not_equal(kbv_unhex("00abfg", out, 3), 0);
}

static void test_path_to_name(void **s)
{
	(void)s;
	char n[64];
	assert_int_equal(kbv_path_to_name("/srv/exports/", n, sizeof n), 0);
	assert_string_equal(n, "srv/exports");
	assert_int_equal(kbv_path_to_name("./a//b/./c", n, sizeof n), 0);
	assert_string_equal(n, "a/b/c");
	assert_int_equal(kbv_path_to_name("a/../b", n, sizeof n), KBV_EINVAL);
	assert_int_equal(kbv_path_to_name("/", n, sizeof n), KBV_EINVAL);
	assert_int_equal(kbv_path_to_name(".", n, sizeof n), KBV_EINVAL);
	assert_int_equal(kbv_path_to_name("/a/very/long/path/that/does/not/fit/in/the/buffer/at/all", n, 16), KBV_EINVAL);
}

static void test_buf_detach(void **s)
{
	(void)s;
	struct kbv_buf b = KBV_BUF_INIT;
	assert_int_equal(kbv_buf_add_str16(&b, "hey"), 0);
	size_t len;
	uint8_t *p = kbv_buf_detach(&b, &len);
	assert_int_equal(len, 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
	kbv_buf_release(&b); /* no-op on an empty buffer */
}

static int fails(void *arg)
{
	return kbv_error(KBV_ENOTFOUND, "side call %s failed", (const char *)arg);
}

static int answers(void *arg)
{
	*(int *)arg = 42;
	return 1;
}

/* A call beside the caller: its status and message reach the caller's thread when it
 * waits, unless the caller's own work failed (its message then stays). */
static void test_beside(void **s)
{
	(void)s;
	struct kbv_beside b;
	kbv_beside_start(&b, fails, "one");
	assert_int_equal(kbv_beside_wait(&b, 0), KBV_ENOTFOUND);
	assert_string_equal(kbv_errmsg(), "side call one failed");

	kbv_beside_start(&b, fails, "two");
	int mine = kbv_error(KBV_EIO, "the caller's own failure");
	assert_int_equal(kbv_beside_wait(&b, mine), KBV_EIO);
	assert_string_equal(kbv_errmsg(), "the caller's own failure");

	int v = 0;
	kbv_beside_start(&b, answers, &v);
	assert_int_equal(kbv_beside_wait(&b, 0), 1);
	assert_int_equal(v, 42);
}

/* kbv_beside_each: every item once, side by side, each slot t on one thread only; the
 * lowest failed item's error; no item started after a failure; one thread: in order. */
struct each_log {
	atomic_int done[64];
	atomic_int inflight, most;
	pthread_t who[KBV_BESIDE_MOST];
	atomic_int who_set[KBV_BESIDE_MOST];
	int fail_a, fail_b; /* items that fail, -1 none */
	int wait_for;	    /* hold each call until this many run at once (or 5 s pass) */
	int hold_ms;	    /* and then this long, but for item 0 */
	int order[64], norder;
	pthread_mutex_t mu;
};

static int each_item(void *arg, unsigned t, size_t i)
{
	struct each_log *l = arg;
	assert_true(t < KBV_BESIDE_MOST);
	if (atomic_exchange(&l->who_set[t], 1))
		assert_true(pthread_equal(l->who[t], pthread_self()));
	else
		l->who[t] = pthread_self();
	int now = atomic_fetch_add(&l->inflight, 1) + 1, m = atomic_load(&l->most);
	while (now > m && !atomic_compare_exchange_weak(&l->most, &m, now))
		;
	for (int k = 0; k < 5000 && atomic_load(&l->most) < l->wait_for; k++)
		usleep(1000);
	if (i)
		usleep(1000 * (unsigned)l->hold_ms);
	pthread_mutex_lock(&l->mu);
	l->order[l->norder++] = (int)i;
	pthread_mutex_unlock(&l->mu);
	atomic_fetch_add(&l->done[i], 1);
	atomic_fetch_sub(&l->inflight, 1);
	if ((int)i == l->fail_a || (int)i == l->fail_b)
		return kbv_error((int)i == l->fail_a ? KBV_ECORRUPT : KBV_EIO, "item %zu failed", i);
	return 0;
}

static void each_reset(struct each_log *l)
{
	memset(l, 0, sizeof *l);
	l->fail_a = l->fail_b = -1;
	pthread_mutex_init(&l->mu, NULL);
}

static void test_beside_each(void **s)
{
	(void)s;
	struct each_log l;
	each_reset(&l);
	l.wait_for = 4;
	assert_int_equal(kbv_beside_each(40, 4, each_item, &l), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(atomic_load(&l.done[i]), 1);
	assert_int_equal(atomic_load(&l.most), 4); /* side by side, never more than asked */

	/* More threads asked than allowed: KBV_BESIDE_MOST. */
	each_reset(&l);
	l.wait_for = KBV_BESIDE_MOST;
	assert_int_equal(kbv_beside_each(64, 64, each_item, &l), 0);
	assert_int_equal(atomic_load(&l.most), KBV_BESIDE_MOST);

	/* Two fail: the lower one's error and message, whatever finished first. */
	each_reset(&l);
	l.fail_a = 3;
	l.fail_b = 7;
	assert_int_equal(kbv_beside_each(8, 8, each_item, &l), KBV_ECORRUPT);
	assert_string_equal(kbv_errmsg(), "item 3 failed");

	/* No item is started after a failure (each held 5 ms: 60 would take 300 ms). */
	each_reset(&l);
	l.fail_a = 0;
	l.hold_ms = 5;
	assert_int_equal(kbv_beside_each(60, 2, each_item, &l), KBV_ECORRUPT);
	int done = 0;
	for (int i = 0; i < 60; i++)
		done += atomic_load(&l.done[i]);
	assert_true(done < 60);

	/* One thread: here, in order, stopping at the first failure. */
	each_reset(&l);
	l.fail_a = 5;
	assert_int_equal(kbv_beside_each(10, 1, each_item, &l), KBV_ECORRUPT);
	assert_int_equal(l.norder, 6);
	for (int i = 0; i < 6; i++)
		assert_int_equal(l.order[i], i);
	assert_int_equal(kbv_beside_each(0, 4, each_item, &l), 0);
}

static off_t file_size(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* kbv_wbuf: small pieces wait in the buffer, a full buffer is written, a piece as large as
 * the buffer goes straight through after what waits, and the file holds every byte in
 * order; a reader that went away fails the write and marks it. */
static void test_wbuf(void **s)
{
	(void)s;
	char path[] = "/tmp/kbv-test-wbuf.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	enum { CAP = 64 };
	uint8_t want[1000];
	size_t wlen = 0;
	struct kbv_wbuf w;
	assert_int_equal(kbv_wbuf_init(&w, fd, CAP, "the test file"), 0);
	const size_t pieces[] = { 1, 10, 40, 12, 1, 63, 64, 0, 65, 3, 200, 5 };
	for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
		uint8_t piece[256];
		for (size_t k = 0; k < pieces[i]; k++)
			piece[k] = (uint8_t)(wlen + k);
		size_t before = w.len;
		assert_int_equal(kbv_wbuf_put(&w, piece, pieces[i]), 0);
		memcpy(want + wlen, piece, pieces[i]);
		wlen += pieces[i];
		/* what is on file is everything but what waits in the buffer */
		assert_int_equal(file_size(fd), (off_t)(wlen - w.len));
		if (pieces[i] >= CAP)
			assert_int_equal(w.len, 0);
		else if (before + pieces[i] <= CAP)
			assert_int_equal(w.len, before + pieces[i]);
	}
	assert_true(w.len > 0);
	assert_int_equal(kbv_wbuf_flush(&w), 0);
	assert_int_equal(w.len, 0);
	assert_int_equal(file_size(fd), (off_t)wlen);
	uint8_t got[1000];
	assert_int_equal(pread(fd, got, wlen, 0), (ssize_t)wlen);
	assert_memory_equal(got, want, wlen);
	assert_false(w.failed);
	kbv_wbuf_free(&w);
	close(fd);

	/* the reading end closed: the flush fails, names the stream and marks the buffer */
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(kbv_wbuf_init(&w, p[1], CAP, "the test pipe"), 0);
	assert_int_equal(kbv_wbuf_put(&w, "abc", 3), 0); /* waits: nothing written yet */
	assert_false(w.failed);
	assert_int_equal(kbv_wbuf_flush(&w), KBV_EIO);
	assert_true(w.failed);
	assert_non_null(strstr(kbv_errmsg(), "the test pipe"));
	kbv_wbuf_free(&w);
	signal(SIGPIPE, old);
	close(p[1]);
}

/* kbv_pipe_widen: a pipe of the default 64 KiB becomes 1 MiB from either end, and carries the
 * same bytes; a wider pipe stays as wide; a file or a closed descriptor is left alone. */
static void test_pipe_widen(void **s)
{
	(void)s;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(fcntl(p[0], F_GETPIPE_SZ) < KBV_PIPE_BYTES); /* 64 KiB, Linux's default */
	kbv_pipe_widen(p[1]);
	assert_int_equal(fcntl(p[0], F_GETPIPE_SZ), KBV_PIPE_BYTES);
	/* 1 MiB fits without a reader now (it would block at 64 KiB before) */
	static uint8_t big[KBV_PIPE_BYTES], back[KBV_PIPE_BYTES];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 131 + (i >> 9));
	assert_int_equal(kbv_write_full(p[1], big, sizeof big, "the test pipe"), 0);
	size_t got = 0;
	close(p[1]);
	assert_int_equal(kbv_read_upto(p[0], back, sizeof back, &got, "the test pipe"), 0);
	assert_int_equal(got, sizeof big);
	assert_memory_equal(back, big, sizeof big);
	close(p[0]);

	assert_int_equal(pipe(p), 0);
	kbv_pipe_widen(p[0]);
	assert_int_equal(fcntl(p[1], F_GETPIPE_SZ), KBV_PIPE_BYTES);
	if (fcntl(p[0], F_SETPIPE_SZ, 2 * KBV_PIPE_BYTES) == 2 * KBV_PIPE_BYTES) { /* root may */
		kbv_pipe_widen(p[1]);
		assert_int_equal(fcntl(p[0], F_GETPIPE_SZ), 2 * KBV_PIPE_BYTES);
	}
	close(p[0]);
	close(p[1]);

	char path[] = "/tmp/kbv-test-widen.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	kbv_pipe_widen(fd); /* not a pipe: nothing to do, nothing to fail */
	assert_int_equal(fcntl(fd, F_GETPIPE_SZ), -1);
	close(fd);
	kbv_pipe_widen(fd); /* closed: the same */
}

/* kbv_prealloc on tmpfs (always one of the file systems it asks): the blocks are reserved
 * and the size stays; the bytes then written read back; what is dropped is given back; a
 * pipe, nothing and less than KBV_PREALLOC_MIN to reserve are left alone. */
static void test_prealloc(void **s)
{
	(void)s;
	struct statfs fs;
	if (statfs("/dev/shm", &fs) < 0 || fs.f_type != TMPFS_MAGIC)
		skip();
	char path[] = "/dev/shm/kbv-test-prealloc.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	struct stat st;
	assert_int_equal(kbv_prealloc(fd, 0, KBV_PREALLOC_MIN, "the test file"), 1);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0); /* the size is what has been written */
	assert_true((uint64_t)st.st_blocks * 512 >= KBV_PREALLOC_MIN);
	static uint8_t data[300000], back[300000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));
	assert_int_equal(kbv_pwrite_full(fd, data, sizeof data, 0, "the test file"), 0);
	assert_int_equal(kbv_pread_full(fd, back, sizeof back, 0, "the test file"), 0);
	assert_memory_equal(back, data, sizeof data);
	/* a restore that stopped after these bytes gives the rest back */
	kbv_prealloc_drop(fd, sizeof data, KBV_PREALLOC_MIN - sizeof data);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, sizeof data);
	assert_true((uint64_t)st.st_blocks * 512 < sizeof data + 4096 * 2);
	assert_int_equal(kbv_pread_full(fd, back, sizeof back, 0, "the test file"), 0);
	assert_memory_equal(back, data, sizeof data);
	assert_int_equal(kbv_prealloc(fd, sizeof data, 0, "the test file"), 0);
	/* a small file is written as it comes */
	assert_int_equal(kbv_prealloc(fd, sizeof data, KBV_PREALLOC_MIN - 1, "the test file"), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < sizeof data + 4096 * 2);
	close(fd);

	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(kbv_prealloc(p[1], 0, KBV_PREALLOC_MIN, "the test pipe"), 0);
	close(p[0]);
	close(p[1]);
}

/* kbv_parse_long: the digits are the whole string; strtol's leniencies are refused. */
/* An environment number: the value when it parses within the bounds, else the default. */
static void test_env_long(void **st)
{
	(void)st;
	unsetenv("KBV_TEST_NUM");
	assert_int_equal(kbv_env_long("KBV_TEST_NUM", 1, 10, 7), 7);
	const char *bad[] = { "", " 5", "+5", "5x", "0", "11", "-1" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		setenv("KBV_TEST_NUM", bad[i], 1);
		assert_int_equal(kbv_env_long("KBV_TEST_NUM", 1, 10, 7), 7);
	}
	setenv("KBV_TEST_NUM", "10", 1);
	assert_int_equal(kbv_env_long("KBV_TEST_NUM", 1, 10, 7), 10);
	unsetenv("KBV_TEST_NUM");
}

static void test_parse_long(void **st)
{
	(void)st;
	long v = 7;
	assert_int_equal(kbv_parse_long("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(kbv_parse_long("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	static const char *const bad[] = { "", " 1", "\t1", "\n1", "+1", "-1", "1 ", "1x", "0x10", "101",
					    "99999999999999999999", "-", "--1" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		v = 7;
		assert_int_equal(kbv_parse_long(bad[i], 0, 100, &v), KBV_EINVAL);
		assert_int_equal(v, 7);
	}
	assert_int_equal(kbv_parse_long("- 5", -10, 10, &v), KBV_EINVAL);
	assert_int_equal(kbv_parse_long(NULL, 0, 1, &v), KBV_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_env_long),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_path_to_name),
		cmocka_unit_test(test_buf_detach),
		cmocka_unit_test(test_beside),
		cmocka_unit_test(test_beside_each),
		cmocka_unit_test(test_wbuf),
		cmocka_unit_test(test_pipe_widen),
		cmocka_unit_test(test_prealloc),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
