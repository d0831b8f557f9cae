/* The refresh of the index cache of a repository on object storage (cache.c) in its two
 * halves: the listing, which needs no key, and applying it, which does. A repository
 * opens with the listing beside the derivation of its key (repo.c, kbv_repo_unlock);
 * kbv_repo_refresh_cache (repo_impl.h) is the two one after the other. */
#ifndef KBV_STORE_CACHE_H
#define KBV_STORE_CACHE_H

#include "kbv/buf.h"
#include "kbv/idset.h"
#include "store/idxobj.h"
#include "store/repo_impl.h"

#include <stddef.h>

struct kbv_pack_listing {
	int lockfd;               /* this host's refresh lock while it is held; else -1 */
	size_t gen;               /* the index's generation when it was read (mdb_txn_id) */
	uint64_t from;            /* kbv_be_tick() before the storage was listed */
	struct kbv_buf indexed;   /* the packs the cache indexed before the storage was listed */
	struct kbv_idset there;   /* packs in the storage, ids padded to 32 bytes */
	struct kbv_want_pack *p;  /* the same with their sizes */
	size_t n, cap;
};

/* Take this host's refresh lock, read the packs the cache indexes, then list the packs in
 * the storage, in that order (a pack indexed before the listing and missing from it is
 * gone). `hold`: keep the lock until kbv_repo_apply_listing or kbv_pack_listing_release;
 * else it is let go at once (the key's derivation must not keep other processes of this
 * host waiting for it). On an error nothing is held. */
int kbv_repo_list_packs(struct kbv_repo *r, struct kbv_pack_listing *pl, int hold);
/* Bring the cache up to date with the listing (kbv_repo_refresh_cache's second half),
 * under the lock (taken again when it was let go: if the index changed since it was read,
 * it is read and the storage listed again first); counts into *rep; releases *pl whatever
 * the return. */
int kbv_repo_apply_listing(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_pack_listing *pl,
			   struct kbv_cache_report *rep);
/* kbv_repo_catch_up with the listing given (NULL: listed here); releases *pl. */
int kbv_repo_catch_up_listed(struct kbv_repo *r, struct kbv_pack_listing *pl);
void kbv_pack_listing_release(struct kbv_pack_listing *pl);

#endif
