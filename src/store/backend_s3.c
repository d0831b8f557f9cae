/* The S3 backend: a repository in a bucket of S3-compatible object storage (AWS S3, Ceph
 * RGW, MinIO, ...), reached with libcurl, path-style, signed with AWS Signature Version 4
 * (curl's CURLOPT_AWS_SIGV4 with the payload's SHA-256 sent as x-amz-content-sha256,
 * which curl 7.88 does not add itself).
 *
 * Objects keep the local directory's names under the repository's prefix (config, key,
 * data/<2 hex>/<id>.pack, snapshots/<id>, records/<id>; format/repository.md). A PUT is
 * atomic: an object is there whole or not at all, so an object being written is a buffer
 * in memory (a pack: at most the repository's pack size) sent by kbv_be_commit();
 * create-if-absent is If-None-Match: *. Requests that fail in a way that may pass
 * (connection refused or reset, time-outs, 500, 502, 503 SlowDown, 504) are retried
 * with exponential backoff and jitter, a bounded number of times; the rest fail at once
 * with the operation, the object and the server's own error code. Credentials are never
 * part of a URL or a message.
 *
 * Threads: every request uses its own curl handle; connections are shared through a
 * curl share object under a mutex, so readers on several threads are fine. */
#include "backend_impl.h"
#include "s3xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S3_ATTEMPTS 6       /* tries of one request when its failures may pass */
#define KBV_STR_(x) #x
#define KBV_STR(x) KBV_STR_(x)
#define S3_ERRBODY (8 << 10) /* bytes of an error reply kept for its code */

#define S3_MAX_CONNS 32
#define S3_DEFAULT_CONNS 4
struct upload;

struct s3 {
	struct kbv_backend base;
	char *url;      /* as given, "s3:http://host:port/bucket/prefix", for messages */
	char *endpoint; /* "http://host:port" */
	char *bucket;
	char *prefix;   /* "" or "some/path/" */
	char *access, *secret, *token, *ca_file;
	char sigv4[96]; /* "aws:amz:REGION:s3" */
	char region[64];
	/* KBV_COMMIT_ASYNC: packs being uploaded by their own threads, oldest first */
	int conns;
	pthread_mutex_t up_mu;
	struct upload *up[S3_MAX_CONNS];
	size_t nup;
	int up_rc;             /* the first failed upload: every later sync fails too, so */
	char up_err[1024];     /* that no writer indexes a pack that is not there */
	CURLSH *share;
	pthread_mutex_t mu[CURL_LOCK_DATA_LAST]; /* one per kind of shared data: curl nests them */
	/* Read windows shared by every reader of this backend (s3_read): a restore's workers
	 * walk neighbouring blobs, and each fetching its own window GETs the same bytes again. */
	pthread_mutex_t win_mu;
	pthread_cond_t win_cv;
	struct s3_win *wins;
	uint64_t win_clock;
};

/* One shared window: bytes [off, off + len) of object `key`; `busy` while its GET runs
 * (then [off, off + want) is what is coming). */
#define S3_WINDOWS 8
struct s3_win {
	char key[512];
	uint64_t off;
	size_t len, want;
	uint64_t used;
	int busy;
	uint8_t *data;
};

/* Requests sent by this process, every attempt counted (kbv_s3_requests). */
static _Atomic uint64_t requests_sent[KBV_REQ_KINDS], requests_retried;

struct s3_wr {
	struct kbv_be_wr base;
	enum kbv_obj kind;
	char key[512];
	struct kbv_buf data;
};

/* Reads go through windows of S3_WINDOW bytes shared by the backend's readers (struct
 * s3_win): readers walk a pack's blobs in order, so one ranged GET serves many reads. */
#define S3_WINDOW (2u << 20)

struct s3_rd {
	struct kbv_be_rd base;
	char key[512];
	uint64_t size;
};

/* One request and what came back. */
struct req {
	const char *method; /* GET, PUT, HEAD, DELETE */
	const char *key;    /* below the bucket, prefix included; NULL: the bucket itself */
	const char *query;  /* canonical (sorted, encoded) or NULL */
	const void *body;
	size_t len;
	const char *hdr[4]; /* extra headers: If-None-Match, Range, checksums */
	/* Response body: into dst (exactly dst_cap bytes expected) or into out. */
	void *dst;
	size_t dst_cap, dst_len;
	struct kbv_buf *out;
	size_t sent;
	long status;
	uint64_t length; /* HEAD: Content-Length */
	struct kbv_buf err;
	char code[64]; /* the server's error code ("NoSuchKey") */
	int retried;   /* an earlier try got no reply: a PUT may have been applied already */
	CURL *curl;
	int acked; /* TCP_QUICKACK asked for this reply (on_header) */
};

static const char *const kind_dir[KBV_OBJ_KINDS] = { "", "", "data/", "snapshots/", "records/", "idx/" };

static void obj_key(const struct s3 *s, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	switch (kind) {
	case KBV_OBJ_CONFIG: snprintf(out, cap, "%sconfig", s->prefix); break;
	case KBV_OBJ_KEY:
		if (*name)
			snprintf(out, cap, "%skeys/%s", s->prefix, name);
		else
			snprintf(out, cap, "%skey", s->prefix);
		break;
	case KBV_OBJ_PACK: snprintf(out, cap, "%sdata/%.2s/%s.pack", s->prefix, name, name); break;
	default: snprintf(out, cap, "%s%s%s", s->prefix, kind_dir[kind], name); break;
	}
}

static void s3_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	obj_key(s, kind, name, key, sizeof key);
	snprintf(out, cap, "s3:%s/%s/%s", s->endpoint, s->bucket, key);
}

/* RFC 3986 unreserved characters stay, everything else is %XX (SigV4's UriEncode). */
static void uri_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < cap; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '_' || *p == '.' || *p == '~') {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = 0;
}

/* A server that writes a reply's head and its body in two sends without TCP_NODELAY (Ceph
 * radosgw's beast frontend does) holds the body back until the head is acknowledged, and
 * Linux delays that ACK by up to 40 ms: 40 ms on every small reply. Asking the kernel for
 * an immediate ACK as a head arrives sends it at once (docs/benchmarks.md, "Metadata
 * cache": a LIST went from ~44 ms to ~3 ms). curl does not say which socket an easy handle
 * is reading (CURLINFO_ACTIVESOCKET is set only once a transfer is done), so the open
 * sockets are tracked here and each gets the request; an extra ACK is harmless. */
#define S3_SOCKS 64
static pthread_mutex_t socks_mu = PTHREAD_MUTEX_INITIALIZER;
static curl_socket_t socks[S3_SOCKS];
static size_t nsocks;

static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	(void)arg;
	if (purpose == CURLSOCKTYPE_IPCXN) {
		pthread_mutex_lock(&socks_mu);
		if (nsocks < S3_SOCKS)
			socks[nsocks++] = fd;
		pthread_mutex_unlock(&socks_mu);
	}
	return CURL_SOCKOPT_OK;
}

static int on_close(void *arg, curl_socket_t fd)
{
	(void)arg;
	pthread_mutex_lock(&socks_mu);
	for (size_t i = 0; i < nsocks; i++)
		if (socks[i] == fd) {
			socks[i] = socks[--nsocks];
			break;
		}
	pthread_mutex_unlock(&socks_mu);
	return close(fd);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *q = arg;
	(void)p;
	if (!q->acked) {
		int one = 1;
		q->acked = 1;
		pthread_mutex_lock(&socks_mu);
		for (size_t i = 0; i < nsocks; i++)
			(void)setsockopt(socks[i], IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
		pthread_mutex_unlock(&socks_mu);
	}
	return size * nmemb;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *q = arg;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(q->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300) { /* an error reply: keep its start for the code */
		size_t keep = q->err.len < S3_ERRBODY ? S3_ERRBODY - q->err.len : 0;
		if (kbv_buf_add(&q->err, p, n < keep ? n : keep) < 0)
			return 0;
		return n;
	}
	if (q->dst) {
		if (q->dst_len + n > q->dst_cap)
			return 0; /* more than asked for: fail the transfer */
		memcpy((char *)q->dst + q->dst_len, p, n);
		q->dst_len += n;
		return n;
	}
	if (q->out && kbv_buf_add(q->out, p, n) < 0)
		return 0;
	return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *q = arg;
	size_t n = size * nmemb, left = q->len - q->sent;
	if (n > left)
		n = left;
	if (n)
		memcpy(p, (const char *)q->body + q->sent, n);
	q->sent += n;
	return n;
}

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *arg)
{
	(void)c;
	(void)a;
	pthread_mutex_lock(&((struct s3 *)arg)->mu[d]);
}

static void share_unlock(CURL *c, curl_lock_data d, void *arg)
{
	(void)c;
	pthread_mutex_unlock(&((struct s3 *)arg)->mu[d]);
}

static int transient_status(long st, const char *code)
{
	return st == 500 || st == 502 || st == 503 || st == 504 || st == 429 ||
	       (st == 400 && !strcmp(code, "RequestTimeout"));
}

static int transient_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
		return 1;
	default:
		return 0;
	}
}

/* "s3 PUT s3:http://host:port/bucket/key": the operation and the object, for messages. */
static void req_what(const struct s3 *s, const struct req *q, char *out, size_t cap)
{
	snprintf(out, cap, "s3 %s s3:%s/%s%s%s", q->method, s->endpoint, s->bucket, q->key ? "/" : "",
		 q->key ? q->key : "");
}

/* Perform q: 0 with q->status set (any HTTP status: the caller judges it), or KBV_EIO when
 * no reply came (after the retries) or transient replies persisted. */
static int s3_do(struct s3 *s, struct req *q)
{
	char url[2048], what[1024], sha_hdr[96], tok_hdr[4096];
	unsigned char sha[crypto_hash_sha256_BYTES];
	char shahex[2 * crypto_hash_sha256_BYTES + 1];
	crypto_hash_sha256(sha, q->body ? q->body : (const void *)"", q->body ? q->len : 0);
	sodium_bin2hex(shahex, sizeof shahex, sha, sizeof sha);
	snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s", shahex);
	snprintf(url, sizeof url, "%s/%s%s%s%s%s", s->endpoint, s->bucket, q->key ? "/" : "", q->key ? q->key : "",
		 q->query ? "?" : "", q->query ? q->query : "");
	req_what(s, q, what, sizeof what);
	CURLcode cc = CURLE_OK;
	char cerr[CURL_ERROR_SIZE];
	for (int attempt = 0; attempt < S3_ATTEMPTS; attempt++) {
		if (attempt) {
			/* 0.1 s, 0.2 s, ... up to 5 s, each scaled by a random 0.5..1.0 */
			double d = 0.1 * (double)(1u << (attempt - 1));
			if (d > 5)
				d = 5;
			d *= 0.5 + 0.5 * (double)randombytes_uniform(1000) / 1000.0;
			struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
			nanosleep(&ts, NULL);
		}
		enum kbv_be_req kind = !strcmp(q->method, "PUT")      ? KBV_REQ_PUT
				       : !strcmp(q->method, "HEAD")   ? KBV_REQ_HEAD
				       : !strcmp(q->method, "DELETE") ? KBV_REQ_DELETE
				       : !strcmp(q->method, "POST")   ? KBV_REQ_DELETE /* DeleteObjects */
				       : q->query && strstr(q->query, "list-type=") ? KBV_REQ_LIST
										    : KBV_REQ_GET;
		atomic_fetch_add(&requests_sent[kind], 1);
		if (attempt)
			atomic_fetch_add(&requests_retried, 1);
		q->status = 0;
		q->dst_len = 0;
		q->sent = 0;
		q->code[0] = 0;
		q->err.len = 0;
		if (q->out)
			q->out->len = 0;
		struct curl_slist *h = NULL, *hn;
		CURL *c = curl_easy_init();
		if (!c)
			return kbv_error(KBV_ENOMEM, "%s: curl_easy_init failed", what);
		q->curl = c;
		int bad = !(h = curl_slist_append(h, sha_hdr));
		if (!bad && s->token) {
			snprintf(tok_hdr, sizeof tok_hdr, "x-amz-security-token: %s", s->token);
			bad = !(hn = curl_slist_append(h, tok_hdr)) || !(h = hn);
		}
		for (size_t i = 0; !bad && i < sizeof q->hdr / sizeof *q->hdr && q->hdr[i]; i++)
			bad = !(hn = curl_slist_append(h, q->hdr[i])) || !(h = hn);
		if (bad) {
			curl_slist_free_all(h);
			curl_easy_cleanup(c);
			return kbv_error(KBV_ENOMEM, "out of memory");
		}
		cerr[0] = 0;
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_SHARE, s->share);
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, s->access);
		curl_easy_setopt(c, CURLOPT_PASSWORD, s->secret);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
		/* An empty "Expect:" header would be signed by curl 7.88 without being sent (403
		 * SignatureDoesNotMatch): keep 100-continue, but do not wait long for it. */
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
		q->acked = 0;
		curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
		curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, on_close);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
		if (s->ca_file)
			curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
		if (!strcmp(q->method, "PUT")) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(c, CURLOPT_READDATA, q);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->len);
		} else if (!strcmp(q->method, "POST")) {
			curl_easy_setopt(c, CURLOPT_POST, 1L);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
		} else if (!strcmp(q->method, "HEAD")) {
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		} else if (strcmp(q->method, "GET")) {
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
		}
		cc = curl_easy_perform(c);
		if (cc == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
			curl_off_t cl = -1;
			curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
			q->length = cl > 0 ? (uint64_t)cl : 0;
			kbv_s3_xml_field(q->err.data, q->err.len, "Code", q->code, sizeof q->code);
		} else if (cc == CURLE_WRITE_ERROR && q->dst && q->dst_len + 1 > q->dst_cap) {
			curl_slist_free_all(h);
			curl_easy_cleanup(c);
			return kbv_error(KBV_ECORRUPT, "%s: the server sent more bytes than asked for", what);
		}
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		q->curl = NULL;
		if (cc == CURLE_OK && !transient_status(q->status, q->code))
			return 0;
		if (cc != CURLE_OK && !transient_curl(cc))
			break;
		q->retried |= cc != CURLE_OK;
	}
	if (cc != CURLE_OK)
		return kbv_error(KBV_EIO, "%s: %s%s", what, *cerr ? cerr : curl_easy_strerror(cc),
				 transient_curl(cc) ? " (after " KBV_STR(S3_ATTEMPTS) " attempts)" : "");
	return kbv_error(KBV_EIO, "%s: HTTP %ld %s, still after %d attempts", what, q->status,
			 *q->code ? q->code : "(no error code)", S3_ATTEMPTS);
}

/* The error for a reply that is not a success. */
static int s3_fail(struct s3 *s, const struct req *q)
{
	char what[1024];
	req_what(s, q, what, sizeof what);
	const char *code = *q->code ? q->code : "(no error code)";
	if (q->status == 404)
		return kbv_error(KBV_ENOTFOUND, "%s: %s", what, !strcmp(q->method, "HEAD") && !*q->code ? "NotFound" : code);
	if (q->status == 412)
		return kbv_error(KBV_EEXIST, "%s: the object exists already (%s)", what, code);
	if (q->status == 403 && (!*q->code || !strcmp(code, "SignatureDoesNotMatch") || !strcmp(code, "InvalidAccessKeyId")))
		return kbv_error(KBV_EIO, "%s: HTTP 403 %s (check the access key and secret)", what,
				 *q->code ? code : "Forbidden");
	if (!strcmp(code, "RequestTimeTooSkewed"))
		return kbv_error(KBV_EIO, "%s: HTTP %ld %s (this machine's clock is off; S3 allows 15 minutes)", what,
				 q->status, code);
	return kbv_error(KBV_EIO, "%s: HTTP %ld %s", what, q->status, code);
}

static int s3_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out)
{
	struct s3_wr *w = calloc(1, sizeof *w);
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	w->base.be = be;
	w->kind = kind;
	obj_key((struct s3 *)be, kind, name, w->key, sizeof w->key);
	*out = &w->base;
	return 0;
}

static int s3_append(struct kbv_be_wr *bw, const void *p, size_t n)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	return kbv_buf_add(&w->data, p, n);
}

/* One PUT of a whole object (create-if-absent with KBV_PUT_EXCL). */
static int put_object(struct s3 *s, const char *key, const struct kbv_buf *data, unsigned flags)
{
	struct req q = { .method = "PUT", .key = key, .body = data->data, .len = data->len };
	if (flags & KBV_PUT_EXCL)
		q.hdr[0] = "If-None-Match: *";
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 412 && q.retried) {
		/* The connection broke during an earlier try: that PUT may have been applied, and
		 * this one found its object. Ours when it holds exactly our bytes. */
		struct kbv_buf got = KBV_BUF_INIT;
		struct req g = { .method = "GET", .key = key, .out = &got };
		if (s3_do(s, &g) == 0 && g.status == 200 && got.len == data->len &&
		    (!got.len || !memcmp(got.data, data->data, got.len)))
			q.status = 200;
		kbv_buf_release(&g.err);
		kbv_buf_release(&got);
	}
	if (rc == 0 && (q.status < 200 || q.status >= 300))
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}

/* A pack uploaded by its own thread (KBV_COMMIT_ASYNC). */
struct upload {
	pthread_t th;
	struct s3 *s;
	char key[512];
	struct kbv_buf data;
	int rc;
	char err[1024]; /* its message: errors are per thread */
};

static void *upload_main(void *arg)
{
	struct upload *u = arg;
	u->rc = put_object(u->s, u->key, &u->data, 0);
	if (u->rc < 0)
		snprintf(u->err, sizeof u->err, "%s", kbv_errmsg());
	kbv_buf_release(&u->data);
	return NULL;
}

/* Wait for the oldest upload (s->up_mu held). A failure is kept for every later sync and
 * raised in this thread. */
static int join_oldest(struct s3 *s)
{
	struct upload *u = s->up[0];
	memmove(s->up, s->up + 1, (s->nup - 1) * sizeof *s->up);
	s->nup--;
	pthread_join(u->th, NULL);
	if (u->rc < 0 && s->up_rc == 0) {
		s->up_rc = u->rc;
		snprintf(s->up_err, sizeof s->up_err, "%s", u->err);
	}
	free(u);
	return s->up_rc < 0 ? kbv_error(s->up_rc, "%s", s->up_err) : 0;
}

static int s3_sync(struct kbv_backend *be)
{
	struct s3 *s = (struct s3 *)be;
	int rc = 0;
	pthread_mutex_lock(&s->up_mu);
	while (s->nup) {
		int r = join_oldest(s);
		if (r < 0 && rc == 0)
			rc = r;
	}
	if (rc == 0 && s->up_rc < 0)
		rc = kbv_error(s->up_rc, "%s", s->up_err);
	pthread_mutex_unlock(&s->up_mu);
	return rc;
}

static int s3_commit(struct kbv_be_wr *bw, unsigned flags)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	struct s3 *s = (struct s3 *)bw->be;
	int rc = 0;
	if (!(flags & KBV_COMMIT_ASYNC) || (flags & KBV_PUT_EXCL) || s->conns < 2)
		return put_object(s, w->key, &w->data, flags & KBV_PUT_EXCL);
	/* At most `conns` uploads at a time, each holding its pack: memory stays bounded. */
	pthread_mutex_lock(&s->up_mu);
	while (s->nup >= (size_t)s->conns) {
		int r = join_oldest(s);
		if (r < 0 && rc == 0)
			rc = r;
	}
	if (rc == 0 && s->up_rc < 0)
		rc = kbv_error(s->up_rc, "%s", s->up_err);
	struct upload *u = rc == 0 ? calloc(1, sizeof *u) : NULL;
	if (rc == 0 && !u)
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	if (rc == 0) {
		u->s = s;
		snprintf(u->key, sizeof u->key, "%s", w->key);
		u->data = w->data; /* taken over: the writer's discard frees nothing more */
		memset(&w->data, 0, sizeof w->data);
		if (pthread_create(&u->th, NULL, upload_main, u) != 0) {
			rc = put_object(s, u->key, &u->data, 0); /* no thread: upload it here */
			kbv_buf_release(&u->data);
			free(u);
		} else {
			s->up[s->nup++] = u;
		}
	}
	pthread_mutex_unlock(&s->up_mu);
	return rc;
}

static void s3_discard(struct kbv_be_wr *bw)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	kbv_buf_release(&w->data);
	free(w);
}

/* A reader of an object whose size is known (from the index): no request yet. */
static int s3_open_known(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t size,
			 struct kbv_be_rd **out)
{
	struct s3 *s = (struct s3 *)be;
	struct s3_rd *r = calloc(1, sizeof *r);
	if (!r)
		return kbv_error(KBV_ENOMEM, "out of memory");
	r->base.be = be;
	obj_key(s, kind, name, r->key, sizeof r->key);
	r->size = size;
	*out = &r->base;
	return 0;
}

/* A reader of an object, its size from a HEAD (KBV_ENOTFOUND when it is missing). */
static int s3_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out, uint64_t *size)
{
	struct s3 *s = (struct s3 *)be;
	struct kbv_be_rd *rd = NULL;
	int rc = s3_open_known(be, kind, name, 0, &rd);
	if (rc < 0)
		return rc;
	struct s3_rd *r = (struct s3_rd *)rd;
	struct req q = { .method = "HEAD", .key = r->key };
	rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->size = q.length;
	if (size)
		*size = r->size;
	*out = rd;
	return 0;
}

/* A whole object with one GET (manifests, keys, index objects: small, read whole). */
static int s3_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	obj_key(s, kind, name, key, sizeof key);
	struct req q = { .method = "GET", .key = key, .out = out };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	if (rc < 0)
		out->len = 0;
	return rc;
}

static int get_range(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off);
static int get_range_upto(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off, size_t need,
			  size_t *got);

/* The shared window of `key` holding [off, off + n), or the one being fetched that will;
 * under win_mu. */
static struct s3_win *win_find(struct s3 *s, const char *key, uint64_t off, size_t n, int busy)
{
	for (int i = 0; i < S3_WINDOWS; i++) {
		struct s3_win *w = &s->wins[i];
		size_t len = busy ? w->want : w->len;
		if (w->busy == busy && w->key[0] && off >= w->off && off + n <= w->off + len && !strcmp(w->key, key))
			return w;
	}
	return NULL;
}

/* Where a new window for a read at `off` begins and ends: on the grid of S3_WINDOW-sized
 * blocks, so that readers arriving in any order ask for the same ranges, and never over
 * bytes another window of the object holds or is fetching, so that no byte is fetched
 * twice while windows last. A read that reaches the object's end (a trailer) fetches only
 * what it asks for. Under win_mu; the window covers at least off. */
static void win_span(struct s3 *s, struct s3_rd *r, uint64_t off, size_t n, uint64_t *start, uint64_t *end)
{
	uint64_t a = off / S3_WINDOW * S3_WINDOW;
	if (off + n == r->size)
		a = off;
	uint64_t b = a + S3_WINDOW < r->size ? a + S3_WINDOW : r->size;
	for (int i = 0; i < S3_WINDOWS; i++) {
		struct s3_win *w = &s->wins[i];
		uint64_t wend = w->off + (w->busy ? w->want : w->len);
		if (!w->key[0] || wend == w->off || strcmp(w->key, r->key))
			continue;
		if (wend > a && wend <= off)
			a = wend;
		if (w->off > off && w->off < b)
			b = w->off;
	}
	*start = a;
	*end = b;
}

/* One piece of a read, [off, off + n), inside one window: copied from the window that
 * holds it, else waited for while another reader fetches it, else fetched into a new one. */
static int win_read(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off, size_t *done)
{
	pthread_mutex_lock(&s->win_mu);
	struct s3_win *w;
	for (;;) {
		if ((w = win_find(s, r->key, off, 1, 0)) != NULL) {
			size_t k = w->off + w->len - off < n ? (size_t)(w->off + w->len - off) : n;
			memcpy(p, w->data + (off - w->off), k);
			w->used = ++s->win_clock;
			pthread_mutex_unlock(&s->win_mu);
			*done = k;
			return 0;
		}
		if (!win_find(s, r->key, off, 1, 1))
			break;
		pthread_cond_wait(&s->win_cv, &s->win_mu);
	}
	for (int i = 0; i < S3_WINDOWS; i++) /* the least recently used idle one */
		if (!s->wins[i].busy && (!w || s->wins[i].used < w->used))
			w = &s->wins[i];
	if (!w) { /* every window is being fetched: this read goes alone */
		pthread_mutex_unlock(&s->win_mu);
		*done = n;
		return get_range(s, r, p, n, off);
	}
	uint64_t a, b;
	w->key[0] = 0; /* the window chosen is no longer what it held */
	win_span(s, r, off, n, &a, &b);
	snprintf(w->key, sizeof w->key, "%s", r->key);
	w->off = a;
	w->want = (size_t)(b - a);
	w->len = 0;
	w->busy = 1;
	pthread_mutex_unlock(&s->win_mu);
	size_t need = off + n < b ? (size_t)(off + n - a) : w->want, got = 0;
	int rc = 0;
	if (!w->data && !(w->data = malloc(S3_WINDOW)))
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	/* The window may reach past the object's real end when its size came from the index
	 * (kbv_be_open_known) and the object is shorter: the server sends what there is, and
	 * only the bytes asked for must have come. */
	if (rc == 0)
		rc = get_range_upto(s, r, w->data, w->want, a, need, &got);
	pthread_mutex_lock(&s->win_mu);
	size_t k = (size_t)(a + need - off);
	if (rc == 0)
		memcpy(p, w->data + (off - a), k);
	w->len = rc == 0 ? got : 0;
	if (rc < 0)
		w->key[0] = 0;
	w->busy = 0;
	w->used = ++s->win_clock;
	pthread_cond_broadcast(&s->win_cv);
	pthread_mutex_unlock(&s->win_mu);
	*done = k;
	return rc;
}

static int s3_read(struct kbv_be_rd *br, void *p, size_t n, uint64_t off)
{
	struct s3_rd *r = (struct s3_rd *)br;
	struct s3 *s = (struct s3 *)br->be;
	if (n == 0)
		return 0;
	if (off + n > r->size)
		return kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated: %llu bytes, a read of %zu at %llu",
				 s->bucket, r->key, (unsigned long long)r->size, n, (unsigned long long)off);
	if (n >= S3_WINDOW)
		return get_range(s, r, p, n, off);
	/* Piece by piece, each inside one shared window. */
	while (n > 0) {
		size_t k;
		int rc = win_read(s, r, p, n, off, &k);
		if (rc < 0)
			return rc;
		p = (uint8_t *)p + k;
		off += k;
		n -= k;
	}
	return 0;
}

/* Exactly n bytes at off into p, with one ranged GET. */
static int get_range(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off)
{
	size_t got;
	return get_range_upto(s, r, p, n, off, n, &got);
}

/* Up to n bytes at off into p (*got of them), with one ranged GET; fewer than need of them
 * is KBV_ECORRUPT (the object is shorter than it should be). */
static int get_range_upto(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off, size_t need,
			  size_t *got)
{
	char range[80];
	snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + n - 1));
	struct req q = { .method = "GET", .key = r->key, .dst = p, .dst_cap = n, .hdr = { range } };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 416)
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated (a read of %zu bytes at %llu)", s->bucket,
			       r->key, n, (unsigned long long)off);
	else if (rc == 0 && q.status == 404) /* opened, or known from the index: it was there */
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is gone (HTTP 404 %s)", s->bucket, r->key,
			       *q.code ? q.code : "NotFound");
	else if (rc == 0 && q.status != 206 && q.status != 200)
		rc = s3_fail(s, &q);
	else if (rc == 0 && q.dst_len < need)
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated: %zu of %zu bytes at %llu came", s->bucket,
			       r->key, q.dst_len, need, (unsigned long long)off);
	*got = q.dst_len;
	kbv_buf_release(&q.err);
	return rc;
}

static void s3_close(struct kbv_be_rd *br) { free(br); }

static int s3_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg)
{
	struct s3 *s = (struct s3 *)be;
	char prefix[512], eprefix[1536], etoken[3072], query[4800];
	struct kbv_buf body = KBV_BUF_INIT;
	struct kbv_s3_listing l = { 0 };
	int rc = 0;
	if (kind == KBV_OBJ_CONFIG || kind == KBV_OBJ_KEY) {
		/* One object: is it there? Keys: `key`, then keys/<keyid> below. */
		char key[512];
		obj_key(s, kind, "", key, sizeof key);
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
	snprintf(prefix, sizeof prefix, "%s%s", s->prefix, kind == KBV_OBJ_KEY ? "keys/" : kind_dir[kind]);
	uri_encode(prefix, eprefix, sizeof eprefix);
	/* Pages of the server's size (1000 keys on AWS and RGW); the tests make them small
	 * with KBVAULT_S3_LIST_PAGE to walk continuation tokens without thousands of objects. */
	char maxkeys[32] = "";
	const char *page = getenv("KBVAULT_S3_LIST_PAGE");
	long pn;
	if (page && kbv_parse_long(page, 1, 1000, &pn) == 0)
		snprintf(maxkeys, sizeof maxkeys, "&max-keys=%ld", pn);
	do {
		/* Parameters sorted by name and encoded: curl signs the query as it is given. */
		if (*l.token) {
			uri_encode(l.token, etoken, sizeof etoken);
			snprintf(query, sizeof query, "continuation-token=%s&list-type=2%s&prefix=%s", etoken, maxkeys, eprefix);
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
			rc = kbv_error(KBV_EIO, "s3 list s3:%s/%s/%s: the reply is not a ListObjectsV2 result", s->endpoint,
				       s->bucket, prefix);
			break;
		}
		for (size_t i = 0; i < l.n && rc == 0; i++)
			if (kbv_obj_name_ok(kind, l.items[i].name))
				rc = fn(arg, l.items[i].name, l.items[i].size, l.items[i].mtime);
		if (rc)
			break;
		if (l.truncated && !*l.token) {
			rc = kbv_error(KBV_EIO, "s3 list s3:%s/%s/%s: a truncated listing without a continuation token",
				       s->endpoint, s->bucket, prefix);
			break;
		}
	} while (l.truncated);
	kbv_s3_listing_release(&l);
	kbv_buf_release(&body);
	return rc;
}

static int s3_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	obj_key(s, kind, name, key, sizeof key);
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
	unsigned char sha[crypto_hash_sha256_BYTES];
	char b64[64], sum_hdr[128], key[512];
	int rc = 0;
	TRY(kbv_buf_add(&body, "<Delete><Quiet>true</Quiet>", 27));
	for (size_t i = 0; i < n; i++) {
		obj_key(s, kind, names[i], key, sizeof key);
		TRY(kbv_buf_add(&body, "<Object><Key>", 13));
		TRY(xml_escape_add(&body, key));
		TRY(kbv_buf_add(&body, "</Key></Object>", 15));
	}
	TRY(kbv_buf_add(&body, "</Delete>", 9));
	crypto_hash_sha256(sha, body.data, body.len);
	sodium_bin2base64(b64, sizeof b64, sha, sizeof sha, sodium_base64_VARIANT_ORIGINAL);
	snprintf(sum_hdr, sizeof sum_hdr, "x-amz-checksum-sha256: %s", b64);
	struct req q = { .method = "POST", .query = "delete=", .body = body.data, .len = body.len,
			 .hdr = { sum_hdr, "x-amz-sdk-checksum-algorithm: SHA256", "Content-Type: application/xml" },
			 .out = &resp };
	rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	if (rc == 0 && memmem(resp.data ? resp.data : (uint8_t *)"", resp.len, "<Error>", 7)) {
		/* Quiet: only the keys that could not be deleted are listed */
		char ekey[512], code[64], what[1024];
		kbv_s3_xml_field(resp.data, resp.len, "Key", ekey, sizeof ekey);
		kbv_s3_xml_field(resp.data, resp.len, "Code", code, sizeof code);
		req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: '%s' was not deleted: %s", what, ekey, *code ? code : "(no error code)");
	}
	kbv_buf_release(&q.err);
out:
	kbv_buf_release(&body);
	kbv_buf_release(&resp);
	return rc;
}

static int s3_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i += S3_DELETE_BATCH)
		rc = delete_batch((struct s3 *)be, kind, names + i, n - i < S3_DELETE_BATCH ? n - i : S3_DELETE_BATCH);
	return rc;
}

void kbv_s3_requests(struct kbv_be_requests *out)
{
	for (int i = 0; i < KBV_REQ_KINDS; i++)
		out->n[i] = atomic_load(&requests_sent[i]);
	out->retries = atomic_load(&requests_retried);
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
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	*out = &s->base;
	return 0;
fail:
	s3_free(&s->base);
	return rc;
}

int kbv_backend_s3_make_bucket(struct kbv_backend *be)
{
	struct s3 *s = (struct s3 *)be;
	if (be->ops != &s3_ops)
		return 0;
	/* Outside us-east-1 the region goes in the body (AWS refuses a bucket whose
	 * LocationConstraint is not the region the request is signed for). */
	char body[256] = "";
	if (strcmp(s->region, "us-east-1"))
		snprintf(body, sizeof body,
			 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
			 s->region);
	struct req q = { .method = "PUT", .body = body, .len = strlen(body) };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 409 && !strcmp(q.code, "BucketAlreadyOwnedByYou"))
		q.status = 200;
	if (rc == 0 && !strcmp(q.code, "InvalidLocationConstraint")) {
		char what[1024];
		req_what(s, &q, what, sizeof what);
		rc = kbv_error(KBV_EIO, "%s: HTTP %ld InvalidLocationConstraint (the server does not serve region '%s': "
					"set [repository] s3-region or AWS_DEFAULT_REGION to its region)",
			       what, q.status, s->region);
	} else if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}
