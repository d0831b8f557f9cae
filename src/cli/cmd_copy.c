/* kbvault copy --from-repo REPO [SNAPSHOT...]: snapshots of another repository into this
 * one (restic's `copy`), for a second copy elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/copy.h"
#include "kbv/error.h"

/* Open and unlock the source repository. Returns 0 or an exit code, having said why. */
static int open_source(const char *path, const char *pwfile, struct kbv_repo **out)
{
	struct kbv_repo *r;
	struct kbv_lock_wait w = { cli.lock_wait, NULL, NULL };
	char *pw = NULL;
	size_t len = 0;
	int code, rc;
	if ((rc = cli_remote_setup(path)) < 0)
		return cli_fail(rc);
	if ((rc = kbv_repo_open_wait(path, KBV_LOCK_SHARED, &w, &r)) < 0)
		return cli_fail(kbv_error_prefix(rc, "source repository"));
	if (kbv_repo_needs_password(r)) {
		if (!pwfile || !*pwfile)
			pwfile = getenv("KBVAULT_FROM_PASSWORD_FILE");
		if (!pwfile || !*pwfile) {
			kbv_repo_close(r);
			cli_log(CLI_ERROR, "the source repository '%s' is encrypted: give --from-password-file or "
					   "KBVAULT_FROM_PASSWORD_FILE",
				path);
			return EXIT_PASSWORD;
		}
		if ((code = cli_password_file(pwfile, &pw, &len)) != 0) {
			kbv_repo_close(r);
			return code;
		}
	}
	rc = kbv_repo_unlock(r, pw, len);
	cli_password_free(pw);
	if (rc < 0) {
		kbv_repo_close(r);
		return cli_fail(kbv_error_prefix(rc, "source repository"));
	}
	cli_remote_report(r);
	*out = r;
	return 0;
}

int cmd_copy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-repo", required_argument, NULL, 1401 },
		{ "from-password-file", required_argument, NULL, 1402 },
		CLI_GLOBAL_OPTIONS,
		{ 0 },
	};
	const char *from = NULL, *pwfile = NULL;
	int c, code, rc = 0;
	while ((c = getopt_long(argc, argv, CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
		if (cli_global_option(c, optarg, "copy"))
			continue;
		switch (c) {
		case 1401: from = optarg; break;
		case 1402: pwfile = optarg; break;
		default: return cli_bad_option("copy", argv);
		}
	}
	if (!from || !*from)
		return cli_usage("copy", "give the repository to copy from: --from-repo REPO");
	struct kbv_repo *dst = NULL, *src = NULL;
	struct kbv_snapshot **sl = NULL, **dl = NULL, **pick = NULL;
	struct kbv_reader *src_rd = NULL, *dst_rd = NULL;
	struct kbv_writer *w = NULL;
	size_t sn = 0, dn = 0, np = 0, copied = 0, present = 0;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &dst)) != 0)
		return code;
	if (!strcmp(from, kbv_repo_path(dst))) {
		kbv_repo_close(dst);
		return cli_usage("copy", "the source and the target are the same repository");
	}
	if ((code = open_source(from, pwfile, &src)) != 0)
		goto out;
	if ((rc = kbv_snapshot_list(src, &sl, &sn)) < 0 || (rc = kbv_snapshot_list(dst, &dl, &dn)) < 0 ||
	    (rc = kbv_reader_new(src, 0, &src_rd)) < 0 || (rc = kbv_reader_new(dst, 0, &dst_rd)) < 0)
		goto fail;
	/* All snapshots, oldest first, or the ones named. */
	if (!(pick = calloc(sn + (size_t)argc + 1, sizeof *pick))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto fail;
	}
	if (optind == argc)
		for (size_t i = 0; i < sn; i++)
			pick[np++] = sl[i];
	for (int i = optind; i < argc; i++)
		if ((rc = kbv_snapshot_find(sl, sn, argv[i], &pick[np++])) < 0)
			goto fail;
	for (size_t i = 0; i < np; i++) {
		struct kbv_snapshot *s = pick[i], *there;
		char sid[2 * KBV_ID_BYTES + 1], did[2 * KBV_ID_BYTES + 1];
		uint8_t nid[KBV_ID_BYTES];
		kbv_hex(s->id, KBV_ID_BYTES, sid);
		if (!s->entries && (rc = kbv_snapshot_load_entries(src_rd, s)) < 0)
			goto fail;
		if ((rc = kbv_copy_find(dst_rd, dl, dn, s, &there)) < 0)
			goto fail;
		if (there) {
			kbv_hex(there->id, KBV_ID_BYTES, did);
			cli_log(CLI_INFO, "snapshot %.8s is already in the target as %.8s", sid, did);
			present++;
			continue;
		}
		if ((rc = kbv_writer_new(dst, 0, &w)) < 0 || (rc = kbv_copy_snapshot(src_rd, s, dst, w, nid)) < 0)
			goto fail;
		kbv_writer_free(w);
		w = NULL;
		kbv_hex(nid, KBV_ID_BYTES, did);
		if (!cli.quiet)
			printf("copied snapshot %.8s as %.8s\n", sid, did);
		copied++;
	}
	if (cli.json)
		printf("{\"copied\":%zu,\"already_there\":%zu}\n", copied, present);
	else if (!cli.quiet)
		printf("copy: %zu snapshots copied, %zu already there\n", copied, present);
	code = EXIT_OK;
	goto out;
fail:
	code = cli_fail(rc);
out:
	kbv_writer_free(w);
	kbv_reader_free(src_rd);
	kbv_reader_free(dst_rd);
	free(pick);
	kbv_snapshot_list_free(sl, sn);
	kbv_snapshot_list_free(dl, dn);
	kbv_repo_close(src);
	kbv_repo_close(dst);
	return code;
}
