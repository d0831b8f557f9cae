/* The fields of an open repository, for the library's own modules (store, engine) and its
 * white-box tests; the CLI and other callers use the functions of kbv/repo.h. Every field
 * is owned by the handle and valid until kbv_repo_close(); callers only read them. */
#ifndef KBV_STORE_REPO_IMPL_H
#define KBV_STORE_REPO_IMPL_H

#include "kbv/repo.h"
#include "store/index.h"

struct kbv_repo {
	char *path;
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

#endif
