/* Small pieces: bounds-checked reader, hex, stream names from paths, buffer ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kbv/beside.h"
#include "kbv/buf.h"
#include "kbv/error.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_path_to_name),
		cmocka_unit_test(test_buf_detach),
		cmocka_unit_test(test_beside),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
