/* Index objects (format/index.md, "Index objects"): writing them after their packs,
 * merging them into a host's index cache, and gc's compaction. */
#include "store/idxobj.h"

#include "kbv/error.h"
#include "store/metacache.h"
#include "store/pack.h"
#include "store/sealed.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PACK_PART 28 /* pack id, u64 size, u32 entry count */

int kbv_idxobj_add_pack(struct kbv_buf *out, const struct kbv_pack_info *info, const struct kbv_pack_entry *e,
			size_t n)
{
	int rc = 0;
	TRY(kbv_buf_add(out, info->id, KBV_PACKID_BYTES));
	TRY(kbv_buf_add_u64(out, info->size));
	TRY(kbv_trailer_encode(e, n, out));
out:
	return rc;
}

int kbv_idxobj_parse(const uint8_t *body, size_t len, const char *what, kbv_idxobj_fn fn, void *arg)
{
	struct kbv_buf entries = KBV_BUF_INIT;
	int rc = 0;
	if (len < 4 || kbv_get32(body) == 0)
		return kbv_error(KBV_ECORRUPT, "index object '%s' is damaged (no pack count)", what);
	uint32_t npacks = kbv_get32(body);
	size_t off = 4;
	for (uint32_t p = 0; p < npacks; p++) {
		if (len - off < PACK_PART) {
			rc = kbv_error(KBV_ECORRUPT, "index object '%s' is damaged (pack %u of %u is cut short)", what,
				       p + 1, npacks);
			goto out;
		}
		struct kbv_pack_info info;
		memcpy(info.id, body + off, KBV_PACKID_BYTES);
		info.size = kbv_get64(body + off + 16);
		uint64_t count = kbv_get32(body + off + 24);
		size_t part = 4 + (size_t)count * KBV_TRAILER_ENTRY;
		if (len - off - 24 < part || info.size < KBV_PACK_HEADER + KBV_PACK_FOOTER) {
			rc = kbv_error(KBV_ECORRUPT, "index object '%s' is damaged (pack %u of %u: %llu entries, size %llu)",
				       what, p + 1, npacks, (unsigned long long)count, (unsigned long long)info.size);
			goto out;
		}
		char hex[2 * KBV_PACKID_BYTES + 1], pwhat[200];
		size_t n;
		kbv_hex(info.id, KBV_PACKID_BYTES, hex);
		snprintf(pwhat, sizeof pwhat, "%s in index object %.16s", hex, what);
		/* the same entries as the pack's trailer; the blob area ends before the footer */
		TRY(kbv_trailer_parse(body + off + 24, part, info.size - KBV_PACK_FOOTER, pwhat, &entries, &n));
		info.blobs = (uint32_t)n;
		TRY(fn(arg, &info, (const struct kbv_pack_entry *)entries.data, n));
		off += 24 + part;
	}
	if (off != len)
		rc = kbv_error(KBV_ECORRUPT, "index object '%s' is damaged (%zu bytes after its last pack)", what,
			       len - off);
out:
	kbv_buf_release(&entries);
	return rc;
}

int kbv_idxobj_seal(const struct kbv_repo *r, struct kbv_codec *codec, uint32_t npacks, const struct kbv_buf *parts,
		    char name[65], struct kbv_buf *file)
{
	struct kbv_buf body = KBV_BUF_INIT;
	int rc = 0;
	TRY(kbv_buf_add_u32(&body, npacks));
	TRY(kbv_buf_add(&body, parts->data, parts->len));
	TRY(kbv_sealed_make(r, codec, "KBVINDX\0", KBV_BLOB_INDEX, &body, name, file));
out:
	kbv_buf_release(&body);
	return rc;
}

int kbv_idxobj_open(const struct kbv_repo *r, struct kbv_codec *codec, const char *name, const uint8_t *file,
		    size_t len, struct kbv_buf *body)
{
	return kbv_sealed_open(r, codec, "KBVINDX\0", KBV_BLOB_INDEX, "index object", name, file, len, body);
}

/* ---- writing ---- */

static int object_storage(const struct kbv_repo *r)
{
	return !(kbv_backend_features(r->be) & KBV_BE_LOCAL);
}

/* ...unless the one there is damaged (repair index rebuilding what a damaged object
 * listed makes the same name): then it is replaced (under Object Lock: a newer version). */
static int replace_if_damaged(struct kbv_repo *r, struct kbv_codec *codec, const char *name,
			      const struct kbv_buf *file)
{
	struct kbv_buf have = KBV_BUF_INIT, body = KBV_BUF_INIT;
	int rc = kbv_be_get(r->be, KBV_OBJ_INDEX, name, &have);
	if (rc == 0)
		rc = kbv_idxobj_open(r, codec, name, have.data, have.len, &body);
	if (rc == KBV_ECORRUPT || rc == KBV_ENOTFOUND)
		rc = kbv_be_put(r->be, KBV_OBJ_INDEX, name, file->data, file->len, 0);
	else if (rc == KBV_EVERSION) /* a newer build's object: not damage, left as it is */
		rc = 0;
	kbv_buf_release(&have);
	kbv_buf_release(&body);
	return rc;
}

/* PUT one index object and record it as merged: the caller holds r->idx_mu or owns r. */
static int put_object(struct kbv_repo *r, uint32_t npacks, const struct kbv_buf *parts, uint8_t id[KBV_ID_BYTES])
{
	struct kbv_buf file = KBV_BUF_INIT;
	struct kbv_codec *codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	char name[65];
	int rc = 0;
	if (!codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	TRY(kbv_idxobj_seal(r, codec, npacks, parts, name, &file));
	rc = kbv_be_put(r->be, KBV_OBJ_INDEX, name, file.data, file.len, KBV_PUT_EXCL);
	if (rc == KBV_EEXIST) /* named by its content: the same object is there already... */
		rc = replace_if_damaged(r, codec, name, &file);
	if (rc < 0) {
		kbv_error_prefix(rc, "write index object");
		goto out;
	}
	kbv_unhex(name, id, KBV_ID_BYTES);
	TRY(kbv_index_mark_objs(r->idx, (const uint8_t(*)[KBV_ID_BYTES])id, 1, NULL, 0));
out:
	kbv_codec_free(codec);
	kbv_buf_release(&file);
	return rc;
}

static int publish_locked(struct kbv_repo *r)
{
	uint8_t id[KBV_ID_BYTES];
	int rc = 0;
	if (!r->idx_pend_packs)
		return 0;
	TRY(put_object(r, r->idx_pend_packs, &r->idx_pend, id));
	r->idx_pend.len = 0;
	r->idx_pend_packs = 0;
out:
	return rc;
}

int kbv_repo_note_packs(struct kbv_repo *r, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks)
{
	int rc = 0;
	if (!object_storage(r) || !npacks)
		return 0;
	pthread_mutex_lock(&r->idx_mu);
	for (size_t i = 0; i < npacks && rc == 0; i++) {
		rc = kbv_idxobj_add_pack(&r->idx_pend, &packs[i], entries[i], counts[i]);
		if (rc == 0)
			r->idx_pend_packs++;
	}
	if (rc == 0 && r->idx_pend.len >= KBV_IDXOBJ_MAX_BODY)
		rc = publish_locked(r);
	pthread_mutex_unlock(&r->idx_mu);
	return rc;
}

int kbv_repo_publish_index(struct kbv_repo *r)
{
	if (!object_storage(r))
		return 0;
	pthread_mutex_lock(&r->idx_mu);
	int rc = publish_locked(r);
	pthread_mutex_unlock(&r->idx_mu);
	return rc;
}

/* ---- gc: compaction ---- */

/* A list of object ids (32 bytes each). */
struct names {
	struct kbv_buf b;
	size_t n;
};
#define NAMES_INIT { KBV_BUF_INIT, 0 }
#define NAME(s, i) ((s)->b.data + (size_t)(i) * KBV_ID_BYTES)

static int names_add(struct names *s, const uint8_t id[KBV_ID_BYTES])
{
	int rc = kbv_buf_add(&s->b, id, KBV_ID_BYTES);
	if (rc == 0)
		s->n++;
	return rc;
}

static int on_name(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	uint8_t id[KBV_ID_BYTES];
	(void)size;
	(void)mtime;
	if (kbv_unhex(name, id, KBV_ID_BYTES) < 0)
		return 0;
	return names_add(arg, id);
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, KBV_ID_BYTES);
}

/* (names sorted with names_sort) */
static void names_sort(struct names *s)
{
	if (s->n)
		qsort(s->b.data, s->n, KBV_ID_BYTES, cmp_id);
}

static int names_has(const struct names *s, const uint8_t id[KBV_ID_BYTES])
{
	return s->n && bsearch(id, s->b.data, s->n, KBV_ID_BYTES, cmp_id) != NULL;
}

struct held {
	uint32_t packno;
	struct kbv_pack_entry e;
};

/* What the index cache holds: struct held for each blob, and struct kbv_pack_info and
 * the pack number of each pack, in the packs table's (pack number) order. */
struct gather {
	struct kbv_buf blobs, packs, nos;
};

static int gather_blob(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	struct held h = { loc->pack, { loc->type, { 0 }, loc->offset, loc->stored_len, loc->raw_off, loc->raw_len, loc->xxh } };
	memcpy(h.e.id, id, KBV_ID_BYTES);
	return kbv_buf_add(&((struct gather *)arg)->blobs, &h, sizeof h);
}

static int gather_pack(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	struct gather *g = arg;
	int rc = kbv_buf_add(&g->packs, info, sizeof *info);
	return rc < 0 ? rc : kbv_buf_add(&g->nos, &packno, sizeof packno);
}

static int cmp_held(const void *a, const void *b)
{
	const struct held *x = a, *y = b;
	if (x->packno != y->packno)
		return x->packno < y->packno ? -1 : 1;
	if (x->e.offset != y->e.offset)
		return x->e.offset < y->e.offset ? -1 : 1;
	return x->e.raw_off < y->e.raw_off ? -1 : x->e.raw_off > y->e.raw_off;
}

int kbv_repo_compact_index_objects(struct kbv_repo *r, int changed, uint64_t *written, uint64_t *removed)
{
	struct names old = NAMES_INIT, made = NAMES_INIT;
	struct gather g = { KBV_BUF_INIT, KBV_BUF_INIT, KBV_BUF_INIT };
	struct kbv_buf parts = KBV_BUF_INIT;
	char (*gone_names)[65] = NULL;
	const char **gone_ptrs = NULL;
	MDB_txn *txn = NULL;
	int rc = 0;
	*written = *removed = 0;
	if (!object_storage(r))
		return 0;
	pthread_mutex_lock(&r->idx_mu);
	TRY(kbv_be_list(r->be, KBV_OBJ_INDEX, on_name, &old));
	if (!changed && old.n <= 1 && !r->idx_pend_packs)
		goto out;
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_pack(r->idx, txn, gather_pack, &g);
	if (rc == 0)
		rc = kbv_index_each_blob(r->idx, txn, gather_blob, &g);
	kbv_index_rend(txn);
	kbv_index_release_pages(r->idx);
	TRY(rc);
	struct held *hv = (struct held *)g.blobs.data;
	const struct kbv_pack_info *packs = (const struct kbv_pack_info *)g.packs.data;
	const uint32_t *nos = (const uint32_t *)g.nos.data;
	size_t nv = g.blobs.len / sizeof *hv, np = g.packs.len / sizeof *packs;
	if (nv)
		qsort(hv, nv, sizeof *hv, cmp_held);
	/* packs are listed in pack-number order (the packs table's key order), blobs sorted
	 * the same way: one pass pairs them */
	size_t b = 0;
	uint32_t nparts = 0;
	for (size_t p = 0; p < np; p++) {
		while (b < nv && hv[b].packno < nos[p])
			b++; /* a blob of a pack the table lacks: not listed */
		size_t first = b;
		while (b < nv && hv[b].packno == nos[p])
			b++;
		struct kbv_buf e = KBV_BUF_INIT;
		for (size_t i = first; i < b && rc == 0; i++)
			rc = kbv_buf_add(&e, &hv[i].e, sizeof hv[i].e);
		if (rc == 0)
			rc = kbv_idxobj_add_pack(&parts, &packs[p], (const struct kbv_pack_entry *)e.data, b - first);
		kbv_buf_release(&e);
		TRY(rc);
		nparts++;
		if (parts.len >= KBV_IDXOBJ_MAX_BODY || p + 1 == np) {
			uint8_t id[KBV_ID_BYTES];
			TRY(put_object(r, nparts, &parts, id));
			TRY(names_add(&made, id));
			names_sort(&made);
			(*written)++;
			parts.len = 0;
			nparts = 0;
		}
	}
	/* everything remembered is in the cache, and so in what was just written */
	r->idx_pend.len = 0;
	r->idx_pend_packs = 0;
	/* the old ones go in one request (per 1000); the cache forgets them afterwards */
	size_t ngo = 0;
	for (size_t i = 0; i < old.n; i++) {
		if (names_has(&made, NAME(&old, i)))
			continue;
		/* Object Lock: one still retained stays until a later gc (what it lists beyond
		 * the bucket's packs is never merged: format/index.md, "Merging") */
		char hex[2 * KBV_ID_BYTES + 1];
		int64_t until;
		kbv_hex(NAME(&old, i), KBV_ID_BYTES, hex);
		int ret = kbv_repo_retained(r, KBV_OBJ_INDEX, hex, 0, &until);
		TRY(ret);
		if (!ret)
			memmove(NAME(&old, ngo++), NAME(&old, i), KBV_ID_BYTES);
	}
	if (ngo) {
		gone_names = calloc(ngo, sizeof *gone_names);
		gone_ptrs = calloc(ngo, sizeof *gone_ptrs);
		if (!gone_names || !gone_ptrs) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < ngo; i++) {
			kbv_hex(NAME(&old, i), KBV_ID_BYTES, gone_names[i]);
			gone_ptrs[i] = gone_names[i];
		}
		rc = kbv_be_remove_many(r->be, KBV_OBJ_INDEX, gone_ptrs, ngo);
		if (rc < 0) {
			kbv_error_prefix(rc, "gc: remove index objects");
			goto out;
		}
		TRY(kbv_index_mark_objs(r->idx, NULL, 0, (const uint8_t(*)[KBV_ID_BYTES])old.b.data, ngo));
		*removed = ngo;
	}
out:
	pthread_mutex_unlock(&r->idx_mu);
	free(gone_names);
	free(gone_ptrs);
	kbv_buf_release(&old.b);
	kbv_buf_release(&made.b);
	kbv_buf_release(&g.blobs);
	kbv_buf_release(&g.packs);
	kbv_buf_release(&g.nos);
	kbv_buf_release(&parts);
	return rc;
}

/* ---- refresh: index objects fetched ahead ----
 * A new host's first command merges every index object in the bucket; read one after
 * another they cost a round trip each. The next ones a refresh will read are fetched side
 * by side (store/ahead.h), at most: as many as the backend has connections (and
 * AHEAD_MOST), as many as packs are still wanted (each object of use gives at least one,
 * so no more can be), and AHEAD_BYTES of listed size (a compacted object holds up to
 * KBV_IDXOBJ_MAX_BODY before compression). */

enum { AHEAD_MOST = 16 };
#define AHEAD_BYTES (32u << 20)

/* A kbv_ahead_want_fn: whether the index object l->id is still to be merged (arg: the
 * repository). */
static int not_merged(void *arg, const struct kbv_meta_listed *l)
{
	struct kbv_repo *r = arg;
	MDB_txn *txn = NULL;
	int rc;
	if ((rc = kbv_index_rbegin(r->idx, &txn)) < 0)
		return rc;
	rc = kbv_index_obj_merged(r->idx, txn, l->id);
	kbv_index_rend(txn);
	return rc < 0 ? rc : !rc;
}

/* A kbv_ahead_want_fn: every object (a fill reads them all). */
static int every_obj(void *arg, const struct kbv_meta_listed *l)
{
	(void)arg;
	(void)l;
	return 1;
}

static void ahead_init(struct kbv_repo *r, struct kbv_ahead *a, kbv_ahead_want_fn want)
{
	unsigned most = kbv_backend_parallel(r->be);
	kbv_ahead_init(a, r->be, KBV_OBJ_INDEX, most < AHEAD_MOST ? most : AHEAD_MOST, AHEAD_BYTES, want, r);
}

/* ---- refresh: merging ---- */

static int cmp_want(const void *key, const void *elem)
{
	return memcmp(key, ((const struct kbv_want_pack *)elem)->id, KBV_PACKID_BYTES);
}

struct merge {
	struct kbv_repo *r;
	struct kbv_want_pack *want;
	size_t nwant, left;
	uint64_t added;
};

static int merge_pack(void *arg, const struct kbv_pack_info *info, const struct kbv_pack_entry *e, size_t n)
{
	struct merge *m = arg;
	struct kbv_want_pack *w = bsearch(info->id, m->want, m->nwant, sizeof *m->want, cmp_want);
	if (!w || !w->need || w->size != info->size)
		return 0; /* already cached, gone from the bucket (gc), or not what is there */
	int rc = kbv_index_add_packs_over(m->r->idx, info, &e, &n, 1, m->r->condemned, m->r->ncondemned);
	if (rc == 0) {
		w->need = 0;
		m->added++;
		m->left--;
	}
	return rc;
}

struct listed_objs {
	struct kbv_buf all; /* struct kbv_meta_listed, sorted */
	struct names stale; /* merged, but no longer in the bucket */
};

static int stale_obj(void *arg, const uint8_t id[KBV_ID_BYTES])
{
	struct listed_objs *lo = arg;
	return kbv_meta_listed_has(&lo->all, id) ? 0 : names_add(&lo->stale, id);
}

int kbv_repo_merge_index_objects(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_want_pack *want,
				 size_t nwant, uint64_t *objects, uint64_t *packs, uint64_t *damaged, char first_damaged[65])
{
	struct listed_objs lo = { KBV_BUF_INIT, NAMES_INIT };
	struct kbv_buf file = KBV_BUF_INIT, body = KBV_BUF_INIT;
	struct merge m = { r, want, nwant, 0, 0 };
	struct kbv_ahead a;
	MDB_txn *txn = NULL;
	int rc = 0;
	*objects = *packs = *damaged = 0;
	ahead_init(r, &a, not_merged);
	for (size_t k = 0; k < nwant; k++)
		m.left += want[k].need != 0;
	TRY(kbv_be_list(r->be, KBV_OBJ_INDEX, kbv_meta_listed_add, &lo.all));
	kbv_meta_listed_sort(&lo.all);
	const struct kbv_meta_listed *l = (const struct kbv_meta_listed *)lo.all.data;
	size_t nl = lo.all.len / sizeof *l;
	for (size_t i = 0; i < nl && m.left; i++) {
		char name[65];
		rc = not_merged(r, &l[i]);
		TRY(rc);
		if (rc == 0)
			continue; /* merged already */
		kbv_hex(l[i].id, KBV_ID_BYTES, name);
		rc = kbv_ahead_get(&a, l, i, nl, m.left, &file);
		if (rc == KBV_ENOTFOUND) { /* removed by a gc since the listing */
			rc = 0;
			continue;
		}
		TRY(rc);
		(*objects)++;
		rc = kbv_idxobj_open(r, codec, name, file.data, file.len, &body);
		if (rc == 0)
			rc = kbv_idxobj_parse(body.data, body.len, name, merge_pack, &m);
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
			/* An accelerator only: what it would have given comes from the trailers
			 * (the caller counts it; check names it). */
			if (!(*damaged)++)
				memcpy(first_damaged, name, 65);
			rc = 0;
			continue;
		}
		TRY(rc);
		TRY(kbv_index_mark_objs(r->idx, (const uint8_t(*)[KBV_ID_BYTES])l[i].id, 1, NULL, 0));
	}
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_obj(r->idx, txn, stale_obj, &lo);
	kbv_index_rend(txn);
	TRY(rc);
	TRY(kbv_index_mark_objs(r->idx, NULL, 0, (const uint8_t(*)[KBV_ID_BYTES])lo.stale.b.data, lo.stale.n));
	*packs = m.added;
out:
	kbv_ahead_release(&a);
	kbv_buf_release(&lo.all);
	kbv_buf_release(&lo.stale.b);
	kbv_buf_release(&file);
	kbv_buf_release(&body);
	return rc;
}

/* ---- refresh: filling locations lost with a dropped pack ---- */

struct packno_of {
	uint8_t id[KBV_PACKID_BYTES];
	uint32_t no;
	uint64_t size;
};

struct fill {
	struct kbv_repo *r;
	struct packno_of *v;
	size_t n, cap;
	uint64_t filled;
};

static int cmp_packno_of(const void *a, const void *b)
{
	return memcmp(a, b, KBV_PACKID_BYTES);
}

static int note_packno_of(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	struct fill *f = arg;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 256;
		struct packno_of *nv = realloc(f->v, cap * sizeof *nv);
		if (!nv)
			return kbv_error(KBV_ENOMEM, "out of memory");
		f->v = nv;
		f->cap = cap;
	}
	memcpy(f->v[f->n].id, info->id, KBV_PACKID_BYTES);
	f->v[f->n].no = packno;
	f->v[f->n++].size = info->size;
	return 0;
}

static int fill_pack(void *arg, const struct kbv_pack_info *info, const struct kbv_pack_entry *e, size_t n)
{
	struct fill *f = arg;
	struct packno_of *p = f->n ? bsearch(info->id, f->v, f->n, sizeof *f->v, cmp_packno_of) : NULL;
	if (!p || p->size != info->size)
		return 0; /* not in this cache, or not what is there */
	return kbv_index_fill(f->r->idx, p->no, e, n, &f->filled);
}

int kbv_repo_fill_from_index_objects(struct kbv_repo *r, struct kbv_codec *codec, uint64_t *filled)
{
	struct kbv_buf all = KBV_BUF_INIT, file = KBV_BUF_INIT, body = KBV_BUF_INIT;
	struct fill f = { .r = r };
	struct kbv_ahead a;
	MDB_txn *txn = NULL;
	int rc = 0;
	*filled = 0;
	ahead_init(r, &a, every_obj);
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_pack(r->idx, txn, note_packno_of, &f);
	kbv_index_rend(txn);
	TRY(rc);
	if (f.n)
		qsort(f.v, f.n, sizeof *f.v, cmp_packno_of);
	TRY(kbv_be_list(r->be, KBV_OBJ_INDEX, kbv_meta_listed_add, &all));
	kbv_meta_listed_sort(&all);
	const struct kbv_meta_listed *l = (const struct kbv_meta_listed *)all.data;
	size_t nl = all.len / sizeof *l;
	for (size_t i = 0; i < nl; i++) {
		char name[65];
		kbv_hex(l[i].id, KBV_ID_BYTES, name);
		rc = kbv_ahead_get(&a, l, i, nl, nl - i, &file);
		if (rc == KBV_ENOTFOUND) {
			rc = 0;
			continue;
		}
		TRY(rc);
		rc = kbv_idxobj_open(r, codec, name, file.data, file.len, &body);
		if (rc == 0)
			rc = kbv_idxobj_parse(body.data, body.len, name, fill_pack, &f);
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) { /* counted by the merge; check names it */
			rc = 0;
			continue;
		}
		TRY(rc);
	}
	*filled = f.filled;
out:
	kbv_ahead_release(&a);
	free(f.v);
	kbv_buf_release(&all);
	kbv_buf_release(&file);
	kbv_buf_release(&body);
	return rc;
}
