/* mksnap: write a hand-made snapshot through the library, for tests of what a restore does
 * with manifests the CLI would never produce (a file below a symlink, say).
 *   mksnap REPO ENTRY...   with ENTRY = file:NAME=CONTENT | link:NAME=TARGET | dir:NAME
 * The password comes from KBVAULT_PASSWORD (unset for an unencrypted repository). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbv/error.h"
#include "kbv/snapshot.h"

int main(int argc, char **argv)
{
	struct kbv_repo *r;
	struct kbv_writer *w;
	const char *pw = getenv("KBVAULT_PASSWORD");
	if (argc < 3 || sodium_init() < 0)
		return 2;
	if (kbv_repo_open(argv[1], KBV_LOCK_SHARED, &r) < 0 || kbv_repo_unlock(r, pw, pw ? strlen(pw) : 0) < 0 ||
	    kbv_writer_new(r, 1, &w) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		return 1;
	}
	size_t n = (size_t)argc - 2;
	struct kbv_entry *e = calloc(n, sizeof *e);
	for (size_t i = 0; i < n; i++) {
		char *spec = argv[i + 2], *colon = strchr(spec, ':'), *eq = strchr(spec, '=');
		if (!colon)
			return 2;
		*colon = 0;
		if (eq)
			*eq = 0;
		e[i].name = colon + 1;
		e[i].ref.depth = KBV_REF_EMPTY;
		if (!strcmp(spec, "file")) {
			struct kbv_stream_result res;
			if (!eq || kbv_writer_mem(w, eq + 1, strlen(eq + 1), &res) < 0)
				return 1;
			e[i].kind = KBV_ENTRY_FILE;
			e[i].mode = 0100644;
			e[i].size = res.size;
			memcpy(e[i].hash, res.hash, 32);
			e[i].ref = res.ref;
		} else if (!strcmp(spec, "link")) {
			e[i].kind = KBV_ENTRY_SYMLINK;
			e[i].mode = 0120777;
			e[i].target = eq + 1;
			e[i].size = strlen(eq + 1);
		} else {
			e[i].kind = KBV_ENTRY_DIR;
			e[i].mode = 040755;
		}
	}
	struct kbv_snapshot s = { .time = 1, .host = "mksnap" };
	if (kbv_snapshot_commit(r, w, &s, e, n) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		return 1;
	}
	kbv_writer_free(w);
	kbv_repo_close(r);
	free(e);
	return 0;
}
