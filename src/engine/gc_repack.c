/* gc's repack (engine/gc_impl.h): each envelope holding a live blob of a mostly dead pack
 * is copied byte for byte (still sealed, no re-encryption) into new packs, made durable
 * like any pack and indexed as soon as they are (their blobs take over the locations; the
 * old copies remain until gc deletes the old packs). */
#include "engine/gc_impl.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/pack.h"
#include "store/repo_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* On object storage the live envelopes of a pack are fetched with one ranged GET of the
 * span they cover, up to this size (more: envelope by envelope through the read windows),
 * when read windows would fetch at least half of that span anyway. */
#define SPAN_MAX (64u << 20)
#define WINDOW (2u << 20) /* the S3 backend's read window (store/s3/s3.h, S3_WINDOW) */

/* A repack pack uploading (on object storage, while the next is read) and not indexed. */
struct newpack {
	struct kbv_pack_info info;
	struct kbv_pack_entry *e;
	size_t n;
};

/* Index the packs of `pend` once every upload is durable (their blobs take over their
 * locations; the old packs stay until the very end, so every state is valid). */
static int newpacks_index(struct kbv_repo *r, struct kbv_buf *pend)
{
	struct newpack *np = (struct newpack *)pend->data;
	size_t k = pend->len / sizeof *np;
	int rc = kbv_be_sync(r->be);
	for (size_t i = 0; i < k; i++) {
		const struct kbv_pack_entry *ep = np[i].e;
		if (rc == 0)
			rc = kbv_index_gc_commit(r->idx, &np[i].info, &ep, &np[i].n, 1, NULL, 0);
		free(np[i].e);
	}
	pend->len = 0;
	return rc;
}

/* Finish the open repack pack: its upload starts (KBV_COMMIT_ASYNC: on object storage it
 * runs beside the reads of the next packs), it is indexed by newpacks_index(). */
static int newpack_finish(struct kbv_packw **w, struct kbv_buf *pend, uint64_t *packs, uint64_t *written)
{
	struct newpack np = { .n = 0 };
	int rc = 0;
	if (!*w)
		return 0;
	np.n = kbv_packw_count(*w);
	np.e = malloc(np.n * sizeof *np.e + 1);
	if (!np.e)
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	else
		memcpy(np.e, kbv_packw_entries(*w), np.n * sizeof *np.e);
	if (rc == 0)
		rc = kbv_packw_finish(*w, KBV_COMMIT_ASYNC, &np.info);
	if (rc == 0)
		rc = kbv_buf_add(pend, &np, sizeof np);
	if (rc == 0) {
		*written += np.info.size;
		(*packs)++;
	} else {
		free(np.e);
	}
	kbv_packw_free(*w);
	*w = NULL;
	return rc;
}

static int repack_one(struct kbv_repo *r, struct sweep *sw, struct plan_pack *p, struct kbv_packw **w,
		      struct kbv_buf *pend, uint64_t *packs, uint64_t *written)
{
	char path[PATH_MAX], hex[2 * KBV_PACKID_BYTES + 1];
	struct kbv_buf stored = KBV_BUF_INIT, live = KBV_BUF_INIT, entries = KBV_BUF_INIT, span = KBV_BUF_INIT;
	struct kbv_be_rd *fd = NULL;
	uint8_t *is_live = NULL;
	size_t n = 0;
	uint64_t size;
	int rc = 0;
	int salvaged;
	/* Open with the size the listing gave (no HEAD) and keep it open for the blobs. */
	TRY(gc_pack_entries_open(r, sw->codec, p->id, p->size, &fd, &entries, &n, &size, &salvaged));
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	is_live = calloc(n + 1, 1);
	if (!is_live) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	gc_mark_live(sw, p, e, n, is_live);
	kbv_hex(p->id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, path, sizeof path);
	if (sw->from_index) {
		/* Planned from the index alone: the trailer must hold every live blob where the
		 * index says, or nothing is deleted on the index's word. */
		size_t confirmed = 0;
		for (size_t i = 0; i < n; i++)
			confirmed += is_live[i];
		if (confirmed != p->nlive) {
			rc = kbv_error(KBV_ECORRUPT,
				       "gc stops before deleting anything: the index locates %zu live blobs in pack '%s', "
				       "its trailer confirms %zu; run 'kbvault repair index' and 'kbvault check'",
				       p->nlive, path, confirmed);
			goto out;
		}
	}
	if (!fd) /* salvaged: read it again from the start */
		TRY(kbv_be_open(r->be, KBV_OBJ_PACK, hex, &fd, NULL));
	/* Object storage: one GET for the span of the live envelopes when the read windows
	 * they touch (one request each) cover at least half of it; a local file is read
	 * envelope by envelope. */
	uint64_t lo = UINT64_MAX, hi = 0, cells = 0, last_cell = UINT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (is_live[i] && e[i].stored_len) {
			uint64_t end = (uint64_t)e[i].offset + e[i].stored_len;
			for (uint64_t c = e[i].offset / WINDOW; c <= (end - 1) / WINDOW; c++)
				if (last_cell == UINT64_MAX || c > last_cell) { /* entries are in offset order */
					cells++;
					last_cell = c;
				}
			lo = e[i].offset < lo ? e[i].offset : lo;
			hi = end > hi ? end : hi;
		}
	int spanned = !(kbv_backend_features(r->be) & KBV_BE_LOCAL) && hi > lo && hi - lo <= SPAN_MAX &&
		      cells * 2 >= (hi - 1) / WINDOW - lo / WINDOW + 1;
	if (spanned) {
		TRY(kbv_buf_reserve(&span, (size_t)(hi - lo)));
		TRY(kbv_be_read(fd, span.data, (size_t)(hi - lo), lo));
	}
	for (size_t i = 0; i < n;) {
		size_t j = i;
		live.len = 0;
		while (j < n && e[j].offset == e[i].offset) {
			if (is_live[j])
				TRY(kbv_buf_add(&live, &e[j], sizeof e[j]));
			j++;
		}
		if (live.len) {
			const uint8_t *env;
			if (spanned) {
				env = span.data + (e[i].offset - lo);
			} else {
				TRY(kbv_buf_reserve(&stored, e[i].stored_len));
				TRY(kbv_be_read(fd, stored.data, e[i].stored_len, e[i].offset));
				env = stored.data;
			}
			if (!*w)
				TRY(kbv_packw_new(r, sw->codec, w));
			rc = kbv_packw_add_copy(*w, env, e[i].stored_len, (const struct kbv_pack_entry *)live.data,
						live.len / sizeof(struct kbv_pack_entry));
			if (rc < 0) {
				if (kbv_disk_full(r->local))
					kbv_error_prefix(rc, "gc stops: no space left on device while it repacks; no pack is "
							     "deleted yet and every kept snapshot is intact: free space, or run "
							     "gc --max-unused 100 to delete only packs that are wholly dead");
				else
					kbv_error_prefix(rc, "gc stops: pack '%s' at offset %u (run 'kbvault check --read-data')",
							 path, e[i].offset);
				goto out;
			}
			if (kbv_packw_size(*w) >= r->pack_size)
				TRY(newpack_finish(w, pend, packs, written));
		}
		i = j;
	}
out:
	kbv_be_close(fd);
	free(is_live);
	kbv_buf_release(&entries);
	kbv_buf_release(&stored);
	kbv_buf_release(&span);
	kbv_buf_release(&live);
	return rc;
}

int gc_repack(struct kbv_repo *r, struct sweep *sw, const struct kbv_gc_opts *o, struct kbv_gc_result *res)
{
	struct kbv_packw *w = NULL;
	struct kbv_buf newpacks = KBV_BUF_INIT; /* struct newpack, uploading */
	size_t done = 0;
	int rc = 0;
	for (size_t i = 0; i < sw->np; i++) {
		if (sw->p[i].action != 2)
			continue;
		TRY(repack_one(r, sw, &sw->p[i], &w, &newpacks, &res->packs_written, &res->bytes_written));
		if (o->progress)
			o->progress(o->arg, "repack", ++done, res->packs_repacked);
		TRY(kbv_gclock_refresh(o->lock, 0));
	}
	TRY(newpack_finish(&w, &newpacks, &res->packs_written, &res->bytes_written));
	TRY(newpacks_index(r, &newpacks));
out:
	kbv_packw_free(w);
	for (size_t i = 0; i < newpacks.len / sizeof(struct newpack); i++) /* a failure left them unindexed */
		free(((struct newpack *)newpacks.data)[i].e);
	kbv_buf_release(&newpacks);
	return rc;
}
