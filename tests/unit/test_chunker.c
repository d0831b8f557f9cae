/* FastCDC: the two-bytes-per-step cutter equals the specified one-byte loop, chunks respect
 * min/max and concatenate back to the input, and the frozen test vectors still hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <pthread.h>
#include <unistd.h>

#include "kbv/error.h"

#include "engine/cutter.h"
#include "engine/readahead.h"
#include "kbv/chunker.h"

#define GOLDEN "tests/golden/chunker-vectors.txt"

static uint8_t *random_input(size_t n, uint8_t fill)
{
	uint8_t key[32], nonce[24] = { 0 };
	uint8_t *p = malloc(n);
	memset(key, fill, sizeof key);
	memset(p, 0, n);
	crypto_stream_xchacha20_xor(p, p, n, nonce, key);
	return p;
}

static void cuts_match_reference(size_t avg)
{
	static const uint8_t zero[32];
	struct kbv_cdc c;
	assert_int_equal(kbv_cdc_init(&c, zero, avg / 4, avg, avg * 4), 0);
	size_t n = 4 << 20;
	uint8_t *p = random_input(n, 7);
	/* Low-entropy stretch: long runs make max-size cuts happen. */
	memset(p + n / 2, 'a', 300000);
	size_t pos = 0, chunks = 0, total = 0;
	while (pos < n) {
		size_t fast = kbv_cdc_cut(&c, p + pos, n - pos);
		size_t ref = kbv_cdc_cut_reference(&c, p + pos, n - pos);
		assert_int_equal(fast, ref);
		assert_true(fast >= 1 && fast <= c.max);
		if (pos + fast < n)
			assert_true(fast >= c.min);
		pos += fast;
		total += fast;
		chunks++;
	}
	assert_int_equal(total, n);
	/* Averages land near the target (normalized chunking narrows the spread). */
	double mean = (double)n / (double)chunks;
	assert_true(mean > avg * 0.5 && mean < avg * 2.0);
	free(p);
}

static void test_reference_4k(void **s) { (void)s; cuts_match_reference(4096); }
static void test_reference_8k(void **s) { (void)s; cuts_match_reference(8192); }
static void test_reference_64k(void **s) { (void)s; cuts_match_reference(65536); }

static void test_odd_lengths(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	struct kbv_cdc c;
	assert_int_equal(kbv_cdc_init(&c, zero, 1000, 4096, 9999), 0);
	uint8_t *p = random_input(20000, 9);
	for (size_t n = 0; n < 20000; n += 37)
		assert_int_equal(kbv_cdc_cut(&c, p, n), kbv_cdc_cut_reference(&c, p, n));
	free(p);
}

static void test_bad_params(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	struct kbv_cdc c;
	assert_int_not_equal(kbv_cdc_init(&c, zero, 2048, 3000, 32768), 0); /* not a power of two */
	assert_int_not_equal(kbv_cdc_init(&c, zero, 9000, 8192, 32768), 0); /* min > avg */
	assert_int_not_equal(kbv_cdc_init(&c, zero, 2048, 8192, 4096), 0);  /* max < avg */
	assert_int_not_equal(kbv_cdc_init(&c, zero, 2048, 512, 4096), 0);   /* avg < 1 KiB */
}

/* A shifted copy re-synchronizes: most chunks after an insertion are the same. */
static void test_resync(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	struct kbv_cdc c;
	assert_int_equal(kbv_cdc_init(&c, zero, 2048, 8192, 32768), 0);
	size_t n = 1 << 20;
	uint8_t *a = random_input(n, 3), *b = malloc(n + 100);
	memcpy(b, a, 5000);
	memset(b + 5000, 'x', 100);
	memcpy(b + 5100, a + 5000, n - 5000);
	size_t ends_a[1024], na = 0, pos = 0;
	while (pos < n) {
		pos += kbv_cdc_cut(&c, a + pos, n - pos);
		ends_a[na++] = pos;
	}
	size_t same = 0;
	pos = 0;
	while (pos < n + 100) {
		pos += kbv_cdc_cut(&c, b + pos, n + 100 - pos);
		for (size_t i = 0; i < na; i++)
			if (ends_a[i] + 100 == pos)
				same++;
	}
	assert_true(same + 3 >= na);
	free(a);
	free(b);
}

/* Frozen vectors: format/chunker.md's definition with the all-zero gear key on the
 * XChaCha20 stream of key 0x42..42 (nonce 0). Regenerate only with a format version bump
 * (KBV_WRITE_GOLDEN=1). */
static void test_golden(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	static const size_t avgs[] = { 1024, 8192, 65536 };
	size_t n = 1 << 20;
	uint8_t *p = random_input(n, 0x42);
	char line[256];
	int write = getenv("KBV_WRITE_GOLDEN") != NULL;
	FILE *f = fopen(GOLDEN, write ? "w" : "r");
	assert_non_null(f);
	if (write)
		fprintf(f, "# kbvault chunker test vectors, format version 1 (format/chunker.md)\n"
			   "# gear_key = 32 zero bytes; input = first 1048576 bytes of XChaCha20(key = 32 x 0x42, nonce = 0)\n"
			   "# per line: min avg max, then the chunk lengths in order\n");
	for (size_t k = 0; k < 3; k++) {
		struct kbv_cdc c;
		assert_int_equal(kbv_cdc_init(&c, zero, avgs[k] / 4, avgs[k], avgs[k] * 4), 0);
		char got[65536];
		size_t o = (size_t)snprintf(got, sizeof got, "%zu %zu %zu", c.min, c.avg, c.max);
		for (size_t pos = 0; pos < n && o < sizeof got - 16;) {
			size_t cut = kbv_cdc_cut(&c, p + pos, n - pos);
			o += (size_t)snprintf(got + o, sizeof got - o, " %zu", cut);
			pos += cut;
		}
		if (write) {
			fprintf(f, "%s\n", got);
			continue;
		}
		static char want[65536];
		do
			assert_non_null(fgets(want, sizeof want, f));
		while (want[0] == '#');
		want[strcspn(want, "\n")] = 0;
		(void)line;
		assert_string_equal(got, want);
	}
	fclose(f);
	free(p);
}

/* The plain loop the writer ran before cutting on several cores. */
static size_t plain_cut(const struct kbv_cdc *c, const uint8_t *p, size_t n, int eof, size_t stop, uint32_t *lens,
			size_t maxn, size_t *count)
{
	size_t pos = 0, k = 0;
	while (pos < n && (eof || n - pos >= c->max) && pos < stop && k < maxn) {
		size_t cut = kbv_cdc_cut(c, p + pos, n - pos);
		lens[k++] = (uint32_t)cut;
		pos += cut;
	}
	*count = k;
	return pos;
}

/* Cut p[0..n) slot by slot as the writer does (about `stop` bytes per call, the uncut rest
 * carried to the next) with the cutter, and check every call against the plain loop. */
static void same_cuts(struct kbv_cutter *k, const struct kbv_cdc *c, const uint8_t *p, size_t n, size_t stop,
		      size_t maxn)
{
	uint32_t *a = malloc(maxn * sizeof *a), *b = malloc(maxn * sizeof *b);
	size_t pos = 0, slot = stop + c->max;
	while (pos < n) {
		size_t have = n - pos < slot ? n - pos : slot;
		int eof = pos + have == n;
		size_t na, nb;
		size_t la = plain_cut(c, p + pos, have, eof, stop, a, maxn, &na);
		size_t lb = kbv_cutter_cut(k, c, p + pos, have, eof, stop, b, maxn, &nb);
		assert_int_equal(la, lb);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * sizeof *a);
		assert_true(la > 0);
		pos += la;
	}
	free(a);
	free(b);
}

/* Cutting on several cores (engine/cutter.c) gives exactly the sequential loop's chunks:
 * on random bytes, on text-like data, on long runs where max-size cuts never meet the
 * speculation, on all zeros, with 2 to 8 segments, for every chunk size, with and without
 * the end of the stream, and with a chunk count that stops a slot early. */
static void test_parallel_cuts(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	static const size_t avgs[] = { 1024, 8192, 65536 };
	static const size_t segs[] = { 1, 2, 3, 4, 8 };
	size_t n = 6 << 20;
	uint8_t *rnd = random_input(n, 9), *runs = random_input(n, 11), *text = malloc(n), *zeros = calloc(1, n);
	/* long runs: half a MiB of one byte every 1.5 MiB */
	for (size_t o = 0; o + (512u << 10) < n; o += 3u << 19)
		memset(runs + o, 'a', 512u << 10);
	/* text-like: words of a small vocabulary picked by the random bytes */
	static const char *const words[] = { "backup ", "restore ", "vector ", "the ", "snapshot ",
					     "graph ", "and ", "index\n", "0.125,", "{1,2}\t" };
	for (size_t o = 0; o < n;) {
		const char *w = words[rnd[o] % 10];
		for (size_t i = 0; w[i] && o < n; i++)
			text[o++] = (uint8_t)w[i];
	}
	const uint8_t *inputs[] = { rnd, runs, text, zeros };
	for (size_t a = 0; a < 3; a++) {
		struct kbv_cdc c;
		assert_int_equal(kbv_cdc_init(&c, zero, avgs[a] / 4, avgs[a], avgs[a] * 4), 0);
		size_t stop = 1u << 20, maxn = stop / c.min + 2;
		for (size_t g = 0; g < sizeof segs / sizeof *segs; g++) {
			struct kbv_cutter *k;
			assert_int_equal(kbv_cutter_new(&c, segs[g], maxn, &k), 0);
			for (size_t i = 0; i < 4; i++) {
				same_cuts(k, &c, inputs[i], n, stop, maxn);
				same_cuts(k, &c, inputs[i] + 12345, n - 99999, stop, maxn); /* other seams */
			}
			same_cuts(k, &c, rnd, n, stop, 100); /* the count ends each slot */
			same_cuts(k, &c, rnd, n, 4u << 20, 4u << 20); /* bigger slots */
			/* with helpers, a good part of the ~10 n bytes cut were cut by them (2.9-7.4 n) */
			if (segs[g] > 1)
				assert_true(kbv_cutter_taken(k) > 2 * (uint64_t)n);
			else
				assert_int_equal(kbv_cutter_taken(k), 0);
			kbv_cutter_free(k);
		}
	}
	free(rnd);
	free(runs);
	free(text);
	free(zeros);
}

/* Read a file as the writer does (engine/writer.c): slots of `cap` bytes, each read with
 * kbv_cutter_read after the previous slot's uncut tail, then cut; the bytes read and the
 * chunks cut are the file's from `start` on and the plain loop's. */
static void read_and_cut(struct kbv_cutter *k, const struct kbv_cdc *c, int fd, off_t start, const uint8_t *want,
			 size_t n)
{
	size_t cap = (1u << 20) + 4321, maxn = cap / c->min + 2, tail = 0, pos = 0, nslots = 0;
	uint8_t *slot = malloc(cap);
	uint32_t *lens = malloc(maxn * sizeof *lens);
	int eof = 0;
	assert_int_equal(lseek(fd, start, SEEK_SET), start);
	struct kbv_input in;
	kbv_input_init(&in, fd, "input.bin");
	/* a file of less than two pieces (256 KiB) is read with read(2) */
	assert_int_equal(in.off, start + n >= (256u << 10) ? start : -1);
	while (!eof || tail) {
		size_t have = tail, got, cnt;
		if (!eof) {
			assert_int_equal(kbv_cutter_read(k, &in, slot + have, cap - have, &got, &eof), 0);
			have += got;
		}
		assert_true(pos + have <= n);
		assert_memory_equal(slot, want + pos, have);
		size_t len = kbv_cutter_cut(k, c, slot, have, eof, 1u << 20, lens, maxn, &cnt);
		for (size_t i = 0; i < cnt; i++) {
			size_t cut = kbv_cdc_cut(c, want + pos, n - pos);
			assert_int_equal(lens[i], cut);
			pos += cut;
		}
		tail = have - len;
		memmove(slot, slot + len, tail);
		nslots++;
	}
	assert_int_equal(pos, n);
	assert_true(nslots >= n / cap);
	kbv_input_done(&in);
	/* the file's offset is where read(2) would have left it: at the end */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), start + (off_t)n);
	free(slot);
	free(lens);
}

/* A regular file is read in pieces on the cutter's threads (pread): the same bytes and
 * cuts as read(2), from the file's offset, for files of no bytes, less than a piece, and
 * several slots, with 1 to 8 threads (and none); a file that shrinks or grows after the
 * stream began ends where the file does; a failing read names the input and the byte. */
static void test_parallel_reads(void **s)
{
	(void)s;
	static const uint8_t zero[32];
	static const size_t segs[] = { 0, 1, 2, 3, 8 };
	static const size_t sizes[] = { 0, 1000, (3u << 17) + 17, (5u << 20) + 3 };
	char path[] = "/tmp/kbv-test-read-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t big = (5u << 20) + 3;
	uint8_t *data = random_input(big, 21);
	struct kbv_cdc c;
	assert_int_equal(kbv_cdc_init(&c, zero, 2048, 8192, 32768), 0);
	for (size_t g = 0; g < sizeof segs / sizeof *segs; g++) {
		struct kbv_cutter *k = NULL;
		if (segs[g])
			assert_int_equal(kbv_cutter_new(&c, segs[g], (1u << 20) / c.min + 2, &k), 0);
		for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
			assert_int_equal(ftruncate(fd, 0), 0);
			assert_int_equal(pwrite(fd, data, sizes[z], 0), (ssize_t)sizes[z]);
			read_and_cut(k, &c, fd, 0, data, sizes[z]);
			if (sizes[z] > 12345)
				read_and_cut(k, &c, fd, 12345, data + 12345, sizes[z] - 12345);
		}
		/* the file shrinks after the stream began (its size is a hint only) */
		struct kbv_input in;
		uint8_t *slot = malloc(4u << 20);
		size_t got;
		int eof;
		assert_int_equal(pwrite(fd, data, big, 0), (ssize_t)big);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		kbv_input_init(&in, fd, "input.bin");
		assert_int_equal(ftruncate(fd, 1500000), 0);
		assert_int_equal(kbv_cutter_read(k, &in, slot, 4u << 20, &got, &eof), 0);
		assert_int_equal(got, 1500000);
		assert_true(eof);
		assert_memory_equal(slot, data, got);
		/* ... or grows: read on to the slot's end */
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		kbv_input_init(&in, fd, "input.bin");
		assert_int_equal(pwrite(fd, data, big, 0), (ssize_t)big);
		assert_int_equal(kbv_cutter_read(k, &in, slot, 4u << 20, &got, &eof), 0);
		assert_int_equal(got, 4u << 20);
		assert_false(eof);
		assert_memory_equal(slot, data, got);
		assert_int_equal(in.off, 4u << 20);
		free(slot);
		kbv_cutter_free(k);
	}
	/* a read that fails: on a descriptor open for writing only */
	int wfd = open(path, O_WRONLY);
	assert_true(wfd >= 0);
	struct kbv_cutter *k;
	assert_int_equal(kbv_cutter_new(&c, 4, (1u << 20) / c.min + 2, &k), 0);
	struct kbv_input in;
	uint8_t *slot = malloc(2u << 20);
	size_t got;
	int eof;
	kbv_input_init(&in, wfd, "input.bin");
	assert_int_equal(in.off, 0);
	assert_int_equal(kbv_cutter_read(k, &in, slot, 2u << 20, &got, &eof), KBV_EIO);
	assert_non_null(strstr(kbv_errmsg(), "read 'input.bin' at byte 0: Bad file descriptor"));
	free(slot);
	kbv_cutter_free(k);
	close(wfd);
	close(fd);
	unlink(path);
	free(data);
}

/* The writing end of a pipe, as pg_dump or cat would be: writes of random sizes. */
struct pipe_writer {
	int fd;
	const uint8_t *p;
	size_t n;
};

static void *write_pipe(void *arg)
{
	struct pipe_writer *pw = arg;
	uint32_t x = 12345;
	for (size_t at = 0; at < pw->n;) {
		x = x * 1103515245u + 12345u;
		size_t k = 1 + (x >> 8) % 100000;
		if (k > pw->n - at)
			k = pw->n - at;
		ssize_t w = write(pw->fd, pw->p + at, k);
		assert_true(w > 0);
		at += (size_t)w;
	}
	close(pw->fd);
	return NULL;
}

/* A pipe read ahead gives the bytes written into it, in order, a full piece at a time
 * (fewer only at the end), each at `room` in the buffer handed over, and then the end. */
static void test_pipe_read_ahead(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, 1000, 1u << 20, (5u << 20) + 3 };
	static const size_t rings[] = { 1, 2, 4 };
	const size_t room = 32768, piece = 1u << 20;
	uint8_t *data = random_input((5u << 20) + 3, 33), *out = malloc((5u << 20) + 3);
	for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
		for (size_t g = 0; g < sizeof rings / sizeof *rings; g++) {
			int fds[2];
			assert_int_equal(pipe(fds), 0);
			struct pipe_writer pw = { fds[1], data, sizes[z] };
			pthread_t t;
			assert_int_equal(pthread_create(&t, NULL, write_pipe, &pw), 0);
			struct kbv_readahead *r;
			assert_int_equal(kbv_readahead_start(fds[0], "dump", room, piece, rings[g], &r), 0);
			uint8_t *buf = malloc(room + piece);
			size_t total = 0, got;
			int eof = 0;
			for (;;) {
				uint8_t *before = buf;
				assert_int_equal(kbv_readahead_take(r, &buf, &got, &eof), 0);
				if (eof) {
					assert_int_equal(got, 0);
					assert_ptr_equal(buf, before); /* nothing handed over at the end */
					break;
				}
				assert_true(got > 0 && got <= piece);
				assert_true(got == piece || total + got == sizes[z]); /* short only at the end */
				memcpy(out + total, buf + room, got);
				total += got;
			}
			assert_int_equal(total, sizes[z]);
			assert_memory_equal(out, data, total);
			/* and again: the end stays the end */
			assert_int_equal(kbv_readahead_take(r, &buf, &got, &eof), 0);
			assert_true(eof);
			kbv_readahead_stop(r);
			free(buf);
			pthread_join(t, NULL);
			close(fds[0]);
		}
	/* stopped while the pipe is idle (its writer neither writes nor closes): it returns (the
	 * thread waits in poll(2) with the stop's eventfd beside the pipe; a hang fails the run) */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, 1000), 1000);
	struct kbv_readahead *r;
	assert_int_equal(kbv_readahead_start(fds[0], "dump", room, piece, 2, &r), 0);
	usleep(20000); /* the thread has read the 1,000 bytes and waits for more */
	kbv_readahead_stop(r);
	close(fds[0]);
	close(fds[1]);
	/* a read that fails names the input and the byte, after the pieces before it */
	char path[] = "/tmp/kbv-test-ahead-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	int wfd = open(path, O_WRONLY);
	assert_true(wfd >= 0);
	assert_int_equal(kbv_readahead_start(wfd, "dump", room, piece, 2, &r), 0);
	uint8_t *buf = malloc(room + piece);
	size_t got;
	int eof;
	assert_int_equal(kbv_readahead_take(r, &buf, &got, &eof), KBV_EIO);
	assert_non_null(strstr(kbv_errmsg(), "read 'dump' at byte 0: Bad file descriptor"));
	assert_int_equal(got, 0);
	kbv_readahead_stop(r);
	free(buf);
	close(wfd);
	close(fd);
	unlink(path);
	free(data);
	free(out);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_4k), cmocka_unit_test(test_reference_8k),
		cmocka_unit_test(test_reference_64k), cmocka_unit_test(test_odd_lengths),
		cmocka_unit_test(test_bad_params),    cmocka_unit_test(test_resync),
		cmocka_unit_test(test_golden),        cmocka_unit_test(test_parallel_cuts),
		cmocka_unit_test(test_parallel_reads), cmocka_unit_test(test_pipe_read_ahead),
	};
	return cmocka_run_group_tests_name("chunker", tests, NULL, NULL);
}
