/* The S3 backend (s3.h): URL, credentials and bucket; listing and removal;
 * the table of operations the rest of kbvault calls through. */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s3_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	s3_obj_key(s, kind, name, key, sizeof key);
	snprintf(out, cap, "s3:%s/%s/%s", s->endpoint, s->bucket, key);
}

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
	const char *page = getenv("KBVAULT_S3_LIST_PAGE");
	long pn;
	if (page && kbv_parse_long(page, 1, 1000, &pn) == 0)
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
			rc = kbv_error(KBV_EIO, "s3 list s3:%s/%s/%s: the reply is not a %s", s->endpoint, s->bucket, prefix,
				       what);
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

struct list_to_fn {
	enum kbv_obj kind;
	kbv_be_list_fn fn;
	void *arg;
};

static int list_item(void *arg, const struct kbv_s3_item *it)
{
	struct list_to_fn *t = arg;
	return kbv_obj_name_ok(t->kind, it->name) ? t->fn(t->arg, it->name, it->size, it->mtime) : 0;
}

static int s3_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	struct s3 *s = (struct s3 *)be;
	char prefix[512];
	int rc = 0;
	if (kind == KBV_OBJ_CONFIG || kind == KBV_OBJ_KEY) {
		/* One object: is it there? Keys: `key`, then keys/<keyid> below. */
		char key[512];
		s3_obj_key(s, kind, "", key, sizeof key);
		struct req q = { .method = "HEAD", .key = key };
		rc = s3_do(s, &q);
		kbv_buf_release(&q.err);
		if (rc == 0 && q.status == 200)
			rc = fn(arg, "", q.length, 0);
		else if (rc == 0 && q.status != 404)
			rc = s3_fail(s, &q);
		if (rc || kind == KBV_OBJ_CONFIG)
			return rc;
	}
	snprintf(prefix, sizeof prefix, "%s%s", s->prefix, s3_kind_dir(kind));
	struct list_to_fn t = { kind, fn, arg };
	return s3_walk(s, prefix, 0, list_item, &t);
}

/* The server's clock as of its latest reply; before any, one HEAD of the config. */
static int s3_clock(struct kbv_backend *be, int64_t *now)
{
	struct s3 *s = (struct s3 *)be;
	if (!atomic_load(&s->server_date)) {
		char key[512];
		s3_obj_key(s, KBV_OBJ_CONFIG, "", key, sizeof key);
		struct req q = { .method = "HEAD", .key = key };
		int rc = s3_do(s, &q);
		kbv_buf_release(&q.err);
		if (rc < 0)
			return rc;
	}
	*now = atomic_load(&s->server_date);
	if (!*now)
		return kbv_error(KBV_EIO, "s3 %s: the server's replies carry no Date header: its clock cannot be read",
				 s->url);
	return 0;
}

static int s3_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
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

/* DeleteObjects (POST ?delete=) takes at most 1000 keys. Its body must carry a checksum:
 * AWS wants Content-MD5 or an x-amz-checksum-* header; the SHA-256 one is sent. */
#define S3_DELETE_BATCH 1000

static int xml_escape_add(struct kbv_buf *b, const char *s)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		switch (*s) {
		case '&': rc = kbv_buf_add(b, "&amp;", 5); break;
		case '<': rc = kbv_buf_add(b, "&lt;", 4); break;
		case '>': rc = kbv_buf_add(b, "&gt;", 4); break;
		default: rc = kbv_buf_add(b, s, 1); break;
		}
	}
	return rc;
}

static int delete_batch(struct s3 *s, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct kbv_buf body = KBV_BUF_INIT, resp = KBV_BUF_INIT;
	char sum_hdr[128], key[512];
	int rc = 0;
	TRY(kbv_buf_add(&body, "<Delete><Quiet>true</Quiet>", 27));
	for (size_t i = 0; i < n; i++) {
		s3_obj_key(s, kind, names[i], key, sizeof key);
		TRY(kbv_buf_add(&body, "<Object><Key>", 13));
		TRY(xml_escape_add(&body, key));
		TRY(kbv_buf_add(&body, "</Key></Object>", 15));
	}
	TRY(kbv_buf_add(&body, "</Delete>", 9));
	struct req q = { .method = "POST", .query = "delete=", .body = body.data, .len = body.len,
			 .hdr = { "Content-Type: application/xml" }, .out = &resp };
	s3_checksum_headers(&q, 1, sum_hdr, sizeof sum_hdr);
	rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	if (rc == 0 && memmem(resp.data ? resp.data : (uint8_t *)"", resp.len, "<Error>", 7)) {
		/* Quiet: only the keys that could not be deleted are listed */
		char ekey[512], code[64], what[1024];
		kbv_s3_xml_field(resp.data, resp.len, "Key", ekey, sizeof ekey);
		kbv_s3_xml_field(resp.data, resp.len, "Code", code, sizeof code);
		s3_req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: '%s' was not deleted: %s", what, ekey, *code ? code : "(no error code)");
	}
	kbv_buf_release(&q.err);
out:
	kbv_buf_release(&body);
	kbv_buf_release(&resp);
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

static int s3_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n)
{
	struct s3 *s = (struct s3 *)be;
	if (s->lock_secs)
		return s3_remove_versions(s, kind, names, n);
	/* the tests make batches small (KBVAULT_S3_DELETE_BATCH) to run several at once */
	size_t batch = S3_DELETE_BATCH;
	const char *b = getenv("KBVAULT_S3_DELETE_BATCH");
	long bl;
	if (b && kbv_parse_long(b, 1, S3_DELETE_BATCH, &bl) == 0)
		batch = (size_t)bl;
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

static void s3_free(struct kbv_backend *be)
{
	struct s3 *s = (struct s3 *)be;
	s3_sync(be); /* no upload outlives its backend (a failure was the caller's to see) */
	pthread_mutex_destroy(&s->up_mu);
	for (int i = 0; s->wins && i < S3_WINDOWS; i++)
		free(s->wins[i].data);
	free(s->wins);
	pthread_mutex_destroy(&s->win_mu);
	pthread_cond_destroy(&s->win_cv);
	if (s->share)
		curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->mu[i]);
	if (s->secret)
		sodium_memzero(s->secret, strlen(s->secret));
	if (s->token)
		sodium_memzero(s->token, strlen(s->token));
	free(s->url);
	free(s->endpoint);
	free(s->bucket);
	free(s->prefix);
	free(s->access);
	free(s->secret);
	free(s->token);
	free(s->ca_file);
	free(s);
}

static const struct kbv_backend_ops s3_ops = {
	.name = "s3",
	.create = s3_create,
	.append = s3_append,
	.commit = s3_commit,
	.discard = s3_discard,
	.sync = s3_sync,
	.open = s3_open,
	.open_known = s3_open_known,
	.read = s3_read,
	.close = s3_close,
	.get = s3_get,
	.list = s3_list,
	.remove = s3_remove,
	.clock = s3_clock,
	.set_retention = s3_set_retention,
	.retention = s3_retention,
	.extend = s3_extend,
	.remove_many = s3_remove_many,
	.describe = s3_describe,
	.free = s3_free,
};

int kbv_s3_url_ok(const char *url)
{
	return url && !strncmp(url, "s3:", 3);
}

/* "s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]" into its parts. */
static int parse_url(struct s3 *s, const char *url)
{
	const char *u = url + 3, *scheme_end = strstr(u, "://");
	if (!scheme_end || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)))
		return kbv_error(KBV_EINVAL, "repository '%s': an S3 URL is s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]", url);
	const char *host = scheme_end + 3, *slash = strchr(host, '/');
	if (!slash || slash == host)
		return kbv_error(KBV_EINVAL, "repository '%s': no bucket (s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX])", url);
	const char *bucket = slash + 1, *bend = strchr(bucket, '/');
	size_t blen = bend ? (size_t)(bend - bucket) : strlen(bucket);
	if (blen < 3 || blen > 63)
		return kbv_error(KBV_EINVAL, "repository '%s': a bucket name has 3 to 63 characters", url);
	for (size_t i = 0; i < blen; i++)
		if (!((bucket[i] >= 'a' && bucket[i] <= 'z') || (bucket[i] >= '0' && bucket[i] <= '9') || bucket[i] == '-' ||
		      bucket[i] == '.'))
			return kbv_error(KBV_EINVAL, "repository '%s': a bucket name has lower-case letters, digits, '-' and '.'",
					 url);
	const char *pre = bend ? bend + 1 : "";
	size_t plen = strlen(pre);
	while (plen && pre[plen - 1] == '/')
		plen--;
	for (size_t i = 0; i < plen; i++)
		if (!((pre[i] >= 'a' && pre[i] <= 'z') || (pre[i] >= 'A' && pre[i] <= 'Z') ||
		      (pre[i] >= '0' && pre[i] <= '9') || strchr("-_./", pre[i])))
			return kbv_error(KBV_EINVAL, "repository '%s': the prefix may hold letters, digits, '-', '_', '.' and '/'",
					 url);
	s->endpoint = strndup(u, (size_t)(slash - u));
	s->bucket = strndup(bucket, blen);
	s->prefix = malloc(plen + 2);
	if (!s->endpoint || !s->bucket || !s->prefix)
		return kbv_error(KBV_ENOMEM, "out of memory");
	memcpy(s->prefix, pre, plen);
	if (plen)
		s->prefix[plen++] = '/';
	s->prefix[plen] = 0;
	return 0;
}

static CURLcode curl_init_rc;
static void init_curl(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kbv_backend_s3_new(const char *url, const struct kbv_s3_opts *o, struct kbv_backend **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct s3 *s = calloc(1, sizeof *s);
	int rc = 0;
	if (!s)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->mu[i], NULL);
	pthread_mutex_init(&s->up_mu, NULL);
	pthread_mutex_init(&s->win_mu, NULL);
	pthread_cond_init(&s->win_cv, NULL);
	s->base.ops = &s3_ops;
	if (!(s->wins = calloc(S3_WINDOWS, sizeof *s->wins))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = parse_url(s, url)) < 0)
		goto fail;
	pthread_once(&once, init_curl);
	if (curl_init_rc != CURLE_OK) {
		rc = kbv_error(KBV_EINTERNAL, "libcurl failed to initialize");
		goto fail;
	}
	if (!o || !o->access_key || !*o->access_key || !o->secret_key || !*o->secret_key) {
		rc = kbv_error(KBV_EINVAL, "repository '%s': no S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
					   "or [repository] s3-credentials-file)", url);
		goto fail;
	}
	snprintf(s->region, sizeof s->region, "%s", o->region && *o->region ? o->region : "us-east-1");
	s->conns = o->connections > 0 ? (o->connections < S3_MAX_CONNS ? o->connections : S3_MAX_CONNS)
				      : S3_DEFAULT_CONNS;
	s->base.parallel = (unsigned)s->conns;
	snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", s->region);
	s->url = strdup(url);
	s->access = strdup(o->access_key);
	s->secret = strdup(o->secret_key);
	s->token = o->session_token && *o->session_token ? strdup(o->session_token) : NULL;
	s->ca_file = o->ca_file && *o->ca_file ? strdup(o->ca_file) : NULL;
	s->share = curl_share_init();
	if (!s->url || !s->access || !s->secret || (o->session_token && *o->session_token && !s->token) ||
	    (o->ca_file && *o->ca_file && !s->ca_file) || !s->share) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto fail;
	}
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, s3_share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, s3_share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	*out = &s->base;
	return 0;
fail:
	s3_free(&s->base);
	return rc;
}

static int make_bucket(struct s3 *s, int lock)
{
	/* Outside us-east-1 the region goes in the body (AWS refuses a bucket whose
	 * LocationConstraint is not the region the request is signed for). */
	char body[256] = "";
	if (strcmp(s->region, "us-east-1"))
		snprintf(body, sizeof body,
			 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
			 s->region);
	struct req q = { .method = "PUT", .body = body, .len = strlen(body) };
	if (lock)
		q.hdr[0] = "x-amz-bucket-object-lock-enabled: true";
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 409 && !strcmp(q.code, "BucketAlreadyOwnedByYou"))
		q.status = 200;
	if (rc == 0 && !strcmp(q.code, "InvalidLocationConstraint")) {
		char what[1024];
		s3_req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: HTTP %ld InvalidLocationConstraint (the server does not serve region '%s': "
					"set [repository] s3-region or AWS_DEFAULT_REGION to its region)",
			       what, q.status, s->region);
	} else if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	if (rc < 0 || !lock)
		return rc;
	/* A bucket that was there already: Object Lock can only be enabled when a bucket is
	 * created (AWS since 2023 also later, with versioning; RGW 16 not), so ask. */
	struct kbv_buf conf = KBV_BUF_INIT;
	char enabled[32];
	struct req g = { .method = "GET", .query = "object-lock=", .out = &conf };
	rc = s3_do(s, &g);
	kbv_s3_xml_field(conf.data, conf.len, "ObjectLockEnabled", enabled, sizeof enabled);
	if (rc == 0 && g.status == 404 && !strcmp(g.code, "ObjectLockConfigurationNotFoundError"))
		g.status = 200;
	if (rc == 0 && g.status != 200)
		rc = s3_fail(s, &g);
	else if (rc == 0 && strcmp(enabled, "Enabled"))
		rc = kbv_error(KBV_EINVAL, "bucket s3:%s/%s exists without Object Lock; --object-lock-days needs a bucket "
					   "created with it: use a new bucket",
			       s->endpoint, s->bucket);
	kbv_buf_release(&g.err);
	kbv_buf_release(&conf);
	return rc;
}

int kbv_backend_s3_make_bucket(struct kbv_backend *be)
{
	if (be->ops != &s3_ops)
		return 0;
	return make_bucket((struct s3 *)be, 0);
}

int kbv_backend_s3_make_lock_bucket(struct kbv_backend *be)
{
	if (be->ops != &s3_ops)
		return kbv_error(KBV_EINVAL, "Object Lock needs a repository on object storage (s3:...)");
	return make_bucket((struct s3 *)be, 1);
}
