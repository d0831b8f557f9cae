/* The fields of an open repository, for the library's own modules (store, engine) and its
 * white-box tests; the CLI and other callers use the functions of kbv/repo.h. Every field
 * is owned by the handle and valid until kbv_repo_close(); callers only read them. */
#ifndef KBV_STORE_REPO_IMPL_H
#define KBV_STORE_REPO_IMPL_H

#include <pthread.h>

#include "kbv/repo.h"
#include "store/index.h"

/* One key object of the repository (format/keyfile.md). */
struct kbv_keyobj {
	char name[40];        /* "" for `key`, else the keyid */
	struct kbv_buf data;  /* the file (wiped when freed) */
	int damaged;          /* failed its checks (or vanished): skipped */
	char why[512];        /* what its check said */
};

struct kbv_repo {
	char *path;  /* as opened: a directory or an s3: URL */
	char *cache_path; /* <cache base>/<repository id>: what this host caches of r (set at
			   * unlock, for the derived-key cache; not created; NULL when there is no base) */
	char *local; /* this host's directory for lock, tmp/ and index/: path itself for a local
		      * repository, the cache directory for one on object storage */
	struct kbv_cache_report cache; /* what the last cache refresh did */
	uint64_t cache_from; /* kbv_be_tick() before the latest listing of the packs applied to the
			      * cache began (object storage; 0: none yet) */
	int meta_off;                  /* metadata cache bypassed (store/metacache.h) */
	int lockfd;
	uint8_t repo_id[16];
	int encrypted;
	uint32_t chunk_min, chunk_avg, chunk_max;
	int zstd_level;
	uint32_t pack_size;
	uint32_t lock_days;      /* Object Lock: days of COMPLIANCE retention (0: none) */
	int id_hash;             /* enum kbv_id_hash: how blob ids are made */
	struct kbv_keys *keys;   /* sodium_malloc()ed; NULL until unlocked */
	struct kbv_cdc cdc;      /* valid once unlocked */
	struct kbv_index *idx;
	struct kbv_keyobj *keyobjs; /* every key object, `key` first */
	size_t nkeyobjs;
	int key_used;            /* index of the one that unlocked keys; -1 before */
	struct kbv_backend *be;  /* where the objects are (backend.h) */
	/* Packs written and indexed that no index object lists yet (object storage only;
	 * store/idxobj.h): their body parts, under idx_mu. */
	pthread_mutex_t idx_mu;
	struct kbv_buf idx_pend;
	uint32_t idx_pend_packs;
	/* gc's deletion plans as listed before the cache was refreshed (object storage;
	 * store/plan.h): writers do not use the packs they name. NULL on a local repository. */
	struct kbv_plans *plans;
	/* The index numbers of the packs those plans name (sorted; set by each cache refresh):
	 * a blob located in one counts as absent to writers, and a copy elsewhere takes over
	 * its location. */
	uint32_t *condemned;
	size_t ncondemned;
	int nwriters; /* writers alive on this handle (engine/writer.c) */
	unsigned will_list; /* kbv_repo_will_list(): the kinds listed at unlock, 1 << kind each */
};

/* Key objects (src/store/keys.c). List their names into r->keyobjs (`key` first); then
 * read and check them all (at least one sound, else the first one's error); free them;
 * unwrap the master keys into r->keys with the first key the password opens (KBV_EAUTH
 * when none does). */
int kbv_repo_list_keys(struct kbv_repo *r);
int kbv_repo_read_keys(struct kbv_repo *r);
void kbv_repo_free_keys(struct kbv_repo *r);
int kbv_repo_try_keys(struct kbv_repo *r, const char *pw, size_t pwlen);
/* The first key object that passed its checks, or NULL. */
const struct kbv_keyobj *kbv_repo_first_key(const struct kbv_repo *r);
/* A key file: version 1 when meta is NULL, else version 2 with that JSON metadata. */
int kbv_keyfile_make(const uint8_t repo_id[16], int encrypted, const struct kbv_keys *keys, const char *pw,
		     size_t pwlen, uint64_t ops, uint64_t mem, const char *meta, struct kbv_buf *out);
/* Unwrap a checked key file's material into keys: 0, or KBV_EAUTH for another password. */
int kbv_keyfile_unwrap(const uint8_t *k, const char *pw, size_t pwlen, struct kbv_keys *keys);

/* Bring the index cache of a repository on object storage up to date with the packs the
 * storage holds (src/store/cache.c): index the packs it lacks from index objects, else
 * from their trailers; drop the packs that are gone. Counts what it did into *rep; a pack
 * whose trailer is damaged is counted and left out (check and repair name it). */
int kbv_repo_refresh_cache(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_cache_report *rep);
/* kbv_repo_refresh_cache into r->cache with a codec of its own; 0 at once on a local
 * repository. */
int kbv_repo_catch_up(struct kbv_repo *r);

#endif
