/* The window planner of a stream restored into a regular file from a local repository
 * (engine/readjob.h; docs/design.md, "Restore"): the walking thread collects a window
 * of the stream's located chunks, sorts it by where they lie in the packs, and hands it out
 * in jobs that keep a bundle's members together (RJ_SCATTER, done by readjob.c), then
 * the jobs that read the window back in order for the whole-stream digest (RJ_CHECK). */
#include "engine/readjob.h"
#include "kbv/error.h"
#include "kbv/pool.h"

#include <stdlib.h>

#define CHECK_BYTES (64u << 20) /* read back by one check job at most */

/* The members of the sorted window from pend[i] on that share pend[i]'s envelope. */
static size_t envelope_run(const struct rstream *rd, size_t i)
{
	size_t k = i + 1;
	while (k < rd->pn && same_envelope(&rd->pend[k].leaf, &rd->pend[i].leaf))
		k++;
	return k - i;
}

/* Fill job j from the sorted window `pend`, envelope by envelope: a job ends where
 * submit_leaf would end a batch, or before an envelope whose members would not all fit
 * (only an envelope with more than BATCH_MAX of them, a chunk repeated many times, is
 * split, and may be decoded by two workers). */
static void fill_scatter(struct rstream *rd, struct rjob *j)
{
	j->kind = RJ_SCATTER;
	j->n = 0;
	j->fd = rd->out_fd;
	j->what = rd->out_what;
	j->at = rd->out_base;
	j->want = 0;
	while (rd->pi < rd->pn) {
		const struct wleaf *w = &rd->pend[rd->pi];
		int starts = !j->n || !same_envelope(&j->leaf[j->n - 1], &w->leaf);
		if (j->n && starts && (j->n >= BATCH_IDS || j->want >= rd->batch_bytes || j->n + envelope_run(rd, rd->pi) > BATCH_MAX))
			break;
		if (j->n == BATCH_MAX || j->want >= 2 * rd->batch_bytes)
			break;
		j->leaf[j->n] = w->leaf;
		j->pos[j->n++] = w->pos;
		j->want += w->leaf.loc.raw_len;
		rd->pi++;
	}
}

static void fill_check(struct rstream *rd, struct rjob *j)
{
	uint64_t n = rd->pto - rd->pchecked;
	j->kind = RJ_CHECK;
	j->n = 0;
	j->fd = rd->back_fd;
	j->what = rd->out_what;
	j->at = rd->out_base + rd->pchecked;
	j->want = n < CHECK_BYTES ? n : CHECK_BYTES;
	rd->pchecked += j->want;
}

/* Its jobs first, then its checks; taking back finished jobs when no slot is free. */
int window_pump(struct rstream *rd, int all)
{
	while (rd->pi < rd->pn || rd->pchecked < rd->pto) {
		struct rjob *j = kbv_pool_acquire(rd->pool);
		if (!j) {
			if (!all && !kbv_pool_ready(rd->pool))
				return 0;
			int rc = kbv_pool_consume(rd->pool, reader_deliver, rd, 0);
			if (rc < 0)
				return rc;
			continue;
		}
		if (rd->pi < rd->pn)
			fill_scatter(rd, j);
		else
			fill_check(rd, j);
		kbv_pool_submit(rd->pool);
	}
	return 0;
}

/* Where in the packs, then where in the stream. */
static int cmp_wleaf(const void *a, const void *b)
{
	const struct wleaf *x = a, *y = b;
	if (x->leaf.loc.pack != y->leaf.loc.pack)
		return x->leaf.loc.pack < y->leaf.loc.pack ? -1 : 1;
	if (x->leaf.loc.offset != y->leaf.loc.offset)
		return x->leaf.loc.offset < y->leaf.loc.offset ? -1 : 1;
	if (x->leaf.loc.raw_off != y->leaf.loc.raw_off)
		return x->leaf.loc.raw_off < y->leaf.loc.raw_off ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The next window is collected in the other array. */
int window_next(struct rstream *rd)
{
	int rc = window_pump(rd, 1);
	if (rc < 0 || rd->wn == 0)
		return rc;
	qsort(rd->win, rd->wn, sizeof *rd->win, cmp_wleaf);
	struct wleaf *t = rd->pend;
	rd->pend = rd->win;
	rd->win = t;
	rd->pn = rd->wn;
	rd->pi = 0;
	rd->pchecked = rd->wfrom;
	rd->pto = rd->submitted;
	rd->wn = 0;
	rd->wfrom = rd->submitted;
	rd->wlimit = rd->win_leaves;
	return window_pump(rd, 0);
}

int window_collect(struct rstream *rd, const struct kbv_rleaf *leaf)
{
	int rc = reader_fits(rd, leaf);
	if (rc < 0)
		return rc;
	if (rd->wn == rd->wlimit && (rc = window_next(rd)) < 0)
		return rc;
	struct wleaf *w = &rd->win[rd->wn++];
	w->leaf = *leaf;
	w->pos = rd->submitted;
	rd->submitted += leaf->loc.raw_len;
	return ++rd->tick % 64 ? 0 : window_pump(rd, 0);
}
