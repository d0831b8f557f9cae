/* gc's mark (engine/gc_impl.h): the live set, the sorted 64-bit prefixes of every blob a
 * kept snapshot references, and the walk of each snapshot's trees that fills it (shared
 * subtrees once). */
#include "engine/gc_impl.h"
#include "kbv/error.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"

#include <stdlib.h>
#include <string.h>

/* ---- the live set: sorted 64-bit id prefixes ---- */

uint64_t gc_prefix(const uint8_t *id)
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

void gc_live_compact(struct live *l)
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
		gc_live_compact(l); /* duplicates (chunks shared by snapshots) go first */
		if (l->cap == 0 || l->n > l->cap / 2) {
			size_t cap = l->cap ? 2 * l->cap : 1 << 16;
			uint64_t *nv = realloc(l->v, cap * sizeof *nv);
			if (!nv)
				return kbv_error(KBV_ENOMEM, "out of memory (live set of %zu blobs)", l->n);
			l->v = nv;
			l->cap = cap;
		}
	}
	l->v[l->n++] = gc_prefix(id);
	return 0;
}

/* Position of the id's prefix in the live set, or -1. */
long gc_live_find(const struct live *l, const uint8_t *id)
{
	uint64_t key = gc_prefix(id);
	if (!l->uniq)
		return -1;
	const uint64_t *p = bsearch(&key, l->v, l->uniq, sizeof *l->v, cmp_u64);
	return p ? (long)(p - l->v) : -1;
}

/* ---- mark ---- */

int gc_mark_id(void *arg, int type, const uint8_t id[KBV_ID_BYTES])
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

int gc_tree_marked(void *arg, const uint8_t id[KBV_ID_BYTES])
{
	return kbv_idset_has(arg, id);
}

int gc_mark_snapshot(struct mark *m, struct kbv_reader *rd, struct kbv_snapshot *s)
{
	char hex[2 * KBV_ID_BYTES + 1];
	int rc = 0;
	kbv_hex(s->id, KBV_ID_BYTES, hex);
	hex[12] = 0;
	m->snap = hex;
	if (s->table_ref.depth != KBV_REF_EMPTY)
		TRY(kbv_reader_visit(rd, &s->table_ref, gc_mark_id, m));
	TRY(kbv_snapshot_load_entries(rd, s));
	for (size_t i = 0; i < s->nloaded; i++)
		if (s->entries[i].ref.depth != KBV_REF_EMPTY)
			TRY(kbv_reader_visit(rd, &s->entries[i].ref, gc_mark_id, m));
out:
	return rc;
}
