/* Object Lock on S3 (s3.h; format/repository.md "Object Lock"): what is written is
 * retained in COMPLIANCE mode (write.c adds the headers), its retention read and extended
 * here, and removal deletes every version of an object, since a plain DELETE in a
 * versioned bucket only hides the object behind a delete marker and frees nothing. */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_set_retention(struct kbv_backend *be, int64_t seconds)
{
	if (seconds < 0)
		return kbv_error(KBV_EINVAL, "a retention of %lld seconds", (long long)seconds);
	((struct s3 *)be)->lock_secs = seconds;
	return 0;
}

int s3_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	s3_obj_key(s, kind, name, key, sizeof key);
	struct req q = { .method = "HEAD", .key = key };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	if (rc == 0)
		*until = q.lock_until;
	kbv_buf_release(&q.err);
	return rc;
}

int s3_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until)
{
	struct s3 *s = (struct s3 *)be;
	char key[512], t[40], body[256], sums[160];
	s3_obj_key(s, kind, name, key, sizeof key);
	s3_iso_time(until, t, sizeof t);
	int n = snprintf(body, sizeof body,
			 "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>"
			 "<RetainUntilDate>%s</RetainUntilDate></Retention>",
			 t);
	struct req q = { .method = "PUT", .key = key, .query = "retention=", .body = body, .len = (size_t)n,
			 .hdr = { "Content-Type: application/xml" } };
	s3_checksum_headers(&q, 1, sums, sizeof sums);
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200 && q.status != 204)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}

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
	char base[80];
	size_t i; /* into the caller's names */
};

static int want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct want *)a)->base, ((const struct want *)b)->base);
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

/* One DeleteObjects request of (key, version) pairs in `body` (<Object> elements). */
static int delete_versions(struct s3 *s, const struct kbv_buf *objs)
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
		char ekey[512], ever[256], code[64], what[1024];
		kbv_s3_xml_field(resp.data, resp.len, "Key", ekey, sizeof ekey);
		kbv_s3_xml_field(resp.data, resp.len, "VersionId", ever, sizeof ever);
		kbv_s3_xml_field(resp.data, resp.len, "Code", code, sizeof code);
		s3_req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: version %s of '%s' was not deleted: %s%s", what, ever, ekey,
			       *code ? code : "(no error code)",
			       !strcmp(code, "AccessDenied") ? " (retained by Object Lock, or not allowed to this user)" : "");
	}
	kbv_buf_release(&q.err);
out:
	kbv_buf_release(&body);
	kbv_buf_release(&resp);
	return rc;
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
		rc = delete_versions(g->s, &g->objs);
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
		rc = delete_versions(s, &g.objs);
	kbv_buf_release(&g.objs);
	free(w);
	return rc;
}
