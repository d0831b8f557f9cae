/* The index of a repository on object storage is a cache on this host
 * ($XDG_CACHE_HOME/kbvault/<repository id>/index): other hosts add packs to the bucket
 * and their gc removes some. Before it is used, the cache is brought up to date with the
 * bucket: one listing of the packs; packs the cache lacks are indexed from the index
 * objects (store/idxobj.c) and, when none lists them, from their own trailers (ranged
 * GETs); packs the bucket no longer holds are dropped. An idle repository costs one
 * listing; a new host with an empty cache fetches the index objects, not every pack. */
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/cache.h"
#include "store/idxobj.h"
#include "store/pack.h"
#include "store/plan.h"
#include "store/repo_impl.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "kbv/idset.h"

static void pad(const uint8_t packid[KBV_PACKID_BYTES], uint8_t out[32])
{
	memset(out, 0, 32);
	memcpy(out, packid, KBV_PACKID_BYTES);
}

static int on_listed(void *arg, const uint8_t packid[KBV_PACKID_BYTES], uint64_t size, int64_t mtime)
{
	struct kbv_pack_listing *l = arg;
	uint8_t k[32];
	(void)mtime;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		void *p = realloc(l->p, cap * sizeof *l->p);
		if (!p)
			return kbv_error(KBV_ENOMEM, "out of memory");
		l->p = p;
		l->cap = cap;
	}
	memcpy(l->p[l->n].id, packid, KBV_PACKID_BYTES);
	l->p[l->n].size = size;
	l->p[l->n++].need = 0;
	pad(packid, k);
	return kbv_idset_add(&l->there, k);
}

struct known {
	const struct kbv_idset *there;
	struct kbv_idset have; /* packs in the cache */
	uint32_t *gone;        /* packs in the cache that the bucket no longer holds */
	uint8_t (*gone_ids)[KBV_PACKID_BYTES];
	size_t ngone, cap;
};

struct indexed {
	uint32_t packno;
	uint8_t id[KBV_PACKID_BYTES];
};

static int collect_indexed(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	struct indexed x = { packno, { 0 } };
	memcpy(x.id, info->id, KBV_PACKID_BYTES);
	return kbv_buf_add(arg, &x, sizeof x);
}

static int on_indexed(struct known *k, const struct indexed *x)
{
	uint32_t packno = x->packno;
	uint8_t key[32];
	pad(x->id, key);
	if (kbv_idset_has(&k->have, key) == 0 && kbv_idset_add(&k->have, key) < 0)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (kbv_idset_has(k->there, key))
		return 0;
	if (k->ngone == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		uint32_t *p = realloc(k->gone, cap * sizeof *p);
		if (p)
			k->gone = p;
		void *q = realloc(k->gone_ids, cap * KBV_PACKID_BYTES);
		if (q)
			k->gone_ids = q;
		if (!p || !q)
			return kbv_error(KBV_ENOMEM, "out of memory");
		k->cap = cap;
	}
	memcpy(k->gone_ids[k->ngone], x->id, KBV_PACKID_BYTES);
	k->gone[k->ngone++] = packno;
	return 0;
}

static int cmp_want(const void *a, const void *b)
{
	return memcmp(((const struct kbv_want_pack *)a)->id, ((const struct kbv_want_pack *)b)->id, KBV_PACKID_BYTES);
}

void kbv_pack_listing_release(struct kbv_pack_listing *pl)
{
	if (pl->lockfd >= 0)
		close(pl->lockfd);
	pl->lockfd = -1;
	kbv_buf_release(&pl->indexed);
	kbv_idset_release(&pl->there);
	free(pl->p);
	pl->p = NULL;
	pl->n = pl->cap = 0;
}

/* This host's refresh lock, into *fd: one process of this host refreshes at a time; the
 * others wait and then find little left to do. */
static int take_lock(struct kbv_repo *r, int *fd)
{
	char lockpath[PATH_MAX];
	int rc = kbv_path(lockpath, sizeof lockpath, "%s/refresh.lock", r->local);
	if (rc < 0)
		return rc;
	*fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0 || flock(*fd, LOCK_EX) < 0)
		return kbv_error(KBV_EIO, "lock '%s': %m", lockpath);
	return 0;
}

/* The index's generation: the id of the last transaction written to it. */
static int index_generation(struct kbv_repo *r, size_t *gen)
{
	MDB_txn *txn = NULL;
	int rc = kbv_index_rbegin(r->idx, &txn);
	if (rc < 0)
		return rc;
	*gen = mdb_txn_id(txn);
	kbv_index_rend(txn);
	return 0;
}

/* With the lock held: the packs the cache indexes, then the storage's. */
static int fill_listing(struct kbv_repo *r, struct kbv_pack_listing *pl)
{
	MDB_txn *txn = NULL;
	int rc;
	kbv_buf_release(&pl->indexed);
	kbv_idset_release(&pl->there);
	pl->n = 0;
	/* The index is read before the storage is listed: a pack indexed by then was uploaded
	 * before, so missing from the listing means gone (other processes of this host index
	 * what they upload meanwhile; those packs are neither here nor dropped). */
	if ((rc = kbv_index_rbegin(r->idx, &txn)) < 0)
		return rc;
	pl->gen = mdb_txn_id(txn);
	rc = kbv_index_each_pack(r->idx, txn, collect_indexed, &pl->indexed);
	kbv_index_rend(txn);
	pl->from = kbv_be_tick();
	return rc < 0 ? rc : kbv_each_packfile(r, on_listed, pl);
}

int kbv_repo_list_packs(struct kbv_repo *r, struct kbv_pack_listing *pl, int hold)
{
	int rc = 0;
	memset(pl, 0, sizeof *pl);
	pl->lockfd = -1;
	pl->there = (struct kbv_idset)KBV_IDSET_INIT;
	TRY(take_lock(r, &pl->lockfd));
	TRY(fill_listing(r, pl));
out:
	if (rc < 0)
		kbv_pack_listing_release(pl);
	else if (!hold) {
		close(pl->lockfd);
		pl->lockfd = -1;
	}
	return rc;
}

int kbv_repo_refresh_cache(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_cache_report *rep)
{
	struct kbv_pack_listing pl;
	int rc = kbv_repo_list_packs(r, &pl, 1);
	if (rc < 0) {
		memset(rep, 0, sizeof *rep);
		return rc;
	}
	return kbv_repo_apply_listing(r, codec, &pl, rep);
}

int kbv_repo_apply_listing(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_pack_listing *pl,
			   struct kbv_cache_report *rep)
{
	struct known k = { &pl->there, KBV_IDSET_INIT, NULL, NULL, 0, 0 };
	struct kbv_buf entries = KBV_BUF_INIT;
	int rc = 0;
	memset(rep, 0, sizeof *rep);
	if (pl->lockfd < 0) {
		/* Listed earlier without the lock held since: when the index changed meanwhile
		 * (another process of this host refreshed it, or indexed what it uploaded), list
		 * again, so that what the cache held was read before the listing, as above. */
		size_t gen = 0;
		TRY(take_lock(r, &pl->lockfd));
		TRY(index_generation(r, &gen));
		if (gen != pl->gen) {
			kbv_be_list_drop(r->be, KBV_OBJ_INDEX); /* made after the old one: listed anew */
			TRY(fill_listing(r, pl));
		}
	}
	for (size_t off = 0; rc == 0 && off < pl->indexed.len; off += sizeof(struct indexed))
		rc = on_indexed(&k, (const struct indexed *)(pl->indexed.data + off));
	TRY(rc);
	if (r->plans) { /* a copy merged below takes over a location in a condemned pack */
		free(r->condemned);
		r->condemned = NULL;
		TRY(kbv_plans_packnos(r, r->plans, &r->condemned, &r->ncondemned));
	}
	/* A listing may lag behind a PUT on some stores: gone only when the object says so. */
	size_t keep = 0;
	for (size_t i = 0; i < k.ngone; i++) {
		char hex[2 * KBV_PACKID_BYTES + 1];
		struct kbv_be_rd *rd = NULL;
		kbv_hex(k.gone_ids[i], KBV_PACKID_BYTES, hex);
		rc = kbv_be_open(r->be, KBV_OBJ_PACK, hex, &rd, NULL);
		kbv_be_close(rd);
		if (rc == KBV_ENOTFOUND) {
			k.gone[keep] = k.gone[i];
			memcpy(k.gone_ids[keep++], k.gone_ids[i], KBV_PACKID_BYTES);
		} else if (rc < 0) {
			goto out;
		}
		rc = 0;
	}
	k.ngone = keep;
	/* Packs gone first, then new ones: a blob a gone pack held and a new pack holds too
	 * (gc repacked it, or a writer stored it again) is then located in the new one. */
	uint64_t lost = 0;
	if (k.ngone) {
		TRY(kbv_index_drop_packs(r->idx, k.gone, k.ngone, &lost));
		rep->dropped = k.ngone;
	}
	size_t nwant = 0;
	for (size_t i = 0; i < pl->n; i++) {
		uint8_t key[32];
		pad(pl->p[i].id, key);
		if (kbv_idset_has(&k.have, key))
			continue;
		pl->p[nwant] = pl->p[i];
		pl->p[nwant++].need = 1;
	}
	if (nwant) {
		qsort(pl->p, nwant, sizeof *pl->p, cmp_want);
		TRY(kbv_repo_merge_index_objects(r, codec, pl->p, nwant, &rep->index_objects, &rep->from_index,
						 &rep->damaged_index, rep->damaged_index_name));
	}
	for (size_t i = 0; i < nwant; i++) {
		size_t n;
		if (!pl->p[i].need)
			continue;
		struct kbv_pack_info info;
		rc = kbv_pack_read_trailer(r, codec, pl->p[i].id, &entries, &n, &info.size);
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
			/* One damaged pack costs what is in it, not the repository: check and
			 * repair index name it. */
			rep->damaged++;
			rc = 0;
			continue;
		}
		TRY(rc);
		memcpy(info.id, pl->p[i].id, KBV_PACKID_BYTES);
		info.blobs = (uint32_t)n;
		const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
		TRY(kbv_index_add_packs_over(r->idx, &info, &e, &n, 1, r->condemned, r->ncondemned));
		rep->from_trailers++;
	}
	if (lost) {
		/* Some blobs lost their only indexed location; a copy may sit in a pack this cache
		 * indexed earlier (without them: the first location stays). The index objects say. */
		uint64_t filled = 0;
		TRY(kbv_repo_fill_from_index_objects(r, codec, &filled));
		rep->refilled = filled;
	}
	if (r->plans) { /* again: packs just indexed may be condemned too */
		free(r->condemned);
		r->condemned = NULL;
		TRY(kbv_plans_packnos(r, r->plans, &r->condemned, &r->ncondemned));
	}
	if (pl->from > r->cache_from)
		r->cache_from = pl->from;
out:
	/* an index listing kept for this refresh (kbv_repo_unlock) serves no later one */
	kbv_be_list_drop(r->be, KBV_OBJ_INDEX);
	kbv_pack_listing_release(pl);
	kbv_buf_release(&entries);
	kbv_idset_release(&k.have);
	free(k.gone);
	free(k.gone_ids);
	return rc;
}

int kbv_repo_catch_up_listed(struct kbv_repo *r, struct kbv_pack_listing *pl)
{
	struct kbv_codec *codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	int rc;
	if (!codec) {
		if (pl)
			kbv_pack_listing_release(pl);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	rc = pl ? kbv_repo_apply_listing(r, codec, pl, &r->cache) : kbv_repo_refresh_cache(r, codec, &r->cache);
	kbv_codec_free(codec);
	return rc;
}

int kbv_repo_catch_up(struct kbv_repo *r)
{
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL)
		return 0;
	return kbv_repo_catch_up_listed(r, NULL);
}
