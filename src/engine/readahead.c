/* A pipe read ahead on its own thread into a ring of buffers (readahead.h has the why). */
#include "readahead.h"
#include "kbv/error.h"
#include "kbv/pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct piece {
	uint8_t *data; /* room + piece bytes; the piece's bytes from `room` on */
	size_t len;
};

struct kbv_readahead {
	int fd, stopfd;
	const char *what;
	pthread_t thread;
	int started;         /* the thread runs (to be joined) */
	pthread_mutex_t mu;
	pthread_cond_t filled, emptied;
	struct piece *ring;
	size_t room, piece, npieces;
	uint64_t head, tail; /* pieces taken / read in; tail - head are full */
	int end;             /* the thread is done: end of input, failure or stop */
	int stop;
	int rc;              /* the thread's failure, after its pieces */
	char msg[256];
	uint64_t bytes;      /* read so far, for the error's byte */
};

/* Wait until fd is readable or the reader is stopped: 1, 0 (stop), or -errno. */
static int wait_readable(struct kbv_readahead *r)
{
	struct pollfd p[2] = { { .fd = r->fd, .events = POLLIN }, { .fd = r->stopfd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents)
			return 0;
		if (p[0].revents) /* data, the writer's end closed (read gives 0), or an error for read to tell */
			return 1;
	}
}

/* Fill one piece: up to r->piece bytes, fewer at the end of the input. */
static int fill(struct kbv_readahead *r, struct piece *pc, int *eof)
{
	pc->len = 0;
	while (pc->len < r->piece) {
		int ok = wait_readable(r);
		if (ok == 0)
			return 1; /* stopped */
		ssize_t n;
		if (ok < 0) {
			errno = -ok;
			n = -1;
		} else {
			n = read(r->fd, pc->data + r->room + pc->len, r->piece - pc->len);
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(r->msg, sizeof r->msg, "read '%s' at byte %llu: %s", r->what,
				 (unsigned long long)(r->bytes + pc->len), strerror(errno));
			return -1;
		}
		if (n == 0) {
			*eof = 1;
			break;
		}
		pc->len += (size_t)n;
	}
	r->bytes += pc->len;
	return 0;
}

static void *reader_main(void *arg)
{
	struct kbv_readahead *r = arg;
	int eof = 0, rc = 0;
	while (!eof && rc == 0) {
		pthread_mutex_lock(&r->mu);
		while (r->tail - r->head == r->npieces && !r->stop)
			pthread_cond_wait(&r->emptied, &r->mu);
		int stop = r->stop;
		struct piece *pc = &r->ring[r->tail % r->npieces];
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		rc = fill(r, pc, &eof); /* the piece at tail is this thread's until tail moves */
		pthread_mutex_lock(&r->mu);
		if (rc == 0 && pc->len) /* not after a stop: a piece cut short is not the end */
			r->tail++;
		if (rc < 0)
			r->rc = KBV_EIO;
		pthread_cond_signal(&r->filled);
		pthread_mutex_unlock(&r->mu);
	}
	pthread_mutex_lock(&r->mu);
	r->end = 1;
	pthread_cond_signal(&r->filled);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

void kbv_readahead_stop(struct kbv_readahead *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_signal(&r->emptied);
		pthread_mutex_unlock(&r->mu);
		uint64_t one = 1;
		(void)!write(r->stopfd, &one, sizeof one); /* wakes its poll */
		pthread_join(r->thread, NULL);
	}
	for (size_t i = 0; r->ring && i < r->npieces; i++)
		free(r->ring[i].data);
	free(r->ring);
	if (r->stopfd >= 0)
		close(r->stopfd);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->filled);
	pthread_cond_destroy(&r->emptied);
	free(r);
}

int kbv_readahead_start(int fd, const char *what, size_t room, size_t piece, size_t npieces,
			struct kbv_readahead **out)
{
	struct kbv_readahead *r = calloc(1, sizeof *r);
	*out = NULL;
	if (!r)
		return kbv_error(KBV_ENOMEM, "out of memory");
	r->fd = fd;
	r->what = what;
	r->room = room;
	r->piece = piece;
	r->npieces = npieces;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->filled, NULL);
	pthread_cond_init(&r->emptied, NULL);
	r->stopfd = eventfd(0, EFD_CLOEXEC);
	r->ring = calloc(npieces, sizeof *r->ring);
	int ok = r->stopfd >= 0 && r->ring;
	for (size_t i = 0; ok && i < npieces; i++)
		ok = (r->ring[i].data = malloc(room + piece)) != NULL;
	if (!ok) {
		kbv_readahead_stop(r);
		return kbv_error(KBV_ENOMEM, "cannot set up reading '%s' ahead: out of memory or descriptors", what);
	}
	if (pthread_create(&r->thread, NULL, reader_main, r) != 0) {
		kbv_readahead_stop(r);
		return kbv_error(KBV_ENOMEM, "cannot start a thread to read '%s'", what);
	}
	r->started = 1;
	kbv_thread_name(r->thread, "kbv-pipe", -1);
	*out = r;
	return 0;
}

int kbv_readahead_take(struct kbv_readahead *r, uint8_t **buf, size_t *got, int *eof)
{
	*got = 0;
	*eof = 0;
	pthread_mutex_lock(&r->mu);
	while (r->head == r->tail && !r->end)
		pthread_cond_wait(&r->filled, &r->mu);
	if (r->head == r->tail) { /* the thread is done and every piece is taken */
		int rc = r->rc;
		pthread_mutex_unlock(&r->mu);
		if (rc < 0)
			return kbv_error(rc, "%s", r->msg);
		*eof = 1;
		return 0;
	}
	struct piece *pc = &r->ring[r->head % r->npieces];
	uint8_t *full = pc->data;
	pc->data = *buf; /* the thread fills it when its turn comes round */
	*buf = full;
	*got = pc->len;
	r->head++;
	pthread_cond_signal(&r->emptied);
	pthread_mutex_unlock(&r->mu);
	return 0;
}
