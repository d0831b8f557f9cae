#include "kbv/study.h"
#include "kbv/blob.h"
#include "kbv/chunker.h"
#include "kbv/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

/* The writer's grouping (src/engine/writer.c): batches of about 1 MiB of stream, new chunks
 * of a batch sealed in bundles of at most KBV_BUNDLE_TARGET bytes. */
#define STUDY_BATCH (1u << 20)
#define STUDY_TRAILER_ENTRY 48 /* about what a pack trailer spends per blob */

/* Open-addressing set of XXH3-128 digests; the all-zero digest is the empty slot (a chunk
 * hashing to it is counted as new every time: probability 2^-128). Not kbv_idset: that one
 * holds 32-byte ids at half load for small sets; this one holds millions of chunks of a
 * user's dumps at 16 bytes and 70% load (about 23 bytes a chunk instead of 66 to 132). */
struct set {
	XXH128_hash_t *v;
	size_t cap, n;
};

static int set_add(struct set *s, XXH128_hash_t h)
{
	if (h.low64 == 0 && h.high64 == 0)
		return 1;
	if ((s->n + 1) * 10 > s->cap * 7) {
		size_t cap = s->cap ? s->cap * 2 : 1u << 16;
		XXH128_hash_t *nv = calloc(cap, sizeof *nv);
		if (!nv)
			return kbv_error(KBV_ENOMEM, "out of memory");
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->v[i].low64 && !s->v[i].high64)
				continue;
			size_t k = s->v[i].low64 & (cap - 1);
			while (nv[k].low64 || nv[k].high64)
				k = (k + 1) & (cap - 1);
			nv[k] = s->v[i];
		}
		free(s->v);
		s->v = nv;
		s->cap = cap;
	}
	size_t k = h.low64 & (s->cap - 1);
	while (s->v[k].low64 || s->v[k].high64) {
		if (XXH128_isEqual(s->v[k], h))
			return 0;
		k = (k + 1) & (s->cap - 1);
	}
	s->v[k] = h;
	s->n++;
	return 1;
}

struct bundler {
	ZSTD_CCtx *cctx;
	int level;
	uint8_t *buf, *out;
	size_t len, members, out_cap;
	uint64_t stored;
};

static void bundle_seal(struct bundler *b)
{
	if (!b->members)
		return;
	size_t payload = b->len;
	if (b->level > 0) {
		size_t z = ZSTD_compressCCtx(b->cctx, b->out, b->out_cap, b->buf, b->len, b->level);
		if (!ZSTD_isError(z) && z < b->len)
			payload = z;
	}
	b->stored += payload + KBV_SEAL_OVERHEAD + 4 + (uint64_t)KBV_BUNDLE_ENTRY * b->members;
	b->len = b->members = 0;
}

static void bundle_add(struct bundler *b, const uint8_t *p, size_t n)
{
	if (b->members && b->len + n > KBV_BUNDLE_TARGET)
		bundle_seal(b);
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->members++;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int study_one(const char *const *files, size_t nfiles, int zstd_level, struct kbv_study *st)
{
	static const uint8_t zero_key[32];
	struct kbv_cdc cdc;
	struct set seen = { 0 };
	struct bundler b = { .level = zstd_level };
	int rc = 0, fd = -1;
	uint8_t *map = NULL;
	size_t maplen = 0;
	double t0 = now();
	TRY(kbv_cdc_init(&cdc, zero_key, st->avg / 4, st->avg, st->avg * 4));
	st->file_new_bytes = calloc(nfiles ? nfiles : 1, sizeof *st->file_new_bytes);
	st->file_new_stored = calloc(nfiles ? nfiles : 1, sizeof *st->file_new_stored);
	b.buf = malloc(KBV_BUNDLE_TARGET + cdc.max);
	b.out_cap = ZSTD_compressBound(KBV_BUNDLE_TARGET + cdc.max);
	b.out = malloc(b.out_cap);
	b.cctx = ZSTD_createCCtx();
	if (!st->file_new_bytes || !st->file_new_stored || !b.buf || !b.out || !b.cctx) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t f = 0; f < nfiles; f++) {
		struct stat sb;
		fd = open(files[f], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0) {
			rc = kbv_error(KBV_EIO, "cannot read '%s': %s", files[f], strerror(errno));
			goto out;
		}
		if (!S_ISREG(sb.st_mode)) {
			rc = kbv_error(KBV_EINVAL, "'%s' is not a regular file (save the dump to a file first)", files[f]);
			goto out;
		}
		maplen = (size_t)sb.st_size;
		if (maplen) {
			map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, 0);
			if (map == MAP_FAILED) {
				map = NULL;
				rc = kbv_error(KBV_EIO, "cannot map '%s': %s", files[f], strerror(errno));
				goto out;
			}
			madvise(map, maplen, MADV_SEQUENTIAL);
		}
		uint64_t stored_before = b.stored, chunks_before = st->chunks, fresh_chunks = 0;
		size_t pos = 0, batch_end = STUDY_BATCH;
		while (pos < maplen) {
			size_t cut = kbv_cdc_cut(&cdc, map + pos, maplen - pos);
			XXH128_hash_t h = XXH3_128bits(map + pos, cut);
			st->chunks++;
			int fresh = set_add(&seen, h);
			if (fresh < 0) {
				rc = fresh;
				goto out;
			}
			if (fresh) {
				fresh_chunks++;
				st->unique_bytes += cut;
				st->file_new_bytes[f] += cut;
				bundle_add(&b, map + pos, cut);
			}
			pos += cut;
			if (pos >= batch_end) { /* the writer seals a batch's last bundle */
				bundle_seal(&b);
				batch_end = pos + STUDY_BATCH;
			}
		}
		bundle_seal(&b);
		/* The stream's chunk-list tree (an id per chunk, incompressible; format/snapshot.md)
		 * and the pack trailer's entry per new chunk (format/pack.md). */
		b.stored += (st->chunks - chunks_before) * KBV_ID_BYTES + fresh_chunks * STUDY_TRAILER_ENTRY;
		st->raw_bytes += maplen;
		st->file_new_stored[f] = b.stored - stored_before;
		if (map)
			munmap(map, maplen);
		map = NULL;
		close(fd);
		fd = -1;
	}
	st->unique_chunks = seen.n;
	st->stored_bytes = b.stored;
	st->index_bytes = (uint64_t)seen.n * KBV_STUDY_INDEX_BYTES;
	st->seconds = now() - t0;
out:
	if (map)
		munmap(map, maplen);
	if (fd >= 0)
		close(fd);
	free(seen.v);
	free(b.buf);
	free(b.out);
	ZSTD_freeCCtx(b.cctx);
	return rc;
}

int kbv_study_chunking(const char *const *files, size_t nfiles, const size_t *avgs, size_t navg, int zstd_level,
		       struct kbv_study *out)
{
	memset(out, 0, navg * sizeof *out);
	if (zstd_level < 0 || zstd_level > 19)
		return kbv_error(KBV_EINVAL, "zstd level %d is outside 0..19", zstd_level);
	for (size_t i = 0; i < navg; i++) {
		out[i].avg = avgs[i];
		int rc = kbv_cdc_check_params(avgs[i] / 4, avgs[i], avgs[i] * 4);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < navg; i++) {
		int rc = study_one(files, nfiles, zstd_level, &out[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void kbv_study_free(struct kbv_study *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++) {
		free(s[i].file_new_bytes);
		free(s[i].file_new_stored);
		s[i].file_new_bytes = s[i].file_new_stored = NULL;
	}
}
