/* Snapshot manifests and entry tables (format/snapshot.md). */
#ifndef KBV_SNAPSHOT_H
#define KBV_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/reader.h"
#include "kbv/repo.h"
#include "kbv/writer.h"

enum kbv_entry_kind {
	KBV_ENTRY_STDIN = 1,
	KBV_ENTRY_COMMAND = 2,
	KBV_ENTRY_FILE = 3,
	KBV_ENTRY_DIR = 4,
	KBV_ENTRY_SYMLINK = 5,
};

struct kbv_entry {
	uint8_t kind;
	char *name;   /* relative path, owned */
	uint32_t mode;
	int64_t mtime;
	uint32_t mtime_ns;
	uint64_t size;
	struct kbv_digest hash; /* of the whole content (entry format 3 says which algorithm) */
	struct kbv_ref ref;
	char *target; /* symlink target, owned; NULL for other kinds */
	/* Owner (entry format 2, body version 3): numbers and names, owned; user and group are
	 * NULL in entries of older snapshots, which recorded no owner. */
	uint32_t uid, gid;
	char *user, *group;
};

/* One source of an application snapshot (body version 2). Strings are owned. */
struct kbv_snapsource {
	char *name;
	char *type; /* "postgres", "qdrant", "neo4j", "command", "path" */
	char *meta; /* one JSON object, as stored */
};

struct kbv_snapshot {
	uint8_t id[KBV_ID_BYTES];
	uint32_t body_version; /* set by decode; encode always writes the newest */
	int64_t time;
	uint32_t nsec;
	int32_t tzoff;
	char *host;
	char **tags;
	size_t ntags;
	uint64_t nentries;
	uint64_t total_size;
	struct kbv_ref table_ref;
	uint64_t table_size;
	struct kbv_snapsource *sources;
	size_t nsources;
	/* Filled by kbv_snapshot_load_entries(). */
	struct kbv_entry *entries;
	size_t nloaded;
};

/* Is `name` a safe relative path (no empty, "." or ".." component, not absolute)? */
int kbv_entry_name_ok(const char *name);
/* Does an entry of this kind hold a stream of bytes (stdin, command, file), as opposed to a
 * directory or a symlink? */
int kbv_entry_has_data(const struct kbv_entry *e);

/* Is `name` a valid source name (1-64 bytes of A-Z a-z 0-9 . _ -, not "." or "..")? */
int kbv_source_name_ok(const char *name);
/* The source of s named `name`, or NULL. */
const struct kbv_snapsource *kbv_snapshot_source(const struct kbv_snapshot *s, const char *name);

/* Serialize entries (the entry table stream, newest format: 2, with owners). */
int kbv_entries_encode(const struct kbv_entry *e, size_t n, struct kbv_buf *out);
/* Parse an entry table of the newest format; *out is an array of n entries the caller
 * frees with kbv_entries_free(). KBV_ECORRUPT on malformed input. */
int kbv_entries_decode(const uint8_t *p, size_t len, struct kbv_entry **out, size_t *n);
/* The same for entry format `format` (1: body versions 1 and 2, no owners; 2: version 3). */
int kbv_entries_decode_format(const uint8_t *p, size_t len, int format, struct kbv_entry **out, size_t *n);
void kbv_entries_free(struct kbv_entry *e, size_t n);

/* Store `entries` as the table of `s` (through the writer), flush the writer, then write
 * the manifest durably; s->id is set. After this returns 0 the snapshot exists. */
int kbv_snapshot_commit(struct kbv_repo *r, struct kbv_writer *w, struct kbv_snapshot *s,
			const struct kbv_entry *entries, size_t n);

/* Encode / decode a manifest body (exposed for tests and fuzzing). */
int kbv_snapshot_encode_body(const struct kbv_snapshot *s, struct kbv_buf *out);
int kbv_snapshot_decode_body(const uint8_t *p, size_t len, struct kbv_snapshot *s);

/* Read and verify one manifest file. */
int kbv_snapshot_load(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES], struct kbv_snapshot **out);
/* All snapshots, oldest first (by time, then id). *list is an array of n pointers; free
 * with kbv_snapshot_list_free(). A damaged manifest fails the whole call (gc and check
 * need every snapshot); see kbv_snapshot_list_damaged() for the others. On object storage,
 * when the listing holds a manifest this host had not seen, the index cache is brought up
 * to date afterwards (so every blob of a listed snapshot is indexed), unless a writer of r
 * is alive. */
int kbv_snapshot_list(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n);
void kbv_snapshot_list_free(struct kbv_snapshot **list, size_t n);

/* A manifest that failed to load: its id (from the file name) and why. */
struct kbv_snapshot_damage {
	uint8_t id[KBV_ID_BYTES];
	char *msg; /* owned */
};
/* Remove a manifest durably (the snapshot is gone; its data stays until gc). A missing
 * one is not an error. */
int kbv_snapshot_remove(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES]);
/* The same for n manifests, in as few requests as the storage allows (one DeleteObjects
 * on object storage); none is removed when one is retained. On another error some may be
 * gone and others not. */
int kbv_snapshot_remove_many(struct kbv_repo *r, const uint8_t (*ids)[KBV_ID_BYTES], size_t n);

/* The ids of every manifest in the repository, KBV_ID_BYTES each, into ids (replacing
 * its contents); none is read. */
int kbv_snapshot_ids(struct kbv_repo *r, struct kbv_buf *ids);

/* kbv_snapshot_list(), but a manifest that fails verification or has an unknown version
 * costs only itself: it goes to *damaged (n_damaged of them; free with
 * kbv_snapshot_damage_free) and the others are listed. Any other error fails the call. */
int kbv_snapshot_list_damaged(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n,
			      struct kbv_snapshot_damage **damaged, size_t *n_damaged);
void kbv_snapshot_damage_free(struct kbv_snapshot_damage *d, size_t n);
/* The damaged manifest whose id `spec` (4 to 64 hex digits) begins, or NULL. Borrowed. */
const struct kbv_snapshot_damage *kbv_snapshot_damage_find(const struct kbv_snapshot_damage *d, size_t n,
							   const char *spec);
/* Resolve "latest", a full id or a unique hex prefix (at least 4 digits) within a list. */
int kbv_snapshot_find(struct kbv_snapshot **list, size_t n, const char *spec, struct kbv_snapshot **out);

/* What "latest" must hold (restic's --host, --tag and --path filters). NULL or zero
 * members match everything; every named source and tag must be present. Borrowed. */
struct kbv_snapshot_filter {
	const char *host;
	const char *const *tags;
	size_t ntags;
	const char *const *sources;
	size_t nsources;
};
/* Does s pass the filter (f may be NULL)? */
int kbv_snapshot_matches(const struct kbv_snapshot *s, const struct kbv_snapshot_filter *f);
/* kbv_snapshot_find() where "latest" is the newest snapshot that passes `f`; an id or a
 * prefix names one snapshot whatever the filter. KBV_ENOTFOUND names the filter when no
 * snapshot passes it. */
int kbv_snapshot_find_in(struct kbv_snapshot **list, size_t n, const char *spec, const struct kbv_snapshot_filter *f,
			 struct kbv_snapshot **out);
/* The filter as words for messages: "of source 'kb' on host 'db1'" ("" for none). */
void kbv_snapshot_filter_describe(const struct kbv_snapshot_filter *f, char *out, size_t cap);
/* Read the entry table of s through `rd`. */
int kbv_snapshot_load_entries(struct kbv_reader *rd, struct kbv_snapshot *s);
/* On object storage, the entry tables of list[0..n) that neither are loaded nor sit in the
 * metadata cache are loaded side by side, up to `s3-connections` (at most 16) at a time,
 * each thread with a reader of its own, so that a host's first `snapshots` costs a round
 * trip per connection, not per snapshot. Best effort: a table that could not be read is
 * left unloaded, and kbv_snapshot_load_entries() then reports what it meets. A local
 * repository: nothing (its reads come from the page cache). */
void kbv_snapshot_load_entries_all(struct kbv_repo *r, struct kbv_snapshot **list, size_t n);
/* The same for a walk from the newest down (list oldest first): list[i] and the snapshots
 * before it that pass f (NULL: all) and are not loaded, as many as the storage reads side
 * by side (`s3-connections`, at most 16), newest first. */
void kbv_snapshot_load_entries_before(struct kbv_repo *r, struct kbv_snapshot **list, size_t i,
				      const struct kbv_snapshot_filter *f);
void kbv_snapshot_free(struct kbv_snapshot *s);

#endif
