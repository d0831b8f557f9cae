/* gc's repack (engine/gc_impl.h): each envelope holding a live blob of a mostly dead pack
 * is copied byte for byte (still sealed, no re-encryption) into new packs, made durable
 * like any pack and indexed as soon as they are (their blobs take over the locations; the
 * old copies remain until gc deletes the old packs). */
#include "engine/gc_impl.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pool.h"
#include "store/pack.h"
#include "store/repo_impl.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* On object storage the live envelopes of a pack are fetched in runs: envelopes with at
 * most RUN_GAP dead bytes between them share one ranged GET (a request costs about as
 * much as a megabyte on the wire), each run read into its place in a buffer as large as
 * the span from the first live envelope to the last (the gaps between runs are never
 * touched, so never backed by memory). A span over SPAN_MAX: envelope by envelope through
 * the backend's read windows. */
#define SPAN_MAX (64u << 20)
#define RUN_GAP (1u << 20)

/* A repack pack uploading (on object storage, while the next is read) and not indexed. */
struct newpack {
	struct kbv_pack_info info;
	struct kbv_pack_entry *e;
	size_t n;
};

/* Index the packs of `pend` once every upload is durable (their blobs take over their
 * locations; the old packs stay until the very end, so every state is valid). */
static int newpacks_index(struct kbv_repo *r, struct kbv_buf *pend)
{
	struct newpack *np = (struct newpack *)pend->data;
	size_t k = pend->len / sizeof *np;
	int rc = kbv_be_sync(r->be);
	for (size_t i = 0; i < k; i++) {
		const struct kbv_pack_entry *ep = np[i].e;
		if (rc == 0)
			rc = kbv_index_gc_commit(r->idx, &np[i].info, &ep, &np[i].n, 1, NULL, 0);
		free(np[i].e);
	}
	pend->len = 0;
	return rc;
}

/* Finish the open repack pack: its upload starts (KBV_COMMIT_ASYNC: on object storage it
 * runs beside the reads of the next packs), it is indexed by newpacks_index(). */
static int newpack_finish(struct kbv_packw **w, struct kbv_buf *pend, uint64_t *packs, uint64_t *written)
{
	struct newpack np = { .n = 0 };
	int rc = 0;
	if (!*w)
		return 0;
	np.n = kbv_packw_count(*w);
	np.e = malloc(np.n * sizeof *np.e + 1);
	if (!np.e)
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	else
		memcpy(np.e, kbv_packw_entries(*w), np.n * sizeof *np.e);
	if (rc == 0)
		rc = kbv_packw_finish(*w, KBV_COMMIT_ASYNC, &np.info);
	if (rc == 0)
		rc = kbv_buf_add(pend, &np, sizeof np);
	if (rc == 0) {
		*written += np.info.size;
		(*packs)++;
	} else {
		free(np.e);
	}
	kbv_packw_free(*w);
	*w = NULL;
	return rc;
}

/* One pack to repack: fetched by a worker (its trailer, which entries are live, the span
 * of the live envelopes on object storage), then copied in plan order by gc's thread. */
struct fetched {
	struct plan_pack *p;
	int rc;
	char err[1024];
	struct kbv_buf entries, span;
	size_t n;
	uint8_t *is_live;
	struct kbv_be_rd *fd; /* for envelope-by-envelope reads (not spanned) */
	int spanned;
	uint64_t lo;
	char path[PATH_MAX];
};

struct fetcher {
	struct kbv_repo *r;
	struct sweep *sw;
	struct kbv_codec *codec; /* each worker its own: a codec is not shared between threads */
};

/* gc_mark_live records what it found in the sweep's bitmap: one worker at a time */
static pthread_mutex_t mark_mu = PTHREAD_MUTEX_INITIALIZER;

static void fetched_clear(struct fetched *f)
{
	kbv_be_close(f->fd);
	f->fd = NULL;
	free(f->is_live);
	f->is_live = NULL;
	f->entries.len = f->span.len = 0;
}

static void fetched_release(struct fetched *f)
{
	fetched_clear(f);
	kbv_buf_release(&f->entries);
	kbv_buf_release(&f->span);
}

static int fetch_pack(struct fetcher *fw, struct fetched *f)
{
	struct kbv_repo *r = fw->r;
	struct plan_pack *p = f->p;
	char hex[2 * KBV_PACKID_BYTES + 1];
	uint64_t size;
	int rc = 0, salvaged;
	/* Open with the size the listing gave (no HEAD) and keep it open for the blobs. */
	TRY(gc_pack_entries_open(r, fw->codec, p->id, p->size, &f->fd, &f->entries, &f->n, &size, &salvaged));
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)f->entries.data;
	size_t n = f->n;
	if (!(f->is_live = calloc(n + 1, 1)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	pthread_mutex_lock(&mark_mu);
	gc_mark_live(fw->sw, p, e, n, f->is_live);
	pthread_mutex_unlock(&mark_mu);
	kbv_hex(p->id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, f->path, sizeof f->path);
	if (fw->sw->from_index) {
		/* Planned from the index alone: the trailer must hold every live blob where the
		 * index says, or nothing is deleted on the index's word. */
		size_t confirmed = 0;
		for (size_t i = 0; i < n; i++)
			confirmed += f->is_live[i];
		if (confirmed != p->nlive)
			return kbv_error(KBV_ECORRUPT,
					 "gc stops before deleting anything: the index locates %zu live blobs in pack '%s', "
					 "its trailer confirms %zu; run 'kbvault repair index' and 'kbvault check'",
					 p->nlive, f->path, confirmed);
	}
	if (!f->fd) /* salvaged: read it again from the start */
		TRY(kbv_be_open(r->be, KBV_OBJ_PACK, hex, &f->fd, NULL));
	/* Object storage: the live envelopes' runs, one GET each; a local file is read
	 * envelope by envelope. */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < n; i++)
		if (f->is_live[i] && e[i].stored_len) {
			uint64_t end = (uint64_t)e[i].offset + e[i].stored_len;
			lo = e[i].offset < lo ? e[i].offset : lo;
			hi = end > hi ? end : hi;
		}
	f->spanned = !(kbv_backend_features(r->be) & KBV_BE_LOCAL) && hi > lo && hi - lo <= SPAN_MAX;
	if (f->spanned) {
		TRY(kbv_buf_reserve(&f->span, (size_t)(hi - lo)));
		f->lo = lo;
		uint64_t a = lo, b = 0; /* the run being gathered: [a, b) */
		for (size_t i = 0; i < n; i++) {
			if (!f->is_live[i] || !e[i].stored_len)
				continue;
			uint64_t end = (uint64_t)e[i].offset + e[i].stored_len;
			if (b && e[i].offset <= b + RUN_GAP) { /* entries are in offset order */
				b = end > b ? end : b;
				continue;
			}
			if (b) /* the run ends: fetch it */
				TRY(kbv_be_read_once(f->fd, f->span.data + (a - lo), (size_t)(b - a), a));
			a = e[i].offset;
			b = end;
		}
		TRY(kbv_be_read_once(f->fd, f->span.data + (a - lo), (size_t)(b - a), a)); /* the last run */
		f->span.len = (size_t)(hi - lo);
	}
out:
	return rc;
}

static void fetch_work(void *wp, void *jp)
{
	struct fetched *f = jp;
	if ((f->rc = fetch_pack(wp, f)) < 0)
		snprintf(f->err, sizeof f->err, "%s", kbv_errmsg());
}

struct copier {
	struct kbv_repo *r;
	struct sweep *sw;
	const struct kbv_gc_opts *o;
	struct kbv_gc_result *res;
	struct kbv_packw *w;
	struct kbv_buf newpacks; /* struct newpack, uploading */
	struct kbv_buf stored, live;
	size_t done;
};

/* The live envelopes of a fetched pack into the repack packs, in plan order. */
static int copy_pack(void *arg, void *jp)
{
	struct copier *c = arg;
	struct fetched *f = jp;
	struct kbv_repo *r = c->r;
	int rc = f->rc < 0 ? kbv_error(f->rc, "%s", f->err) : 0;
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)f->entries.data;
	for (size_t i = 0; rc == 0 && i < f->n;) {
		size_t j = i;
		c->live.len = 0;
		while (j < f->n && e[j].offset == e[i].offset) {
			if (f->is_live[j])
				TRY(kbv_buf_add(&c->live, &e[j], sizeof e[j]));
			j++;
		}
		if (c->live.len) {
			/* the envelope's length as its live entries give it (what was fetched;
			 * kbv_packw_add_copy checks that they all agree) */
			uint32_t len = ((const struct kbv_pack_entry *)c->live.data)->stored_len;
			const uint8_t *env;
			if (f->spanned) {
				env = f->span.data + (e[i].offset - f->lo);
			} else {
				TRY(kbv_buf_reserve(&c->stored, len));
				TRY(kbv_be_read(f->fd, c->stored.data, len, e[i].offset));
				env = c->stored.data;
			}
			if (!c->w)
				TRY(kbv_packw_new(r, c->sw->codec, &c->w));
			rc = kbv_packw_add_copy(c->w, env, len, (const struct kbv_pack_entry *)c->live.data,
						c->live.len / sizeof(struct kbv_pack_entry));
			if (rc < 0) {
				if (kbv_disk_full(r->local))
					kbv_error_prefix(rc, "gc stops: no space left on device while it repacks; no pack is "
							     "deleted yet and every kept snapshot is intact: free space, or run "
							     "gc --max-unused 100 to delete only packs that are wholly dead");
				else
					kbv_error_prefix(rc, "gc stops: pack '%s' at offset %u (run 'kbvault check --read-data')",
							 f->path, e[i].offset);
				goto out;
			}
			if (kbv_packw_size(c->w) >= r->pack_size)
				TRY(newpack_finish(&c->w, &c->newpacks, &c->res->packs_written, &c->res->bytes_written));
		}
		i = j;
	}
	if (rc == 0 && c->o->progress)
		c->o->progress(c->o->arg, "repack", ++c->done, c->res->packs_repacked);
	if (rc == 0)
		rc = kbv_gclock_refresh(c->o->lock, 0);
out:
	fetched_clear(f);
	return rc;
}

/* Packs fetched ahead of the copying hold at most this much (and at least one pack). */
#define AHEAD_BYTES (64u << 20)

int gc_repack(struct kbv_repo *r, struct sweep *sw, const struct kbv_gc_opts *o, struct kbv_gc_result *res)
{
	struct copier c = { .r = r, .sw = sw, .o = o, .res = res };
	/* On object storage s3-connections workers fetch the next packs while this thread
	 * copies (a pack is three requests in a row: trailer, header, span); a local
	 * repository's packs are read in this thread. */
	size_t nthreads = kbv_backend_features(r->be) & KBV_BE_LOCAL ? 0 : kbv_backend_parallel(r->be);
	size_t nw = nthreads ? nthreads : 1;
	struct fetcher *fw = calloc(nw, sizeof *fw);
	void **wptrs = calloc(nw, sizeof *wptrs);
	struct kbv_pool *pool = NULL;
	uint64_t *ahead = calloc(nw, sizeof *ahead); /* sizes of the packs in flight, oldest first */
	size_t inflight = 0;
	uint64_t ahead_bytes = 0;
	int rc = 0;
	if (!fw || !wptrs || !ahead) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nw; i++) {
		fw[i] = (struct fetcher){ r, sw, NULL };
		if (!(fw[i].codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level))) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		wptrs[i] = &fw[i];
	}
	if (!(pool = kbv_pool_new(nthreads, nw, sizeof(struct fetched), fetch_work, wptrs, NULL, NULL))) {
		rc = kbv_error(KBV_ENOMEM, "cannot start %zu threads", nthreads);
		goto out;
	}
	for (size_t i = 0; i < sw->np; i++) {
		if (sw->p[i].action != 2)
			continue;
		struct fetched *f;
		while (inflight && (ahead_bytes + sw->p[i].size > AHEAD_BYTES || !(f = kbv_pool_acquire(pool)))) {
			TRY(kbv_pool_consume(pool, copy_pack, &c, 0));
			ahead_bytes -= ahead[0];
			memmove(ahead, ahead + 1, --inflight * sizeof *ahead);
		}
		if (!inflight && !(f = kbv_pool_acquire(pool))) {
			rc = kbv_error(KBV_EINVAL, "gc: no free fetch slot"); /* cannot happen: nothing in flight */
			goto out;
		}
		f->p = &sw->p[i];
		ahead[inflight++] = sw->p[i].size;
		ahead_bytes += sw->p[i].size;
		kbv_pool_submit(pool);
	}
	TRY(kbv_pool_consume(pool, copy_pack, &c, 1));
	TRY(newpack_finish(&c.w, &c.newpacks, &res->packs_written, &res->bytes_written));
	TRY(newpacks_index(r, &c.newpacks));
out:
	if (pool) {
		kbv_pool_discard(pool);
		for (size_t i = 0; i < kbv_pool_nslots(pool); i++)
			fetched_release(kbv_pool_slot(pool, i));
		kbv_pool_free(pool);
	}
	for (size_t i = 0; fw && i < nw; i++)
		kbv_codec_free(fw[i].codec);
	free(fw);
	free(wptrs);
	free(ahead);
	kbv_packw_free(c.w);
	for (size_t i = 0; i < c.newpacks.len / sizeof(struct newpack); i++) /* a failure left them unindexed */
		free(((struct newpack *)c.newpacks.data)[i].e);
	kbv_buf_release(&c.newpacks);
	kbv_buf_release(&c.stored);
	kbv_buf_release(&c.live);
	return rc;
}
