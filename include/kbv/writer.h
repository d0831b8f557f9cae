/* Storing streams: read -> FastCDC -> (workers: id, dedup lookup, zstd, seal) -> packs in
 * stream order -> chunk-list tree. Memory is bounded by the ring of in-flight chunks. */
#ifndef KBV_WRITER_H
#define KBV_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/digest.h"
#include "kbv/repo.h"

#define KBV_REF_EMPTY 255
#define KBV_TREE_MAX_DEPTH 16
#define KBV_TREE_NODE_MAX 2048

/* Root of a stored stream (format/snapshot.md "ref"). */
struct kbv_ref {
	uint8_t depth; /* KBV_REF_EMPTY for an empty stream */
	uint8_t id[KBV_ID_BYTES];
};

struct kbv_stream_result {
	uint64_t size;
	struct kbv_digest hash; /* of the whole stream, kbv_writer_digest()'s algorithm */
	struct kbv_ref ref;
};

struct kbv_writer_stats {
	uint64_t raw_bytes;        /* bytes read from all streams */
	uint64_t new_raw_bytes;    /* of which not yet in the repository */
	uint64_t new_stored_bytes; /* what the new blobs take in packs */
	uint64_t chunks, new_chunks;
	uint64_t packs;
	uint64_t hinted_bytes; /* of raw_bytes, cut where last time's cuts said (engine/hints.h) */
};

typedef void (*kbv_progress_fn)(void *arg, const struct kbv_writer_stats *st);

struct kbv_writer;

/* A writer for one snapshot. nthreads 0 means one per online CPU. The repository must be
 * unlocked and outlive the writer. */
int kbv_writer_new(struct kbv_repo *r, size_t nthreads, struct kbv_writer **out);
/* The digest algorithm of the streams stored from now on (KBV_DIGEST_DEFAULT until set):
 * copy keeps the algorithm a source snapshot recorded. */
void kbv_writer_digest(struct kbv_writer *w, int alg);
/* The name of the next stream kbv_writer_fd() stores (the entry's, in the snapshot): its
 * cuts are tried where the last snapshot of that name on this host cut (engine/hints.h),
 * and recorded for the next. Only that stream; without a name, the scan alone. */
int kbv_writer_hint(struct kbv_writer *w, const char *name);
/* Called after each batch of chunks (about 1 MiB) is packed, on the writer's packing thread
 * (never two at once; the caller's thread is reading meanwhile), and once at each stream's
 * end on the caller's. */
void kbv_writer_set_progress(struct kbv_writer *w, kbv_progress_fn fn, void *arg);
/* Store everything read from fd until end of file. `what` names the input in errors; a
 * failed read of fd is KBV_ESOURCE, a failure of the repository keeps its own code. */
int kbv_writer_fd(struct kbv_writer *w, int fd, const char *what, struct kbv_stream_result *res);
/* Store a byte range. */
int kbv_writer_mem(struct kbv_writer *w, const void *p, size_t n, struct kbv_stream_result *res);
/* Write out and index the open pack. After this returns 0, every stream stored so far is
 * durable and indexed. */
int kbv_writer_flush(struct kbv_writer *w);
const struct kbv_writer_stats *kbv_writer_stats(const struct kbv_writer *w);
/* Free; an unflushed pack is discarded (its blobs were never indexed). NULL is a no-op. */
void kbv_writer_free(struct kbv_writer *w);

/* Encode / decode a ref (33 bytes). */
void kbv_ref_put(uint8_t out[33], const struct kbv_ref *ref);
void kbv_ref_get(const uint8_t in[33], struct kbv_ref *ref);

#endif
