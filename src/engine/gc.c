/* Garbage collection: this file runs the steps in order (drop, deletion plans, the
 * policy's plan, deletions, housekeeping); the mark, the sweep and the repack are in
 * gc_mark.c, gc_sweep.c and gc_repack.c (engine/gc_impl.h). The order of every step is
 * what keeps a kill -9 harmless (format/repository.md, "gc"):
 *
 *   1. drop:    unlink the dropped manifests (fsync snapshots/)
 *   2. mark:    walk every remaining manifest's trees; the live set is the sorted 64-bit
 *               prefixes of the referenced blob ids (8 bytes per blob: ~8 MB per million)
 *               plus an exact set of TREE ids to skip shared subtrees. Every referenced
 *               blob must be in the index, or gc stops: a stale index must never make live
 *               data look dead.
 *   3. sweep:   one pass over the index in key order collects where each live blob is;
 *               then every pack file's trailer is read (indexed or not). A blob is live
 *               when its id is in the live set AND the index locates it at exactly this
 *               place; other copies are garbage. A prefix collision can only keep
 *               garbage. Every live blob must be found this way, or gc stops. On
 *               object storage the plan comes from the index alone (plan_from_index):
 *               only the trailers of packs to be rewritten are fetched.
 *   4. repack:  copy the live envelopes of mostly-dead packs, byte for byte (no
 *               re-encryption), into new packs, made durable like any pack and indexed
 *               at once (their blobs take over the locations; the old copies remain)
 *   5. index:   removed packs and the blobs still located in them out, in write
 *               transactions of bounded size (the old files still exist)
 *   6. delete:  unlink the removed pack files; then leftovers in tmp/
 *   7. compact: copy the index with MDB_CP_COMPACT and rename it into place
 *
 * A crash in 4 leaves new packs unindexed or indexed beside the old ones; in or after 5,
 * old packs partly unindexed: garbage for the next gc, either way. The index always
 * points at durable packs holding what it says. */
#include "kbv/gc.h"
#include "engine/gc_impl.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/idset.h"
#include "store/index.h"
#include "store/idxobj.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "store/plan.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- housekeeping ---- */

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Remove everything in tmp/ (files and the flat spool directories of pg_dump -Fd). Only
 * under the exclusive lock: nobody is writing there. */
static uint64_t clean_tmp(struct kbv_repo *r)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	uint64_t n = 0;
	if (kbv_repo_sub(r, "tmp", dir, sizeof dir) < 0)
		return 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (unlink(path) == 0) {
			n++;
			continue;
		}
		if (kbv_rmdir_flat(path) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Copy the index compacted and rename it into place (exclusive lock: no other process has
 * it open). */
static int compact_index(struct kbv_repo *r, struct kbv_gc_result *res)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 16], data[PATH_MAX + 16], cdata[PATH_MAX + 32];
	int rc = 0;
	TRY(kbv_repo_sub(r, "index", dir, sizeof dir));
	snprintf(tmp, sizeof tmp, "%s/compact", dir);
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	snprintf(cdata, sizeof cdata, "%s/data.mdb", tmp);
	res->index_bytes_before = file_size(data);
	unlink(cdata);
	snprintf(cdata, sizeof cdata, "%s/lock.mdb", tmp);
	unlink(cdata);
	rmdir(tmp);
	if (mkdir(tmp, 0700) < 0)
		return kbv_error(KBV_EIO, "create '%s': %s", tmp, strerror(errno));
	snprintf(cdata, sizeof cdata, "%s/data.mdb", tmp);
	kbv_index_release_pages(r->idx);
	rc = kbv_index_compact(r->idx, tmp);
	kbv_index_release_pages(r->idx);
	if (rc == 0) {
		int fd = open(cdata, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			rc = kbv_error(KBV_EIO, "fsync '%s': %s", cdata, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0) {
		kbv_index_close(r->idx);
		r->idx = NULL;
		if (rename(cdata, data) < 0)
			rc = kbv_error(KBV_EIO, "rename '%s': %s", cdata, strerror(errno));
		else
			rc = kbv_fsync_dir(dir);
		int orc = kbv_index_open(dir, &r->idx);
		if (rc == 0)
			rc = orc;
	}
	rmdir(tmp);
	res->index_bytes_after = file_size(data);
out:
	return rc;
}

/* ---- gc ---- */

static int cmp_dead_share(const void *a, const void *b)
{
	const struct plan_pack *x = *(struct plan_pack *const *)a, *y = *(struct plan_pack *const *)b;
	double dx = x->total ? (double)(x->total - x->live) / (double)x->total : 1;
	double dy = y->total ? (double)(y->total - y->live) / (double)y->total : 1;
	return dx > dy ? -1 : dx < dy;
}

/* ---- deletion plans (format/repository.md, "Many writers and gc") ---- */

static int cmp_packid(const void *a, const void *b)
{
	return memcmp(a, b, KBV_PACKID_BYTES);
}

/* The packs of the ripe plans, sorted. */
static int ripe_packs(const struct kbv_plans *pl, uint8_t (**out)[KBV_PACKID_BYTES], size_t *n)
{
	size_t total = 0;
	*n = 0;
	for (size_t i = 0; i < pl->n; i++)
		if (kbv_plan_ripe(pl, i))
			total += pl->v[i].npacks;
	*out = malloc((total + 1) * sizeof **out);
	if (!*out)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < pl->n; i++)
		if (kbv_plan_ripe(pl, i))
			for (size_t k = 0; k < pl->v[i].npacks; k++)
				memcpy((*out)[(*n)++], pl->v[i].packs[k], KBV_PACKID_BYTES);
	if (*n)
		qsort(*out, *n, sizeof **out, cmp_packid);
	return 0;
}

/* Remove the plans ripe for KBV_PLAN_KEEP: no writer still running started before them
 * (a writer that ran that long refuses to commit), so none can need to see them. */
static int prune_plans(struct kbv_repo *r, const struct kbv_plans *pl, uint64_t *removed)
{
	uint8_t(*ids)[KBV_ID_BYTES] = calloc(pl->n + 1, sizeof *ids);
	size_t n = 0;
	int rc = 0;
	if (!ids)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < pl->n; i++)
		if (pl->now >= pl->v[i].time + (int64_t)pl->v[i].delay + KBV_PLAN_KEEP)
			memcpy(ids[n++], pl->v[i].id, KBV_ID_BYTES);
	if (n)
		rc = kbv_plans_remove(r, (const uint8_t(*)[KBV_ID_BYTES])ids, n);
	if (rc == 0)
		*removed += n;
	free(ids);
	return rc;
}

/* Name the packs this pass condemns (action 1 not deleted now, and repacked ones) in a
 * new plan. */
static int write_plan(struct kbv_repo *r, const struct sweep *sw, uint32_t delay, uint64_t *planned)
{
	uint8_t(*ids)[KBV_PACKID_BYTES] = calloc(sw->np + 1, sizeof *ids);
	uint64_t *sizes = calloc(sw->np + 1, sizeof *sizes);
	size_t n = 0;
	int rc = 0;
	if (!ids || !sizes) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sw->np; i++)
		if ((sw->p[i].action == 1 && !sw->p[i].now) || sw->p[i].action == 2) {
			memcpy(ids[n], sw->p[i].id, KBV_PACKID_BYTES);
			sizes[n++] = sw->p[i].size;
		}
	if (n)
		rc = kbv_plan_put(r, delay, (const uint8_t(*)[KBV_PACKID_BYTES])ids, sizes, n);
	*planned = n;
out:
	free(ids);
	free(sizes);
	return rc;
}

/* One pass of gc. `second`: the pass that follows a plan of delay 0 in the same run: it
 * drops nothing, plans nothing and deletes only what ripe plans name and nothing needs. */
static int gc_pass(struct kbv_repo *r, const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop, const struct kbv_gc_opts *o,
		   int second, struct kbv_gc_result *res)
{
	struct kbv_snapshot **list = NULL;
	struct kbv_reader *rd = NULL;
	struct mark m = { .r = r, .trees = KBV_IDSET_INIT };
	struct wal_floor *wf = calloc(1, sizeof *wf);
	struct sweep sw = { .r = r, .o = o, .envelopes = KBV_IDSET_INIT };
	struct plan_pack **rep = NULL;
	struct kbv_plans plans = { 0 };
	uint8_t(*ripe)[KBV_PACKID_BYTES] = NULL;
	uint8_t *keep = NULL; /* per dropped snapshot: still retained by Object Lock */
	uint8_t(*removed)[KBV_ID_BYTES] = NULL; /* the dropped snapshots removed */
	size_t n = 0, nripe = 0;
	int rc = 0;
	memset(res, 0, sizeof *res);
	if (!wf)
		return kbv_error(KBV_ENOMEM, "out of memory");

	/* 0. the deletion plans, and which are ripe on the storage's clock */
	TRY(kbv_plans_read(r, &plans));
	TRY(kbv_plans_usable(&plans));
	TRY(ripe_packs(&plans, &ripe, &nripe));
	res->plans_damaged = plans.damaged;

	/* 1. drop (with Object Lock, not a manifest still retained: it stays a root, and a
	 * later gc drops it once its retention has lapsed) */
	if (r->lock_days && ndrop) {
		keep = calloc(ndrop, 1);
		if (!keep) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < ndrop; i++) {
			char hex[2 * KBV_ID_BYTES + 1];
			int64_t until;
			kbv_hex(drop[i], KBV_ID_BYTES, hex);
			rc = kbv_repo_retained(r, KBV_OBJ_SNAPSHOT, hex, 0, &until);
			TRY(rc < 0 ? rc : 0);
			keep[i] = (uint8_t)rc;
			res->snapshots_retained += (uint64_t)rc;
			rc = 0;
		}
	}
	if (!o->dry_run && ndrop) { /* in one request on object storage */
		removed = calloc(ndrop, sizeof *removed);
		if (!removed) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		size_t nd = 0;
		for (size_t i = 0; i < ndrop; i++)
			if (!keep || !keep[i])
				memcpy(removed[nd++], drop[i], KBV_ID_BYTES);
		TRY(kbv_snapshot_remove_many(r, (const uint8_t(*)[KBV_ID_BYTES])removed, nd));
		res->snapshots_dropped += nd;
	}

	/* 2. mark: every manifest that is (or, dry run, will be) left is a root. */
	/* (a manifest another host committed since the cache was refreshed makes the listing
	 * catch the cache up: every blob a root references is then indexed) */
	TRY(kbv_snapshot_list(r, &list, &n));
	TRY(kbv_reader_new(r, 1, &rd)); /* mark only walks trees: one worker, not one per CPU */
	kbv_snapshot_load_entries_all(r, list, n);
	for (size_t i = 0; i < n; i++) {
		int dropped = 0;
		for (size_t k = 0; o->dry_run && k < ndrop && !dropped; k++)
			dropped = !memcmp(drop[k], list[i]->id, KBV_ID_BYTES) && !(keep && keep[k]);
		if (dropped) {
			res->snapshots_dropped++;
			continue;
		}
		res->snapshots_kept++;
		gc_wal_note(wf, list[i]);
		TRY(gc_mark_snapshot(&m, rd, list[i]));
		TRY(kbv_gclock_refresh(o->lock, 0));
		if (o->progress)
			o->progress(o->arg, "mark", i + 1, n);
	}
	/* the WAL archive: what kept base backups need is live, older WAL goes */
	TRY(gc_mark_wal(&m, rd, wf, !o->dry_run && !second, res));
	gc_live_compact(&m.live);
	res->live_blobs = m.live.n;
	kbv_reader_free(rd); /* before the index is closed and reopened by compaction */
	rd = NULL;

	/* 3. sweep */
	TRY(gc_sweep(&sw, &m.live));

	/* Deletion plans: a dead pack a ripe plan names goes now; a needed one becomes an
	 * ordinary pack again; a pack an unripe plan names waits. The second pass deletes only. */
	for (size_t i = 0; i < sw.np; i++) {
		struct plan_pack *p = &sw.p[i];
		int is_ripe = nripe && bsearch(p->id, ripe, nripe, sizeof *ripe, cmp_packid);
		if (is_ripe && p->action == 1) {
			p->now = 1;
		} else if (is_ripe) {
			res->packs_kept_needed++;
			if (second)
				p->action = 0;
		} else if (second) {
			p->action = 0;
		} else if (kbv_plans_has(&plans, p->id)) {
			p->action = 0;
			res->packs_waiting++;
		}
	}

	/* Object Lock: a pack still retained can be neither deleted nor repacked (its old
	 * copy could not go); it stays as it is until a gc after its retention lapses. */
	for (size_t i = 0; r->lock_days && i < sw.np; i++) {
		struct plan_pack *p = &sw.p[i];
		char hex[2 * KBV_PACKID_BYTES + 1];
		int64_t until;
		if (!p->action)
			continue;
		kbv_hex(p->id, KBV_PACKID_BYTES, hex);
		rc = kbv_repo_retained(r, KBV_OBJ_PACK, hex, p->mtime, &until);
		TRY(rc < 0 ? rc : 0);
		if (rc) {
			p->action = 0;
			p->now = 0;
			res->packs_retained++;
		}
		rc = 0;
	}

	/* Plan: delete the dead; repack the mostly dead, most dead first, up to the cap. */
	size_t nrep = 0;
	uint64_t repack_bytes = 0;
	rep = calloc(sw.np + 1, sizeof *rep);
	if (!rep) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sw.np; i++) {
		res->packs++;
		res->pack_bytes += sw.p[i].size;
		if (sw.p[i].action == 2)
			rep[nrep++] = &sw.p[i];
	}
	qsort(rep, nrep, sizeof *rep, cmp_dead_share);
	/* Dead bytes the repository may keep: max_unused of what it holds after this gc
	 * (restic's --max-unused). Repacking goes from the most dead pack down until the dead
	 * bytes left fit, so a little garbage spread over many packs costs no work. */
	uint64_t live_bytes = 0, dead_bytes = 0;
	for (size_t i = 0; i < sw.np; i++)
		if (sw.p[i].action != 1)
			live_bytes += sw.p[i].live;
	for (size_t i = 0; i < nrep; i++)
		dead_bytes += rep[i]->total - rep[i]->live;
	double allowed = o->max_unused >= 1 ? HUGE_VAL : o->max_unused / (1 - o->max_unused) * (double)live_bytes;
	size_t nsel = 0;
	for (size_t i = 0; i < nrep; i++) {
		if (rep[i]->must || (double)dead_bytes > allowed) {
			dead_bytes -= rep[i]->total - rep[i]->live;
			rep[nsel++] = rep[i];
		} else {
			rep[i]->action = 0; /* its garbage is within what the policy tolerates */
		}
	}
	nrep = nsel;
	for (size_t i = 0; i < nrep; i++) {
		if (o->max_repack && repack_bytes + rep[i]->size > o->max_repack) {
			rep[i]->action = 0; /* next run */
			res->packs_left_mostly_dead++;
			continue;
		}
		repack_bytes += rep[i]->size;
	}
	uint64_t planned_written = 0;
	/* Deleted: what ripe plans let this pass delete; planned: what goes into its new plan
	 * (a dry run with delay 0 counts that as deleted: the second pass would delete it). */
	for (size_t i = 0; i < sw.np; i++) {
		int deleted = sw.p[i].now || (o->dry_run && o->keep_delete == 0);
		if (sw.p[i].action == 2) {
			res->packs_repacked++;
			planned_written += sw.p[i].live;
		}
		if (sw.p[i].action) {
			res->packs_deleted += deleted;
			res->packs_planned += !deleted;
			res->bytes_deleted += deleted ? sw.p[i].size : 0;
			res->bytes_planned += deleted ? 0 : sw.p[i].size;
		}
	}
	if (o->dry_run) {
		res->bytes_written = planned_written;
		res->bytes_after = res->pack_bytes - res->bytes_deleted + planned_written;
		goto out;
	}

	/* 4. repack */
	TRY(gc_repack(r, &sw, o, res));

	/* Still this gc's lock, right before anything is deleted? */
	TRY(kbv_gclock_refresh(o->lock, 1));

	/* 5. index: the new packs are in already; now the removed ones go */
	{
		size_t ngone = 0;
		uint32_t *gone = calloc(sw.np + 1, sizeof *gone);
		if (!gone) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < sw.np; i++)
			if (sw.p[i].now && sw.p[i].no >= 0)
				gone[ngone++] = (uint32_t)sw.p[i].no;
		if (kbv_fault("gc-index-commit"))
			rc = kbv_error(KBV_EIO, "gc: index commit: injected fault");
		if (rc == 0 && ngone)
			rc = kbv_index_gc_commit(r->idx, NULL, NULL, NULL, 0, gone, ngone);
		free(gone);
		kbv_index_release_pages(r->idx);
		if (rc < 0)
			goto out;
	}

	/* 6. delete, in one call: object storage turns it into a request per 1000 packs */
	{
		char(*names)[2 * KBV_PACKID_BYTES + 1] = calloc(sw.np + 1, sizeof *names);
		const char **ptrs = calloc(sw.np + 1, sizeof *ptrs);
		size_t k = 0;
		if (!names || !ptrs)
			rc = kbv_error(KBV_ENOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < sw.np; i++) {
			if (!sw.p[i].now)
				continue;
			kbv_hex(sw.p[i].id, KBV_PACKID_BYTES, names[k]);
			ptrs[k] = names[k];
			k++;
		}
		if (rc == 0)
			rc = kbv_be_remove_many(r->be, KBV_OBJ_PACK, ptrs, k);
		free(names);
		free(ptrs);
		if (rc < 0) {
			kbv_error_prefix(rc, "gc: delete");
			goto out;
		}
		if (o->progress && k)
			o->progress(o->arg, "delete", k, k);
	}
	/* 6a. what this pass condemns goes into a new plan; plans long done are removed */
	TRY(prune_plans(r, &plans, &res->plans_removed));
	if (!second)
		TRY(write_plan(r, &sw, o->keep_delete, &res->plan_packs));
	/* 6b. on object storage: one set of index objects for what is left */
	int deleted_now = 0;
	for (size_t i = 0; i < sw.np && !deleted_now; i++)
		deleted_now = sw.p[i].now;
	/* (not yet when a second pass follows: it compacts what is left then) */
	if (second || o->keep_delete || !res->plan_packs) {
		rc = kbv_repo_compact_index_objects(r, deleted_now || res->packs_repacked || res->packs_written,
						    &res->index_objects_written, &res->index_objects_removed);
		if (rc < 0)
			goto out;
	}
	res->tmp_removed = clean_tmp(r);
	/* Nodes no kept snapshot references leave this host's metadata cache. */
	kbv_meta_retain(r, KBV_META_TREE, gc_tree_marked, &m.trees);
	res->bytes_after = res->pack_bytes - res->bytes_deleted + res->bytes_written;

	/* 7. compact, when the file has grown well past what it holds */
	{
		uint64_t used, file;
		TRY(kbv_index_usage(r->idx, &used, &file));
		if (file > used + used / 2 + (1u << 20))
			TRY(compact_index(r, res));
		else
			res->index_bytes_before = res->index_bytes_after = file;
	}
out:
	gc_sweep_release(&sw);
	free(rep);
	kbv_idset_release(&m.trees);
	free(m.live.v);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_plans_release(&plans);
	free(ripe);
	free(keep);
	free(removed);
	free(wf);
	return rc;
}

static int gc_passes(struct kbv_repo *r, const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop,
		     const struct kbv_gc_opts *o, struct kbv_gc_result *res)
{
	int rc = gc_pass(r, drop, ndrop, o, 0, res);
	if (rc < 0 || o->dry_run || o->keep_delete || !res->plan_packs)
		return rc;
	/* Delay 0: the plan just written is ripe; the manifests are listed again, and what
	 * is still unneeded goes now. A pack a snapshot committed meanwhile needs is kept. */
	struct kbv_gc_result two;
	rc = gc_pass(r, NULL, 0, o, 1, &two);
	if (rc < 0)
		return rc;
	/* The second pass deleted this run's plan, less what snapshots committed meanwhile
	 * need (kept): nothing of it waits. */
	res->plans_removed += two.plans_removed;
	res->packs_kept_needed = two.packs_kept_needed;
	res->packs_deleted += two.packs_deleted;
	res->bytes_deleted += two.bytes_deleted;
	res->packs_planned = res->bytes_planned = 0; /* ripe already: deleted, or kept as needed */
	res->bytes_after = res->pack_bytes - res->bytes_deleted + res->bytes_written;
	res->tmp_removed += two.tmp_removed;
	res->index_objects_written += two.index_objects_written;
	res->index_objects_removed += two.index_objects_removed;
	if (two.index_bytes_after)
		res->index_bytes_after = two.index_bytes_after;
	res->plan_packs = 0;
	res->snapshots_retained += two.snapshots_retained;
	res->packs_retained = two.packs_retained > res->packs_retained ? two.packs_retained : res->packs_retained;
	return 0;
}

int kbv_gc(struct kbv_repo *r, const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop, const struct kbv_gc_opts *o,
	   struct kbv_gc_result *res)
{
	int rc = gc_passes(r, drop, ndrop, o, res);
	/* Object Lock: what is left keeps its retention (extended when half of it is gone). */
	if (rc == 0)
		rc = kbv_repo_retention(r, !o->dry_run, &res->retention);
	return rc;
}

struct summary_scan {
	const struct kbv_plans *pl;
	const uint8_t (*ripe)[KBV_PACKID_BYTES];
	size_t nripe;
	struct kbv_plan_summary *out;
};

static int summary_pack(void *arg, uint32_t no, const struct kbv_pack_info *info)
{
	struct summary_scan *c = arg;
	(void)no;
	if (!kbv_plans_has(c->pl, info->id))
		return 0;
	c->out->packs++;
	c->out->bytes += info->size;
	if (c->nripe && bsearch(info->id, c->ripe, c->nripe, sizeof *c->ripe, cmp_packid))
		c->out->ripe_packs++;
	return 0;
}

int kbv_gc_plan_summary(struct kbv_repo *r, struct kbv_plan_summary *out)
{
	struct kbv_plans pl = { 0 };
	uint8_t(*ripe)[KBV_PACKID_BYTES] = NULL;
	size_t nripe = 0;
	MDB_txn *txn = NULL;
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->next_ripe_in = -1;
	/* the plans this handle read when it was opened (object storage), else read now */
	const struct kbv_plans *p = r->plans;
	if (!p) {
		TRY(kbv_plans_read(r, &pl));
		p = &pl;
	}
	TRY(ripe_packs(p, &ripe, &nripe));
	out->plans = p->n;
	out->damaged = p->damaged;
	for (size_t i = 0; i < p->n; i++) {
		int64_t in = p->v[i].time + (int64_t)p->v[i].delay - p->now;
		if (in > 0 && (out->next_ripe_in < 0 || in < out->next_ripe_in))
			out->next_ripe_in = in;
	}
	struct summary_scan c = { p, (const uint8_t(*)[KBV_PACKID_BYTES])ripe, nripe, out };
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_pack(r->idx, txn, summary_pack, &c);
out:
	if (txn)
		kbv_index_rend(txn);
	free(ripe);
	kbv_plans_release(&pl);
	return rc;
}
