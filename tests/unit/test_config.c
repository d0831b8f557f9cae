/* The configuration file: values as written, inline comments, and one clear error naming
 * file and line for every mistake a user makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "kbv/config.h"
#include "kbv/error.h"

static char path[64];

static int load(const char *text, struct kbv_config **c)
{
	snprintf(path, sizeof path, "/tmp/kbv-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = kbv_config_load(path, c);
	unlink(path);
	return rc;
}

static void expect_error(const char *text, int line, const char *words)
{
	struct kbv_config *c = NULL;
	assert_int_equal(load(text, &c), KBV_EINVAL);
	char want[128];
	if (line)
		snprintf(want, sizeof want, "%s:%d: ", path, line);
	else
		snprintf(want, sizeof want, "%s: ", path);
	if (strncmp(kbv_errmsg(), want, strlen(want)) != 0 || !strstr(kbv_errmsg(), words))
		fail_msg("error '%s' should start with '%s' and mention '%s'", kbv_errmsg(), want, words);
	assert_null(c);
}

static void test_full_example(void **s)
{
	(void)s;
	struct kbv_config *c;
	assert_int_equal(load("[repository]\n"
			      "path = /var/backups/kbvault\n"
			      "password-file = /dev/null\n"
			      "\n"
			      "[source kb]\n"
			      "type = postgres\n"
			      "dsn = host=127.0.0.1 port=5432 dbname=kb user=kb   ; libpq conninfo; never logged\n"
			      "mode = pg_dump\n"
			      "\n"
			      "[source vectors]\n"
			      "type = qdrant\n"
			      "url = http://127.0.0.1:6333\n"
			      "[source graph]\n"
			      "type = neo4j\n"
			      "dump-command = neo4j-admin database dump neo4j --to-stdout\n"
			      "load-command = neo4j-admin database load neo4j --from-stdin --overwrite-destination=true\n"
			      "[source uploads]\n"
			      "type = path\n"
			      "paths = /srv/kb/uploads /etc/kb\n"
			      "[drill]\n"
			      "postgres-dsn = host=127.0.0.1 user=postgres\n"
			      "[retention]\n"
			      "keep-last = 7\nkeep-daily = 14\nkeep-within = 2d\n"
			      "[monitor]\n"
			      "max-age = 26h\n",
			      &c),
			 0);
	assert_string_equal(c->repo_path, "/var/backups/kbvault");
	assert_string_equal(c->password_file, "/dev/null");
	assert_int_equal(c->nsources, 4);
	const struct kbv_source_cfg *kb = kbv_config_source(c, "kb");
	assert_non_null(kb);
	assert_int_equal(kb->type, KBV_SOURCE_POSTGRES);
	assert_string_equal(kb->dsn, "host=127.0.0.1 port=5432 dbname=kb user=kb"); /* comment stripped */
	assert_string_equal(kb->mode, "pg_dump");
	assert_string_equal(kbv_config_source(c, "uploads")->paths, "/srv/kb/uploads /etc/kb");
	assert_int_equal(kbv_config_source(c, "graph")->type, KBV_SOURCE_NEO4J);
	assert_null(kbv_config_source(c, "nope"));
	assert_string_equal(c->drill_postgres_dsn, "host=127.0.0.1 user=postgres");
	assert_int_equal(c->retention.last, 7);
	assert_int_equal(c->retention.daily, 14);
	assert_int_equal(c->retention.within.days, 2);
	assert_string_equal(c->max_age, "26h");
	kbv_config_free(c);
}

static void test_continuation(void **s)
{
	(void)s;
	struct kbv_config *c;
	assert_int_equal(load("[source graph]\ntype = neo4j\n"
			      "dump-command = docker exec kb-neo4j-1\n"
			      "    neo4j-admin database dump neo4j --to-stdout\n"
			      "load-command = x\n",
			      &c),
			 0);
	assert_string_equal(kbv_config_source(c, "graph")->dump_command,
			    "docker exec kb-neo4j-1 neo4j-admin database dump neo4j --to-stdout");
	kbv_config_free(c);
}

static void test_errors(void **s)
{
	(void)s;
	expect_error("[repository]\npath = /x\ncolour = blue\n", 3, "unknown key 'colour' in [repository]");
	expect_error("[repo]\npath = /x\n", 2, "unknown section [repo]");
	expect_error("[source kb]\ntype = mysql\n", 2, "unknown source type 'mysql'");
	expect_error("[source kb]\ndsn = x\n", 2, "'type' must come first");
	expect_error("[source kb]\ntype = postgres\nurl = http://x\n", 3, "does not apply to a postgres source");
	expect_error("[source kb]\ntype = postgres\ndsn = a\n[source kb]\ntype = path\n", 5, "defined twice");
	expect_error("[source kb]\ntype = postgres\ndsn = a\n[source x]\ntype = path\npaths = /\n[source kb]\ntype = path\n",
		     8, "defined twice");
	expect_error("[source kb]\ntype = postgres\ndsn = a\ndsn = b\n", 4, "'dsn' is set twice");
	expect_error("[source kb]\ntype = postgres\n", 2, "needs 'dsn'");
	expect_error("[source c]\ntype = command\ndump-command = x\n", 2, "needs 'restore-command'");
	expect_error("[source kb]\ntype = postgres\ndsn = a\nmode = fast\n", 2, "mode must be native, pg_dump or physical");
	expect_error("[repository]\npath = /x\n[source kb]\ntype = postgres\ndsn = a\nglobals = maybe\n", 4,
		     "globals must be yes or no");
	expect_error("[source kb]\ntype = postgres\ndsn = a\njobs = 4\n", 2, "needs mode = pg_dump");
	expect_error("[source kb]\ntype = postgres\ndsn = a\nmode = pg_dump\njobs = 0\n", 2, "from 1 to 64");
	expect_error("[retention]\nkeep-last = seven\n", 2, "whole number");
	expect_error("[retention]\nkeep-within = 2 weeks\n", 2, "not a duration");
	expect_error("[repository]\npassword-file = /nonexistent/pw\n", 2, "not readable");
	expect_error("[repository\npath = x\n", 1, "syntax error");
	expect_error("[source a/b]\ntype = path\n", 2, "1 to 64 letters");
	expect_error("[source ..]\ntype = path\n", 2, "1 to 64 letters");
	expect_error("path = /x\n[repository]\n", 1, "outside any section");
	expect_error("[repository]\npath = /x\nthis line has no equals sign\n", 3, "syntax error");
}

static void test_find(void **s)
{
	(void)s;
	char *p;
	assert_int_equal(kbv_config_find("/nonexistent/kbvault.conf", &p), KBV_ENOTFOUND);
	unsetenv("KBVAULT_CONFIG");
	if (access("kbvault.conf", F_OK) != 0 && access("/etc/kbvault/kbvault.conf", F_OK) != 0) {
		assert_int_equal(kbv_config_find(NULL, &p), 0);
		assert_null(p); /* no file anywhere is fine */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_find),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
