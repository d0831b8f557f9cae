/* Reading a pipe ahead of the stream, on a thread of its own (engine-internal).
 *
 * A regular file is read in pieces on the cutter's threads (cutter.h). A pipe can only be
 * read in order, and read(2) on a pipe costs its reader the kernel's copy out of the pipe,
 * the release of the pipe's pages and a sleep whenever the writer (pg_dump, cat) is behind.
 * Here one more thread reads the pipe into a ring of buffers, and the reading thread takes
 * each full buffer as it is, giving an empty one of the same size back in its place: the
 * bytes are copied once, by the kernel, as before. */
#ifndef KBV_ENGINE_READAHEAD_H
#define KBV_ENGINE_READAHEAD_H

#include <stddef.h>
#include <stdint.h>

struct kbv_readahead;

/* Start reading fd (not closed here) into a ring of `npieces` buffers of room + piece
 * bytes each, `piece` bytes at a time at offset `room` (the caller's room in front). `what`
 * names the input in errors and must outlive the reader. */
int kbv_readahead_start(int fd, const char *what, size_t room, size_t piece, size_t npieces,
			struct kbv_readahead **out);

/* Take the next piece: *buf, which must be an empty buffer of room + piece bytes from
 * malloc(), goes to the ring, and comes back as the piece's buffer, whose bytes are
 * (*buf)[room .. room + *got). *got is less than piece only at the end of the input; 0
 * with *eof set once everything is taken (*buf is then unchanged). A failed read of the
 * thread is returned here, naming the input and the byte, after the pieces before it. */
int kbv_readahead_take(struct kbv_readahead *r, uint8_t **buf, size_t *got, int *eof);

/* Stop the thread (at once, even while the pipe is idle) and free the ring's buffers.
 * NULL is a no-op. Bytes read ahead and not taken are dropped: call it at the end of the
 * input, or when the stream is given up. */
void kbv_readahead_stop(struct kbv_readahead *r);

#endif
