/* Objects of a listing fetched side by side, ahead of their reading.
 *
 * A host's first sight of many objects it reads whole (index objects, manifests, records)
 * costs a round trip per object on object storage when they are read one after another.
 * A reader going through a listing in order asks kbv_ahead_get() for each object it needs
 * from the store; when that object's bytes were not fetched ahead, a run starts with it:
 * it and the next objects the reader will want (want()), at most `most` of them and `bytes`
 * of listed size, fetched by kbv_be_get_many (kbv_backend_parallel() at a time), handed
 * out one by one as the reader asks. Only on a backend of parallel connections: a local
 * one reads one at a time anyway, and its reader gets a plain GET.
 *
 * Best effort: a run keeps the objects it fetched; one whose fetch failed (and those not
 * started after it) gets its own GET when asked for, which reports what it meets (a gone
 * object's KBV_ENOTFOUND, say), and the next run starts after the run's last object (so
 * an object that fails is fetched at most twice, never once per run, and one fetched is
 * fetched once). Nothing read is trusted here: the reader authenticates each object as it
 * would a GET's bytes. */
#ifndef KBV_STORE_AHEAD_H
#define KBV_STORE_AHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/backend.h"
#include "kbv/buf.h"

struct kbv_meta_listed; /* store/metacache.h: an id and a listed size */

#define KBV_AHEAD_MOST 64

/* Whether the reader will ask for l (a later object of the listing): 1 yes, 0 no, <0 an
 * error, which kbv_ahead_get() returns. */
typedef int (*kbv_ahead_want_fn)(void *arg, const struct kbv_meta_listed *l);

struct kbv_ahead {
	/* Set by kbv_ahead_init(). */
	struct kbv_backend *be;
	enum kbv_obj obj;
	size_t most;	/* objects per run, at most KBV_AHEAD_MOST */
	uint64_t bytes; /* listed bytes per run past its first object; 0: no bound */
	kbv_ahead_want_fn want;
	void *arg;
	/* The run held: at[next..n) the listing positions whose bytes are in buf[], ascending;
	 * positions below `end` belong to a run already done (its own GETs). */
	size_t at[KBV_AHEAD_MOST];
	struct kbv_buf buf[KBV_AHEAD_MOST];
	size_t n, next, end;
};

/* Set up a for objects of `obj` read from `be` (borrowed; outlives a). */
void kbv_ahead_init(struct kbv_ahead *a, struct kbv_backend *be, enum kbv_obj obj, size_t most, uint64_t bytes,
		    kbv_ahead_want_fn want, void *arg);
/* The bytes of l[i] (the listing l[0..n), asked in ascending i) into `file`, its contents
 * replaced: those fetched ahead, else (a run of l[i] and the wanted ones after it, at most
 * `left` objects in all, when two or more) fetched now, else a GET of it. Returns 0 or
 * the error of that GET (KBV_ENOTFOUND when gone), or of want(). */
int kbv_ahead_get(struct kbv_ahead *a, const struct kbv_meta_listed *l, size_t i, size_t n, size_t left,
		  struct kbv_buf *file);
/* Free what is held. Safe on a zeroed or initialised a, and more than once. */
void kbv_ahead_release(struct kbv_ahead *a);

#endif
