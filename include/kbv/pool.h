/* An ordered worker pool: one thread submits jobs into a ring of slots, worker threads
 * process them in parallel, an optional serial stage sees every job in submission order
 * (after its parallel stage), and the submitting thread takes the results back in
 * submission order. The ring bounds memory: a slot is reused only after it was consumed. */
#ifndef KBV_POOL_H
#define KBV_POOL_H

#include <stddef.h>

/* Process one job. `worker` is the per-thread state given at creation, `job` the slot. */
typedef void (*kbv_pool_fn)(void *worker, void *job);

struct kbv_pool;

/* Worker threads to use when the caller asks for 0: one per online CPU. */
size_t kbv_pool_default_threads(void);

/* nthreads workers (0: jobs run in the submitting thread), nslots slots of job_size bytes
 * each, zero-filled. workers[i] is passed to fn in thread i (workers[0] when nthreads is
 * 0). `serial` (may be NULL) runs in one more thread on each job in order, with
 * `serial_arg` as its first argument. Returns NULL when out of memory or a thread cannot
 * start. */
struct kbv_pool *kbv_pool_new(size_t nthreads, size_t nslots, size_t job_size, kbv_pool_fn fn, void **workers,
			      kbv_pool_fn serial, void *serial_arg);
/* Stop the threads (after finishing submitted jobs) and free. NULL is a no-op. */
void kbv_pool_free(struct kbv_pool *p);

size_t kbv_pool_nslots(const struct kbv_pool *p);
/* Slot i, for setting up buffers once after creation. */
void *kbv_pool_slot(struct kbv_pool *p, size_t i);

/* The next free slot to fill, or NULL when every slot is in flight (consume first). */
void *kbv_pool_acquire(struct kbv_pool *p);
/* Hand the slot returned by kbv_pool_acquire() to the workers. */
void kbv_pool_submit(struct kbv_pool *p);
/* The oldest submitted job, waiting until it is processed; NULL when nothing is in flight. */
void *kbv_pool_oldest(struct kbv_pool *p);
/* Release the slot returned by kbv_pool_oldest(). */
void kbv_pool_release(struct kbv_pool *p);

/* Hand finished jobs to fn in submission order and release them: all that are in flight
 * (all = 1) or just the oldest. Stops at the first negative return, which it returns. */
typedef int (*kbv_pool_consume_fn)(void *arg, void *job);
int kbv_pool_consume(struct kbv_pool *p, kbv_pool_consume_fn fn, void *arg, int all);
/* Wait for every job in flight and release it unread (after an error). */
void kbv_pool_discard(struct kbv_pool *p);

#endif
