/* The inside of the stream reader (kbv/reader.h): its jobs, its workers and the stream
 * being read, shared by reader.c (the reader, the walk of a stream's chunk tree, the
 * in-order batches every restore can use, the entry points), reader_window.c (into a
 * regular file, window by window, bundle by bundle) and readjob.c (what the threads do with
 * a job). Nothing outside src/engine/reader*.c and readjob.c includes it. */
#ifndef KBV_ENGINE_READJOB_H
#define KBV_ENGINE_READJOB_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/digest.h"
#include "readplan.h"
#include "store/pack.h"
#include "store/repo_impl.h"

/* A job is a batch of DATA blobs, so the threads meet once per batch: BATCH_IDS of them or
 * the reader's batch_bytes (BATCH_BYTES at most), whichever comes first, and more to finish
 * a bundle (submit_leaf), up to twice either. Longer batches keep more of a bundle's members
 * with one worker: the tenth night of `make bench` decoded 751-767 MB of bundles for its
 * 337 MB in batches of 64, 629 MB in batches of 256 (docs/benchmarks.md). */
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

/* The stream being read: what the walking thread, the workers' jobs and the pool's serial
 * stage share (struct kbv_reader, in reader.c, holds one with the walk's own state). */
struct rstream {
	struct kbv_pool *pool;
	int (*sink)(void *arg, const uint8_t *p, size_t n); /* a kbv_sink_fn (kbv/reader.h) */
	void *arg;
	struct kbv_digester hs; /* updated only by the pool's serial stage */
	struct kbv_buf back;    /* the serial stage's, for reading a file back (RJ_CHECK) */
	uint64_t size;      /* what the snapshot recorded */
	uint64_t submitted; /* bytes of the chunks submitted, by the index */
	uint64_t got;       /* bytes delivered in order */
	uint32_t batch_bytes; /* a batch's decoded bytes, BATCH_BYTES or fewer (kbv_reader_new) */
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
static inline int same_envelope(const struct kbv_rleaf *a, const struct kbv_rleaf *b)
{
	return a->loc.pack == b->loc.pack && a->loc.offset == b->loc.offset;
}

/* ---- readjob.c: what the threads do with a job ---- */

int rworker_init(struct rworker *wk, struct kbv_repo *r);
void rworker_release(struct rworker *wk);
/* A worker's job (the pool's work function). */
void reader_work(void *wp, void *jp);
/* The pool's serial stage, in stream order: the whole-stream digest of a batch's decoded
 * bytes, or of the file read back (RJ_CHECK, after every job before it wrote its bytes). */
void reader_serial(void *rp, void *jp);
/* The walking thread takes a finished job back, in stream order: its bytes to the sink (a
 * check job: the count of the bytes it read back). */
int reader_deliver(void *arg, void *job);
/* The walking thread, before it submits a located chunk: 0 when the chunk fits in what is
 * left of the stream the snapshot recorded, so that no write lands past the stream's end,
 * whatever the index says; else KBV_ECORRUPT. */
int reader_fits(const struct rstream *rd, const struct kbv_rleaf *leaf);

/* ---- reader_window.c: the window planner, into a regular file ---- */

/* One located chunk into the window being collected. */
int window_collect(struct rstream *rd, const struct kbv_rleaf *leaf);
/* The collected window becomes the one submitted (the one before it went out whole). */
int window_next(struct rstream *rd);
/* Submit the sorted window's jobs, then its checks: as many as there are free slots, or
 * with `all` every one of them. */
int window_pump(struct rstream *rd, int all);

#endif
