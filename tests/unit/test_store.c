/* The store layer without the engine: a pack written with kbv_packw and read back through
 * its trailer and the index; damage (a flipped byte, a truncated pack, a pack the index
 * names that is gone) is an error naming the pack, never a wrong byte; the index keeps the
 * first location of a blob, survives a reopen, and gc_commit moves and drops locations.
 * Metadata cache entries open only under their own keys, kind and id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include <unistd.h>

#include "kbv/error.h"
#include "store/metacache.h"
#include "store/retain.h"
#include "store/pack.h"
#include "store/repo_impl.h"

#define NBLOBS 40

static char dir[64];
static struct kbv_repo *repo;
static struct kbv_codec *codec;
static uint8_t ids[NBLOBS][KBV_ID_BYTES];
static struct kbv_buf blobs[NBLOBS];

static void blob_content(size_t i, struct kbv_buf *b)
{
	b->len = 0;
	for (size_t k = 0; k < 1000 + 37 * i; k++)
		assert_int_equal(kbv_buf_add_u8(b, (uint8_t)(k * (i + 1) ^ (k >> 3))), 0);
}

/* A pack of NBLOBS tree blobs (single-blob envelopes), indexed. */
static void write_pack(struct kbv_pack_info *info)
{
	struct kbv_packw *w;
	struct kbv_buf env = KBV_BUF_INIT;
	assert_int_equal(kbv_packw_new(repo, codec, &w), 0);
	for (size_t i = 0; i < NBLOBS; i++) {
		blob_content(i, &blobs[i]);
		kbv_blob_id(repo->keys, KBV_BLOB_TREE, blobs[i].data, blobs[i].len, ids[i]);
		assert_int_equal(kbv_blob_encode(codec, KBV_BLOB_TREE, ids[i], blobs[i].data, blobs[i].len, &env), 0);
		assert_int_equal(kbv_packw_add(w, KBV_BLOB_TREE, ids[i], env.data, env.len, (uint32_t)blobs[i].len), 0);
	}
	assert_int_equal(kbv_packw_count(w), NBLOBS);
	struct kbv_buf copy = KBV_BUF_INIT;
	assert_int_equal(kbv_buf_add(&copy, kbv_packw_entries(w), NBLOBS * sizeof(struct kbv_pack_entry)), 0);
	assert_int_equal(kbv_packw_finish(w, 0, info), 0);
	kbv_packw_free(w);
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)copy.data;
	size_t n = NBLOBS;
	assert_int_equal(kbv_index_add_packs(repo->idx, info, &e, &n, 1), 0);
	kbv_buf_release(&copy);
	kbv_buf_release(&env);
}

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof dir, "/tmp/kbv-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct kbv_init_opts o = { .encrypted = 1, .kdf_ops = 1, .kdf_mem = 8 << 20 };
	assert_int_equal(kbv_repo_init(dir, &o, "pw", 2), 0);
	assert_int_equal(kbv_repo_open(dir, KBV_LOCK_SHARED, &repo), 0);
	assert_int_equal(kbv_repo_unlock(repo, "pw", 2), 0);
	codec = kbv_codec_new(repo->keys, repo->encrypted, repo->zstd_level);
	assert_non_null(codec);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	kbv_codec_free(codec);
	kbv_repo_close(repo);
	for (size_t i = 0; i < NBLOBS; i++)
		kbv_buf_release(&blobs[i]);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void read_all(MDB_txn *txn, int expect)
{
	struct kbv_packfds fds;
	struct kbv_buf stored = KBV_BUF_INIT, out = KBV_BUF_INIT;
	kbv_packfds_init(&fds);
	for (size_t i = 0; i < NBLOBS; i++) {
		int rc = kbv_pack_read_blob(repo, txn, codec, &fds, KBV_BLOB_TREE, ids[i], &stored, &out);
		if (expect == 0) {
			assert_int_equal(rc, 0);
			assert_int_equal(out.len, blobs[i].len);
			assert_memory_equal(out.data, blobs[i].data, out.len);
		} else if (rc == 0) { /* a blob the damage did not reach: still exactly right */
			assert_memory_equal(out.data, blobs[i].data, blobs[i].len);
		} else {
			assert_int_equal(rc, expect);
			assert_non_null(strstr(kbv_errmsg(), "pack"));
		}
	}
	kbv_packfds_release(&fds);
	kbv_buf_release(&stored);
	kbv_buf_release(&out);
}

static void test_pack_round_trip_and_damage(void **st)
{
	(void)st;
	struct kbv_pack_info info;
	write_pack(&info);
	assert_int_equal(info.blobs, NBLOBS);

	/* the trailer lists what was written */
	struct kbv_buf entries = KBV_BUF_INIT;
	size_t n;
	uint64_t size;
	assert_int_equal(kbv_pack_read_trailer(repo, codec, info.id, &entries, &n, &size), 0);
	assert_int_equal(n, NBLOBS);
	assert_int_equal(size, info.size);
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(e[i].id, ids[i], KBV_ID_BYTES);

	/* every blob through the index */
	MDB_txn *txn;
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	read_all(txn, 0);

	/* a flipped byte in blob 7's envelope: that blob fails, naming the pack and offset */
	char hex[2 * KBV_PACKID_BYTES + 1], path[300];
	kbv_hex(info.id, KBV_PACKID_BYTES, hex);
	snprintf(path, sizeof path, "%s/data/%.2s/%s.pack", dir, hex, hex);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, (long)e[7].offset + 20, SEEK_SET);
	int c = fgetc(f);
	fseek(f, (long)e[7].offset + 20, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
	struct kbv_packfds fds;
	struct kbv_buf stored = KBV_BUF_INIT, out = KBV_BUF_INIT;
	kbv_packfds_init(&fds);
	assert_int_equal(kbv_pack_read_blob(repo, txn, codec, &fds, KBV_BLOB_TREE, ids[7], &stored, &out), KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), "checksum mismatch"));
	assert_non_null(strstr(kbv_errmsg(), hex));
	assert_int_equal(kbv_pack_read_blob(repo, txn, codec, &fds, KBV_BLOB_TREE, ids[8], &stored, &out), 0);
	assert_memory_equal(out.data, blobs[8].data, blobs[8].len);
	kbv_packfds_release(&fds);

	/* truncated in the middle: the trailer is unreadable; blobs before the cut still read */
	assert_int_equal(truncate(path, (off_t)e[20].offset), 0);
	assert_int_equal(kbv_pack_read_trailer(repo, codec, info.id, &entries, &n, &size), KBV_ECORRUPT);
	read_all(txn, KBV_ECORRUPT);

	/* gone: the index names a pack that is not there */
	assert_int_equal(unlink(path), 0);
	kbv_packfds_init(&fds);
	assert_int_equal(kbv_pack_read_blob(repo, txn, codec, &fds, KBV_BLOB_TREE, ids[0], &stored, &out), KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), hex));
	kbv_packfds_release(&fds);
	assert_int_equal(kbv_pack_read_trailer(repo, codec, info.id, &entries, &n, &size), KBV_ENOTFOUND);
	kbv_index_rend(txn);
	kbv_buf_release(&entries);
	kbv_buf_release(&stored);
	kbv_buf_release(&out);
}

static int count_blob(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	(void)id;
	(void)loc;
	(*(size_t *)arg)++;
	return 0;
}

static void test_index_first_location_reopen_and_gc(void **st)
{
	(void)st;
	struct kbv_pack_info a, b;
	MDB_txn *txn;
	struct kbv_loc la, lb;
	/* the previous test deleted its pack: gone from the index too, as gc would do */
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, ids[0], &la), 0);
	kbv_index_rend(txn);
	assert_int_equal(kbv_index_gc_commit(repo->idx, NULL, NULL, NULL, 0, &la.pack, 1), 0);
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, ids[0], &la), KBV_ENOTFOUND);
	kbv_index_rend(txn);
	write_pack(&a); /* the same blobs again ... */
	write_pack(&b); /* ... and a second copy: the first location stays */
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, ids[3], &la), 0);
	struct kbv_pack_info pi;
	assert_int_equal(kbv_index_pack(repo->idx, txn, la.pack, &pi), 0);
	assert_memory_equal(pi.id, a.id, KBV_PACKID_BYTES);
	uint32_t pack_a = la.pack;
	kbv_index_rend(txn);

	/* reopen: still there */
	kbv_index_close(repo->idx);
	char idir[128];
	snprintf(idir, sizeof idir, "%s/index", dir);
	assert_int_equal(kbv_index_file_check(idir), 0);
	assert_int_equal(kbv_index_open(idir, &repo->idx), 0);
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, ids[3], &lb), 0);
	assert_int_equal(lb.pack, pack_a);
	kbv_index_rend(txn);

	/* gc drops pack a: its blobs go with it; b's copies are not indexed (first location
	 * won), so a gc that wants them keeps them by re-adding b first */
	struct kbv_buf entries = KBV_BUF_INIT;
	size_t n;
	uint64_t size;
	assert_int_equal(kbv_pack_read_trailer(repo, codec, b.id, &entries, &n, &size), 0);
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	assert_int_equal(kbv_index_gc_commit(repo->idx, &b, &e, &n, 1, &pack_a, 1), 0);
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, ids[3], &lb), 0);
	assert_int_not_equal(lb.pack, pack_a);
	assert_int_equal(kbv_index_pack(repo->idx, txn, pack_a, &pi), KBV_ENOTFOUND);
	size_t count = 0;
	assert_int_equal(kbv_index_each_blob(repo->idx, txn, count_blob, &count), 0);
	assert_int_equal(count, NBLOBS);
	read_all(txn, 0);
	kbv_index_rend(txn);
	kbv_buf_release(&entries);
}

static int count_pack(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	(void)packno;
	(void)info;
	(*(size_t *)arg)++;
	return 0;
}

static size_t packs_indexed(void)
{
	MDB_txn *txn;
	size_t n = 0;
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_each_pack(repo->idx, txn, count_pack, &n), 0);
	kbv_index_rend(txn);
	return n;
}

/* Two processes may index the same pack (a snapshot that uploaded it, and another's cache
 * refresh that found it listed): the second add is a no-op, also when every blob of the
 * pack is located in another pack (then the pack table is searched), so no pack file ever
 * has two numbers for gc to judge apart. */
static void test_index_same_pack_twice(void **st)
{
	(void)st;
	struct kbv_pack_info info;
	write_pack(&info); /* indexed once */
	size_t before = packs_indexed();
	struct kbv_buf entries = KBV_BUF_INIT;
	size_t n;
	uint64_t size;
	assert_int_equal(kbv_pack_read_trailer(repo, codec, info.id, &entries, &n, &size), 0);
	const struct kbv_pack_entry *e = (const struct kbv_pack_entry *)entries.data;
	assert_int_equal(kbv_index_add_packs(repo->idx, &info, &e, &n, 1), 0);
	assert_int_equal(packs_indexed(), before);
	/* A pack whose blobs all live in an earlier pack: its first add is a real one... */
	struct kbv_pack_info dup = info;
	dup.id[0] ^= 0xff;
	assert_int_equal(kbv_index_add_packs(repo->idx, &dup, &e, &n, 1), 0);
	assert_int_equal(packs_indexed(), before + 1);
	/* ...its second is found by the search of the pack table. */
	assert_int_equal(kbv_index_add_packs(repo->idx, &dup, &e, &n, 1), 0);
	assert_int_equal(packs_indexed(), before + 1);
	kbv_buf_release(&entries);
}

/* A walk over the blobs table: is each id greater than the one before? */
struct walk {
	uint8_t last[KBV_ID_BYTES];
	size_t n;
	int ordered;
};

static int walk_blob(void *arg, const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc)
{
	struct walk *w = arg;
	(void)loc;
	w->ordered = (w->n == 0 || memcmp(w->last, id, KBV_ID_BYTES) < 0) && (w->n == 0 || w->ordered);
	memcpy(w->last, id, KBV_ID_BYTES);
	w->n++;
	return 0;
}

/* A group of packs is indexed in one transaction, its blobs put in key order: every blob
 * is found where its pack's trailer put it, and a blob stored in two packs of the group is
 * located in the first of them, as when the group was indexed in pack order. */
static void test_index_group_in_key_order(void **st)
{
	(void)st;
	enum { NP = 3, NE = 700 };
	struct kbv_pack_info info[NP];
	struct kbv_pack_entry *e[NP];
	const struct kbv_pack_entry *ce[NP];
	size_t counts[NP];
	for (size_t p = 0; p < NP; p++) {
		memset(&info[p], 0, sizeof info[p]);
		randombytes_buf(info[p].id, sizeof info[p].id);
		info[p].size = 1u << 20;
		info[p].blobs = NE;
		e[p] = calloc(NE, sizeof *e[p]);
		for (uint32_t i = 0; i < NE; i++) {
			e[p][i].type = KBV_BLOB_DATA;
			randombytes_buf(e[p][i].id, KBV_ID_BYTES);
			e[p][i].offset = 100 + i * 1000;
			e[p][i].stored_len = 900;
			e[p][i].raw_len = 2000 + (uint32_t)p;
			e[p][i].xxh = (uint64_t)p << 32 | i;
		}
		ce[p] = e[p];
		counts[p] = NE;
	}
	/* ids the sort's radix bits leave tied with others (index.c, sort_put_refs): the same
	 * first 8 bytes as another in the group (in another pack; a run of ten in one), or the
	 * same first 4 */
	for (uint32_t i = 100; i < 200; i++) {
		memcpy(e[1][i].id, e[0][i].id, 8);
		memcpy(e[2][i].id, e[0][i].id, 4);
	}
	for (uint32_t i = 201; i < 211; i++)
		memcpy(e[0][i].id, e[0][200].id, 8);
	/* the last blob of pack 2 and one in the middle of pack 1 are also in pack 0 */
	memcpy(e[2][NE - 1].id, e[0][5].id, KBV_ID_BYTES);
	memcpy(e[1][350].id, e[0][5].id, KBV_ID_BYTES);
	memcpy(e[2][7].id, e[1][8].id, KBV_ID_BYTES);
	assert_int_equal(kbv_index_add_packs(repo->idx, info, ce, counts, NP), 0);
	MDB_txn *txn;
	struct kbv_loc loc, first;
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	assert_int_equal(kbv_index_get(repo->idx, txn, e[0][0].id, &first), 0);
	for (size_t p = 0; p < NP; p++)
		for (uint32_t i = 0; i < NE; i++) {
			assert_int_equal(kbv_index_get(repo->idx, txn, e[p][i].id, &loc), 0);
			size_t wp = p, wi = i;
			if ((p == 2 && i == NE - 1) || (p == 1 && i == 350))
				wp = 0, wi = 5;
			else if (p == 2 && i == 7)
				wp = 1, wi = 8;
			assert_int_equal(loc.pack, first.pack + wp);
			assert_int_equal(loc.offset, e[wp][wi].offset);
			assert_int_equal(loc.xxh, e[wp][wi].xxh);
			assert_int_equal(loc.raw_len, 2000 + wp);
		}
	/* and the table holds each of them once, in key order */
	struct walk w = { 0 };
	assert_int_equal(kbv_index_each_blob(repo->idx, txn, walk_blob, &w), 0);
	assert_true(w.ordered);
	kbv_index_rend(txn);
	/* a pack listed twice in one group gets one number */
	size_t before = packs_indexed();
	struct kbv_pack_info twice[2];
	for (uint32_t i = 0; i < NE; i++)
		randombytes_buf(e[0][i].id, KBV_ID_BYTES);
	randombytes_buf(info[0].id, sizeof info[0].id);
	twice[0] = twice[1] = info[0];
	const struct kbv_pack_entry *te[2] = { e[0], e[0] };
	size_t tc[2] = { NE, NE };
	assert_int_equal(kbv_index_add_packs(repo->idx, twice, te, tc, 2), 0);
	assert_int_equal(packs_indexed(), before + 1);
	for (size_t p = 0; p < NP; p++)
		free(e[p]);
}

/* A pack whose ids share their first 4 bytes (as a damaged or hostile trailer that repair
 * reads may list them), in descending order: indexed all the same, each where the pack
 * put it, and in key order (index.c sorts such ties by qsort, never one by one). */
static void test_index_ids_tied_in_radix_bits(void **st)
{
	(void)st;
	enum { NE = 30000 };
	struct kbv_pack_info info;
	memset(&info, 0, sizeof info);
	randombytes_buf(info.id, sizeof info.id);
	info.size = 1u << 30;
	info.blobs = NE;
	struct kbv_pack_entry *e = calloc(NE, sizeof *e);
	assert_non_null(e);
	for (uint32_t i = 0; i < NE; i++) {
		e[i].type = KBV_BLOB_DATA;
		memset(e[i].id, 0x5a, KBV_ID_BYTES);
		kbv_put32(e[i].id + 4, NE - i); /* descending */
		e[i].offset = 100 + i * 10;
		e[i].stored_len = 10;
		e[i].raw_len = 20;
		e[i].xxh = i;
	}
	const struct kbv_pack_entry *ce = e;
	size_t n = NE;
	assert_int_equal(kbv_index_add_packs(repo->idx, &info, &ce, &n, 1), 0);
	MDB_txn *txn;
	struct kbv_loc loc;
	assert_int_equal(kbv_index_rbegin(repo->idx, &txn), 0);
	for (uint32_t i = 0; i < NE; i++) {
		assert_int_equal(kbv_index_get(repo->idx, txn, e[i].id, &loc), 0);
		assert_int_equal(loc.offset, e[i].offset);
	}
	struct walk w = { 0 };
	assert_int_equal(kbv_index_each_blob(repo->idx, txn, walk_blob, &w), 0);
	assert_true(w.ordered);
	kbv_index_rend(txn);
	free(e);
}

/* Metadata cache entries: a round trip, and every way an entry can be wrong (another
 * repository's keys, another kind, another id, a flipped byte, cut short) fails. */
static void test_metacache_seal_open(void **st)
{
	(void)st;
	struct kbv_keys k = { 0 }, other = { 0 };
	uint8_t id[KBV_ID_BYTES], id2[KBV_ID_BYTES];
	randombytes_buf(&k, sizeof k);
	randombytes_buf(&other, sizeof other);
	randombytes_buf(id, sizeof id);
	memcpy(id2, id, sizeof id);
	id2[31] ^= 1;
	static const char body[] = "a manifest body, an entry table, or a node of chunk ids";
	struct kbv_buf file = KBV_BUF_INIT, plain = KBV_BUF_INIT;
	assert_int_equal(kbv_meta_seal(&k, KBV_META_ENTRIES, id, body, sizeof body, &file), 0);
	assert_null(memmem(file.data, file.len, "manifest", 8)); /* sealed, not merely signed */
	assert_int_equal(kbv_meta_open(&k, KBV_META_ENTRIES, id, file.data, file.len, &plain), 0);
	assert_int_equal(plain.len, sizeof body);
	assert_memory_equal(plain.data, body, sizeof body);
	assert_int_equal(kbv_meta_open(&other, KBV_META_ENTRIES, id, file.data, file.len, &plain), KBV_ECORRUPT);
	assert_int_equal(kbv_meta_open(&k, KBV_META_MANIFEST, id, file.data, file.len, &plain), KBV_ECORRUPT);
	assert_int_equal(kbv_meta_open(&k, KBV_META_ENTRIES, id2, file.data, file.len, &plain), KBV_ECORRUPT);
	for (size_t i = 0; i < file.len; i += 7) {
		file.data[i] ^= 0x20;
		assert_int_equal(kbv_meta_open(&k, KBV_META_ENTRIES, id, file.data, file.len, &plain), KBV_ECORRUPT);
		file.data[i] ^= 0x20;
	}
	for (size_t n = 0; n < file.len; n += 5)
		assert_int_equal(kbv_meta_open(&k, KBV_META_ENTRIES, id, file.data, n, &plain), KBV_ECORRUPT);
	/* an empty plaintext is an entry too */
	assert_int_equal(kbv_meta_seal(&k, KBV_META_TREE, id, "", 0, &file), 0);
	assert_int_equal(kbv_meta_open(&k, KBV_META_TREE, id, file.data, file.len, &plain), 0);
	assert_int_equal(plain.len, 0);
	/* a record object (kind 4) is bound to its kind like the others: no plan passes for it */
	assert_int_equal(kbv_meta_seal(&k, KBV_META_RECORD, id, body, sizeof body, &file), 0);
	assert_int_equal(kbv_meta_open(&k, KBV_META_RECORD, id, file.data, file.len, &plain), 0);
	assert_int_equal(kbv_get32(file.data + 12), 4);
	assert_int_equal(kbv_meta_open(&k, KBV_META_PLAN, id, file.data, file.len, &plain), KBV_ECORRUPT);
	kbv_buf_release(&file);
	kbv_buf_release(&plain);
}

/* This host's Object Lock record: the line for known keys is the one computed with
 * Python's hashlib (format/repository.md: BLAKE2b-256 keyed with the id key of the label,
 * its NUL and the encryption key; then BLAKE2b-256 keyed with that of the line before
 * " MAC"); it reads back, and every change to it (a digit, the MAC, another repository's
 * keys, a version 1 line, a number spelt otherwise, cut short, a byte added) is refused. */
static void test_lockrec(void **st)
{
	(void)st;
	static const char want[] = "kbvault-object-lock 2 1764806400 1764892800 "
				   "e317ae00de64f2144902be1f762397ffc663354a29a11a99b41ac0745d92413c\n";
	struct kbv_keys k = { 0 }, other;
	for (int i = 0; i < 32; i++) {
		k.enc[i] = (uint8_t)i;
		k.id[i] = (uint8_t)(32 + i);
	}
	other = k;
	other.enc[0] ^= 1;
	char line[KBV_LOCKREC_MAX], bad[KBV_LOCKREC_MAX + 8];
	int64_t t, u;
	int n = kbv_lockrec_format(&k, 1764806400, 1764892800, line, sizeof line);
	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(line, want);
	assert_int_equal(kbv_lockrec_parse(&k, line, (size_t)n, &t, &u), 0);
	assert_true(t == 1764806400 && u == 1764892800);
	assert_int_equal(kbv_lockrec_parse(&other, line, (size_t)n, &t, &u), KBV_ECORRUPT);
	assert_true(t == 0 && u == 0);
	for (int i = 0; i < n; i++) {
		memcpy(bad, line, (size_t)n);
		bad[i] = bad[i] == '9' ? '8' : bad[i] == 'f' ? 'e' : (char)(bad[i] + 1);
		assert_int_equal(kbv_lockrec_parse(&k, bad, (size_t)n, &t, &u), KBV_ECORRUPT);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(kbv_lockrec_parse(&k, line, (size_t)i, &t, &u), KBV_ECORRUPT);
	memcpy(bad, line, (size_t)n);
	bad[n] = '\n';
	assert_int_equal(kbv_lockrec_parse(&k, bad, (size_t)n + 1, &t, &u), KBV_ECORRUPT);
	static const char *const others[] = {
		"kbvault-object-lock 1 1764806400 1764892800\n",
		"kbvault-object-lock 2 +1764806400 1764892800 "
		"e317ae00de64f2144902be1f762397ffc663354a29a11a99b41ac0745d92413c\n",
		"kbvault-object-lock 2 01764806400 1764892800 "
		"e317ae00de64f2144902be1f762397ffc663354a29a11a99b41ac0745d92413c\n",
		"kbvault-object-lock 2 99999999999999999999 1764892800 "
		"e317ae00de64f2144902be1f762397ffc663354a29a11a99b41ac0745d92413c\n",
		"kbvault-object-lock 2  ",
		"",
	};
	for (size_t i = 0; i < sizeof others / sizeof *others; i++)
		assert_int_equal(kbv_lockrec_parse(&k, others[i], strlen(others[i]), &t, &u), KBV_ECORRUPT);
	/* until must follow t; too small a buffer is an error, not a cut line */
	assert_true(kbv_lockrec_format(&k, 5, 5, line, sizeof line) > 0);
	assert_int_equal(kbv_lockrec_parse(&k, line, strlen(line), &t, &u), KBV_ECORRUPT);
	assert_int_equal(kbv_lockrec_format(&k, 1764806400, 1764892800, line, 60), KBV_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_round_trip_and_damage),
		cmocka_unit_test(test_index_first_location_reopen_and_gc),
		cmocka_unit_test(test_index_same_pack_twice),
		cmocka_unit_test(test_index_group_in_key_order),
		cmocka_unit_test(test_index_ids_tied_in_radix_bits),
		cmocka_unit_test(test_metacache_seal_open),
		cmocka_unit_test(test_lockrec),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
