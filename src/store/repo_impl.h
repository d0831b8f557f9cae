/* The fields of an open repository, for the library's own modules (store, engine) and its
 * white-box tests; the CLI and other callers use the functions of kbv/repo.h. Every field
 * is owned by the handle and valid until kbv_repo_close(); callers only read them. */
#ifndef KBV_STORE_REPO_IMPL_H
#define KBV_STORE_REPO_IMPL_H

#include "kbv/repo.h"
#include "store/index.h"

struct kbv_repo {
	char *path;  /* as opened: a directory or an s3: URL */
	char *local; /* this host's directory for lock, tmp/ and index/: path itself for a local
		      * repository, the cache directory for one on object storage */
	uint64_t cache_added, cache_dropped, cache_damaged; /* the last cache refresh */
	int lockfd;
	uint8_t repo_id[16];
	int encrypted;
	uint32_t chunk_min, chunk_avg, chunk_max;
	int zstd_level;
	uint32_t pack_size;
	struct kbv_keys *keys;   /* sodium_malloc()ed; NULL until unlocked */
	struct kbv_cdc cdc;      /* valid once unlocked */
	struct kbv_index *idx;
	struct kbv_buf keyfile;  /* raw key file */
	struct kbv_backend *be;  /* where the objects are (backend.h) */
};

/* Bring the index cache of a repository on object storage up to date with the packs the
 * storage holds (src/store/cache.c): index the packs it lacks from their trailers, drop the
 * packs that are gone. Counts what it did; a pack whose trailer is damaged is counted in
 * *damaged and left out (check and repair name it). */
int kbv_repo_refresh_cache(struct kbv_repo *r, struct kbv_codec *codec, uint64_t *added, uint64_t *dropped,
			   uint64_t *damaged);

#endif
