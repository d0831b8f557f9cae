/* A repository: a directory on a local file system, or a bucket (and prefix) of
 * S3-compatible object storage named "s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]"
 * (format/repository.md).
 *
 * Lifecycle: kbv_repo_init() once; then kbv_repo_open() -> kbv_repo_unlock() (when
 * kbv_repo_needs_password()) -> use -> kbv_repo_close(). The handle is opaque; library
 * modules see its fields through src/store/repo_impl.h. */
#ifndef KBV_REPO_H
#define KBV_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/backend.h"
#include "kbv/blob.h"
#include "kbv/buf.h"
#include "kbv/chunker.h"
#include "store/index.h"

#define KBV_FORMAT_VERSION 1
/* The config of a repository with Object Lock is version 2 (format/repository.md); one
 * without stays version 1, which builds from before Object Lock read. */
#define KBV_CONFIG_VERSION_LOCK 2
/* Version 3: the id hash is recorded (BLAKE3 chunk ids), with or without Object Lock; a
 * repository with BLAKE2b ids keeps version 1 or 2, which older builds read. */
#define KBV_CONFIG_VERSION_IDHASH 3
#define KBV_MAX_LOCK_DAYS 3650

enum kbv_lock { KBV_LOCK_NONE, KBV_LOCK_SHARED, KBV_LOCK_EXCLUSIVE };

struct kbv_init_opts {
	int encrypted;          /* 1 by default */
	uint32_t chunk_avg;     /* 0: default (8 KiB) */
	int zstd_level;         /* 0: default (KBV_DEFAULT_ZSTD_LEVEL) */
	uint32_t pack_size;     /* 0: default (16 MiB) */
	uint64_t kdf_ops;       /* 0: default (3) */
	uint64_t kdf_mem;       /* bytes; 0: default (64 MiB) */
	uint32_t object_lock_days; /* 0: none; else object storage only (format/repository.md) */
	int id_hash;            /* enum kbv_id_hash; 0: default (BLAKE3) */
};
#define KBV_DEFAULT_CHUNK_AVG (8u << 10)
#define KBV_DEFAULT_ZSTD_LEVEL 1
#define KBV_DEFAULT_PACK_SIZE (16u << 20)
#define KBV_DEFAULT_ID_HASH KBV_ID_BLAKE3

/* An open repository: an opaque handle (kbv_repo_open() .. kbv_repo_close()). */
struct kbv_repo;

/* What the repository's config says (format/repository.md); read-only. */
struct kbv_repo_params {
	uint8_t repo_id[16];
	int encrypted;
	uint32_t chunk_min, chunk_avg, chunk_max;
	int zstd_level;
	uint32_t pack_size;
	uint32_t object_lock_days; /* 0: no Object Lock */
	int64_t object_lock_seconds; /* the same in seconds (a test may shorten a day) */
	int id_hash;                 /* enum kbv_id_hash */
};

/* The storage backend of the repository at `path`: the local directory, wrapped in the
 * fault-injecting backend when the environment names KBVAULT_FAULT (tests; see
 * kbv_backend_fault_new() for the spec). *out is the caller's (kbv_backend_free()). */
int kbv_repo_backend(const char *path, struct kbv_backend **out);

/* The repository `config` file's bytes (format/repository.md) into r's parameters;
 * KBV_ENOREPO, KBV_EVERSION or KBV_ECORRUPT naming `what`. For kbv_repo_open and fuzzing. */
int kbv_repo_config_decode(const uint8_t *b, size_t len, const char *what, struct kbv_repo *r);
/* Is k a sound key file (format/keyfile.md) of the repository whose config r holds? */
int kbv_keyfile_check(const uint8_t *k, size_t len, const char *what, const struct kbv_repo *r);

/* Create a repository at `path` (absent or an empty directory). `password` may be NULL
 * when opts->encrypted is 0. Returns 0, KBV_EEXIST, KBV_EINVAL or KBV_EIO. */
int kbv_repo_init(const char *path, const struct kbv_init_opts *opts, const char *password, size_t pwlen);

/* Open and lock a repository. KBV_ENOREPO when `path` is not one, KBV_EVERSION for an
 * unknown version, KBV_ECORRUPT for a damaged config or key file. */
int kbv_repo_open(const char *path, enum kbv_lock lock, struct kbv_repo **out);

/* How long kbv_repo_open_wait() waits for a lock another process holds, and whom it tells. */
struct kbv_lock_wait {
	double seconds; /* 0: do not wait */
	/* Called once when the lock is held by someone else, with who ("PID 1234 (kbvault
	 * gc)"); may be NULL. */
	void (*waiting)(void *arg, const char *holder);
	void *arg;
};
/* kbv_repo_open() that waits at most w->seconds for the lock (w NULL: as long as it
 * takes), then fails with KBV_ELOCKED naming the holder. */
int kbv_repo_open_wait(const char *path, enum kbv_lock lock, const struct kbv_lock_wait *w, struct kbv_repo **out);

int kbv_repo_needs_password(const struct kbv_repo *r);
/* From now on, kbv_repo_unlock() keeps the Argon2id result of a password in this host's
 * cache directory, sealed with a key derived from the password itself (format/keyfile.md,
 * "Derived-key cache"), and uses it instead of running Argon2id again. For commands that
 * run once per WAL file (wal-push, wal-fetch); off by default. */
void kbv_repo_kdf_cache(int on);

/* Before kbv_repo_unlock(): the caller looks up objects of `kind` (its snapshots, records,
 * WAL) as soon as the repository is open; one call per kind. On object storage they are
 * then listed while the key is derived (kbv_be_list_ahead(), the kinds side by side), and
 * the first lookup of each sends no request of its own; nothing changes on a local
 * repository. A caller that writes or removes anything first lists afresh. */
void kbv_repo_will_list(struct kbv_repo *r, enum kbv_obj kind);

/* Where repositories on object storage are reached and cached, for the whole process: the
 * S3 credentials and options (copied; secrets wiped on the next call or at exit) and the
 * base of the cache directories (NULL: $XDG_CACHE_HOME/kbvault, else ~/.cache/kbvault).
 * Call before kbv_repo_init() or kbv_repo_open() of an s3: URL. */
int kbv_repo_set_remote(const struct kbv_s3_opts *s3, const char *cache_dir);

/* What the last cache refresh of a repository on object storage did (kbv_repo_unlock()
 * refreshes it). All 0 for a local repository. */
struct kbv_cache_report {
	uint64_t index_objects;    /* index objects fetched and merged */
	uint64_t from_index;       /* packs indexed from them */
	uint64_t from_trailers;    /* packs indexed from their own trailers (no index object listed them) */
	uint64_t dropped;          /* packs dropped: the storage no longer holds them */
	uint64_t refilled;         /* blobs located anew from index objects after a drop */
	uint64_t damaged;          /* packs left out: damaged trailer */
	uint64_t damaged_index;    /* index objects skipped: damaged or of another version */
	char damaged_index_name[65]; /* the first of those */
};
void kbv_repo_cache_report(const struct kbv_repo *r, struct kbv_cache_report *out);

/* The repository's parameters into *out (valid once kbv_repo_open() returned). */
void kbv_repo_params(const struct kbv_repo *r, struct kbv_repo_params *out);
/* Object Lock's retention in seconds (0: none): object_lock_days days, a day being 86400 s
 * or, in tests, KBVAULT_OBJECT_LOCK_DAY seconds. */
int64_t kbv_repo_lock_seconds(const struct kbv_repo *r);
/* The test hooks' ranges (checked at start-up, src/cli/main.c): a day of Object Lock in
 * seconds, and the pack size writers aim for (KBVAULT_PACK_SIZE, bytes). */
#define KBV_LOCK_DAY_MAX 86400L
#define KBV_PACK_SIZE_HOOK_MIN 4096L
#define KBV_PACK_SIZE_HOOK_MAX (1L << 30)

/* Object Lock's retention of what the repository holds (src/store/retain.c): the objects
 * of the retained kinds, the lowest retain-until among them as far as this host knows
 * (a lower bound: listing times, and what this host's own extensions set), and when gc
 * next extends them (the oldest less half the retention). With `extend` (gc), when any has
 * less than half the retention left, every object not written within the hour is
 * extended to the storage's clock + the retention. All zero without Object Lock. */
struct kbv_retention_report {
	uint32_t days;
	int64_t seconds;
	uint64_t objects, extended;
	int64_t oldest, next_extension; /* seconds since the epoch; 0: no object */
	int64_t now;                    /* the storage's clock when it was measured */
};
int kbv_repo_retention(struct kbv_repo *r, int extend, struct kbv_retention_report *out);
/* The location the repository was opened at; borrowed, valid until kbv_repo_close(). */
const char *kbv_repo_path(const struct kbv_repo *r);

/* Derive the key-wrapping key and unwrap the master keys. KBV_EAUTH on a wrong password.
 * Needed for every operation that reads or writes blobs; unencrypted repositories take
 * password NULL. */
int kbv_repo_unlock(struct kbv_repo *r, const char *password, size_t pwlen);

/* Release the lock, wipe the keys, free. NULL is a no-op. */
void kbv_repo_close(struct kbv_repo *r);

/* "<local>/<sub>" into out: this host's directories for the repository, tmp (scratch:
 * spools, writer locks), index (the LMDB cache) and lock; beside the objects for a local
 * repository, in the cache directory for one on object storage. Objects are reached
 * through the backend. */
int kbv_repo_sub(const struct kbv_repo *r, const char *sub, char *out, size_t cap);

#endif
