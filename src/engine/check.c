#include "kbv/check.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/idset.h"
#include "store/idxobj.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "store/plan.h"
#include "kbv/reader.h"
#include "store/salvage.h"
#include "kbv/snapshot.h"
#include "kbv/wal.h"
#include "store/repo_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- check ---- */

int kbv_check_in_subset(const uint8_t packid[KBV_PACKID_BYTES], double pct, uint32_t day)
{
	if (pct <= 0 || pct >= 100)
		return 1;
	uint32_t k = (uint32_t)(100.0 / pct + 0.5);
	if (k < 2)
		return 1;
	uint32_t x = (uint32_t)packid[0] << 24 | (uint32_t)packid[1] << 16 | (uint32_t)packid[2] << 8 | packid[3];
	return (x % k + day % k) % k == 0;
}

struct packmap {
	uint8_t (*ids)[KBV_PACKID_BYTES];
	uint32_t *nos;
	uint64_t *sizes;
	uint32_t *matched; /* trailer entries whose index location points into this pack */
	uint32_t *indexed; /* index entries pointing into this pack */
	uint8_t *seen;     /* file found on disk */
	uint32_t *byid;    /* indexes sorted by pack id */
	size_t n, cap;
};

struct ck {
	struct kbv_repo *r;
	const struct kbv_check_opts *opts;
	int64_t mtime; /* of the pack being checked, as the storage keeps it */
	kbv_report_fn report;
	void *arg;
	struct kbv_check_result *res;
	struct kbv_codec *codec;
	MDB_txn *txn;
	struct packmap pm;
	struct kbv_buf entries, stored, out;
	struct kbv_bundle_cache bundle; /* per pack: invalidated when the next pack starts */
	const char *snapname;
	const char *streamname;
	/* TREE blobs already verified with everything below them (shared by many snapshots);
	 * not used once damage was found, so every snapshot it reaches is named. */
	struct kbv_idset trees_seen;
	/* What the pack scan found: blobs that failed to decode or hash, index numbers of packs
	 * whose trailer is damaged or whose file is missing, and the blobs of packs the index
	 * does not list (a missing or stale index, not damage). */
	struct kbv_idset damaged, unindexed;
	time_t writers_since; /* the oldest writer running when the check began, or 0 */
	uint32_t *bad_packs;
	size_t nbad_packs;
	int stream_damaged;     /* the stream being visited reaches damage */
	struct kbv_buf affected; /* "abc123 (kb, uploads), ..." for the summary */
	size_t naffected;
	uint64_t stale_blobs;   /* blobs snapshots use that only unindexed packs hold */
	struct kbv_plans plans; /* gc's deletion plans, read before the index view */
};

static void say(struct ck *c, int sev, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct ck *c, int sev, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (sev == KBV_PROBLEM)
		c->res->problems++;
	else if (sev == KBV_WARNING)
		c->res->warnings++;
	if (c->report)
		c->report(c->arg, sev, msg);
}

static int bad_pack_add(struct ck *c, uint32_t no)
{
	uint32_t *nb = realloc(c->bad_packs, (c->nbad_packs + 1) * sizeof *nb);
	if (!nb)
		return kbv_error(KBV_ENOMEM, "out of memory");
	c->bad_packs = nb;
	c->bad_packs[c->nbad_packs++] = no;
	return 0;
}

static int bad_pack_has(const struct ck *c, uint32_t no)
{
	for (size_t i = 0; i < c->nbad_packs; i++)
		if (c->bad_packs[i] == no)
			return 1;
	return 0;
}

/* Name one snapshot the damage reaches: which sources and streams cannot be restored. */
static int affected_add(struct ck *c, const struct kbv_snapshot *s, int table_damaged, const char *streams,
			size_t nstreams)
{
	char when[32], srcs[512] = "", one[64];
	time_t t = (time_t)s->time;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
	for (size_t k = 0; k < s->nsources; k++) {
		size_t len = strlen(srcs);
		snprintf(srcs + len, sizeof srcs - len, "%s%s", k ? ", " : "", s->sources[k].name);
	}
	if (table_damaged)
		say(c, KBV_PROBLEM, "snapshot %s of %s%s%s%s: its entry table is damaged: no stream of it can be restored",
		    c->snapname, when, *srcs ? " (sources " : "", srcs, *srcs ? ")" : "");
	else
		say(c, KBV_PROBLEM, "snapshot %s of %s%s%s%s: cannot be restored whole: %s %s damaged or missing blobs",
		    c->snapname, when, *srcs ? " (sources " : "", srcs, *srcs ? ")" : "", streams,
		    nstreams == 1 ? "uses" : "use");
	int w = snprintf(one, sizeof one, "%s%s", c->naffected ? ", " : "", c->snapname);
	c->naffected++;
	return c->affected.len < 1200 ? kbv_buf_add(&c->affected, one, (size_t)w) : 0;
}

static int damaged_add(struct ck *c, const uint8_t id[KBV_ID_BYTES])
{
	return kbv_idset_has(&c->damaged, id) ? 0 : kbv_idset_add(&c->damaged, id);
}

static int pm_add(void *arg, uint32_t no, const struct kbv_pack_info *info)
{
	struct packmap *pm = arg;
	if (pm->n == pm->cap) {
		size_t cap = pm->cap ? pm->cap * 2 : 64;
		void *a = realloc(pm->ids, cap * KBV_PACKID_BYTES), *b = realloc(pm->nos, cap * 4),
		     *c2 = realloc(pm->sizes, cap * 8), *d = realloc(pm->matched, cap * 4), *e = realloc(pm->indexed, cap * 4),
		     *f = realloc(pm->seen, cap);
		if (a)
			pm->ids = a;
		if (b)
			pm->nos = b;
		if (c2)
			pm->sizes = c2;
		if (d)
			pm->matched = d;
		if (e)
			pm->indexed = e;
		if (f)
			pm->seen = f;
		if (!a || !b || !c2 || !d || !e || !f)
			return kbv_error(KBV_ENOMEM, "out of memory");
		pm->cap = cap;
	}
	memcpy(pm->ids[pm->n], info->id, KBV_PACKID_BYTES);
	pm->nos[pm->n] = no;
	pm->sizes[pm->n] = info->size;
	pm->matched[pm->n] = pm->indexed[pm->n] = 0;
	pm->seen[pm->n] = 0;
	pm->n++;
	return 0;
}

/* Packs are looked up by id once per pack file and by number once per indexed blob, so
 * both are binary searches: numbers come from LMDB in ascending order (integer keys), ids
 * through `byid`, sorted once after loading. */
static const struct packmap *sort_pm;

static int cmp_byid(const void *a, const void *b)
{
	return memcmp(sort_pm->ids[*(const uint32_t *)a], sort_pm->ids[*(const uint32_t *)b], KBV_PACKID_BYTES);
}

static int pm_sort(struct packmap *pm)
{
	pm->byid = malloc((pm->n + 1) * sizeof *pm->byid);
	if (!pm->byid)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < pm->n; i++)
		pm->byid[i] = (uint32_t)i;
	sort_pm = pm; /* check runs on one thread */
	if (pm->n)
		qsort(pm->byid, pm->n, sizeof *pm->byid, cmp_byid);
	return 0;
}

static long pm_find_id(const struct packmap *pm, const uint8_t *id)
{
	size_t lo = 0, hi = pm->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(pm->ids[pm->byid[mid]], id, KBV_PACKID_BYTES);
		if (c == 0)
			return (long)pm->byid[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static long pm_find_no(const struct packmap *pm, uint32_t no)
{
	size_t lo = 0, hi = pm->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pm->nos[mid] == no)
			return (long)mid;
		if (pm->nos[mid] < no)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Does the index location describe trailer entry e? */
static int loc_is(const struct kbv_loc *loc, const struct kbv_pack_entry *e)
{
	return loc->offset == e->offset && loc->stored_len == e->stored_len && loc->raw_off == e->raw_off &&
	       loc->raw_len == e->raw_len && loc->xxh == e->xxh && loc->type == e->type;
}

/* Is entry `skip` of this trailer a second copy of a blob whose indexed location is
 * another entry of the same trailer? */
static int same_pack_copy(const struct kbv_loc *loc, const struct kbv_pack_entry *e, size_t n, size_t skip)
{
	for (size_t j = 0; j < n; j++)
		if (j != skip && !memcmp(e[j].id, e[skip].id, KBV_ID_BYTES) && loc_is(loc, &e[j]))
			return 1;
	return 0;
}

/* The start (lock file time) of the oldest writer running now, or 0 when none is: each
 * writer holds tmp/writer-*.lock locked while it lives. Locks nobody holds are left by
 * dead writers and are removed. */
static time_t oldest_running_writer(struct kbv_repo *r)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	time_t oldest = 0;
	if (kbv_repo_sub(r, "tmp", dir, sizeof dir) < 0)
		return 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (strncmp(de->d_name, "writer-", 7) || !strstr(de->d_name, ".lock"))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
			if (fstat(fd, &st) == 0 && (!oldest || st.st_mtime < oldest))
				oldest = st.st_mtime;
		} else {
			unlink(path); /* its writer is gone */
		}
		close(fd);
	}
	if (d)
		closedir(d);
	return oldest;
}

/* Is an unindexed pack (its trailer entries e, n of them) one that a writer running now
 * will index: written since that writer started, or indexed by now (its first blob found
 * with a fresh view of the index)? */
static int pack_in_flight(struct ck *c, const uint8_t packid[KBV_PACKID_BYTES], const struct kbv_pack_entry *e,
			  size_t n)
{
	(void)packid;
	if (c->writers_since && c->mtime >= (int64_t)c->writers_since - 1)
		return 1;
	MDB_txn *now = NULL;
	int indexed = 0;
	if (n && kbv_index_rbegin(c->r->idx, &now) == 0) {
		indexed = kbv_index_get(c->r->idx, now, e[0].id, NULL) == 0;
		kbv_index_rend(now);
	}
	return indexed;
}

static int check_pack(void *arg, const uint8_t packid[KBV_PACKID_BYTES], uint64_t fsize, int64_t mtime)
{
	struct ck *c = arg;
	(void)fsize;
	c->mtime = mtime;
	char hex[2 * KBV_PACKID_BYTES + 1], path[PATH_MAX];
	size_t n;
	uint64_t size;
	kbv_hex(packid, KBV_PACKID_BYTES, hex);
	c->res->packs++;
	long pi = pm_find_id(&c->pm, packid);
	if (pi >= 0)
		c->pm.seen[pi] = 1;
	int rc = kbv_pack_read_trailer(c->r, c->codec, packid, &c->entries, &n, &size);
	if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
		if (pi < 0) {
			say(c, KBV_WARNING, "pack %s: unreadable and not indexed (left by an interrupted write; gc removes it): %s",
			    hex, kbv_errmsg());
			return 0;
		}
		say(c, KBV_PROBLEM, "%s", kbv_errmsg());
		return bad_pack_add(c, c->pm.nos[pi]);
	}
	if (rc < 0)
		return rc;
	if (pi < 0 && pack_in_flight(c, packid, (const struct kbv_pack_entry *)c->entries.data, n)) {
		say(c, KBV_INFO, "pack %s: written by a snapshot running beside this check, not indexed yet", hex);
		return 0;
	}
	if (pi < 0) {
		say(c, KBV_WARNING, "pack %s: not in the index (garbage from an interrupted snapshot, or run 'kbvault repair index')",
		    hex);
		const struct kbv_pack_entry *ue = (const struct kbv_pack_entry *)c->entries.data;
		for (size_t i = 0; i < n; i++)
			if (!kbv_idset_has(&c->unindexed, ue[i].id) && (rc = kbv_idset_add(&c->unindexed, ue[i].id)) < 0)
				return rc;
	} else if (c->pm.sizes[pi] != size) {
		say(c, KBV_PROBLEM, "pack %s: index says %llu bytes, the file has %llu", hex,
		    (unsigned long long)c->pm.sizes[pi], (unsigned long long)size);
	}
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)c->entries.data;
	struct kbv_be_rd *fd = NULL;
	kbv_bundle_cache_clear(&c->bundle);
	if (c->opts->read_data && kbv_check_in_subset(packid, c->opts->subset_pct, c->opts->subset_day)) {
		kbv_be_describe(c->r->be, KBV_OBJ_PACK, hex, path, sizeof path);
		if (kbv_be_open(c->r->be, KBV_OBJ_PACK, hex, &fd, NULL) < 0) {
			say(c, KBV_PROBLEM, "pack %s: cannot open: %s", hex, kbv_errmsg());
			return 0;
		}
	}
	/* A blob of an indexed pack may have no index entry, and that alone is no damage: a
	 * snapshot or WAL file that uses a blob the index lacks is reported by the walks
	 * below, so what is left here is garbage. Two states of a sound repository make it:
	 * - a pack a deletion plan names, half out of the index: gc takes the blobs of the
	 *   packs it deletes out of the index in transactions of bounded size before the
	 *   packs themselves (gc.c, step 5), and a gc killed in between leaves that for the
	 *   next gc (a warning: an unfinished gc);
	 * - a copy stored by a writer running beside another that indexed the same blob first
	 *   (the index keeps the first copy), after gc removed that first copy with its pack
	 *   once nothing used it: the copy is garbage until gc repacks its pack (said once,
	 *   as information). */
	int condemned = pi >= 0 && kbv_plans_has(&c->plans, packid);
	size_t out_of_index = 0, unindexed_copies = 0;
	for (size_t i = 0; i < n; i++) {
		char idhex[2 * KBV_ID_BYTES + 1];
		kbv_hex(e[i].id, KBV_ID_BYTES, idhex);
		c->res->blobs++;
		if (pi >= 0) {
			struct kbv_loc loc;
			rc = kbv_index_get(c->r->idx, c->txn, e[i].id, &loc);
			if (rc == KBV_ENOTFOUND && condemned)
				out_of_index++;
			else if (rc == KBV_ENOTFOUND)
				unindexed_copies++;
			else if (rc < 0)
				return rc;
			else if (loc.pack == c->pm.nos[pi]) {
				if (loc_is(&loc, &e[i]))
					c->pm.matched[pi]++;
				else if (!same_pack_copy(&loc, e, n, i))
					say(c, KBV_PROBLEM, "pack %s: blob %.16s: index and trailer disagree", hex, idhex);
				/* else: a second copy in the same pack (the writer stores one when a
				 * bundle holding it also holds new chunks): garbage, harmless. */
			}
			/* else: a second copy of a blob indexed in another pack: garbage, harmless. */
		}
		if (fd) {
			rc = kbv_pack_read_at(c->codec, fd, path, 0, &e[i], &c->bundle, &c->stored, &c->out);
			c->res->bytes_read += e[i].stored_len;
			if (rc == KBV_ECORRUPT) {
				say(c, KBV_PROBLEM, "%s", kbv_errmsg());
				if ((rc = damaged_add(c, e[i].id)) < 0) {
					kbv_be_close(fd);
					return rc;
				}
				continue;
			}
			if (rc < 0) {
				kbv_be_close(fd);
				return rc;
			}
			if (e[i].type == KBV_BLOB_DATA || e[i].type == KBV_BLOB_TREE) {
				uint8_t got[KBV_ID_BYTES];
				kbv_blob_id(c->r->keys, e[i].type, c->out.data, c->out.len, got);
				if (memcmp(got, e[i].id, KBV_ID_BYTES) != 0) {
					say(c, KBV_PROBLEM, "pack %s: blob %.16s at offset %u: content does not hash to its id",
					    hex, idhex, e[i].offset);
					if ((rc = damaged_add(c, e[i].id)) < 0) {
						kbv_be_close(fd);
						return rc;
					}
				}
			}
		}
	}
	if (out_of_index)
		say(c, KBV_WARNING,
		    "pack %s: %zu of its %zu blobs are out of the index already: a gc deleting it (a deletion plan names "
		    "it) did not finish; the next gc completes it",
		    hex, out_of_index, n);
	if (unindexed_copies)
		say(c, KBV_INFO,
		    "pack %s: %zu of its %zu blobs are in no index entry: copies stored beside another writer's, whose "
		    "copy gc removed when nothing used it; garbage until gc repacks this pack",
		    hex, unindexed_copies, n);
	kbv_be_close(fd);
	kbv_index_release_pages(c->r->idx); /* a long scan need not keep the index resident */
	return 0;
}

static int count_indexed(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	struct ck *c = arg;
	long pi = pm_find_no(&c->pm, loc->pack);
	if (pi < 0) {
		char idhex[2 * KBV_ID_BYTES + 1];
		kbv_hex(id, KBV_ID_BYTES, idhex);
		say(c, KBV_PROBLEM, "index: blob %.16s points to pack number %u, which the index does not list", idhex,
		    loc->pack);
		return 0;
	}
	c->pm.indexed[pi]++;
	return 0;
}

static int visit(void *arg, int type, const uint8_t id[KBV_ID_BYTES])
{
	struct ck *c = arg;
	char idhex[2 * KBV_ID_BYTES + 1];
	int any_damage = c->damaged.n || c->nbad_packs;
	if (type == KBV_BLOB_TREE && !any_damage && kbv_idset_has(&c->trees_seen, id))
		return KBV_VISIT_SKIP;
	struct kbv_loc loc;
	int rc = kbv_index_get(c->r->idx, c->txn, id, &loc);
	if (rc == KBV_ENOTFOUND) {
		if (kbv_idset_has(&c->unindexed, id)) {
			/* There, in a pack the index lacks: the index is stale, and what lies below
			 * cannot be read through it until it is repaired. */
			c->stale_blobs++;
			return type == KBV_BLOB_TREE ? KBV_VISIT_SKIP : 0;
		}
		kbv_hex(id, KBV_ID_BYTES, idhex);
		say(c, KBV_PROBLEM, "snapshot %s: stream '%s': blob %.16s is missing", c->snapname, c->streamname, idhex);
		c->stream_damaged = 1;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (kbv_idset_has(&c->damaged, id) || bad_pack_has(c, loc.pack))
		c->stream_damaged = 1;
	if (type == KBV_BLOB_TREE)
		return any_damage ? 0 : kbv_idset_add(&c->trees_seen, id);
	if (loc.type != type) {
		kbv_hex(id, KBV_ID_BYTES, idhex);
		say(c, KBV_PROBLEM, "snapshot %s: stream '%s': blob %.16s has type %u, expected %d", c->snapname,
		    c->streamname, idhex, loc.type, type);
	}
	return 0;
}

/* Is the stream's root blob only in packs the index lacks (unreadable until repair)? */
static int stale_root(struct ck *c, const struct kbv_ref *ref)
{
	struct kbv_loc loc;
	return ref->depth != KBV_REF_EMPTY && kbv_index_get(c->r->idx, c->txn, ref->id, &loc) == KBV_ENOTFOUND &&
	       kbv_idset_has(&c->unindexed, ref->id);
}

static int visit_stream(struct ck *c, struct kbv_reader *rd, const struct kbv_ref *ref)
{
	c->stream_damaged = 0;
	if (stale_root(c, ref)) {
		c->stale_blobs++;
		return 0;
	}
	int rc = kbv_reader_visit(rd, ref, visit, c);
	if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
		say(c, KBV_PROBLEM, "snapshot %s: stream '%s': %s", c->snapname, c->streamname, kbv_errmsg());
		c->stream_damaged = 1;
		return 0;
	}
	return rc < 0 ? rc : 0;
}

/* The WAL archive (format/wal.md): every object reads and verifies, and the blobs of its
 * stream are where the index says. */
struct wal_ck {
	struct ck *c;
	struct kbv_reader *rd;
	struct kbv_check_result *res;
};

/* The archive's files as listed before the index view opens (kbv_check), so that the view
 * sees every blob of each: a wal-push writes its object only after its blobs are indexed. */
static int wal_name_add(void *arg, const char *source, const char *file, int64_t mtime)
{
	(void)mtime;
	return kbv_wal_names_add(arg, source, file);
}

static int check_wal_file(struct wal_ck *w, const char *source, const char *file)
{
	struct kbv_wal_info info;
	char who[96];
	w->res->wal_files++;
	snprintf(who, sizeof who, "WAL archive of '%s'", source);
	w->c->snapname = who;
	w->c->streamname = file;
	int rc = kbv_wal_read(w->c->r, source, file, &info);
	if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
		say(w->c, KBV_PROBLEM, "%s: WAL file '%s' cannot be restored", kbv_errmsg(), file);
		return 0;
	}
	if (rc == KBV_ENOTFOUND)
		return 0; /* removed by a gc since the listing */
	if (rc < 0)
		return rc;
	TRY(visit_stream(w->c, w->rd, &info.ref));
	if (w->c->stream_damaged)
		say(w->c, KBV_PROBLEM, "WAL file '%s' of source '%s' cannot be restored: recovery cannot pass it", file,
		    source);
out:
	return rc;
}

int kbv_check(struct kbv_repo *r, const struct kbv_check_opts *opts, kbv_report_fn report, void *arg,
	      struct kbv_check_result *res)
{
	struct ck c = { .r = r, .opts = opts, .report = report, .arg = arg, .res = res };
	struct kbv_snapshot **list = NULL;
	struct kbv_reader *rd = NULL;
	size_t nsnap = 0;
	int rc = 0;
	memset(res, 0, sizeof *res);
	/* check proves what the storage holds: manifests, entry tables and nodes are read
	 * from it, never from this host's metadata cache. */
	kbv_meta_bypass(r);
	c.codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!c.codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	/* Snapshots may be committed while we run (they take a shared lock too). List the
	 * manifests before opening the index view: a manifest is written only after its blobs
	 * were indexed, so this view sees every blob of every listed snapshot. */
	struct kbv_snapshot_damage *bad = NULL;
	size_t nbad = 0;
	struct kbv_buf wal_names = KBV_BUF_INIT;
	TRY(kbv_snapshot_list_damaged(r, &list, &nsnap, &bad, &nbad));
	/* the WAL archive likewise: files pushed while we run are left to the next check */
	TRY(kbv_wal_list(r, NULL, wal_name_add, &wal_names));
	{
		/* gc's deletion plans: one that does not authenticate condemns nothing, but it is
		 * damage (or tampering) to name; one of another version stops writers. Read
		 * before the index view: a gc that drops a pack's blobs from the index wrote
		 * the plan naming it before (check_pack). */
		struct kbv_plans *pl = &c.plans;
		TRY(kbv_plans_read(r, pl));
		if (pl->damaged)
			say(&c, KBV_PROBLEM, "deletion plan %s%s does not authenticate (ignored by gc and writers)",
			    pl->damaged_name, pl->damaged > 1 ? " and others" : "");
		if (pl->unknown)
			say(&c, KBV_PROBLEM, "deletion plan %s has a version this kbvault does not read", pl->unknown_name);
	}
	c.writers_since = oldest_running_writer(r);
	TRY(kbv_index_rbegin(r->idx, &c.txn));
	TRY(kbv_index_each_pack(r->idx, c.txn, pm_add, &c.pm));
	TRY(pm_sort(&c.pm));
	TRY(kbv_each_packfile(r, check_pack, &c));
	for (size_t i = 0; i < c.pm.n; i++) {
		char hex[2 * KBV_PACKID_BYTES + 1];
		kbv_hex(c.pm.ids[i], KBV_PACKID_BYTES, hex);
		if (!c.pm.seen[i]) {
			say(&c, KBV_PROBLEM, "pack %s: in the index but missing from data/", hex);
			TRY(bad_pack_add(&c, c.pm.nos[i]));
		}
	}
	TRY(kbv_index_each_blob(r->idx, c.txn, count_indexed, &c));
	for (size_t i = 0; i < c.pm.n; i++) {
		char hex[2 * KBV_PACKID_BYTES + 1];
		kbv_hex(c.pm.ids[i], KBV_PACKID_BYTES, hex);
		if (c.pm.seen[i] && c.pm.indexed[i] != c.pm.matched[i])
			say(&c, KBV_PROBLEM, "pack %s: the index lists %u blobs in it, its trailer confirms %u", hex,
			    c.pm.indexed[i], c.pm.matched[i]);
	}

	for (size_t i = 0; i < nbad; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(bad[i].id, KBV_ID_BYTES, hex);
		say(&c, KBV_PROBLEM, "snapshot %.12s: its manifest is damaged: %s ('kbvault forget %.12s' removes it; the "
				     "other snapshots are checked below)",
		    hex, bad[i].msg, hex);
	}
	TRY(kbv_reader_new(r, 1, &rd));
	kbv_snapshot_load_entries_all(r, list, nsnap); /* each one's own load below reports */
	for (size_t i = 0; i < nsnap; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		char hit[512] = ""; /* the damaged streams' names */
		size_t nhit = 0;
		kbv_hex(list[i]->id, KBV_ID_BYTES, hex);
		hex[12] = 0;
		c.snapname = hex;
		c.streamname = "(entry table)";
		res->snapshots++;
		if (stale_root(&c, &list[i]->table_ref)) {
			c.stale_blobs++; /* its entry table cannot be read until the index is repaired */
			continue;
		}
		TRY(visit_stream(&c, rd, &list[i]->table_ref));
		int table_damaged = c.stream_damaged;
		rc = kbv_snapshot_load_entries(rd, list[i]);
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
			say(&c, KBV_PROBLEM, "%s", kbv_errmsg());
			table_damaged = 1;
			rc = 0;
		}
		TRY(rc);
		for (size_t k = 0; k < list[i]->nloaded; k++) {
			c.streamname = list[i]->entries[k].name;
			TRY(visit_stream(&c, rd, &list[i]->entries[k].ref));
			if (c.stream_damaged && nhit++ < 5) {
				size_t len = strlen(hit);
				snprintf(hit + len, sizeof hit - len, "%s'%s'", len ? ", " : "", c.streamname);
			}
		}
		if (nhit > 5) {
			size_t len = strlen(hit);
			snprintf(hit + len, sizeof hit - len, " and %zu more streams", nhit - 5);
		}
		if (table_damaged || nhit)
			TRY(affected_add(&c, list[i], table_damaged, hit, nhit));
	}
	struct wal_ck wc = { &c, rd, res };
	const char *wsource, *wfile;
	for (size_t off = 0; (wsource = kbv_wal_names_next(&wal_names, &off, &wfile));)
		TRY(check_wal_file(&wc, wsource, wfile));
	if (c.stale_blobs)
		say(&c, KBV_WARNING,
		    "index: %llu blobs the snapshots use are in packs the index does not list: the index is missing or "
		    "stale (a copy made without index/?), nothing is damaged; run 'kbvault repair index'",
		    (unsigned long long)c.stale_blobs);
	if (c.affected.len) {
		char msg[1536];
		snprintf(msg, sizeof msg, "damage reaches %zu of %zu snapshots (%.*s); every other snapshot is intact",
			 c.naffected, nsnap, (int)(c.affected.len > 1200 ? 1200 : c.affected.len), (char *)c.affected.data);
		if (c.report)
			c.report(c.arg, KBV_PROBLEM, msg); /* a summary of problems already counted */
	}
out:
	kbv_plans_release(&c.plans);
	kbv_buf_release(&wal_names);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, nsnap);
	kbv_snapshot_damage_free(bad, nbad);
	kbv_index_rend(c.txn);
	kbv_codec_free(c.codec);
	kbv_buf_release(&c.entries);
	kbv_buf_release(&c.stored);
	kbv_buf_release(&c.out);
	kbv_bundle_cache_release(&c.bundle);
	kbv_idset_release(&c.trees_seen);
	kbv_idset_release(&c.damaged);
	kbv_idset_release(&c.unindexed);
	kbv_buf_release(&c.affected);
	free(c.bad_packs);
	free(c.pm.ids);
	free(c.pm.nos);
	free(c.pm.sizes);
	free(c.pm.matched);
	free(c.pm.indexed);
	free(c.pm.seen);
	free(c.pm.byid);
	return rc;
}

/* ---- stats ---- */

/* Envelopes seen, as (pack << 32 | offset): bundle members share one envelope. */
struct envset {
	uint64_t *v;
	size_t cap, n;
};

static int envset_add(struct envset *s, uint64_t key) /* 1 if new, 0 if present, <0 error */
{
	key += 1; /* 0 marks an empty slot */
	if ((s->n + 1) * 2 > s->cap) {
		struct envset g = { calloc(s->cap ? s->cap * 2 : 4096, sizeof(uint64_t)), s->cap ? s->cap * 2 : 4096, 0 };
		if (!g.v)
			return kbv_error(KBV_ENOMEM, "out of memory");
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				envset_add(&g, s->v[i] - 1);
		free(s->v);
		*s = g;
	}
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & (s->cap - 1);
	for (; s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == key)
			return 0;
	s->v[i] = key;
	s->n++;
	return 1;
}

struct statctx {
	struct kbv_repo_stats *st;
	struct envset envs;
};

static int stat_blob(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	struct statctx *c = arg;
	(void)id;
	if (loc->type == KBV_BLOB_DATA) {
		c->st->data_blobs++;
		c->st->unique_raw_bytes += loc->raw_len;
	} else {
		c->st->tree_blobs++;
	}
	int fresh = envset_add(&c->envs, (uint64_t)loc->pack << 32 | loc->offset);
	if (fresh < 0)
		return fresh;
	if (fresh)
		c->st->unique_stored_bytes += loc->stored_len;
	return 0;
}

static int stat_pack(void *arg, uint32_t no, const struct kbv_pack_info *info)
{
	struct kbv_repo_stats *st = arg;
	(void)no;
	st->packs++;
	st->pack_bytes += info->size;
	return 0;
}

int kbv_repo_usage(struct kbv_repo *r, struct kbv_repo_usage *u)
{
	struct kbv_repo_stats st = { 0 };
	struct kbv_buf ids = KBV_BUF_INIT;
	MDB_txn *txn = NULL;
	int rc = 0;
	memset(u, 0, sizeof *u);
	TRY(kbv_snapshot_ids(r, &ids));
	u->snapshots = ids.len / KBV_ID_BYTES;
	TRY(kbv_index_rbegin(r->idx, &txn));
	TRY(kbv_index_each_pack(r->idx, txn, stat_pack, &st));
	u->packs = st.packs;
	u->pack_bytes = st.pack_bytes;
out:
	kbv_buf_release(&ids);
	kbv_index_rend(txn);
	return rc;
}

int kbv_repo_stats_of(struct kbv_repo *r, struct kbv_snapshot *const *list, size_t n, struct kbv_repo_stats *st)
{
	MDB_txn *txn = NULL;
	int rc = 0;
	memset(st, 0, sizeof *st);
	struct statctx sc = { st, { NULL, 0, 0 } };
	st->snapshots = n;
	for (size_t i = 0; i < n; i++)
		st->raw_bytes += list[i]->total_size;
	TRY(kbv_index_rbegin(r->idx, &txn));
	TRY(kbv_index_each_blob(r->idx, txn, stat_blob, &sc));
	TRY(kbv_index_each_pack(r->idx, txn, stat_pack, st));
out:
	free(sc.envs.v);
	kbv_index_rend(txn);
	return rc;
}

int kbv_repo_stats(struct kbv_repo *r, struct kbv_repo_stats *st)
{
	struct kbv_snapshot **list = NULL;
	struct kbv_snapshot_damage *bad = NULL;
	size_t n = 0, nbad = 0;
	/* Before the index view, as in kbv_check(); a damaged manifest is not counted (its
	 * size is unknown), and says so where it is listed. */
	int rc = kbv_snapshot_list_damaged(r, &list, &n, &bad, &nbad);
	kbv_snapshot_damage_free(bad, nbad);
	if (rc == 0)
		rc = kbv_repo_stats_of(r, list, n, st);
	else
		memset(st, 0, sizeof *st);
	kbv_snapshot_list_free(list, n);
	return rc;
}

/* ---- repair ---- */

#define REPAIR_GROUP 32 /* packs per index transaction, as the writer does */

struct rp {
	struct kbv_repo *r;
	struct kbv_codec *codec;
	struct kbv_pack_info info[REPAIR_GROUP];
	struct kbv_buf entries[REPAIR_GROUP];
	size_t nwait;
	kbv_report_fn report;
	void *arg;
	uint64_t packs, blobs;
};

static int repair_commit(struct rp *p)
{
	const struct kbv_pack_entry *e[REPAIR_GROUP];
	size_t counts[REPAIR_GROUP];
	for (size_t i = 0; i < p->nwait; i++) {
		e[i] = (const struct kbv_pack_entry *)p->entries[i].data;
		counts[i] = p->info[i].blobs;
	}
	int rc = p->nwait ? kbv_index_add_packs(p->r->idx, p->info, e, counts, p->nwait) : 0;
	p->nwait = 0;
	return rc;
}

static int repair_pack(void *arg, const uint8_t packid[KBV_PACKID_BYTES], uint64_t fsize, int64_t mtime)
{
	(void)fsize;
	(void)mtime;
	struct rp *p = arg;
	size_t n;
	uint64_t size;
	if (kbv_fault("repair-pack"))
		return kbv_error(KBV_EIO, "repair: injected fault (KBVAULT_FAULT)");
	int rc = kbv_pack_read_trailer(p->r, p->codec, packid, &p->entries[p->nwait], &n, &size);
	if (rc == KBV_ECORRUPT) {
		/* The trailer is what is damaged, often not the blobs: walk the pack and keep
		 * every envelope that verifies whole. */
		char msg[1024], hex[2 * KBV_PACKID_BYTES + 1];
		uint64_t lost = 0;
		snprintf(msg, sizeof msg, "%s", kbv_errmsg());
		kbv_hex(packid, KBV_PACKID_BYTES, hex);
		rc = kbv_pack_salvage(p->r, p->codec, packid, &p->entries[p->nwait], &n, &lost, &size);
		if (rc < 0 || n == 0) {
			if (p->report)
				p->report(p->arg, KBV_WARNING, rc < 0 ? kbv_errmsg() : msg);
			return 0;
		}
		if (p->report) {
			char rec[1400];
			if (lost)
				snprintf(rec, sizeof rec, "%s; walking pack %s recovered %zu blobs, and nothing from offset %llu on "
							  "(of %llu bytes) could be proven: what lay there is lost",
					 msg, hex, n, (unsigned long long)lost, (unsigned long long)size);
			else
				snprintf(rec, sizeof rec, "%s; walking pack %s recovered all its %zu blobs (the next gc "
							  "rewrites it with a sound trailer)",
					 msg, hex, n);
			p->report(p->arg, KBV_WARNING, rec);
		}
	} else if (rc == KBV_EVERSION) {
		if (p->report)
			p->report(p->arg, KBV_WARNING, kbv_errmsg());
		return 0;
	} else if (rc < 0) {
		return rc;
	}
	struct kbv_pack_info *info = &p->info[p->nwait++];
	memcpy(info->id, packid, KBV_PACKID_BYTES);
	info->size = size;
	info->blobs = (uint32_t)n;
	p->packs++;
	p->blobs += n;
	return p->nwait == REPAIR_GROUP ? repair_commit(p) : 0;
}

int kbv_repair_index(struct kbv_repo *r, kbv_report_fn report, void *arg, uint64_t *packs, uint64_t *blobs)
{
	struct rp p = { .r = r, .report = report, .arg = arg };
	int rc = 0;
	char dir[PATH_MAX], fresh[PATH_MAX + 16];
	struct kbv_index *old = r->idx, *idx = NULL;
	p.codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!p.codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	/* The new index is built beside the old one and swapped in whole when complete: a
	 * repair killed half-way leaves the old index as it was (and index.rebuild/, which
	 * the next repair clears). */
	TRY(kbv_repo_sub(r, "index", dir, sizeof dir));
	snprintf(fresh, sizeof fresh, "%s.rebuild", dir);
	kbv_rmdir_flat(fresh);
	if (mkdir(fresh, 0700) < 0) {
		rc = kbv_error(KBV_EIO, "create '%s': %s", fresh, strerror(errno));
		goto out;
	}
	TRY(kbv_index_open(fresh, &idx));
	r->idx = idx; /* the pack walk below indexes through r->idx */
	rc = kbv_each_packfile(r, repair_pack, &p);
	if (rc == 0)
		rc = repair_commit(&p);
	r->idx = old;
	TRY(rc);
	kbv_index_close(idx);
	idx = NULL;
	kbv_index_close(old);
	r->idx = NULL;
	if (renameat2(AT_FDCWD, fresh, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
		rc = kbv_error(KBV_EIO, "swap the rebuilt index into '%s': %s", dir, strerror(errno));
	} else {
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash)
			*slash = 0;
		rc = kbv_fsync_dir(slash ? parent : ".");
		kbv_rmdir_flat(fresh); /* now the old index */
	}
	int orc = kbv_index_open(dir, &r->idx);
	if (rc == 0)
		rc = orc;
	if (rc < 0)
		goto out;
	/* On object storage the index objects are rewritten from what the trailers said: a
	 * damaged or stale one is replaced. */
	uint64_t written, removed;
	TRY(kbv_repo_compact_index_objects(r, 1, &written, &removed));
	*packs = p.packs;
	*blobs = p.blobs;
out:
	if (idx) {
		kbv_index_close(idx);
		kbv_rmdir_flat(fresh);
	}
	kbv_codec_free(p.codec);
	for (size_t i = 0; i < REPAIR_GROUP; i++)
		kbv_buf_release(&p.entries[i]);
	return rc;
}
