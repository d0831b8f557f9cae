#include "kbv/reader.h"
#include "readplan.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "kbv/pool.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOTS_PER_THREAD 4
/* A job is a batch of DATA blobs, so the threads meet once per batch: BATCH_IDS of them or
 * BATCH_BYTES, whichever comes first, and more to finish a bundle (submit_leaf), up to
 * twice either. Longer batches keep more of a bundle's members with one worker: the tenth
 * night of `make bench` decoded 751-767 MB of bundles for its 337 MB in batches of 64, 629
 * MB in batches of 256 (docs/benchmarks.md). */
#define BATCH_IDS 256
#define BATCH_BYTES (2u << 20)
#define BATCH_MAX (2 * BATCH_IDS)

/* Into a regular file from a local repository (kbv_reader_stream_fd), a stream is restored
 * window by window: the walking thread locates a window's chunks, sorts them by where they
 * lie in the packs and hands them out bundle by bundle; a worker decodes a bundle once and
 * writes each member it holds at the member's places in the file, straight from the
 * decoded bundle (restic's restorer works pack by pack the same way). A night whose chunks
 * come from bundles of every earlier night no longer decodes a bundle again for each run
 * of its members (docs/benchmarks.md). Check jobs then read each window back from the file
 * in order, for the whole-stream digest: what is verified is what the file holds. The
 * first window is small, so that the workers start soon; the walking thread fills the next
 * window while the workers take the last one's jobs. 80 bytes per chunk, two windows. */
#define WIN_FIRST 8192
#define WIN_LEAVES 65536
#define CHECK_BYTES (64u << 20) /* read back by one check job at most */
#define READBACK (1u << 20)     /* ... a piece at a time */
#define SCATTER_CACHED 2        /* decoded bundles a worker keeps meanwhile (of 16) */

struct wleaf {
	struct kbv_rleaf leaf;
	uint64_t pos; /* of its first byte in the stream */
};

enum rjob_kind {
	RJ_ORDER,   /* a batch decoded in stream order into `out` */
	RJ_SCATTER, /* a batch written by the worker at each leaf's place (pos[]) */
	RJ_CHECK,   /* `want` bytes of the file at `at` read back in order for the digest */
};

struct rjob {
	struct kbv_rleaf leaf[BATCH_MAX]; /* located by the walking thread */
	uint64_t pos[BATCH_MAX];          /* RJ_SCATTER: where leaf[i] starts in the stream */
	uint32_t n;
	int rc;
	enum rjob_kind kind;
	/* fd >= 0 (kbv_reader_stream_fd): the worker writes the batch's bytes itself, at `at`
	 * of fd (named `what`; RJ_SCATTER: `at` is where the stream starts); `want` is what
	 * they add up to by the index. */
	int fd;
	const char *what;
	uint64_t at, want;
	char err[320];
	struct kbv_buf stored, one, out; /* out: the batch's decoded bytes, in order */
};

struct rworker {
	struct kbv_repo *repo;
	struct kbv_readplan *plan; /* object storage: the reader's */
	struct kbv_codec *codec;
	MDB_txn *txn;
	struct kbv_packfds fds;
};

struct kbv_reader {
	struct kbv_repo *repo;
	struct kbv_readplan *plan; /* object storage: reads planned part by part (readplan.h) */
	struct kbv_pool *pool;
	struct rworker *workers;
	void **wptrs;
	size_t nworkers;
	/* The walking thread's own state, for TREE blobs. */
	struct rworker self;
	struct kbv_buf nodes[KBV_TREE_MAX_DEPTH + 1];
	struct kbv_buf scratch;
	/* Current stream. */
	struct rjob *open; /* batch being filled, not yet submitted */
	kbv_sink_fn sink;
	void *arg;
	struct kbv_digester hs; /* updated only by the pool's serial stage */
	struct kbv_buf back;    /* the serial stage's, for reading a file back (RJ_CHECK) */
	uint64_t size;      /* what the snapshot recorded */
	uint64_t submitted; /* bytes of the chunks submitted, by the index */
	uint64_t got;       /* bytes delivered in order */
	/* Written by the workers at known offsets (kbv_reader_stream_fd), or out_fd -1. */
	int out_fd, back_fd; /* back_fd: out_fd's file, open for reading */
	uint64_t out_base;
	const char *out_what;
	/* Window by window into out_fd (see WIN_FIRST): `win` being filled (wn of wlimit, from
	 * stream offset wfrom), `pend` sorted and being submitted (pi of pn, then the checks of
	 * [pchecked, pto)). */
	int scatter;
	size_t win_first, win_leaves; /* WIN_FIRST, WIN_LEAVES (tests: fewer) */
	struct wleaf *win, *pend;
	size_t wn, wlimit, pn, pi;
	uint64_t wfrom, pchecked, pto;
	unsigned tick;
};

/* Do blobs a and b sit in the same envelope (a bundle) of the same pack? */
static int same_envelope(const struct kbv_rleaf *a, const struct kbv_rleaf *b)
{
	return a->loc.pack == b->loc.pack && a->loc.offset == b->loc.offset;
}

/* An RJ_SCATTER job: each chunk decoded (a bundle once for all its members here) and
 * written at its place; members that follow each other in the bundle and in the stream go
 * out in one pwrite. */
static int scatter(struct rworker *wk, struct rjob *j)
{
	const uint8_t *run = NULL;
	size_t rlen = 0;
	uint64_t rat = 0;
	int rc = 0;
	for (uint32_t i = 0; i < j->n && rc == 0; i++) {
		const struct kbv_rleaf *l = &j->leaf[i], *prev = i ? &j->leaf[i - 1] : NULL;
		uint64_t at = j->at + j->pos[i];
		const uint8_t *p;
		/* (a run points into the bundle cache: written before another envelope is read) */
		int follows = run && same_envelope(prev, l) && l->loc.raw_off == prev->loc.raw_off + prev->loc.raw_len &&
			      at == rat + rlen;
		if (run && !follows) {
			rc = kbv_pwrite_full(j->fd, run, rlen, (off_t)rat, j->what);
			run = NULL;
			if (rc < 0)
				break;
		}
		rc = kbv_pack_view_loc(wk->repo, wk->txn, wk->codec, &wk->fds, l->id, &l->loc, &j->stored, &j->one, &p);
		if (rc < 0)
			break;
		if (follows && p == run + rlen) {
			rlen += l->loc.raw_len;
		} else if (follows) { /* cannot be: the same bundle, decoded once */
			rc = kbv_error(KBV_ECORRUPT, "a bundle member is not where the one before it ends");
		} else {
			run = p;
			rlen = l->loc.raw_len;
			rat = at;
		}
	}
	if (rc == 0 && run)
		rc = kbv_pwrite_full(j->fd, run, rlen, (off_t)rat, j->what);
	return rc;
}

static void rwork(void *wp, void *jp)
{
	struct rworker *wk = wp;
	struct rjob *j = jp;
	j->out.len = 0;
	j->rc = 0;
	if (j->kind != RJ_ORDER) {
		if (j->kind == RJ_SCATTER && (j->rc = scatter(wk, j)) < 0)
			snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
		return;
	}
	for (uint32_t i = 0; i < j->n && j->rc == 0; i++) {
		if (wk->plan)
			j->rc = kbv_readplan_read(wk->plan, wk->codec, &wk->fds.bundle, &j->leaf[i], &j->one);
		else
			j->rc = kbv_pack_read_loc(wk->repo, wk->txn, wk->codec, &wk->fds, j->leaf[i].id, &j->leaf[i].loc,
						  &j->stored, &j->one);
		if (j->rc == 0)
			j->rc = kbv_buf_add(&j->out, j->one.data, j->one.len);
	}
	/* Every chunk was authenticated against its id, so its length is the index's; the
	 * batch lands where the lengths before it end. */
	if (j->rc == 0 && j->fd >= 0) {
		if (j->out.len != j->want)
			j->rc = kbv_error(KBV_ECORRUPT, "a batch of the stream decoded to %zu bytes, the index says %llu",
					  j->out.len, (unsigned long long)j->want);
		else
			j->rc = kbv_pwrite_full(j->fd, j->out.data, j->out.len, (off_t)j->at, j->what);
	}
	if (j->rc < 0)
		snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
}

static int rworker_init(struct rworker *wk, struct kbv_repo *r)
{
	wk->repo = r;
	kbv_packfds_init(&wk->fds);
	wk->codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!wk->codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	return kbv_index_rbegin(r->idx, &wk->txn);
}

static void rworker_release(struct rworker *wk)
{
	kbv_codec_free(wk->codec);
	kbv_index_rend(wk->txn);
	kbv_packfds_release(&wk->fds);
}

/* The serial stage: the whole-stream digest of what was decoded, in stream order. */
static void hash_stage(void *rp, void *jp)
{
	struct kbv_reader *rd = rp;
	struct rjob *j = jp;
	if (j->rc < 0 || j->kind == RJ_SCATTER)
		return;
	if (j->kind == RJ_ORDER) {
		kbv_digester_update(&rd->hs, j->out.data, j->out.len);
		return;
	}
	/* RJ_CHECK: every job before it has written its bytes */
	for (uint64_t done = 0; done < j->want && rd->hs.alg != KBV_DIGEST_NONE && j->rc == 0;) {
		size_t n = j->want - done < READBACK ? (size_t)(j->want - done) : READBACK;
		if ((j->rc = kbv_buf_reserve(&rd->back, n)) == 0 &&
		    (j->rc = kbv_pread_full(j->fd, rd->back.data, n, (off_t)(j->at + done), j->what)) == 0)
			kbv_digester_update(&rd->hs, rd->back.data, n);
		done += n;
	}
	if (j->rc < 0)
		snprintf(j->err, sizeof j->err, "read back what was restored: %s", kbv_errmsg());
}

int kbv_reader_new(struct kbv_repo *r, size_t nthreads, struct kbv_reader **out)
{
	struct kbv_reader *rd = calloc(1, sizeof *rd);
	int rc = 0;
	if (!rd)
		return kbv_error(KBV_ENOMEM, "out of memory");
	rd->repo = r;
	rd->out_fd = rd->back_fd = -1;
	rd->win_first = WIN_FIRST;
	rd->win_leaves = WIN_LEAVES;
	if (!nthreads) /* one per CPU: on object storage the plan's own threads fetch */
		nthreads = kbv_pool_default_threads();
	rd->workers = calloc(nthreads, sizeof *rd->workers);
	rd->wptrs = calloc(nthreads, sizeof *rd->wptrs);
	if (!rd->workers || !rd->wptrs) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	/* Object storage: a request per span, planned; a local repository's reads go to the
	 * page cache, which is the window */
	if (!(kbv_backend_features(r->be) & KBV_BE_LOCAL))
		TRY(kbv_readplan_new(r, &rd->plan));
	TRY(rworker_init(&rd->self, r));
	for (size_t i = 0; i < nthreads; i++) {
		rd->nworkers++;
		TRY(rworker_init(&rd->workers[i], r));
		rd->workers[i].plan = rd->plan;
		rd->wptrs[i] = &rd->workers[i];
	}
	rd->pool = kbv_pool_new(nthreads, nthreads * SLOTS_PER_THREAD, sizeof(struct rjob), rwork, rd->wptrs,
				hash_stage, rd);
	if (!rd->pool) {
		rc = kbv_error(KBV_ENOMEM, "cannot start %zu threads", nthreads);
		goto out;
	}
	kbv_pool_name(rd->pool, "kbv-read", "kbv-check", NULL);
	*out = rd;
	rd = NULL;
out:
	kbv_reader_free(rd);
	return rc;
}

static int deliver(void *arg, void *job)
{
	struct kbv_reader *rd = arg;
	struct rjob *j = job;
	if (j->rc < 0)
		return kbv_error(j->rc, "%s", j->err);
	if (j->kind == RJ_SCATTER) /* counted when its window is read back */
		return 0;
	if (j->kind == RJ_CHECK) {
		rd->got += j->want;
		return rd->sink ? rd->sink(rd->arg, NULL, (size_t)j->want) : 0;
	}
	rd->got += j->out.len;
	return rd->sink ? rd->sink(rd->arg, j->out.data, j->out.len) : 0;
}

void kbv_reader_free(struct kbv_reader *rd)
{
	if (!rd)
		return;
	if (rd->pool) {
		kbv_pool_discard(rd->pool);
		for (size_t i = 0; i < kbv_pool_nslots(rd->pool); i++) {
			struct rjob *j = kbv_pool_slot(rd->pool, i);
			kbv_buf_release(&j->stored);
			kbv_buf_release(&j->one);
			kbv_buf_release(&j->out);
		}
		kbv_pool_free(rd->pool);
	}
	for (size_t i = 0; i < rd->nworkers; i++)
		rworker_release(&rd->workers[i]);
	rworker_release(&rd->self);
	for (int i = 0; i <= KBV_TREE_MAX_DEPTH; i++)
		kbv_buf_release(&rd->nodes[i]);
	kbv_buf_release(&rd->scratch);
	kbv_buf_release(&rd->back);
	kbv_readplan_free(rd->plan);
	free(rd->win);
	free(rd->pend);
	free(rd->workers);
	free(rd->wptrs);
	free(rd);
}

struct kbv_repo *kbv_reader_repo(const struct kbv_reader *rd) { return rd->repo; }

uint64_t kbv_reader_decoded(const struct kbv_reader *rd)
{
	uint64_t n = rd->self.fds.bundle.decoded;
	for (size_t i = 0; i < rd->nworkers; i++)
		n += rd->workers[i].fds.bundle.decoded;
	return n;
}

void kbv_reader_windows(struct kbv_reader *rd, size_t first, size_t leaves)
{
	rd->win_first = first && first <= WIN_LEAVES ? first : WIN_FIRST;
	rd->win_leaves = leaves && leaves <= WIN_LEAVES ? leaves : WIN_LEAVES;
}

static int node_ok(const struct kbv_buf *b) { return b->len > 0 && b->len % KBV_ID_BYTES == 0; }

/* A chunk-list node: from the metadata cache when the index confirms the repository holds
 * it (object storage), else from its pack (and then cached). */
static int read_node(struct kbv_reader *rd, int depth, const uint8_t *id)
{
	struct kbv_buf *b = &rd->nodes[depth];
	struct kbv_repo *r = rd->repo;
	struct kbv_loc loc;
	int rc;
	if (kbv_meta_on(r) && kbv_index_get(r->idx, rd->self.txn, id, &loc) == 0 && loc.type == KBV_BLOB_TREE) {
		if ((rc = kbv_meta_get(r, KBV_META_TREE, id, b)) < 0)
			return rc;
		if (rc == 1 && node_ok(b))
			return 0;
	}
	rc = kbv_pack_read_blob(r, rd->self.txn, rd->self.codec, &rd->self.fds, KBV_BLOB_TREE, id, &rd->scratch, b);
	if (rc < 0)
		return rc;
	if (!node_ok(b))
		return kbv_error(KBV_ECORRUPT, "chunk-list node has %zu bytes, not a multiple of %d", b->len,
				 KBV_ID_BYTES);
	kbv_meta_put(r, KBV_META_TREE, id, b->data, b->len);
	return 0;
}

/* Depth-first walk; leaves go to `leaf`. Node buffers are per depth, so memory is
 * bounded by the depth. */
typedef int (*leaf_fn)(struct kbv_reader *rd, const uint8_t *id, void *arg);

static int walk(struct kbv_reader *rd, int depth, const uint8_t *id, leaf_fn leaf, void *arg, kbv_visit_fn visit,
		void *varg)
{
	int rc;
	if (depth == 0)
		return leaf ? leaf(rd, id, arg) : visit(varg, KBV_BLOB_DATA, id);
	if (visit && (rc = visit(varg, KBV_BLOB_TREE, id)) != 0)
		return rc == KBV_VISIT_SKIP ? 0 : rc;
	if ((rc = read_node(rd, depth, id)) < 0)
		return rc;
	struct kbv_buf *b = &rd->nodes[depth];
	for (size_t off = 0; off < b->len; off += KBV_ID_BYTES) {
		uint8_t child[KBV_ID_BYTES];
		memcpy(child, b->data + off, KBV_ID_BYTES); /* b is reused deeper only at depth-1 */
		if ((rc = walk(rd, depth - 1, child, leaf, arg, visit, varg)) != 0)
			return rc;
	}
	return 0;
}

static void submit_open(struct kbv_reader *rd)
{
	if (rd->open) {
		kbv_pool_submit(rd->pool);
		rd->open = NULL;
	}
}

/* Put one chunk into the open job (submitting the full one first). */
static int submit_leaf(struct kbv_reader *rd, const struct kbv_rleaf *leaf)
{
	int rc;
	/* (no write lands past the stream's end, whatever the index says) */
	if (leaf->loc.raw_len > rd->size - rd->submitted)
		return kbv_error(KBV_ECORRUPT, "the stream's chunks add up to more than the %llu bytes the snapshot recorded",
				 (unsigned long long)rd->size);
	/* A full job ends here unless this chunk shares the previous one's bundle: a bundle
	 * split between two jobs is decompressed by both workers (docs/benchmarks.md). */
	struct rjob *o = rd->open;
	if (o && (o->n >= BATCH_IDS || o->want >= BATCH_BYTES) &&
	    (o->n == BATCH_MAX || o->want >= 2 * BATCH_BYTES || !same_envelope(&o->leaf[o->n - 1], leaf)))
		submit_open(rd);
	while (!rd->open) {
		struct rjob *j = kbv_pool_acquire(rd->pool);
		if (j) {
			j->n = 0;
			j->kind = RJ_ORDER;
			j->fd = rd->out_fd;
			j->what = rd->out_what;
			j->at = rd->out_base + rd->submitted;
			j->want = 0;
			rd->open = j;
		} else if ((rc = kbv_pool_consume(rd->pool, deliver, rd, 0)) < 0) {
			return rc;
		}
	}
	rd->open->leaf[rd->open->n++] = *leaf;
	rd->open->want += leaf->loc.raw_len;
	rd->submitted += leaf->loc.raw_len;
	return 0;
}

/* The planned part so far: every job of the part before it finished (and delivered), its
 * spans planned, its chunks submitted. */
static int submit_part(struct kbv_reader *rd)
{
	const struct kbv_rleaf *leaves = NULL;
	size_t n = 0;
	submit_open(rd);
	int rc = kbv_pool_consume(rd->pool, deliver, rd, 1);
	if (rc == 0)
		rc = kbv_readplan_build(rd->plan, &leaves, &n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = submit_leaf(rd, &leaves[i]);
	return rc;
}

/* The members of the sorted window from pend[i] on that share pend[i]'s envelope. */
static size_t envelope_run(const struct kbv_reader *rd, size_t i)
{
	size_t k = i + 1;
	while (k < rd->pn && same_envelope(&rd->pend[k].leaf, &rd->pend[i].leaf))
		k++;
	return k - i;
}

/* Fill job j from the sorted window `pend`, envelope by envelope: a job ends where
 * submit_leaf would end a batch, or before an envelope whose members would not all fit
 * (only an envelope with more than BATCH_MAX of them, a chunk repeated many times, is
 * split, and may be decoded by two workers). */
static void fill_scatter(struct kbv_reader *rd, struct rjob *j)
{
	j->kind = RJ_SCATTER;
	j->n = 0;
	j->fd = rd->out_fd;
	j->what = rd->out_what;
	j->at = rd->out_base;
	j->want = 0;
	while (rd->pi < rd->pn) {
		const struct wleaf *w = &rd->pend[rd->pi];
		int starts = !j->n || !same_envelope(&j->leaf[j->n - 1], &w->leaf);
		if (j->n && starts && (j->n >= BATCH_IDS || j->want >= BATCH_BYTES || j->n + envelope_run(rd, rd->pi) > BATCH_MAX))
			break;
		if (j->n == BATCH_MAX || j->want >= 2 * BATCH_BYTES)
			break;
		j->leaf[j->n] = w->leaf;
		j->pos[j->n++] = w->pos;
		j->want += w->leaf.loc.raw_len;
		rd->pi++;
	}
}

static void fill_check(struct kbv_reader *rd, struct rjob *j)
{
	uint64_t n = rd->pto - rd->pchecked;
	j->kind = RJ_CHECK;
	j->n = 0;
	j->fd = rd->back_fd;
	j->what = rd->out_what;
	j->at = rd->out_base + rd->pchecked;
	j->want = n < CHECK_BYTES ? n : CHECK_BYTES;
	rd->pchecked += j->want;
}

/* Submit the sorted window's jobs, then its checks: as many as there are free slots (taking
 * back finished jobs), or with `all` every one of them. */
static int pump(struct kbv_reader *rd, int all)
{
	while (rd->pi < rd->pn || rd->pchecked < rd->pto) {
		struct rjob *j = kbv_pool_acquire(rd->pool);
		if (!j) {
			if (!all && !kbv_pool_ready(rd->pool))
				return 0;
			int rc = kbv_pool_consume(rd->pool, deliver, rd, 0);
			if (rc < 0)
				return rc;
			continue;
		}
		if (rd->pi < rd->pn)
			fill_scatter(rd, j);
		else
			fill_check(rd, j);
		kbv_pool_submit(rd->pool);
	}
	return 0;
}

/* Where in the packs, then where in the stream. */
static int cmp_wleaf(const void *a, const void *b)
{
	const struct wleaf *x = a, *y = b;
	if (x->leaf.loc.pack != y->leaf.loc.pack)
		return x->leaf.loc.pack < y->leaf.loc.pack ? -1 : 1;
	if (x->leaf.loc.offset != y->leaf.loc.offset)
		return x->leaf.loc.offset < y->leaf.loc.offset ? -1 : 1;
	if (x->leaf.loc.raw_off != y->leaf.loc.raw_off)
		return x->leaf.loc.raw_off < y->leaf.loc.raw_off ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The window collected so far becomes the one submitted (after the one before it went
 * out whole); the next one is collected in the other array. */
static int next_window(struct kbv_reader *rd)
{
	int rc = pump(rd, 1);
	if (rc < 0 || rd->wn == 0)
		return rc;
	qsort(rd->win, rd->wn, sizeof *rd->win, cmp_wleaf);
	struct wleaf *t = rd->pend;
	rd->pend = rd->win;
	rd->win = t;
	rd->pn = rd->wn;
	rd->pi = 0;
	rd->pchecked = rd->wfrom;
	rd->pto = rd->submitted;
	rd->wn = 0;
	rd->wfrom = rd->submitted;
	rd->wlimit = rd->win_leaves;
	return pump(rd, 0);
}

static int collect_leaf(struct kbv_reader *rd, const struct kbv_rleaf *leaf)
{
	int rc;
	if (leaf->loc.raw_len > rd->size - rd->submitted)
		return kbv_error(KBV_ECORRUPT, "the stream's chunks add up to more than the %llu bytes the snapshot recorded",
				 (unsigned long long)rd->size);
	if (rd->wn == rd->wlimit && (rc = next_window(rd)) < 0)
		return rc;
	struct wleaf *w = &rd->win[rd->wn++];
	w->leaf = *leaf;
	w->pos = rd->submitted;
	rd->submitted += leaf->loc.raw_len;
	return ++rd->tick % 64 ? 0 : pump(rd, 0);
}

static int leaf_submit(struct kbv_reader *rd, const uint8_t *id, void *arg)
{
	(void)arg;
	if (rd->plan) {
		int rc = kbv_readplan_add(rd->plan, rd->self.txn, id);
		return rc == 1 ? submit_part(rd) : rc;
	}
	struct kbv_rleaf leaf;
	memcpy(leaf.id, id, KBV_ID_BYTES);
	int rc = kbv_pack_locate(rd->repo, rd->self.txn, KBV_BLOB_DATA, id, &leaf.loc);
	if (rc < 0)
		return rc;
	return rd->scatter ? collect_leaf(rd, &leaf) : submit_leaf(rd, &leaf);
}

static int check_ref(const struct kbv_ref *ref)
{
	if (ref->depth != KBV_REF_EMPTY && ref->depth > KBV_TREE_MAX_DEPTH)
		return kbv_error(KBV_ECORRUPT, "stream tree depth %u exceeds %d", ref->depth, KBV_TREE_MAX_DEPTH);
	return 0;
}

int kbv_reader_stream(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
		      const struct kbv_digest *hash, kbv_sink_fn sink, void *arg)
{
	int rc = check_ref(ref);
	if (rc < 0)
		return rc;
	if ((rc = kbv_digester_init(&rd->hs, hash ? hash->alg : KBV_DIGEST_NONE)) < 0)
		return rc;
	rd->sink = sink;
	rd->arg = arg;
	rd->size = size;
	rd->submitted = 0;
	rd->got = 0;
	rd->open = NULL;
	rd->wn = rd->pn = rd->pi = 0;
	rd->wfrom = rd->pchecked = rd->pto = 0;
	rd->wlimit = rd->win_first;
	if (rd->plan)
		kbv_readplan_reset(rd->plan);
	if (ref->depth != KBV_REF_EMPTY)
		rc = walk(rd, ref->depth, ref->id, leaf_submit, NULL, NULL, NULL);
	if (rc == 0 && rd->plan)
		rc = submit_part(rd); /* the rest */
	if (rc == 0 && rd->scatter && (rc = next_window(rd)) == 0)
		rc = pump(rd, 1);
	submit_open(rd); /* also on error: an acquired slot must go through the pool */
	if (rc == 0)
		rc = kbv_pool_consume(rd->pool, deliver, rd, 1);
	if (rc < 0) {
		kbv_pool_discard(rd->pool);
		rd->wn = rd->pn = rd->pi = 0;
		rd->pchecked = rd->pto = 0;
		if (rd->plan)
			kbv_readplan_reset(rd->plan);
		kbv_digester_release(&rd->hs);
		return rc;
	}
	struct kbv_digest h;
	kbv_digester_final(&rd->hs, &h);
	if (rd->got != size)
		return kbv_error(KBV_ECORRUPT, "stream restored to %llu bytes, the snapshot recorded %llu",
				 (unsigned long long)rd->got, (unsigned long long)size);
	if (hash && hash->alg != KBV_DIGEST_NONE && !kbv_digest_equal(&h, hash))
		return kbv_error(KBV_ECORRUPT, "restored stream does not match the %s the snapshot recorded",
				 kbv_digest_name(hash->alg));
	return 0;
}

struct fd_sink {
	int fd;
	const char *what;
	kbv_sink_fn done;
	void *arg;
};

static int fd_write(void *arg, const uint8_t *p, size_t n)
{
	struct fd_sink *f = arg;
	int rc = kbv_write_full(f->fd, p, n, f->what);
	return rc < 0 || !f->done ? rc : f->done(f->arg, p, n);
}

static int fd_written(void *arg, const uint8_t *p, size_t n)
{
	struct fd_sink *f = arg;
	return f->done ? f->done(f->arg, p, n) : 0;
}

/* A descriptor to read regular file fd (flags fl, stat st) back through: fd itself when it
 * is open for reading too, else the same file opened again read-only; -1 when it cannot
 * be read (then the stream is written in order, without the read-back). */
static int read_back_fd(int fd, int fl, const struct stat *st)
{
	char path[64];
	struct stat bs;
	if ((fl & O_ACCMODE) == O_RDWR)
		return fd;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int b = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (b >= 0 && (fstat(b, &bs) < 0 || bs.st_dev != st->st_dev || bs.st_ino != st->st_ino)) {
		close(b);
		b = -1;
	}
	return b;
}

int kbv_reader_stream_fd(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
			 const struct kbv_digest *hash, int fd, const char *what, kbv_sink_fn done, void *arg)
{
	struct fd_sink f = { fd, what, done, arg };
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	off_t base = lseek(fd, 0, SEEK_CUR);
	/* Only at the end of a regular file: a failure cuts it back to the prefix, and nothing
	 * that was there after the start can be lost to that. */
	if (fl < 0 || (fl & O_APPEND) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || base < 0 || base != st.st_size ||
	    rd->out_fd >= 0)
		return kbv_reader_stream(rd, ref, size, hash, fd_write, &f);
	rd->out_fd = fd;
	rd->out_base = (uint64_t)base;
	rd->out_what = what;
	/* Window by window (WIN_FIRST) from a local repository; object storage keeps its reads
	 * planned part by part (readplan.h), in order. */
	if (!rd->plan && !rd->win) {
		rd->win = malloc(WIN_LEAVES * sizeof *rd->win);
		rd->pend = malloc(WIN_LEAVES * sizeof *rd->pend);
	}
	int back = -1;
	if (!rd->plan && rd->win && rd->pend)
		back = read_back_fd(fd, fl, &st);
	rd->back_fd = back;
	rd->scatter = back >= 0;
	for (size_t i = 0; i < rd->nworkers; i++) /* a job holds its bundles' members */
		rd->workers[i].fds.bundle.limit = rd->scatter ? SCATTER_CACHED : 0;
	int rc = kbv_reader_stream(rd, ref, size, hash, fd_written, &f);
	for (size_t i = 0; i < rd->nworkers; i++)
		rd->workers[i].fds.bundle.limit = 0;
	if (back >= 0 && back != fd)
		close(back);
	rd->out_fd = rd->back_fd = -1;
	rd->scatter = 0;
	uint64_t end = (uint64_t)base + rd->got; /* the whole stream, or the prefix delivered */
	if (rc < 0 && ftruncate(fd, (off_t)end) < 0)
		kbv_error_prefix(rc, "'%s' keeps bytes past the %llu restored in order (cut back: %s)", what,
				 (unsigned long long)rd->got, strerror(errno));
	if (lseek(fd, (off_t)end, SEEK_SET) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "seek '%s': %s", what, strerror(errno));
	return rc;
}

static int to_buf(void *arg, const uint8_t *p, size_t n)
{
	return kbv_buf_add(arg, p, n);
}

int kbv_reader_mem(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size, struct kbv_buf *out)
{
	out->len = 0;
	return kbv_reader_stream(rd, ref, size, NULL, to_buf, out);
}

int kbv_reader_visit(struct kbv_reader *rd, const struct kbv_ref *ref, kbv_visit_fn fn, void *arg)
{
	int rc = check_ref(ref);
	if (rc < 0 || ref->depth == KBV_REF_EMPTY)
		return rc;
	return walk(rd, ref->depth, ref->id, NULL, NULL, fn, arg);
}
