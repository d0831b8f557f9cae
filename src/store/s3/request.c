/* Object names and one signed request to the S3 server, with retries; request counters
 * (s3.h). */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t s3_requests_sent[KBV_REQ_KINDS], s3_requests_retried;

/* Object names: the local directory's, below the repository's prefix. */
static const char *const kind_dir[KBV_OBJ_KINDS] = { "", "", "data/", "snapshots/", "records/", "idx/", "plans/", "locks/", "wal/" };

const char *s3_kind_dir(enum kbv_obj kind)
{
	return kind == KBV_OBJ_KEY ? "keys/" : kind_dir[kind];
}

void s3_obj_key(const struct s3 *s, enum kbv_obj kind, const char *name, char *out, size_t cap)
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

/* RFC 3986 unreserved characters stay, everything else is %XX (SigV4's UriEncode). */
void s3_uri_encode(const char *in, char *out, size_t cap)
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
	size_t n = size * nmemb;
	if (n > 5 && n < 128 && !strncasecmp(p, "date:", 5)) {
		char v[128];
		memcpy(v, p + 5, n - 5);
		v[n - 5] = 0;
		time_t t = curl_getdate(v, NULL);
		if (t > 0)
			q->date = (int64_t)t;
	}
	static const char lk[] = "x-amz-object-lock-retain-until-date:";
	if (n > sizeof lk && n < 128 && !strncasecmp(p, lk, sizeof lk - 1)) {
		char v[128];
		size_t i = sizeof lk - 1;
		while (i < n && p[i] == ' ')
			i++;
		memcpy(v, p + i, n - i);
		while (n > i && (v[n - i - 1] == '\r' || v[n - i - 1] == '\n' || v[n - i - 1] == ' '))
			n--; /* the header line's end */
		v[n - i] = 0;
		q->lock_until = kbv_s3_parse_time(v);
	}
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

void s3_share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *arg)
{
	(void)c;
	(void)a;
	pthread_mutex_lock(&((struct s3 *)arg)->mu[d]);
}

void s3_share_unlock(CURL *c, curl_lock_data d, void *arg)
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
void s3_req_what(const struct s3 *s, const struct req *q, char *out, size_t cap)
{
	snprintf(out, cap, "s3 %s s3:%s/%s%s%s%s%s", q->method, s->endpoint, s->bucket, q->key ? "/" : "",
		 q->key ? q->key : "", q->query ? "?" : "", q->query ? q->query : ""); /* which listing */
}

/* The SHA-256 of q's body (SigV4 signs it; checksummed requests send it too), once per
 * request: with OpenSSL's SHA-256, which uses the CPU's SHA extensions (measured here:
 * 1.55 GB/s against libsodium's portable 0.3 GB/s, and a pack is hashed before its PUT
 * can start). */
static void body_sha256(struct req *q)
{
	const void *p = q->body ? q->body : (const void *)"";
	size_t n = q->body ? q->len : 0;
	if (q->sha_known)
		return;
	if (EVP_Digest(p, n, q->sha, NULL, EVP_sha256(), NULL) != 1)
		crypto_hash_sha256(q->sha, p, n);
	q->sha_known = 1;
}

static int has_content_type(const struct req *q)
{
	for (size_t i = 0; i < sizeof q->hdr / sizeof *q->hdr && q->hdr[i]; i++)
		if (!strncasecmp(q->hdr[i], "Content-Type:", 13))
			return 1;
	return 0;
}

/* Perform q: 0 with q->status set (any HTTP status: the caller judges it), or KBV_EIO when
 * no reply came (after the retries) or transient replies persisted. */
int s3_do(struct s3 *s, struct req *q)
{
	char url[2048], what[1024], sha_hdr[96], tok_hdr[4096];
	char shahex[2 * crypto_hash_sha256_BYTES + 1];
	body_sha256(q);
	sodium_bin2hex(shahex, sizeof shahex, q->sha, sizeof q->sha);
	snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s", shahex);
	snprintf(url, sizeof url, "%s/%s%s%s%s%s", s->endpoint, s->bucket, q->key ? "/" : "", q->key ? q->key : "",
		 q->query ? "?" : "", q->query ? q->query : "");
	s3_req_what(s, q, what, sizeof what);
	CURLcode cc = CURLE_OK;
	char cerr[CURL_ERROR_SIZE];
	int small_put = !strcmp(q->method, "PUT") && q->len < S3_SMALL_PUT;
	int add_ctype = small_put && !has_content_type(q); /* else curl labels the body a form */
	for (int attempt = 0; attempt < (q->once ? 1 : S3_ATTEMPTS); attempt++) {
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
		atomic_fetch_add(&s3_requests_sent[kind], 1);
		if (attempt)
			atomic_fetch_add(&s3_requests_retried, 1);
		q->status = 0;
		q->dst_len = 0;
		q->sent = 0;
		q->code[0] = 0;
		q->date = 0;
		q->lock_until = 0;
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
		if (!bad && add_ctype)
			bad = !(hn = curl_slist_append(h, "Content-Type: application/octet-stream")) || !(h = hn);
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
		curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)S3_RECV_BUFFER);
		if (s->ca_file)
			curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
		if (small_put) {
			/* A small body sent as POST data under the PUT method goes without Expect
			 * (curl asks for 100 Continue on every upload; radosgw does not even send
			 * one for a sub-resource such as ?retention, so curl would wait out the
			 * timeout). Without a Content-Type of its own, curl would label it a form. */
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
		} else if (!strcmp(q->method, "PUT")) {
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
		if (cc == CURLE_OK && q->date) {
			struct timespec mt;
			clock_gettime(CLOCK_MONOTONIC, &mt);
			atomic_store(&s->server_date, q->date);
			atomic_store(&s->server_date_mono, (int64_t)mt.tv_sec);
		}
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
int s3_fail(struct s3 *s, const struct req *q)
{
	char what[1024];
	s3_req_what(s, q, what, sizeof what);
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

void s3_checksum_headers(struct req *q, size_t i, char *buf, size_t cap)
{
	char b64[64];
	body_sha256(q);
	sodium_bin2base64(b64, sizeof b64, q->sha, sizeof q->sha, sodium_base64_VARIANT_ORIGINAL);
	snprintf(buf, cap, "x-amz-checksum-sha256: %s", b64);
	q->hdr[i] = buf;
	q->hdr[i + 1] = "x-amz-sdk-checksum-algorithm: SHA256";
}

int64_t s3_now(struct s3 *s)
{
	int64_t d = atomic_load(&s->server_date), m = atomic_load(&s->server_date_mono);
	struct timespec mt;
	if (!d)
		return (int64_t)time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	return d + ((int64_t)mt.tv_sec > m ? (int64_t)mt.tv_sec - m : 0);
}

void s3_iso_time(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void kbv_s3_requests(struct kbv_be_requests *out)
{
	for (int i = 0; i < KBV_REQ_KINDS; i++)
		out->n[i] = atomic_load(&s3_requests_sent[i]);
	out->retries = atomic_load(&s3_requests_retried);
}
