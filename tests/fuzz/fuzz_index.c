/* Index entries (format/index.md) as an attacker who can write the index would set them:
 * the index is a cache and is not authenticated, so a reader must never hand out a wrong
 * byte, crash or loop whatever a blob's location or a pack's entry says.
 *
 * Set up once: an encrypted repository holding a few streams; every blob's content is read
 * and kept. Input: byte 0 picks a blob; the next 29 bytes replace its location; 28 more
 * (when present) replace the entry of the pack that location names. The blob is then read
 * through the index: it must fail cleanly or give exactly its content. The index is put
 * back afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "kbv/error.h"
#include "store/pack.h"
#include "kbv/writer.h"
#include "store/repo_impl.h"

#define LOC 29
#define PACK 28

static struct kbv_repo *repo;
static struct kbv_codec *codec;
static size_t nblobs;
static struct blob {
	uint8_t id[KBV_ID_BYTES];
	uint8_t loc[LOC];
	uint8_t type;
	struct kbv_buf plain;
} *blobs;
static size_t npacks;
static struct pack {
	unsigned int no;
	uint8_t val[PACK];
} *packs;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_index: %s: %s\n", what, kbv_errmsg());
	abort();
}

static int add_blob(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *l)
{
	(void)arg;
	struct blob *b = &blobs[nblobs++];
	memcpy(b->id, id, KBV_ID_BYTES);
	kbv_put32(b->loc, l->pack);
	kbv_put32(b->loc + 4, l->offset);
	kbv_put32(b->loc + 8, l->stored_len);
	kbv_put32(b->loc + 12, l->raw_off);
	kbv_put32(b->loc + 16, l->raw_len);
	kbv_put64(b->loc + 20, l->xxh);
	b->loc[28] = l->type;
	b->type = l->type;
	return 0;
}

static int add_pack(void *arg, uint32_t no, const struct kbv_pack_info *info)
{
	(void)arg;
	struct pack *p = &packs[npacks++];
	p->no = no;
	memcpy(p->val, info->id, KBV_PACKID_BYTES);
	kbv_put64(p->val + 16, info->size);
	kbv_put32(p->val + 24, info->blobs);
	return 0;
}

static char dir[] = "/tmp/kbv-fuzz-index-XXXXXX";

static void cleanup(void)
{
	char cmd[64];
	kbv_codec_free(codec);
	kbv_repo_close(repo);
	for (size_t i = 0; i < nblobs; i++)
		kbv_buf_release(&blobs[i].plain);
	free(blobs);
	free(packs);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_index: could not remove %s\n", dir);
}

static void setup(void)
{
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	struct kbv_init_opts o = { .encrypted = 1, .kdf_ops = 1, .kdf_mem = 8 << 20, .chunk_avg = 1024 };
	struct kbv_writer *w;
	struct kbv_stream_result res;
	if (kbv_repo_init(dir, &o, "pw", 2) < 0 || kbv_repo_open(dir, KBV_LOCK_NONE, &repo) < 0 ||
	    kbv_repo_unlock(repo, "pw", 2) < 0 || kbv_writer_new(repo, 1, &w) < 0)
		die("set up");
	kbv_index_set_nosync(repo->idx); /* thousands of index writes a second, not fsyncs */
	for (int s = 0; s < 3; s++) {
		size_t n = 20000 + 7000 * (size_t)s;
		uint8_t *p = malloc(n);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)((i * (size_t)(s + 3)) ^ (i >> 7) ^ (i % 251 == 0 ? 0x5a : 0));
		if (kbv_writer_mem(w, p, n, &res) < 0)
			die("store");
		free(p);
	}
	if (kbv_writer_flush(w) < 0)
		die("flush");
	kbv_writer_free(w);
	codec = kbv_codec_new(repo->keys, repo->encrypted, repo->zstd_level);
	blobs = calloc(4096, sizeof *blobs);
	packs = calloc(256, sizeof *packs);
	MDB_txn *txn;
	if (kbv_index_rbegin(repo->idx, &txn) < 0 || kbv_index_each_blob(repo->idx, txn, add_blob, NULL) < 0 ||
	    kbv_index_each_pack(repo->idx, txn, add_pack, NULL) < 0 || nblobs == 0 || nblobs > 4096)
		die("index");
	struct kbv_packfds fds;
	struct kbv_buf stored = KBV_BUF_INIT;
	kbv_packfds_init(&fds);
	for (size_t i = 0; i < nblobs; i++)
		if (kbv_pack_read_blob(repo, txn, codec, &fds, blobs[i].type, blobs[i].id, &stored, &blobs[i].plain) < 0)
			die("read");
	kbv_packfds_release(&fds);
	kbv_buf_release(&stored);
	kbv_index_rend(txn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!repo)
		setup();
	if (size < 1 + LOC)
		return 0;
	struct blob *b = &blobs[data[0] % nblobs];
	unsigned int pno = kbv_get32(data + 1);
	if (kbv_index_put_raw(repo->idx, 0, b->id, KBV_ID_BYTES, data + 1, LOC) < 0)
		die("put blob");
	if (size >= 1 + LOC + PACK && kbv_index_put_raw(repo->idx, 1, &pno, sizeof pno, data + 1 + LOC, PACK) < 0)
		die("put pack");

	MDB_txn *txn;
	struct kbv_packfds fds;
	struct kbv_buf stored = KBV_BUF_INIT, out = KBV_BUF_INIT;
	if (kbv_index_rbegin(repo->idx, &txn) < 0)
		die("begin");
	kbv_packfds_init(&fds);
	for (int type = 0; type < 2; type++) { /* as recorded, and as whatever the entry says */
		int t = type ? data[1 + 28] : b->type;
		int rc = kbv_pack_read_blob(repo, txn, codec, &fds, t, b->id, &stored, &out);
		if (rc == 0 && (out.len != b->plain.len || memcmp(out.data, b->plain.data, out.len) != 0))
			abort(); /* a wrong byte handed out as the blob */
	}
	kbv_packfds_release(&fds);
	kbv_index_rend(txn);
	kbv_buf_release(&stored);
	kbv_buf_release(&out);

	/* put the index back */
	if (kbv_index_put_raw(repo->idx, 0, b->id, KBV_ID_BYTES, b->loc, LOC) < 0)
		die("restore blob");
	if (size >= 1 + LOC + PACK) {
		const uint8_t *orig = NULL;
		for (size_t i = 0; i < npacks && !orig; i++)
			if (packs[i].no == pno)
				orig = packs[i].val;
		if (kbv_index_put_raw(repo->idx, 1, &pno, sizeof pno, orig, orig ? PACK : 0) < 0)
			die("restore pack");
	}
	return 0;
}
