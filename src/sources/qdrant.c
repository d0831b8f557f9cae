/* Qdrant's REST API (the paths and JSON shapes of its published OpenAPI spec) over libcurl.
 * One easy handle per client, reused across requests; JSON through jansson; SHA-256
 * through libsodium. */
#include "kbv/qdrant.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (16u << 20) /* largest JSON reply we buffer */

struct kbv_qdrant {
	CURL *curl;
	char *url;
	struct curl_slist *headers;
	long timeout;
	char err[CURL_ERROR_SIZE];
};

int kbv_qdrant_open(const char *url, const char *api_key, long timeout, struct kbv_qdrant **out)
{
	static int global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return kbv_error(KBV_EINTERNAL, "libcurl failed to initialize");
		global_done = 1;
	}
	struct kbv_qdrant *q = calloc(1, sizeof *q);
	if (!q)
		return kbv_error(KBV_ENOMEM, "out of memory");
	size_t n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	q->url = strndup(url, n);
	q->curl = curl_easy_init();
	q->timeout = timeout > 0 ? timeout : 60;
	if (api_key) {
		char h[1024];
		if (snprintf(h, sizeof h, "api-key: %s", api_key) >= (int)sizeof h) {
			kbv_qdrant_close(q);
			return kbv_error(KBV_EINVAL, "the Qdrant API key is too long");
		}
		q->headers = curl_slist_append(NULL, h);
		sodium_memzero(h, sizeof h);
	}
	if (!q->url || !q->curl || (api_key && !q->headers)) {
		kbv_qdrant_close(q);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	*out = q;
	return 0;
}

void kbv_qdrant_close(struct kbv_qdrant *q)
{
	if (!q)
		return;
	if (q->curl)
		curl_easy_cleanup(q->curl);
	curl_slist_free_all(q->headers);
	free(q->url);
	free(q);
}

/* ---- One request ---- */

struct sink {
	struct kbv_buf body; /* JSON replies (and error bodies of downloads) */
	int fd;              /* downloads: where the payload goes, or -1 */
	crypto_hash_sha256_state sha;
	uint64_t got;
	int failed;          /* a write to fd failed: its error is recorded */
	int rc;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	if (s->fd >= 0) {
		crypto_hash_sha256_update(&s->sha, (const unsigned char *)p, n);
		s->got += n;
		if ((s->rc = kbv_write_full(s->fd, p, n, "the snapshot stream")) < 0) {
			s->failed = 1;
			return 0; /* aborts the transfer */
		}
		return n;
	}
	if (s->body.len + n > BODY_MAX)
		return 0;
	if (kbv_buf_add(&s->body, p, n) < 0)
		return 0;
	return n;
}

/* The path part, each segment URL-escaped by the caller. */
static int request(struct kbv_qdrant *q, const char *method, const char *path, struct sink *s, curl_mime *mime,
		   long *status, const char *what)
{
	char url[4096];
	if (snprintf(url, sizeof url, "%s%s", q->url, path) >= (int)sizeof url)
		return kbv_error(KBV_EINVAL, "%s: URL too long", what);
	CURL *c = q->curl;
	curl_easy_reset(c);
	q->err[0] = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, q->err);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, q->timeout);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, q->timeout);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "kbvault");
	if (q->headers)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, q->headers);
	if (s->fd >= 0) /* a download: an error page must never reach the stream */
		curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	if (mime)
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	else if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	CURLcode cc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (s->failed)
		return kbv_error_prefix(s->rc, "%s", what);
	if (cc != CURLE_OK)
		return kbv_error(KBV_ESOURCE, "%s: %s %s: %s", what, method, url, q->err[0] ? q->err : curl_easy_strerror(cc));
	return 0;
}

/* A JSON reply: 2xx and a parsable object, else KBV_ESOURCE naming the status and
 * Qdrant's own error text. */
static int json_call(struct kbv_qdrant *q, const char *method, const char *path, curl_mime *mime, json_t **out,
		     const char *what)
{
	struct sink s = { .fd = -1 };
	long status;
	int rc = request(q, method, path, &s, mime, &status, what);
	json_t *j = rc == 0 ? json_loadb((const char *)s.body.data, s.body.len, 0, NULL) : NULL;
	if (rc == 0 && (status < 200 || status > 299)) {
		const char *msg = json_string_value(json_object_get(json_object_get(j, "status"), "error"));
		rc = kbv_error(status == 404 ? KBV_ENOTFOUND : KBV_ESOURCE, "%s: %s %s%s answered HTTP %ld%s%s", what, method,
			       q->url, path, status, msg ? ": " : "", msg ? msg : "");
	} else if (rc == 0 && !json_is_object(j)) {
		rc = kbv_error(KBV_ESOURCE, "%s: %s %s%s: the reply is not a JSON object", what, method, q->url, path);
	}
	kbv_buf_release(&s.body);
	if (rc < 0) {
		json_decref(j);
		return rc;
	}
	*out = j;
	return 0;
}

static int esc(struct kbv_qdrant *q, const char *s, char *out, size_t cap)
{
	char *e = curl_easy_escape(q->curl, s, 0);
	if (!e)
		return kbv_error(KBV_ENOMEM, "out of memory");
	int ok = snprintf(out, cap, "%s", e) < (int)cap;
	curl_free(e);
	return ok ? 0 : kbv_error(KBV_EINVAL, "name too long: '%s'", s);
}

/* "/collections/{collection}[/snapshots/{snap}]{tail}", names URL-escaped. */
static int coll_path(struct kbv_qdrant *q, const char *collection, const char *snap, const char *tail, char *out,
		     size_t cap)
{
	char e[512], en[512] = "";
	int rc = esc(q, collection, e, sizeof e);
	if (rc == 0 && snap)
		rc = esc(q, snap, en, sizeof en);
	if (rc < 0)
		return rc;
	if (snprintf(out, cap, "/collections/%s%s%s%s", e, snap ? "/snapshots/" : "", en, tail) >= (int)cap)
		return kbv_error(KBV_EINVAL, "Qdrant path too long for collection '%s'", collection);
	return 0;
}

/* ---- The API ---- */

int kbv_qdrant_version(struct kbv_qdrant *q, char **version)
{
	json_t *j;
	int rc = json_call(q, "GET", "/", NULL, &j, "Qdrant version");
	if (rc < 0)
		return rc;
	const char *v = json_string_value(json_object_get(j, "version"));
	*version = strdup(v ? v : "unknown");
	json_decref(j);
	return *version ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
}

int kbv_qdrant_collections(struct kbv_qdrant *q, char ***names, size_t *n)
{
	json_t *j;
	int rc = json_call(q, "GET", "/collections", NULL, &j, "list Qdrant collections");
	if (rc < 0)
		return rc;
	json_t *arr = json_object_get(json_object_get(j, "result"), "collections");
	size_t cnt = json_array_size(arr), i;
	char **v = calloc(cnt + 1, sizeof *v);
	json_t *c;
	if (!v) {
		json_decref(j);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	json_array_foreach(arr, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		v[i] = strdup(name ? name : "");
	}
	json_decref(j);
	*names = v;
	*n = cnt;
	return 0;
}

int kbv_qdrant_points(struct kbv_qdrant *q, const char *collection, int64_t *points)
{
	char path[1200], what[600];
	json_t *j;
	int rc = coll_path(q, collection, NULL, "", path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "collection '%s'", collection);
	if ((rc = json_call(q, "GET", path, NULL, &j, what)) < 0)
		return rc;
	json_t *pc = json_object_get(json_object_get(j, "result"), "points_count");
	*points = json_is_integer(pc) ? (int64_t)json_integer_value(pc) : -1;
	json_decref(j);
	return 0;
}

int kbv_qdrant_drop(struct kbv_qdrant *q, const char *collection)
{
	char path[1200], what[600];
	json_t *j;
	int rc = coll_path(q, collection, NULL, "", path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "delete collection '%s'", collection);
	if ((rc = json_call(q, "DELETE", path, NULL, &j, what)) == 0)
		json_decref(j);
	return rc;
}

int kbv_qdrant_snapshot_create(struct kbv_qdrant *q, const char *collection, struct kbv_qdrant_snap *s)
{
	char path[1200], what[600];
	json_t *j;
	int rc = coll_path(q, collection, NULL, "/snapshots?wait=true", path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "create a snapshot of collection '%s'", collection);
	if ((rc = json_call(q, "POST", path, NULL, &j, what)) < 0)
		return rc;
	json_t *r = json_object_get(j, "result");
	const char *name = json_string_value(json_object_get(r, "name"));
	const char *sum = json_string_value(json_object_get(r, "checksum"));
	if (!name || !sum || strlen(sum) != 64 || strlen(name) >= sizeof s->name || strchr(name, '/')) {
		json_decref(j);
		return kbv_error(KBV_ESOURCE, "%s: the reply lacks a snapshot name or a SHA-256 checksum", what);
	}
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->checksum, sizeof s->checksum, "%s", sum);
	s->size = json_integer_value(json_object_get(r, "size"));
	json_decref(j);
	return 0;
}

int kbv_qdrant_snapshot_download(struct kbv_qdrant *q, const char *collection, const struct kbv_qdrant_snap *snap,
				 int fd)
{
	char path[1200], what[800];
	int rc = coll_path(q, collection, snap->name, "", path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "download snapshot '%s' of collection '%s'", snap->name, collection);
	struct sink s = { .fd = fd };
	long status;
	crypto_hash_sha256_init(&s.sha);
	rc = request(q, "GET", path, &s, NULL, &status, what);
	if (rc == 0 && (status < 200 || status > 299))
		rc = kbv_error(KBV_ESOURCE, "%s: HTTP %ld", what, status);
	if (rc == 0) {
		uint8_t h[32];
		char hex[65];
		crypto_hash_sha256_final(&s.sha, h);
		kbv_hex(h, 32, hex);
		if (strcmp(hex, snap->checksum) != 0)
			rc = kbv_error(KBV_ESOURCE, "%s: SHA-256 of the %llu bytes received is %s, Qdrant said %s", what,
				       (unsigned long long)s.got, hex, snap->checksum);
	}
	kbv_buf_release(&s.body);
	return rc;
}

int kbv_qdrant_snapshot_delete(struct kbv_qdrant *q, const char *collection, const char *name)
{
	char path[1200], what[800];
	json_t *j;
	int rc = coll_path(q, collection, name, "", path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "delete snapshot '%s' of collection '%s' on the server", name, collection);
	if ((rc = json_call(q, "DELETE", path, NULL, &j, what)) == 0)
		json_decref(j);
	return rc;
}

int kbv_qdrant_upload(struct kbv_qdrant *q, const char *collection, const char *file, const char *checksum)
{
	char path[1200], tail[128], what[600];
	json_t *j;
	snprintf(tail, sizeof tail, "/snapshots/upload?priority=snapshot&checksum=%s", checksum);
	int rc = coll_path(q, collection, NULL, tail, path, sizeof path);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof what, "upload a snapshot into collection '%s'", collection);
	curl_easy_reset(q->curl);
	curl_mime *mime = curl_mime_init(q->curl);
	curl_mimepart *part = curl_mime_addpart(mime);
	curl_mime_name(part, "snapshot");
	if (curl_mime_filedata(part, file) != CURLE_OK) {
		curl_mime_free(mime);
		return kbv_error(KBV_EIO, "%s: cannot read '%s'", what, file);
	}
	rc = json_call(q, "POST", path, mime, &j, what);
	curl_mime_free(mime);
	if (rc == 0)
		json_decref(j);
	return rc;
}
