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
