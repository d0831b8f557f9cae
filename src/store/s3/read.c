/* Objects read from S3: whole with one GET, or in ranges through read windows shared by
 * every reader of the backend (s3.h). */
#include "s3.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reader of an object whose size is known (from the index): no request yet. */
int s3_open_known(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t size,
			 struct kbv_be_rd **out)
{
	struct s3 *s = (struct s3 *)be;
	struct s3_rd *r = calloc(1, sizeof *r);
	if (!r)
		return kbv_error(KBV_ENOMEM, "out of memory");
	r->base.be = be;
	s3_obj_key(s, kind, name, r->key, sizeof r->key);
	r->size = size;
	*out = &r->base;
	return 0;
}

/* A reader of an object, its size from a HEAD (KBV_ENOTFOUND when it is missing). */
int s3_open(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out, uint64_t *size)
{
	struct s3 *s = (struct s3 *)be;
	struct kbv_be_rd *rd = NULL;
	int rc = s3_open_known(be, kind, name, 0, &rd);
	if (rc < 0)
		return rc;
	struct s3_rd *r = (struct s3_rd *)rd;
	struct req q = { .method = "HEAD", .key = r->key };
	rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->size = q.length;
	if (size)
		*size = r->size;
	*out = rd;
	return 0;
}

/* A whole object with one GET (manifests, keys, index objects: small, read whole). */
int s3_get(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	if (kind == KBV_OBJ_KEY && !name[0] && s3_key_take(s, out))
		return 0;
	s3_obj_key(s, kind, name, key, sizeof key);
	struct req q = { .method = "GET", .key = key, .out = out };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	if (rc < 0)
		out->len = 0;
	return rc;
}

static int get_range(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off);
static int get_range_upto(struct s3 *s, const char *key, void *p, size_t n, uint64_t off, size_t need, int once,
			  size_t *got);

/* The shared window of `key` holding [off, off + n), or the one being fetched that will;
 * under win_mu. */
static struct s3_win *win_find(struct s3 *s, const char *key, uint64_t off, size_t n, int busy)
{
	for (int i = 0; i < S3_WINDOWS; i++) {
		struct s3_win *w = &s->wins[i];
		size_t len = busy ? w->want : w->len;
		if (w->busy == busy && w->key[0] && off >= w->off && off + n <= w->off + len && !strcmp(w->key, key))
			return w;
	}
	return NULL;
}

/* Where a new window for a read at `off` begins and ends: on the grid of S3_WINDOW-sized
 * blocks, so that readers arriving in any order ask for the same ranges, and never over
 * bytes another window of the object holds or is fetching, so that no byte is fetched
 * twice while windows last. A read that reaches the object's end (a trailer) fetches only
 * what it asks for. Under win_mu; the window covers at least off. */
static void win_span(struct s3 *s, struct s3_rd *r, uint64_t off, size_t n, uint64_t *start, uint64_t *end)
{
	uint64_t a = off / S3_WINDOW * S3_WINDOW;
	if (off + n == r->size)
		a = off;
	uint64_t b = a + S3_WINDOW < r->size ? a + S3_WINDOW : r->size;
	for (int i = 0; i < S3_WINDOWS; i++) {
		struct s3_win *w = &s->wins[i];
		uint64_t wend = w->off + (w->busy ? w->want : w->len);
		if (!w->key[0] || wend == w->off || strcmp(w->key, r->key))
			continue;
		if (wend > a && wend <= off)
			a = wend;
		if (w->off > off && w->off < b)
			b = w->off;
	}
	*start = a;
	*end = b;
}

/* Take idle window w for r's bytes from `off` (n of them): placed by win_span, busy, [*a,
 * *b) being fetched for `ahead` (a read ahead) or for the reader itself; under win_mu. */
static void win_claim(struct s3 *s, struct s3_win *w, struct s3_rd *r, uint64_t off, size_t n, int ahead,
		      uint64_t *a, uint64_t *b)
{
	w->key[0] = 0; /* the window chosen is no longer what it held */
	win_span(s, r, off, n, a, b);
	snprintf(w->key, sizeof w->key, "%s", r->key);
	w->off = *a;
	w->want = (size_t)(*b - *a);
	w->len = 0;
	w->busy = 1;
	w->ahead = ahead;
}

/* Read-ahead. A reader that walks an object in order (a restore's walking thread, reading a
 * tree's small files one after another) asks for one window after another and waits a round
 * trip for each: over a network, a tree of small files restored at one window at a time was
 * slower than restic, which fetches several packs at once (docs/benchmarks.md, "Small files
 * from a distant bucket"). So once a reader's new window continues one the object already
 * has, the next S3_AHEAD windows of the object are fetched by threads of their own, and
 * each first read of a window fetched ahead keeps S3_AHEAD windows ahead of it. Near the
 * object's end they go on into the object the caller said it reads next (kbv_be_read_then:
 * the next pack), else a pass that reached the end goes on into the next object it starts
 * (pass_ended). A read at a random place fetches nothing more. A fetch ahead that fails
 * leaves no window: the reader that needs those bytes fetches them itself, and its
 * request's failure is the one it reports. */
struct ahead {
	struct s3 *s;
	struct s3_win *w;
	char key[512];
};

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	struct s3 *s = a->s;
	struct s3_win *w = a->w; /* busy: no one else touches it */
	size_t got = 0;
	/* One try, and whatever part of the range came: an object shorter than the size it was
	 * opened with, a reply that is not the range, a server that is busy are the reader's to
	 * meet (and to retry) when it gets there. */
	if (!(w->data || (w->data = malloc(S3_WINDOW))) ||
	    get_range_upto(s, a->key, w->data, w->want, w->off, 0, 1, &got) < 0)
		got = 0;
	pthread_mutex_lock(&s->win_mu);
	w->len = got;
	if (w->len == 0) {
		w->key[0] = 0;
		w->ahead = 0;
	}
	w->busy = 0;
	s->ahead_running--;
	pthread_cond_broadcast(&s->win_cv);
	pthread_mutex_unlock(&s->win_mu);
	free(a);
	return NULL;
}

/* The backend whose reader on this thread has just reached the end of an object read in
 * order: that reader's next window at the start of an object is read ahead too (a tree's
 * small files go on from one pack into the next; the first two windows of each were
 * otherwise waited for: 9-19% of such a restore 30 ms away). A read at the start of an
 * object that is not the next of a pass then fetches three windows more, once. */
static _Thread_local const struct s3 *pass_ended;

/* The window of `key` that holds or is fetching the byte at `off`; under win_mu. */
static struct s3_win *win_at(struct s3 *s, const char *key, uint64_t off)
{
	struct s3_win *w = win_find(s, key, off, 1, 0);
	return w ? w : win_find(s, key, off, 1, 1);
}

/* Is idle window o the one to take for a new window rather than w (NULL: none chosen yet)?
 * One read already before one fetched ahead and not read yet, then the least recently
 * used. */
static int take_before(const struct s3_win *o, const struct s3_win *w)
{
	return !w || (w->ahead && !o->ahead) || (w->ahead == o->ahead && o->used < w->used);
}

/* Keep S3_AHEAD windows of r's object fetched or being fetched from `from` on, then of the
 * object r->then when it names one, each where win_span puts a window for a read there;
 * under win_mu. An idle window is taken, the least recently used of those read already, else
 * of those fetched ahead for another object (a reader that left it for another). */
static void read_ahead(struct s3 *s, struct s3_rd *r, uint64_t from)
{
	const char *mine = r->key; /* its windows fetched ahead are not taken for the next */
	struct s3_rd then;
	if (from >= r->size)
		pass_ended = s;
	for (int n = 0; n < S3_AHEAD; n++) {
		if (from >= r->size) {
			if (r == &then || !r->then[0])
				return;
			then = (struct s3_rd){ .base = r->base, .size = r->then_size };
			memcpy(then.key, r->then, sizeof then.key);
			r = &then;
			from = 0;
			if (!r->size)
				return;
		}
		struct s3_win *w = win_at(s, r->key, from);
		if (w) {
			from = w->off + (w->busy ? w->want : w->len);
			continue;
		}
		if (s->ahead_running >= S3_AHEAD)
			return;
		for (int i = 0; i < S3_WINDOWS; i++) {
			struct s3_win *o = &s->wins[i];
			if (o->busy || (o->ahead && (!strcmp(o->key, r->key) || !strcmp(o->key, mine))))
				continue;
			if (take_before(o, w))
				w = o;
		}
		if (!w)
			return;
		struct ahead *a = malloc(sizeof *a);
		if (!a)
			return;
		uint64_t start, end;
		win_claim(s, w, r, from, 1, 1, &start, &end);
		a->s = s;
		a->w = w;
		snprintf(a->key, sizeof a->key, "%s", r->key);
		w->used = ++s->win_clock;
		s->ahead_running++;
		pthread_t th;
		pthread_attr_t at;
		int ok = 0;
		if (pthread_attr_init(&at) == 0) {
			ok = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
			     pthread_create(&th, &at, ahead_main, a) == 0;
			pthread_attr_destroy(&at);
		}
		if (!ok) { /* no thread: the reader fetches it when it gets there */
			w->key[0] = 0;
			w->busy = w->ahead = 0;
			s->ahead_running--;
			free(a);
			return;
		}
		from = end;
	}
}

void s3_read_then(struct kbv_be_rd *br, enum kbv_obj kind, const char *name, uint64_t size)
{
	struct s3_rd *r = (struct s3_rd *)br;
	struct s3 *s = (struct s3 *)br->be;
	s3_obj_key(s, kind, name, r->then, sizeof r->then);
	r->then_size = size;
}

/* One piece of a read, [off, off + n), inside one window: copied from the window that
 * holds it, else waited for while another reader fetches it, else fetched into a new one. */
static int win_read(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off, size_t *done)
{
	pthread_mutex_lock(&s->win_mu);
	struct s3_win *w;
	for (;;) {
		if ((w = win_find(s, r->key, off, 1, 0)) != NULL) {
			size_t k = w->off + w->len - off < n ? (size_t)(w->off + w->len - off) : n;
			memcpy(p, w->data + (off - w->off), k);
			w->used = ++s->win_clock;
			if (w->ahead) { /* the reader got here: keep the next windows coming */
				w->ahead = 0;
				read_ahead(s, r, w->off + w->len);
			}
			pthread_mutex_unlock(&s->win_mu);
			*done = k;
			return 0;
		}
		if (!win_find(s, r->key, off, 1, 1))
			break;
		pthread_cond_wait(&s->win_cv, &s->win_mu);
	}
	for (int i = 0; i < S3_WINDOWS; i++) /* an idle one, one read already if any */
		if (!s->wins[i].busy && take_before(&s->wins[i], w))
			w = &s->wins[i];
	if (!w) { /* every window is being fetched: this read goes alone */
		pthread_mutex_unlock(&s->win_mu);
		*done = n;
		return get_range(s, r, p, n, off);
	}
	uint64_t a, b;
	win_claim(s, w, r, off, n, 0, &a, &b);
	/* it continues a window (not this one: it begins at a), or starts the object after one
	 * read in order to its end */
	int in_order = a > 0 ? win_at(s, r->key, a - 1) != NULL : pass_ended == s;
	if (a == 0 && pass_ended == s)
		pass_ended = NULL;
	if (in_order)
		read_ahead(s, r, b);
	pthread_mutex_unlock(&s->win_mu);
	size_t need = off + n < b ? (size_t)(off + n - a) : w->want, got = 0;
	int rc = 0;
	if (!w->data && !(w->data = malloc(S3_WINDOW)))
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	/* The window may reach past the object's real end when its size came from the index
	 * (kbv_be_open_known) and the object is shorter: the server sends what there is, and
	 * only the bytes asked for must have come. */
	if (rc == 0)
		rc = get_range_upto(s, r->key, w->data, w->want, a, need, 0, &got);
	pthread_mutex_lock(&s->win_mu);
	size_t k = (size_t)(a + need - off);
	if (rc == 0)
		memcpy(p, w->data + (off - a), k);
	w->len = rc == 0 ? got : 0;
	if (rc < 0)
		w->key[0] = 0;
	w->busy = 0;
	w->used = ++s->win_clock;
	pthread_cond_broadcast(&s->win_cv);
	pthread_mutex_unlock(&s->win_mu);
	*done = k;
	return rc;
}

/* A read past the object's size (as opened) is damage, found before any request. */
static int past_end(struct s3 *s, struct s3_rd *r, size_t n, uint64_t off)
{
	if (off + n <= r->size)
		return 0;
	return kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated: %llu bytes, a read of %zu at %llu", s->bucket,
			 r->key, (unsigned long long)r->size, n, (unsigned long long)off);
}

int s3_read_once(struct kbv_be_rd *br, void *p, size_t n, uint64_t off)
{
	struct s3_rd *r = (struct s3_rd *)br;
	struct s3 *s = (struct s3 *)br->be;
	int rc = past_end(s, r, n, off);
	return rc < 0 || n == 0 ? rc : get_range(s, r, p, n, off);
}

int s3_read(struct kbv_be_rd *br, void *p, size_t n, uint64_t off)
{
	struct s3_rd *r = (struct s3_rd *)br;
	struct s3 *s = (struct s3 *)br->be;
	if (n == 0)
		return 0;
	int rc = past_end(s, r, n, off);
	if (rc < 0)
		return rc;
	if (n >= S3_WINDOW)
		return get_range(s, r, p, n, off);
	/* Piece by piece, each inside one shared window. */
	while (n > 0) {
		size_t k;
		rc = win_read(s, r, p, n, off, &k);
		if (rc < 0)
			return rc;
		p = (uint8_t *)p + k;
		off += k;
		n -= k;
	}
	return 0;
}

/* Exactly n bytes at off into p, with one ranged GET. */
static int get_range(struct s3 *s, struct s3_rd *r, void *p, size_t n, uint64_t off)
{
	size_t got;
	return get_range_upto(s, r->key, p, n, off, n, 0, &got);
}

/* Up to n bytes at off into p (*got of them), with one ranged GET (one try with `once`,
 * else retried as s3_do retries); fewer than need of them is KBV_ECORRUPT (the object is
 * shorter than it should be). */
static int get_range_upto(struct s3 *s, const char *key, void *p, size_t n, uint64_t off, size_t need, int once,
			  size_t *got)
{
	char range[80];
	snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + n - 1));
	struct req q = { .method = "GET", .key = key, .dst = p, .dst_cap = n, .hdr = { range }, .once = once };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 416)
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated (a read of %zu bytes at %llu)", s->bucket,
			       key, n, (unsigned long long)off);
	else if (rc == 0 && q.status == 404) /* opened, or known from the index: it was there */
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is gone (HTTP 404 %s)", s->bucket, key,
			       *q.code ? q.code : "NotFound");
	else if (rc == 0 && q.status != 206 && q.status != 200)
		rc = s3_fail(s, &q);
	else if (rc == 0 && q.status == 200 && off > 0) /* the whole object: its bytes from 0 on */
		rc = kbv_error(KBV_EIO, "s3 object %s/%s: a read at %llu was answered with the whole object (HTTP 200)",
			       s->bucket, key, (unsigned long long)off);
	else if (rc == 0 && q.dst_len < need)
		rc = kbv_error(KBV_ECORRUPT, "s3 object %s/%s is truncated: %zu of %zu bytes at %llu came", s->bucket,
			       key, q.dst_len, need, (unsigned long long)off);
	*got = q.dst_len;
	kbv_buf_release(&q.err);
	return rc;
}

void s3_close(struct kbv_be_rd *br) { free(br); }
