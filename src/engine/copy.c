/* Copy snapshots between repositories (restic's `copy`): every stream is read from the
 * source (each blob authenticated, the stream's hash checked), stored through the target's
 * own writer (its chunker, keys and dedup: only what the target lacks is uploaded), and
 * checked again against the hash the source recorded before the target's manifest is
 * written. A snapshot is the same snapshot when its time, host, tags and entries (names,
 * kinds, sizes, content hashes) are: the target's copy gets a new id, so copying twice
 * is recognised by content, and copies nothing the second time. */
#include "kbv/copy.h"
#include "kbv/error.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes to copy: a stream that is not empty. */
static int has_data(const struct kbv_entry *e)
{
	return kbv_entry_has_data(e) && e->size > 0 && e->ref.depth != KBV_REF_EMPTY;
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Do a and b (entries loaded) hold the same snapshot? */
static int same(const struct kbv_snapshot *a, const struct kbv_snapshot *b)
{
	if (a->time != b->time || a->nsec != b->nsec || !str_eq(a->host, b->host) || a->ntags != b->ntags ||
	    a->nloaded != b->nloaded || a->total_size != b->total_size || a->nsources != b->nsources)
		return 0;
	for (size_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i], b->tags[i]))
			return 0;
	for (size_t i = 0; i < a->nloaded; i++) {
		const struct kbv_entry *x = &a->entries[i], *y = &b->entries[i];
		if (x->kind != y->kind || strcmp(x->name, y->name) || x->size != y->size || x->mode != y->mode ||
		    !str_eq(x->target, y->target) || (has_data(x) && !kbv_digest_equal(&x->hash, &y->hash)))
			return 0;
	}
	return 1;
}

int kbv_copy_find(struct kbv_reader *dst_rd, struct kbv_snapshot **dst, size_t ndst, const struct kbv_snapshot *s,
		  struct kbv_snapshot **found)
{
	*found = NULL;
	for (size_t i = 0; i < ndst && !*found; i++) {
		struct kbv_snapshot *d = dst[i];
		if (d->time != s->time || d->nsec != s->nsec || !str_eq(d->host, s->host) || d->total_size != s->total_size)
			continue;
		if (!d->entries) {
			int rc = kbv_snapshot_load_entries(dst_rd, d);
			if (rc < 0)
				return rc;
		}
		if (same(s, d))
			*found = d;
	}
	return 0;
}

/* One stream from the source reader into a pipe, on its own thread. */
struct pump {
	struct kbv_reader *rd;
	const struct kbv_entry *e;
	int fd;
	int rc;
	char err[1024];
};

static int to_fd(void *arg, const uint8_t *p, size_t n)
{
	struct pump *pp = arg;
	while (n) {
		ssize_t w = write(pp->fd, p, n);
		if (w < 0)
			return kbv_error(KBV_EIO, "copy: the writing side stopped");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *pump_thread(void *arg)
{
	struct pump *pp = arg;
	pp->rc = kbv_reader_stream(pp->rd, &pp->e->ref, pp->e->size, &pp->e->hash, to_fd, pp);
	if (pp->rc < 0)
		snprintf(pp->err, sizeof pp->err, "%s", kbv_errmsg());
	close(pp->fd);
	return NULL;
}

static int copy_stream(struct kbv_reader *src_rd, struct kbv_writer *w, const struct kbv_entry *e,
		       struct kbv_ref *ref)
{
	int fds[2], rc;
	pthread_t t;
	struct kbv_stream_result res;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "copy '%s': pipe: %m", e->name);
	struct pump pp = { src_rd, e, fds[1], 0, "" };
	if (pthread_create(&t, NULL, pump_thread, &pp) != 0) {
		close(fds[0]);
		close(fds[1]);
		return kbv_error(KBV_ENOMEM, "copy '%s': cannot start a thread", e->name);
	}
	kbv_writer_digest(w, e->hash.alg); /* the copy records what the source recorded */
	rc = kbv_writer_fd(w, fds[0], e->name, &res);
	close(fds[0]); /* a reader still writing gets EPIPE and stops */
	pthread_join(t, NULL);
	if (pp.rc < 0)
		return kbv_error(pp.rc, "copy '%s' from the source: %s", e->name, pp.err);
	if (rc < 0)
		return rc;
	if (res.size != e->size || !kbv_digest_equal(&res.hash, &e->hash))
		return kbv_error(KBV_ECORRUPT, "copy '%s': the target stored %llu bytes that do not hash as the source "
					       "recorded (%llu bytes)",
				 e->name, (unsigned long long)res.size, (unsigned long long)e->size);
	*ref = res.ref;
	return 0;
}

int kbv_copy_snapshot(struct kbv_reader *src_rd, const struct kbv_snapshot *s, struct kbv_repo *dst,
		      struct kbv_writer *w, uint8_t new_id[KBV_ID_BYTES])
{
	struct kbv_entry *e = calloc(s->nloaded ? s->nloaded : 1, sizeof *e);
	int rc = 0;
	if (!e)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < s->nloaded; i++) {
		e[i] = s->entries[i]; /* borrowed strings: kbv_snapshot_commit only reads them */
		if (has_data(&s->entries[i]))
			TRY(copy_stream(src_rd, w, &s->entries[i], &e[i].ref));
	}
	struct kbv_snapshot t = *s;
	t.entries = NULL;
	t.nloaded = 0;
	TRY(kbv_snapshot_commit(dst, w, &t, e, s->nloaded));
	memcpy(new_id, t.id, KBV_ID_BYTES);
out:
	free(e);
	return rc;
}
