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

int s3_remove_versions(struct s3 *s, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct want *w = n ? calloc(n, sizeof *w) : NULL;
	struct kbv_buf body = KBV_BUF_INIT, objs = KBV_BUF_INIT;
	struct kbv_s3_listing l = { 0 };
	char key[512], prefix[512], eprefix[1536], ekm[3072], evm[3072], query[8000], maxkeys[32] = "";
	size_t batch = 0;
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
	s3_uri_encode(prefix, eprefix, sizeof eprefix);
	const char *page = getenv("KBVAULT_S3_LIST_PAGE");
	long pn;
	if (page && kbv_parse_long(page, 1, 1000, &pn) == 0)
		snprintf(maxkeys, sizeof maxkeys, "&max-keys=%ld", pn);
	do {
		/* Parameters sorted by name and encoded: curl signs the query as it is given. */
		if (*l.next_key) {
			s3_uri_encode(l.next_key, ekm, sizeof ekm);
			s3_uri_encode(l.next_version, evm, sizeof evm);
			snprintf(query, sizeof query, "key-marker=%s%s&prefix=%s&version-id-marker=%s&versions=", ekm, maxkeys,
				 eprefix, evm);
		} else {
			snprintf(query, sizeof query, "%s%sprefix=%s&versions=", maxkeys + (*maxkeys ? 1 : 0),
				 *maxkeys ? "&" : "", eprefix);
		}
		struct req q = { .method = "GET", .query = query, .out = &body };
		rc = s3_do(s, &q);
		if (rc == 0 && q.status != 200)
			rc = s3_fail(s, &q);
		kbv_buf_release(&q.err);
		if (rc < 0)
			break;
		rc = kbv_s3_listing_parse(&l, body.data, body.len);
		if (rc == KBV_ENOMEM) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			break;
		}
		if (rc < 0) {
			rc = kbv_error(KBV_EIO, "s3 list versions s3:%s/%s/%s: the reply is not a ListVersionsResult",
				       s->endpoint, s->bucket, prefix);
			break;
		}
		for (size_t i = 0; i < l.n && rc == 0; i++) {
			struct want k = { 0 }, *hit;
			snprintf(k.base, sizeof k.base, "%s", l.items[i].name);
			if (!*l.items[i].version || !(hit = bsearch(&k, w, n, sizeof *w, want_cmp)))
				continue;
			s3_obj_key(s, kind, names[hit->i], key, sizeof key);
			if ((rc = kbv_buf_add(&objs, "<Object><Key>", 13)) < 0 || (rc = xml_add_escaped(&objs, key)) < 0 ||
			    (rc = kbv_buf_add(&objs, "</Key><VersionId>", 17)) < 0 ||
			    (rc = xml_add_escaped(&objs, l.items[i].version)) < 0 ||
			    (rc = kbv_buf_add(&objs, "</VersionId></Object>", 21)) < 0)
				break;
			if (++batch == 1000) {
				rc = delete_versions(s, &objs);
				objs.len = 0;
				batch = 0;
			}
		}
		if (rc)
			break;
		if (l.truncated && !*l.next_key) {
			rc = kbv_error(KBV_EIO, "s3 list versions s3:%s/%s/%s: a truncated listing without a next key",
				       s->endpoint, s->bucket, prefix);
			break;
		}
	} while (l.truncated);
	if (rc == 0 && batch)
		rc = delete_versions(s, &objs);
	kbv_s3_listing_release(&l);
	kbv_buf_release(&body);
	kbv_buf_release(&objs);
	free(w);
	return rc;
}
