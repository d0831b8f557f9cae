/* gc's sweep (engine/gc_impl.h): one pass over the index in key order collects where each
 * live blob is; then every pack the storage lists is planned: from its trailer on a local
 * repository, from the index on object storage (plan_from_index; only the trailers of packs
 * to be rewritten are fetched there, by the repack). A blob is live when its prefix is in the
 * live set AND the index locates it at exactly this place; other copies are garbage. */
#include "engine/gc_impl.h"
#include "kbv/backend.h"
#include "kbv/check.h"
#include "kbv/error.h"
#include "store/pack.h"
#include "store/repo_impl.h"
#include "store/salvage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_tuple(const void *a, const void *b)
{
	const struct loctuple *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->raw_off < y->raw_off ? -1 : x->raw_off > y->raw_off;
}



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
	long li = gc_live_find(s->live, id);
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

void gc_mark_live(struct sweep *s, const struct plan_pack *p, const struct kbv_pack_entry *e, size_t n,
		  uint8_t *is_live)
{
	for (size_t i = 0; p->no >= 0 && s->nlocs && i < n; i++) {
		struct loctuple key = { (uint32_t)p->no, e[i].offset, e[i].raw_off, 0, 0 };
		const struct loctuple *t = bsearch(&key, s->locs, s->nlocs, sizeof *s->locs, cmp_tuple);
		/* The same place, and the same id there. */
		if (t && s->live->v[t->live] == gc_prefix(e[i].id)) {
			is_live[i] = 1;
			s->found[t->live / 8] |= (uint8_t)(1u << (t->live % 8));
		}
	}
}

int gc_pack_entries_open(struct kbv_repo *r, struct kbv_codec *c, const uint8_t id[KBV_PACKID_BYTES],
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
	return gc_pack_entries_open(r, c, id, 0, NULL, entries, n, size, salvaged);
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
	gc_mark_live(s, p, e, n, p->is_live);
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

int gc_sweep(struct sweep *sw, const struct live *live)
{
	struct kbv_repo *r = sw->r;
	int rc = 0;
	kbv_index_release_pages(r->idx);
	sw->live = live;
	sw->from_index = !(kbv_backend_features(r->be) & KBV_BE_LOCAL);
	sw->found = calloc(live->n / 8 + 1, 1);
	TRY(kbv_index_rbegin(r->idx, &sw->txn));
	if (!sw->found) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	sw->codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!sw->codec) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	TRY(kbv_index_each_pack(r->idx, sw->txn, collect_packno, sw));
	if (sw->nmap)
		qsort(sw->map, sw->nmap, sizeof *sw->map, cmp_map);
	TRY(kbv_index_each_blob(r->idx, sw->txn, collect_loc, sw));
	if (sw->nlocs)
		qsort(sw->locs, sw->nlocs, sizeof *sw->locs, cmp_tuple);
	/* One listing of the packs (object storage: a LIST per 1000), then the sweep. */
	TRY(kbv_each_packfile(r, count_pack, sw));
	for (size_t i = 0; i < sw->nlisted; i++)
		TRY(sweep_pack(sw, sw->listed[i].id, sw->listed[i].size, sw->listed[i].mtime));
	kbv_index_rend(sw->txn);
	sw->txn = NULL;
	kbv_index_release_pages(r->idx);
	/* Every blob a snapshot references must have been found where the index says. If
	 * not, the index is stale or a pack is gone: nothing may be deleted on its word. */
	for (size_t i = 0; i < live->n; i++)
		if (!(sw->found[i / 8] & (1u << (i % 8)))) {
			rc = kbv_error(KBV_ECORRUPT,
				       "a blob the snapshots reference (id prefix %016llx) is not where the index says, or "
				       "not indexed: gc stops before changing anything; run 'kbvault repair index' and "
				       "'kbvault check', then gc again",
				       (unsigned long long)live->v[i]);
			goto out;
		}
out:
	return rc;
}

void gc_sweep_release(struct sweep *sw)
{
	if (sw->txn)
		kbv_index_rend(sw->txn);
	sw->txn = NULL;
	free(sw->found);
	free(sw->locs);
	free(sw->indexed);
	free(sw->listed);
	kbv_idset_release(&sw->envelopes);
	for (size_t i = 0; i < sw->np; i++) {
		kbv_buf_release(&sw->p[i].entries);
		free(sw->p[i].is_live);
	}
	free(sw->p);
	free(sw->map);
	kbv_codec_free(sw->codec);
}
