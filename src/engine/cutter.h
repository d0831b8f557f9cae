/* Cutting a slot of the input into chunks on more than one core (engine-internal).
 *
 * FastCDC decides each cut from the bytes after the previous cut only (format/chunker.md),
 * so the reading thread's loop is sequential. Here the slot is split into segments: helper
 * threads cut segments 1.. speculatively, each as if a chunk began a few average chunks
 * before its first byte (so that its cuts have usually met the real ones by then), while
 * the calling thread cuts segment 0 for real. Where the real cuts reach a segment,
 * the caller goes on cutting until one of its cuts lands on a cut of that segment's
 * speculation; from that cut on the two are the same (the next cut is a function of its
 * start alone), so the rest of the segment is taken as it is. Where they never meet (a
 * long run of max-size chunks), the caller simply cuts the segment itself. The cuts are
 * therefore exactly those of the sequential loop, which tests/unit/test_chunker.c checks
 * on random, repetitive and real data. */
#ifndef KBV_ENGINE_CUTTER_H
#define KBV_ENGINE_CUTTER_H

#include "kbv/chunker.h"

#include <stddef.h>
#include <stdint.h>

struct kbv_cutter;

/* A cutter using `segments` threads in all (the caller and segments - 1 helpers; 1: no
 * helper, the plain loop). `max_chunks` bounds the chunks of one call. */
int kbv_cutter_new(const struct kbv_cdc *c, size_t segments, size_t max_chunks, struct kbv_cutter **out);
void kbv_cutter_free(struct kbv_cutter *k);

/* Cut chunks from the start of p[0..n) as the sequential loop does: a chunk is cut at each
 * position pos while pos < n, pos < stop, fewer than max_chunks are cut, and (unless eof)
 * at least c->max bytes are left from pos (the next cut needs that much look-ahead). The
 * lengths go to lens[] and their number to *count. Returns the bytes cut. `c` is the
 * chunker the cutter was made with; a NULL cutter cuts with the plain loop. */
size_t kbv_cutter_cut(struct kbv_cutter *k, const struct kbv_cdc *c, const uint8_t *p, size_t n, int eof,
		      size_t stop, uint32_t *lens, size_t max_chunks, size_t *count);

/* The input of a stream. A regular file is read with pread(2) from the offset it had,
 * in pieces on the cutter's threads (as a slot is cut) when kbv_cutter_read() is given a
 * cutter, so that the copy out of the page cache is not the reading thread's alone (the
 * writer gives one only where a CPU is free for the helpers); anything else (a pipe, a
 * file of less than two pieces when the stream began) with read(2). */
struct kbv_input {
	int fd;
	int64_t off;     /* a regular file: where the next read starts; -1: read(2) */
	uint64_t end;    /* a regular file: its size when the stream began (a hint) */
	const char *what;
};
void kbv_input_init(struct kbv_input *in, int fd, const char *what);
/* Leave the file's offset where reading it with read(2) would have. */
void kbv_input_done(struct kbv_input *in);

/* Read up to n bytes into p, as the reading loop's next slot: fewer only at the end of
 * the input (*eof then says so). An error names the input and the byte. */
int kbv_cutter_read(struct kbv_cutter *k, struct kbv_input *in, uint8_t *p, size_t n, size_t *got, int *eof);

/* Bytes of chunks taken from the helpers' speculation so far (tests, benchmarks). */
uint64_t kbv_cutter_taken(const struct kbv_cutter *k);

#endif
