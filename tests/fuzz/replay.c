/* Replays a fuzz corpus without libFuzzer: every file in the directory CORPUS (or the
 * files given) through LLVMFuzzerTestOneInput. A crash or abort fails; otherwise prints a
 * cmocka-style "[  PASSED  ] N test(s)." line for scripts/run-tests.sh. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	uint8_t *copy = malloc(n ? n : 1); /* exact size, so out-of-bounds reads show */
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	return 0;
}

int main(int argc, char **argv)
{
	int count = 0;
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (run_file(argv[i]) == 0)
				count++;
	} else {
		DIR *d = opendir(CORPUS);
		if (!d) {
			perror(CORPUS);
			return 1;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			char p[PATH_MAX];
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof p, "%s/%s", CORPUS, e->d_name);
			if (run_file(p) == 0)
				count++;
		}
		closedir(d);
	}
	if (!count) {
		fprintf(stderr, "no corpus files\n");
		return 1;
	}
	printf("[  PASSED  ] %d test(s).\n", count);
	return 0;
}
