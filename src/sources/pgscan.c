/* The COPY-block scanner: follows a plain SQL dump as it streams past and adds up, per
 * table, the rows of its COPY block and the order-independent checksum of format/snapshot.md.
 *
 * A COPY block is recognised only after pg_dump's comment header for table data
 * ("-- Data for Name: ...; Type: TABLE DATA; ..."), so a function body that happens to hold
 * a line starting with "COPY" is not mistaken for data. Inside a block every line is a
 * row until the line "\." (COPY's text format escapes a backslash, so a row can never be
 * exactly that line). */
#include "kbv/pg.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define LINE_MAX_KEEP (256u << 10) /* longest non-data line kept whole (COPY lines, headers) */

struct kbv_pgscan {
	int in_copy;
	int armed; /* saw a TABLE DATA comment header since the last statement */
	/* The current line outside COPY blocks (truncated past LINE_MAX_KEEP). */
	struct kbv_buf line;
	int overflow;
	/* The current row inside a COPY block. */
	XXH3_state_t *xs;
	size_t rowlen;
	char head[2];
	struct kbv_pgtable *t;
	size_t nt, capt;
	char *dump_tool;
};

struct kbv_pgscan *kbv_pgscan_new(void)
{
	struct kbv_pgscan *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->xs = XXH3_createState();
	if (!s->xs) {
		free(s);
		return NULL;
	}
	XXH3_64bits_reset(s->xs);
	return s;
}

void kbv_pgscan_free(struct kbv_pgscan *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nt; i++) {
		free(s->t[i].name);
		free(s->t[i].columns);
	}
	free(s->t);
	kbv_buf_release(&s->line);
	free(s->dump_tool);
	XXH3_freeState(s->xs);
	free(s);
}

const struct kbv_pgtable *kbv_pgscan_tables(const struct kbv_pgscan *s, size_t *n)
{
	*n = s->nt;
	return s->t;
}

const char *kbv_pgscan_dump_tool(const struct kbv_pgscan *s)
{
	return s->dump_tool;
}

void kbv_pg_sum_hex(uint64_t sum, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)sum);
}

static int starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && memcmp(s, prefix, k) == 0;
}

static int ends(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* "COPY <name> [(<columns>)] FROM stdin;" -> a new table. 0 when the line is not one. */
static int begin_table(struct kbv_pgscan *s, const char *l, size_t n)
{
	static const char tail[] = " FROM stdin;";
	if (!starts(l, n, "COPY ") || !ends(l, n, tail))
		return 0;
	const char *p = l + 5, *end = l + n - (sizeof tail - 1);
	/* The name runs to the first space outside double quotes. */
	const char *q = p;
	int quoted = 0;
	while (q < end && (quoted || *q != ' ')) {
		if (*q == '"')
			quoted = !quoted;
		q++;
	}
	if (q == p)
		return 0;
	const char *cols = "", *cend = cols;
	if (q < end) {
		/* " (<columns>)" */
		if (end - q < 3 || q[1] != '(' || end[-1] != ')')
			return 0;
		cols = q + 2;
		cend = end - 1;
	}
	if (s->nt == s->capt) {
		size_t cap = s->capt ? 2 * s->capt : 64;
		struct kbv_pgtable *nt = realloc(s->t, cap * sizeof *nt);
		if (!nt)
			return KBV_ENOMEM;
		s->t = nt;
		s->capt = cap;
	}
	struct kbv_pgtable *t = &s->t[s->nt];
	memset(t, 0, sizeof *t);
	t->name = strndup(p, (size_t)(q - p));
	t->columns = strndup(cols, (size_t)(cend - cols));
	if (!t->name || !t->columns) {
		free(t->name);
		free(t->columns);
		return KBV_ENOMEM;
	}
	s->nt++;
	return 1;
}

static int text_line(struct kbv_pgscan *s)
{
	const char *l = (const char *)s->line.data;
	size_t n = s->line.len;
	if (s->overflow) {
		s->armed = 0;
		return 0;
	}
	if (n == 0)
		return 0;
	if (starts(l, n, "--")) {
		if (starts(l, n, "-- Data for Name: ") && memmem(l, n, "; Type: TABLE DATA;", 19))
			s->armed = 1;
		else if (!s->dump_tool && starts(l, n, "-- Dumped by pg_dump version ")) {
			s->dump_tool = strndup(l + 29, n - 29);
			if (!s->dump_tool)
				return KBV_ENOMEM;
		}
		return 0;
	}
	if (s->armed) {
		s->armed = 0;
		int rc = begin_table(s, l, n);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			s->in_copy = 1;
			s->rowlen = 0;
			XXH3_64bits_reset(s->xs);
		}
	}
	return 0;
}

static int add_text(struct kbv_pgscan *s, const char *p, size_t n)
{
	if (s->overflow || n == 0)
		return 0;
	if (s->line.len + n > LINE_MAX_KEEP) {
		s->overflow = 1;
		return 0;
	}
	return kbv_buf_add(&s->line, p, n);
}

int kbv_pgscan_feed(struct kbv_pgscan *s, const void *data, size_t n)
{
	const char *p = data, *end = p + n;
	int rc;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t seg = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (s->in_copy) {
			for (size_t i = 0; i < seg && s->rowlen + i < 2; i++)
				s->head[s->rowlen + i] = p[i];
			s->rowlen += seg;
			XXH3_64bits_update(s->xs, p, seg);
			if (nl) {
				struct kbv_pgtable *t = &s->t[s->nt - 1];
				if (s->rowlen == 2 && s->head[0] == '\\' && s->head[1] == '.') {
					s->in_copy = 0;
				} else {
					t->rows++;
					t->sum += XXH3_64bits_digest(s->xs);
				}
				XXH3_64bits_reset(s->xs);
				s->rowlen = 0;
			}
		} else {
			if ((rc = add_text(s, p, seg)) < 0)
				return kbv_error(rc, "out of memory");
			if (nl) {
				if ((rc = text_line(s)) < 0)
					return kbv_error(rc, "out of memory");
				s->line.len = 0;
				s->overflow = 0;
			}
		}
		p += seg + (nl ? 1 : 0);
	}
	return 0;
}

int kbv_pgscan_end(struct kbv_pgscan *s)
{
	if (s->in_copy)
		return kbv_error(KBV_ESOURCE, "the dump ended inside the data of table %s (truncated)",
				 s->nt ? s->t[s->nt - 1].name : "?");
	return 0;
}
