/* One table out of a native PostgreSQL snapshot (a plain SQL stream: pg_dump's pre-data
 * section, a COPY block per table, the sequence values, pg_dump's post-data section). A
 * streaming filter keeps what the table needs and drops the rest:
 *   kept:    the preamble (SET statements), the table's schema (CREATE SCHEMA when not
 *            public), the types and domains its definition names, the table, its column
 *            defaults, the sequences it owns (serial or identity) and their values, its
 *            comments, its rows, its indexes, its constraints (a foreign key only when it
 *            references the table itself);
 *   dropped: everything of other tables, ownership (ALTER ... OWNER TO: the restoring role
 *            owns what it creates), grants, triggers, rules and policies (they name
 *            functions and roles the target may not have), foreign keys to other tables.
 * Pure text in, text out: no I/O of its own. */
#ifndef KBV_PGTABLE_H
#define KBV_PGTABLE_H

#include <stddef.h>
#include <stdint.h>

/* Receives the filtered SQL in order; 0 to go on, a negative KBV_E* code to stop. */
typedef int (*kbv_pgtable_out)(void *arg, const char *p, size_t n);

struct kbv_pgtable_filter;

/* A filter for the table whose schema is `schema` and name `name` (as the catalog spells
 * them, unquoted), written in the stream as `qname` (quoted as pg_dump quotes it,
 * "public.documents"). */
int kbv_pgtable_filter_new(const char *schema, const char *name, const char *qname, kbv_pgtable_out out, void *arg,
			   struct kbv_pgtable_filter **f);
/* Feed the next bytes of the stream (any split). */
int kbv_pgtable_filter_feed(struct kbv_pgtable_filter *f, const void *p, size_t n);
/* The stream ended: what is buffered goes out. KBV_ENOTFOUND when the stream held no
 * definition of the table, KBV_ECORRUPT when it ended inside a COPY block. */
int kbv_pgtable_filter_end(struct kbv_pgtable_filter *f);
/* What was left out that a user may miss, one line each ("foreign key documents_author_fkey
 * (references another table)"); valid until the filter is freed. */
const char *kbv_pgtable_filter_left_out(const struct kbv_pgtable_filter *f);
void kbv_pgtable_filter_free(struct kbv_pgtable_filter *f);

/* Split a qualified name as the COPY line writes it ("public.documents",
 * "\"My Schema\".\"T\"") into its unquoted parts. -1 when it does not parse. */
int kbv_pg_split_qname(const char *qname, char *schema, size_t scap, char *name, size_t ncap);

#endif
