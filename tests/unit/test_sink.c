/* The snapshot sink (include/kbv/sink.h) that every source kind writes into: names are
 * checked when an entry is added, collisions that could never be restored are refused
 * before the commit, trees are walked with modes and owners, excluded paths and special
 * files are left out and said so through the events. */
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

#include "kbv/error.h"
#include "kbv/sink.h"

static char dir[64], tree[96];
static struct kbv_repo *repo;
static struct kbv_writer *w;
static char warned[2048], informed[2048];

/* Append msg and a newline to buf (truncated when full). */
static void add_line(char *buf, size_t cap, const char *msg)
{
	size_t n = strlen(buf);
	snprintf(buf + n, cap - n, "%s\n", msg);
}

static void on_warn(void *arg, const char *msg)
{
	(void)arg;
	add_line(warned, sizeof warned, msg);
}

static void on_info(void *arg, const char *msg)
{
	(void)arg;
	add_line(informed, sizeof informed, msg);
}

static const struct kbv_sink_events ev = { on_warn, on_info, NULL };

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof dir, "/tmp/kbv-sink-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(tree, sizeof tree, "%s/tree", dir);
	struct kbv_init_opts o = { .encrypted = 0 };
	char repo_dir[96];
	snprintf(repo_dir, sizeof repo_dir, "%s/repo", dir);
	assert_int_equal(kbv_repo_init(repo_dir, &o, NULL, 0), 0);
	assert_int_equal(kbv_repo_open(repo_dir, KBV_LOCK_SHARED, &repo), 0);
	assert_int_equal(kbv_repo_unlock(repo, NULL, 0), 0);
	assert_int_equal(kbv_writer_new(repo, 1, &w), 0);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	kbv_writer_free(w);
	kbv_repo_close(repo);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_names(void **st)
{
	(void)st;
	struct kbv_sink *s;
	assert_int_equal(kbv_sink_new(repo, w, 1, &ev, &s), 0);
	static const char *const bad[] = { "", "/abs", "../x", "a//b", "a/./b", "a/.." };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, bad[i]));
		assert_non_null(strstr(kbv_errmsg(), "not a valid stream name"));
	}
	/* a typed stream name must not carry control characters (they reach terminals raw) */
	assert_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, "evil\033[2Jname"));
	assert_null(kbv_sink_entry(s, KBV_ENTRY_COMMAND, "new\nline"));
	char longname[5000];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	assert_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, longname));
	assert_non_null(strstr(kbv_errmsg(), "cannot be restored"));
	size_t n;
	kbv_sink_entries(s, &n);
	assert_int_equal(n, 0);

	/* what could never be restored side by side is refused before the commit */
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, "p"));
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_COMMAND, "p/q"));
	assert_int_equal(kbv_sink_check(s), KBV_EINVAL);
	assert_non_null(strstr(kbv_errmsg(), "would also be the directory"));
	kbv_sink_free(s);
	assert_int_equal(kbv_sink_new(repo, w, 1, &ev, &s), 0);
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, "same"));
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_COMMAND, "same"));
	assert_int_equal(kbv_sink_check(s), KBV_EINVAL);
	assert_non_null(strstr(kbv_errmsg(), "two streams are named 'same'"));
	kbv_sink_free(s);
	/* "p" beside "p.x" and "p-1" is fine (they sort between "p" and "p/") */
	assert_int_equal(kbv_sink_new(repo, w, 1, &ev, &s), 0);
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_STDIN, "p"));
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_COMMAND, "p.x"));
	assert_non_null(kbv_sink_entry(s, KBV_ENTRY_COMMAND, "p-1/q"));
	assert_int_equal(kbv_sink_check(s), 0);
	assert_false(kbv_sink_degraded(s));
	kbv_sink_set_degraded(s);
	assert_true(kbv_sink_degraded(s));
	kbv_sink_free(s);
}

static void test_tree(void **st)
{
	(void)st;
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "mkdir -p %1$s/sub %1$s/cache && printf hello > %1$s/a.txt && printf world > %1$s/sub/b.log && "
		 "printf x > %1$s/cache/c && ln -s a.txt %1$s/link && mkfifo %1$s/fifo && chmod 640 %1$s/a.txt",
		 tree);
	assert_int_equal(system(cmd), 0);
	struct kbv_sink *s;
	warned[0] = informed[0] = 0;
	assert_int_equal(kbv_sink_new(repo, w, 1, &ev, &s), 0);
	assert_int_equal(kbv_sink_tree(s, tree, "files/tree", "*.log cache"), 0);
	size_t n;
	const struct kbv_entry *e = kbv_sink_entries(s, &n);
	/* the directory itself, a.txt, link, sub; not sub/b.log (*.log), cache (and below), fifo */
	const char *want[] = { "files/tree", "files/tree/a.txt", "files/tree/link", "files/tree/sub" };
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(e[i].name, want[i]);
		assert_int_equal(e[i].uid, getuid());
		assert_non_null(e[i].user);
	}
	assert_int_equal(e[0].kind, KBV_ENTRY_DIR);
	assert_int_equal(e[1].kind, KBV_ENTRY_FILE);
	assert_int_equal(e[1].size, 5);
	assert_int_equal(e[1].mode & 07777, 0640);
	assert_int_equal(e[2].kind, KBV_ENTRY_SYMLINK);
	assert_string_equal(e[2].target, "a.txt");
	assert_non_null(strstr(warned, "fifo"));
	assert_non_null(strstr(warned, "not a regular file, directory or symlink"));
	assert_non_null(strstr(informed, "excluded"));
	assert_int_equal(kbv_sink_check(s), 0);
	kbv_sink_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_tree),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
