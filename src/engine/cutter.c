/* Cutting a slot into chunks on more than one core: speculation from the segments' first
 * bytes, stitched where the real cuts meet it (cutter.h has the argument). */
#include "cutter.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CUTTER_MAX 8
/* A slot shorter than this per segment is cut by the caller alone: the hand-off and the
 * re-synchronisation would cost more than they save. */
#define SEGMENT_MIN (128u << 10)
/* A helper starts its speculation this many average chunks before its segment, so that by
 * the segment's first byte its cuts have usually met the real ones already and the caller
 * takes them at once, instead of cutting two or three chunks past each seam itself. */
#define LEAD_CHUNKS 3

struct segment {
	struct kbv_cutter *k;
	pthread_t thread;
	size_t from, until; /* the segment: [from, until) */
	size_t start;       /* speculate from `start` (<= from) until the first cut at or past `until` */
	uint32_t *pos;      /* pos[0] = start, then the end of each chunk cut */
	size_t npos;
	size_t got;         /* a read request: bytes read into [from, until) */
	int rc;             /* and its failure, with the message of the thread that read */
	char msg[256];
	int ready;          /* this request's speculation (or read) is done */
};

struct kbv_cutter {
	const struct kbv_cdc *c;
	size_t nseg, max_chunks, started;
	uint64_t taken; /* bytes of chunks taken from speculation */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned long gen; /* one per request */
	int stop;
	/* the request: a cut of p[0..n), or (reading) a read of dst's pieces from fd */
	const uint8_t *p;
	size_t n, stop_at;
	int eof;
	int reading, fd;
	uint64_t off;
	uint8_t *dst;
	const char *what;
	struct segment seg[CUTTER_MAX];
};

/* The sequential loop's rule for cutting a chunk that starts at pos. */
static int may_cut(const struct kbv_cdc *c, size_t pos, size_t n, int eof, size_t stop, size_t count,
		   size_t max_chunks)
{
	return pos < n && (eof || n - pos >= c->max) && pos < stop && count < max_chunks;
}

static void speculate(struct kbv_cutter *k, struct segment *s)
{
	size_t pos = s->start, cap = k->max_chunks + 1;
	s->pos[0] = (uint32_t)pos;
	s->npos = 1;
	while (s->npos < cap && may_cut(k->c, pos, k->n, k->eof, k->stop_at, 0, 1)) {
		pos += kbv_cdc_cut(k->c, k->p + pos, k->n - pos);
		s->pos[s->npos++] = (uint32_t)pos;
		if (pos >= s->until)
			break;
	}
}

/* Read [s->from, s->until) of the request's range: to the end or to the end of file. */
static void read_piece(struct kbv_cutter *k, struct segment *s)
{
	s->got = 0;
	s->rc = kbv_pread_upto(k->fd, k->dst + s->from, s->until - s->from, k->off + s->from, &s->got, k->what);
	if (s->rc < 0) /* the message is this thread's (error.c): kept for the caller */
		snprintf(s->msg, sizeof s->msg, "%s", kbv_errmsg());
}

static void *helper_main(void *arg)
{
	struct segment *s = arg;
	struct kbv_cutter *k = s->k;
	unsigned long seen = 0;
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (k->gen == seen && !k->stop)
			pthread_cond_wait(&k->go, &k->mu);
		if (k->stop)
			break;
		seen = k->gen;
		pthread_mutex_unlock(&k->mu);
		if (k->reading)
			read_piece(k, s);
		else
			speculate(k, s);
		pthread_mutex_lock(&k->mu);
		s->ready = 1;
		pthread_cond_broadcast(&k->done);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

void kbv_cutter_free(struct kbv_cutter *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = 1;
	pthread_cond_broadcast(&k->go);
	pthread_mutex_unlock(&k->mu);
	for (size_t i = 1; i <= k->started; i++)
		pthread_join(k->seg[i].thread, NULL);
	for (size_t i = 0; i < k->nseg; i++)
		free(k->seg[i].pos);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->go);
	pthread_cond_destroy(&k->done);
	free(k);
}

int kbv_cutter_new(const struct kbv_cdc *c, size_t segments, size_t max_chunks, struct kbv_cutter **out)
{
	struct kbv_cutter *k = calloc(1, sizeof *k);
	*out = NULL;
	if (!k)
		return kbv_error(KBV_ENOMEM, "out of memory");
	k->c = c;
	k->nseg = segments < 1 ? 1 : segments > CUTTER_MAX ? CUTTER_MAX : segments;
	k->max_chunks = max_chunks;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->go, NULL);
	pthread_cond_init(&k->done, NULL);
	for (size_t i = 1; i < k->nseg; i++) {
		k->seg[i].k = k;
		if (!(k->seg[i].pos = malloc((max_chunks + 1) * sizeof *k->seg[i].pos))) {
			kbv_cutter_free(k);
			return kbv_error(KBV_ENOMEM, "out of memory");
		}
		if (pthread_create(&k->seg[i].thread, NULL, helper_main, &k->seg[i]) != 0) {
			free(k->seg[i].pos); /* fewer helpers: the segments are fewer too */
			k->seg[i].pos = NULL;
			break;
		}
		kbv_thread_name(k->seg[i].thread, "kbv-cut", (long)i);
		k->started = i;
	}
	k->nseg = k->started + 1;
	*out = k;
	return 0;
}

size_t kbv_cutter_cut(struct kbv_cutter *k, const struct kbv_cdc *c, const uint8_t *p, size_t n, int eof,
		      size_t stop, uint32_t *lens, size_t max_chunks, size_t *count)
{
	size_t pos = 0, cnt = 0, span = n < stop ? n : stop;
	size_t nseg = k ? k->nseg : 1;
	if (nseg > 1 && span / nseg < SEGMENT_MIN)
		nseg = span / SEGMENT_MIN > 1 ? span / SEGMENT_MIN : 1;
	if (nseg > 1) {
		pthread_mutex_lock(&k->mu);
		k->p = p;
		k->n = n;
		k->eof = eof;
		k->stop_at = stop;
		k->reading = 0;
		for (size_t i = 1; i < k->nseg; i++) {
			struct segment *s = &k->seg[i];
			/* helpers past nseg speculate on an empty segment: nothing to cut */
			s->from = i < nseg ? span * i / nseg : n;
			s->until = i + 1 < nseg ? span * (i + 1) / nseg : (size_t)-1;
			size_t lead = LEAD_CHUNKS * c->avg, prev = span * (i - 1) / nseg;
			s->start = i < nseg && s->from - prev > 2 * lead ? s->from - lead : s->from;
			s->ready = 0;
		}
		k->gen++;
		pthread_cond_broadcast(&k->go);
		pthread_mutex_unlock(&k->mu);
	}
	for (size_t i = 0; i < nseg; i++) {
		struct segment *s = i ? &k->seg[i] : NULL;
		size_t until = i + 1 < nseg ? k->seg[i + 1].from : (size_t)-1, at = 0;
		if (s) {
			pthread_mutex_lock(&k->mu);
			while (!s->ready)
				pthread_cond_wait(&k->done, &k->mu);
			pthread_mutex_unlock(&k->mu);
		}
		while (pos < until && may_cut(c, pos, n, eof, stop, cnt, max_chunks)) {
			while (s && at < s->npos && s->pos[at] < pos)
				at++;
			if (s && at < s->npos && s->pos[at] == pos) {
				/* met the speculation: the rest of the segment is its cuts */
				size_t met = pos;
				for (at++; at < s->npos && may_cut(c, pos, n, eof, stop, cnt, max_chunks); at++) {
					lens[cnt++] = s->pos[at] - (uint32_t)pos;
					pos = s->pos[at];
				}
				k->taken += pos - met;
				break;
			}
			size_t cut = kbv_cdc_cut(c, p + pos, n - pos);
			lens[cnt++] = (uint32_t)cut;
			pos += cut;
		}
	}
	if (nseg > 1 && k->nseg > nseg) {
		/* the helpers left idle this time must be done before p is reused */
		pthread_mutex_lock(&k->mu);
		for (size_t i = nseg; i < k->nseg; i++)
			while (!k->seg[i].ready)
				pthread_cond_wait(&k->done, &k->mu);
		pthread_mutex_unlock(&k->mu);
	}
	*count = cnt;
	return pos;
}

void kbv_input_init(struct kbv_input *in, int fd, const char *what)
{
	struct stat st;
	off_t at;
	in->fd = fd;
	in->what = what;
	in->off = -1;
	in->end = 0;
	if (fstat(fd, &st) < 0)
		return;
	/* a pipe (pg_dump's, a command's, stdin) is widened; a file too small for two pieces is
	 * read as a pipe is: no seeks */
	if (S_ISFIFO(st.st_mode)) {
		kbv_pipe_widen(fd);
	} else if (S_ISREG(st.st_mode) && st.st_size >= 2 * (off_t)SEGMENT_MIN && (at = lseek(fd, 0, SEEK_CUR)) >= 0) {
		in->off = at;
		in->end = (uint64_t)st.st_size;
	}
}

void kbv_input_done(struct kbv_input *in)
{
	if (in->off >= 0) /* where read(2) would have left it */
		(void)lseek(in->fd, (off_t)in->off, SEEK_SET);
}

int kbv_cutter_read(struct kbv_cutter *k, struct kbv_input *in, uint8_t *p, size_t n, size_t *got, int *eof)
{
	if (in->off < 0) {
		int rc = kbv_read_upto(in->fd, p, n, got, in->what);
		*eof = *got < n;
		return rc;
	}
	/* the pieces cover what the file is expected to hold; the rest (normally nothing: the
	 * read that sees the end) is the caller's */
	uint64_t off = (uint64_t)in->off;
	size_t span = in->end <= off ? 0 : in->end - off < n ? (size_t)(in->end - off) : n;
	size_t nseg = k ? k->nseg : 1;
	if (nseg > 1 && span / nseg < SEGMENT_MIN)
		nseg = span / SEGMENT_MIN > 1 ? span / SEGMENT_MIN : 1;
	size_t total = 0;
	*eof = 0;
	if (nseg == 1) {
		span = 0; /* all of it on the caller, below */
	} else {
		struct segment s0 = {.from = 0, .until = span / nseg};
		pthread_mutex_lock(&k->mu);
		k->reading = 1;
		k->fd = in->fd;
		k->off = off;
		k->dst = p;
		k->what = in->what;
		for (size_t i = 1; i < k->nseg; i++) {
			struct segment *s = &k->seg[i];
			/* helpers past nseg read an empty piece */
			s->from = i < nseg ? span * i / nseg : span;
			s->until = i + 1 < nseg ? span * (i + 1) / nseg : span;
			s->ready = 0;
		}
		k->gen++;
		pthread_cond_broadcast(&k->go);
		pthread_mutex_unlock(&k->mu);
		read_piece(k, &s0);
		pthread_mutex_lock(&k->mu);
		for (size_t i = 1; i < k->nseg; i++)
			while (!k->seg[i].ready)
				pthread_cond_wait(&k->done, &k->mu);
		pthread_mutex_unlock(&k->mu);
		/* The bytes are the pieces up to the first short one (the end of the file, come
		 * early: it shrank). If a later piece found bytes, it grew again meanwhile: not
		 * the end, the next read goes on from there, as read(2) would have. */
		*eof = 1;
		for (size_t i = 0; i < nseg; i++) {
			const struct segment *s = i ? &k->seg[i] : &s0;
			if (s->rc < 0) {
				*got = 0;
				return kbv_error(s->rc, "%s", s->msg);
			}
			if (total == s->from)
				total += s->got;
			else if (s->got)
				*eof = 0;
		}
		if (total == span)
			*eof = 0;
	}
	if (!*eof && total == span && span < n) {
		size_t more;
		int rc = kbv_pread_upto(in->fd, p + span, n - span, off + span, &more, in->what);
		if (rc < 0)
			return rc;
		total += more;
		*eof = total < n;
	}
	in->off += (int64_t)total;
	*got = total;
	return 0;
}

uint64_t kbv_cutter_taken(const struct kbv_cutter *k)
{
	return k ? k->taken : 0;
}
