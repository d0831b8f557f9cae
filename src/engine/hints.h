/* Cut hints (engine-internal; the file is format/repository.md, "Cut hints").
 *
 * A nightly dump is mostly the bytes of the night before, and FastCDC's scan of them was
 * 38% of an unchanged re-snapshot's CPU (docs/benchmarks.md). A cut depends only on the
 * bytes from the chunk's start up to it (format/chunker.md), so where the bytes at a cut
 * are those of a chunk the stream had last time (same length, same keyed XXH3-64), the
 * scan would cut there again: this host keeps, per stream name, the length and keyed
 * XXH3-64 of each chunk of the stream's last snapshot but its final one (which the end of
 * the stream may have cut), and cuts the next snapshot of that name by trying them first.
 * Where a try fails (the bytes changed), the slot's rest is cut by the scan, and the
 * chunks it cuts are looked up among last time's to take up the hints again.
 *
 * A hint decides only where a chunk ends, never what it holds: the ids are the workers',
 * over the bytes read, so a wrong, stale, foreign or damaged file can cost deduplication,
 * never a wrong byte; and a file that does not match this repository's key and chunker is
 * ignored. The cuts are exactly the scan's (tests/unit/test_hints.c). */
#ifndef KBV_ENGINE_HINTS_H
#define KBV_ENGINE_HINTS_H

#include "engine/cutter.h"
#include "kbv/chunker.h"

#include <stddef.h>
#include <stdint.h>

struct kbv_hints;

/* The hints of stream `name` in directory `dir` (created when missing), under `key` (32
 * bytes derived from the repository's keys): last time's cuts when a valid file is there,
 * and a new file being recorded. A cache: a directory that cannot be used gives *out =
 * NULL and 0 (the stream is cut by the scan alone); only out of memory is an error. */
int kbv_hints_open(const char *dir, const uint8_t key[32], const char *name, const struct kbv_cdc *c,
		   struct kbv_hints **out);

/* kbv_cutter_cut() with the hints tried first; the same arguments and the same cuts. The
 * cuts are recorded for the next snapshot of the name. */
size_t kbv_hints_cut(struct kbv_hints *h, struct kbv_cutter *k, const uint8_t *p, size_t n, int eof, size_t stop,
		     uint32_t *lens, size_t max_chunks, size_t *count);

/* The end of the stream: when ok, what was recorded replaces the name's file; either way
 * h is freed. NULL is a no-op. */
void kbv_hints_close(struct kbv_hints *h, int ok);

/* Remove the files of dir no stream rewrote for 62 days (a file gone from a tree, a source
 * renamed), and temporary files older than a day (a crash's). Best effort. */
void kbv_hints_prune(const char *dir);

/* Bytes cut from hints so far, and the chunks last time's file held (0: none). */
uint64_t kbv_hints_taken(const struct kbv_hints *h);
size_t kbv_hints_known(const struct kbv_hints *h);

#endif
