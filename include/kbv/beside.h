/* One call run on a thread of its own while the caller does something else: requests to
 * object storage that depend on nothing of each other go side by side instead of one round
 * trip after the other. Error messages are per thread (error.h): the call's status and
 * message are kept here and handed to the caller when it waits. */
#ifndef KBV_BESIDE_H
#define KBV_BESIDE_H

#include <pthread.h>
#include <stddef.h>

struct kbv_beside {
	int (*fn)(void *arg);
	void *arg;
	pthread_t thread;
	int started; /* 0: no thread could start, and fn ran in kbv_beside_start() */
	int rc;      /* fn's return */
	char msg[1024];
};

/* Run fn(arg) on a new thread (or here and now when none can start). `b` and `arg` must
 * stay valid until kbv_beside_wait(). */
void kbv_beside_start(struct kbv_beside *b, int (*fn)(void *arg), void *arg);

/* Wait for the call. `mine` is the caller's own status for the work it did meanwhile: when
 * it is an error it is returned as it is (its message stays this thread's); otherwise the
 * call's return, and when that is an error its message becomes this thread's. */
int kbv_beside_wait(struct kbv_beside *b, int mine);

/* The same work on many items: each(arg, t, i) for every i < n, side by side on `threads`
 * threads (at most KBV_BESIDE_MOST; the caller's thread is one of them), each i taken by
 * one thread, in ascending order. t < threads names the thread running the call, for
 * state of its own the caller keeps in an array (a reader per thread, say). Once a call
 * returns an error no further i is started. Returns 0, or the error of the lowest i that
 * failed (its message this thread's). One thread, or n < 2: here, one after the other. */
#define KBV_BESIDE_MOST 16
int kbv_beside_each(size_t n, unsigned threads, int (*each)(void *arg, unsigned t, size_t i), void *arg);

#endif
