/* A cut-hints file (format/repository.md, "Cut hints") as it might be found in the cache
 * directory: damaged, torn, of another chunker, or rearranged. Whatever it holds, the
 * stream is cut into exactly the chunks the scan cuts (a hint is taken only where the
 * bytes have its length and keyed hash, which this fuzzer cannot forge), and the hints
 * close cleanly. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "hints_input.h"

static char dir[64];

static void cleanup(void)
{
	char path[256];
	hints_file(dir, path, sizeof path);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kbv_cdc c;
	static uint8_t *in;
	static uint32_t *want, *lens;
	static size_t nwant, maxn;
	char path[256];
	if (!in) {
		snprintf(dir, sizeof dir, "/tmp/kbv-fuzz-hints-XXXXXX");
		if (sodium_init() < 0 || !mkdtemp(dir) || hints_cdc(&c) < 0)
			abort();
		atexit(cleanup);
		in = malloc(HINTS_N);
		maxn = HINTS_N / c.min + HINTS_N / HINTS_SLOT + 2;
		want = malloc(maxn * sizeof *want);
		lens = malloc(maxn * sizeof *lens);
		hints_stream(in);
		for (size_t pos = 0; pos < HINTS_N; nwant++) {
			want[nwant] = (uint32_t)kbv_cdc_cut(&c, in + pos, HINTS_N - pos);
			pos += want[nwant];
		}
	}
	hints_file(dir, path, sizeof path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	struct kbv_hints *h;
	if (kbv_hints_open(dir, hints_key, HINTS_NAME, &c, &h) < 0 || !h)
		abort();
	size_t n = hints_cut_all(h, &c, in, HINTS_N, lens, maxn);
	if (n != nwant || memcmp(lens, want, n * sizeof *lens) || kbv_hints_taken(h) > HINTS_N)
		abort();
	kbv_hints_close(h, 0);
	return 0;
}
