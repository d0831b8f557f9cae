/* Source kind "path": the listed absolute paths, recursively, with modes, times and owners;
 * restored to where they were. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/load.h"
#include "kbv/restore.h"
#include "kbv/proc.h"

int kbv_kind_path_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char *list = strdup(sc->paths), *save = NULL;
	json_t *paths = json_array();
	int rc = 0;
	if (!list)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (char *p = strtok_r(list, " \t,", &save); p && rc == 0; p = strtok_r(NULL, " \t,", &save)) {
		char rel[PATH_MAX], name[PATH_MAX + 80];
		if (p[0] != '/') {
			rc = kbv_error(KBV_EINVAL, "source '%s': path '%s' is not absolute (it is restored to where it was)",
				       sc->name, p);
			break;
		}
		if ((rc = kbv_path_to_name(p, rel, sizeof rel)) < 0)
			break;
		snprintf(name, sizeof name, "%s/%s", sc->name, rel);
		rc = kbv_sink_tree(c, p, name, sc->exclude);
		json_array_append_new(paths, json_string(p));
	}
	free(list);
	if (rc < 0) {
		json_decref(paths);
		return rc;
	}
	*meta = json_pack("{s:o}", "paths", paths);
	if (sc->exclude)
		json_object_set_new(*meta, "exclude", json_string(sc->exclude));
	return 0;
}

/* drill: every file restored into a scratch directory, read back from disk and hashed. */
int kbv_kind_path_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok)
{
	struct kbv_reader *rd = d->rd;
	const struct kbv_snapshot *s = d->s;
	const struct kbv_snapsource *src = d->src;
	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX], file[PATH_MAX + 32], prefix[128];
	size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", src->name);
	uint64_t files = 0, bytes = 0;
	json_t *mism = json_array();
	int rc = 0;
	*ok = 0;
	snprintf(dir, sizeof dir, "%s/kbvault-drill-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(dir)) {
		json_decref(mism);
		return kbv_error(KBV_EIO, "create a scratch directory: %s", strerror(errno));
	}
	for (size_t i = 0; i < s->nloaded && rc == 0; i++) {
		const struct kbv_entry *e = &s->entries[i];
		if (e->kind != KBV_ENTRY_FILE || strncmp(e->name, prefix, plen) != 0)
			continue;
		snprintf(file, sizeof file, "%s/%zu", dir, i);
		int fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = kbv_error(KBV_EIO, "create '%s': %s", file, strerror(errno));
			break;
		}
		rc = kbv_load_to_fd(rd, e, fd);
		if (rc == 0) {
			/* What landed on disk, hashed again. */
			struct kbv_digest h;
			uint64_t n = 0;
			int hr = lseek(fd, 0, SEEK_SET) < 0 ? KBV_EIO : kbv_digest_fd(fd, e->hash.alg, file, &h, &n);
			if (hr == KBV_ECORRUPT || hr == KBV_ENOMEM) { /* unknown algorithm, no memory */
				rc = hr;
				close(fd);
				unlink(file);
				break;
			}
			if (hr < 0 || n != e->size || !kbv_digest_equal(&h, &e->hash)) {
				char m[PATH_MAX + 64];
				snprintf(m, sizeof m, "%s: restored file does not hash to the snapshot's %s", e->name,
					 kbv_digest_name(e->hash.alg));
				json_array_append_new(mism, json_string(m));
			}
			files++;
			bytes += n;
		}
		close(fd);
		unlink(file);
	}
	rmdir(dir);
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "restored %llu files (%llu bytes) into a scratch directory; every hash matches",
			 (unsigned long long)files, (unsigned long long)bytes);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "files", json_integer((json_int_t)files));
		json_object_set(res, "mismatches", mism);
		*ok = json_array_size(mism) == 0;
	}
	json_decref(mism);
	return rc;
}

struct in_place {
	const struct kbv_progress *progress;
	uint64_t total;
};

static int in_source(const struct kbv_entry *e, void *arg)
{
	const char *prefix = arg;
	size_t n = strlen(prefix);
	return !strncmp(e->name, prefix, n) && (e->name[n] == 0 || e->name[n] == '/');
}

static void in_place_progress(void *arg, uint64_t bytes)
{
	struct in_place *ip = arg;
	if (ip->progress && ip->progress->bytes)
		ip->progress->bytes(ip->progress->arg, bytes, ip->total);
}

/* restore --source --in-place: back where the files were, replacing what is there (that
 * is the point), following only links the snapshot itself recorded as trusted. */
int kbv_kind_path_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch)
{
	struct in_place ip = { c->progress, 0 };
	(void)mismatch;
	for (size_t i = 0; i < c->s->nloaded; i++)
		if (in_source(&c->s->entries[i], (void *)c->src->name) && c->s->entries[i].kind == KBV_ENTRY_FILE)
			ip.total += c->s->entries[i].size;
	struct kbv_restore_opts o = {
		.select = in_source, .select_arg = (void *)c->src->name, .strip = strlen(c->src->name) + 1,
		.overwrite = 1, .follow_trusted_links = 1, .progress = in_place_progress, .progress_arg = &ip,
	};
	struct kbv_restore_result res;
	int rc = kbv_restore_dir(c->rd, c->s, "/", &o, &res);
	if (c->progress && c->progress->done)
		c->progress->done(c->progress->arg);
	if (rc == 0)
		kbv_report_add(report, "lines", "restored source '%s' in place: %zu entries", c->src->name, res.entries);
	return rc;
}

const struct kbv_source_key kbv_kind_path_keys[] = {
	KBV_SOURCE_KEY("paths", paths, 1),
	KBV_SOURCE_KEY("exclude", exclude, 0),
	{ NULL, 0, 0 },
};
