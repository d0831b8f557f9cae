/* The one-table filter (kbv/pgtable.h) on any bytes: it keeps or drops, never crashes, and
 * its result does not depend on how the stream is split (the header's "any split"): fed
 * whole, in two pieces where the first byte says, and in small pieces of a size the second
 * byte says, it writes the same bytes, ends with the same status and names the same things
 * left out. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/buf.h"
#include "kbv/pgtable.h"

/* Appends what the filter writes to a kbv_buf. */
static int collect(void *arg, const char *p, size_t n)
{
	if (n && !p)
		return -1;
	return kbv_buf_add(arg, p, n);
}

struct run {
	struct kbv_buf out; /* what it wrote (all zero: KBV_BUF_INIT) */
	int rc;		/* the first non-zero status of feed or end, else end's */
	char *left_out; /* a copy of what the filter names as left out */
};

/* Feed data in pieces of `piece` bytes, except that the first piece is `first` bytes. */
static void run_filter(const uint8_t *data, size_t size, size_t first, size_t piece, struct run *r)
{
	struct kbv_pgtable_filter *f;
	memset(r, 0, sizeof *r);
	if (kbv_pgtable_filter_new("app", "docs", "app.docs", collect, &r->out, &f) != 0)
		abort();
	size_t off = 0, n = first;
	while (off < size && r->rc == 0) {
		if (n > size - off)
			n = size - off;
		r->rc = kbv_pgtable_filter_feed(f, data + off, n);
		off += n;
		n = piece;
	}
	if (r->rc == 0)
		r->rc = kbv_pgtable_filter_end(f);
	const char *lo = kbv_pgtable_filter_left_out(f);
	r->left_out = strdup(lo ? lo : "");
	if (!r->left_out)
		abort();
	kbv_pgtable_filter_free(f);
}

static void same(const struct run *a, const struct run *b)
{
	if (a->rc != b->rc || a->out.len != b->out.len || (a->out.len && memcmp(a->out.data, b->out.data, a->out.len)) ||
	    strcmp(a->left_out, b->left_out))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, two, small;
	size_t cut = size ? data[0] % (size + 1) : 0;
	size_t piece = size > 1 ? 1 + data[1] % 16 : 1;
	run_filter(data, size, size, size ? size : 1, &whole);
	run_filter(data, size, cut, size ? size : 1, &two);
	run_filter(data, size, piece, piece, &small);
	same(&whole, &two);
	same(&whole, &small);
	struct run *all[] = {&whole, &two, &small};
	for (size_t i = 0; i < 3; i++) {
		kbv_buf_release(&all[i]->out);
		free(all[i]->left_out);
	}
	return 0;
}
