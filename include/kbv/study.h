/* What each average chunk size would make of a set of files, without a repository: the
 * data behind `kbvault bench chunking`. Pure computation: reads the files, writes nothing. */
#ifndef KBV_STUDY_H
#define KBV_STUDY_H

#include <stddef.h>
#include <stdint.h>

/* One average chunk size's figures over all files, read in the order given (each file a
 * stream, as successive nights' dumps would be snapshotted). */
struct kbv_study {
	size_t avg;                 /* average chunk size; min = avg/4, max = avg*4 as in a repository */
	uint64_t raw_bytes;         /* bytes read */
	uint64_t chunks;            /* chunks cut */
	uint64_t unique_chunks;     /* distinct chunks (XXH3-128) */
	uint64_t unique_bytes;      /* their raw bytes */
	uint64_t stored_bytes;      /* estimate: new chunks in bundles of <= KBV_BUNDLE_TARGET per 1 MiB batch,
	                             * zstd-compressed, plus envelope and member-table overhead,
	                             * as the writer stores them (format/blob.md), plus each
	                             * stream's chunk-list tree and the pack trailers' entries */
	uint64_t index_bytes;       /* estimate: unique chunks x KBV_STUDY_INDEX_BYTES */
	uint64_t *file_new_bytes;   /* per file: raw bytes not seen in earlier files (caller frees) */
	uint64_t *file_new_stored;  /* per file: the stored estimate of those */
	double seconds;             /* chunking, hashing and compressing, this size alone */
};

/* LMDB index bytes per distinct chunk, as measured on repositories of 0.1 to 1.1 million
 * chunks (docs/benchmarks.md, chunk size sweep: 287-294 bytes per chunk with page slack). */
#define KBV_STUDY_INDEX_BYTES 290

/* Study every size in avgs (each a power of two from 1 KiB to 4 MiB) over the files, with
 * zstd at `zstd_level` (0: do not compress; stored_bytes then counts raw bytes). Fills
 * out[0..navg). The Gear table is keyed with zeros: a repository's own key moves the
 * boundaries, not the statistics. Returns 0 or a KBV_E* code naming the file. */
int kbv_study_chunking(const char *const *files, size_t nfiles, const size_t *avgs, size_t navg, int zstd_level,
		       struct kbv_study *out);
void kbv_study_free(struct kbv_study *s, size_t n);

#endif
