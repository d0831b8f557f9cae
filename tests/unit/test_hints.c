/* Cut hints (engine/hints.h): a stream cut with last time's cuts tried first is cut exactly
 * as the scan cuts it, whatever the stream became (unchanged, edited, shorter, longer) and
 * whatever the hints file holds (nothing, damage, another key, another chunker); the cuts
 * of an unchanged or lightly edited stream come mostly from the hints; a failed stream
 * keeps the file of the last one that was stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/cutter.h"
#include "engine/hints.h"
#include "kbv/chunker.h"

static char dir[64];
static uint8_t key[32];

/* Random bytes with runs that repeat (a dump's rows): both kinds of cut. */
static uint8_t *make_input(size_t n, uint8_t fill)
{
	uint8_t k[32], nonce[24] = { 0 };
	uint8_t *p = calloc(1, n);
	memset(k, fill, sizeof k);
	crypto_stream_xchacha20_xor(p, p, n, nonce, k);
	for (size_t off = n / 3; off + 300 < n / 2; off += 300)
		memcpy(p + off, p + n / 3, 300);
	return p;
}

/* The scan's cuts of the whole input, one chunk after another. */
static uint32_t *reference(const struct kbv_cdc *c, const uint8_t *p, size_t n, size_t *count)
{
	uint32_t *lens = malloc((n / c->min + 2) * sizeof *lens);
	size_t k = 0;
	for (size_t pos = 0; pos < n; k++) {
		lens[k] = (uint32_t)kbv_cdc_cut(c, p + pos, n - pos);
		pos += lens[k];
	}
	*count = k;
	return lens;
}

/* Cut p as the writer does (engine/writer.c): slots of `slot` + max bytes, each holding the
 * previous slot's uncut tail, cut up to `slot` bytes; with hints for `name` when key is
 * given (the stream then stored, ok, or failed). Checks the cuts are the scan's; returns
 * the bytes the hints cut. */
static uint64_t cut_stream(struct kbv_cutter *k, const struct kbv_cdc *c, const uint8_t *k32, const char *name,
			   const uint8_t *p, size_t n, size_t slot, int ok)
{
	size_t want_n, cap = slot + c->max, maxn = slot / c->min + 2, tail = 0, pos = 0, got_n = 0;
	uint32_t *want = reference(c, p, n, &want_n);
	uint32_t *lens = malloc(maxn * sizeof *lens);
	struct kbv_hints *h = NULL;
	if (k32)
		assert_int_equal(kbv_hints_open(dir, k32, name, c, &h), 0);
	if (k32)
		assert_non_null(h);
	size_t fed = 0;
	while (fed < n || tail) {
		size_t take = cap - tail < n - fed ? cap - tail : n - fed;
		size_t have = tail + take;
		int eof = fed + take == n;
		fed += take;
		size_t cnt, len;
		const uint8_t *s = p + pos;
		if (h)
			len = kbv_hints_cut(h, k, s, have, eof, slot, lens, maxn, &cnt);
		else
			len = kbv_cutter_cut(k, c, s, have, eof, slot, lens, maxn, &cnt);
		for (size_t i = 0; i < cnt; i++) {
			assert_true(got_n < want_n);
			assert_int_equal(lens[i], want[got_n]);
			got_n++;
		}
		pos += len;
		tail = have - len;
		assert_true(len || !eof || !have);
	}
	assert_int_equal(pos, n);
	assert_int_equal(got_n, want_n);
	uint64_t taken = kbv_hints_taken(h);
	kbv_hints_close(h, ok);
	free(want);
	free(lens);
	return taken;
}

static size_t files_in_dir(void)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The one file in dir (the tests use one name at a time). */
static void only_file(char *path, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	path[0] = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(path, cap, "%s/%s", dir, e->d_name);
	closedir(d);
	assert_true(path[0]);
}

static void clear_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
}

static void test_edits(void **state)
{
	(void)state;
	static const uint8_t zero[32];
	struct kbv_cdc c;
	assert_int_equal(kbv_cdc_init(&c, zero, 256, 1024, 4096), 0);
	size_t n = 6u << 20;
	uint8_t *a = make_input(n, 7);
	uint8_t *b = malloc(n + 100000);
	size_t segs[] = { 1, 2 }, slots[] = { 64u << 10, (1u << 20) + 777 };
	for (size_t g = 0; g < 2; g++)
		for (size_t z = 0; z < 2; z++) {
			struct kbv_cutter *k;
			size_t slot = slots[z];
			assert_int_equal(kbv_cutter_new(&c, segs[g], slot / c.min + 2, &k), 0);
			clear_dir();
			/* the first time: no file, the scan's cuts, recorded */
			assert_int_equal(cut_stream(k, &c, key, "db/dump", a, n, slot, 1), 0);
			assert_int_equal(files_in_dir(), 1);
			/* unchanged: all but the last chunk from the hints */
			uint64_t t = cut_stream(k, &c, key, "db/dump", a, n, slot, 1);
			assert_true(t > n - c.max - 1 && t < n);
			/* edited: 100 bytes inserted, 5,000 removed, one changed, 3 bytes appended */
			size_t m = 0;
			memcpy(b, a, 1u << 20);
			m = 1u << 20;
			memset(b + m, 'x', 100);
			m += 100;
			memcpy(b + m, a + (1u << 20), (2u << 20));
			m += 2u << 20;
			memcpy(b + m, a + (3u << 20) + 5000, n - (3u << 20) - 5000);
			m += n - (3u << 20) - 5000;
			b[(5u << 20)] ^= 1;
			memcpy(b + m, "end", 3);
			m += 3;
			t = cut_stream(k, &c, key, "db/dump", b, m, slot, 1);
			/* what is lost: the chunks at each edit, and (past an edit) the rest of the
			 * slot, taken by the scan, until a chunk of last time is met again */
			assert_true(t > m - 4 * slot - 3 * 4 * c.max);
			/* back to a: the hints are b's now */
			t = cut_stream(k, &c, key, "db/dump", a, n, slot, 1);
			assert_true(t > n - 4 * slot - 3 * 4 * c.max);
			/* shorter, and longer: the end of the stream's last cut is no hint */
			assert_true(cut_stream(k, &c, key, "db/dump", a, n / 2 + 1, slot, 1) > 0);
			memcpy(b, a, n);
			memcpy(b + n, a, 100000);
			assert_true(cut_stream(k, &c, key, "db/dump", b, n / 2 + 5000, slot, 1) > n / 2 - 2 * c.max);
			assert_true(cut_stream(k, &c, key, "db/dump", b, n + 100000, slot, 1) > n / 2);
			/* long runs of one chunk (zeros: max-size chunks all alike), longer than
			 * last time's, then shorter */
			memset(b, 0, n);
			memcpy(b + n / 2, a, 100000);
			assert_true(cut_stream(k, &c, key, "db/zeros", b, n, slot, 1) == 0);
			assert_true(cut_stream(k, &c, key, "db/zeros", b, n, slot, 1) > n - 2 * c.max);
			assert_true(cut_stream(k, &c, key, "db/zeros", b + 1000, n - 1000, slot, 1) > n / 2);
			assert_true(cut_stream(k, &c, key, "db/zeros", b, n, slot, 1) > n / 2);
			/* another stream's name has no hints yet */
			assert_int_equal(cut_stream(k, &c, key, "db/other", a, n, slot, 1), 0);
			assert_int_equal(files_in_dir(), 3);
			kbv_cutter_free(k);
		}
	free(a);
	free(b);
}

static void test_damaged_files(void **state)
{
	(void)state;
	static const uint8_t zero[32];
	struct kbv_cdc c, other;
	assert_int_equal(kbv_cdc_init(&c, zero, 256, 1024, 4096), 0);
	assert_int_equal(kbv_cdc_init(&other, zero, 512, 1024, 4096), 0);
	size_t n = 2u << 20, slot = 256u << 10;
	uint8_t *a = make_input(n, 9);
	struct kbv_cutter *k;
	char path[512];
	assert_int_equal(kbv_cutter_new(&c, 2, slot / c.min + 2, &k), 0);
	clear_dir();
	cut_stream(k, &c, key, "s", a, n, slot, 1);
	only_file(path, sizeof path);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((st.st_mode & 0777), 0600);
	uint8_t *good = malloc((size_t)st.st_size);
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, good, (size_t)st.st_size), st.st_size);
	close(fd);
	/* the file under another key's name for the stream (copied there), and under another
	 * chunker: no hints taken, and the cuts are still the scan's */
	uint8_t key2[32], nh[32];
	char hex[65], path2[600];
	randombytes_buf(key2, sizeof key2); /* another repository's */
	crypto_generichash_blake2b(nh, sizeof nh, (const uint8_t *)"s", 1, key2, sizeof key2);
	sodium_bin2hex(hex, sizeof hex, nh, sizeof nh);
	snprintf(path2, sizeof path2, "%s/%s", dir, hex);
	fd = open(path2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, good, (size_t)st.st_size), st.st_size);
	close(fd);
	assert_int_equal(cut_stream(k, &c, key2, "s", a, n, slot, 0), 0);
	unlink(path2);
	assert_int_equal(cut_stream(NULL, &other, key, "s", a, n, slot, 0), 0); /* the plain loop: a cutter is made for one chunker */
	/* damage: each leaves the cuts the scan's */
	size_t len = (size_t)st.st_size;
	uint8_t *bad = malloc(len);
	for (int v = 0; v < 8; v++) {
		size_t blen = len;
		memcpy(bad, good, len);
		switch (v) {
		case 0: blen = len - 5; break;                   /* torn */
		case 1: blen = 40; break;                        /* a header and no records */
		case 2: bad[0] ^= 1; break;                      /* magic */
		case 3: bad[32] ^= 1; break;                     /* count */
		case 4: randombytes_buf(bad + 40, len - 40); break; /* records */
		case 5:                                          /* lengths of 0, min, max + 1, huge */
			for (size_t r = 0; 40 + r * 12 + 12 <= len; r++) {
				static const uint32_t l[] = { 0, 256, 4097, 0xffffffffu };
				uint8_t *q = bad + 40 + r * 12;
				q[0] = (uint8_t)l[r % 4];
				q[1] = (uint8_t)(l[r % 4] >> 8);
				q[2] = (uint8_t)(l[r % 4] >> 16);
				q[3] = (uint8_t)(l[r % 4] >> 24);
			}
			break;
		case 6: blen = 7; break; /* shorter than a header */
		case 7: blen = 0; break;
		}
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad, blen), (ssize_t)blen);
		close(fd);
		assert_int_equal(cut_stream(k, &c, key, "s", a, n, slot, 0), 0);
	}
	/* a stream that failed leaves the file as it was, and no temporary file */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, good, len), (ssize_t)len);
	close(fd);
	cut_stream(k, &c, key, "s", a, n / 3, slot, 0);
	assert_int_equal(files_in_dir(), 1);
	assert_true(cut_stream(k, &c, key, "s", a, n, slot, 1) > n - 2 * c.max);
	/* a folder that cannot be made: no hints, no error */
	struct kbv_hints *h = (struct kbv_hints *)1;
	assert_int_equal(kbv_hints_open("/proc/no/such/dir", key, "s", &c, &h), 0);
	assert_null(h);
	kbv_cutter_free(k);
	free(good);
	free(bad);
	free(a);
}

/* Files no stream rewrote for 62 days go, and a crash's temporary files after a day. */
static void test_prune(void **state)
{
	(void)state;
	static const char *names[] = { "old", "recent", "tmp-old", "tmp-recent" };
	static const long age[] = { 63 * 86400L, 61 * 86400L, 2 * 86400L, 3600L };
	char path[512];
	clear_dir();
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		int fd = open(path, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		struct timespec t[2] = { { time(NULL) - age[i], 0 }, { time(NULL) - age[i], 0 } };
		assert_int_equal(futimens(fd, t), 0);
		close(fd);
	}
	kbv_hints_prune(dir);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		assert_int_equal(access(path, F_OK) == 0, i % 2);
	}
	kbv_hints_prune("/proc/no/such/dir"); /* nothing to do */
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/kbv-hints-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	randombytes_buf(key, sizeof key);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	clear_dir();
	rmdir(dir);
	return 0;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edits),
		cmocka_unit_test(test_damaged_files),
		cmocka_unit_test(test_prune),
	};
	return cmocka_run_group_tests_name("hints", tests, setup, teardown);
}
