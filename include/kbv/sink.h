/* The sink a snapshot's sources write into: the entries of the snapshot being built, each
 * stream's bytes going through the writer. The engine (or the CLI, on its behalf) makes a
 * sink, hands it to each source kind (kinds.h), then commits its entries with
 * kbv_snapshot_commit(). A source reports what the user should hear through the sink's
 * events, never by printing.
 *
 * Lifecycle: kbv_sink_new() -> sources add entries -> kbv_sink_check() ->
 * kbv_snapshot_commit(r, w, s, kbv_sink_entries()) -> kbv_sink_free(). */
#ifndef KBV_SINK_H
#define KBV_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "kbv/snapshot.h"
#include "kbv/writer.h"

struct kbv_sink;

/* What a source tells its user while it runs; either may be NULL. */
struct kbv_sink_events {
	void (*warn)(void *arg, const char *msg); /* something to look at; the snapshot goes on */
	void (*info)(void *arg, const char *msg); /* for the log */
	void *arg;
};

/* Say something through `ev` (NULL, or a NULL function: nothing), printf-style; for
 * restore and drill, which have events but no sink. */
void kbv_events_warn(const struct kbv_sink_events *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A sink writing through `w` (borrowed: it must outlive the sink) into the repository `r`
 * (borrowed; for a scratch directory). `now` is the mtime of stream entries (seconds).
 * `ev` is copied; NULL: no events. */
int kbv_sink_new(struct kbv_repo *r, struct kbv_writer *w, int64_t now, const struct kbv_sink_events *ev,
		 struct kbv_sink **out);
/* Free the sink and its entries. NULL is a no-op. */
void kbv_sink_free(struct kbv_sink *s);

/* The writer (borrowed) and repository (borrowed) of the sink. */
struct kbv_writer *kbv_sink_writer(struct kbv_sink *s);
struct kbv_repo *kbv_sink_repo(struct kbv_sink *s);

/* A new entry of `kind` named `name`; NULL with the error set (KBV_EINVAL) when the name
 * is not a valid stream name or could not be restored (control characters in a stream
 * name, a component over NAME_MAX, over 3072 bytes). Its stream is empty until
 * kbv_sink_set_result(). The pointer is valid until the next kbv_sink_entry(). */
struct kbv_entry *kbv_sink_entry(struct kbv_sink *s, int kind, const char *name);
/* Record a stored stream (size, hash, reference) in entry x. */
void kbv_sink_set_result(struct kbv_entry *x, const struct kbv_stream_result *res);

/* Store what fd delivers until end of file as a stream entry (KBV_ENTRY_COMMAND, mode
 * 0600) named `name`; `what` names the producer in messages. fd stays the caller's. */
int kbv_sink_fd(struct kbv_sink *s, const char *name, int fd, const char *what);
/* Store the output of a started child (pid, read end fd: closed here) as entry `name` and
 * wait for the child: a child that fails fails the stream (KBV_ESOURCE naming `what`). */
int kbv_sink_child(struct kbv_sink *s, const char *name, pid_t pid, int fd, const char *what);
/* Store the tree at `path` (a file, a symlink or a directory, recursively) under the name
 * `name`, with modes, times and owners; `exclude` (may be NULL) holds fnmatch patterns
 * separated by white space (a pattern with '/' matches the whole path, else the last
 * component). Special files are skipped with a warning. */
int kbv_sink_tree(struct kbv_sink *s, const char *path, const char *name, const char *exclude);

/* Say something through the sink's events (printf-style). */
void kbv_sink_warn(struct kbv_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kbv_sink_info(struct kbv_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Mark the snapshot as kept but degraded (a source's after hook failed though its dump
 * succeeded); kbv_sink_degraded() tells. */
void kbv_sink_set_degraded(struct kbv_sink *s);
int kbv_sink_degraded(const struct kbv_sink *s);

/* Refuse names that could not all be restored: two entries of one name, or a stream that
 * would also be the directory of another entry ("p" and "p/q"). KBV_EINVAL naming them. */
int kbv_sink_check(struct kbv_sink *s);

/* The entries so far (borrowed; valid until the next kbv_sink_entry() or free). */
const struct kbv_entry *kbv_sink_entries(const struct kbv_sink *s, size_t *n);

#endif
