/* gc's deletion plans (format/repository.md, "Many writers and gc"). */
#include "store/plan.h"
#include "store/metacache.h"

#include "kbv/error.h"
#include "store/sealed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_PACK 24 /* pack id, u64 size */

int kbv_plan_seal(const struct kbv_repo *r, struct kbv_codec *codec, uint32_t delay,
		  const uint8_t (*packs)[KBV_PACKID_BYTES], const uint64_t *sizes, size_t n, char name[65],
		  struct kbv_buf *file)
{
	struct kbv_buf body = KBV_BUF_INIT;
	int rc = 0;
	if (n == 0 || n > UINT32_MAX)
		return kbv_error(KBV_EINVAL, "a plan names 1 to 2^32-1 packs, not %zu", n);
	TRY(kbv_buf_add_u32(&body, delay));
	TRY(kbv_buf_add_u32(&body, (uint32_t)n));
	for (size_t i = 0; i < n; i++) {
		TRY(kbv_buf_add(&body, packs[i], KBV_PACKID_BYTES));
		TRY(kbv_buf_add_u64(&body, sizes[i]));
	}
	TRY(kbv_sealed_make(r, codec, "KBVPLAN\0", KBV_BLOB_PLAN, &body, name, file));
out:
	kbv_buf_release(&body);
	return rc;
}

int kbv_plan_open(const struct kbv_repo *r, struct kbv_codec *codec, const char *name, const uint8_t *file,
		  size_t len, struct kbv_plan *p)
{
	struct kbv_buf body = KBV_BUF_INIT;
	memset(p, 0, sizeof *p);
	int rc = kbv_sealed_open(r, codec, "KBVPLAN\0", KBV_BLOB_PLAN, "plan", name, file, len, &body);
	if (rc == 0)
		rc = kbv_plan_parse(body.data, body.len, name, p);
	if (rc == 0)
		kbv_unhex(name, p->id, KBV_ID_BYTES);
	kbv_buf_release(&body);
	if (rc < 0)
		kbv_plan_release(p);
	return rc;
}

int kbv_plan_parse(const uint8_t *b, size_t len, const char *what, struct kbv_plan *p)
{
	if (len < 8 || kbv_get32(b + 4) == 0 || (len - 8) / PLAN_PACK != kbv_get32(b + 4) || (len - 8) % PLAN_PACK)
		return kbv_error(KBV_ECORRUPT, "plan '%s' is damaged (its length does not match its pack count)", what);
	p->delay = kbv_get32(b);
	p->npacks = kbv_get32(b + 4);
	p->packs = malloc(p->npacks * sizeof *p->packs);
	p->sizes = malloc(p->npacks * sizeof *p->sizes);
	if (!p->packs || !p->sizes) {
		kbv_plan_release(p);
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < p->npacks; i++) {
		memcpy(p->packs[i], b + 8 + i * PLAN_PACK, KBV_PACKID_BYTES);
		p->sizes[i] = kbv_get64(b + 8 + i * PLAN_PACK + KBV_PACKID_BYTES);
	}
	return 0;
}

void kbv_plan_release(struct kbv_plan *p)
{
	free(p->packs);
	free(p->sizes);
	p->packs = NULL;
	p->sizes = NULL;
	p->npacks = 0;
}

/* ---- the plans of a repository ---- */

struct listed_plan {
	char name[65];
	uint8_t id[KBV_ID_BYTES];
	int64_t time;
	uint64_t size;
};

#define LISTED(l, i) (&((struct listed_plan *)(l)->b.data)[i])

static int on_plan(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct kbv_plans_listed *l = arg;
	struct listed_plan p = { .time = mtime, .size = size };
	snprintf(p.name, sizeof p.name, "%s", name);
	if (kbv_unhex(name, p.id, KBV_ID_BYTES) < 0)
		return 0;
	int rc = kbv_buf_add(&l->b, &p, sizeof p);
	if (rc == 0)
		l->n++;
	return rc;
}

static int plan_listed(void *arg, const uint8_t id[KBV_ID_BYTES])
{
	const struct kbv_plans_listed *l = arg;
	for (size_t i = 0; i < l->n; i++)
		if (!memcmp(LISTED(l, i)->id, id, KBV_ID_BYTES))
			return 1;
	return 0;
}

static int list_plans(struct kbv_repo *r, struct kbv_plans_listed *l, int64_t *now)
{
	int rc = kbv_be_list(r->be, KBV_OBJ_PLAN, on_plan, l);
	/* A directory's clock is read by creating a file: not needed without plans (status on
	 * a repository this user may not write to) */
	*now = 0;
	if (rc == 0 && (l->n || !(kbv_backend_features(r->be) & KBV_BE_LOCAL)))
		rc = kbv_be_clock(r->be, now);
	if (rc < 0)
		kbv_error_prefix(rc, "list gc's deletion plans");
	return rc;
}

static int cmp_packid(const void *a, const void *b)
{
	return memcmp(a, b, KBV_PACKID_BYTES);
}

/* A plan the listing just returned: from this host's metadata cache when it holds the
 * object with the listed size (a plan is written once, never changed), else a GET that
 * the cache then keeps. Either way it is authenticated here. */
static int read_one(struct kbv_repo *r, struct kbv_codec *codec, const struct listed_plan *lp, struct kbv_buf *file,
		    struct kbv_plan *p)
{
	int rc = kbv_meta_on(r) ? kbv_meta_get(r, KBV_META_PLAN, lp->id, file) : 0;
	if (rc < 0)
		return rc;
	if (rc == 0 || file->len != lp->size) {
		if ((rc = kbv_be_get(r->be, KBV_OBJ_PLAN, lp->name, file)) < 0)
			return rc;
		rc = kbv_plan_open(r, codec, lp->name, file->data, file->len, p);
		if (rc == 0 && kbv_meta_on(r))
			kbv_meta_put(r, KBV_META_PLAN, lp->id, file->data, file->len);
		return rc;
	}
	return kbv_plan_open(r, codec, lp->name, file->data, file->len, p);
}

int kbv_plans_list(struct kbv_repo *r, struct kbv_plans_listed *l)
{
	memset(l, 0, sizeof *l);
	int rc = list_plans(r, l, &l->now);
	if (rc < 0)
		kbv_plans_listed_release(l);
	return rc;
}

void kbv_plans_listed_release(struct kbv_plans_listed *l)
{
	kbv_buf_release(&l->b);
	l->n = 0;
}

int kbv_plans_read(struct kbv_repo *r, struct kbv_plans *out)
{
	struct kbv_plans_listed l;
	memset(out, 0, sizeof *out);
	int rc = kbv_plans_list(r, &l);
	return rc < 0 ? rc : kbv_plans_read_listed(r, &l, out);
}

int kbv_plans_read_listed(struct kbv_repo *r, struct kbv_plans_listed *lp_all, struct kbv_plans *out)
{
	struct kbv_plans_listed l = *lp_all;
	struct kbv_buf file = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	int rc = 0;
	memset(lp_all, 0, sizeof *lp_all); /* taken over: released below */
	memset(out, 0, sizeof *out);
	out->now = l.now;
	if (kbv_meta_on(r)) /* plans gone from the bucket leave the cache */
		kbv_meta_retain(r, KBV_META_PLAN, plan_listed, &l);
	if (!l.n)
		goto out;
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	out->v = calloc(l.n, sizeof *out->v);
	if (!codec || !out->v) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	size_t total = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct kbv_plan *p = &out->v[out->n];
		rc = read_one(r, codec, LISTED(&l, i), &file, p);
		if (rc == KBV_ENOTFOUND) { /* removed by gc since the listing: its packs are gone */
			out->gone++;
			rc = 0;
			continue;
		}
		if (rc == KBV_EVERSION) {
			if (!out->unknown++)
				snprintf(out->unknown_name, sizeof out->unknown_name, "%s", LISTED(&l, i)->name);
			rc = 0;
			continue;
		}
		if (rc == KBV_ECORRUPT) { /* gc does not act on it either */
			if (!out->damaged++)
				snprintf(out->damaged_name, sizeof out->damaged_name, "%s", LISTED(&l, i)->name);
			rc = 0;
			continue;
		}
		TRY(rc);
		p->time = LISTED(&l, i)->time;
		total += p->npacks;
		out->n++;
	}
	out->all = malloc((total + 1) * sizeof *out->all);
	if (!out->all) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < out->n; i++)
		for (size_t k = 0; k < out->v[i].npacks; k++)
			memcpy(out->all[out->nall++], out->v[i].packs[k], KBV_PACKID_BYTES);
	if (out->nall)
		qsort(out->all, out->nall, sizeof *out->all, cmp_packid);
out:
	kbv_codec_free(codec);
	kbv_buf_release(&file);
	kbv_buf_release(&l.b);
	if (rc < 0)
		kbv_plans_release(out);
	return rc;
}

void kbv_plans_release(struct kbv_plans *p)
{
	for (size_t i = 0; i < p->n; i++)
		kbv_plan_release(&p->v[i]);
	free(p->v);
	free(p->all);
	memset(p, 0, sizeof *p);
}

int kbv_plans_usable(const struct kbv_plans *p)
{
	if (!p->unknown)
		return 0;
	return kbv_error(KBV_EVERSION,
			 "deletion plan '%s' has a version this kbvault does not read: a newer kbvault's gc may act "
			 "on it; upgrade before writing to this repository",
			 p->unknown_name);
}

int kbv_plans_has(const struct kbv_plans *p, const uint8_t id[KBV_PACKID_BYTES])
{
	return p->nall && bsearch(id, p->all, p->nall, sizeof *p->all, cmp_packid) != NULL;
}

struct packnos {
	const struct kbv_plans *p;
	uint32_t *v;
	size_t n, cap;
};

static int note_packno(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	struct packnos *c = arg;
	if (!kbv_plans_has(c->p, info->id))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		uint32_t *n = realloc(c->v, cap * sizeof *n);
		if (!n)
			return kbv_error(KBV_ENOMEM, "out of memory");
		c->v = n;
		c->cap = cap;
	}
	c->v[c->n++] = packno;
	return 0;
}

int kbv_plans_packnos(struct kbv_repo *r, const struct kbv_plans *p, uint32_t **out, size_t *n)
{
	struct packnos c = { .p = p };
	MDB_txn *txn = NULL;
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (!p->nall)
		return 0;
	TRY(kbv_index_rbegin(r->idx, &txn));
	rc = kbv_index_each_pack(r->idx, txn, note_packno, &c); /* in key order: sorted */
	kbv_index_rend(txn);
	if (rc < 0) {
		free(c.v);
		return rc;
	}
	*out = c.v;
	*n = c.n;
out:
	return rc;
}

int kbv_plan_ripe(const struct kbv_plans *p, size_t i)
{
	return p->now >= p->v[i].time + (int64_t)p->v[i].delay;
}

int kbv_plan_put(struct kbv_repo *r, uint32_t delay, const uint8_t (*packs)[KBV_PACKID_BYTES],
		 const uint64_t *sizes, size_t n)
{
	struct kbv_buf file = KBV_BUF_INIT;
	struct kbv_codec *codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	char name[65];
	int rc = 0;
	if (!codec)
		return kbv_error(KBV_ENOMEM, "out of memory");
	TRY(kbv_plan_seal(r, codec, delay, packs, sizes, n, name, &file));
	rc = kbv_be_put(r->be, KBV_OBJ_PLAN, name, file.data, file.len, KBV_PUT_EXCL);
	if (rc == KBV_EEXIST) /* named by its content: the same plan is there already */
		rc = 0;
	if (rc < 0)
		kbv_error_prefix(rc, "write deletion plan");
out:
	kbv_codec_free(codec);
	kbv_buf_release(&file);
	return rc;
}

int kbv_plans_remove(struct kbv_repo *r, const uint8_t (*ids)[KBV_ID_BYTES], size_t n)
{
	char(*names)[65] = calloc(n + 1, sizeof *names);
	const char **ptrs = calloc(n + 1, sizeof *ptrs);
	int rc = 0;
	if (!names || !ptrs) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		kbv_hex(ids[i], KBV_ID_BYTES, names[i]);
		ptrs[i] = names[i];
	}
	if (n && (rc = kbv_be_remove_many(r->be, KBV_OBJ_PLAN, ptrs, n)) < 0)
		kbv_error_prefix(rc, "remove deletion plans");
out:
	free(names);
	free(ptrs);
	return rc;
}

static int seen_before(const struct kbv_plans *seen, const uint8_t id[KBV_ID_BYTES])
{
	for (size_t i = 0; seen && i < seen->n; i++)
		if (!memcmp(seen->v[i].id, id, KBV_ID_BYTES))
			return 1;
	return 0;
}

int kbv_plans_check_commit(struct kbv_repo *r, const struct kbv_plans *seen)
{
	struct kbv_plans_listed l = { 0 };
	struct kbv_buf file = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	struct kbv_plan p = { 0 };
	int64_t now = 0;
	int rc = 0;
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL)
		return 0;
	TRY(list_plans(r, &l, &now));
	if (seen && now - seen->now >= KBV_PLAN_KEEP) {
		rc = kbv_error(KBV_ELOCKED,
			       "this snapshot ran for %lld s by the storage's clock, longer than the %d s after which "
			       "gc forgets its deletion plans: it is not committed",
			       (long long)(now - seen->now), KBV_PLAN_KEEP);
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct listed_plan *lp = LISTED(&l, i);
		if (seen_before(seen, lp->id))
			continue;
		if (!codec && !(codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level))) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		rc = read_one(r, codec, lp, &file, &p);
		if (rc == KBV_ENOTFOUND || rc == KBV_ECORRUPT) { /* gone, or not acted on */
			rc = 0;
			continue;
		}
		TRY(rc);
		int64_t deadline = lp->time + (int64_t)(p.delay / 2);
		kbv_plan_release(&p);
		if (now >= deadline) {
			rc = kbv_error(KBV_ELOCKED,
				       "gc condemned packs while this snapshot ran (deletion plan %.16s, written %lld s ago "
				       "by the storage's clock, delay %u s): the snapshot may use them, so it is not "
				       "committed; run it again",
				       lp->name, (long long)(now - lp->time), p.delay);
			goto out;
		}
	}
out:
	kbv_plan_release(&p);
	kbv_codec_free(codec);
	kbv_buf_release(&file);
	kbv_buf_release(&l.b);
	return rc;
}
