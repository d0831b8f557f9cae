/* Cut hints: last time's cuts of a stream tried before the scan (hints.h has the argument,
 * format/repository.md "Cut hints" the file). */
#include "engine/hints.h"
#include "codec/xxh.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "KBVCUTS\0"
#define VERSION 1
#define HEADER 40 /* magic, u32 version, u32 min, avg, max, 8-byte key check, u64 count */
#define REC 12    /* u32 length, u64 keyed XXH3-64 */
/* A larger file (~22 M chunks, a stream of ~180 GB at 8 KiB) is not read: its stream is
 * cut by the scan alone (and its cuts still recorded). */
#define MAX_FILE (256u << 20)
/* The chunks of last time that can take the hints up again after a change: all of them,
 * or for a stream of more than BIG chunks (~32 GB at 8 KiB) those whose hash has the two
 * low bits clear, a quarter (a resumption then comes a few chunks later than it could). */
#define BIG (1u << 22)
#define SAMPLED 3u
/* Chunks cut by the scan one at a time, none of them last time's, before the rest of the
 * slot goes to the cutter's threads (a run of new bytes). */
#define RESCAN 32
#define NONE SIZE_MAX
#define WBUF (64u << 10)
/* A stream whose hints were not rewritten for this long (a file gone from a tree, a source
 * renamed) loses them; a temporary file a crash left, after a day. */
#define PRUNE_DAYS 62

struct kbv_hints {
	const struct kbv_cdc *c;
	uint64_t seed;
	uint8_t check[8];
	/* last time's cuts: nprev records of REC bytes, and a table of the sampled ones */
	struct kbv_buf prev;
	size_t nprev;
	uint32_t *table; /* index + 1 of a record, 0 empty; open addressing */
	size_t tmask;
	uint64_t sample; /* a record whose hash has these bits set is not in the table */
	size_t next; /* the record expected at the next cut, or NONE */
	/* this stream's cuts, recorded into tmp for path */
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd;
	struct kbv_wbuf out;
	uint64_t nout;
	uint64_t taken;
};

static uint32_t rec_len(const struct kbv_hints *h, size_t i) { return kbv_get32(h->prev.data + HEADER + i * REC); }
static uint64_t rec_hash(const struct kbv_hints *h, size_t i)
{
	return kbv_get64(h->prev.data + HEADER + i * REC + 4);
}

static void put_header(uint8_t p[HEADER], const struct kbv_hints *h, uint64_t count)
{
	memcpy(p, MAGIC, 8);
	kbv_put32(p + 8, VERSION);
	kbv_put32(p + 12, (uint32_t)h->c->min);
	kbv_put32(p + 16, (uint32_t)h->c->avg);
	kbv_put32(p + 20, (uint32_t)h->c->max);
	memcpy(p + 24, h->check, 8);
	kbv_put64(p + 32, count);
}

static size_t slot_of(uint64_t x, size_t mask) { return (size_t)(x >> 32) & mask; }

/* Last time's file, when it is there and made for this key and chunker; else nothing. */
static int load(struct kbv_hints *h)
{
	int fd = open(h->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < HEADER || st.st_size > MAX_FILE ||
	    (st.st_size - HEADER) % REC) {
		close(fd);
		return 0;
	}
	int rc = kbv_buf_reserve(&h->prev, (size_t)st.st_size);
	size_t got = 0;
	if (rc == 0 && kbv_pread_upto(fd, h->prev.data, (size_t)st.st_size, 0, &got, h->path) < 0)
		got = 0;
	close(fd);
	if (rc < 0)
		return rc;
	uint8_t want[HEADER];
	put_header(want, h, 0);
	const uint8_t *p = h->prev.data;
	if (got != (size_t)st.st_size || memcmp(p, want, 32) ||
	    kbv_get64(p + 32) != ((size_t)st.st_size - HEADER) / REC)
		return 0;
	h->prev.len = got;
	h->nprev = (got - HEADER) / REC;
	size_t sampled = 0;
	h->sample = h->nprev > BIG ? SAMPLED : 0;
	for (size_t i = 0; i < h->nprev; i++)
		sampled += (rec_hash(h, i) & h->sample) == 0;
	size_t cap = 16;
	while (cap < 2 * sampled)
		cap *= 2;
	if (!(h->table = calloc(cap, sizeof *h->table)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	h->tmask = cap - 1;
	for (size_t i = 0; i < h->nprev; i++) {
		uint64_t x = rec_hash(h, i);
		if (x & h->sample)
			continue;
		/* a chunk listed again (a run of equal rows, of zeros) is in the table once: its
		 * first place; else each copy would walk all those before it */
		size_t s = slot_of(x, h->tmask);
		while (h->table[s] && !(rec_hash(h, h->table[s] - 1) == x && rec_len(h, h->table[s] - 1) == rec_len(h, i)))
			s = (s + 1) & h->tmask;
		if (!h->table[s])
			h->table[s] = (uint32_t)(i + 1);
	}
	h->next = h->nprev ? 0 : NONE;
	return 0;
}

/* The record of last time with this length and hash (the first such in the table). */
static size_t lookup(const struct kbv_hints *h, uint32_t len, uint64_t x)
{
	if (!h->table || (x & h->sample))
		return NONE;
	for (size_t s = slot_of(x, h->tmask); h->table[s]; s = (s + 1) & h->tmask) {
		size_t i = h->table[s] - 1;
		if (rec_hash(h, i) == x && rec_len(h, i) == len)
			return i;
	}
	return NONE;
}

int kbv_hints_open(const char *dir, const uint8_t key[32], const char *name, const struct kbv_cdc *c,
		   struct kbv_hints **out)
{
	struct kbv_hints *h = calloc(1, sizeof *h);
	uint8_t nh[32];
	char hex[65];
	int rc;
	*out = NULL;
	if (!h)
		return kbv_error(KBV_ENOMEM, "out of memory");
	h->c = c;
	h->fd = -1;
	h->next = NONE;
	h->seed = kbv_get64(key);
	memcpy(h->check, key + 8, 8);
	/* The file's name: the stream's name, keyed, so the folder does not list them. */
	crypto_generichash_blake2b(nh, sizeof nh, (const uint8_t *)name, strlen(name), key, 32);
	kbv_hex(nh, sizeof nh, hex);
	if (kbv_path(h->path, sizeof h->path, "%s/%s", dir, hex) < 0 ||
	    kbv_path(h->tmp, sizeof h->tmp, "%s/tmp-XXXXXX", dir) < 0 || kbv_mkdir_parents(dir) < 0 ||
	    kbv_mkdir(dir, NULL) < 0)
		goto unusable;
	if ((rc = load(h)) < 0) {
		kbv_hints_close(h, 0);
		return rc;
	}
	if ((h->fd = mkostemp(h->tmp, O_CLOEXEC)) < 0)
		goto unusable;
	uint8_t hd[HEADER];
	put_header(hd, h, 0);
	if ((rc = kbv_wbuf_init(&h->out, h->fd, WBUF, h->tmp)) < 0) {
		kbv_hints_close(h, 0);
		return rc;
	}
	kbv_wbuf_put(&h->out, hd, sizeof hd);
	*out = h;
	return 0;
unusable:
	kbv_hints_close(h, 0);
	return 0;
}

static void record(struct kbv_hints *h, uint32_t len, uint64_t x)
{
	uint8_t r[REC];
	if (h->out.failed) /* the file will be dropped (a disk full, say): no more tries */
		return;
	kbv_put32(r, len);
	kbv_put64(r + 4, x);
	kbv_wbuf_put(&h->out, r, sizeof r); /* a failure marks the buffer: the file is dropped */
	h->nout++;
}

/* After a cut by the scan: the record the next cut may be. */
static void follow(struct kbv_hints *h, uint32_t len, uint64_t x)
{
	size_t j = h->next;
	if (j == NONE || rec_len(h, j) != len || rec_hash(h, j) != x)
		j = lookup(h, len, x);
	h->next = j != NONE && j + 1 < h->nprev ? j + 1 : NONE;
}

size_t kbv_hints_cut(struct kbv_hints *h, struct kbv_cutter *k, const uint8_t *p, size_t n, int eof, size_t stop,
		     uint32_t *lens, size_t max_chunks, size_t *count)
{
	const struct kbv_cdc *c = h->c;
	size_t pos = 0, cnt = 0, missed = 0;
	/* The conditions for a cut are the scan's (kbv_cutter_cut): a chunk starts before n
	 * and stop, and has c->max bytes ahead of it unless the input ends. */
	while (cnt < max_chunks && pos < n && pos < stop && (eof || n - pos >= c->max)) {
		if (h->next != NONE) {
			/* last time's cut, when the bytes are last time's; a chunk the scan cuts is
			 * longer than min and at most max (the end of the input cuts shorter ones,
			 * and the file lists none of those) */
			uint32_t len = rec_len(h, h->next);
			if (len > c->min && len <= c->max && len <= n - pos) {
				uint64_t x = XXH3_64bits_withSeed(p + pos, len, h->seed);
				if (x == rec_hash(h, h->next)) {
					lens[cnt++] = len;
					record(h, len, x);
					pos += len;
					h->taken += len;
					h->next = h->next + 1 < h->nprev ? h->next + 1 : NONE;
					missed = 0;
					continue;
				}
			}
		}
		/* nothing to look up (a stream's first snapshot on this host), or a run of new
		 * bytes: the scan on the cutter's threads, below */
		if (!h->nprev || ++missed > RESCAN)
			break;
		/* else the scan, a chunk at a time, each looked up among last time's */
		uint32_t len = (uint32_t)kbv_cdc_cut(c, p + pos, n - pos);
		uint64_t x = XXH3_64bits_withSeed(p + pos, len, h->seed);
		lens[cnt++] = len;
		record(h, len, x);
		pos += len;
		follow(h, len, x);
	}
	if (cnt < max_chunks && pos < n && pos < stop) {
		/* A run of bytes last time did not have: the rest of the slot on the cutter's
		 * threads, its chunks looked up afterwards. */
		size_t more = 0;
		kbv_cutter_cut(k, c, p + pos, n - pos, eof, stop - pos, lens + cnt, max_chunks - cnt, &more);
		for (size_t i = 0; i < more; i++) {
			uint32_t len = lens[cnt + i];
			uint64_t x = XXH3_64bits_withSeed(p + pos, len, h->seed);
			record(h, len, x);
			pos += len;
			follow(h, len, x);
		}
		cnt += more;
	}
	*count = cnt;
	return pos;
}

void kbv_hints_close(struct kbv_hints *h, int ok)
{
	if (!h)
		return;
	if (h->fd >= 0) {
		/* The last chunk may be the end of the stream's cut, not the scan's: not listed. */
		uint64_t count = h->nout ? h->nout - 1 : 0;
		uint8_t cnt[8];
		kbv_put64(cnt, count);
		ok = ok && !h->out.failed && kbv_wbuf_flush(&h->out) == 0 && ftruncate(h->fd, (off_t)(HEADER + count * REC)) == 0 &&
		     kbv_pwrite_full(h->fd, cnt, sizeof cnt, 32, h->tmp) == 0;
		kbv_wbuf_free(&h->out);
		close(h->fd);
		if (!ok || rename(h->tmp, h->path) < 0)
			unlink(h->tmp);
	}
	kbv_buf_release(&h->prev);
	free(h->table);
	free(h);
}

uint64_t kbv_hints_taken(const struct kbv_hints *h) { return h ? h->taken : 0; }
size_t kbv_hints_known(const struct kbv_hints *h) { return h ? h->nprev : 0; }

void kbv_hints_prune(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	time_t now = time(NULL);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;
		int tmp = !strncmp(e->d_name, "tmp-", 4);
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_mtime > (tmp ? 86400 : PRUNE_DAYS * 86400))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}
