/* The S3 backend (s3.h): URL, credentials and bucket; listing;
 * the table of operations the rest of kbvault calls through. */
#include "s3.h"
#include "xml.h"
#include "kbv/beside.h"
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

/* Is the one object of `kind` (config, or the key called `key`) there? 1 with its length,
 * 0 when it is not, or an error. */
static int head_one(struct s3 *s, enum kbv_obj kind, uint64_t *len)
{
	char key[512];
	s3_obj_key(s, kind, "", key, sizeof key);
	struct req q = { .method = "HEAD", .key = key };
	int rc = s3_do(s, &q);
	kbv_buf_release(&q.err);
	if (rc == 0 && q.status == 200) {
		*len = q.length;
		return 1;
	}
	if (rc == 0 && q.status != 404)
		rc = s3_fail(s, &q);
	return rc;
}

/* The GET of `key` (1 with its bytes in `body`, 0 when there is none, or an error): every
 * command that lists the keys reads `key` next (kbv_repo_read_keys), so its bytes come with
 * the listing instead of a HEAD now and a GET one round trip later. */
struct key_got {
	struct s3 *s;
	struct kbv_buf body;
};

static int get_key(void *arg)
{
	struct key_got *g = arg;
	char key[512];
	s3_obj_key(g->s, KBV_OBJ_KEY, "", key, sizeof key);
	struct req q = { .method = "GET", .key = key, .out = &g->body };
	int rc = s3_do(g->s, &q);
	if (rc == 0 && q.status == 200)
		rc = 1;
	else if (rc == 0 && q.status != 404)
		rc = s3_fail(g->s, &q);
	kbv_buf_release(&q.err);
	return rc;
}

/* The items listed under keys/ (a kbv_buf of struct kbv_s3_item), kept until the GET of
 * `key` has answered. */
static int keep_key_name(void *arg, const struct kbv_s3_item *it)
{
	if (!kbv_obj_name_ok(KBV_OBJ_KEY, it->name) || !it->name[0])
		return 0;
	return kbv_buf_add(arg, it, sizeof *it) < 0 ? kbv_error(KBV_ENOMEM, "out of memory") : 0;
}

/* Keys: `key`, then keys/<keyid>. The GET of `key` and the listing of keys/ go side by
 * side (every command opens the keys first, and each is a round trip); the callbacks come
 * in the order of one after the other, and so do the errors (the GET's first). The bytes
 * of `key` are kept for the one s3_get of it that follows (s3_key_take). */
static int list_keys(struct s3 *s, kbv_be_list_fn fn, void *arg)
{
	char prefix[512];
	struct key_got g = { .s = s, .body = KBV_BUF_INIT };
	struct kbv_buf names = KBV_BUF_INIT;
	struct kbv_beside get;
	s3_key_forget(s);
	kbv_beside_start(&get, get_key, &g);
	snprintf(prefix, sizeof prefix, "%s%s", s->prefix, s3_kind_dir(KBV_OBJ_KEY));
	int rc = s3_walk(s, prefix, 0, keep_key_name, &names);
	int there = kbv_beside_wait(&get, 0); /* its error before the listing's */
	if (there < 0)
		rc = there;
	if (rc == 0 && there == 1) {
		uint64_t len = g.body.len;
		s3_key_keep(s, &g.body);
		rc = fn(arg, "", len, 0);
	}
	for (size_t off = 0; rc == 0 && off < names.len; off += sizeof(struct kbv_s3_item)) {
		struct kbv_s3_item it;
		memcpy(&it, names.data + off, sizeof it);
		rc = fn(arg, it.name, it.size, it.mtime);
	}
	kbv_buf_release(&g.body);
	kbv_buf_release(&names);
	return rc;
}

static int s3_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	struct s3 *s = (struct s3 *)be;
	char prefix[512];
	if (kind == KBV_OBJ_KEY)
		return list_keys(s, fn, arg);
	if (kind == KBV_OBJ_CONFIG) { /* one object: is it there? */
		uint64_t len = 0;
		int rc = head_one(s, kind, &len);
		return rc == 1 ? fn(arg, "", len, 0) : rc;
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

static void s3_free(struct kbv_backend *be)
{
	struct s3 *s = (struct s3 *)be;
	s3_sync(be); /* no upload outlives its backend (a failure was the caller's to see) */
	pthread_mutex_lock(&s->win_mu); /* nor a window fetched ahead */
	while (s->ahead_running)
		pthread_cond_wait(&s->win_cv, &s->win_mu);
	pthread_mutex_unlock(&s->win_mu);
	pthread_mutex_destroy(&s->up_mu);
	for (int i = 0; s->wins && i < S3_WINDOWS; i++)
		free(s->wins[i].data);
	free(s->wins);
	pthread_mutex_destroy(&s->win_mu);
	pthread_mutex_destroy(&s->key_mu);
	kbv_buf_release(&s->key_body);
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
	.read_then = s3_read_then,
	.read = s3_read,
	.read_once = s3_read_once,
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
	pthread_mutex_init(&s->key_mu, NULL);
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
