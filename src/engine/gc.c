/* Garbage collection. The order of every step is what keeps a kill -9 harmless
 * (format/repository.md, "gc"):
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
#include "kbv/backend.h"
#include "kbv/check.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/idset.h"
#include "store/index.h"
#include "store/idxobj.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "store/plan.h"
#include "kbv/reader.h"
#include "store/salvage.h"
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

/* ---- the live set: sorted 64-bit id prefixes ---- */

struct live {
	uint64_t *v;
	size_t n, cap, uniq; /* v[0..uniq) sorted and unique; v[uniq..n) appended since */
};

static uint64_t prefix(const uint8_t *id)
{
	uint64_t x;
	memcpy(&x, id, sizeof x);
	return x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void live_compact(struct live *l)
{
	if (l->uniq == l->n)
		return;
	qsort(l->v, l->n, sizeof *l->v, cmp_u64);
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++)
		if (k == 0 || l->v[i] != l->v[k - 1])
			l->v[k++] = l->v[i];
	l->n = l->uniq = k;
}

static int live_add(struct live *l, const uint8_t *id)
{
	if (l->n == l->cap) {
		live_compact(l); /* duplicates (chunks shared by snapshots) go first */
		if (l->cap == 0 || l->n > l->cap / 2) {
			size_t cap = l->cap ? 2 * l->cap : 1 << 16;
			uint64_t *nv = realloc(l->v, cap * sizeof *nv);
			if (!nv)
				return kbv_error(KBV_ENOMEM, "out of memory (live set of %zu blobs)", l->n);
			l->v = nv;
			l->cap = cap;
		}
	}
	l->v[l->n++] = prefix(id);
	return 0;
}

/* Position of the id's prefix in the live set, or -1. */
static long live_find(const struct live *l, const uint8_t *id)
{
	uint64_t key = prefix(id);
	if (!l->uniq)
		return -1;
	const uint64_t *p = bsearch(&key, l->v, l->uniq, sizeof *l->v, cmp_u64);
	return p ? (long)(p - l->v) : -1;
}

/* ---- mark ---- */

struct mark {
	struct kbv_repo *r;
	struct kbv_idset trees;
	struct live live;
	const char *snap; /* short id, for messages */
};

static int mark_one(void *arg, int type, const uint8_t id[KBV_ID_BYTES])
{
	struct mark *m = arg;
	if (type == KBV_BLOB_TREE) {
		if (kbv_idset_has(&m->trees, id))
			return KBV_VISIT_SKIP; /* shared with a snapshot already marked */
		int rc = kbv_idset_add(&m->trees, id);
		if (rc < 0)
			return rc;
	}
	/* A DATA blob is only named here; the sweep checks that each one is indexed. */
	return live_add(&m->live, id);
}

static int tree_marked(void *arg, const uint8_t id[KBV_ID_BYTES])
{
	return kbv_idset_has(arg, id);
}

static int mark_snapshot(struct mark *m, struct kbv_reader *rd, struct kbv_snapshot *s)
{
	char hex[2 * KBV_ID_BYTES + 1];
	int rc = 0;
	kbv_hex(s->id, KBV_ID_BYTES, hex);
	hex[12] = 0;
	m->snap = hex;
	if (s->table_ref.depth != KBV_REF_EMPTY)
		TRY(kbv_reader_visit(rd, &s->table_ref, mark_one, m));
	TRY(kbv_snapshot_load_entries(rd, s));
	for (size_t i = 0; i < s->nloaded; i++)
		if (s->entries[i].ref.depth != KBV_REF_EMPTY)
			TRY(kbv_reader_visit(rd, &s->entries[i].ref, mark_one, m));
out:
	return rc;
}

/* ---- sweep ---- */

struct packno_map {
	uint8_t id[KBV_PACKID_BYTES];
	uint32_t no;
};

struct plan_pack {
	uint8_t id[KBV_PACKID_BYTES];
	long no; /* -1: not indexed */
	uint64_t size, live, total;
	size_t nlive; /* planned from the index: live blobs it locates here */
	struct kbv_buf entries; /* unused once swept */
	size_t n;
	uint8_t *is_live;       /* per entry, while sweeping */
	int action;             /* 0 keep, 1 delete, 2 repack (a candidate until the plan) */
	int must;               /* repacked whatever the policy says (a damaged trailer) */
	int now;                /* action 1 and named by a ripe plan: deleted in this pass */
	int64_t mtime;          /* as listed */
};

/* Where the index puts a live blob: sorted by (pack, offset, raw_off). */
struct loctuple {
	uint32_t pack, offset, raw_off, live; /* live: position in the live set */
	uint32_t stored_len;                  /* of its envelope */
};

static int cmp_tuple(const void *a, const void *b)
{
	const struct loctuple *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->raw_off < y->raw_off ? -1 : x->raw_off > y->raw_off;
}

struct listed_pack {
	uint8_t id[KBV_PACKID_BYTES];
	uint64_t size;
	int64_t mtime; /* LastModified: Object Lock's retention is at least this + its period */
};

struct sweep {
	uint8_t *found; /* one bit per live prefix: seen at its indexed location */
	uint64_t scanned;
	struct loctuple *locs;
	size_t nlocs, caplocs;
	struct kbv_repo *r;
	struct kbv_codec *codec;
	MDB_txn *txn;
	const struct live *live;
	struct packno_map *map;
	size_t nmap, capmap;
	struct plan_pack *p;
	size_t np, capp;
	const struct kbv_gc_opts *o;
	uint64_t done, total;
	/* Object storage: plan from the index, not from every pack's trailer (below). */
	int from_index;
	uint64_t *indexed; /* per pack number: bytes of the envelopes the index locates there */
	size_t nindexed;
	struct kbv_idset envelopes; /* (pack, offset) of each envelope counted in indexed[] */
	struct listed_pack *listed; /* the storage's listing of the packs */
	size_t nlisted, caplisted;
};

/* An envelope as a set key: a mixed 64-bit hash first (the set hashes by the first bytes),
 * then pack and offset themselves, so distinct envelopes never share a key. */
static void envelope_key(uint32_t pack, uint32_t offset, uint8_t key[32])
{
	uint64_t z = ((uint64_t)pack << 32 | offset) + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	memset(key, 0, 32);
	memcpy(key, &z, 8);
	memcpy(key + 8, &pack, 4);
	memcpy(key + 12, &offset, 4);
}

static int collect_packno(void *arg, uint32_t no, const struct kbv_pack_info *info)
{
	struct sweep *s = arg;
	if (s->nmap == s->capmap) {
		size_t cap = s->capmap ? 2 * s->capmap : 256;
		struct packno_map *nm = realloc(s->map, cap * sizeof *nm);
		if (!nm)
			return kbv_error(KBV_ENOMEM, "out of memory");
		s->map = nm;
		s->capmap = cap;
	}
	memcpy(s->map[s->nmap].id, info->id, KBV_PACKID_BYTES);
	s->map[s->nmap++].no = no;
	if (s->from_index && no >= s->nindexed) {
		size_t cap = s->nindexed ? 2 * s->nindexed : 256;
		while (cap <= no)
			cap *= 2;
		uint64_t *ni = realloc(s->indexed, cap * sizeof *ni);
		if (!ni)
			return kbv_error(KBV_ENOMEM, "out of memory");
		memset(ni + s->nindexed, 0, (cap - s->nindexed) * sizeof *ni);
		s->indexed = ni;
		s->nindexed = cap;
	}
	return 0;
}

/* One pass over the index in key order (sequential, unlike a lookup per trailer entry):
 * the location of every blob whose id is in the live set. */
static int collect_loc(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	struct sweep *s = arg;
	if (++s->scanned % 65536 == 0)
		kbv_index_release_pages(s->r->idx);
	/* Each envelope counted once, whichever of its members comes first (bundles hold
	 * many). An envelope no member of which the index locates here is missed, which can
	 * only make a pack look more live than it is. */
	if (s->from_index && loc->pack < s->nindexed) {
		uint8_t key[32];
		envelope_key(loc->pack, loc->offset, key);
		if (!kbv_idset_has(&s->envelopes, key)) {
			int rc = kbv_idset_add(&s->envelopes, key);
			if (rc < 0)
				return rc;
			s->indexed[loc->pack] += loc->stored_len;
		}
	}
	long li = live_find(s->live, id);
	if (li < 0)
		return 0;
	if (s->nlocs == s->caplocs) {
		size_t cap = s->caplocs ? 2 * s->caplocs : 1 << 16;
		struct loctuple *nl = realloc(s->locs, cap * sizeof *nl);
		if (!nl)
			return kbv_error(KBV_ENOMEM, "out of memory");
		s->locs = nl;
		s->caplocs = cap;
	}
	s->locs[s->nlocs++] = (struct loctuple){ loc->pack, loc->offset, loc->raw_off, (uint32_t)li, loc->stored_len };
	return 0;
}

static int cmp_map(const void *a, const void *b)
{
	return memcmp(a, b, KBV_PACKID_BYTES);
}

static int count_pack(void *arg, const uint8_t id[KBV_PACKID_BYTES], uint64_t size, int64_t mtime)
{
	struct sweep *s = arg;
	if (s->nlisted == s->caplisted) {
		size_t cap = s->caplisted ? 2 * s->caplisted : 256;
		struct listed_pack *n = realloc(s->listed, cap * sizeof *n);
		if (!n)
			return kbv_error(KBV_ENOMEM, "out of memory");
		s->listed = n;
		s->caplisted = cap;
	}
	memcpy(s->listed[s->nlisted].id, id, KBV_PACKID_BYTES);
	s->listed[s->nlisted].mtime = mtime;
	s->listed[s->nlisted++].size = size;
	s->total++;
	return 0;
}

/* Which entries of pack p's trailer are the index's copy of a live blob. */
static void mark_live(struct sweep *s, const struct plan_pack *p, const struct kbv_pack_entry *e, size_t n,
		      uint8_t *is_live)
{
	for (size_t i = 0; p->no >= 0 && s->nlocs && i < n; i++) {
		struct loctuple key = { (uint32_t)p->no, e[i].offset, e[i].raw_off, 0, 0 };
		const struct loctuple *t = bsearch(&key, s->locs, s->nlocs, sizeof *s->locs, cmp_tuple);
		/* The same place, and the same id there. */
		if (t && s->live->v[t->live] == prefix(e[i].id)) {
			is_live[i] = 1;
			s->found[t->live / 8] |= (uint8_t)(1u << (t->live % 8));
		}
	}
}

/* A pack's blobs: from its trailer; when the trailer is damaged but walking the pack proves
 * every envelope up to it (kbv_pack_salvage), from the walk, and *salvaged is set (gc then
 * rewrites the pack, which gives it a sound trailer). `known` and `keep` as for
 * kbv_pack_open_trailer (*keep stays NULL when the pack was salvaged). */
static int pack_entries_open(struct kbv_repo *r, struct kbv_codec *c, const uint8_t id[KBV_PACKID_BYTES],
			     uint64_t known, struct kbv_be_rd **keep, struct kbv_buf *entries, size_t *n, uint64_t *size,
			     int *salvaged)
{
	char msg[1024];
	uint64_t lost = 0;
	*salvaged = 0;
	int rc = kbv_pack_open_trailer(r, c, id, known, keep, entries, n, size);
	if (rc != KBV_ECORRUPT)
		return rc;
	snprintf(msg, sizeof msg, "%s", kbv_errmsg());
	if (kbv_pack_salvage(r, c, id, entries, n, &lost, size) == 0 && lost == 0 && *n > 0) {
		*salvaged = 1;
		return 0;
	}
	return kbv_error(KBV_ECORRUPT, "%s", msg);
}

static int pack_entries(struct kbv_repo *r, struct kbv_codec *c, const uint8_t id[KBV_PACKID_BYTES],
			struct kbv_buf *entries, size_t *n, uint64_t *size, int *salvaged)
{
	return pack_entries_open(r, c, id, 0, NULL, entries, n, size, salvaged);
}

/* On object storage a trailer costs a GET or two per pack, so the plan comes from
 * the index alone, as restic and kopia plan theirs: the cache was brought up to date with
 * the bucket when the repository was opened (from authenticated index objects and
 * trailers), and every pack it names was just listed. A pack's live bytes are its
 * envelopes holding a blob the index locates there; its size is the envelopes the index
 * locates there at all. A pack the index does not know holds nothing live (the same
 * decision a trailer leads to: liveness is where the index says). The trailer of a pack
 * to be rewritten is still read, and every blob copied is checked against it. */
static void plan_from_index(struct sweep *s, struct plan_pack *p, uint64_t fsize)
{
	p->size = fsize;
	if (p->no < 0) {
		p->action = 1;
		return;
	}
	/* the live tuples of this pack: sorted by (pack, offset) */
	size_t lo = 0, hi = s->nlocs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->locs[mid].pack < (uint32_t)p->no)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint32_t last_off = UINT32_MAX;
	for (size_t i = lo; i < s->nlocs && s->locs[i].pack == (uint32_t)p->no; i++) {
		const struct loctuple *t = &s->locs[i];
		s->found[t->live / 8] |= (uint8_t)(1u << (t->live % 8));
		p->nlive++;
		if (t->offset != last_off)
			p->live += t->stored_len;
		last_off = t->offset;
	}
	p->total = (size_t)p->no < s->nindexed ? s->indexed[p->no] : 0;
	if (p->total < p->live)
		p->total = p->live;
	if (p->live == 0)
		p->action = 1;
	else if (p->total > p->live)
		p->action = 2;
}

static int sweep_pack(void *arg, const uint8_t id[KBV_PACKID_BYTES], uint64_t fsize, int64_t mtime)
{
	struct sweep *s = arg;
	struct kbv_buf entries = KBV_BUF_INIT;
	size_t n = 0;
	uint64_t size = 0;
	int rc = 0;
	char hex[2 * KBV_PACKID_BYTES + 1];
	kbv_hex(id, KBV_PACKID_BYTES, hex);
	struct packno_map *m = s->nmap ? bsearch(id, s->map, s->nmap, sizeof *s->map, cmp_map) : NULL;
	if (s->np == s->capp) {
		size_t cap = s->capp ? 2 * s->capp : 256;
		struct plan_pack *np = realloc(s->p, cap * sizeof *np);
		if (!np)
			return kbv_error(KBV_ENOMEM, "out of memory");
		s->p = np;
		s->capp = cap;
	}
	struct plan_pack *p = &s->p[s->np];
	memset(p, 0, sizeof *p);
	memcpy(p->id, id, KBV_PACKID_BYTES);
	p->no = m ? (long)m->no : -1;
	p->mtime = mtime;
	if (s->from_index) {
		plan_from_index(s, p, fsize);
		s->np++;
		s->done++;
		if (s->o->progress)
			s->o->progress(s->o->arg, "sweep", s->done, s->total);
		return 0;
	}
	int salvaged;
	rc = pack_entries(s->r, s->codec, id, &entries, &n, &size, &salvaged);
	if (rc < 0) {
		if (p->no >= 0)
			return kbv_error_prefix(rc, "gc stops: indexed pack %s cannot be read (run 'kbvault check')", hex);
		/* Not indexed and unreadable: left by an interrupted write. Nothing can live in it. */
		p->size = fsize;
		p->action = 1;
		s->np++;
		return 0;
	}
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	p->size = size;
	p->n = n;
	p->is_live = calloc(n + 1, 1);
	if (!p->is_live) {
		kbv_buf_release(&entries);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	mark_live(s, p, e, n, p->is_live);
	/* Per envelope (bundle members share one): live if any member is. */
	for (size_t i = 0; rc == 0 && i < n;) {
		size_t j = i;
		int any = 0;
		while (j < n && e[j].offset == e[i].offset)
			any |= p->is_live[j++];
		p->total += e[i].stored_len;
		if (any)
			p->live += e[i].stored_len;
		i = j;
	}
	if (rc == 0) {
		if (p->live == 0)
			p->action = 1;
		else if (salvaged || p->total > p->live)
			p->action = 2;
		p->must = p->action == 2 && salvaged; /* a damaged trailer is rewritten whatever it holds */
		/* Nothing per entry is kept: repacking reads the trailer again. */
		free(p->is_live);
		p->is_live = NULL;
		s->np++;
	} else {
		free(p->is_live);
	}
	kbv_buf_release(&entries);
	s->done++;
	if (s->o->progress)
		s->o->progress(s->o->arg, "sweep", s->done, s->total);
	return rc;
}

/* ---- repack ---- */

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
	struct kbv_buf stored = KBV_BUF_INIT, live = KBV_BUF_INIT, entries = KBV_BUF_INIT;
	struct kbv_be_rd *fd = NULL;
	uint8_t *is_live = NULL;
	size_t n = 0;
	uint64_t size;
	int rc = 0;
	int salvaged;
	/* Open with the size the listing gave (no HEAD) and keep it open for the blobs. */
	TRY(pack_entries_open(r, sw->codec, p->id, p->size, &fd, &entries, &n, &size, &salvaged));
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	is_live = calloc(n + 1, 1);
	if (!is_live) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	mark_live(sw, p, e, n, is_live);
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
	for (size_t i = 0; i < n;) {
		size_t j = i;
		live.len = 0;
		while (j < n && e[j].offset == e[i].offset) {
			if (is_live[j])
				TRY(kbv_buf_add(&live, &e[j], sizeof e[j]));
			j++;
		}
		if (live.len) {
			TRY(kbv_buf_reserve(&stored, e[i].stored_len));
			TRY(kbv_be_read(fd, stored.data, e[i].stored_len, e[i].offset));
			if (!*w)
				TRY(kbv_packw_new(r, sw->codec, w));
			rc = kbv_packw_add_copy(*w, stored.data, e[i].stored_len, (const struct kbv_pack_entry *)live.data,
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
	kbv_buf_release(&live);
	return rc;
}

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
	struct sweep sw = { .r = r, .o = o, .envelopes = KBV_IDSET_INIT };
	struct kbv_packw *w = NULL;
	struct kbv_buf newpacks = KBV_BUF_INIT; /* struct newpack, uploading */
	struct plan_pack **rep = NULL;
	struct kbv_plans plans = { 0 };
	uint8_t(*ripe)[KBV_PACKID_BYTES] = NULL;
	uint8_t *keep = NULL; /* per dropped snapshot: still retained by Object Lock */
	size_t n = 0, nripe = 0;
	int rc = 0;
	memset(res, 0, sizeof *res);

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
	if (!o->dry_run && ndrop) {
		for (size_t i = 0; i < ndrop; i++) {
			if (keep && keep[i])
				continue;
			TRY(kbv_snapshot_remove(r, drop[i]));
			res->snapshots_dropped++;
		}
	}

	/* 2. mark: every manifest that is (or, dry run, will be) left is a root. */
	/* (a manifest another host committed since the cache was refreshed makes the listing
	 * catch the cache up: every blob a root references is then indexed) */
	TRY(kbv_snapshot_list(r, &list, &n));
	TRY(kbv_reader_new(r, 1, &rd)); /* mark only walks trees: one worker, not one per CPU */
	for (size_t i = 0; i < n; i++) {
		int dropped = 0;
		for (size_t k = 0; o->dry_run && k < ndrop && !dropped; k++)
			dropped = !memcmp(drop[k], list[i]->id, KBV_ID_BYTES) && !(keep && keep[k]);
		if (dropped) {
			res->snapshots_dropped++;
			continue;
		}
		res->snapshots_kept++;
		TRY(mark_snapshot(&m, rd, list[i]));
		TRY(kbv_gclock_refresh(o->lock, 0));
		if (o->progress)
			o->progress(o->arg, "mark", i + 1, n);
	}
	live_compact(&m.live);
	res->live_blobs = m.live.n;
	kbv_reader_free(rd); /* before the index is closed and reopened by compaction */
	rd = NULL;

	/* 3. sweep */
	kbv_index_release_pages(r->idx);
	sw.live = &m.live;
	sw.from_index = !(kbv_backend_features(r->be) & KBV_BE_LOCAL);
	sw.found = calloc(m.live.n / 8 + 1, 1);
	TRY(kbv_index_rbegin(r->idx, &sw.txn));
	if (!sw.found) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	sw.codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!sw.codec) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	TRY(kbv_index_each_pack(r->idx, sw.txn, collect_packno, &sw));
	if (sw.nmap)
		qsort(sw.map, sw.nmap, sizeof *sw.map, cmp_map);
	TRY(kbv_index_each_blob(r->idx, sw.txn, collect_loc, &sw));
	if (sw.nlocs)
		qsort(sw.locs, sw.nlocs, sizeof *sw.locs, cmp_tuple);
	/* One listing of the packs (object storage: a LIST per 1000), then the sweep. */
	TRY(kbv_each_packfile(r, count_pack, &sw));
	for (size_t i = 0; i < sw.nlisted; i++)
		TRY(sweep_pack(&sw, sw.listed[i].id, sw.listed[i].size, sw.listed[i].mtime));
	kbv_index_rend(sw.txn);
	sw.txn = NULL;
	kbv_index_release_pages(r->idx);
	/* Every blob a snapshot references must have been found where the index says. If
	 * not, the index is stale or a pack is gone: nothing may be deleted on its word. */
	for (size_t i = 0; i < m.live.n; i++)
		if (!(sw.found[i / 8] & (1u << (i % 8)))) {
			rc = kbv_error(KBV_ECORRUPT,
				       "a blob the snapshots reference (id prefix %016llx) is not where the index says, or "
				       "not indexed: gc stops before changing anything; run 'kbvault repair index' and "
				       "'kbvault check', then gc again",
				       (unsigned long long)m.live.v[i]);
			goto out;
		}

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
	size_t done = 0;
	for (size_t i = 0; i < sw.np; i++) {
		if (sw.p[i].action != 2)
			continue;
		TRY(repack_one(r, &sw, &sw.p[i], &w, &newpacks, &res->packs_written, &res->bytes_written));
		if (o->progress)
			o->progress(o->arg, "repack", ++done, res->packs_repacked);
		TRY(kbv_gclock_refresh(o->lock, 0));
	}
	TRY(newpack_finish(&w, &newpacks, &res->packs_written, &res->bytes_written));
	TRY(newpacks_index(r, &newpacks));

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
	kbv_meta_retain(r, KBV_META_TREE, tree_marked, &m.trees);
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
	if (sw.txn)
		kbv_index_rend(sw.txn);
	free(sw.found);
	free(sw.locs);
	free(sw.indexed);
	free(sw.listed);
	kbv_idset_release(&sw.envelopes);
	kbv_packw_free(w);
	for (size_t i = 0; i < sw.np; i++) {
		kbv_buf_release(&sw.p[i].entries);
		free(sw.p[i].is_live);
	}
	free(sw.p);
	free(sw.map);
	free(rep);
	kbv_codec_free(sw.codec);
	for (size_t i = 0; i < newpacks.len / sizeof(struct newpack); i++) /* a failure left them unindexed */
		free(((struct newpack *)newpacks.data)[i].e);
	kbv_buf_release(&newpacks);
	kbv_idset_release(&m.trees);
	free(m.live.v);
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);
	kbv_plans_release(&plans);
	free(ripe);
	free(keep);
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
	TRY(kbv_plans_read(r, &pl));
	TRY(ripe_packs(&pl, &ripe, &nripe));
	out->plans = pl.n;
	out->damaged = pl.damaged;
	for (size_t i = 0; i < pl.n; i++) {
		int64_t in = pl.v[i].time + (int64_t)pl.v[i].delay - pl.now;
		if (in > 0 && (out->next_ripe_in < 0 || in < out->next_ripe_in))
			out->next_ripe_in = in;
	}
	struct summary_scan c = { &pl, (const uint8_t(*)[KBV_PACKID_BYTES])ripe, nripe, out };
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_pack(r->idx, txn, summary_pack, &c);
out:
	if (txn)
		kbv_index_rend(txn);
	free(ripe);
	kbv_plans_release(&pl);
	return rc;
}
