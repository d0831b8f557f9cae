/* kbvault copy --from-repo REPO [SNAPSHOT...]: snapshots of another repository into this
 * one (restic's `copy`), for a second copy elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kbv/config.h"
#include "kbv/copy.h"
#include "kbv/wal.h"
#include "kbv/error.h"

/* Open and unlock a repository other than the current one (the source of `copy`, the
 * target of copy-to), with `lock`. Its password: the file `pwfile`, else the file named by
 * the environment variable `envvar`, else, when `main_pw`, the current repository's
 * password. `label` names it in messages. Returns 0 or an exit code, having said why. */
static int open_other(const char *path, enum kbv_lock lock, const char *pwfile, const char *envvar, int main_pw,
		      const char *label, struct kbv_repo **out)
{
	struct kbv_repo *r;
	struct kbv_lock_wait w = { cli.lock_wait, NULL, NULL };
	char *pw = NULL;
	size_t len = 0;
	int code, rc;
	if ((rc = cli_remote_setup(path)) < 0)
		return cli_fail(rc);
	if ((rc = kbv_repo_open_wait(path, lock, &w, &r)) < 0)
		return cli_fail(kbv_error_prefix(rc, "%s", label));
	if (kbv_repo_needs_password(r)) {
		if ((!pwfile || !*pwfile) && envvar)
			pwfile = getenv(envvar);
		if (pwfile && *pwfile)
			code = cli_password_file(pwfile, &pw, &len);
		else if (main_pw)
			code = cli_password(0, &pw, &len);
		else {
			cli_log(CLI_ERROR, "the %s '%s' is encrypted: give --from-password-file or %s", label, path,
				envvar);
			code = EXIT_PASSWORD;
		}
		if (code != 0) {
			kbv_repo_close(r);
			return code;
		}
	}
	rc = kbv_repo_unlock(r, pw, len);
	cli_password_free(pw);
	if (rc < 0) {
		kbv_repo_close(r);
		return cli_fail(kbv_error_prefix(rc, "%s", label));
	}
	cli_remote_report(r);
	*out = r;
	return 0;
}

/* Copy the snapshots of src named in names[] (all of them when n is 0), oldest first, that
 * dst does not hold yet; each one is printed (`print`, the copy command) or logged.
 * Returns 0 or a KBV_E* code (message set). */
static int copy_snapshots(struct kbv_repo *src, struct kbv_repo *dst, char **names, size_t n, int print,
			  size_t *copied, size_t *present, uint64_t *wal_copied)
{
	struct kbv_snapshot **sl = NULL, **dl = NULL, **pick = NULL;
	struct kbv_reader *src_rd = NULL, *dst_rd = NULL;
	struct kbv_writer *w = NULL;
	size_t sn = 0, dn = 0, np = 0;
	int rc = 0;
	*copied = *present = 0;
	if ((rc = kbv_snapshot_list(src, &sl, &sn)) < 0 || (rc = kbv_snapshot_list(dst, &dl, &dn)) < 0 ||
	    (rc = kbv_reader_new(src, cli_threads(), &src_rd)) < 0 || (rc = kbv_reader_new(dst, cli_threads(), &dst_rd)) < 0)
		goto out;
	if (!(pick = calloc(sn + n + 1, sizeof *pick))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	if (n == 0)
		for (size_t i = 0; i < sn; i++)
			pick[np++] = sl[i];
	for (size_t i = 0; i < n; i++)
		if ((rc = kbv_snapshot_find(sl, sn, names[i], &pick[np++])) < 0)
			goto out;
	for (size_t i = 0; i < np; i++) {
		struct kbv_snapshot *s = pick[i], *there;
		char sid[2 * KBV_ID_BYTES + 1], did[2 * KBV_ID_BYTES + 1];
		uint8_t nid[KBV_ID_BYTES];
		kbv_hex(s->id, KBV_ID_BYTES, sid);
		if (!s->entries && (rc = kbv_snapshot_load_entries(src_rd, s)) < 0)
			goto out;
		if ((rc = kbv_copy_find(dst_rd, dl, dn, s, &there)) < 0)
			goto out;
		if (there) {
			kbv_hex(there->id, KBV_ID_BYTES, did);
			cli_log(print ? CLI_INFO : CLI_DEBUG, "snapshot %.8s is already in '%s' as %.8s", sid,
				kbv_repo_path(dst), did);
			(*present)++;
			continue;
		}
		if ((rc = kbv_writer_new(dst, 0, &w)) < 0 || (rc = kbv_copy_snapshot(src_rd, s, dst, w, nid)) < 0)
			goto out;
		kbv_writer_free(w);
		w = NULL;
		kbv_hex(nid, KBV_ID_BYTES, did);
		if (!print)
			cli_log(CLI_INFO, "copied snapshot %.8s into '%s' as %.8s", sid, kbv_repo_path(dst), did);
		else if (!cli.quiet)
			printf("copied snapshot %.8s as %.8s\n", sid, did);
		(*copied)++;
	}
	/* the PostgreSQL WAL archive: every file the target lacks (format/wal.md) */
	uint64_t wal_present;
	if ((rc = kbv_wal_copy(src, src_rd, dst, wal_copied, &wal_present)) < 0)
		goto out;
out:
	kbv_writer_free(w);
	kbv_reader_free(src_rd);
	kbv_reader_free(dst_rd);
	free(pick);
	kbv_snapshot_list_free(sl, sn);
	kbv_snapshot_list_free(dl, dn);
	return rc;
}

int cli_copy_to(struct kbv_repo *src)
{
	const char *to = cli.cfg ? cli.cfg->copy_to : NULL;
	struct kbv_repo *dst = NULL;
	size_t copied, present;
	uint64_t wal = 0;
	int code, rc;
	if (!to || !*to)
		return EXIT_OK;
	if (!strcmp(to, kbv_repo_path(src))) {
		cli_log(CLI_ERROR, "[repository] copy-to names the repository itself ('%s')", to);
		return EXIT_USAGE;
	}
	if ((code = open_other(to, KBV_LOCK_SHARED, cli.cfg->copy_to_password_file, NULL, 1, "copy-to repository",
			       &dst)) != 0) {
		cli_log(CLI_ERROR, "copy-to '%s' failed; the snapshot is recorded in '%s'", to, kbv_repo_path(src));
		return code;
	}
	rc = copy_snapshots(src, dst, NULL, 0, 0, &copied, &present, &wal);
	kbv_repo_close(dst);
	if (rc < 0) {
		code = cli_fail(kbv_error_prefix(rc, "copy-to '%s'", to));
		cli_log(CLI_ERROR, "copy-to '%s' failed; the snapshot is recorded in '%s', the next run copies what is "
				   "missing",
			to, kbv_repo_path(src));
		return code;
	}
	cli_log(CLI_INFO, "copy-to '%s': %zu snapshots copied, %zu already there; %llu WAL files copied", to, copied,
		present, (unsigned long long)wal);
	return EXIT_OK;
}

/* "; N WAL files copied" (static storage). */
static const char *wal_note(uint64_t n)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "; %llu WAL files copied", (unsigned long long)n);
	return buf;
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
	size_t copied = 0, present = 0;
	uint64_t wal = 0;
	if ((code = cli_open(KBV_LOCK_SHARED, 1, &dst)) != 0)
		return code;
	if (!strcmp(from, kbv_repo_path(dst))) {
		kbv_repo_close(dst);
		return cli_usage("copy", "the source and the target are the same repository");
	}
	if ((code = open_other(from, KBV_LOCK_SHARED, pwfile, "KBVAULT_FROM_PASSWORD_FILE", 0, "source repository",
			       &src)) != 0)
		goto out;
	if ((rc = copy_snapshots(src, dst, argv + optind, (size_t)(argc - optind), 1, &copied, &present, &wal)) < 0) {
		code = cli_fail(rc);
		goto out;
	}
	if (cli.json)
		printf("{\"copied\":%zu,\"already_there\":%zu,\"wal_files_copied\":%llu}\n", copied, present,
		       (unsigned long long)wal);
	else if (!cli.quiet)
		printf("copy: %zu snapshots copied, %zu already there%s\n", copied, present,
		       wal ? wal_note(wal) : "");
	code = EXIT_OK;
out:
	kbv_repo_close(src);
	kbv_repo_close(dst);
	return code;
}
