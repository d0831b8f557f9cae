/* An ordered worker pool: one thread submits jobs into a ring of slots, worker threads
 * process them in parallel, an optional serial stage sees every job in submission order
 * (after its parallel stage), and the submitting thread takes the results back in
 * submission order. The ring bounds memory: a slot is reused only after it was consumed. */
#ifndef KBV_POOL_H
#define KBV_POOL_H

#include <pthread.h>
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
/* 1 when the oldest job in flight is processed, so that kbv_pool_oldest() and
 * kbv_pool_consume(.., 0) would not wait; 0 when it is not, or nothing is in flight. */
int kbv_pool_ready(struct kbv_pool *p);
/* Release the slot returned by kbv_pool_oldest(). */
void kbv_pool_release(struct kbv_pool *p);

/* Hand finished jobs to fn in submission order and release them: all that are in flight
 * (all = 1) or just the oldest. Stops at the first negative return, which it returns. */
typedef int (*kbv_pool_consume_fn)(void *arg, void *job);
int kbv_pool_consume(struct kbv_pool *p, kbv_pool_consume_fn fn, void *arg, int all);
/* Wait for every job in flight and release it unread (after an error). With a consumer
 * beside: those it has not begun, and its failure is forgotten. */
void kbv_pool_discard(struct kbv_pool *p);

/* Name thread t "<base><n>" (n < 0: just base) for ps, top, perf and gdb, cut to the
 * kernel's 15 characters. */
void kbv_thread_name(pthread_t t, const char *base, long n);
/* Name the threads for ps, top, perf and gdb (at most 15 characters; the workers' get their
 * number appended). NULL leaves a kind unnamed. */
void kbv_pool_name(struct kbv_pool *p, const char *work, const char *serial, const char *consumer);

/* A consumer beside the submitting thread: one more thread hands finished jobs to fn in
 * submission order and releases them, so the submitting thread only fills and submits
 * (kbv_pool_acquire_wait) and, at the end of a run of jobs, finishes the run itself
 * (kbv_pool_drain): fn is called on one thread at a time, in order, on either. After fn's
 * first negative return, later jobs are released unread and that value is kept for
 * kbv_pool_failed() and kbv_pool_drain(). Set once, before the first submit;
 * kbv_pool_oldest() and kbv_pool_consume() are not used with it. Without worker threads fn
 * runs inside kbv_pool_submit(). Returns -1 when the thread cannot start. */
int kbv_pool_consume_beside(struct kbv_pool *p, kbv_pool_consume_fn fn, void *arg);
/* The next free slot to fill, waiting for the consumer beside to release one. */
void *kbv_pool_acquire_wait(struct kbv_pool *p);
/* The consumer's first failure (negative), 0 while there is none. */
int kbv_pool_failed(struct kbv_pool *p);
/* Consume, in this thread, every submitted job the consumer beside has not taken yet (it
 * is held back meanwhile, so a run of one job costs no hand-off to it); returns the
 * consumer's first failure (and forgets it, for the next run) or 0. */
int kbv_pool_drain(struct kbv_pool *p);

#endif
