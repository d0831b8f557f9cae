/* gendump: a deterministic, synthetic `pg_dump -Fp` of a knowledge-base database as it
 * evolves day by day. Used by the tests, the demo and the benchmarks.
 *
 *   gendump [--seed S] [--day D] [--mb M] [--pk-order] [--pgbench-permille N]
 *
 * Day 0 holds about M MiB (default 64). Each later day: ~2% of documents get one paragraph
 * edited (their chunk embeddings recomputed), ~0.3% are deleted, new documents are
 * inserted (0.5%), N per mille of pgbench accounts change balance (default 5, i.e. 0.5%).
 * The defaults are calibrated to the statistics of a real ten-day series of a knowledge-base
 * database's pg_dump output: about 9,000 scattered change sites per 700 MB of dump and about
 * 2.4% new bytes per day. Measured here: ~1,150 diff hunks and ~2.1% new bytes per 57 MB
 * (~14,000 change sites per 700 MB: still somewhat harsher than the real series).
 * --pgbench-permille 50 gives a much harsher series (~9x the change sites), kept as a
 * stress profile. Rows are written in a model of
 * PostgreSQL's physical order: rows never updated stay in place, updated and inserted rows
 * move to the end (as a new tuple version would), which scatters each day's changes over
 * the dump like real pg_dump output. --pk-order writes rows in primary-key order instead.
 * Synthetic: prose comes from a fixed vocabulary, embeddings from a PRNG. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbv/buf.h"

static uint64_t seed = 1;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t h4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	return mix(mix(mix(mix(seed ^ a) ^ b) ^ c) ^ d);
}

struct rng {
	uint64_t s;
};
static uint64_t next(struct rng *r) { return r->s = mix(r->s); }

static const char *const words[] = {
	"the", "data", "graph", "vector", "index", "query", "model", "system", "document", "entity", "relation",
	"knowledge", "search", "result", "user", "team", "service", "backup", "storage", "network", "policy",
	"review", "change", "version", "table", "schema", "record", "value", "field", "process", "report",
	"analysis", "context", "embedding", "similarity", "cluster", "node", "edge", "path", "source", "target",
	"update", "release", "customer", "product", "support", "ticket", "answer", "question", "summary", "detail",
	"and", "of", "to", "in", "is", "for", "with", "on", "that", "by", "from", "as", "an", "be", "this", "are",
	"which", "or", "at", "it", "we", "not", "can", "will", "has", "have", "was", "more", "all", "each", "new",
	"retrieval", "pipeline", "latency", "throughput", "replica", "primary", "migration", "transaction",
	"consistency", "snapshot", "restore", "archive", "metadata", "semantic", "ranking", "feedback",
	"incident", "deployment", "configuration", "monitoring", "alert", "dashboard", "metric", "budget",
};
#define NWORDS (sizeof words / sizeof *words)

/* Text with no tabs, newlines or backslashes (COPY escapes stay trivial), except a few on
 * purpose: "\\t" escapes appear as in real dumps of text containing tabs. */
static void prose(struct rng *r, size_t len)
{
	size_t n = 0;
	int cap = 1;
	while (n < len) {
		const char *w = words[next(r) % NWORDS];
		if (cap) {
			putchar(w[0] - 32 * (w[0] >= 'a' && w[0] <= 'z'));
			fputs(w + 1, stdout);
		} else {
			fputs(w, stdout);
		}
		n += strlen(w);
		uint64_t p = next(r) % 100;
		if (p < 6) {
			fputs(". ", stdout);
			cap = 1;
		} else if (p < 9) {
			fputs(", ", stdout);
			cap = 0;
		} else if (p == 9) {
			fputs(".\\n\\n", stdout);
			cap = 1;
		} else {
			putchar(' ');
			cap = 0;
		}
		n += 2;
	}
}

struct row {
	uint32_t id;
	uint16_t last; /* day of the last write (insert or update); 0: never */
	uint8_t dead;
};

static int cmp_phys(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->last != y->last)
		return x->last < y->last ? -1 : 1;
	/* Within a day, updates land in heap order of the free space map: pseudo-random. */
	uint64_t hx = x->last ? h4(x->id, x->last, 7, 0) : x->id, hy = y->last ? h4(y->id, y->last, 7, 0) : y->id;
	return hx < hy ? -1 : hx > hy;
}

static int pk_order;
static unsigned pgbench_permille = 5;

static void order(struct row *v, size_t n)
{
	if (!pk_order)
		qsort(v, n, sizeof *v, cmp_phys);
}

#define EDIT_PERMILLE 20
#define DELETE_PERMILLE 3
#define INSERT_PERMILLE 5

int main(int argc, char **argv)
{
	long day = 0, permille = 0;
	double mb = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--day") && i + 1 < argc && kbv_parse_long(argv[++i], 0, 100000, &day) == 0)
			;
		else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = atof(argv[++i]);
		else if (!strcmp(argv[i], "--pk-order"))
			pk_order = 1;
		else if (!strcmp(argv[i], "--pgbench-permille") && i + 1 < argc &&
			 kbv_parse_long(argv[++i], 0, 1000, &permille) == 0)
			pgbench_permille = (unsigned)permille;
		else {
			fprintf(stderr, "usage: gendump [--seed S] [--day D] [--mb M] [--pk-order] [--pgbench-permille N]\n");
			return 2;
		}
	}
	static char obuf[1 << 20];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	/* Documents average ~3.1 KB of body plus ~2.2 KB of chunk rows, accounts ~100 B. */
	uint32_t ndocs0 = (uint32_t)(mb * 1048576 * 0.80 / 5400) + 1;
	uint32_t naccounts = (uint32_t)(mb * 1048576 * 0.20 / 100) + 1;
	uint32_t ndocs = ndocs0 + (uint32_t)((uint64_t)ndocs0 * INSERT_PERMILLE * (unsigned)day / 1000);

	struct row *docs = calloc(ndocs, sizeof *docs);
	uint8_t *pver = calloc((size_t)ndocs * 8, 1);
	if (!docs || !pver)
		return 1;
	for (uint32_t i = 0; i < ndocs; i++) {
		uint32_t id = i + 1;
		docs[i].id = id;
		int born = id <= ndocs0 ? 0 : (int)(((uint64_t)(id - ndocs0 - 1) * 1000) / ((uint64_t)ndocs0 * INSERT_PERMILLE)) + 1;
		docs[i].last = (uint16_t)born;
		int np = 3 + (int)(h4(id, 0, 1, 0) % 5);
		for (int d = born + 1; d <= day; d++) {
			if (h4(id, (uint64_t)d, 2, 0) % 1000 < DELETE_PERMILLE) {
				docs[i].dead = 1;
				break;
			}
			if (h4(id, (uint64_t)d, 3, 0) % 1000 < EDIT_PERMILLE) {
				pver[(size_t)i * 8 + h4(id, (uint64_t)d, 4, 0) % (uint64_t)np]++;
				docs[i].last = (uint16_t)d;
			}
		}
	}

	printf("--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n"
	       "-- Dumped by pg_dump version 15.18\n\nSET statement_timeout = 0;\nSET lock_timeout = 0;\n"
	       "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
	       "SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n\n"
	       "CREATE TABLE public.documents (\n    id bigint NOT NULL,\n    title text NOT NULL,\n"
	       "    body text NOT NULL,\n    updated_at timestamp with time zone NOT NULL\n);\n\n"
	       "CREATE TABLE public.chunks (\n    id bigint NOT NULL,\n    document_id bigint NOT NULL,\n"
	       "    ord integer NOT NULL,\n    embedding real[] NOT NULL\n);\n\n"
	       "CREATE TABLE public.pgbench_accounts (\n    aid integer NOT NULL,\n    bid integer,\n"
	       "    abalance integer,\n    filler character(84)\n)\nWITH (fillfactor='100');\n\n");

	/* documents */
	struct row *v = malloc((size_t)ndocs * sizeof *v);
	size_t n = 0;
	for (uint32_t i = 0; i < ndocs; i++)
		if (!docs[i].dead)
			v[n++] = docs[i];
	order(v, n);
	printf("--\n-- Data for Name: documents; Type: TABLE DATA; Schema: public; Owner: kb\n--\n\n"
	       "COPY public.documents (id, title, body, updated_at) FROM stdin;\n");
	for (size_t k = 0; k < n; k++) {
		uint32_t id = v[k].id, i = id - 1;
		struct rng r = { h4(id, 0, 5, 0) };
		printf("%u\t", id);
		prose(&r, 20 + next(&r) % 40);
		putchar('\t');
		int np = 3 + (int)(h4(id, 0, 1, 0) % 5);
		for (int p = 0; p < np; p++) {
			struct rng pr = { h4(id, (uint64_t)p, 6, pver[(size_t)i * 8 + p]) };
			if (p)
				fputs("\\n\\n", stdout);
			prose(&pr, 300 + next(&pr) % 700);
		}
		printf("\t2026-%02d-%02d 09:%02u:%02u+00\n", 1 + v[k].last / 28 % 12, 1 + v[k].last % 28,
		       (unsigned)(id % 60), (unsigned)(id * 7 % 60));
	}
	printf("\\.\n\n\n");

	/* chunks: 3 per document, embedding recomputed whenever the document changes */
	printf("--\n-- Data for Name: chunks; Type: TABLE DATA; Schema: public; Owner: kb\n--\n\n"
	       "COPY public.chunks (id, document_id, ord, embedding) FROM stdin;\n");
	for (size_t k = 0; k < n; k++) {
		uint32_t id = v[k].id;
		for (int c = 0; c < 3; c++) {
			struct rng r = { h4(id, (uint64_t)c, 8, v[k].last) };
			printf("%llu\t%u\t%d\t{", (unsigned long long)id * 3 + (unsigned)c, id, c);
			for (int d = 0; d < 48; d++)
				printf("%s%.6f", d ? "," : "", ((double)(next(&r) % 2000001) - 1000000.0) / 1000000.0);
			fputs("}\n", stdout);
		}
	}
	printf("\\.\n\n\n");
	free(v);

	/* pgbench_accounts */
	struct row *acc = calloc(naccounts, sizeof *acc);
	int32_t *bal = calloc(naccounts, sizeof *bal);
	for (uint32_t i = 0; i < naccounts; i++) {
		acc[i].id = i + 1;
		for (int d = 1; d <= day; d++)
			if (h4(i + 1, (uint64_t)d, 9, 0) % 1000 < pgbench_permille) {
				bal[i] += (int32_t)(h4(i + 1, (uint64_t)d, 10, 0) % 10001) - 5000;
				acc[i].last = (uint16_t)d;
			}
	}
	struct row *av = malloc((size_t)naccounts * sizeof *av);
	memcpy(av, acc, (size_t)naccounts * sizeof *av);
	order(av, naccounts);
	printf("--\n-- Data for Name: pgbench_accounts; Type: TABLE DATA; Schema: public; Owner: kb\n--\n\n"
	       "COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n");
	for (uint32_t k = 0; k < naccounts; k++)
		printf("%u\t%u\t%d\t%84s\n", av[k].id, 1 + (av[k].id - 1) / 100000, bal[av[k].id - 1], "");
	printf("\\.\n\n\n");

	printf("ALTER TABLE ONLY public.documents\n    ADD CONSTRAINT documents_pkey PRIMARY KEY (id);\n\n"
	       "ALTER TABLE ONLY public.chunks\n    ADD CONSTRAINT chunks_pkey PRIMARY KEY (id);\n\n"
	       "ALTER TABLE ONLY public.pgbench_accounts\n    ADD CONSTRAINT pgbench_accounts_pkey PRIMARY KEY (aid);\n\n"
	       "--\n-- PostgreSQL database dump complete\n--\n\n");
	free(docs);
	free(pver);
	free(acc);
	free(bal);
	free(av);
	return fflush(stdout) ? 1 : 0;
}
