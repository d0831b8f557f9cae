/* The metadata cache of a repository on object storage (format/repository.md, "Metadata
 * cache"): manifests, entry tables and chunk-list nodes this host wrote or read,
 * kept in its cache directory so that listing snapshots, retention and gc's mark phase
 * need no GET for what they saw before. Each entry is sealed with a key derived from the
 * repository's keys and bound to its kind and id: a damaged, foreign or tampered entry
 * fails authentication and counts as absent (and is removed); it never yields wrong
 * bytes. A cache, never the only copy: what is read from it exists in the bucket, which
 * the callers confirm (the listing for manifests and entry tables, the index for nodes).
 * A local repository has no metadata cache (its reads are local already). */
#ifndef KBV_STORE_METACACHE_H
#define KBV_STORE_METACACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/backend.h"
#include "kbv/blob.h"
#include "kbv/buf.h"
#include "store/ahead.h"

struct kbv_repo;

enum kbv_meta_kind {
	KBV_META_MANIFEST, /* a snapshot's manifest object, as in the bucket, by snapshot id */
	KBV_META_ENTRIES,  /* a snapshot's decoded entry table, by snapshot id */
	KBV_META_TREE,     /* a chunk-list node's plaintext, by TREE blob id */
	KBV_META_PLAN,     /* a deletion plan object, as in the bucket, by plan name */
	KBV_META_RECORD,   /* a record object (format/records.md), as in the bucket, by record id */
	KBV_META_KINDS
};

/* Whether r has a metadata cache in use: on object storage and not bypassed. */
int kbv_meta_on(const struct kbv_repo *r);
/* Bypass it for the rest of this handle's life (check reads everything from storage). */
void kbv_meta_bypass(struct kbv_repo *r);
/* The cached plaintext of (kind, id) into `plain`: 1 found and authentic, 0 absent (or
 * removed as damaged), <0 out of memory. */
int kbv_meta_get(struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], struct kbv_buf *plain);
/* Remember (kind, id) -> plaintext. Best effort: a cache that cannot be written (disk
 * full, permissions) costs requests later, never the operation now. Thread-safe. */
void kbv_meta_put(struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n);
/* 1 when the cache is in use and holds a file for (kind, id) whose plaintext would be
 * `size` bytes (by the file's size: not authenticated, a hint for what to fetch ahead). */
int kbv_meta_holds(const struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], uint64_t size);
/* An object a listing returned: its id (the name, unhexed) and its size. */
struct kbv_meta_listed {
	uint8_t id[KBV_ID_BYTES];
	uint64_t size;
};
/* A kbv_be_list_fn adding each name of 64 hex digits to the kbv_buf `arg` as a
 * struct kbv_meta_listed (others skipped). */
int kbv_meta_listed_add(void *arg, const char *name, uint64_t size, int64_t mtime);
/* Sort such a buffer by id, and look an id up in it (a keep function for kbv_meta_retain:
 * `arg` is the sorted buffer). */
void kbv_meta_listed_sort(struct kbv_buf *l);
int kbv_meta_listed_has(void *arg, const uint8_t id[KBV_ID_BYTES]);
/* Objects of a listing fetched ahead (store/ahead.h) for a reader that keeps them in this
 * cache as entries of `kind`: in runs of KBV_META_AHEAD, those the cache holds no entry of
 * with the listed size, so that a host's first sight of many manifests or records costs a
 * round trip per connection, not per object. */
#define KBV_META_AHEAD 64
struct kbv_meta_ahead {
	struct kbv_ahead a;
	struct kbv_repo *r;
	int kind;
};
void kbv_meta_ahead_init(struct kbv_meta_ahead *m, struct kbv_repo *r, int kind, enum kbv_obj obj);
/* Remove every entry of `kind` for which keep(arg, id) is 0, and any leftover temporary
 * file. Returns the number removed (best effort, like put). */
size_t kbv_meta_retain(struct kbv_repo *r, int kind, int (*keep)(void *arg, const uint8_t id[KBV_ID_BYTES]),
		       void *arg);

/* The key of a kind of host-local file (the metadata cache, cut hints): BLAKE2b-256, keyed
 * with the id key, of `label` with its terminating NUL followed by the encryption key, so
 * that only a holder of the master keys derives it (format/repository.md). */
void kbv_meta_local_key(const struct kbv_keys *keys, const char *label, uint8_t key[32]);

/* Pure, for tests and the fuzz corpus: seal `n` bytes as the cache file of (kind, id)
 * under `keys`, and open such a file (0, or KBV_ECORRUPT when it is not authentic). */
int kbv_meta_seal(const struct kbv_keys *keys, int kind, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n,
		  struct kbv_buf *file);
int kbv_meta_open(const struct kbv_keys *keys, int kind, const uint8_t id[KBV_ID_BYTES], const uint8_t *file,
		  size_t len, struct kbv_buf *plain);

#endif
