/* mksnap: write a hand-made snapshot through the library, for tests of what a restore does
 * with manifests the CLI would never produce (a file below a symlink, say).
 *   mksnap REPO ENTRY...   with ENTRY = file:NAME=CONTENT | link:NAME=TARGET | dir:NAME
 *                               | source:NAME=TYPE=METADATA
 * CONTENT and METADATA starting with '@' name a file to read them from. The password comes
 * from KBVAULT_PASSWORD (unset for an unencrypted repository). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/repo.h"
#include "kbv/fsio.h"
#include "kbv/snapshot.h"

static char *loaded[64];
static size_t nloaded;

/* "@path" -> the file's content (NUL-terminated; freed at exit); else s itself. */
static char *content(char *s)
{
	if (s[0] != '@')
		return s;
	struct kbv_buf b = KBV_BUF_INIT;
	if (kbv_read_file(s + 1, &b) < 0 || kbv_buf_add_u8(&b, 0) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		exit(1);
	}
	if (nloaded == sizeof loaded / sizeof *loaded)
		exit(2);
	return loaded[nloaded++] = (char *)b.data;
}

int main(int argc, char **argv)
{
	struct kbv_repo *r;
	struct kbv_writer *w;
	const char *pw = getenv("KBVAULT_PASSWORD");
	if (argc < 3 || sodium_init() < 0)
		return 2;
	/* a repository on object storage: the credentials from the environment, as the CLI's */
	struct kbv_s3_opts s3 = { getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"),
				  getenv("AWS_DEFAULT_REGION"), NULL, 0 };
	if (kbv_s3_url_ok(argv[1]) && kbv_repo_set_remote(&s3, NULL) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		return 1;
	}
	if (kbv_repo_open(argv[1], KBV_LOCK_SHARED, &r) < 0 || kbv_repo_unlock(r, pw, pw ? strlen(pw) : 0) < 0 ||
	    kbv_writer_new(r, 1, &w) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		return 1;
	}
	size_t n = 0, nsrc = 0;
	struct kbv_entry *e = calloc((size_t)argc, sizeof *e);
	struct kbv_snapsource *src = calloc((size_t)argc, sizeof *src);
	for (int a = 2; a < argc; a++) {
		char *spec = argv[a], *colon = strchr(spec, ':'), *eq = strchr(spec, '=');
		if (!strncmp(spec, "source:", 7) && eq && strchr(eq + 1, '=')) {
			char *eq2 = strchr(eq + 1, '=');
			*eq = *eq2 = 0;
			src[nsrc].name = spec + 7;
			src[nsrc].type = eq + 1;
			src[nsrc++].meta = content(eq2 + 1);
			continue;
		}
		size_t i = n++;
		if (!colon)
			return 2;
		*colon = 0;
		if (eq)
			*eq = 0;
		e[i].name = colon + 1;
		e[i].ref.depth = KBV_REF_EMPTY;
		if (!strcmp(spec, "file")) {
			struct kbv_stream_result res;
			char *body = eq ? content(eq + 1) : NULL;
			if (!body || kbv_writer_mem(w, body, strlen(body), &res) < 0)
				return 1;
			e[i].kind = KBV_ENTRY_FILE;
			e[i].mode = 0100644;
			e[i].size = res.size;
			e[i].hash = res.hash;
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
	struct kbv_snapshot s = { .time = 1, .host = "mksnap", .sources = src, .nsources = nsrc };
	if (kbv_snapshot_commit(r, w, &s, e, n) < 0) {
		fprintf(stderr, "mksnap: %s\n", kbv_errmsg());
		return 1;
	}
	kbv_writer_free(w);
	kbv_repo_close(r);
	free(e);
	free(src);
	while (nloaded)
		free(loaded[--nloaded]);
	return 0;
}
