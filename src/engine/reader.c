/* The stream reader (kbv/reader.h; docs/design.md, "Restore"). The walking thread walks a
 * stream's chunk-list tree depth-first and locates each chunk in the index; a small stream
 * (INLINE_MAX) it reads itself; into a regular
 * file from a local repository the chunks go to the window planner (reader_window.c),
 * anywhere else to the workers in batches in stream order (on object storage planned part
 * by part: readplan.c). The workers and the pool's serial stage do the jobs (readjob.c);
 * the stream's size and digest are checked at the end. */
#include "kbv/reader.h"
#include "engine/readjob.h"
#include "kbv/blob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/metacache.h"
#include "kbv/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A restore's memory is bounded as a whole, not per thread, so that a host with many CPUs
 * does not hold ~13 MiB per CPU (docs/benchmarks.md, "A restore's memory on many cores"):
 * four jobs per worker up to 32 more jobs than workers; the decoded batches of all jobs
 * INFLIGHT_BYTES (batches of 2 MiB down to 256 KiB); the workers' decoded bundles
 * CACHED_BYTES (16 bundles of 256 KiB each down to 2). Up to eight workers keep the full
 * sizes. */
/* At most MAX_WORKERS workers: past them a restore is bound by its serial digest (XXH3,
 * ~10 GB/s) and the kernel's copies, and each worker holds ~1.5-2.5 MiB of its own and an
 * LMDB reader slot; 256 workers held 414 MB through a pipe, 64 hold ~0.2 GB. */
#define MAX_WORKERS 64
#define SLOTS_PER_THREAD 4
#define SLOTS_OVER 32
#define INFLIGHT_BYTES (64u << 20)
#define BATCH_LEAST (256u << 10)
#define CACHED_BYTES (64u << 20)

/* A reader: its workers, the walking thread's own state, and the stream being read. */
struct kbv_reader {
	struct kbv_repo *repo;
	struct kbv_readplan *plan; /* object storage: reads planned part by part (readplan.h) */
	struct rworker *workers;
	void **wptrs;
	size_t nworkers;
	/* The walking thread's own state, for TREE blobs. */
	struct rworker self;
	struct kbv_buf nodes[KBV_TREE_MAX_DEPTH + 1];
	struct kbv_buf scratch;
	struct kbv_buf one, small; /* a small stream's chunk, and the stream (INLINE_MAX) */
	struct rjob *open; /* batch being filled, not yet submitted */
	unsigned cached;   /* decoded bundles each worker keeps (CACHED_BYTES) */
	struct rstream s;
};

int kbv_reader_new(struct kbv_repo *r, size_t nthreads, struct kbv_reader **out)
{
	struct kbv_reader *rd = calloc(1, sizeof *rd);
	int rc = 0;
	if (!rd)
		return kbv_error(KBV_ENOMEM, "out of memory");
	rd->repo = r;
	rd->s.out_fd = rd->s.back_fd = -1;
	rd->s.win_first = WIN_FIRST;
	rd->s.win_leaves = WIN_LEAVES;
	if (!nthreads) /* one per CPU: on object storage the plan's own threads fetch */
		nthreads = kbv_pool_default_threads();
	if (nthreads > MAX_WORKERS)
		nthreads = MAX_WORKERS;
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
	size_t nslots = nthreads * SLOTS_PER_THREAD < nthreads + SLOTS_OVER ? nthreads * SLOTS_PER_THREAD
									      : nthreads + SLOTS_OVER;
	size_t bb = INFLIGHT_BYTES / nslots;
	rd->s.batch_bytes = bb > BATCH_BYTES ? BATCH_BYTES : bb < BATCH_LEAST ? BATCH_LEAST : (uint32_t)bb;
	size_t nb = CACHED_BYTES / KBV_BUNDLE_TARGET / nthreads;
	rd->cached = nb > KBV_BUNDLES_CACHED ? KBV_BUNDLES_CACHED : nb < 2 ? 2 : (unsigned)nb;
	for (size_t i = 0; i < nthreads; i++)
		rd->workers[i].fds.bundle.limit = rd->cached;
	rd->s.pool = kbv_pool_new(nthreads, nslots, sizeof(struct rjob), reader_work, rd->wptrs, reader_serial, &rd->s);
	if (!rd->s.pool) {
		rc = kbv_error(KBV_ENOMEM, "cannot start %zu threads", nthreads);
		goto out;
	}
	kbv_pool_name(rd->s.pool, "kbv-read", "kbv-check", NULL);
	*out = rd;
	rd = NULL;
out:
	kbv_reader_free(rd);
	return rc;
}

void kbv_reader_free(struct kbv_reader *rd)
{
	if (!rd)
		return;
	if (rd->s.pool) {
		kbv_pool_discard(rd->s.pool);
		for (size_t i = 0; i < kbv_pool_nslots(rd->s.pool); i++) {
			struct rjob *j = kbv_pool_slot(rd->s.pool, i);
			kbv_buf_release(&j->stored);
			kbv_buf_release(&j->one);
			kbv_buf_release(&j->out);
		}
		kbv_pool_free(rd->s.pool);
	}
	for (size_t i = 0; i < rd->nworkers; i++)
		rworker_release(&rd->workers[i]);
	rworker_release(&rd->self);
	for (int i = 0; i <= KBV_TREE_MAX_DEPTH; i++)
		kbv_buf_release(&rd->nodes[i]);
	kbv_buf_release(&rd->scratch);
	kbv_buf_release(&rd->one);
	kbv_buf_release(&rd->small);
	kbv_buf_release(&rd->s.back);
	kbv_readplan_free(rd->plan);
	free(rd->s.win);
	free(rd->s.pend);
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
	rd->s.win_first = first && first <= WIN_LEAVES ? first : WIN_FIRST;
	rd->s.win_leaves = leaves && leaves <= WIN_LEAVES ? leaves : WIN_LEAVES;
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
		kbv_pool_submit(rd->s.pool);
		rd->open = NULL;
	}
}

/* Put one chunk into the open job (submitting the full one first). */
static int submit_leaf(struct kbv_reader *rd, const struct kbv_rleaf *leaf)
{
	int rc = reader_fits(&rd->s, leaf);
	if (rc < 0)
		return rc;
	/* A full job ends here unless this chunk shares the previous one's bundle: a bundle
	 * split between two jobs is decompressed by both workers (docs/benchmarks.md). */
	struct rjob *o = rd->open;
	if (o && (o->n >= BATCH_IDS || o->want >= rd->s.batch_bytes) &&
	    (o->n == BATCH_MAX || o->want >= 2 * rd->s.batch_bytes || !same_envelope(&o->leaf[o->n - 1], leaf)))
		submit_open(rd);
	while (!rd->open) {
		struct rjob *j = kbv_pool_acquire(rd->s.pool);
		if (j) {
			j->n = 0;
			j->kind = RJ_ORDER;
			j->fd = rd->s.out_fd;
			j->what = rd->s.out_what;
			j->at = rd->s.out_base + rd->s.submitted;
			j->want = 0;
			rd->open = j;
		} else if ((rc = kbv_pool_consume(rd->s.pool, reader_deliver, &rd->s, 0)) < 0) {
			return rc;
		}
	}
	rd->open->leaf[rd->open->n++] = *leaf;
	rd->open->want += leaf->loc.raw_len;
	rd->s.submitted += leaf->loc.raw_len;
	return 0;
}

/* The planned part so far: every job of the part before it finished (and delivered), its
 * spans planned, its chunks submitted. */
static int submit_part(struct kbv_reader *rd)
{
	const struct kbv_rleaf *leaves = NULL;
	size_t n = 0;
	submit_open(rd);
	int rc = kbv_pool_consume(rd->s.pool, reader_deliver, &rd->s, 1);
	if (rc == 0)
		rc = kbv_readplan_build(rd->plan, &leaves, &n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = submit_leaf(rd, &leaves[i]);
	return rc;
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
	return rd->s.scatter ? window_collect(&rd->s, &leaf) : submit_leaf(rd, &leaf);
}

/* A stream of at most INLINE_MAX bytes is read on the walking thread itself, without the
 * workers: for a small file, handing one job to a worker and its digest to the check
 * thread cost more than the job (three threads woken per file; a restore of 20,000 files
 * of ~2.5 KB spent more time in futex calls than in anything else: docs/benchmarks.md,
 * "Small files restored without the workers"). A stream this size is one job of the
 * workers anyway. On object storage too: a planned read of its own for each small stream
 * was a request per file, where this thread's bundle cache and the backend's shared read
 * windows serve a tree's next files from what the last one fetched ("Small files from
 * object storage"). It is gathered whole, and the sink sees it only once its size and
 * digest are proven: not a byte of a small stream that fails. */
#define INLINE_MAX KBV_BUNDLE_TARGET

static int is_inline(uint64_t size) { return size <= INLINE_MAX; }

/* One chunk of an inline stream: located, checked against what is left of the stream,
 * decoded (a bundle once for its members, in the walking thread's bundle cache), hashed
 * and added to the stream. */
static int leaf_inline(struct kbv_reader *rd, const uint8_t *id, void *arg)
{
	struct kbv_rleaf leaf;
	const uint8_t *p;
	(void)arg;
	int rc = kbv_pack_locate(rd->repo, rd->self.txn, KBV_BLOB_DATA, id, &leaf.loc);
	if (rc == 0)
		rc = reader_fits(&rd->s, &leaf);
	if (rc == 0)
		rc = kbv_pack_view_loc(rd->repo, rd->self.txn, rd->self.codec, &rd->self.fds, id, &leaf.loc,
				       &rd->scratch, &rd->one, &p);
	if (rc < 0)
		return rc;
	size_t n = leaf.loc.raw_len; /* authenticated against its id: the index's length */
	rd->s.submitted += n;
	kbv_digester_update(&rd->s.hs, p, n);
	return kbv_buf_add(&rd->small, p, n);
}

/* A stream's end: `got` bytes against the size the snapshot recorded, digest h against
 * the one it recorded (hash NULL or KBV_DIGEST_NONE: none). */
static int check_end(uint64_t got, uint64_t size, const struct kbv_digest *h, const struct kbv_digest *hash)
{
	if (got != size)
		return kbv_error(KBV_ECORRUPT, "stream restored to %llu bytes, the snapshot recorded %llu",
				 (unsigned long long)got, (unsigned long long)size);
	if (hash && hash->alg != KBV_DIGEST_NONE && !kbv_digest_equal(h, hash))
		return kbv_error(KBV_ECORRUPT, "restored stream does not match the %s the snapshot recorded",
				 kbv_digest_name(hash->alg));
	return 0;
}

/* A small stream (is_inline), digester started: walked, proven, then handed to the sink
 * in one piece. */
static int stream_inline(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
			 const struct kbv_digest *hash)
{
	struct kbv_digest h;
	int rc = 0;
	rd->small.len = 0;
	if (ref->depth != KBV_REF_EMPTY)
		rc = walk(rd, ref->depth, ref->id, leaf_inline, NULL, NULL, NULL);
	kbv_digester_final(&rd->s.hs, &h);
	if (rc < 0 || (rc = check_end(rd->small.len, size, &h, hash)) < 0)
		return rc;
	rd->s.got = size;
	return size && rd->s.sink ? rd->s.sink(rd->s.arg, rd->small.data, rd->small.len) : 0;
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
	if ((rc = kbv_digester_init(&rd->s.hs, hash ? hash->alg : KBV_DIGEST_NONE)) < 0)
		return rc;
	rd->s.sink = sink;
	rd->s.arg = arg;
	rd->s.size = size;
	rd->s.submitted = 0;
	rd->s.got = 0;
	rd->open = NULL;
	rd->s.wn = rd->s.pn = rd->s.pi = 0;
	rd->s.wfrom = rd->s.pchecked = rd->s.pto = 0;
	rd->s.wlimit = rd->s.win_first;
	if (rd->plan)
		kbv_readplan_reset(rd->plan);
	if (is_inline(size) && !rd->s.scatter)
		return stream_inline(rd, ref, size, hash);
	if (ref->depth != KBV_REF_EMPTY)
		rc = walk(rd, ref->depth, ref->id, leaf_submit, NULL, NULL, NULL);
	if (rc == 0 && rd->plan)
		rc = submit_part(rd); /* the rest */
	if (rc == 0 && rd->s.scatter && (rc = window_next(&rd->s)) == 0)
		rc = window_pump(&rd->s, 1);
	submit_open(rd); /* also on error: an acquired slot must go through the pool */
	if (rc == 0)
		rc = kbv_pool_consume(rd->s.pool, reader_deliver, &rd->s, 1);
	if (rc < 0) {
		kbv_pool_discard(rd->s.pool);
		rd->s.wn = rd->s.pn = rd->s.pi = 0;
		rd->s.pchecked = rd->s.pto = 0;
		if (rd->plan)
			kbv_readplan_reset(rd->plan);
		kbv_digester_release(&rd->s.hs);
		return rc;
	}
	struct kbv_digest h;
	kbv_digester_final(&rd->s.hs, &h);
	return check_end(rd->s.got, size, &h, hash);
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

/* Decoded bundles a worker keeps while restoring window by window (of 16): a job holds
 * its bundles' members together. */
#define SCATTER_CACHED 2

int kbv_reader_stream_fd(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
			 const struct kbv_digest *hash, int fd, const char *what, kbv_sink_fn done, void *arg)
{
	struct fd_sink f = { fd, what, done, arg };
	/* A small stream is written once it is proven whole (INLINE_MAX): a failure leaves the
	 * file as it was. */
	if (is_inline(size))
		return kbv_reader_stream(rd, ref, size, hash, fd_write, &f);
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	off_t base = lseek(fd, 0, SEEK_CUR);
	/* Only at the end of a regular file: a failure cuts it back to the prefix, and nothing
	 * that was there after the start can be lost to that. */
	if (fl < 0 || (fl & O_APPEND) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || base < 0 || base != st.st_size ||
	    rd->s.out_fd >= 0)
		return kbv_reader_stream(rd, ref, size, hash, fd_write, &f);
	/* Its blocks reserved first: a target without room for it fails here, before a byte is
	 * written, not once the disk has filled; and the workers' writes into one file take less
	 * of the file system's time (docs/benchmarks.md). */
	int reserved = kbv_prealloc(fd, (uint64_t)base, size, what);
	if (reserved < 0)
		return reserved;
	rd->s.out_fd = fd;
	rd->s.out_base = (uint64_t)base;
	rd->s.out_what = what;
	/* Window by window (WIN_FIRST) from a local repository; object storage keeps its reads
	 * planned part by part (readplan.h), in order. */
	if (!rd->plan && !rd->s.win) {
		rd->s.win = malloc(WIN_LEAVES * sizeof *rd->s.win);
		rd->s.pend = malloc(WIN_LEAVES * sizeof *rd->s.pend);
	}
	int back = -1;
	if (!rd->plan && rd->s.win && rd->s.pend)
		back = read_back_fd(fd, fl, &st);
	rd->s.back_fd = back;
	rd->s.scatter = back >= 0;
	for (size_t i = 0; i < rd->nworkers; i++) /* a job holds its bundles' members */
		rd->workers[i].fds.bundle.limit = rd->s.scatter ? SCATTER_CACHED : rd->cached;
	int rc = kbv_reader_stream(rd, ref, size, hash, fd_written, &f);
	for (size_t i = 0; i < rd->nworkers; i++)
		rd->workers[i].fds.bundle.limit = rd->cached;
	if (back >= 0 && back != fd)
		close(back);
	rd->s.out_fd = rd->s.back_fd = -1;
	rd->s.scatter = 0;
	uint64_t end = (uint64_t)base + rd->s.got; /* the whole stream, or the prefix delivered */
	if (rc < 0 && ftruncate(fd, (off_t)end) < 0)
		kbv_error_prefix(rc, "'%s' keeps bytes past the %llu restored in order (cut back: %s)", what,
				 (unsigned long long)rd->s.got, strerror(errno));
	if (rc < 0 && reserved)
		kbv_prealloc_drop(fd, end, (uint64_t)base + size - end);
	if (lseek(fd, (off_t)end, SEEK_SET) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "seek '%s': %s", what, strerror(errno));
	return rc;
}

static int to_buf(void *arg, const uint8_t *p, size_t n)
{
	return kbv_buf_add(arg, p, n);
}

int kbv_reader_is_small(const struct kbv_reader *rd, uint64_t size)
{
	(void)rd; /* the same for every reader today */
	return is_inline(size);
}

size_t kbv_reader_threads(const struct kbv_reader *rd) { return rd->nworkers; }

int kbv_reader_take(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size, const struct kbv_digest *hash,
		    struct kbv_buf *out)
{
	if (!is_inline(size) || rd->s.scatter)
		return kbv_error(KBV_EINTERNAL, "a stream of %llu bytes is not read whole on the calling thread",
				 (unsigned long long)size);
	return kbv_reader_stream(rd, ref, size, hash, to_buf, out); /* one piece, once proven */
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
