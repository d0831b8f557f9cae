/* The LMDB index (format/index.md): blob id -> location, pack number -> pack. A cache of
 * what the pack trailers say; repair rebuilds it. */
#ifndef KBV_INDEX_H
#define KBV_INDEX_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"

#define KBV_PACKID_BYTES 16

struct kbv_loc {
	uint32_t pack;
	uint32_t offset;     /* of the envelope */
	uint32_t stored_len; /* of the envelope */
	uint32_t raw_off;    /* of the blob inside the decoded envelope */
	uint32_t raw_len;
	uint64_t xxh;
	uint8_t type;
};

/* One blob as a pack trailer lists it (format/pack.md). */
struct kbv_pack_entry {
	uint8_t type;
	uint8_t id[KBV_ID_BYTES];
	uint32_t offset;
	uint32_t stored_len;
	uint32_t raw_off;
	uint32_t raw_len;
	uint64_t xxh;
};

struct kbv_pack_info {
	uint8_t id[KBV_PACKID_BYTES];
	uint64_t size;
	uint32_t blobs;
};

struct kbv_index;

/* Open (creating if needed) the index in `dir`. KBV_EVERSION if it has another version. */
/* KBV_ECORRUPT naming the file when dir/data.mdb is shorter than its meta page says or has
 * no valid meta page (mapping it would end in SIGBUS); 0 when it is sound or absent. */
int kbv_index_file_check(const char *dir);
int kbv_index_open(const char *dir, struct kbv_index **out);
void kbv_index_close(struct kbv_index *idx);

/* Read transactions. A read transaction sees the index as of its begin (or renew); each
 * thread uses its own. */
int kbv_index_rbegin(struct kbv_index *idx, MDB_txn **txn);
int kbv_index_renew(MDB_txn *txn);
void kbv_index_rend(MDB_txn *txn);

/* Look a blob up. Returns 0 (and fills *loc if non-NULL), KBV_ENOTFOUND or an error. */
int kbv_index_get(struct kbv_index *idx, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES], struct kbv_loc *loc);
/* Pack by number. Returns 0, KBV_ENOTFOUND or an error. */
int kbv_index_pack(struct kbv_index *idx, MDB_txn *txn, uint32_t packno, struct kbv_pack_info *info);

/* Record durable packs and their blobs in one write transaction (packs[i] with counts[i]
 * entries). A blob already indexed elsewhere keeps its first location. Fewer, larger
 * transactions keep the LMDB file small: each one copies the pages it touches. */
int kbv_index_add_packs(struct kbv_index *idx, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks);
/* kbv_index_add_packs, but a blob located in one of the packs over[] (sorted numbers:
 * packs gc's plans name) takes the new location. */
int kbv_index_add_packs_over(struct kbv_index *idx, const struct kbv_pack_info *packs,
			     const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks,
			     const uint32_t *over, size_t nover);

/* Iterate all blobs / packs in key order; the callback returns 0 to go on, non-zero to stop
 * (that value is returned). */
typedef int (*kbv_index_blob_fn)(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc);
typedef int (*kbv_index_pack_fn)(void *arg, uint32_t packno, const struct kbv_pack_info *info);
int kbv_index_each_blob(struct kbv_index *idx, MDB_txn *txn, kbv_index_blob_fn fn, void *arg);
int kbv_index_each_pack(struct kbv_index *idx, MDB_txn *txn, kbv_index_pack_fn fn, void *arg);

/* gc: add the new packs (their blobs take over the locations), then remove packs gone[]
 * and every blob still located in one. Several write transactions of bounded size: every
 * intermediate state is consistent as long as the removed pack files still exist, so
 * delete them only after this returns 0. */
int kbv_index_gc_commit(struct kbv_index *idx, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks,
			const uint32_t *gone, size_t ngone);

/* Remove packs gone[] and every blob located in one (*removed counts those blobs), as
 * kbv_index_gc_commit without new packs. */
int kbv_index_drop_packs(struct kbv_index *idx, const uint32_t *gone, size_t ngone, uint64_t *removed);
/* Give every entry of pack number packno whose blob the index does not locate anywhere
 * that location (one write transaction); *filled counts them. */
int kbv_index_fill(struct kbv_index *idx, uint32_t packno, const struct kbv_pack_entry *e, size_t n, uint64_t *filled);
/* Index objects this cache has merged (format/index.md, meta keys `idxobj:<id>`).
 * kbv_index_obj_merged: 1 if merged, 0 if not, or an error. kbv_index_each_obj calls
 * fn(arg, id) for each (non-zero stops). kbv_index_mark_objs records add[] as merged and
 * forgets drop[], in one write transaction. */
typedef int (*kbv_index_obj_fn)(void *arg, const uint8_t id[KBV_ID_BYTES]);
int kbv_index_obj_merged(struct kbv_index *idx, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES]);
int kbv_index_each_obj(struct kbv_index *idx, MDB_txn *txn, kbv_index_obj_fn fn, void *arg);
int kbv_index_mark_objs(struct kbv_index *idx, const uint8_t (*add)[KBV_ID_BYTES], size_t nadd,
			const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop);

/* For fuzzing only: commits are no longer flushed to disk (a crash may lose the last
 * ones), so that a fuzzer writing the index thousands of times a second is not bound by
 * fsync. Never used by kbvault itself. */
void kbv_index_set_nosync(struct kbv_index *idx);

/* Store raw bytes as the value of `key` in the blobs (table 0) or packs (table 1)
 * database, whatever they say (val NULL: delete the key): for fuzzing and tests of what
 * readers do with a tampered index (format/index.md: the index is not authenticated). */
int kbv_index_put_raw(struct kbv_index *idx, int table, const void *key, size_t klen, const void *val, size_t vlen);

/* Write a compacted copy of the index into the (existing, empty) directory `dir`. */
int kbv_index_compact(struct kbv_index *idx, const char *dir);

/* Drop the index's mapped pages from this process's resident set (long scans over a big
 * index; they stay in the page cache). */
void kbv_index_release_pages(struct kbv_index *idx);
/* Bytes of pages in use and the file's used size (a compaction would bring the file
 * close to the former). */
int kbv_index_usage(struct kbv_index *idx, uint64_t *used, uint64_t *file);


#endif
