/* Listings of S3 (s3.h): ListObjectsV2 and ListObjectVersions, page by page; the bytes of
 * `key` got beside the listing of the keys (storage.c), kept for the read that follows. */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_walk(struct s3 *s, const char *prefix, int versions, s3_item_fn fn, void *arg)
{
	char eprefix[1536], e1[3072], e2[3072], query[8000];
	struct kbv_buf body = KBV_BUF_INIT;
	struct kbv_s3_listing l = { 0 };
	int rc = 0;
	s3_uri_encode(prefix, eprefix, sizeof eprefix);
	/* Pages of the server's size (1000 keys on AWS and RGW); the tests make them small
	 * with KBVAULT_S3_LIST_PAGE to walk continuations without thousands of objects. */
	char maxkeys[32] = "";
	long pn = kbv_env_long("KBVAULT_S3_LIST_PAGE", 1, KBV_S3_LIST_PAGE_MAX, 0);
	if (pn)
		snprintf(maxkeys, sizeof maxkeys, "&max-keys=%ld", pn);
	const char *what = versions ? "ListVersionsResult" : "ListObjectsV2 result";
	do {
		/* Parameters sorted by name and encoded: curl signs the query as it is given. */
		if (versions && *l.next_key) {
			s3_uri_encode(l.next_key, e1, sizeof e1);
			s3_uri_encode(l.next_version, e2, sizeof e2);
			snprintf(query, sizeof query, "key-marker=%s%s&prefix=%s&version-id-marker=%s&versions=", e1, maxkeys,
				 eprefix, e2);
		} else if (versions) {
			snprintf(query, sizeof query, "%s%sprefix=%s&versions=", *maxkeys ? maxkeys + 1 : "",
				 *maxkeys ? "&" : "", eprefix);
		} else if (*l.token) {
			s3_uri_encode(l.token, e1, sizeof e1);
			snprintf(query, sizeof query, "continuation-token=%s&list-type=2%s&prefix=%s", e1, maxkeys, eprefix);
		} else {
			snprintf(query, sizeof query, "list-type=2%s&prefix=%s", maxkeys, eprefix);
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
			rc = kbv_error(KBV_EIO, "s3 list s3:%s/%s/%s: the reply is not a %s%s%s", s->endpoint, s->bucket,
				       prefix, what, *l.bad_why ? ": " : "", l.bad_why);
			break;
		}
		for (size_t i = 0; i < l.n && rc == 0; i++)
			rc = fn(arg, &l.items[i]);
		if (rc)
			break;
		if (l.truncated && !*(versions ? l.next_key : l.token)) {
			rc = kbv_error(KBV_EIO, "s3 list s3:%s/%s/%s: a truncated listing without where the next page starts",
				       s->endpoint, s->bucket, prefix);
			break;
		}
	} while (l.truncated);
	kbv_s3_listing_release(&l);
	kbv_buf_release(&body);
	return rc;
}

void s3_key_keep(struct s3 *s, struct kbv_buf *body)
{
	pthread_mutex_lock(&s->key_mu);
	kbv_buf_release(&s->key_body);
	s->key_body = *body;
	s->key_kept = 1;
	pthread_mutex_unlock(&s->key_mu);
	*body = (struct kbv_buf)KBV_BUF_INIT;
}

void s3_key_forget(struct s3 *s)
{
	pthread_mutex_lock(&s->key_mu);
	kbv_buf_release(&s->key_body);
	s->key_kept = 0;
	pthread_mutex_unlock(&s->key_mu);
}

int s3_key_take(struct s3 *s, struct kbv_buf *out)
{
	int kept;
	pthread_mutex_lock(&s->key_mu);
	kept = s->key_kept;
	if (kept) {
		kbv_buf_release(out);
		*out = s->key_body;
		s->key_body = (struct kbv_buf)KBV_BUF_INIT;
		s->key_kept = 0;
	}
	pthread_mutex_unlock(&s->key_mu);
	return kept;
}
