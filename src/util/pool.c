#include "kbv/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

size_t kbv_pool_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (size_t)n : 1;
}

struct kbv_pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	pthread_cond_t cons_cv;  /* wakes the consumer beside: a job finished */
	pthread_cond_t space_cv; /* the consumer beside released a slot, or left fn */
	size_t nslots, job_size, nthreads;
	size_t head; /* oldest slot not yet released */
	size_t tail; /* next slot to submit */
	size_t next; /* next submitted slot a worker takes */
	size_t snext; /* next slot the serial stage takes */
	int stop;
	uint8_t *done; /* 1: parallel stage done, 2: serial stage done too */
	kbv_pool_fn serial;      /* run by serial_thread */
	kbv_pool_fn sync_serial; /* without threads: run inline after fn */
	void *serial_arg;
	pthread_t serial_thread;
	int serial_started;
	/* The consumer beside (kbv_pool_consume_beside): its function, its first failure,
	 * whether it is held back (the calling thread finishes the run itself: kbv_pool_drain,
	 * kbv_pool_discard) and whether it is inside fn now. */
	kbv_pool_consume_fn cfn;
	void *carg;
	int crc, cdiscard, cheld, cbusy;
	pthread_t consumer_thread;
	int consumer_started;
	uint8_t *jobs;
	kbv_pool_fn fn;
	void **workers;
	pthread_t *threads;
	struct arg {
		struct kbv_pool *p;
		void *worker;
	} *args;
};

static void *worker_main(void *a)
{
	struct arg *arg = a;
	struct kbv_pool *p = arg->p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->next == p->tail && !p->stop)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->next == p->tail)
			break;
		size_t i = p->next++ % p->nslots;
		pthread_mutex_unlock(&p->mu);
		p->fn(arg->worker, p->jobs + i * p->job_size);
		pthread_mutex_lock(&p->mu);
		p->done[i] = 1;
		pthread_cond_broadcast(&p->done_cv);
		if (!p->cheld)
			pthread_cond_signal(&p->cons_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The state a slot must reach before the consumer may take it. */
static uint8_t final_state(const struct kbv_pool *p)
{
	return p->serial ? 2 : 1;
}

/* Hand one finished job to the consumer (unread after a failure or while discarding) and
 * release its slot. Called and returns with the lock held; runs fn without it. */
static void consume_oldest(struct kbv_pool *p)
{
	void *job = p->jobs + (p->head % p->nslots) * p->job_size;
	if (p->crc == 0 && !p->cdiscard) {
		pthread_mutex_unlock(&p->mu);
		int rc = p->cfn(p->carg, job);
		pthread_mutex_lock(&p->mu);
		if (rc < 0 && p->crc == 0 && !p->cdiscard)
			p->crc = rc;
	}
	p->done[p->head % p->nslots] = 0;
	p->head++;
}

/* Is the oldest job ready for the consumer? */
static int oldest_ready(const struct kbv_pool *p)
{
	return p->head != p->tail && p->done[p->head % p->nslots] == final_state(p);
}

static void *consumer_main(void *a)
{
	struct kbv_pool *p = a;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && (p->cheld || !oldest_ready(p)))
			pthread_cond_wait(&p->cons_cv, &p->mu);
		if (p->cheld || !oldest_ready(p))
			break; /* stopping (kbv_pool_free comes after a drain or a discard) */
		p->cbusy = 1;
		consume_oldest(p);
		p->cbusy = 0;
		pthread_cond_broadcast(&p->space_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Hold the consumer beside back and wait until it is out of fn: from here the calling
 * thread consumes, in order, where it stopped. With the lock held. */
static void hold_consumer(struct kbv_pool *p)
{
	p->cheld = 1;
	while (p->cbusy)
		pthread_cond_wait(&p->space_cv, &p->mu);
}

/* Let it go on (when the next job finishes: nothing is in flight now). With the lock held. */
static void release_consumer(struct kbv_pool *p)
{
	p->cheld = 0;
}

static void *serial_main(void *a)
{
	struct kbv_pool *p = a;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && (p->snext == p->tail || p->done[p->snext % p->nslots] != 1))
			pthread_cond_wait(&p->done_cv, &p->mu);
		if (p->snext == p->tail || p->done[p->snext % p->nslots] != 1)
			break; /* stopping, and nothing left that is ready */
		size_t i = p->snext++ % p->nslots;
		pthread_mutex_unlock(&p->mu);
		p->serial(p->serial_arg, p->jobs + i * p->job_size);
		pthread_mutex_lock(&p->mu);
		p->done[i] = 2;
		pthread_cond_broadcast(&p->done_cv);
		if (!p->cheld)
			pthread_cond_signal(&p->cons_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct kbv_pool *kbv_pool_new(size_t nthreads, size_t nslots, size_t job_size, kbv_pool_fn fn, void **workers,
			      kbv_pool_fn serial, void *serial_arg)
{
	struct kbv_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	pthread_cond_init(&p->cons_cv, NULL);
	pthread_cond_init(&p->space_cv, NULL);
	p->nslots = nslots;
	p->job_size = job_size;
	p->fn = fn;
	p->workers = workers;
	p->serial = nthreads ? serial : NULL;
	p->serial_arg = serial_arg;
	p->sync_serial = nthreads ? NULL : serial;
	p->done = calloc(nslots, 1);
	p->jobs = calloc(nslots, job_size);
	p->threads = calloc(nthreads ? nthreads : 1, sizeof *p->threads);
	p->args = calloc(nthreads ? nthreads : 1, sizeof *p->args);
	if (!p->done || !p->jobs || !p->threads || !p->args) {
		kbv_pool_free(p);
		return NULL;
	}
	for (size_t t = 0; t < nthreads; t++) {
		p->args[t].p = p;
		p->args[t].worker = workers[t];
		if (pthread_create(&p->threads[t], NULL, worker_main, &p->args[t]) != 0) {
			kbv_pool_free(p);
			return NULL;
		}
		p->nthreads++;
	}
	if (p->serial) {
		if (pthread_create(&p->serial_thread, NULL, serial_main, p) != 0) {
			kbv_pool_free(p);
			return NULL;
		}
		p->serial_started = 1;
	}
	return p;
}

void kbv_pool_free(struct kbv_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	pthread_cond_broadcast(&p->done_cv);
	for (size_t t = 0; t < p->nthreads; t++)
		pthread_join(p->threads[t], NULL);
	if (p->serial_started) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->done_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->serial_thread, NULL);
	}
	if (p->consumer_started) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_signal(&p->cons_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->consumer_thread, NULL);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->cons_cv);
	pthread_cond_destroy(&p->space_cv);
	free(p->done);
	free(p->jobs);
	free(p->threads);
	free(p->args);
	free(p);
}

size_t kbv_pool_nslots(const struct kbv_pool *p) { return p->nslots; }
void *kbv_pool_slot(struct kbv_pool *p, size_t i) { return p->jobs + i * p->job_size; }

void *kbv_pool_acquire(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	int full = p->tail - p->head == p->nslots;
	size_t i = p->tail % p->nslots;
	pthread_mutex_unlock(&p->mu);
	return full ? NULL : p->jobs + i * p->job_size;
}

void kbv_pool_submit(struct kbv_pool *p)
{
	if (!p->nthreads) {
		size_t i = p->tail % p->nslots;
		p->fn(p->workers[0], p->jobs + i * p->job_size);
		if (p->sync_serial)
			p->sync_serial(p->serial_arg, p->jobs + i * p->job_size);
		p->done[i] = final_state(p);
		p->tail++;
		p->next = p->tail;
		if (p->cfn) { /* the consumer too, in this thread */
			pthread_mutex_lock(&p->mu);
			consume_oldest(p);
			pthread_mutex_unlock(&p->mu);
		}
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->done[p->tail % p->nslots] = 0;
	p->tail++;
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
}

void *kbv_pool_oldest(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->head == p->tail) {
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	size_t i = p->head % p->nslots;
	while (p->done[i] != final_state(p))
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return p->jobs + i * p->job_size;
}

int kbv_pool_ready(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	int r = p->head != p->tail && p->done[p->head % p->nslots] == final_state(p);
	pthread_mutex_unlock(&p->mu);
	return r;
}

void kbv_pool_release(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->done[p->head % p->nslots] = 0;
	p->head++;
	pthread_mutex_unlock(&p->mu);
}

int kbv_pool_consume(struct kbv_pool *p, kbv_pool_consume_fn fn, void *arg, int all)
{
	void *j;
	int rc = 0;
	while ((j = kbv_pool_oldest(p))) {
		rc = fn(arg, j);
		kbv_pool_release(p);
		if (rc < 0 || !all)
			break;
	}
	return rc;
}

/* The calling thread finishes the run of the consumer beside: it takes each job in order
 * as it is ready (unread when `unread`); returns the consumer's first failure and forgets
 * it. The last jobs of a run are consumed here rather than handed across, so a run of one
 * job (a small file) costs no more thread hand-offs than without a consumer beside. */
static int finish_here(struct kbv_pool *p, int unread)
{
	pthread_mutex_lock(&p->mu);
	hold_consumer(p);
	p->cdiscard = unread;
	while (p->head != p->tail) {
		while (!oldest_ready(p))
			pthread_cond_wait(&p->done_cv, &p->mu);
		consume_oldest(p);
	}
	p->cdiscard = 0;
	int rc = p->crc;
	p->crc = 0;
	release_consumer(p);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void kbv_pool_discard(struct kbv_pool *p)
{
	if (p->cfn) {
		finish_here(p, 1);
		return;
	}
	while (kbv_pool_oldest(p))
		kbv_pool_release(p);
}

void kbv_thread_name(pthread_t t, const char *base, long n)
{
	char name[64];
	if (n < 0)
		snprintf(name, sizeof name, "%s", base);
	else
		snprintf(name, sizeof name, "%s%ld", base, n);
	name[15] = 0; /* the kernel's limit */
	pthread_setname_np(t, name);
}

void kbv_pool_name(struct kbv_pool *p, const char *work, const char *serial, const char *consumer)
{
	for (size_t t = 0; work && t < p->nthreads; t++)
		kbv_thread_name(p->threads[t], work, (long)t);
	if (serial && p->serial_started)
		kbv_thread_name(p->serial_thread, serial, -1);
	if (consumer && p->consumer_started)
		kbv_thread_name(p->consumer_thread, consumer, -1);
}

int kbv_pool_consume_beside(struct kbv_pool *p, kbv_pool_consume_fn fn, void *arg)
{
	p->cfn = fn;
	p->carg = arg;
	if (!p->nthreads)
		return 0;
	if (pthread_create(&p->consumer_thread, NULL, consumer_main, p) != 0) {
		p->cfn = NULL;
		return -1;
	}
	p->consumer_started = 1;
	return 0;
}

void *kbv_pool_acquire_wait(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->tail - p->head == p->nslots)
		pthread_cond_wait(&p->space_cv, &p->mu);
	size_t i = p->tail % p->nslots;
	pthread_mutex_unlock(&p->mu);
	return p->jobs + i * p->job_size;
}

int kbv_pool_failed(struct kbv_pool *p)
{
	pthread_mutex_lock(&p->mu);
	int rc = p->crc;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int kbv_pool_drain(struct kbv_pool *p)
{
	return finish_here(p, 0);
}
