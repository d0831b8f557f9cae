/* Writes the initial corpus: valid encodings of each artifact (make fuzz-seeds). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/idxobj.h"
#include "store/pack.h"
#include "kbv/snapshot.h"
#include "hints_input.h"
#include "lockrec_input.h"
#include "store/retain.h"
#include "kbv/fsio.h"

#include <stdlib.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	mkdir("tests/fuzz/corpus", 0755);
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	fwrite(p, 1, n, f);
	fclose(f);
}

int main(void)
{
	struct kbv_entry e[3] = {
		{ KBV_ENTRY_STDIN, "kb.sql", 0600, 1764072000, 5, 1234, { KBV_DIGEST_XXH3_128, { 1 } }, { 1, { 9 } }, NULL, 0, 0, "", "" },
		{ KBV_ENTRY_DIR, "etc", 040755, 1, 0, 0, { 0, { 0 } }, { KBV_REF_EMPTY, { 0 } }, NULL, 0, 0, "root", "root" },
		{ KBV_ENTRY_SYMLINK, "etc/l", 0120777, 2, 3, 1, { 0, { 0 } }, { KBV_REF_EMPTY, { 0 } }, "t", 108, 114, "postgres", "" },
	};
	struct kbv_buf b = KBV_BUF_INIT;
	kbv_entries_encode(e, 3, &b);
	put("tests/fuzz/corpus/entries", "three-entries", b.data, b.len);
	char *tags[] = { "nightly" };
	struct kbv_snapshot s = { .time = 1764072000, .tzoff = 3600, .host = "db1", .tags = tags, .ntags = 1,
				  .nentries = 3, .total_size = 1234, .table_ref = { 0, { 7 } }, .table_size = b.len };
	b.len = 0;
	kbv_snapshot_encode_body(&s, &b);
	put("tests/fuzz/corpus/body", "body", b.data, b.len);

	/* bundle: [off u32][len u32] + table of 2 members + contents */
	b.len = 0;
	kbv_buf_add_u32(&b, kbv_bundle_offset(2, 0));
	kbv_buf_add_u32(&b, 5);
	kbv_buf_add_u32(&b, 2);
	uint8_t id[32] = { 0xaa };
	kbv_buf_add(&b, id, 32);
	kbv_buf_add_u32(&b, 5);
	id[0] = 0xbb;
	kbv_buf_add(&b, id, 32);
	kbv_buf_add_u32(&b, 3);
	kbv_buf_add(&b, "hello", 5);
	kbv_buf_add(&b, "abc", 3);
	put("tests/fuzz/corpus/bundle", "two-members", b.data, b.len);

	/* trailer: [trailer offset u64] + count + entries */
	b.len = 0;
	kbv_buf_add_u64(&b, 4096);
	kbv_buf_add_u32(&b, 2);
	for (int i = 0; i < 2; i++) {
		kbv_buf_add_u8(&b, KBV_BLOB_DATA);
		memset(id, i, 32);
		kbv_buf_add(&b, id, 32);
		kbv_buf_add_u32(&b, KBV_PACK_HEADER);
		kbv_buf_add_u32(&b, 1000);
		kbv_buf_add_u32(&b, kbv_bundle_offset(2, i ? 300 : 0));
		kbv_buf_add_u32(&b, 300);
		kbv_buf_add_u64(&b, 0x1234);
	}
	put("tests/fuzz/corpus/trailer", "two-entries", b.data, b.len);

	/* index object body: two packs, the first with the two entries above, the second empty */
	struct kbv_buf body = KBV_BUF_INIT, ents = KBV_BUF_INIT;
	size_t n;
	kbv_trailer_parse(b.data + 8, b.len - 8, 4096, "seed", &ents, &n);
	struct kbv_pack_info pi = { { 1, 2, 3 }, 4096, 2 };
	kbv_buf_add_u32(&body, 2);
	kbv_idxobj_add_pack(&body, &pi, (const struct kbv_pack_entry *)ents.data, n);
	pi.id[0] = 9;
	pi.size = 200;
	kbv_idxobj_add_pack(&body, &pi, NULL, 0);
	put("tests/fuzz/corpus/idxobj", "two-packs", body.data, body.len);
	kbv_buf_release(&body);
	kbv_buf_release(&ents);
	kbv_buf_release(&b);

	/* hints: the file the writer records for the fuzz target's stream, and two of its
	 * shortenings (a header alone, a record torn) */
	char dir[64] = "/tmp/kbv-seeds-XXXXXX", path[256];
	struct kbv_cdc c;
	struct kbv_hints *h;
	uint8_t *in = malloc(HINTS_N);
	size_t maxn = HINTS_N / 256 + HINTS_N / HINTS_SLOT + 2;
	uint32_t *lens = malloc(maxn * sizeof *lens);
	if (sodium_init() < 0 || !mkdtemp(dir) || hints_cdc(&c) < 0 || kbv_hints_open(dir, hints_key, HINTS_NAME, &c, &h) < 0 || !h)
		return 1;
	hints_stream(in);
	hints_cut_all(h, &c, in, HINTS_N, lens, maxn);
	kbv_hints_close(h, 1);
	hints_file(dir, path, sizeof path);
	struct kbv_buf f = KBV_BUF_INIT;
	if (kbv_read_file(path, &f) < 0)
		return 1;
	put("tests/fuzz/corpus/hints", "recorded", f.data, f.len);
	put("tests/fuzz/corpus/hints", "header-only", f.data, 40);
	put("tests/fuzz/corpus/hints", "torn", f.data, f.len - 5);
	unlink(path);
	rmdir(dir);
	kbv_buf_release(&f);
	free(in);
	free(lens);

	/* lockrec: the line written for two numbers, the version 1 line of older builds, and
	 * the line cut before its MAC */
	struct kbv_keys lk;
	char line[KBV_LOCKREC_MAX];
	lockrec_keys(&lk);
	int ln = kbv_lockrec_format(&lk, 1764806400, 1764892800, line, sizeof line);
	if (ln < 0)
		return 1;
	put("tests/fuzz/corpus/lockrec", "written", line, (size_t)ln);
	put("tests/fuzz/corpus/lockrec", "no-mac", line, 44);
	static const char v1[] = "kbvault-object-lock 1 1764806400 1764892800\n";
	put("tests/fuzz/corpus/lockrec", "version-1", v1, sizeof v1 - 1);
	return 0;
}
