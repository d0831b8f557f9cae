/* The WAL archive: files PostgreSQL's archive_command hands to `kbvault wal-push`, kept in
 * the repository as streams (chunked, deduplicated, sealed like any other) behind one small
 * object per file, wal/<source>~<file> (format/wal.md). The object name is the lookup key:
 * pushing and fetching a file cost one object read, whatever the archive's size. */
#ifndef KBV_WAL_H
#define KBV_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "kbv/digest.h"
#include "kbv/reader.h"
#include "kbv/repo.h"
#include "kbv/writer.h"

/* What a WAL object records (format/wal.md). */
struct kbv_wal_info {
	char source[65];
	char file[48];          /* "000000010000000000000003", "00000002.history", ... */
	uint64_t size;          /* of the file */
	struct kbv_digest hash; /* of the file */
	struct kbv_ref ref;     /* its stream */
	int64_t time;           /* when it was pushed (the pushing host's clock), seconds */
	uint64_t sysid;         /* segments: the cluster's system identifier (0: not a segment) */
	uint32_t timeline;      /* segments and history files; 0 for others */
};

/* Store the file at `path` (its base name must be one PostgreSQL archives) as WAL of source
 * `source`, durably (packs, their index, then the object) before returning 0. A file of
 * that name already archived with the same bytes: 0 and *existed = 1, nothing written.
 * With other bytes: KBV_EEXIST naming both digests, nothing written. nthreads as for a
 * writer. */
int kbv_wal_push(struct kbv_repo *r, const char *source, const char *path, size_t nthreads, int *existed);

/* Restore archived `file` of `source` to `dest` (written, fsynced; a partial file is
 * removed on failure). KBV_ENOTFOUND when the archive has no such file; KBV_ECORRUPT when
 * its bytes fail verification. */
int kbv_wal_fetch(struct kbv_repo *r, struct kbv_reader *rd, const char *source, const char *file, const char *dest);

/* The verified bytes of archived `file` of `source` into out (replacing its contents); for
 * small files (history and backup history files). KBV_ENOTFOUND when absent. */
int kbv_wal_get(struct kbv_repo *r, struct kbv_reader *rd, const char *source, const char *file, struct kbv_buf *out);

/* Copy every archived file of src that dst lacks (by name): read and verified, stored by
 * dst's chunker and keys, then its object as wal-push writes it (with the time, system
 * identifier and timeline src recorded). A name dst holds with other bytes is KBV_EEXIST
 * naming it. *copied and *present count the files. */
int kbv_wal_copy(struct kbv_repo *src, struct kbv_reader *src_rd, struct kbv_repo *dst, uint64_t *copied,
		 uint64_t *present);

/* Read and verify the object of `file` of `source` into *out. KBV_ENOTFOUND when absent. */
int kbv_wal_read(struct kbv_repo *r, const char *source, const char *file, struct kbv_wal_info *out);

/* Every archived file of `source` (NULL: of every source), in name order (which is WAL
 * order within a timeline). fn gets the source, the file and the object's modification
 * time; a non-zero return stops the listing with that value. No object is read. */
typedef int (*kbv_wal_list_fn)(void *arg, const char *source, const char *file, int64_t mtime);
int kbv_wal_list(struct kbv_repo *r, const char *source, kbv_wal_list_fn fn, void *arg);

/* A list of archived files kept for later (listed first, visited after): "<source>\0<file>\0"
 * pairs in a kbv_buf. _add appends one; _next returns the source of the pair at *off (its
 * file in *file) and moves *off past it, or NULL at the end. */
int kbv_wal_names_add(struct kbv_buf *names, const char *source, const char *file);
const char *kbv_wal_names_next(const struct kbv_buf *names, size_t *off, const char **file);

/* Remove an archived file (gc). A missing one is not an error. */
int kbv_wal_remove(struct kbv_repo *r, const char *source, const char *file);

/* Encode / decode an object body (exposed for tests and fuzzing). decode checks that the
 * body names `source` and `file` (an object copied under another name is refused). */
int kbv_wal_encode(const struct kbv_wal_info *w, char **out);
int kbv_wal_decode(const char *json, size_t len, const char *source, const char *file, struct kbv_wal_info *out);

/* ---- the archive's shape: what status, restore and gc look at ---- */

/* One archived segment (or partial segment). */
struct kbv_wal_seg {
	uint64_t segno;
	uint32_t tli;
	int64_t mtime; /* the object's modification time on the storage (its clock) */
};
/* The archive of one source: its segments sorted by number then timeline (owned; free()),
 * the segment size (read from the newest segment's object; 0 when there is none), the
 * number of archived files of every kind. */
struct kbv_wal_archive {
	struct kbv_wal_seg *segs;
	size_t n;
	uint64_t seg_size, files;
};
int kbv_wal_archive_read(struct kbv_repo *r, const char *source, struct kbv_wal_archive *out);
void kbv_wal_archive_release(struct kbv_wal_archive *a);
/* Segments missing from the archive between the first archived one at or after `from` and
 * the newest (each segment number counts once, whatever its timeline): their count, and
 * the first of them in *first (UINT64_MAX when none) with the index of the segment
 * archived just before it in *before (SIZE_MAX when none is). With `exact`, the walk
 * starts at `from` itself: a missing `from` is the first gap (status starts at the oldest
 * base backup's start, where older files may be gone; a restore needs exactly its own). */
uint64_t kbv_wal_gaps(const struct kbv_wal_archive *a, uint64_t from, int exact, uint64_t *first, size_t *before);
/* The sources that have an archive, as a JSON array of strings (sorted). */
int kbv_wal_sources(struct kbv_repo *r, json_t **out);

/* What status and the metrics file say of each source's archive: archived files and
 * segments, the oldest and newest segment, when the newest was archived (the storage's
 * clock), and the segments missing from the oldest base backup's first segment (of the
 * snapshots in list) or the oldest archived one on. */
struct kbv_wal_summary {
	char source[65];
	uint64_t files, segments, gaps;
	char first[25], last[25], first_gap[25]; /* "" when none */
	int64_t last_time;
};
struct kbv_snapshot;
int kbv_wal_summarize(struct kbv_repo *r, struct kbv_snapshot *const *list, size_t n, struct kbv_wal_summary **out,
		      size_t *nout);

/* Segment arithmetic. A segment name is TTTTTTTTXXXXXXXXYYYYYYYY (timeline, then the
 * segment number split at 2^32/segment size). Parse it into timeline and a running
 * segment number for `seg_size` bytes per segment; -1 if not a segment name. */
int kbv_wal_segno(const char *file, uint64_t seg_size, uint32_t *tli, uint64_t *segno);
/* The name of segment segno on timeline tli, into out (25 bytes). */
void kbv_wal_segname(uint32_t tli, uint64_t segno, uint64_t seg_size, char out[25]);
/* The segment that holds LSN "X/Y" ("0/3000028"); -1 when it does not parse. */
int kbv_wal_lsn_segno(const char *lsn, uint64_t seg_size, uint64_t *segno);

#endif
