/* The one-table filter of a native snapshot's SQL stream (kbv/pgtable.h): what it keeps and
 * drops, COPY data that looks like a header, any split of the input, a truncated stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/pgtable.h"

static const char DUMP[] =
	"\\restrict KEY1\n"
	"SET client_encoding = 'UTF8';\n"
	"SELECT pg_catalog.set_config('search_path', '', false);\n"
	"\n--\n-- Name: app; Type: SCHEMA; Schema: -; Owner: kb\n--\n\nCREATE SCHEMA app;\n\n\n"
	"ALTER SCHEMA app OWNER TO kb;\n"
	"\n--\n-- Name: mood; Type: TYPE; Schema: app; Owner: kb\n--\n\nCREATE TYPE app.mood AS ENUM (\n    'sad'\n);\n\n"
	"\n--\n-- Name: other_t; Type: TYPE; Schema: app; Owner: kb\n--\n\nCREATE TYPE app.other_t AS ENUM ('x');\n\n"
	"\n--\n-- Name: docs; Type: TABLE; Schema: app; Owner: kb\n--\n\nCREATE TABLE app.docs (\n    id bigint NOT NULL,\n"
	"    feeling app.mood\n);\n\n\nALTER TABLE app.docs OWNER TO kb;\n"
	"\n--\n-- Name: docs_id_seq; Type: SEQUENCE; Schema: app; Owner: kb\n--\n\nALTER TABLE app.docs ALTER COLUMN id ADD "
	"GENERATED ALWAYS AS IDENTITY (\n    SEQUENCE NAME app.docs_id_seq\n);\n\n"
	"\n--\n-- Name: notes; Type: TABLE; Schema: app; Owner: kb\n--\n\nCREATE TABLE app.notes (id int, doc bigint);\n\n"
	"\n--\n-- Name: notes_id_seq; Type: SEQUENCE; Schema: app; Owner: kb\n--\n\nCREATE SEQUENCE app.notes_id_seq;\n\n"
	"\n--\n-- Name: notes_id_seq; Type: SEQUENCE OWNED BY; Schema: app; Owner: kb\n--\n\nALTER SEQUENCE app.notes_id_seq "
	"OWNED BY app.notes.id;\n\n"
	"\n--\n-- Name: TABLE docs; Type: COMMENT; Schema: app; Owner: kb\n--\n\nCOMMENT ON TABLE app.docs IS 'the docs';\n\n"
	"\n--\n-- Name: TABLE docs; Type: ACL; Schema: app; Owner: kb\n--\n\nGRANT SELECT ON TABLE app.docs TO reader;\n\n"
	"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict KEY1\n"
	"\n--\n-- Data for Name: docs; Type: TABLE DATA; Schema: app; Owner: kb\n--\n\nCOPY app.docs (id, feeling) FROM stdin;\n"
	"1\tsad\n--\n-- Name: x; Type: TABLE; Schema: app; Owner: kb\n\\.\n\n\n"
	"\n--\n-- Data for Name: notes; Type: TABLE DATA; Schema: app; Owner: kb\n--\n\nCOPY app.notes (id, doc) FROM stdin;\n"
	"7\t1\n\\.\n\n\n"
	"\n--\n-- Sequence values\n--\n\nSELECT pg_catalog.setval('app.docs_id_seq', 1, true);\n"
	"SELECT pg_catalog.setval('app.notes_id_seq', 7, true);\n"
	"\\restrict KEY2\nSET client_encoding = 'UTF8';\n"
	"\n--\n-- Name: docs docs_pkey; Type: CONSTRAINT; Schema: app; Owner: kb\n--\n\nALTER TABLE ONLY app.docs\n"
	"    ADD CONSTRAINT docs_pkey PRIMARY KEY (id);\n\n"
	"\n--\n-- Name: notes_doc; Type: INDEX; Schema: app; Owner: kb\n--\n\nCREATE INDEX notes_doc ON app.notes USING btree (doc);\n\n"
	"\n--\n-- Name: docs_feeling; Type: INDEX; Schema: app; Owner: kb\n--\n\nCREATE INDEX docs_feeling ON app.docs USING btree "
	"(feeling);\n\n"
	"\n--\n-- Name: docs touch; Type: TRIGGER; Schema: app; Owner: kb\n--\n\nCREATE TRIGGER touch BEFORE UPDATE ON app.docs FOR "
	"EACH ROW EXECUTE FUNCTION app.f();\n\n"
	"\n--\n-- Name: docs docs_parent_fkey; Type: FK CONSTRAINT; Schema: app; Owner: kb\n--\n\nALTER TABLE ONLY app.docs\n"
	"    ADD CONSTRAINT docs_parent_fkey FOREIGN KEY (id) REFERENCES app.notes(id);\n\n"
	"\n--\n-- Name: docs docs_self_fkey; Type: FK CONSTRAINT; Schema: app; Owner: kb\n--\n\nALTER TABLE ONLY app.docs\n"
	"    ADD CONSTRAINT docs_self_fkey FOREIGN KEY (id) REFERENCES app.docs(id);\n\n"
	"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict KEY2\n";

static int to_buf(void *arg, const char *p, size_t n)
{
	return kbv_buf_add(arg, p, n);
}

/* The filter's output for DUMP fed in pieces of `step` bytes. */
static char *run(const char *schema, const char *name, const char *qname, size_t step, int *rc, char **left)
{
	struct kbv_buf out = KBV_BUF_INIT;
	struct kbv_pgtable_filter *f;
	assert_int_equal(kbv_pgtable_filter_new(schema, name, qname, to_buf, &out, &f), 0);
	size_t len = strlen(DUMP);
	for (size_t off = 0; off < len; off += step)
		assert_int_equal(kbv_pgtable_filter_feed(f, DUMP + off, off + step > len ? len - off : step), 0);
	*rc = kbv_pgtable_filter_end(f);
	*left = strdup(kbv_pgtable_filter_left_out(f));
	kbv_pgtable_filter_free(f);
	kbv_buf_add(&out, "", 1);
	return (char *)kbv_buf_detach(&out, NULL);
}

static void test_one_table(void **state)
{
	(void)state;
	char *first = NULL;
	for (size_t step = 1; step <= 4096; step = step * 3 + 1) {
		int rc;
		char *left, *o = run("app", "docs", "app.docs", step, &rc, &left);
		assert_int_equal(rc, 0);
		/* kept */
		assert_non_null(strstr(o, "\\restrict KEY1\n"));
		assert_non_null(strstr(o, "CREATE SCHEMA IF NOT EXISTS app;"));
		assert_non_null(strstr(o, "to_regtype(format('%I.%I', 'app', 'mood')) IS NULL THEN EXECUTE $kbvault_def$CREATE TYPE app.mood"));
		assert_non_null(strstr(o, "CREATE TABLE app.docs ("));
		assert_non_null(strstr(o, "SEQUENCE NAME app.docs_id_seq"));
		assert_non_null(strstr(o, "COMMENT ON TABLE app.docs"));
		assert_non_null(strstr(o, "1\tsad\n--\n-- Name: x; Type: TABLE; Schema: app; Owner: kb\n\\.\n")); /* data, whole */
		assert_non_null(strstr(o, "setval('app.docs_id_seq', 1, true)"));
		assert_non_null(strstr(o, "ADD CONSTRAINT docs_pkey PRIMARY KEY"));
		assert_non_null(strstr(o, "CREATE INDEX docs_feeling ON app.docs"));
		assert_non_null(strstr(o, "docs_self_fkey"));
		/* the stream ends unrestricted with the first key, once */
		assert_non_null(strstr(o, "\\unrestrict KEY1\n"));
		assert_null(strstr(o, "KEY2"));
		assert_true(strstr(o, "\\unrestrict KEY1") > strstr(o, "docs_self_fkey"));
		/* dropped */
		assert_null(strstr(o, "other_t"));
		assert_null(strstr(o, "app.notes"));
		assert_null(strstr(o, "OWNER TO"));
		assert_null(strstr(o, "GRANT"));
		assert_null(strstr(o, "CREATE TRIGGER"));
		assert_null(strstr(o, "docs_parent_fkey FOREIGN"));
		assert_null(strstr(o, "7\t1"));
		/* and said */
		assert_non_null(strstr(left, "grants on app.docs"));
		assert_non_null(strstr(left, "trigger (it may name functions or roles): touch"));
		assert_non_null(strstr(left, "foreign key (references another table): docs_parent_fkey"));
		/* the split of the input changes nothing */
		if (!first)
			first = strdup(o);
		else
			assert_string_equal(o, first);
		free(o);
		free(left);
	}
	free(first);
}

static void test_owned_sequence_and_missing(void **state)
{
	(void)state;
	int rc;
	char *left, *o = run("app", "notes", "app.notes", 100, &rc, &left);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(o, "CREATE SEQUENCE app.notes_id_seq;"));
	assert_non_null(strstr(o, "OWNED BY app.notes.id"));
	assert_non_null(strstr(o, "setval('app.notes_id_seq', 7, true)"));
	assert_non_null(strstr(o, "7\t1\n\\.\n"));
	assert_non_null(strstr(o, "CREATE INDEX notes_doc ON app.notes"));
	assert_non_null(strstr(o, "CREATE SCHEMA IF NOT EXISTS app;")); /* its schema is not public */
	free(o);
	free(left);
	o = run("app", "gone", "app.gone", 7, &rc, &left);
	assert_int_equal(rc, KBV_ENOTFOUND);
	free(o);
	free(left);
}

static void test_truncated_and_names(void **state)
{
	(void)state;
	struct kbv_buf out = KBV_BUF_INIT;
	struct kbv_pgtable_filter *f;
	const char *cut = strstr(DUMP, "1\tsad");
	assert_int_equal(kbv_pgtable_filter_new("app", "docs", "app.docs", to_buf, &out, &f), 0);
	assert_int_equal(kbv_pgtable_filter_feed(f, DUMP, (size_t)(cut - DUMP) + 3), 0);
	assert_int_equal(kbv_pgtable_filter_end(f), KBV_ECORRUPT);
	kbv_pgtable_filter_free(f);
	kbv_buf_release(&out);
	char s[64], n[64];
	assert_int_equal(kbv_pg_split_qname("public.documents", s, sizeof s, n, sizeof n), 0);
	assert_string_equal(s, "public");
	assert_string_equal(n, "documents");
	assert_int_equal(kbv_pg_split_qname("\"My \"\"S\"\".x\".\"T.1\"", s, sizeof s, n, sizeof n), 0);
	assert_string_equal(s, "My \"S\".x");
	assert_string_equal(n, "T.1");
	assert_int_equal(kbv_pg_split_qname("documents", s, sizeof s, n, sizeof n), -1);
	assert_int_equal(kbv_pg_split_qname("a.b.c", s, sizeof s, n, sizeof n), -1);
	assert_int_equal(kbv_pg_split_qname("\"open.b", s, sizeof s, n, sizeof n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_table),
		cmocka_unit_test(test_owned_sequence_and_missing),
		cmocka_unit_test(test_truncated_and_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
