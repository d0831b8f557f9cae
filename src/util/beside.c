#include "kbv/beside.h"
#include "kbv/error.h"

#include <stdio.h>

static void beside_run(struct kbv_beside *b)
{
	b->rc = b->fn(b->arg);
	if (b->rc < 0)
		snprintf(b->msg, sizeof b->msg, "%s", kbv_errmsg());
}

static void *beside_thread(void *arg)
{
	beside_run(arg);
	return NULL;
}

void kbv_beside_start(struct kbv_beside *b, int (*fn)(void *arg), void *arg)
{
	b->fn = fn;
	b->arg = arg;
	b->rc = 0;
	b->msg[0] = 0;
	b->started = pthread_create(&b->thread, NULL, beside_thread, b) == 0;
	if (!b->started)
		beside_run(b);
}

int kbv_beside_wait(struct kbv_beside *b, int mine)
{
	if (b->started) {
		pthread_join(b->thread, NULL);
		b->started = 0;
	}
	if (mine < 0)
		return mine;
	return b->rc < 0 ? kbv_error(b->rc, "%s", b->msg) : b->rc;
}

/* ---- kbv_beside_each: a queue of items taken by several threads ---- */

struct each {
	int (*fn)(void *arg, unsigned t, size_t i);
	void *arg;
	size_t n, next;
	size_t failed; /* the lowest i that failed; n: none */
	int rc;
	char msg[1024];
	pthread_mutex_t mu;
};

struct each_thread {
	struct each *e;
	unsigned t;
	struct kbv_beside thread;
};

static int each_run(void *arg)
{
	struct each_thread *et = arg;
	struct each *e = et->e;
	for (;;) {
		pthread_mutex_lock(&e->mu);
		size_t i = e->failed < e->n ? e->n : e->next++;
		pthread_mutex_unlock(&e->mu);
		if (i >= e->n)
			return 0;
		int rc = e->fn(e->arg, et->t, i);
		if (rc < 0) {
			pthread_mutex_lock(&e->mu);
			if (i < e->failed) {
				e->failed = i;
				e->rc = rc;
				snprintf(e->msg, sizeof e->msg, "%s", kbv_errmsg());
			}
			pthread_mutex_unlock(&e->mu);
		}
	}
}

int kbv_beside_each(size_t n, unsigned threads, int (*each)(void *arg, unsigned t, size_t i), void *arg)
{
	struct each e = { .fn = each, .arg = arg, .n = n, .failed = n };
	struct each_thread et[KBV_BESIDE_MOST];
	if (threads > KBV_BESIDE_MOST)
		threads = KBV_BESIDE_MOST;
	if (threads > n)
		threads = (unsigned)n;
	if (threads < 2) {
		for (size_t i = 0; i < n; i++) {
			int rc = each(arg, 0, i);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	pthread_mutex_init(&e.mu, NULL);
	for (unsigned t = 0; t < threads; t++)
		et[t] = (struct each_thread){ .e = &e, .t = t };
	for (unsigned t = 1; t < threads; t++)
		kbv_beside_start(&et[t].thread, each_run, &et[t]);
	each_run(&et[0]);
	for (unsigned t = 1; t < threads; t++)
		kbv_beside_wait(&et[t].thread, 0);
	pthread_mutex_destroy(&e.mu);
	return e.failed < n ? kbv_error(e.rc, "%s", e.msg) : 0;
}
