/* Objects written to S3: a buffer per object sent with one atomic PUT; packs uploaded by
 * their own threads (s3.h). */
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

int s3_create(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out)
{
	struct s3_wr *w = calloc(1, sizeof *w);
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	w->base.be = be;
	w->kind = kind;
	s3_obj_key((struct s3 *)be, kind, name, w->key, sizeof w->key);
	*out = &w->base;
	return 0;
}

int s3_append(struct kbv_be_wr *bw, const void *p, size_t n)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	return kbv_buf_add(&w->data, p, n);
}

/* One PUT of a whole object (create-if-absent with KBV_PUT_EXCL, retained with
 * S3_PUT_RETAIN). */
int s3_put_object(struct s3 *s, const char *key, const struct kbv_buf *data, unsigned flags)
{
	struct req q = { .method = "PUT", .key = key, .body = data->data, .len = data->len };
	char mode[64], until[96], sums[160];
	size_t h = 0;
	/* Written with other credentials than the bucket owner's (an append-only host), an
	 * object is its writer's on Ceph RGW and on AWS buckets that keep ACLs: the owner's
	 * hosts could not read it. This canned ACL gives the owner the object; AWS buckets
	 * without ACLs (the default) accept it as the only ACL they take. */
	q.hdr[h++] = "x-amz-acl: bucket-owner-full-control";
	if (flags & KBV_PUT_EXCL)
		q.hdr[h++] = "If-None-Match: *";
	if ((flags & S3_PUT_RETAIN) && s->lock_secs > 0) {
		/* Retained from the storage's clock (its latest reply's Date plus the time
		 * passed since; ours only before any reply): a host whose clock is off neither
		 * shortens nor stretches it. AWS refuses a retained PUT without a checksum of
		 * the body. */
		char t[40];
		s3_iso_time(s3_now(s) + s->lock_secs, t, sizeof t);
		snprintf(mode, sizeof mode, "x-amz-object-lock-mode: COMPLIANCE");
		snprintf(until, sizeof until, "x-amz-object-lock-retain-until-date: %s", t);
		q.hdr[h++] = mode;
		q.hdr[h++] = until;
		s3_checksum_headers(&q, h, sums, sizeof sums);
		h += 2;
	}
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status == 412 && q.retried) {
		/* The connection broke during an earlier try: that PUT may have been applied, and
		 * this one found its object. Ours when it holds exactly our bytes. */
		struct kbv_buf got = KBV_BUF_INIT;
		struct req g = { .method = "GET", .key = key, .out = &got };
		if (s3_do(s, &g) == 0 && g.status == 200 && got.len == data->len &&
		    (!got.len || !memcmp(got.data, data->data, got.len)))
			q.status = 200;
		kbv_buf_release(&g.err);
		kbv_buf_release(&got);
	}
	if (rc == 0 && (q.status < 200 || q.status >= 300))
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}

/* A pack uploaded by its own thread (KBV_COMMIT_ASYNC). */
struct upload {
	pthread_t th;
	struct s3 *s;
	char key[512];
	struct kbv_buf data;
	unsigned flags;
	int rc;
	char err[1024]; /* its message: errors are per thread */
};

static void *upload_main(void *arg)
{
	struct upload *u = arg;
	u->rc = s3_put_object(u->s, u->key, &u->data, u->flags);
	if (u->rc < 0)
		snprintf(u->err, sizeof u->err, "%s", kbv_errmsg());
	kbv_buf_release(&u->data);
	return NULL;
}

/* Wait for the oldest upload (s->up_mu held). A failure is kept for every later sync and
 * raised in this thread. */
static int join_oldest(struct s3 *s)
{
	struct upload *u = s->up[0];
	memmove(s->up, s->up + 1, (s->nup - 1) * sizeof *s->up);
	s->nup--;
	pthread_join(u->th, NULL);
	if (u->rc < 0 && s->up_rc == 0) {
		s->up_rc = u->rc;
		snprintf(s->up_err, sizeof s->up_err, "%s", u->err);
	}
	free(u);
	return s->up_rc < 0 ? kbv_error(s->up_rc, "%s", s->up_err) : 0;
}

int s3_sync(struct kbv_backend *be)
{
	struct s3 *s = (struct s3 *)be;
	int rc = 0;
	pthread_mutex_lock(&s->up_mu);
	while (s->nup) {
		int r = join_oldest(s);
		if (r < 0 && rc == 0)
			rc = r;
	}
	if (rc == 0 && s->up_rc < 0)
		rc = kbv_error(s->up_rc, "%s", s->up_err);
	pthread_mutex_unlock(&s->up_mu);
	return rc;
}

int s3_commit(struct kbv_be_wr *bw, unsigned flags)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	struct s3 *s = (struct s3 *)bw->be;
	int rc = 0;
	unsigned put = (flags & KBV_PUT_EXCL) | (kbv_obj_retained(w->kind) ? S3_PUT_RETAIN : 0);
	if (w->kind == KBV_OBJ_KEY) /* the bytes kept from the listing may be these no more */
		s3_key_forget(s);
	if (!(flags & KBV_COMMIT_ASYNC) || (flags & KBV_PUT_EXCL) || s->conns < 2)
		return s3_put_object(s, w->key, &w->data, put);
	/* At most `conns` uploads at a time, each holding its pack: memory stays bounded. */
	pthread_mutex_lock(&s->up_mu);
	while (s->nup >= (size_t)s->conns) {
		int r = join_oldest(s);
		if (r < 0 && rc == 0)
			rc = r;
	}
	if (rc == 0 && s->up_rc < 0)
		rc = kbv_error(s->up_rc, "%s", s->up_err);
	struct upload *u = rc == 0 ? calloc(1, sizeof *u) : NULL;
	if (rc == 0 && !u)
		rc = kbv_error(KBV_ENOMEM, "out of memory");
	if (rc == 0) {
		u->s = s;
		u->flags = put;
		snprintf(u->key, sizeof u->key, "%s", w->key);
		u->data = w->data; /* taken over: the writer's discard frees nothing more */
		memset(&w->data, 0, sizeof w->data);
		if (pthread_create(&u->th, NULL, upload_main, u) != 0) {
			rc = s3_put_object(s, u->key, &u->data, put); /* no thread: upload it here */
			kbv_buf_release(&u->data);
			free(u);
		} else {
			s->up[s->nup++] = u;
		}
	}
	pthread_mutex_unlock(&s->up_mu);
	return rc;
}

void s3_discard(struct kbv_be_wr *bw)
{
	struct s3_wr *w = (struct s3_wr *)bw;
	kbv_buf_release(&w->data);
	free(w);
}
