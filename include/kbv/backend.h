/* Storage backends: every byte that goes to or comes from a repository's objects passes
 * here (format/repository.md names the objects). The layers above never see a path, a
 * file descriptor or a rename: they put an object whole, read it whole or by range, stat,
 * list and remove it. The interface fits an object store: no rename, no append after
 * commit, no directory fsync; listing is by kind, through a callback, and may be slow.
 *
 * Implementations (one file each, src/store/backend_*.c): the local directory, S3-compatible
 * object storage and a fault-injecting wrapper for tests. A backend handle is not shared between threads
 * except through readers: each thread opens its own (struct kbv_be_rd).
 *
 * Errors: 0 or a negative KBV_E* code with the message set (kbv_errmsg()); a missing
 * object is KBV_ENOTFOUND, a short object KBV_ECORRUPT ("truncated"), anything the storage
 * refuses KBV_EIO with its reason ("No space left on device"). */
#ifndef KBV_BACKEND_H
#define KBV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/buf.h"

/* What an object is; each kind has its own name space. */
enum kbv_obj {
	KBV_OBJ_CONFIG,   /* the repository config (one object; name "") */
	KBV_OBJ_KEY,      /* the key file (one object; name "") */
	KBV_OBJ_PACK,     /* packs, named by 32 hex digits */
	KBV_OBJ_SNAPSHOT, /* manifests, named by 64 hex digits */
	KBV_OBJ_RECORD,   /* records (drill verdicts), named by 64 hex digits */
	KBV_OBJ_INDEX,    /* index objects (object storage; format/index.md), 64 hex digits */
	KBV_OBJ_PLAN,     /* gc's deletion plans (format/repository.md), 64 hex digits */
	KBV_OBJ_LOCK,     /* locks (object storage): "gc" */
	KBV_OBJ_WAL,      /* archived PostgreSQL WAL files (format/wal.md): "<source>~<file>" */
	KBV_OBJ_KINDS
};

struct kbv_backend; /* opaque */
struct kbv_be_wr;   /* an object being written: invisible until committed */
struct kbv_be_rd;   /* an object open for reading by range */

/* Flags of kbv_be_commit() and kbv_be_put(). */
#define KBV_PUT_EXCL 1u /* fail with KBV_EEXIST when the object exists (create-if-absent) */
/* Commit may return before the object is durable (object storage uploads it beside the
 * caller's work, a few at a time); kbv_be_sync() waits for all of them and returns the
 * first failure, which a later async commit may also return. Backends without parallel
 * transfers commit at once. Not with KBV_PUT_EXCL. */
#define KBV_COMMIT_ASYNC 2u

/* The local directory backend over the repository directory `root` (borrowed for the
 * call; the backend keeps a copy). *out is freed with kbv_backend_free(). */
int kbv_backend_local_new(const char *root, struct kbv_backend **out);
/* The same directory as several hosts share it (a network file system): the objects and
 * their files are the local backend's, but the repository is used as object storage is
 * (no KBV_BE_LOCAL: each host keeps its index cache and metadata cache in its own cache
 * directory, index objects and gc's deletion plans and lock are in the directory),
 * because LMDB must not live on a network file system. kbv_repo_backend() picks it for
 * "shared:/path". */
int kbv_backend_shared_new(const char *root, struct kbv_backend **out);
/* Is `url` a shared directory ("shared:/path"; the directory: url + 7)? */
int kbv_shared_url_ok(const char *url);

/* How to reach S3-compatible storage. Strings are borrowed for the call (the backend keeps
 * copies and wipes the secrets when freed). */
struct kbv_s3_opts {
	const char *access_key, *secret_key; /* required */
	const char *session_token;           /* NULL: none */
	const char *region;                  /* NULL: us-east-1 */
	const char *ca_file;                 /* NULL: the system's certificate authorities */
	int connections;                     /* parallel uploads of packs; 0: the default, 4 */
};

/* Is `url` an S3 repository URL ("s3:...")? */
int kbv_s3_url_ok(const char *url);
/* The most keys a listing page may ask for (KBVAULT_S3_LIST_PAGE, a test hook: 1 to this). */
#define KBV_S3_LIST_PAGE_MAX 1000L
/* The most keys of one DeleteObjects request (S3's limit; KBVAULT_S3_DELETE_BATCH, a test
 * hook, makes batches smaller). */
#define KBV_S3_DELETE_BATCH_MAX 1000L
/* The S3 backend for "s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]" (path-style requests,
 * SigV4, TLS verified). KBV_EINVAL for a URL that does not parse or missing credentials;
 * nothing is sent until the first operation. *out is freed with kbv_backend_free(). */
int kbv_backend_s3_new(const char *url, const struct kbv_s3_opts *o, struct kbv_backend **out);
/* Create the bucket of an S3 backend when it is missing (0 when it exists and is ours);
 * a no-op for other backends. */
int kbv_backend_s3_make_bucket(struct kbv_backend *be);
/* The same for a repository with Object Lock: the bucket is created with Object Lock
 * enabled (which turns versioning on); an existing bucket must have it enabled already
 * (KBV_EINVAL otherwise: it cannot be turned on from here). KBV_EINVAL for other backends. */
int kbv_backend_s3_make_lock_bucket(struct kbv_backend *be);
/* Is there an object of this kind and name (a HEAD; 1 or 0)? */
int kbv_be_exists(struct kbv_backend *be, enum kbv_obj kind, const char *name);

/* Wrap `inner` (owned from here on) so that the n-th operation of one kind fails, as
 * `spec` says: "OP[:KIND]:N[:ERROR]" with OP one of write, commit, read, list, remove;
 * KIND one of config, key, pack, snapshot, record, index, plan, lock (any when absent); ERROR eio (default),
 * enospc or short (write: half the bytes reach the object, then EIO; read: the object
 * looks truncated). Messages of injected faults say "injected fault". A spec that does
 * not parse is KBV_EINVAL and inner is freed. */
int kbv_backend_fault_new(struct kbv_backend *inner, const char *spec, struct kbv_backend **out);
/* How many operations of that OP (and KIND) the wrapper has seen. */
uint64_t kbv_backend_fault_count(const struct kbv_backend *be);

/* Close and free a backend. NULL is a no-op. */
void kbv_backend_free(struct kbv_backend *be);

/* Backend features, for what only some storage can do. */
#define KBV_BE_LOCAL 1u /* objects are files under kbv_backend_root() */
unsigned kbv_backend_features(const struct kbv_backend *be);
/* How many transfers are worth running at once: s3-connections for object storage, 1 for a
 * local directory (a restore's planned reads fetch on that many threads). */
unsigned kbv_backend_parallel(const struct kbv_backend *be);
/* The local directory of a KBV_BE_LOCAL backend (borrowed, valid until free), else NULL. */
const char *kbv_backend_root(const struct kbv_backend *be);

/* A human name for an object in messages ("/repo/data/3f/3f…pack" for a local backend)
 * into out. */
void kbv_be_describe(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap);

/* Writing: create, append any number of times, then commit (durable and visible under its
 * name, whole, at once) or discard. kbv_be_discard() frees the writer in every case (after
 * a commit too) and drops what was not committed. */
int kbv_be_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out);
int kbv_be_append(struct kbv_be_wr *w, const void *p, size_t n);
int kbv_be_commit(struct kbv_be_wr *w, unsigned flags);
void kbv_be_discard(struct kbv_be_wr *w);
/* Wait for every KBV_COMMIT_ASYNC commit of this backend: 0 when all are durable, else the
 * first failure. */
int kbv_be_sync(struct kbv_backend *be);
/* create + append + commit + discard. */
int kbv_be_put(struct kbv_backend *be, enum kbv_obj kind, const char *name, const void *p, size_t n, unsigned flags);

/* Reading: open (KBV_ENOTFOUND when missing; *size its size), read n bytes at off (exactly
 * n: a short object is KBV_ECORRUPT), close. NULL is a no-op for close. */
int kbv_be_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out, uint64_t *size);
int kbv_be_read(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off);
/* The same, for a caller that planned its reads (a restore's spans): exactly this range in
 * one request on object storage, around the shared read windows (nothing more is fetched,
 * nothing is kept); as kbv_be_read elsewhere. */
int kbv_be_read_once(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off);
/* Open an object whose size the caller knows (*size: a pack's, from the index). Object
 * storage skips the HEAD; a read of an object that is gone, or shorter than *size, is then
 * KBV_ECORRUPT naming it. Backends without the shortcut open it as kbv_be_open does
 * (KBV_ENOTFOUND when missing) and put its real size into *size. */
int kbv_be_open_known(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t *size,
		      struct kbv_be_rd **out);
void kbv_be_close(struct kbv_be_rd *rd);
/* Advice: once the caller has read rd's object in order to its end, it reads object `name`
 * of that kind (`size` bytes, known from the index) from its start. Object storage's
 * read-ahead then goes on from the one object into the next, so that the windows ahead of a
 * reader are the next ones it reads across both; a local directory does nothing. Never an
 * error: a fetch ahead that fails leaves nothing, and the read that needs those bytes
 * fetches them itself and reports what it meets. A later call replaces the advice. */
void kbv_be_read_then(struct kbv_be_rd *rd, enum kbv_obj kind, const char *name, uint64_t size);
/* The whole object into out (its contents replaced). */
int kbv_be_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out);
/* Each object names[i] into bufs[i] (its contents replaced), kbv_backend_parallel() of
 * them at a time (at most 16; one after the other on a local backend): the small objects
 * a host has not seen yet (manifests, records) cost a round trip per connection, not per
 * object. None is started after one failed. Returns 0, or the failure of the first name in
 * order that failed (its message this thread's). rcs (NULL: not wanted) gets each name's
 * own result: 0 (bufs[i] holds the object), its error, or 1 (not fetched: started after a
 * failure); a buf whose rcs is not 0 may be filled or not. */
int kbv_be_get_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n,
		    struct kbv_buf *bufs, int *rcs);

/* Every object of a kind: fn(arg, name, size, mtime) in no particular order; names that do
 * not have the kind's shape are skipped. mtime is seconds since the epoch as the storage
 * keeps it. A non-zero return of fn stops the listing and is returned. */
typedef int (*kbv_be_list_fn)(void *arg, const char *name, uint64_t size, int64_t mtime);
int kbv_be_list(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg);
/* List a kind now and keep what is listed for the next kbv_be_list() of that kind, which
 * then replays it and sends no request (a command that looks its snapshots up lists them
 * while its key is derived). The listing kept serves one kbv_be_list() only, and none
 * once this backend has begun any write or removal (kbv_be_create, kbv_be_remove, ...):
 * nobody reads through it a listing older than their own changes. A listing that fails
 * keeps nothing: the next kbv_be_list() asks the storage itself and reports what it meets.
 * One listing of each kind is kept (a later call for that kind replaces it). Thread-safe
 * beside the backend's other calls, and beside itself for other kinds. */
void kbv_be_list_ahead(struct kbv_backend *be, enum kbv_obj kind);
/* Fetch the objects of the listing kept of `kind` (kbv_be_list_ahead; at most `most` of
 * them, in the listing's order, and `bytes` of listed size), side by side, and keep their
 * bytes for this backend's next kbv_be_get() of each, which takes them and sends no
 * request (a new host's first look at its snapshots fetches their manifests while its key
 * is derived, and its index objects). For objects never changed once written (manifests,
 * index objects): bytes kept are bytes the storage held. Best effort, as the listing: an
 * object whose fetch failed is not kept (its kbv_be_get asks the storage and reports what
 * it meets), those fetched are, and none are kept once this backend has begun any write
 * or removal. One set of each kind is kept (a later call for that kind replaces it); what
 * is never asked for is freed by kbv_be_list_drop() of its kind or with the backend. */
void kbv_be_get_listed_ahead(struct kbv_backend *be, enum kbv_obj kind, size_t most, uint64_t bytes);
/* Forget the listing kept of a kind, if any, and the bytes kept of its objects: the
 * caller's later kbv_be_list() asks the storage (a listing of something it depends on was
 * made again since, or the caller is done with what was made ahead). */
void kbv_be_list_drop(struct kbv_backend *be, enum kbv_obj kind);
/* The order of this process's listings: each call returns a number greater than every
 * earlier one, on any thread. A listing whose last reply came in at tick a (*done below)
 * and another begun after tick b > a: what the first showed was in the storage before the
 * second was asked for, so the second shows all it was stored after (format/repository.md,
 * "Writers"). */
uint64_t kbv_be_tick(void);
/* kbv_be_list(), and *done: kbv_be_tick() once its last reply was in (a listing kept ahead
 * and replayed: once that listing's was). */
int kbv_be_list_done(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg, uint64_t *done);

/* The storage's own clock, in seconds since the epoch: object storage's as of its latest
 * reply (its Date header; one request first when there was none), a directory's as its file
 * system sets a file's mtime to "now" (a network file system: the server's). Ages of
 * objects (the mtimes of kbv_be_list) are measured against this, never the host's clock. */
int kbv_be_clock(struct kbv_backend *be, int64_t *now);

/* Object Lock (object storage only; format/repository.md "Object Lock"). After
 * kbv_be_set_retention(be, seconds), every object of the kinds that hold data or name it
 * (config, key, pack, snapshot, record, index; not plans, not locks) is written in
 * COMPLIANCE mode, retained until the storage's clock + seconds: nobody, the owner
 * included, can delete that version or shorten its retention before then. Removing an
 * object then removes every version of it (a version still retained fails, naming it).
 * Backends without Object Lock: KBV_EINVAL. */
int kbv_be_set_retention(struct kbv_backend *be, int64_t seconds);
/* The retain-until date of an object's current version (seconds since the epoch; 0: none),
 * or KBV_ENOTFOUND. Backends without Object Lock: 0. */
int kbv_be_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until);
/* Extend the retention of an object's current version to `until` (never shortened: the
 * storage refuses that). Backends without Object Lock: KBV_EINVAL. */
int kbv_be_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until);
/* Does Object Lock retain objects of this kind (kbv_be_set_retention)? */
int kbv_obj_retained(enum kbv_obj kind);

/* Remove an object durably; a missing one is not an error. */
int kbv_be_remove(struct kbv_backend *be, enum kbv_obj kind, const char *name);
/* Remove n objects of a kind, in as few requests as the storage allows (S3: DeleteObjects,
 * 1000 keys per request); missing ones are not errors. On an error some of them may be
 * gone and others not; the error names the first object that failed. */
int kbv_be_remove_many(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n);

/* Requests this process sent to object storage so far, every attempt counted. */
enum kbv_be_req { KBV_REQ_GET, KBV_REQ_PUT, KBV_REQ_HEAD, KBV_REQ_LIST, KBV_REQ_DELETE, KBV_REQ_KINDS };
struct kbv_be_requests {
	uint64_t n[KBV_REQ_KINDS];
	uint64_t retries; /* of those, repeated after a transient failure */
};
void kbv_s3_requests(struct kbv_be_requests *out);

/* Does `name` have the shape of an object name of that kind? */
int kbv_obj_name_ok(enum kbv_obj kind, const char *name);
/* Is `file` the name of a file PostgreSQL archives: a segment (24 upper-case hex digits,
 * or with ".partial"), a timeline history ("0000000A.history") or a backup history file
 * ("<segment>.<8 hex>.backup")? */
int kbv_wal_file_ok(const char *file);
/* Is `name` "<source>~<file>": a source name (1-64 of A-Z a-z 0-9 . _ -) and such a file? */
int kbv_wal_name_ok(const char *name);

#endif
