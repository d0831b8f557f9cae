/* What the reader's threads do with a job (engine/readjob.h): a worker decodes a batch
 * in stream order (RJ_ORDER) or writes a bundle's members at their places in the file
 * (RJ_SCATTER); the pool's serial stage takes the whole-stream digest, of the decoded bytes
 * or of the file read back (RJ_CHECK); the walking thread takes finished jobs back in order
 * (reader_deliver). */
#include "engine/readjob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <stdio.h>
#include <string.h>

#define READBACK (1u << 20) /* a check job reads the file back a piece at a time */

/* An RJ_SCATTER job: each chunk decoded (a bundle once for all its members here) and
 * written at its place; members that follow each other in the bundle and in the stream go
 * out in one pwrite. */
static int write_members(struct rworker *wk, struct rjob *j)
{
	const uint8_t *run = NULL;
	size_t rlen = 0;
	uint64_t rat = 0;
	int rc = 0;
	for (uint32_t i = 0; i < j->n && rc == 0; i++) {
		const struct kbv_rleaf *l = &j->leaf[i], *prev = i ? &j->leaf[i - 1] : NULL;
		uint64_t at = j->at + j->pos[i];
		const uint8_t *p;
		/* (a run points into the bundle cache: written before another envelope is read) */
		int follows = run && same_envelope(prev, l) && l->loc.raw_off == prev->loc.raw_off + prev->loc.raw_len &&
			      at == rat + rlen;
		if (run && !follows) {
			rc = kbv_pwrite_full(j->fd, run, rlen, (off_t)rat, j->what);
			run = NULL;
			if (rc < 0)
				break;
		}
		rc = kbv_pack_view_loc(wk->repo, wk->txn, wk->codec, &wk->fds, l->id, &l->loc, &j->stored, &j->one, &p);
		if (rc < 0)
			break;
		if (follows && p == run + rlen) {
			rlen += l->loc.raw_len;
		} else if (follows) { /* cannot be: the same bundle, decoded once */
			rc = kbv_error(KBV_ECORRUPT, "a bundle member is not where the one before it ends");
		} else {
			run = p;
			rlen = l->loc.raw_len;
			rat = at;
		}
	}
	if (rc == 0 && run)
		rc = kbv_pwrite_full(j->fd, run, rlen, (off_t)rat, j->what);
	return rc;
}

/* Read back in pieces of READBACK: what is hashed is what the file holds. */
static void read_back(struct rstream *rd, struct rjob *j)
{
	for (uint64_t done = 0; done < j->want && rd->hs.alg != KBV_DIGEST_NONE && j->rc == 0;) {
		size_t n = j->want - done < READBACK ? (size_t)(j->want - done) : READBACK;
		if ((j->rc = kbv_buf_reserve(&rd->back, n)) == 0 &&
		    (j->rc = kbv_pread_full(j->fd, rd->back.data, n, (off_t)(j->at + done), j->what)) == 0)
			kbv_digester_update(&rd->hs, rd->back.data, n);
		done += n;
	}
	if (j->rc < 0)
		snprintf(j->err, sizeof j->err, "read back what was restored: %s", kbv_errmsg());
}

void reader_work(void *wp, void *jp)
{
	struct rworker *wk = wp;
	struct rjob *j = jp;
	j->out.len = 0;
	j->rc = 0;
	if (j->kind != RJ_ORDER) {
		if (j->kind == RJ_SCATTER && (j->rc = write_members(wk, j)) < 0)
			snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
		return;
	}
	for (uint32_t i = 0; i < j->n && j->rc == 0; i++) {
		if (wk->plan)
			j->rc = kbv_readplan_read(wk->plan, wk->codec, &wk->fds.bundle, &j->leaf[i], &j->one);
		else
			j->rc = kbv_pack_read_loc(wk->repo, wk->txn, wk->codec, &wk->fds, j->leaf[i].id, &j->leaf[i].loc,
						  &j->stored, &j->one);
		if (j->rc == 0)
			j->rc = kbv_buf_add(&j->out, j->one.data, j->one.len);
	}
	/* Every chunk was authenticated against its id, so its length is the index's; the
	 * batch lands where the lengths before it end. */
	if (j->rc == 0 && j->fd >= 0) {
		if (j->out.len != j->want)
			j->rc = kbv_error(KBV_ECORRUPT, "a batch of the stream decoded to %zu bytes, the index says %llu",
					  j->out.len, (unsigned long long)j->want);
		else
			j->rc = kbv_pwrite_full(j->fd, j->out.data, j->out.len, (off_t)j->at, j->what);
	}
	if (j->rc < 0)
		snprintf(j->err, sizeof j->err, "%s", kbv_errmsg());
}

int rworker_init(struct rworker *wk, struct kbv_repo *r)
{
	wk->repo = r;
	kbv_packfds_init(&wk->fds);
	wk->codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!wk->codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	return kbv_index_rbegin(r->idx, &wk->txn);
}

void rworker_release(struct rworker *wk)
{
	kbv_codec_free(wk->codec);
	kbv_index_rend(wk->txn);
	kbv_packfds_release(&wk->fds);
}

/* The serial stage: the whole-stream digest of what was decoded, in stream order. */
void reader_serial(void *rp, void *jp)
{
	struct rstream *rd = rp;
	struct rjob *j = jp;
	if (j->rc < 0 || j->kind == RJ_SCATTER)
		return;
	if (j->kind == RJ_ORDER) {
		kbv_digester_update(&rd->hs, j->out.data, j->out.len);
		return;
	}
	read_back(rd, j); /* RJ_CHECK: every job before it has written its bytes */
}

int reader_fits(const struct rstream *rd, const struct kbv_rleaf *leaf)
{
	if (leaf->loc.raw_len > rd->size - rd->submitted)
		return kbv_error(KBV_ECORRUPT, "the stream's chunks add up to more than the %llu bytes the snapshot recorded",
				 (unsigned long long)rd->size);
	return 0;
}

int reader_deliver(void *arg, void *job)
{
	struct rstream *rd = arg;
	struct rjob *j = job;
	if (j->rc < 0)
		return kbv_error(j->rc, "%s", j->err);
	if (j->kind == RJ_SCATTER) /* counted when its window is read back */
		return 0;
	if (j->kind == RJ_CHECK) {
		rd->got += j->want;
		return rd->sink ? rd->sink(rd->arg, NULL, (size_t)j->want) : 0;
	}
	rd->got += j->out.len;
	return rd->sink ? rd->sink(rd->arg, j->out.data, j->out.len) : 0;
}
