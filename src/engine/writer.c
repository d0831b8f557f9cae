#include "kbv/writer.h"
#include "codec/xxh.h"
#include "engine/cutter.h"
#include "engine/hints.h"
#include "engine/readahead.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/idset.h"
#include "store/idxobj.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "store/plan.h"
#include "kbv/pool.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SLOTS_PER_BATCH_THREAD 3
/* Durable packs are indexed in groups: each LMDB write transaction copies the pages it
 * touches, and with random keys that is most of the tree, so one transaction per pack
 * made the index file 2.6x its live size. A group bounds the memory for the ids not yet
 * indexed (~30 MiB at 32 packs). */
#define INDEX_GROUP 32

/* A job is a batch of consecutive chunks (about BATCH bytes), so the threads meet once per
 * batch rather than once per chunk. The worker puts the batch's new chunks, in order, into
 * bundles of up to KBV_BUNDLE_TARGET bytes (format/blob.md) and seals them. */
#define BATCH (1u << 20)
/* A pipe is read ahead by this many batches (engine/readahead.h), on a thread of its own,
 * when there are at least READ_AHEAD_THREADS workers: with fewer, the reading thread keeps
 * up with them, and the bytes read on one core and cut on another cost more CPU than the
 * thread saves (docs/benchmarks.md). */
#define READ_AHEAD 4
#define READ_AHEAD_THREADS 4
/* A regular file is read in pieces on the cutter's helpers (engine/cutter.h) only when
 * the machine has a CPU for them beside the workers: where the workers take every CPU,
 * the helpers' reads wait behind them and the reading thread waits for the last piece
 * (an unchanged re-snapshot on 2 CPUs, 2 workers: 1.06 s against 0.86 s with the reading
 * thread reading alone, docs/benchmarks.md). KBVAULT_READ_PIECES=1 or 0 decides instead
 * (tests read in pieces on 2-CPU machines so). */
static int read_in_pieces(size_t nworkers)
{
	const char *e = getenv("KBVAULT_READ_PIECES");
	if (e && *e)
		return strcmp(e, "0") != 0;
	return kbv_pool_default_threads() > nworkers;
}

enum { CHUNK_NEW = 0, CHUNK_KNOWN = 1, CHUNK_DUP = 2 };

struct job {
	uint8_t *buf;           /* cap bytes from malloc(); a pipe's reader swaps it (readahead.h) */
	uint8_t *data;          /* the batch's input bytes: in buf, at most chunk_max bytes in */
	size_t len, cap;
	uint32_t n, maxn;       /* chunks in the batch */
	uint32_t *lens;         /* their lengths */
	uint32_t *offs;         /* their offsets in data */
	uint8_t (*ids)[KBV_ID_BYTES];
	uint8_t *state;         /* CHUNK_NEW (in a bundle), _KNOWN (in the index), _DUP (earlier in batch) */
	/* Bundles: bundle b holds members first[b] .. first[b]+count[b]-1 of the new chunks,
	 * whose batch indexes are in newidx; its envelope is envs[env_off[b] ..], whose
	 * XXH3-64 (the pack trailer's checksum) is env_xxh[b], taken by the worker */
	uint32_t nnew, nb;
	uint32_t *newidx, *first, *count;
	size_t *env_off, *env_len;
	uint64_t *env_xxh;
	uint8_t (*bids)[KBV_ID_BYTES]; /* scratch: member ids of one bundle */
	uint32_t *blens;
	const uint8_t **bptrs;
	struct kbv_buf envs;
	struct kbv_buf tmp;
	int rc;
	char err[256];
};

struct worker {
	struct kbv_writer *w;
	struct kbv_codec *codec;
	MDB_txn *txn;
	unsigned gen;
	struct kbv_idset batch; /* new ids seen in the current batch */
};

struct level {
	struct kbv_buf ids;
};

struct kbv_writer {
	struct kbv_repo *repo;
	int lockfd;                 /* tmp/writer-*.lock, held while this writer lives */
	char lockpath[PATH_MAX];
	struct kbv_pool *pool;
	struct worker *workers;
	void **wptrs;
	size_t nworkers;
	int read_pieces; /* read_in_pieces() */
	atomic_uint gen;          /* bumped after each index commit */
	struct kbv_codec *codec;  /* the packing thread's (the caller's between streams) */
	MDB_txn *txn;             /* its read view */
	struct kbv_packw *pack;
	/* Packs written durably but not indexed yet, and the ids in them and in the open pack. */
	struct kbv_pack_info done_info[INDEX_GROUP];
	struct kbv_buf done_entries[INDEX_GROUP];
	size_t ndone;
	struct kbv_idset pending;
	struct level levels[KBV_TREE_MAX_DEPTH + 1];
	int nlevels;
	struct kbv_digester hs; /* updated only by the pool's serial stage */
	int digest_alg;          /* what the next stream is hashed with */
	uint64_t stream_size;
	struct kbv_writer_stats st;
	kbv_progress_fn progress;
	void *progress_arg;
	uint8_t *rbuf;
	struct kbv_cutter *cutter; /* the reading thread's cuts, on as many cores as workers */
	char *hint_name;           /* the next stream's name for its cut hints (engine/hints.h) */
	int hints_pruned;          /* their folder's old files removed, once per writer */
	struct kbv_hints *hints;   /* the current stream's */
	char cerr[1024];           /* the packing thread's first error message */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Is the blob indexed in a pack no plan names? 0 when not (absent, or only in a condemned
 * pack), 1 when it is, or an error. */
static int indexed_usable(const struct kbv_writer *w, MDB_txn *txn, const uint8_t *id)
{
	struct kbv_loc loc;
	int rc = kbv_index_get(w->repo->idx, txn, id, &loc);
	if (rc == KBV_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	/* gc's plans name the pack: stored again (format/repository.md, "Many writers and gc") */
	const struct kbv_repo *r = w->repo;
	if (r->ncondemned && bsearch(&loc.pack, r->condemned, r->ncondemned, sizeof *r->condemned, cmp_u32))
		return 0;
	return 1;
}


void kbv_ref_put(uint8_t out[33], const struct kbv_ref *ref)
{
	out[0] = ref->depth;
	memcpy(out + 1, ref->id, KBV_ID_BYTES);
}

void kbv_ref_get(const uint8_t in[33], struct kbv_ref *ref)
{
	ref->depth = in[0];
	memcpy(ref->id, in + 1, KBV_ID_BYTES);
}

/* ---- workers ---- */

/* Lay out new chunks newidx[from..to) of a job as a bundle's member table (ids, lengths,
 * content pointers) in the job's scratch arrays; returns the member count. Used by the
 * worker to seal the bundle and by the packing thread to list it in the pack. */
static uint32_t gather_members(struct job *j, uint32_t from, uint32_t to)
{
	uint32_t k = 0;
	for (uint32_t m = from; m < to; m++, k++) {
		uint32_t i = j->newidx[m];
		memcpy(j->bids[k], j->ids[i], KBV_ID_BYTES);
		j->blens[k] = j->lens[i];
		j->bptrs[k] = j->data + j->offs[i];
	}
	return k;
}

static int seal_bundle(struct worker *wk, struct job *j, uint32_t from, uint32_t to)
{
	uint32_t k = gather_members(j, from, to);
	int rc = kbv_bundle_encode(wk->codec, k, (const uint8_t(*)[KBV_ID_BYTES])j->bids, j->blens, j->bptrs, &j->tmp);
	if (rc < 0)
		return rc;
	j->first[j->nb] = from;
	j->count[j->nb] = k;
	j->env_off[j->nb] = j->envs.len;
	j->env_len[j->nb] = j->tmp.len;
	j->env_xxh[j->nb] = XXH3_64bits(j->tmp.data, j->tmp.len);
	j->nb++;
	return kbv_buf_add(&j->envs, j->tmp.data, j->tmp.len);
}

static void work(void *wp, void *jp)
{
	struct worker *wk = wp;
	struct job *j = jp;
	int rc = 0;
	unsigned gen = atomic_load(&wk->w->gen);
	if (gen != wk->gen && kbv_index_renew(wk->txn) == 0)
		wk->gen = gen;
	j->envs.len = 0;
	j->nnew = j->nb = 0;
	kbv_idset_clear(&wk->batch);
	size_t off = 0;
	for (uint32_t i = 0; i < j->n; off += j->lens[i], i++)
		j->offs[i] = (uint32_t)off;
	kbv_blob_ids(wk->w->repo->keys, KBV_BLOB_DATA, j->data, j->offs, j->lens, j->n, j->ids);
	for (uint32_t i = 0; i < j->n && rc == 0; i++) {
		if (kbv_idset_has(&wk->batch, j->ids[i])) {
			j->state[i] = CHUNK_DUP;
			continue;
		}
		rc = indexed_usable(wk->w, wk->txn, j->ids[i]);
		if (rc == 1) {
			rc = 0;
			j->state[i] = CHUNK_KNOWN;
		} else if (rc == 0) {
			j->state[i] = CHUNK_NEW;
			j->newidx[j->nnew++] = i;
			rc = kbv_idset_add(&wk->batch, j->ids[i]);
		}
	}
	/* Runs of new chunks, in stream order, up to KBV_BUNDLE_TARGET bytes each. */
	uint32_t from = 0;
	size_t bytes = 0;
	for (uint32_t m = 0; m < j->nnew && rc == 0; m++) {
		uint32_t len = j->lens[j->newidx[m]];
		if (m > from && bytes + len > KBV_BUNDLE_TARGET) {
			rc = seal_bundle(wk, j, from, m);
			from = m;
			bytes = 0;
		}
		bytes += len;
	}
	if (rc == 0 && from < j->nnew)
		rc = seal_bundle(wk, j, from, j->nnew);
	j->rc = rc;
	if (rc < 0)
		snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
}

/* The serial stage: the whole-stream digest, in stream order, off the reading thread. */
static void hash_stage(void *wp, void *jp)
{
	struct kbv_writer *w = wp;
	struct job *j = jp;
	kbv_digester_update(&w->hs, j->data, j->len);
}

static int consume(void *arg, void *job);

int kbv_writer_new(struct kbv_repo *r, size_t nthreads, struct kbv_writer **out)
{
	struct kbv_writer *w = calloc(1, sizeof *w);
	int rc = 0;
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	w->repo = r;
	r->nwriters++;
	w->lockfd = -1;
	w->digest_alg = KBV_DIGEST_DEFAULT;
	/* A writer announces itself for as long as it runs, so a check beside it can tell the
	 * packs it has not indexed yet from garbage (format/repository.md, tmp/). */
	uint8_t rnd[8];
	char hex[17];
	randombytes_buf(rnd, sizeof rnd);
	kbv_hex(rnd, sizeof rnd, hex);
	char tmp[PATH_MAX];
	TRY(kbv_repo_sub(r, "tmp", tmp, sizeof tmp));
	TRY(kbv_path(w->lockpath, sizeof w->lockpath, "%s/writer-%s.lock", tmp, hex));
	w->lockfd = open(w->lockpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->lockfd < 0 || flock(w->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = kbv_error(KBV_EIO, "create '%s': %s", w->lockpath, strerror(errno));
		goto out;
	}
	if (!nthreads)
		nthreads = kbv_pool_default_threads();
	w->nworkers = nthreads;
	w->read_pieces = read_in_pieces(nthreads);
	w->workers = calloc(nthreads, sizeof *w->workers);
	w->wptrs = calloc(nthreads, sizeof *w->wptrs);
	w->codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	w->rbuf = malloc(BATCH + r->chunk_max); /* a slot's tail, for the next slot */
	TRY(kbv_cutter_new(&r->cdc, nthreads, BATCH / r->chunk_min + 2, &w->cutter));
	if (!w->workers || !w->wptrs || !w->codec || !w->rbuf) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	TRY(kbv_index_rbegin(r->idx, &w->txn));
	if (r->plans)
		TRY(kbv_plans_usable(r->plans));
	for (size_t i = 0; i < nthreads; i++) {
		w->workers[i].w = w;
		w->workers[i].codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
		if (!w->workers[i].codec) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		TRY(kbv_index_rbegin(r->idx, &w->workers[i].txn));
		w->wptrs[i] = &w->workers[i];
	}
	w->pool = kbv_pool_new(nthreads, nthreads * SLOTS_PER_BATCH_THREAD, sizeof(struct job), work, w->wptrs, hash_stage, w);
	if (!w->pool || kbv_pool_consume_beside(w->pool, consume, w) < 0) {
		rc = kbv_error(KBV_ENOMEM, "cannot start %zu worker threads", nthreads);
		goto out;
	}
	kbv_pool_name(w->pool, "kbv-work", "kbv-hash", "kbv-pack");
	for (size_t i = 0; i < kbv_pool_nslots(w->pool); i++) {
		struct job *j = kbv_pool_slot(w->pool, i);
		j->cap = BATCH + r->chunk_max;
		j->maxn = BATCH / r->chunk_min + 2;
		j->data = j->buf = malloc(j->cap);
		j->lens = malloc(j->maxn * sizeof *j->lens);
		j->offs = malloc(j->maxn * sizeof *j->offs);
		j->ids = malloc(j->maxn * sizeof *j->ids);
		j->state = malloc(j->maxn);
		j->newidx = malloc(j->maxn * sizeof *j->newidx);
		j->first = malloc(j->maxn * sizeof *j->first);
		j->count = malloc(j->maxn * sizeof *j->count);
		j->env_off = malloc(j->maxn * sizeof *j->env_off);
		j->env_len = malloc(j->maxn * sizeof *j->env_len);
		j->env_xxh = malloc(j->maxn * sizeof *j->env_xxh);
		j->bids = malloc(j->maxn * sizeof *j->bids);
		j->blens = malloc(j->maxn * sizeof *j->blens);
		j->bptrs = malloc(j->maxn * sizeof *j->bptrs);
		if (!j->data || !j->lens || !j->offs || !j->ids || !j->state || !j->newidx || !j->first || !j->count ||
		    !j->env_off || !j->env_len || !j->env_xxh || !j->bids || !j->blens || !j->bptrs ||
		    kbv_buf_reserve(&j->envs, kbv_blob_bound(j->cap + (size_t)j->maxn * (KBV_BUNDLE_ENTRY + 64))) < 0 ||
		    kbv_buf_reserve(&j->tmp, kbv_blob_bound(KBV_BUNDLE_TARGET + r->chunk_max)) < 0) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
	}
	*out = w;
	w = NULL;
out:
	kbv_writer_free(w);
	return rc;
}

void kbv_writer_digest(struct kbv_writer *w, int alg) { w->digest_alg = alg; }

int kbv_writer_hint(struct kbv_writer *w, const char *name)
{
	free(w->hint_name);
	if (!(w->hint_name = name ? strdup(name) : NULL) && name)
		return kbv_error(KBV_ENOMEM, "out of memory");
	return 0;
}

/* The cut hints of the stream named by kbv_writer_hint(), if this host has a cache
 * directory for the repository: CACHE/cuts/, under a key derived from the repository's
 * keys (format/repository.md, "Cut hints"). */
static int hints_open(struct kbv_writer *w)
{
	const struct kbv_repo *r = w->repo;
	char dir[PATH_MAX];
	uint8_t key[32];
	int rc = 0;
	char *name = w->hint_name;
	w->hint_name = NULL;
	if (!name || !r->cache_path || kbv_path(dir, sizeof dir, "%s/cuts", r->cache_path) < 0)
		goto out;
	kbv_meta_local_key(r->keys, "kbvault cut hints v1", key);
	if (!w->hints_pruned) {
		kbv_hints_prune(dir);
		w->hints_pruned = 1;
	}
	rc = kbv_hints_open(dir, key, name, &r->cdc, &w->hints);
	sodium_memzero(key, sizeof key);
out:
	free(name);
	return rc;
}

void kbv_writer_set_progress(struct kbv_writer *w, kbv_progress_fn fn, void *arg)
{
	w->progress = fn;
	w->progress_arg = arg;
}

const struct kbv_writer_stats *kbv_writer_stats(const struct kbv_writer *w) { return &w->st; }

void kbv_writer_free(struct kbv_writer *w)
{
	if (!w)
		return;
	w->repo->nwriters--;
	if (w->lockfd >= 0) {
		unlink(w->lockpath);
		close(w->lockfd);
	}
	if (w->pool) {
		/* Wait out in-flight jobs; idle workers never touch a slot, so the buffers can go
		 * before the pool joins its threads. */
		kbv_pool_discard(w->pool);
		for (size_t i = 0; i < kbv_pool_nslots(w->pool); i++) {
			struct job *j = kbv_pool_slot(w->pool, i);
			free(j->buf);
			free(j->lens);
			free(j->offs);
			free(j->ids);
			free(j->state);
			free(j->newidx);
			free(j->first);
			free(j->count);
			free(j->env_off);
			free(j->env_len);
			free(j->env_xxh);
			free(j->bids);
			free(j->blens);
			free(j->bptrs);
			kbv_buf_release(&j->envs);
			kbv_buf_release(&j->tmp);
		}
		kbv_pool_free(w->pool);
	}
	kbv_digester_release(&w->hs); /* after the pool's threads, its serial stage among them */
	for (size_t i = 0; i < w->nworkers && w->workers; i++) {
		kbv_codec_free(w->workers[i].codec);
		kbv_index_rend(w->workers[i].txn);
		kbv_idset_release(&w->workers[i].batch);
	}
	kbv_packw_free(w->pack);
	kbv_codec_free(w->codec);
	kbv_index_rend(w->txn);
	kbv_idset_release(&w->pending);
	for (size_t i = 0; i < INDEX_GROUP; i++)
		kbv_buf_release(&w->done_entries[i]);
	for (int i = 0; i <= KBV_TREE_MAX_DEPTH; i++)
		kbv_buf_release(&w->levels[i].ids);
	free(w->workers);
	free(w->wptrs);
	free(w->rbuf);
	kbv_cutter_free(w->cutter);
	kbv_hints_close(w->hints, 0);
	free(w->hint_name);
	free(w);
}

/* ---- packs ---- */

/* Index the durable packs waiting in done_*, in one transaction. */
static int index_done(struct kbv_writer *w)
{
	const struct kbv_pack_entry *entries[INDEX_GROUP];
	size_t counts[INDEX_GROUP];
	int rc = 0;
	if (!w->ndone)
		return 0;
	for (size_t i = 0; i < w->ndone; i++) {
		entries[i] = (const struct kbv_pack_entry *)w->done_entries[i].data;
		counts[i] = w->done_entries[i].len / sizeof(struct kbv_pack_entry);
	}
	/* the packs are durable before anything points at them */
	TRY(kbv_be_sync(w->repo->be));
	if (kbv_fault("index-commit"))
		return kbv_error(KBV_EIO, "index commit: injected fault");
	TRY(kbv_index_add_packs_over(w->repo->idx, w->done_info, entries, counts, w->ndone, w->repo->condemned,
				     w->repo->ncondemned));
	/* on object storage, an index object will list them (before any manifest uses them) */
	TRY(kbv_repo_note_packs(w->repo, w->done_info, entries, counts, w->ndone));
	w->ndone = 0;
	if (!w->pack)
		kbv_idset_clear(&w->pending);
	atomic_fetch_add(&w->gen, 1);
	TRY(kbv_index_renew(w->txn));
out:
	return rc;
}

/* Make the open pack durable; index the group when it is full (or `index_now`). */
static int finish_pack(struct kbv_writer *w, int index_now)
{
	int rc = 0;
	if (w->pack) {
		struct kbv_buf *e = &w->done_entries[w->ndone];
		e->len = 0;
		/* on object storage the upload runs beside the next pack's work; index_done
		 * waits for it before the pack is indexed */
		TRY(kbv_packw_finish(w->pack, KBV_COMMIT_ASYNC, &w->done_info[w->ndone]));
		TRY(kbv_buf_add(e, kbv_packw_entries(w->pack), kbv_packw_count(w->pack) * sizeof(struct kbv_pack_entry)));
		w->ndone++;
		kbv_packw_free(w->pack);
		w->pack = NULL;
		w->st.packs++;
	}
	if (index_now || w->ndone == INDEX_GROUP)
		TRY(index_done(w));
out:
	return rc;
}

int kbv_writer_flush(struct kbv_writer *w)
{
	return finish_pack(w, 1);
}

/* Is the blob already stored (indexed, or in the open pack)? */
static int have_blob(struct kbv_writer *w, const uint8_t *id)
{
	if (kbv_idset_has(&w->pending, id))
		return 1;
	return indexed_usable(w, w->txn, id);
}

static int open_pack(struct kbv_writer *w)
{
	return w->pack ? 0 : kbv_packw_new(w->repo, w->codec, &w->pack);
}

static int pack_full(struct kbv_writer *w)
{
	return kbv_packw_size(w->pack) >= w->repo->pack_size ? finish_pack(w, 0) : 0;
}

/* A TREE blob in its own envelope. */
static int add_tree(struct kbv_writer *w, const uint8_t *id, const uint8_t *env, size_t env_len, size_t raw_len)
{
	int rc = 0;
	TRY(open_pack(w));
	TRY(kbv_packw_add(w->pack, KBV_BLOB_TREE, id, env, env_len, (uint32_t)raw_len));
	TRY(kbv_idset_add(&w->pending, id));
	w->st.new_stored_bytes += env_len;
	TRY(pack_full(w));
out:
	return rc;
}

/* Bundle b of job j, unless every member is stored already (another batch of this
 * snapshot stored it meanwhile: then the worker's seal is simply dropped). */
static int add_bundle(struct kbv_writer *w, struct job *j, uint32_t b)
{
	int rc = 0, fresh = 0;
	for (uint32_t m = j->first[b]; m < j->first[b] + j->count[b]; m++) {
		uint32_t i = j->newidx[m];
		int have = have_blob(w, j->ids[i]);
		TRY(have);
		j->state[i] = have ? CHUNK_KNOWN : CHUNK_NEW;
		fresh += !have;
	}
	if (!fresh)
		return 0;
	TRY(open_pack(w));
	gather_members(j, j->first[b], j->first[b] + j->count[b]);
	TRY(kbv_packw_add_bundle(w->pack, j->envs.data + j->env_off[b], j->env_len[b], j->env_xxh[b], j->count[b],
				 (const uint8_t(*)[KBV_ID_BYTES])j->bids, j->blens));
	for (uint32_t m = j->first[b]; m < j->first[b] + j->count[b]; m++) {
		uint32_t i = j->newidx[m];
		if (j->state[i] != CHUNK_NEW || kbv_idset_has(&w->pending, j->ids[i]))
			continue; /* a second copy: garbage, the index keeps the first */
		TRY(kbv_idset_add(&w->pending, j->ids[i]));
		w->st.new_chunks++;
		w->st.new_raw_bytes += j->lens[i];
	}
	w->st.new_stored_bytes += j->env_len[b];
	TRY(pack_full(w));
out:
	return rc;
}

/* ---- chunk-list tree ---- */

static int tree_push(struct kbv_writer *w, int level, const uint8_t *id);

static int tree_emit(struct kbv_writer *w, int level)
{
	struct kbv_buf *b = &w->levels[level].ids;
	struct kbv_buf env = KBV_BUF_INIT;
	uint8_t id[KBV_ID_BYTES];
	int rc = 0;
	kbv_blob_id(w->repo->keys, KBV_BLOB_TREE, b->data, b->len, id);
	int have = have_blob(w, id);
	TRY(have);
	if (!have) {
		TRY(kbv_blob_encode(w->codec, KBV_BLOB_TREE, id, b->data, b->len, &env));
		TRY(add_tree(w, id, env.data, env.len, b->len));
	}
	/* gc and restore on object storage read this node from here, not from the bucket (the
	 * reader uses it only once the index holds the node, so a failed snapshot's nodes are
	 * never read from here). */
	kbv_meta_put(w->repo, KBV_META_TREE, id, b->data, b->len);
	b->len = 0;
	TRY(tree_push(w, level + 1, id));
out:
	kbv_buf_release(&env);
	return rc;
}

static int tree_push(struct kbv_writer *w, int level, const uint8_t *id)
{
	if (level >= KBV_TREE_MAX_DEPTH)
		return kbv_error(KBV_EINVAL, "stream too large: chunk-list tree deeper than %d", KBV_TREE_MAX_DEPTH);
	struct kbv_buf *b = &w->levels[level].ids;
	int rc = kbv_buf_add(b, id, KBV_ID_BYTES);
	if (rc < 0)
		return rc;
	if (level + 1 > w->nlevels)
		w->nlevels = level + 1;
	if (kbv_get16(id + 30) % 512 == 0 || b->len == KBV_TREE_NODE_MAX * KBV_ID_BYTES)
		return tree_emit(w, level);
	return 0;
}

static int tree_finish(struct kbv_writer *w, struct kbv_ref *ref)
{
	int rc = 0;
	if (w->nlevels == 0) {
		ref->depth = KBV_REF_EMPTY;
		memset(ref->id, 0, KBV_ID_BYTES);
		return 0;
	}
	for (int k = 0;; k++) {
		struct kbv_buf *b = &w->levels[k].ids;
		if (k == w->nlevels - 1 && b->len == KBV_ID_BYTES) {
			ref->depth = (uint8_t)k;
			memcpy(ref->id, b->data, KBV_ID_BYTES);
			b->len = 0;
			break;
		}
		if (b->len)
			TRY(tree_emit(w, k));
	}
out:
	return rc;
}

/* ---- streams ---- */

/* The packing thread (the pool's consumer beside the reading thread): each finished batch,
 * in stream order, into packs and the chunk-list tree; packs made durable and indexed as
 * they fill. Everything below this point up to the stream's end (the open pack, the
 * pending ids, the tree levels, the stats, progress) is this thread's while a stream runs,
 * and the reading thread's again after kbv_pool_drain(). The write order is the one the
 * reading thread kept before (format/repository.md): only the thread changed. */
static int consume(void *arg, void *job)
{
	struct kbv_writer *w = arg;
	struct job *j = job;
	int rc = 0;
	if (j->rc < 0) {
		rc = kbv_error(j->rc, "%s", j->err);
		goto out;
	}
	/* Bundles first: a chunk's blob is in the pack before the tree refers to it. */
	for (uint32_t b = 0; b < j->nb; b++)
		TRY(add_bundle(w, j, b));
	for (uint32_t i = 0; i < j->n; i++) {
		w->st.chunks++;
		TRY(tree_push(w, 0, j->ids[i]));
	}
	w->st.raw_bytes += j->len;
	if (w->progress)
		w->progress(w->progress_arg, &w->st);
out:
	/* the message is this thread's (error.c): kept for the reading thread to raise */
	if (rc < 0)
		snprintf(w->cerr, sizeof w->cerr, "%s", kbv_errmsg());
	return rc;
}

/* The packing thread's failure, raised in the reading thread. */
static int packing_failed(struct kbv_writer *w, int rc)
{
	return kbv_error(rc, "%s", w->cerr);
}

/* A free job slot, once the packing thread has released one; stops at its failure. */
static int free_slot(struct kbv_writer *w, struct job **out)
{
	*out = kbv_pool_acquire_wait(w->pool);
	int rc = kbv_pool_failed(w->pool);
	return rc < 0 ? packing_failed(w, rc) : 0;
}

/* Cut chunks from the start of p[0..n) into j's lengths, about BATCH bytes of them;
 * without eof, stop where less than chunk_max is left (the next cut needs that much
 * look-ahead). On as many cores as there are workers (engine/cutter.c), with exactly the
 * cuts of one. Returns the bytes cut, j->len. */
static size_t cut_batch(struct kbv_writer *w, struct job *j, const uint8_t *p, size_t n, int eof)
{
	size_t count;
	if (w->hints)
		j->len = kbv_hints_cut(w->hints, w->cutter, p, n, eof, BATCH, j->lens, j->maxn, &count);
	else
		j->len = kbv_cutter_cut(w->cutter, &w->repo->cdc, p, n, eof, BATCH, j->lens, j->maxn, &count);
	j->n = (uint32_t)count;
	return j->len;
}

/* Hand a slot whose bytes are cut to the workers. */
static void submit(struct kbv_writer *w, struct job *j)
{
	w->stream_size += j->len;
	kbv_pool_submit(w->pool);
}

static int stream_begin(struct kbv_writer *w)
{
	kbv_digester_release(&w->hs);
	int rc = kbv_digester_init(&w->hs, w->digest_alg);
	if (rc < 0)
		return rc;
	w->stream_size = 0;
	w->nlevels = 0;
	for (int i = 0; i <= KBV_TREE_MAX_DEPTH; i++)
		w->levels[i].ids.len = 0;
	return 0;
}

static int stream_end(struct kbv_writer *w, int rc, struct kbv_stream_result *res)
{
	if (rc == 0 && (rc = kbv_pool_drain(w->pool)) < 0)
		rc = packing_failed(w, rc);
	if (rc < 0) {
		kbv_pool_discard(w->pool);
		kbv_digester_release(&w->hs);
		return rc;
	}
	if ((rc = tree_finish(w, &res->ref)) < 0) {
		kbv_digester_release(&w->hs);
		return rc;
	}
	res->size = w->stream_size;
	kbv_digester_final(&w->hs, &res->hash);
	if (w->progress)
		w->progress(w->progress_arg, &w->st);
	return 0;
}

/* stream_end() for kbv_writer_fd() (res NULL: the stream never began): the cut hints are
 * kept for the next snapshot only when the stream was stored. */
static int fd_end(struct kbv_writer *w, int rc, struct kbv_stream_result *res)
{
	if (res)
		rc = stream_end(w, rc, res);
	w->st.hinted_bytes += kbv_hints_taken(w->hints);
	kbv_hints_close(w->hints, rc == 0);
	w->hints = NULL;
	return rc;
}

/* Read straight into the job slots: a slot's buffer is filled from fd (a regular file on
 * the cutter's threads where a CPU is free for them, engine/cutter.h; a pipe, with four
 * workers or more, by a thread reading ahead into buffers that are swapped with the
 * slots', engine/readahead.h; else by this thread), cut into chunks in place and
 * handed to the workers. The unfinished tail (at most chunk_max: the next cut needs that
 * much look-ahead) goes through w->rbuf to the front of the next slot's bytes, so the
 * input is copied once by the kernel and then only those tails. */
int kbv_writer_fd(struct kbv_writer *w, int fd, const char *what, struct kbv_stream_result *res)
{
	struct kbv_input in;
	struct kbv_readahead *ra = NULL;
	size_t tail = 0, room = w->repo->chunk_max; /* a slot holds room + BATCH bytes */
	int rc, eof = 0;
	if ((rc = hints_open(w)) < 0 || (rc = stream_begin(w)) < 0)
		return fd_end(w, rc, NULL);
	kbv_input_init(&in, fd, what);
	if (in.off < 0 && w->nworkers >= READ_AHEAD_THREADS &&
	    (rc = kbv_readahead_start(fd, what, room, BATCH, READ_AHEAD, &ra)) < 0) {
		kbv_input_done(&in);
		return fd_end(w, rc, res);
	}
	while (!eof || tail) {
		struct job *j;
		if ((rc = free_slot(w, &j)) < 0)
			break;
		size_t have = tail, got = 0;
		j->data = j->buf;
		if (ra && !eof) {
			/* a piece read ahead, its bytes at `room`: the tail goes in front of them (the
			 * cut leaves at most chunk_max: it stops at BATCH or with less than that left) */
			if (tail > room) {
				rc = kbv_error(KBV_EINTERNAL, "a tail of %zu bytes exceeds the room of %zu", tail, room);
				break;
			}
			if ((rc = kbv_readahead_take(ra, &j->buf, &got, &eof)) < 0) {
				rc = KBV_ESOURCE; /* the input failed, not the repository */
				break;
			}
			j->data = j->buf + room - tail;
		}
		memcpy(j->data, w->rbuf, tail);
		if (!ra && !eof) {
			struct kbv_cutter *k = w->read_pieces ? w->cutter : NULL;
			if ((rc = kbv_cutter_read(k, &in, j->data + have, j->cap - have, &got, &eof)) < 0) {
				rc = KBV_ESOURCE; /* the input failed, not the repository */
				break;
			}
		}
		have += got;
		size_t len = cut_batch(w, j, j->data, have, eof);
		tail = have - len;
		memcpy(w->rbuf, j->data + len, tail);
		if (len) /* else nothing to cut: the slot stays free */
			submit(w, j);
	}
	kbv_readahead_stop(ra);
	kbv_input_done(&in);
	return fd_end(w, rc, res);
}

int kbv_writer_mem(struct kbv_writer *w, const void *p, size_t n, struct kbv_stream_result *res)
{
	const uint8_t *q = p;
	kbv_writer_hint(w, NULL); /* a name was for a stream read from a descriptor */
	int rc = stream_begin(w);
	if (rc < 0)
		return rc;
	for (size_t pos = 0; pos < n;) {
		struct job *j;
		if ((rc = free_slot(w, &j)) < 0)
			break;
		size_t len = cut_batch(w, j, q + pos, n - pos, 1);
		j->data = j->buf;
		memcpy(j->data, q + pos, len);
		submit(w, j);
		pos += len;
	}
	return stream_end(w, rc, res);
}
