/* kbvault bench chunking FILE...: on the user's own dumps, what each average chunk size
 * would give (dedup, stored bytes, index size, chunks), without writing a repository. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/repo.h"
#include "kbv/study.h"

/* "4K,8K,1M" into v[0..*n). */
static int parse_sizes(const char *arg, size_t *v, size_t cap, size_t *n)
{
	char *copy = strdup(arg), *save = NULL;
	int rc = copy ? 0 : -1;
	*n = 0;
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && rc == 0; t = strtok_r(NULL, ",", &save)) {
		uint64_t x;
		if (*n == cap || cli_parse_size(t, &x) < 0 || x > SIZE_MAX)
			rc = -1;
		else
			v[(*n)++] = (size_t)x;
	}
	free(copy);
	return rc == 0 && *n ? 0 : -1;
}

static void size_text(size_t avg, char *out, size_t cap)
{
	if (avg >= (1u << 20) && avg % (1u << 20) == 0)
		snprintf(out, cap, "%zu MiB", avg >> 20);
	else
		snprintf(out, cap, "%zu KiB", avg >> 10);
}

static int chunking(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sizes", required_argument, NULL, 1701 },
		{ "zstd-level", required_argument, NULL, 1702 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	size_t avgs[16] = { 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20 };
	size_t navg = 8;
	int level = KBV_DEFAULT_ZSTD_LEVEL, c;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "bench"))
			continue;
		if (c == 1701) {
			if (parse_sizes(optarg, avgs, 16, &navg) < 0)
				return cli_usage("bench", "--sizes takes a list such as 4K,8K,64K,1M (at most 16), not '%s'", optarg);
		} else if (c == 1702) {
			long l;
			if (kbv_parse_long(optarg, 0, 19, &l) < 0)
				return cli_usage("bench", "--zstd-level takes 0 (no compression) to 19, not '%s'", optarg);
			level = (int)l;
		} else {
			return cli_bad_option("bench", argv);
		}
	}
	if (optind >= argc)
		return cli_usage("bench", "name the dump files to study, oldest first");
	const char *const *files = (const char *const *)&argv[optind];
	size_t nfiles = (size_t)(argc - optind);
	struct kbv_study st[16];
	int rc = kbv_study_chunking(files, nfiles, avgs, navg, level, st);
	if (rc < 0) {
		kbv_study_free(st, navg);
		return cli_fail(rc);
	}
	if (cli.json) {
		json_t *a = json_array();
		for (size_t i = 0; i < navg; i++) {
			json_t *nb = json_array(), *ns = json_array();
			for (size_t f = 0; f < nfiles; f++) {
				json_array_append_new(nb, json_integer((json_int_t)st[i].file_new_bytes[f]));
				json_array_append_new(ns, json_integer((json_int_t)st[i].file_new_stored[f]));
			}
			json_array_append_new(
				a, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o, s:o}", "chunk_avg",
					     (json_int_t)st[i].avg, "raw_bytes", (json_int_t)st[i].raw_bytes, "chunks",
					     (json_int_t)st[i].chunks, "unique_chunks", (json_int_t)st[i].unique_chunks,
					     "unique_bytes", (json_int_t)st[i].unique_bytes, "stored_bytes_estimate",
					     (json_int_t)st[i].stored_bytes, "index_bytes_estimate",
					     (json_int_t)st[i].index_bytes, "dedup_ratio",
					     st[i].unique_bytes ? (double)st[i].raw_bytes / (double)st[i].unique_bytes : 0.0,
					     "seconds", st[i].seconds, "file_new_bytes", nb, "file_new_stored_estimate", ns));
		}
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
		kbv_study_free(st, navg);
		return EXIT_OK;
	}
	char raw[32];
	cli_bytes(st[0].raw_bytes, raw, sizeof raw);
	printf("%zu file%s, %s; zstd level %d; nothing written. Estimates: stored = new chunks in bundles as\n"
	       "the writer seals them; index = %d bytes per distinct chunk (measured).\n\n",
	       nfiles, nfiles == 1 ? "" : "s", raw, level, KBV_STUDY_INDEX_BYTES);
	printf("%9s %11s %11s %8s %12s %11s %12s %8s\n", "avg chunk", "chunks", "distinct", "dedup", "stored",
	       "index", "repository", "MB/s");
	for (size_t i = 0; i < navg; i++) {
		char a[32], s[32], x[32], t[32];
		size_text(st[i].avg, a, sizeof a);
		cli_bytes(st[i].stored_bytes, s, sizeof s);
		cli_bytes(st[i].index_bytes, x, sizeof x);
		cli_bytes(st[i].stored_bytes + st[i].index_bytes, t, sizeof t);
		printf("%9s %11llu %11llu %7.2fx %12s %11s %12s %8.0f\n", a, (unsigned long long)st[i].chunks,
		       (unsigned long long)st[i].unique_chunks,
		       st[i].unique_bytes ? (double)st[i].raw_bytes / (double)st[i].unique_bytes : 0.0, s, x, t,
		       st[i].seconds > 0 ? (double)st[i].raw_bytes / st[i].seconds / 1e6 : 0.0);
	}
	if (nfiles > 1) {
		printf("\nstored per file (what each would add, in order):\n%-28s", "file");
		for (size_t i = 0; i < navg; i++) {
			char a[32];
			size_text(st[i].avg, a, sizeof a);
			printf(" %10s", a);
		}
		putchar('\n');
		for (size_t f = 0; f < nfiles; f++) {
			const char *base = strrchr(files[f], '/');
			printf("%-28.28s", base ? base + 1 : files[f]);
			for (size_t i = 0; i < navg; i++) {
				char s[32];
				cli_bytes(st[i].file_new_stored[f], s, sizeof s);
				printf(" %10s", s);
			}
			putchar('\n');
		}
	}
	kbv_study_free(st, navg);
	return EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "chunking") != 0) {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			cli_help("bench");
			return EXIT_OK;
		}
		if (argc >= 2 && argv[1][0] == '-')
			return cli_usage("bench", "'%s' is not an option of bench, or its value is missing; the benchmark "
						  "comes first: 'kbvault bench chunking [options] FILE...'", argv[1]);
		return cli_usage("bench", "the benchmark to run: 'kbvault bench chunking FILE...'");
	}
	return chunking(argc - 1, argv + 1);
}
