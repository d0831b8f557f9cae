#include "readplan.h"
#include "kbv/error.h"
#include "store/repo_impl.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Envelopes of one pack with a gap of at most GAP_MAX between them share a span (the gap
 * is fetched and thrown away; one request costs about as much as a megabyte on the wire)
 * when the gap is no larger than GAP_FREE or than the needed bytes of the span so far, the
 * span stays under SPAN_MAX, and the part's gaps stay under KBV_PLAN_STORED in all: a
 * part's spans hold at most twice KBV_PLAN_STORED (and one envelope). */
#define GAP_MAX (1u << 20)
#define GAP_FREE (256u << 10)
#define SPAN_MAX (16u << 20)
#define HUGE (2u << 20) /* a huge page of x86-64 and arm64 */

enum { SPAN_IDLE, SPAN_BUSY, SPAN_READY, SPAN_FAILED };

struct span {
	uint32_t pack;
	struct kbv_pack_info info; /* a copy: the table add() grows may move meanwhile */
	uint64_t off, len;
	int state;
	int queued; /* in first[] */
	int rc;
	uint8_t *data; /* its place in the arena */
	char *err;  /* SPAN_FAILED: the fetch's message */
	char *name; /* the pack object, for messages */
};

struct kbv_readplan {
	struct kbv_repo *r;
	struct kbv_rleaf *leaves;
	size_t n, cap;
	uint64_t stored; /* needed by the part so far (each envelope once) */
	uint64_t *seen;  /* the part's envelopes, pack << 32 | offset, + 1 (0: a free slot) */
	size_t seen_cap; /* a power of two, more than twice KBV_PLAN_LEAVES */
	uint64_t part;   /* ... up to this (KBV_PLAN_STORED) */
	struct place {
		uint32_t pack, offset, leaf;
	} *order; /* the leaves sorted by where they are */
	struct span *spans;
	size_t nspans, spans_cap;
	/* The part's spans, one after the other: kept from part to part, so that the pages of
	 * a restore are touched once (a page fault costs more than the copy into it). */
	uint8_t *arena;
	size_t arena_cap;
	struct {
		uint32_t pack;
		struct kbv_pack_info info;
	} *packs; /* every pack a chunk was added from (their names and sizes) */
	size_t npacks, packs_cap;
	const struct kbv_pack_info *last; /* of the chunk added last */
	uint32_t last_pack;
	/* Fetching ahead: the spans in the order the stream first needs them; `fetchers`
	 * threads take them in turn (a worker that needs a span no one fetched yet fetches it
	 * itself). Under mu, as every span's state. */
	uint32_t *first;
	size_t next; /* first[next] is the next to fetch ahead */
	size_t busy; /* fetches running */
	int ahead;   /* the spans are planned: fetchers may look at them */
	pthread_t *fetchers;
	size_t nfetchers;
	int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a span fetched, or a fetch ended */
	pthread_cond_t work; /* spans to fetch ahead, or stop */
	uint64_t gets, bytes;
};

static void *fetcher(void *arg);

/* The fetching threads, started by the first part planned: a reader whose tree is only
 * walked (gc's marking, check) starts none. */
static int start_fetchers(struct kbv_readplan *p)
{
	size_t n = kbv_backend_parallel(p->r->be) ? kbv_backend_parallel(p->r->be) : 1;
	if (!(p->fetchers = calloc(n, sizeof *p->fetchers)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (; p->nfetchers < n; p->nfetchers++)
		if (pthread_create(&p->fetchers[p->nfetchers], NULL, fetcher, p) != 0)
			return kbv_error(KBV_ENOMEM, "cannot start a fetching thread");
	return 0;
}

int kbv_readplan_new(struct kbv_repo *r, struct kbv_readplan **out)
{
	struct kbv_readplan *p = calloc(1, sizeof *p);
	if (!p)
		return kbv_error(KBV_ENOMEM, "out of memory");
	p->r = r;
	p->part = KBV_PLAN_STORED;
	for (p->seen_cap = 1; p->seen_cap <= 2 * KBV_PLAN_LEAVES; p->seen_cap *= 2)
		;
	if (!(p->seen = calloc(p->seen_cap, sizeof *p->seen))) {
		free(p);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->work, NULL);
	*out = p;
	return 0;
}

/* Forget the built part's spans: no more fetching ahead, the fetches running waited for. */
static void drop_spans(struct kbv_readplan *p)
{
	pthread_mutex_lock(&p->mu);
	p->ahead = 0;
	while (p->busy)
		pthread_cond_wait(&p->cv, &p->mu);
	for (size_t i = 0; i < p->nspans; i++) {
		free(p->spans[i].err);
		free(p->spans[i].name);
	}
	p->nspans = p->next = 0;
	pthread_mutex_unlock(&p->mu);
}

/* Start the next part with nothing added. */
static void new_part(struct kbv_readplan *p)
{
	p->n = 0;
	p->stored = 0;
	memset(p->seen, 0, p->seen_cap * sizeof *p->seen);
}

void kbv_readplan_reset(struct kbv_readplan *p)
{
	drop_spans(p);
	new_part(p);
}

void kbv_readplan_free(struct kbv_readplan *p)
{
	if (!p)
		return;
	kbv_readplan_reset(p);
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->nfetchers; i++)
		pthread_join(p->fetchers[i], NULL);
	free(p->fetchers);
	free(p->first);
	free(p->arena);
	free(p->seen);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->work);
	free(p->leaves);
	free(p->order);
	free(p->packs);
	free(p->spans);
	free(p);
}

static const struct kbv_pack_info *pack_of(const struct kbv_readplan *p, uint32_t pack);

/* Is this the part's first chunk from the envelope at (pack, offset)? (A stream's chunks
 * come back to an envelope after others: an edited dump.) */
static int first_time(struct kbv_readplan *p, uint32_t pack, uint32_t offset)
{
	if (p->n >= KBV_PLAN_LEAVES) /* a part past full (not built): the table stays half empty */
		return 1;
	uint64_t key = ((uint64_t)pack << 32 | offset) + 1;
	size_t mask = p->seen_cap - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
	for (; p->seen[i]; i = (i + 1) & mask)
		if (p->seen[i] == key)
			return 0;
	p->seen[i] = key;
	return 1;
}

int kbv_readplan_add(struct kbv_readplan *p, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES])
{
	char idhex[2 * KBV_ID_BYTES + 1];
	struct kbv_loc loc;
	int rc = kbv_pack_locate(p->r, txn, KBV_BLOB_DATA, id, &loc);
	if (rc < 0)
		return rc;
	if (!p->last || p->last_pack != loc.pack) {
		if (!(p->last = pack_of(p, loc.pack))) {
			if (p->npacks == p->packs_cap) {
				size_t cap = p->packs_cap ? 2 * p->packs_cap : 16;
				void *t = realloc(p->packs, cap * sizeof *p->packs);
				if (!t)
					return kbv_error(KBV_ENOMEM, "out of memory");
				p->packs = t;
				p->packs_cap = cap;
			}
			if ((rc = kbv_index_pack(p->r->idx, txn, loc.pack, &p->packs[p->npacks].info)) < 0)
				return rc;
			p->packs[p->npacks].pack = loc.pack;
			p->last = &p->packs[p->npacks++].info;
		}
		p->last_pack = loc.pack;
	}
	/* The index is not authenticated: a location outside the pack's blob area is damage
	 * (or tampering), found before anything is fetched for it (as kbv_pack_read_blob). */
	if (loc.offset < KBV_PACK_HEADER || (uint64_t)loc.offset + loc.stored_len + KBV_PACK_FOOTER > p->last->size) {
		char hex[2 * KBV_PACKID_BYTES + 1], path[PATH_MAX];
		kbv_hex(p->last->id, KBV_PACKID_BYTES, hex);
		kbv_be_describe(p->r->be, KBV_OBJ_PACK, hex, path, sizeof path);
		kbv_hex(id, KBV_ID_BYTES, idhex);
		return kbv_error(KBV_ECORRUPT,
				 "pack '%s' is truncated (%llu bytes), or the index is damaged: blob %.16s is indexed at "
				 "offset %u, %u bytes (run 'kbvault check')",
				 path, (unsigned long long)p->last->size, idhex, loc.offset, loc.stored_len);
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 1024;
		struct kbv_rleaf *l = realloc(p->leaves, cap * sizeof *l);
		struct place *o = realloc(p->order, cap * sizeof *o);
		if (l)
			p->leaves = l;
		if (o)
			p->order = o;
		if (!l || !o)
			return kbv_error(KBV_ENOMEM, "out of memory");
		p->cap = cap;
	}
	if (first_time(p, loc.pack, loc.offset))
		p->stored += loc.stored_len;
	struct kbv_rleaf *l = &p->leaves[p->n++];
	memcpy(l->id, id, KBV_ID_BYTES);
	l->loc = loc;
	l->span = 0;
	return p->stored >= p->part || p->n >= KBV_PLAN_LEAVES;
}

static int by_place(const void *a, const void *b)
{
	const struct place *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->leaf < y->leaf ? -1 : x->leaf > y->leaf;
}

static int new_span(struct kbv_readplan *p, const struct kbv_loc *loc)
{
	if (p->nspans == p->spans_cap) {
		size_t cap = p->spans_cap ? 2 * p->spans_cap : 64;
		struct span *s = realloc(p->spans, cap * sizeof *s);
		if (!s)
			return kbv_error(KBV_ENOMEM, "out of memory");
		p->spans = s;
		p->spans_cap = cap;
	}
	struct span *s = &p->spans[p->nspans++];
	memset(s, 0, sizeof *s);
	s->pack = loc->pack;
	s->info = *pack_of(p, loc->pack);
	s->off = loc->offset;
	s->len = loc->stored_len;
	return 0;
}

int kbv_readplan_build(struct kbv_readplan *p, const struct kbv_rleaf **leaves, size_t *n)
{
	if (!p->fetchers) {
		int rc = start_fetchers(p);
		if (rc < 0)
			return rc;
	}
	drop_spans(p);
	for (size_t i = 0; i < p->n; i++)
		p->order[i] = (struct place){ p->leaves[i].loc.pack, p->leaves[i].loc.offset, (uint32_t)i };
	qsort(p->order, p->n, sizeof *p->order, by_place);
	uint64_t need = 0, slack = p->part; /* need: of the span being grown */
	for (size_t k = 0; k < p->n; k++) {
		struct kbv_rleaf *l = &p->leaves[p->order[k].leaf];
		struct span *s = p->nspans ? &p->spans[p->nspans - 1] : NULL;
		const struct place *prev = k ? &p->order[k - 1] : NULL;
		if (!prev || prev->pack != l->loc.pack || prev->offset != l->loc.offset) { /* a new envelope */
			uint64_t end = (uint64_t)l->loc.offset + l->loc.stored_len;
			uint64_t gap = s ? l->loc.offset - (s->off + s->len) : 0;
			if (s && s->pack == l->loc.pack && gap <= GAP_MAX && (gap <= GAP_FREE || gap <= need) &&
			    gap <= slack && end - s->off <= SPAN_MAX) {
				s->len = end - s->off;
				need += l->loc.stored_len;
				slack -= gap;
			} else {
				int rc = new_span(p, &l->loc);
				if (rc < 0)
					return rc;
				s = &p->spans[p->nspans - 1];
				need = l->loc.stored_len;
			}
		}
		l->span = (uint32_t)(s - p->spans);
	}
	size_t total = 0;
	for (size_t i = 0; i < p->nspans; i++)
		total += p->spans[i].len;
	if (total > p->arena_cap) {
		/* in huge pages where the kernel grants them: a restore's reads then fault a page
		 * per 2 MiB, not per 4 KiB (measured: page faults were 10% of a restore's CPU) */
		size_t cap = (total + HUGE - 1) / HUGE * HUGE;
		void *a = NULL;
		free(p->arena);
		p->arena = NULL;
		p->arena_cap = 0;
		if (posix_memalign(&a, HUGE, cap) != 0)
			return kbv_error(KBV_ENOMEM, "out of memory (%zu bytes for a restore's reads)", cap);
		madvise(a, cap, MADV_HUGEPAGE);
		p->arena = a;
		p->arena_cap = cap;
	}
	for (size_t i = 0, at = 0; i < p->nspans; at += p->spans[i++].len)
		p->spans[i].data = p->arena + at;
	/* Fetch ahead in the order the stream needs the spans. */
	uint32_t *first = realloc(p->first, (p->nspans ? p->nspans : 1) * sizeof *first);
	if (!first)
		return kbv_error(KBV_ENOMEM, "out of memory");
	p->first = first;
	size_t nfirst = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct span *s = &p->spans[p->leaves[i].span];
		if (!s->queued) {
			s->queued = 1;
			first[nfirst++] = p->leaves[i].span;
		}
	}
	*leaves = p->leaves;
	*n = p->n;
	new_part(p);
	pthread_mutex_lock(&p->mu);
	p->next = 0;
	p->ahead = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* The pack numbered `pack` as add() found it (it is there: every span's pack was added). */
static const struct kbv_pack_info *pack_of(const struct kbv_readplan *p, uint32_t pack)
{
	for (size_t i = 0; i < p->npacks; i++)
		if (p->packs[i].pack == pack)
			return &p->packs[i].info;
	return NULL;
}

/* Fetch the span this thread set SPAN_BUSY (p->busy counted it); called and returns
 * with mu held, which it drops while the request runs. */
static void fetch(struct kbv_readplan *p, struct span *s)
{
	const struct kbv_pack_info *info = &s->info;
	uint64_t off = s->off, len = s->len, size = info->size;
	pthread_mutex_unlock(&p->mu);
	struct kbv_be_rd *rd = NULL;
	char hex[2 * KBV_PACKID_BYTES + 1], path[PATH_MAX];
	kbv_hex(info->id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(p->r->be, KBV_OBJ_PACK, hex, path, sizeof path);
	char *name = strdup(path);
	int rc = name ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
	if (rc == 0 && (rc = kbv_be_open_known(p->r->be, KBV_OBJ_PACK, hex, &size, &rd)) == KBV_ENOTFOUND)
		rc = kbv_error(KBV_ECORRUPT, "open pack '%s': No such file or directory", path);
	if (rc == 0)
		rc = kbv_be_read_once(rd, s->data, len, off); /* no one else touches it while BUSY */
	kbv_be_close(rd);
	char *err = rc < 0 ? strdup(kbv_errmsg()) : NULL;
	pthread_mutex_lock(&p->mu);
	s->rc = rc;
	s->err = err;
	s->name = name;
	if (rc == 0) {
		p->gets++;
		p->bytes += len;
	}
	s->state = rc == 0 ? SPAN_READY : SPAN_FAILED;
	p->busy--;
	pthread_cond_broadcast(&p->cv);
}

static void *fetcher(void *arg)
{
	struct kbv_readplan *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		if (!p->ahead || p->next >= p->nspans) {
			pthread_cond_wait(&p->work, &p->mu);
			continue;
		}
		struct span *s = &p->spans[p->first[p->next++]];
		if (s->state != SPAN_IDLE)
			continue;
		s->state = SPAN_BUSY;
		p->busy++;
		fetch(p, s);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int kbv_readplan_read(struct kbv_readplan *p, struct kbv_codec *codec, struct kbv_bundle_cache *bc,
		      const struct kbv_rleaf *leaf, struct kbv_buf *out)
{
	struct span *s = &p->spans[leaf->span];
	struct kbv_pack_entry e = { leaf->loc.type, { 0 }, leaf->loc.offset, leaf->loc.stored_len,
				    leaf->loc.raw_off, leaf->loc.raw_len, leaf->loc.xxh };
	memcpy(e.id, leaf->id, KBV_ID_BYTES);
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	while (s->state == SPAN_BUSY)
		pthread_cond_wait(&p->cv, &p->mu);
	if (s->state == SPAN_IDLE) { /* not fetched ahead yet: this worker needs it now */
		s->state = SPAN_BUSY;
		p->busy++;
		fetch(p, s);
	}
	if (s->state == SPAN_FAILED)
		rc = s->err ? kbv_error(s->rc, "%s", s->err) : kbv_error(s->rc, "out of memory");
	pthread_mutex_unlock(&p->mu);
	/* READY: the bytes stay until the next part is built */
	if (rc == 0)
		rc = kbv_pack_decode_at(codec, s->name, leaf->loc.pack, &e, bc, s->data + (e.offset - s->off), out);
	return rc;
}

void kbv_readplan_part(struct kbv_readplan *p, uint64_t stored)
{
	p->part = stored;
}

void kbv_readplan_fetched(const struct kbv_readplan *p, uint64_t *gets, uint64_t *bytes)
{
	*gets = p->gets;
	*bytes = p->bytes;
}
