/* Reading streams back: walk the chunk-list tree, fetch and decode DATA blobs in parallel,
 * hand them out in order, and verify size and digest of the whole stream. */
#ifndef KBV_READER_H
#define KBV_READER_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/repo.h"
#include "kbv/writer.h"

/* Receives the stream in order. Return 0 to go on, or a negative KBV_E* code to stop. */
typedef int (*kbv_sink_fn)(void *arg, const uint8_t *p, size_t n);

struct kbv_reader;

/* nthreads 0: one per online CPU; at most 64. The repository must be unlocked. */
int kbv_reader_new(struct kbv_repo *r, size_t nthreads, struct kbv_reader **out);
void kbv_reader_free(struct kbv_reader *rd);
/* The repository it reads (borrowed). */
struct kbv_repo *kbv_reader_repo(const struct kbv_reader *rd);

/* Bytes of bundles decoded so far by this reader: what its restores cost beyond the bytes
 * they restored (a bundle holds members a stream may not use). Read when no stream is
 * being restored. */
uint64_t kbv_reader_decoded(const struct kbv_reader *rd);
/* Tests: windows of `first`, then `leaves` chunks (at most the default, 65,536; 0 keeps
 * the default) for kbv_reader_stream_fd() into a regular file. */
void kbv_reader_windows(struct kbv_reader *rd, size_t first, size_t leaves);

/* Restore one stream into `sink`. Every blob is authenticated before its bytes reach the
 * sink; at the end the size and (if `hash` is non-NULL and not KBV_DIGEST_NONE) the digest
 * of the whole stream, in its algorithm, are compared. On KBV_ECORRUPT the sink has
 * received a prefix of the stream, never a wrong byte. */
int kbv_reader_stream(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
		      const struct kbv_digest *hash, kbv_sink_fn sink, void *arg);

/* kbv_reader_stream() into fd (`what` names it in errors). At the end of a regular file
 * (not O_APPEND) the workers write what they decode at its place with pwrite, so the
 * kernel's copies into the page cache run on every core: from a local repository bundle by
 * bundle, each decoded once for all its members in a window of the stream, and the window
 * read back from the file in order for the digest; from object storage batch by batch in
 * order. Anything else (a pipe, a terminal) is written in order by this thread. `done` (may
 * be NULL) is told of every piece in stream order once it is in the file (progress): n its
 * length, p its bytes or NULL. On success the file offset is past the stream; on failure
 * the file is cut back to the prefix delivered in order, the offset after it. */
int kbv_reader_stream_fd(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size,
			 const struct kbv_digest *hash, int fd, const char *what, kbv_sink_fn done, void *arg);

/* 1 when a stream of `size` bytes is read whole on the calling thread, without the
 * workers (at most one bundle's size): kbv_reader_take() reads it. */
int kbv_reader_is_small(const struct kbv_reader *rd, uint64_t size);
/* The reader's worker threads (what a caller writing many small streams may use as well:
 * they are idle while small streams are read). */
size_t kbv_reader_threads(const struct kbv_reader *rd);
/* A small stream (kbv_reader_is_small) read whole and its size and digest proven, then
 * added to the end of *out; on failure nothing is added. */
int kbv_reader_take(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size, const struct kbv_digest *hash,
		    struct kbv_buf *out);

/* Restore a whole stream into memory (for entry tables). */
int kbv_reader_mem(struct kbv_reader *rd, const struct kbv_ref *ref, uint64_t size, struct kbv_buf *out);

/* Visit every blob id a stream references: TREE nodes (reading them) and DATA leaves
 * (without reading them). fn returns 0 to go on, KBV_VISIT_SKIP (for a TREE) to skip what
 * lies below it, anything else to stop with that value. Used by check and gc. */
#define KBV_VISIT_SKIP 1
typedef int (*kbv_visit_fn)(void *arg, int type, const uint8_t id[KBV_ID_BYTES]);
int kbv_reader_visit(struct kbv_reader *rd, const struct kbv_ref *ref, kbv_visit_fn fn, void *arg);

#endif
