/* Source kind "qdrant": each collection's snapshot is created on the server, streamed from
 * the server straight into the repository (a thread downloads into a pipe the writer reads;
 * SHA-256 checked against Qdrant's checksum), and deleted on the server whatever happened. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/kinds.h"
#include "kbv/load.h"
#include "kbv/qdrant.h"

/* The API key from api-key-file (first line), or NULL. */
static int api_key(const struct kbv_source_cfg *sc, char **out)
{
	struct kbv_buf b = KBV_BUF_INIT;
	*out = NULL;
	if (!sc->api_key_file)
		return 0;
	int rc = kbv_read_file(sc->api_key_file, &b);
	if (rc < 0)
		return kbv_error_prefix(rc, "source '%s': api-key-file", sc->name);
	size_t n = 0;
	while (n < b.len && b.data[n] != '\n' && b.data[n] != '\r')
		n++;
	*out = strndup((const char *)b.data, n);
	sodium_memzero(b.data, b.len);
	kbv_buf_release(&b);
	return *out ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
}

int kbv_qdrant_connect(const struct kbv_source_cfg *sc, const char *url, struct kbv_qdrant **q)
{
	char *key = NULL;
	long timeout = 60;
	int rc = sc->timeout ? kbv_parse_long(sc->timeout, 1, 86400, &timeout) : 0;
	if (rc < 0)
		return kbv_error(rc, "source '%s': timeout must be seconds from 1 to 86400, not '%s'", sc->name, sc->timeout);
	rc = api_key(sc, &key);
	if (rc == 0)
		rc = kbv_qdrant_open(url ? url : sc->url, key, timeout, q);
	if (key) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	return rc;
}

struct download {
	struct kbv_qdrant *q;
	const char *collection;
	const struct kbv_qdrant_snap *snap;
	int fd;
	int rc;
	char err[1024];
};

static void *download_thread(void *arg)
{
	struct download *d = arg;
	d->rc = kbv_qdrant_snapshot_download(d->q, d->collection, d->snap, d->fd);
	if (d->rc < 0)
		snprintf(d->err, sizeof d->err, "%s", kbv_errmsg());
	close(d->fd); /* the writer sees the end; d->rc says whether it is the real end */
	return NULL;
}

/* One collection: create, stream, verify, delete. */
static int add_collection(struct kbv_sink *c, const struct kbv_source_cfg *sc, struct kbv_qdrant *q, const char *coll,
			  json_t *list)
{
	struct kbv_qdrant_snap snap;
	struct kbv_stream_result res;
	char name[PATH_MAX], what[600];
	int64_t points;
	int rc = kbv_qdrant_points(q, coll, &points);
	if (rc == 0)
		rc = kbv_qdrant_snapshot_create(q, coll, &snap);
	if (rc < 0)
		return rc;
	snprintf(name, sizeof name, "%s/%s.snapshot", sc->name, coll);
	snprintf(what, sizeof what, "the snapshot of Qdrant collection '%s'", coll);
	int p[2];
	struct kbv_entry *x = NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	struct download d = { .q = q, .collection = coll, .snap = &snap, .fd = p[1] };
	pthread_t th;
	int e = pthread_create(&th, NULL, download_thread, &d);
	if (e != 0) {
		close(p[0]), close(p[1]);
		rc = kbv_error(KBV_EIO, "cannot start the download thread: %s", strerror(e));
		goto out;
	}
	x = kbv_sink_entry(c, KBV_ENTRY_COMMAND, name);
	rc = x ? kbv_writer_fd(kbv_sink_writer(c), p[0], what, &res) : KBV_EINVAL;
	close(p[0]); /* a download still running fails on its next write and stops */
	pthread_join(th, NULL);
	if (rc == 0 && d.rc < 0)
		rc = kbv_error(d.rc, "%s", d.err);
	if (rc == 0) {
		x->mode = 0600;
		kbv_sink_set_result(x, &res);
		json_array_append_new(list, json_pack("{s:s, s:I, s:s, s:s, s:s}", "name", coll, "points",
						      (json_int_t)points, "stream", name, "checksum", snap.checksum,
						      "snapshot", snap.name));
	}
out:;
	/* The server-side copy goes in every case; failing to delete it is reported. */
	int drc = kbv_qdrant_snapshot_delete(q, coll, snap.name);
	if (drc < 0 && rc == 0)
		rc = drc;
	else if (drc < 0)
		kbv_sink_warn(c, "%s", kbv_errmsg());
	return rc;
}

int kbv_kind_qdrant_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	struct kbv_qdrant *q = NULL;
	char *version = NULL, **names = NULL;
	size_t n = 0;
	json_t *list = json_array();
	int rc = kbv_qdrant_connect(sc, NULL, &q);
	if (rc == 0)
		rc = kbv_qdrant_version(q, &version);
	if (rc == 0 && sc->collections) {
		char *copy = strdup(sc->collections), *save = NULL;
		names = calloc(strlen(sc->collections) + 1, sizeof *names);
		for (char *t = copy ? strtok_r(copy, " ,\t", &save) : NULL; t; t = strtok_r(NULL, " ,\t", &save))
			names[n++] = strdup(t);
		free(copy);
	} else if (rc == 0) {
		rc = kbv_qdrant_collections(q, &names, &n);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!names[i] || !*names[i] || strchr(names[i], '/'))
			rc = kbv_error(KBV_ESOURCE, "Qdrant collection name '%s' cannot be stored", names[i] ? names[i] : "");
		else
			rc = add_collection(c, sc, q, names[i], list);
	}
	if (rc == 0)
		*meta = json_pack("{s:s, s:s, s:O}", "version", version, "url", sc->url, "collections", list);
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(version);
	json_decref(list);
	kbv_qdrant_close(q);
	return rc;
}

const struct kbv_source_cfg *kbv_qdrant_source_cfg(const struct kbv_source_cfg *sc, const struct kbv_snapsource *src,
						   const json_t *meta, struct kbv_source_cfg *bare)
{
	if (sc && sc->type == KBV_SOURCE_QDRANT)
		return sc;
	/* Not configured here (a new host): the server the snapshot came from, no key. */
	*bare = (struct kbv_source_cfg){ .name = (char *)src->name, .type = KBV_SOURCE_QDRANT,
					 .url = (char *)json_string_value(json_object_get(meta, "url")) };
	return bare;
}

int kbv_qdrant_restore_source(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_source_cfg *sc,
		       const json_t *meta, const char *url, const char *suffix, json_t *report)
{
	struct kbv_qdrant *q = NULL;
	const char *tmpdir = getenv("TMPDIR");
	char file[PATH_MAX];
	int rc = kbv_qdrant_connect(sc, url, &q);
	size_t i;
	const json_t *col;
	json_array_foreach(json_object_get(meta, "collections"), i, col) {
		if (rc < 0)
			break;
		const char *name = json_string_value(json_object_get(col, "name"));
		const char *stream = json_string_value(json_object_get(col, "stream"));
		const char *sum = json_string_value(json_object_get(col, "checksum"));
		json_int_t want = json_integer_value(json_object_get(col, "points"));
		const struct kbv_entry *e = NULL;
		for (size_t k = 0; stream && k < s->nloaded && !e; k++)
			if (!strcmp(s->entries[k].name, stream))
				e = &s->entries[k];
		if (!name || !e || !sum) {
			rc = kbv_error(KBV_ECORRUPT, "source '%s': the snapshot's collection list is malformed", sc->name);
			break;
		}
		char target[600];
		snprintf(target, sizeof target, "%s%s", name, suffix ? suffix : "");
		/* Restored (and verified) to a file first, so Qdrant is only ever sent a whole,
		 * verified snapshot with its size known. */
		snprintf(file, sizeof file, "%s/kbvault-qdrant-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
		int fd = mkstemp(file);
		if (fd < 0) {
			rc = kbv_error(KBV_EIO, "create a scratch file: %s", strerror(errno));
			break;
		}
		rc = kbv_load_to_fd(rd, e, fd);
		close(fd);
		if (rc == 0)
			rc = kbv_qdrant_upload(q, target, file, sum);
		unlink(file);
		int64_t got = -1;
		if (rc == 0)
			rc = kbv_qdrant_points(q, target, &got);
		if (rc < 0)
			break;
		json_array_append_new(report, json_pack("{s:s, s:s, s:I, s:I}", "collection", name, "restored_as", target,
							"points", (json_int_t)got, "recorded_points", want));
	}
	kbv_qdrant_close(q);
	return rc;
}

/* drill: every collection uploaded as <name>_kbvault_drill_<pid> to the source's own
 * server, point counts compared, the scratch collections deleted. */
int kbv_kind_qdrant_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok)
{
	struct kbv_reader *rd = d->rd;
	const struct kbv_snapshot *s = d->s;
	const struct kbv_snapsource *src = d->src;
	char suffix[64];
	json_t *meta = json_loads(src->meta, 0, NULL), *report = json_array(), *mism = json_array();
	struct kbv_source_cfg bare;
	const struct kbv_source_cfg *sc = kbv_qdrant_source_cfg(d->sc, src, meta, &bare);
	struct kbv_qdrant *q = NULL;
	*ok = 0;
	snprintf(suffix, sizeof suffix, "_kbvault_drill_%ld", (long)getpid());
	int rc = kbv_qdrant_restore_source(rd, s, sc, meta, NULL, suffix, report);
	size_t i;
	json_t *r, *c;
	int64_t points = 0;
	json_array_foreach(report, i, r) {
		json_int_t got = json_integer_value(json_object_get(r, "points"));
		json_int_t want = json_integer_value(json_object_get(r, "recorded_points"));
		points += got;
		if (got != want) {
			char m[600];
			snprintf(m, sizeof m, "collection %s: %lld points, the snapshot recorded %lld",
				 json_string_value(json_object_get(r, "collection")), (long long)got, (long long)want);
			json_array_append_new(mism, json_string(m));
		}
	}
	/* Scratch collections go, including one a failed upload may have left. */
	if (kbv_qdrant_connect(sc, NULL, &q) == 0) {
		json_array_foreach(json_object_get(meta, "collections"), i, c) {
			char name[600];
			int64_t n;
			snprintf(name, sizeof name, "%s%s", json_string_value(json_object_get(c, "name")), suffix);
			if (kbv_qdrant_points(q, name, &n) == 0 && kbv_qdrant_drop(q, name) < 0)
				kbv_events_warn(d->ev, "%s (delete it by hand)", kbv_errmsg());
		}
		kbv_qdrant_close(q);
	}
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "uploaded %zu collections as scratch collections; %lld points, counts match",
			 json_array_size(report), (long long)points);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "collections", json_integer((json_int_t)json_array_size(report)));
		json_object_set_new(res, "points", json_integer(points));
		json_object_set(res, "mismatches", mism);
		*ok = json_array_size(mism) == 0;
	}
	json_decref(mism);
	json_decref(report);
	json_decref(meta);
	return rc;
}

/* restore --source: every collection uploaded (to --target-url, with --collection-suffix),
 * point counts compared with the snapshot. */
int kbv_kind_qdrant_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch)
{
	struct kbv_source_cfg bare;
	json_t *meta = json_loads(c->src->meta, 0, NULL), *list = json_array();
	const struct kbv_source_cfg *sc = kbv_qdrant_source_cfg(c->sc, c->src, meta, &bare);
	json_object_set_new(report, "has_json", json_true());
	int rc = sc->url || c->target_url
			 ? kbv_qdrant_restore_source(c->rd, c->s, sc, meta, c->target_url, c->suffix, list)
			 : kbv_error(KBV_EINVAL, "source '%s': no Qdrant URL; give --target-url", c->src->name);
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		json_int_t got = json_integer_value(json_object_get(r, "points"));
		json_int_t want = json_integer_value(json_object_get(r, "recorded_points"));
		if (got != want) {
			*mismatch = 1;
			kbv_report_add(report, "errors", "collection '%s': %lld points, the snapshot recorded %lld",
				       json_string_value(json_object_get(r, "restored_as")), (long long)got, (long long)want);
		} else {
			kbv_report_add(report, "lines", "restored collection '%s' as '%s': %lld points, as the snapshot recorded",
				       json_string_value(json_object_get(r, "collection")),
				       json_string_value(json_object_get(r, "restored_as")), (long long)got);
		}
	}
	if (rc == 0)
		json_object_set(report, "json", list);
	json_decref(list);
	json_decref(meta);
	return rc;
}

const struct kbv_source_key kbv_kind_qdrant_keys[] = {
	KBV_SOURCE_KEY("url", url, 1),
	KBV_SOURCE_KEY("api-key-file", api_key_file, 0),
	KBV_SOURCE_KEY("collections", collections, 0),
	KBV_SOURCE_KEY("timeout", timeout, 0),
	{ NULL, 0, 0 },
};

int kbv_kind_qdrant_check(const struct kbv_source_cfg *sc, char *msg, size_t cap)
{
	long secs;
	if (sc->timeout && kbv_parse_long(sc->timeout, 1, 86400, &secs) < 0)
		snprintf(msg, cap, "timeout must be seconds from 1 to 86400, not '%s'", sc->timeout);
	else if (sc->api_key_file && access(sc->api_key_file, R_OK) != 0)
		snprintf(msg, cap, "api-key-file '%s' is not readable: %s", sc->api_key_file, strerror(errno));
	else
		return 0;
	return -1;
}
