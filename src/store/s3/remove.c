/* Removal on S3 (s3.h): DeleteObjects in batches of 1000 keys, the batches on several
 * threads at once; with Object Lock (a versioned bucket) every version of each object,
 * found with ListObjectVersions, since a plain DELETE there only adds a delete marker and
 * frees nothing. */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	if (kind == KBV_OBJ_KEY)
		s3_key_forget(s);
	if (s->lock_secs)
		return s3_remove_versions(s, kind, &name, 1);
	s3_obj_key(s, kind, name, key, sizeof key);
	struct req q = { .method = "DELETE", .key = key };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 204 && q.status != 200 && q.status != 404)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}

static int xml_add_escaped(struct kbv_buf *b, const char *s)
{
	int rc = 0;
	for (; *s && rc == 0; s++)
		rc = *s == '&'	 ? kbv_buf_add(b, "&amp;", 5)
		     : *s == '<' ? kbv_buf_add(b, "&lt;", 4)
		     : *s == '>' ? kbv_buf_add(b, "&gt;", 4)
				 : kbv_buf_add(b, s, 1);
	return rc;
}

/* One DeleteObjects request (POST ?delete=, Quiet) of the <Object> elements in objs (at
 * most 1000). Its body must carry a checksum: AWS wants Content-MD5 or an x-amz-checksum-*
 * header; the SHA-256 one is sent. The first object the server could not delete is named. */
static int delete_objects(struct s3 *s, const struct kbv_buf *objs)
{
	struct kbv_buf body = KBV_BUF_INIT, resp = KBV_BUF_INIT;
	char sums[160];
	int rc = 0;
	TRY(kbv_buf_add(&body, "<Delete><Quiet>true</Quiet>", 27));
	TRY(kbv_buf_add(&body, objs->data, objs->len));
	TRY(kbv_buf_add(&body, "</Delete>", 9));
	struct req q = { .method = "POST", .query = "delete=", .body = body.data, .len = body.len,
			 .hdr = { "Content-Type: application/xml" }, .out = &resp };
	s3_checksum_headers(&q, 1, sums, sizeof sums);
	rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	if (rc == 0 && memmem(resp.data ? resp.data : (uint8_t *)"", resp.len, "<Error>", 7)) {
		/* Quiet: only the keys that could not be deleted are listed */
		char ekey[512], ever[256], code[64], what[1024];
		kbv_s3_xml_field(resp.data, resp.len, "Key", ekey, sizeof ekey);
		kbv_s3_xml_field(resp.data, resp.len, "VersionId", ever, sizeof ever);
		kbv_s3_xml_field(resp.data, resp.len, "Code", code, sizeof code);
		s3_req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: '%s'%s%s was not deleted: %s%s", what, ekey, *ever ? " version " : "", ever,
			       *code ? code : "(no error code)",
			       !strcmp(code, "AccessDenied") ? " (retained by Object Lock, or not allowed to this user)" : "");
	}
	kbv_buf_release(&q.err);
out:
	kbv_buf_release(&body);
	kbv_buf_release(&resp);
	return rc;
}

static int delete_batch(struct s3 *s, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct kbv_buf objs = KBV_BUF_INIT;
	char key[512];
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		s3_obj_key(s, kind, names[i], key, sizeof key);
		TRY(kbv_buf_add(&objs, "<Object><Key>", 13));
		TRY(xml_add_escaped(&objs, key));
		TRY(kbv_buf_add(&objs, "</Key></Object>", 15));
	}
	rc = delete_objects(s, &objs);
out:
	kbv_buf_release(&objs);
	return rc;
}

/* Batches of a removal sent by up to s3-connections threads at once: a server deletes the
 * objects of one DeleteObjects one after another (radosgw: about 1 ms each), so batches in
 * parallel finish sooner (docs/benchmarks.md, "gc on many packs"). */
struct del_job {
	struct s3 *s;
	enum kbv_obj kind;
	const char *const *names;
	size_t n;
	_Atomic size_t *next; /* the next batch's first name, shared by the threads */
	size_t batch;
	pthread_t th;
	int rc;
	char err[1024]; /* its message: errors are per thread */
};

static void *delete_main(void *arg)
{
	struct del_job *j = arg;
	for (;;) {
		size_t i = atomic_fetch_add(j->next, j->batch);
		if (i >= j->n)
			break;
		int r = delete_batch(j->s, j->kind, j->names + i, j->n - i < j->batch ? j->n - i : j->batch);
		if (r < 0) {
			j->rc = r;
			snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
			atomic_store(j->next, j->n); /* the others stop after their batch */
			break;
		}
	}
	return NULL;
}

int s3_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct s3 *s = (struct s3 *)be;
	if (kind == KBV_OBJ_KEY)
		s3_key_forget(s);
	if (s->lock_secs)
		return s3_remove_versions(s, kind, names, n);
	/* the tests make batches small (KBVAULT_S3_DELETE_BATCH) to run several at once */
	size_t batch = (size_t)kbv_env_long("KBVAULT_S3_DELETE_BATCH", 1, KBV_S3_DELETE_BATCH_MAX,
					    KBV_S3_DELETE_BATCH_MAX); /* DeleteObjects takes at most 1000 keys */
	size_t batches = (n + batch - 1) / batch;
	if (batches <= 1)
		return n ? delete_batch(s, kind, names, n) : 0;
	size_t nth = batches < (size_t)s->conns ? batches : (size_t)s->conns;
	struct del_job j[S3_MAX_CONNS];
	_Atomic size_t next = 0;
	size_t started = 0;
	for (size_t t = 0; t < nth; t++) {
		j[t] = (struct del_job){ .s = s, .kind = kind, .names = names, .n = n, .next = &next, .batch = batch };
		if (pthread_create(&j[t].th, NULL, delete_main, &j[t]) != 0)
			break;
		started++;
	}
	if (!started) { /* no thread: here, one batch after another */
		struct del_job one = { .s = s, .kind = kind, .names = names, .n = n, .next = &next, .batch = batch };
		delete_main(&one);
		return one.rc < 0 ? kbv_error(one.rc, "%s", one.err) : 0;
	}
	int rc = 0;
	const char *err = NULL;
	for (size_t t = 0; t < started; t++) {
		pthread_join(j[t].th, NULL);
		if (j[t].rc < 0 && !rc) {
			rc = j[t].rc;
			err = j[t].err;
		}
	}
	return rc < 0 ? kbv_error(rc, "%s", err) : 0;
}

/* ---- every version (Object Lock) ---- */

/* The name kbvault gives an object of key `key` as a listing shows it: its last path
 * element, without ".pack". */
static void base_of(const char *key, char *out, size_t cap)
{
	const char *slash = strrchr(key, '/'), *b = slash ? slash + 1 : key;
	size_t len = strlen(b);
	if (len >= cap)
		len = 0; /* no name of kbvault's is that long */
	memcpy(out, b, len);
	out[len] = 0;
	if (len > 5 && !strcmp(out + len - 5, ".pack"))
		out[len - 5] = 0;
}

struct want {
	char base[112];
	size_t i; /* into the caller's names */
};

static int want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct want *)a)->base, ((const struct want *)b)->base);
}

/* The versions to delete, gathered page by page and deleted 1000 at a time. */
struct gone {
	struct s3 *s;
	enum kbv_obj kind;
	const char *const *names;
	const struct want *w;
	size_t n;
	struct kbv_buf objs; /* <Object> elements */
	size_t batch;
};

static int on_version(void *arg, const struct kbv_s3_item *it)
{
	struct gone *g = arg;
	struct want k = { 0 }, *hit;
	char key[512];
	int rc = 0;
	snprintf(k.base, sizeof k.base, "%s", it->name);
	if (!*it->version || !(hit = bsearch(&k, g->w, g->n, sizeof *g->w, want_cmp)))
		return 0;
	s3_obj_key(g->s, g->kind, g->names[hit->i], key, sizeof key);
	TRY(kbv_buf_add(&g->objs, "<Object><Key>", 13));
	TRY(xml_add_escaped(&g->objs, key));
	TRY(kbv_buf_add(&g->objs, "</Key><VersionId>", 17));
	TRY(xml_add_escaped(&g->objs, it->version));
	TRY(kbv_buf_add(&g->objs, "</VersionId></Object>", 21));
	if (++g->batch == 1000) {
		rc = delete_objects(g->s, &g->objs);
		g->objs.len = 0;
		g->batch = 0;
	}
out:
	return rc;
}

int s3_remove_versions(struct s3 *s, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct want *w = n ? calloc(n, sizeof *w) : NULL;
	struct gone g = { s, kind, names, w, n, KBV_BUF_INIT, 0 };
	char key[512], prefix[512];
	int rc = 0;
	if (!n)
		return 0;
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		s3_obj_key(s, kind, names[i], key, sizeof key);
		base_of(key, w[i].base, sizeof w[i].base);
		w[i].i = i;
	}
	qsort(w, n, sizeof *w, want_cmp);
	/* One object: the versions of its key; several: those of the kind's folder, once. */
	if (n == 1)
		s3_obj_key(s, kind, names[0], prefix, sizeof prefix);
	else
		snprintf(prefix, sizeof prefix, "%s%s", s->prefix, s3_kind_dir(kind));
	rc = s3_walk(s, prefix, 1, on_version, &g);
	if (rc == 0 && g.batch)
		rc = delete_objects(s, &g.objs);
	kbv_buf_release(&g.objs);
	free(w);
	return rc;
}
