/* One table out of a native snapshot's SQL stream (kbv/pgtable.h). The stream is read line
 * by line. pg_dump marks each object with a header
 *
 *     --
 *     -- Name: documents; Type: TABLE; Schema: public; Owner: kb
 *     --
 *
 * (table data: "-- Data for Name: ..."), and an object runs to the next header. The
 * pre-data objects are held until the first table data: a sequence's ownership comes
 * after the sequence, so the choice is made once all of them are known. Table data passes
 * through (or is skipped) line by line; post-data objects are chosen one at a time. */
#include "kbv/pgtable.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct object {
	char *name, *type, *schema; /* of the header; NULL for the preamble */
	struct kbv_buf text;        /* the header's lines and the object's */
};

enum phase { PRE, DATA, POST };

struct kbv_pgtable_filter {
	char *schema, *name, *qname;
	kbv_pgtable_out out;
	void *arg;
	struct kbv_buf line;  /* a line not yet complete */
	enum phase phase;
	struct object *pre;   /* the preamble and the pre-data objects, held */
	size_t npre, cap;
	struct object cur;    /* the post-data object being read */
	int in_copy, copy_keep, keep_data, found;
	char **seqs;          /* "schema.name" of the sequences the table owns */
	size_t nseqs;
	struct kbv_buf left;  /* what was left out, one line each */
	char restrict_key[128]; /* of pg_dump's first \restrict line: unrestricted at the end only */
};

int kbv_pg_split_qname(const char *q, char *schema, size_t scap, char *name, size_t ncap)
{
	char *outs[2] = { schema, name };
	size_t caps[2] = { scap, ncap };
	for (int part = 0; part < 2; part++) {
		size_t k = 0;
		if (*q == '"') {
			for (q++;; q++) {
				if (!*q)
					return -1;
				if (*q == '"' && q[1] == '"')
					q++;
				else if (*q == '"') {
					q++;
					break;
				}
				if (k + 1 >= caps[part])
					return -1;
				outs[part][k++] = *q;
			}
		} else {
			while (*q && *q != '.') {
				if (k + 1 >= caps[part])
					return -1;
				outs[part][k++] = *q++;
			}
		}
		outs[part][k] = 0;
		if (part == 0 && *q++ != '.')
			return -1;
	}
	return *q || !*schema || !*name ? -1 : 0;
}

int kbv_pgtable_filter_new(const char *schema, const char *name, const char *qname, kbv_pgtable_out out, void *arg,
			   struct kbv_pgtable_filter **fp)
{
	struct kbv_pgtable_filter *f = calloc(1, sizeof *f);
	if (!f || !(f->schema = strdup(schema)) || !(f->name = strdup(name)) || !(f->qname = strdup(qname))) {
		kbv_pgtable_filter_free(f);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	f->out = out;
	f->arg = arg;
	*fp = f;
	return 0;
}

static void object_release(struct object *o)
{
	free(o->name), free(o->type), free(o->schema);
	kbv_buf_release(&o->text);
	memset(o, 0, sizeof *o);
}

void kbv_pgtable_filter_free(struct kbv_pgtable_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->npre; i++)
		object_release(&f->pre[i]);
	free(f->pre);
	object_release(&f->cur);
	for (size_t i = 0; i < f->nseqs; i++)
		free(f->seqs[i]);
	free(f->seqs);
	kbv_buf_release(&f->line);
	kbv_buf_release(&f->left);
	free(f->schema), free(f->name), free(f->qname);
	free(f);
}

const char *kbv_pgtable_filter_left_out(const struct kbv_pgtable_filter *f)
{
	return f->left.len ? (const char *)f->left.data : "";
}

static int note_left(struct kbv_pgtable_filter *f, const char *what, const char *name)
{
	int rc = 0;
	if (f->left.len)
		f->left.len--; /* the NUL */
	TRY(kbv_buf_add(&f->left, what, strlen(what)));
	TRY(kbv_buf_add(&f->left, " ", 1));
	TRY(kbv_buf_add(&f->left, name, strlen(name)));
	TRY(kbv_buf_add(&f->left, "\n", 2)); /* and a NUL */
out:
	return rc;
}

/* ---- the header: "-- Name: X; Type: Y; Schema: Z; Owner: W" ---- */

static char *field(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	if (!p)
		return NULL;
	p += strlen(key);
	size_t n = strcspn(p, ";\n");
	char *v = malloc(n + 1);
	if (v) {
		memcpy(v, p, n);
		v[n] = 0;
	}
	return v;
}

static int is_header(const char *line)
{
	return !strncmp(line, "-- Name: ", 9) || !strncmp(line, "-- Data for Name: ", 18);
}

/* ---- what the table needs ---- */

/* Does text hold word (an identifier or qualified name) not followed by more of a name? */
static int mentions(const char *text, size_t len, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), word, wl)); p++) {
		char after = (size_t)(p - text) + wl < len ? p[wl] : 0;
		char before = p > text ? p[-1] : ' ';
		if ((after == 0 || !(after == '_' || after == '"' || after == '.' || (after >= 'a' && after <= 'z') ||
				     (after >= '0' && after <= '9'))) &&
		    !(before == '_' || before == '.' || (before >= 'a' && before <= 'z') || (before >= '0' && before <= '9')))
			return 1;
	}
	return 0;
}

static int has_seq(const struct kbv_pgtable_filter *f, const char *schema, const char *name)
{
	for (size_t i = 0; i < f->nseqs; i++) {
		size_t sl = strlen(schema);
		if (!strncmp(f->seqs[i], schema, sl) && f->seqs[i][sl] == '.' && !strcmp(f->seqs[i] + sl + 1, name))
			return 1;
	}
	return 0;
}

static int add_seq(struct kbv_pgtable_filter *f, const char *schema, const char *name)
{
	if (has_seq(f, schema, name))
		return 0;
	char **v = realloc(f->seqs, (f->nseqs + 1) * sizeof *v);
	if (!v)
		return kbv_error(KBV_ENOMEM, "out of memory");
	f->seqs = v;
	size_t n = strlen(schema) + strlen(name) + 2;
	if (!(v[f->nseqs] = malloc(n)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	snprintf(v[f->nseqs++], n, "%s.%s", schema, name);
	return 0;
}

/* "<table> <something>": an object pg_dump names after the table (defaults, constraints). */
static int named_after_table(const struct kbv_pgtable_filter *f, const struct object *o)
{
	size_t n = strlen(f->name);
	return o->schema && !strcmp(o->schema, f->schema) && !strncmp(o->name, f->name, n) && o->name[n] == ' ';
}

static int same_schema(const struct kbv_pgtable_filter *f, const struct object *o)
{
	return o->schema && !strcmp(o->schema, f->schema);
}

/* A string as an SQL literal ('it''s') into b. */
static int literal(struct kbv_buf *b, const char *s)
{
	int rc = 0;
	TRY(kbv_buf_add(b, "'", 1));
	for (; *s; s++)
		TRY(*s == '\'' ? kbv_buf_add(b, "''", 2) : kbv_buf_add(b, s, 1));
	TRY(kbv_buf_add(b, "'", 1));
out:
	return rc;
}

/* Write an object out, less its ownership statements. Into a database that exists, the
 * schema and the types may be there already: CREATE SCHEMA IF NOT EXISTS, and a type or
 * domain is created only when to_regtype() does not find it. */
static int emit(struct kbv_pgtable_filter *f, const struct object *o)
{
	const char *p = (const char *)o->text.data, *end = p + o->text.len;
	struct kbv_buf sql = KBV_BUF_INIT;
	int rc = 0, type = o->type && (!strcmp(o->type, "TYPE") || !strcmp(o->type, "DOMAIN"));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		if (n > 6 && !strncmp(p, "ALTER ", 6) && memmem(p, n, " OWNER TO ", 10))
			; /* the restoring role owns what it creates */
		else if (n > 14 && !strncmp(p, "CREATE SCHEMA ", 14)) {
			TRY(f->out(f->arg, "CREATE SCHEMA IF NOT EXISTS ", 28));
			TRY(f->out(f->arg, p + 14, n - 14));
		} else if (type && !(n >= 2 && !strncmp(p, "--", 2)) && !(sql.len == 0 && n == 1))
			TRY(kbv_buf_add(&sql, p, n));
		else
			TRY(f->out(f->arg, p, n));
		p += n;
	}
	while (sql.len && (sql.data[sql.len - 1] == '\n' || sql.data[sql.len - 1] == ' '))
		sql.len--;
	if (type && sql.len) {
		struct kbv_buf w = KBV_BUF_INIT;
		TRY(kbv_buf_add(&w, "DO $kbvault_type$ BEGIN IF to_regtype(format('%I.%I', ", 54));
		if ((rc = literal(&w, o->schema ? o->schema : "public")) == 0 && (rc = kbv_buf_add(&w, ", ", 2)) == 0 &&
		    (rc = literal(&w, o->name)) == 0 &&
		    (rc = kbv_buf_add(&w, ")) IS NULL THEN EXECUTE $kbvault_def$", 37)) == 0 &&
		    (rc = kbv_buf_add(&w, sql.data, sql.len)) == 0 &&
		    (rc = kbv_buf_add(&w, "$kbvault_def$; END IF; END $kbvault_type$;\n\n", 44)) == 0)
			rc = f->out(f->arg, (const char *)w.data, w.len);
		kbv_buf_release(&w);
	}
out:
	kbv_buf_release(&sql);
	return rc;
}

/* The pre-data objects are all known: choose and write. */
static int flush_pre(struct kbv_pgtable_filter *f)
{
	char own[1024], identity[1024], identity_only[1024];
	const struct object *table = NULL;
	int rc = 0;
	snprintf(own, sizeof own, "OWNED BY %s.", f->qname);
	snprintf(identity, sizeof identity, "ALTER TABLE %s ALTER COLUMN", f->qname);
	snprintf(identity_only, sizeof identity_only, "ALTER TABLE ONLY %s ALTER COLUMN", f->qname);
	for (size_t i = 0; i < f->npre; i++) {
		struct object *o = &f->pre[i];
		if (o->type && !strcmp(o->type, "TABLE") && same_schema(f, o) && !strcmp(o->name, f->name))
			table = o;
		/* the sequences the table owns: serial (OWNED BY) and identity columns */
		if (o->type && (!strcmp(o->type, "SEQUENCE OWNED BY") || !strcmp(o->type, "SEQUENCE")) &&
		    (memmem(o->text.data, o->text.len, own, strlen(own)) ||
		     memmem(o->text.data, o->text.len, identity, strlen(identity)) ||
		     memmem(o->text.data, o->text.len, identity_only, strlen(identity_only))))
			TRY(add_seq(f, o->schema ? o->schema : "", o->name));
	}
	f->found = table != NULL;
	for (size_t i = 0; i < f->npre; i++) {
		struct object *o = &f->pre[i];
		int keep = 0;
		if (!o->type)
			keep = 1; /* the preamble: SET statements */
		else if (o == table)
			keep = 1;
		else if (!strcmp(o->type, "SCHEMA"))
			keep = strcmp(f->schema, "public") && !strcmp(o->name, f->schema);
		else if (!strcmp(o->type, "TYPE") || !strcmp(o->type, "DOMAIN")) {
			char q[512];
			snprintf(q, sizeof q, "%s.%s", o->schema ? o->schema : "", o->name);
			keep = table && mentions((const char *)table->text.data, table->text.len, q);
		} else if (!strcmp(o->type, "SEQUENCE") || !strcmp(o->type, "SEQUENCE OWNED BY"))
			keep = has_seq(f, o->schema ? o->schema : "", o->name);
		else if (!strcmp(o->type, "DEFAULT"))
			keep = named_after_table(f, o);
		else if (!strcmp(o->type, "COMMENT")) {
			size_t n = strlen(f->name);
			keep = same_schema(f, o) &&
			       ((!strncmp(o->name, "TABLE ", 6) && !strcmp(o->name + 6, f->name)) ||
				(!strncmp(o->name, "COLUMN ", 7) && !strncmp(o->name + 7, f->name, n) && o->name[7 + n] == '.'));
		} else if (!strcmp(o->type, "ACL") && same_schema(f, o) && !strncmp(o->name, "TABLE ", 6) &&
			   !strcmp(o->name + 6, f->name))
			TRY(note_left(f, "grants on", f->qname));
		if (keep)
			TRY(emit(f, o));
	}
	for (size_t i = 0; i < f->npre; i++)
		object_release(&f->pre[i]);
	f->npre = 0;
out:
	return rc;
}

/* A post-data object is complete: keep it or not. */
static int flush_post(struct kbv_pgtable_filter *f)
{
	struct object *o = &f->cur;
	char on[1024], on_only[1024], refs[1024];
	int rc = 0, keep = 0;
	if (!o->type && !o->text.len)
		return 0;
	snprintf(on, sizeof on, " ON %s ", f->qname);
	snprintf(on_only, sizeof on_only, " ON ONLY %s ", f->qname);
	snprintf(refs, sizeof refs, "REFERENCES %s(", f->qname);
	if (!o->type) {
		keep = 0; /* the second preamble: the first one's settings hold */
	} else if (!strcmp(o->type, "CONSTRAINT")) {
		keep = named_after_table(f, o);
	} else if (!strcmp(o->type, "FK CONSTRAINT")) {
		if (named_after_table(f, o)) {
			keep = memmem(o->text.data, o->text.len, refs, strlen(refs)) != NULL;
			if (!keep)
				TRY(note_left(f, "foreign key (references another table):", o->name + strlen(f->name) + 1));
		}
	} else if (!strcmp(o->type, "INDEX")) {
		keep = same_schema(f, o) && (memmem(o->text.data, o->text.len, on, strlen(on)) ||
					     memmem(o->text.data, o->text.len, on_only, strlen(on_only)));
	} else if (!strcmp(o->type, "TRIGGER") || !strcmp(o->type, "RULE") || !strcmp(o->type, "POLICY")) {
		if (named_after_table(f, o)) {
			char what[64];
			snprintf(what, sizeof what, "%s (it may name functions or roles):", o->type);
			for (char *c = what; *c && *c != ' '; c++)
				*c = (char)(*c - 'A' + 'a');
			TRY(note_left(f, what, o->name + strlen(f->name) + 1));
		}
	}
	if (keep)
		TRY(emit(f, o));
out:
	object_release(o);
	return rc;
}

/* A "SELECT pg_catalog.setval('schema.seq', ...)" line: kept for the table's sequences. */
static int setval_line(struct kbv_pgtable_filter *f, const char *line, size_t n)
{
	const char *q = strchr(line, '\'');
	if (!q)
		return 0;
	const char *e = strchr(q + 1, '\'');
	char lit[512], schema[256], name[256];
	if (!e || (size_t)(e - q - 1) >= sizeof lit)
		return 0;
	memcpy(lit, q + 1, (size_t)(e - q - 1));
	lit[e - q - 1] = 0;
	if (kbv_pg_split_qname(lit, schema, sizeof schema, name, sizeof name) == 0 && has_seq(f, schema, name))
		return f->out(f->arg, line, n);
	return 0;
}

/* The "--" line before a header was taken by the object before it: give it back. */
static void strip_dashes(struct kbv_buf *b)
{
	if (b->len >= 3 && !memcmp(b->data + b->len - 3, "--\n", 3) && (b->len == 3 || b->data[b->len - 4] == '\n'))
		b->len -= 3;
}

/* Start a new object at header line `line`, with the "--" line that came before it. */
static int begin_object(struct object *o, const char *line)
{
	int rc = 0;
	int data = !strncmp(line, "-- Data for Name: ", 18);
	o->name = field(line, data ? "-- Data for Name: " : "-- Name: ");
	o->type = field(line, "; Type: ");
	o->schema = field(line, "; Schema: ");
	if (!o->name || !o->type)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (o->schema && !strcmp(o->schema, "-")) {
		free(o->schema);
		o->schema = NULL;
	}
	TRY(kbv_buf_add(&o->text, "--\n", 3));
out:
	return rc;
}

static int line_in(struct kbv_pgtable_filter *f, const char *line, size_t n)
{
	int rc = 0;
	if (f->in_copy) {
		if (f->copy_keep)
			TRY(f->out(f->arg, line, n));
		if (n >= 2 && line[0] == '\\' && line[1] == '.' && (n == 2 || line[2] == '\n'))
			f->in_copy = 0;
		goto out;
	}
	/* pg_dump fences each section with \restrict KEY ... \unrestrict KEY (psql then runs
	 * no other meta-command): the first fence opens, the one at the end closes */
	if (!strncmp(line, "\\unrestrict ", 12))
		goto out;
	if (!strncmp(line, "\\restrict ", 10)) {
		if (*f->restrict_key)
			goto out;
		size_t kl = strcspn(line + 10, "\n");
		if (kl >= sizeof f->restrict_key)
			return kbv_error(KBV_ECORRUPT, "the SQL stream has a \\restrict line too long");
		memcpy(f->restrict_key, line + 10, kl);
		f->restrict_key[kl] = 0;
	}
	if (!strncmp(line, "SELECT pg_catalog.setval(", 25)) {
		if (f->phase == PRE) {
			TRY(flush_pre(f));
			f->phase = DATA;
		}
		rc = setval_line(f, line, n);
		goto out;
	}
	if (is_header(line)) {
		int data = !strncmp(line, "-- Data for Name: ", 18);
		if (f->phase == PRE && !data) {
			if (f->npre == f->cap) {
				size_t cap = f->cap ? 2 * f->cap : 64;
				struct object *v = realloc(f->pre, cap * sizeof *v);
				if (!v)
					return kbv_error(KBV_ENOMEM, "out of memory");
				f->pre = v;
				f->cap = cap;
			}
			if (f->npre)
				strip_dashes(&f->pre[f->npre - 1].text);
			memset(&f->pre[f->npre], 0, sizeof f->pre[0]);
			TRY(begin_object(&f->pre[f->npre++], line));
			TRY(kbv_buf_add(&f->pre[f->npre - 1].text, line, n));
			goto out;
		}
		if (f->phase == PRE) {
			if (f->npre)
				strip_dashes(&f->pre[f->npre - 1].text);
			TRY(flush_pre(f));
		} else if (f->phase == POST) {
			strip_dashes(&f->cur.text);
			TRY(flush_post(f));
		}
		f->keep_data = 0;
		if (data) {
			/* table data (pg_dump mode may put sequence values between: one at a time) */
			char *name = field(line, "-- Data for Name: "), *schema = field(line, "; Schema: ");
			f->keep_data = name && schema && !strcmp(name, f->name) && !strcmp(schema, f->schema);
			free(name), free(schema);
			f->phase = DATA;
			if (f->keep_data)
				TRY(f->out(f->arg, "--\n", 3));
		} else {
			f->phase = POST;
			TRY(begin_object(&f->cur, line));
		}
	}
	if (f->phase == PRE) {
		if (!f->npre) { /* the preamble */
			f->pre = calloc(64, sizeof *f->pre);
			if (!f->pre)
				return kbv_error(KBV_ENOMEM, "out of memory");
			f->cap = 64;
			f->npre = 1;
		}
		TRY(kbv_buf_add(&f->pre[f->npre - 1].text, line, n));
	} else if (f->phase == POST) {
		TRY(kbv_buf_add(&f->cur.text, line, n));
	} else if (f->keep_data) {
		TRY(f->out(f->arg, line, n));
	}
	size_t m = n - (n && line[n - 1] == '\n');
	if (!strncmp(line, "COPY ", 5) && m > 12 && !memcmp(line + m - 12, " FROM stdin;", 12)) {
		f->in_copy = 1;
		f->copy_keep = f->phase == DATA && f->keep_data;
	}
out:
	return rc;
}

int kbv_pgtable_filter_feed(struct kbv_pgtable_filter *f, const void *data, size_t len)
{
	const char *p = data, *end = p + len;
	int rc = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		TRY(kbv_buf_add(&f->line, p, n));
		p += n;
		if (!nl)
			break;
		TRY(kbv_buf_add(&f->line, "", 1)); /* a NUL for the string functions; not counted */
		f->line.len--;
		rc = line_in(f, (const char *)f->line.data, f->line.len);
		f->line.len = 0;
		TRY(rc);
	}
out:
	return rc;
}

int kbv_pgtable_filter_end(struct kbv_pgtable_filter *f)
{
	int rc = 0;
	if (f->line.len) {
		TRY(kbv_buf_add(&f->line, "\n", 2));
		f->line.len--;
		TRY(line_in(f, (const char *)f->line.data, f->line.len));
		f->line.len = 0;
	}
	if (f->in_copy)
		return kbv_error(KBV_ECORRUPT, "the SQL stream ends inside a COPY block");
	if (f->phase == PRE)
		TRY(flush_pre(f));
	else if (f->phase == POST)
		TRY(flush_post(f));
	if (!f->found)
		return kbv_error(KBV_ENOTFOUND, "the snapshot's schema section has no table %s", f->qname);
	if (*f->restrict_key) {
		TRY(f->out(f->arg, "\\unrestrict ", 12));
		TRY(f->out(f->arg, f->restrict_key, strlen(f->restrict_key)));
		TRY(f->out(f->arg, "\n", 1));
	}
out:
	return rc;
}
