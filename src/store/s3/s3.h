/* The S3 backend's private header: what its files (src/store/s3/) share. Nothing outside
 * this folder includes it; the rest of kbvault sees a struct kbv_backend (backend.h).
 *
 *   storage.c  the backend: URL and credentials, list, remove, the table of operations
 *   request.c  object names; one signed request with retries (libcurl, SigV4); counters
 *   write.c    objects written: a buffer per object, one atomic PUT, uploads in threads
 *   read.c     objects read: one GET, or ranged GETs through windows shared by all readers
 *   list.c     listings (ListObjectsV2, ListObjectVersions), page by page
 *   remove.c   removal: DeleteObjects batches on several threads; every version (Object Lock)
 *   lock.c     Object Lock: retention and its extension
 *   xml.c      replies parsed (pure; fuzzed)
 *
 * A repository in a bucket of S3-compatible object storage (AWS S3, Ceph RGW, MinIO, ...),
 * reached with libcurl, path-style, signed with AWS Signature Version 4 (curl's
 * CURLOPT_AWS_SIGV4 with the payload's SHA-256 sent as x-amz-content-sha256, which curl
 * 7.88 does not add itself).
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
#ifndef KBV_STORE_S3_H
#define KBV_STORE_S3_H

#include "../backend_impl.h"
#include "kbv/buf.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define S3_ATTEMPTS 6       /* tries of one request when its failures may pass */
#define KBV_STR_(x) #x
#define KBV_STR(x) KBV_STR_(x)
#define S3_ERRBODY (8 << 10) /* bytes of an error reply kept for its code */
#define S3_RECV_BUFFER (512 << 10) /* curl's receive buffer: 16 KiB by default, a read() per 16 KiB */

/* A PUT body under this size goes out with its headers, without "Expect: 100-continue"
 * (which costs a round trip before the body: a lock, a plan, a manifest, an index object);
 * a larger one (a pack) waits for the server's go-ahead, so that a refusal (403, a missing
 * bucket, 503) does not cost the upload. */
#define S3_SMALL_PUT (1u << 20)
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
	int ahead_running; /* windows being fetched ahead by threads of their own (read.c) */
	/* The Date of the latest reply (kbv_be_clock: the storage's clock, never ours). */
	_Atomic int64_t server_date;
	_Atomic int64_t server_date_mono; /* our CLOCK_MONOTONIC seconds when it came */
	/* Object Lock (kbv_be_set_retention): seconds of COMPLIANCE retention for what is
	 * written from now on (0: none); removals then remove every version */
	int64_t lock_secs;
	/* The bytes of `key` got with the listing of the keys (storage.c, list_keys), kept for
	 * the one s3_get of it that follows; dropped by a write or removal of any key. */
	pthread_mutex_t key_mu;
	struct kbv_buf key_body;
	int key_kept;
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
	int ahead; /* fetched ahead of its reader, not read yet */
	uint8_t *data;
};

/* Windows fetched ahead of a reader that walks an object in order (read.c, read_ahead):
 * at most this many at a time, each by a thread of its own. */
#define S3_AHEAD 3

/* Requests sent by this process, every attempt counted (kbv_s3_requests). */
extern _Atomic uint64_t s3_requests_sent[KBV_REQ_KINDS], s3_requests_retried;

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
	char then[512]; /* the object read after this one, when the caller said (kbv_be_read_then) */
	uint64_t then_size;
};

/* One request and what came back. */
struct req {
	const char *method; /* GET, PUT, HEAD, DELETE */
	const char *key;    /* below the bucket, prefix included; NULL: the bucket itself */
	const char *query;  /* canonical (sorted, encoded) or NULL */
	const void *body;
	size_t len;
	const char *hdr[8]; /* extra headers: If-None-Match, Range, checksums, retention */
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
	int once;      /* one try only: a failure is someone else's to retry (a read ahead) */
	CURL *curl;
	int acked; /* TCP_QUICKACK asked for this reply (on_header) */
	unsigned char sha[32]; /* of the body, when sha_known (body and len are set first) */
	int sha_known;
	int64_t date; /* the reply's Date header, seconds since the epoch (0: none) */
	int64_t lock_until; /* x-amz-object-lock-retain-until-date (0: none) */
};

/* request.c */
/* The key of an object below the bucket, the repository's prefix included. */
void s3_obj_key(const struct s3 *s, enum kbv_obj kind, const char *name, char *out, size_t cap);
/* The folder, below the prefix, that a listing of kind walks ("data/", "keys/", ...). */
const char *s3_kind_dir(enum kbv_obj kind);
/* SigV4's UriEncode: RFC 3986 unreserved characters stay, the rest is %XX. */
void s3_uri_encode(const char *in, char *out, size_t cap);
/* Send q, retrying what may pass: 0 with q->status set (any HTTP status: the caller judges
 * it), or KBV_EIO when no reply came or transient replies persisted after the retries. */
int s3_do(struct s3 *s, struct req *q);
/* "s3 GET s3:http://host/bucket/key", or "s3 GET s3:http://host/bucket?list-type=2&prefix=..."
 * (the query says which listing; no credentials are in it, nor here) for messages. */
void s3_req_what(const struct s3 *s, const struct req *q, char *out, size_t cap);
/* The error for a reply that is not a success: operation, object, the server's code. */
int s3_fail(struct s3 *s, const struct req *q);
/* Callbacks of the curl share object (one mutex per kind of shared data). */
void s3_share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *arg);
void s3_share_unlock(CURL *c, curl_lock_data d, void *arg);

/* write.c */
int s3_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out);
int s3_append(struct kbv_be_wr *bw, const void *p, size_t n);
int s3_commit(struct kbv_be_wr *bw, unsigned flags);
void s3_discard(struct kbv_be_wr *bw);
int s3_sync(struct kbv_backend *be);
/* One PUT of data at key (KBV_PUT_EXCL: create-if-absent; S3_PUT_RETAIN: with the
 * backend's Object Lock retention). */
#define S3_PUT_RETAIN 0x100u
int s3_put_object(struct s3 *s, const char *key, const struct kbv_buf *data, unsigned flags);
/* The checksum headers AWS demands of an Object Lock PUT and of DeleteObjects
 * (x-amz-checksum-sha256 of the body, and the algorithm's name) into q->hdr[i], i + 1. */
void s3_checksum_headers(struct req *q, size_t i, char *buf, size_t cap);
/* The storage's clock now, estimated: the latest reply's Date plus the time passed since
 * (monotonic); our own clock before any reply. */
int64_t s3_now(struct s3 *s);
/* "2026-12-01T13:30:30Z" */
void s3_iso_time(int64_t t, char *out, size_t cap);

/* list.c: every key under `prefix` (the bucket's key, prefix included), page by page:
 * fn(arg, item) for each (ListObjectsV2), or each version and delete marker
 * (ListObjectVersions) with `versions`. A non-zero return of fn stops the walk. */
struct kbv_s3_item;
typedef int (*s3_item_fn)(void *arg, const struct kbv_s3_item *it);
int s3_walk(struct s3 *s, const char *prefix, int versions, s3_item_fn fn, void *arg);

/* lock.c: Object Lock */
int s3_set_retention(struct kbv_backend *be, int64_t seconds);
int s3_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until);
int s3_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until);

/* remove.c */
int s3_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name);
int s3_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n);
/* Remove every version of n objects of a kind (a versioned bucket). */
int s3_remove_versions(struct s3 *s, enum kbv_obj kind, const char *const *names, size_t n);

/* read.c */
int s3_open_known(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t size, struct kbv_be_rd **out);
int s3_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out, uint64_t *size);
int s3_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out);
/* list.c: the bytes of `key` got with the listing of the keys: keep takes `body` over (it is
 * empty after); take moves them into `out` (1) or finds none kept (0); forget drops them. */
void s3_key_keep(struct s3 *s, struct kbv_buf *body);
int s3_key_take(struct s3 *s, struct kbv_buf *out);
void s3_key_forget(struct s3 *s);
int s3_read(struct kbv_be_rd *br, void *p, size_t n, uint64_t off);
int s3_read_once(struct kbv_be_rd *br, void *p, size_t n, uint64_t off);
void s3_read_then(struct kbv_be_rd *br, enum kbv_obj kind, const char *name, uint64_t size);
void s3_close(struct kbv_be_rd *br);

#endif
