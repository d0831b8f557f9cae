/* Objects of a listing fetched side by side, ahead of their reading (ahead.h). */
#include "store/ahead.h"
#include "kbv/blob.h"
#include "store/metacache.h"

void kbv_ahead_init(struct kbv_ahead *a, struct kbv_backend *be, enum kbv_obj obj, size_t most, uint64_t bytes,
		    kbv_ahead_want_fn want, void *arg)
{
	*a = (struct kbv_ahead){ .be = be, .obj = obj, .bytes = bytes, .want = want, .arg = arg };
	a->most = most < KBV_AHEAD_MOST ? most : KBV_AHEAD_MOST;
}

static void drop_run(struct kbv_ahead *a)
{
	for (size_t k = a->next; k < a->n; k++)
		kbv_buf_release(&a->buf[k]);
	a->n = a->next = 0;
}

void kbv_ahead_release(struct kbv_ahead *a)
{
	drop_run(a);
}

/* A run from l[i]: 1 fetched (a->at/buf hold those whose fetch succeeded), 0 none (one
 * object, a local backend, or every fetch failed), <0 want()'s error. */
static int fetch_run(struct kbv_ahead *a, const struct kbv_meta_listed *l, size_t i, size_t n, size_t left)
{
	char hex[KBV_AHEAD_MOST][2 * KBV_ID_BYTES + 1];
	const char *names[KBV_AHEAD_MOST];
	size_t most = a->most < left ? a->most : left, m = 0;
	uint64_t bytes = 0;
	int rc;
	if (most < 2 || kbv_backend_parallel(a->be) < 2)
		return 0;
	for (size_t j = i; j < n && m < most; j++) {
		if (m && a->bytes && bytes + l[j].size > a->bytes)
			break;
		if (j > i && (rc = a->want(a->arg, &l[j])) <= 0) {
			if (rc < 0)
				return rc;
			continue;
		}
		kbv_hex(l[j].id, KBV_ID_BYTES, hex[m]);
		names[m] = hex[m];
		a->at[m++] = j;
		bytes += l[j].size;
	}
	if (m < 2)
		return 0; /* one: the caller's GET */
	a->end = a->at[m - 1] + 1;
	/* Those fetched are held; one that failed, or was not fetched after a failure, gets
	 * its own GET when asked for (up to a->end no other run starts). */
	int rcs[KBV_AHEAD_MOST];
	kbv_be_get_many(a->be, a->obj, names, m, a->buf, rcs);
	size_t held = 0;
	for (size_t k = 0; k < m; k++) {
		if (rcs[k] != 0) {
			kbv_buf_release(&a->buf[k]);
			continue;
		}
		if (held != k) {
			a->at[held] = a->at[k];
			a->buf[held] = a->buf[k];
			a->buf[k] = (struct kbv_buf)KBV_BUF_INIT;
		}
		held++;
	}
	a->n = held;
	return held > 0;
}

int kbv_ahead_get(struct kbv_ahead *a, const struct kbv_meta_listed *l, size_t i, size_t n, size_t left,
		  struct kbv_buf *file)
{
	char name[2 * KBV_ID_BYTES + 1];
	while (a->next < a->n && a->at[a->next] < i) /* passed: no longer wanted */
		kbv_buf_release(&a->buf[a->next++]);
	if (a->next == a->n) {
		drop_run(a);
		if (i >= a->end) {
			int rc = fetch_run(a, l, i, n, left);
			if (rc < 0)
				return rc;
		}
	}
	if (a->next < a->n && a->at[a->next] == i) {
		kbv_buf_release(file);
		*file = a->buf[a->next];
		a->buf[a->next++] = (struct kbv_buf)KBV_BUF_INIT;
		return 0;
	}
	kbv_hex(l[i].id, KBV_ID_BYTES, name);
	return kbv_be_get(a->be, a->obj, name, file);
}
