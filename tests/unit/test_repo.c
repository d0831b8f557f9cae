/* Repository round trips through the library: init, open, unlock, store random streams of
 * awkward sizes, read them back, rebuild the index from packs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include <unistd.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "kbv/backend.h"
#include "kbv/check.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/pool.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"
#include "kbv/writer.h"
#include "engine/readplan.h"
#include "store/pack.h"
#include "store/repo_impl.h"

static char dir[64];

static void make_repo(int encrypted, uint32_t avg)
{
	snprintf(dir, sizeof dir, "/tmp/kbv-unit-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct kbv_init_opts o = { .encrypted = encrypted, .chunk_avg = avg, .kdf_ops = 1, .kdf_mem = 8 << 20 };
	assert_int_equal(kbv_repo_init(dir, &o, "pw", 2), 0);
}

static void remove_repo(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static struct kbv_repo *open_repo(const char *pw)
{
	struct kbv_repo *r;
	assert_int_equal(kbv_repo_open(dir, KBV_LOCK_SHARED, &r), 0);
	assert_int_equal(kbv_repo_unlock(r, pw, pw ? strlen(pw) : 0), 0);
	return r;
}

static void test_password(void **s)
{
	(void)s;
	make_repo(1, 0);
	struct kbv_repo *r;
	assert_int_equal(kbv_repo_open(dir, KBV_LOCK_SHARED, &r), 0);
	assert_true(kbv_repo_needs_password(r));
	assert_int_equal(kbv_repo_unlock(r, "wrong", 5), KBV_EAUTH);
	assert_int_equal(kbv_repo_unlock(r, NULL, 0), KBV_EAUTH);
	assert_int_equal(kbv_repo_unlock(r, "pw", 2), 0);
	kbv_repo_close(r);
	/* Not a repository; a non-empty directory cannot be initialized. */
	assert_int_equal(kbv_repo_open("/tmp", KBV_LOCK_SHARED, &r), KBV_ENOREPO);
	struct kbv_init_opts o = { .encrypted = 0 };
	assert_int_equal(kbv_repo_init(dir, &o, NULL, 0), KBV_EEXIST);
	remove_repo();
}

struct collect {
	struct kbv_buf b;
};
static int collect(void *arg, const uint8_t *p, size_t n) { return kbv_buf_add(&((struct collect *)arg)->b, p, n); }

static void roundtrip(int encrypted, size_t nthreads)
{
	make_repo(encrypted, 1024);
	struct kbv_repo *r = open_repo(encrypted ? "pw" : NULL);
	struct kbv_writer *w;
	struct kbv_reader *rd;
	/* Sizes around the chunker bounds, and one big enough for a two-level tree. */
	static const size_t sizes[] = { 0, 1, 255, 256, 257, 1024, 4095, 4096, 4097, 100000, 3 << 20 };
	struct kbv_stream_result res[11];
	uint8_t *data[11];
	assert_int_equal(kbv_writer_new(r, nthreads, &w), 0);
	for (size_t i = 0; i < 11; i++) {
		data[i] = malloc(sizes[i] + 1);
		randombytes_buf(data[i], sizes[i]);
		if (i == 10) /* make the big one partly repetitive so it also dedups within itself */
			memcpy(data[i] + sizes[i] / 2, data[i], sizes[i] / 4);
		assert_int_equal(kbv_writer_mem(w, data[i], sizes[i], &res[i]), 0);
		assert_int_equal(res[i].size, sizes[i]);
	}
	assert_true(res[10].ref.depth >= 2);
	assert_int_equal(res[0].ref.depth, KBV_REF_EMPTY);
	assert_int_equal(kbv_writer_flush(w), 0);
	/* A second pass of the same data stores nothing new. */
	uint64_t before = kbv_writer_stats(w)->new_stored_bytes;
	struct kbv_stream_result again;
	assert_int_equal(kbv_writer_mem(w, data[10], sizes[10], &again), 0);
	assert_int_equal(kbv_writer_stats(w)->new_stored_bytes, before);
	assert_memory_equal(&again.ref, &res[10].ref, sizeof again.ref);
	/* A stream hashed with the older BLAKE2b-256 (what copy keeps for old snapshots). */
	struct kbv_stream_result b2;
	kbv_writer_digest(w, KBV_DIGEST_BLAKE2B_256);
	assert_int_equal(kbv_writer_mem(w, data[9], sizes[9], &b2), 0);
	uint8_t h2[32];
	crypto_generichash_blake2b(h2, 32, data[9], sizes[9], NULL, 0);
	assert_int_equal(b2.hash.alg, KBV_DIGEST_BLAKE2B_256);
	assert_memory_equal(h2, b2.hash.v, 32);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);

	assert_int_equal(kbv_reader_new(r, nthreads, &rd), 0);
	for (size_t i = 0; i < 11; i++) {
		struct collect c = { KBV_BUF_INIT };
		assert_int_equal(kbv_reader_stream(rd, &res[i].ref, res[i].size, &res[i].hash, collect, &c), 0);
		assert_int_equal(c.b.len, sizes[i]);
		if (sizes[i])
			assert_memory_equal(c.b.data, data[i], sizes[i]);
		/* New streams record XXH3-128 in canonical (big-endian) bytes, as xxhsum -H2 prints it. */
		XXH128_canonical_t h;
		XXH128_canonicalFromHash(&h, XXH3_128bits(data[i], sizes[i]));
		assert_int_equal(res[i].hash.alg, KBV_DIGEST_XXH3_128);
		assert_memory_equal(h.digest, res[i].hash.v, 16);
		/* A wrong expected size or hash is reported, not ignored. */
		if (sizes[i]) {
			c.b.len = 0;
			assert_int_equal(kbv_reader_stream(rd, &res[i].ref, res[i].size + 1, &res[i].hash, collect, &c),
					 KBV_ECORRUPT);
			/* Chunks adding up to more than the recorded size: stopped before the extra byte. */
			c.b.len = 0;
			assert_int_equal(kbv_reader_stream(rd, &res[i].ref, res[i].size - 1, &res[i].hash, collect, &c),
					 KBV_ECORRUPT);
			assert_true(c.b.len < sizes[i]);
			struct kbv_digest bad = res[i].hash;
			bad.v[0] ^= 1;
			c.b.len = 0;
			assert_int_equal(kbv_reader_stream(rd, &res[i].ref, res[i].size, &bad, collect, &c), KBV_ECORRUPT);
			if (sizes[i] <= 100000) /* a small stream: nothing before it is proven */
				assert_int_equal(c.b.len, 0);
			/* The same bytes under another algorithm are not the same digest. */
			bad = res[i].hash;
			bad.alg = KBV_DIGEST_BLAKE2B_256;
			c.b.len = 0;
			assert_int_equal(kbv_reader_stream(rd, &res[i].ref, res[i].size, &bad, collect, &c), KBV_ECORRUPT);
		}
		kbv_buf_release(&c.b);
	}
	struct collect c2 = { KBV_BUF_INIT };
	assert_int_equal(kbv_reader_stream(rd, &b2.ref, b2.size, &b2.hash, collect, &c2), 0);
	b2.hash.v[31] ^= 1;
	c2.b.len = 0;
	assert_int_equal(kbv_reader_stream(rd, &b2.ref, b2.size, &b2.hash, collect, &c2), KBV_ECORRUPT);
	kbv_buf_release(&c2.b);
	kbv_reader_free(rd);

	/* Rebuild the index from the packs: the same blobs, and everything still reads. */
	struct kbv_repo_stats st1, st2;
	assert_int_equal(kbv_repo_stats(r, &st1), 0);
	uint64_t packs, blobs;
	assert_int_equal(kbv_repair_index(r, NULL, NULL, &packs, &blobs), 0);
	assert_int_equal(kbv_repo_stats(r, &st2), 0);
	assert_int_equal(st1.data_blobs, st2.data_blobs);
	assert_int_equal(st1.tree_blobs, st2.tree_blobs);
	assert_int_equal(st1.unique_raw_bytes, st2.unique_raw_bytes);
	assert_int_equal(kbv_reader_new(r, nthreads, &rd), 0);
	struct collect c = { KBV_BUF_INIT };
	assert_int_equal(kbv_reader_stream(rd, &res[10].ref, res[10].size, &res[10].hash, collect, &c), 0);
	kbv_buf_release(&c.b);
	kbv_reader_free(rd);

	for (size_t i = 0; i < 11; i++)
		free(data[i]);
	kbv_repo_close(r);
	remove_repo();
}

static void test_roundtrip_encrypted(void **s) { (void)s; roundtrip(1, 2); }
static void test_roundtrip_plain(void **s) { (void)s; roundtrip(0, 3); }
static void test_roundtrip_single_thread(void **s) { (void)s; roundtrip(1, 1); }

/* Reading a stream from a descriptor (straight into the job slots, the unfinished tail of
 * each moved to the next) cuts exactly the chunks the in-memory path cuts: the same chunk
 * list, so the same root, for a pipe fed in ragged pieces across many 1 MiB batches. */
static void test_fd_same_chunks(void **s)
{
	(void)s;
	make_repo(0, 0); /* the default 8 KiB chunks: chunk_max 32 KiB of look-ahead */
	struct kbv_repo *r = open_repo(NULL);
	size_t n = (9u << 20) + 12345;
	uint8_t *data = malloc(n);
	randombytes_buf(data, n);
	memcpy(data + n / 2, data, n / 4); /* repeats: chunks shared within the stream */
	memset(data + 100000, 'x', 300000); /* a run where chunks are cut at chunk_max */
	struct kbv_writer *w;
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	struct kbv_stream_result a, b;
	assert_int_equal(kbv_writer_mem(w, data, n, &a), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		size_t off = 0, k = 1;
		while (off < n) {
			size_t len = (k * 7919) % 70000 + 1; /* ragged writes, 1 B .. 68 KiB */
			if (len > n - off)
				len = n - off;
			ssize_t m = write(p[1], data + off, len);
			if (m <= 0)
				_exit(1);
			off += (size_t)m;
			k++;
		}
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(kbv_writer_fd(w, p[0], "pipe", &b), 0);
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(b.size, n);
	assert_memory_equal(&a.ref, &b.ref, sizeof a.ref);
	assert_memory_equal(&a.hash, &b.hash, sizeof a.hash);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	free(data);
	kbv_repo_close(r);
	remove_repo();
}

/* Planned reads (a restore from object storage, engine/readplan.h): an edited stream, whose
 * chunks alternate between the packs of the original and of the edit, read part by part
 * through spans comes back byte for byte with fewer requests than envelopes; a damaged
 * envelope fails every chunk of its span, naming the pack, and nothing hangs. */
struct leaves {
	uint8_t (*id)[KBV_ID_BYTES];
	size_t n;
};

static int add_leaf(void *arg, int type, const uint8_t id[KBV_ID_BYTES])
{
	struct leaves *l = arg;
	if (type != KBV_BLOB_DATA)
		return 0;
	l->id = realloc(l->id, (l->n + 1) * KBV_ID_BYTES);
	memcpy(l->id[l->n++], id, KBV_ID_BYTES);
	return 0;
}

/* Read the chunks of the part just planned into out (the first error, if any). */
static int read_part(struct kbv_readplan *p, struct kbv_codec *codec, struct kbv_bundle_cache *bc,
		     struct kbv_buf *out, char *err, size_t cap)
{
	const struct kbv_rleaf *lv;
	size_t n;
	struct kbv_buf one = KBV_BUF_INIT;
	int first = 0;
	assert_int_equal(kbv_readplan_build(p, &lv, &n), 0);
	for (size_t i = 0; i < n; i++) {
		int rc = kbv_readplan_read(p, codec, bc, &lv[i], &one);
		if (rc == 0)
			assert_int_equal(kbv_buf_add(out, one.data, one.len), 0);
		else if (!first) {
			first = rc;
			snprintf(err, cap, "%s", kbv_errmsg());
		}
	}
	kbv_buf_release(&one);
	return first;
}

static int read_planned(struct kbv_repo *r, const struct leaves *lv, uint64_t part, struct kbv_buf *out,
			uint64_t *gets, char *err, size_t cap)
{
	struct kbv_readplan *p;
	struct kbv_codec *codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	struct kbv_bundle_cache bc = { 0 };
	MDB_txn *txn;
	int rc = 0, parts = 0;
	assert_int_equal(kbv_readplan_new(r, &p), 0);
	kbv_readplan_part(p, part);
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	out->len = 0;
	for (size_t i = 0; i < lv->n; i++) {
		int full = kbv_readplan_add(p, txn, lv->id[i]);
		assert_true(full >= 0);
		if (full == 1) {
			parts++;
			if (rc == 0)
				rc = read_part(p, codec, &bc, out, err, cap);
		}
	}
	if (rc == 0)
		rc = read_part(p, codec, &bc, out, err, cap);
	else
		kbv_readplan_reset(p); /* an abandoned part */
	assert_true(parts >= 3 || part >= (1u << 20)); /* the small part size made several */
	uint64_t bytes;
	kbv_readplan_fetched(p, gets, &bytes);
	kbv_index_rend(txn);
	kbv_readplan_free(p);
	kbv_bundle_cache_release(&bc);
	kbv_codec_free(codec);
	return rc;
}

/* Flip a bit in the middle of the envelope at `loc` in its pack file; hex: the pack's name. */
static void damage_envelope(struct kbv_repo *r, const struct kbv_loc *loc, char hex[2 * KBV_PACKID_BYTES + 1])
{
	MDB_txn *txn;
	struct kbv_pack_info info;
	char pack[512];
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	assert_int_equal(kbv_index_pack(r->idx, txn, loc->pack, &info), 0);
	kbv_index_rend(txn);
	kbv_hex(info.id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, pack, sizeof pack);
	int pf = open(pack, O_RDWR);
	assert_true(pf >= 0);
	uint8_t byte;
	assert_int_equal(pread(pf, &byte, 1, loc->offset + loc->stored_len / 2), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(pf, &byte, 1, loc->offset + loc->stored_len / 2), 1);
	close(pf);
}

/* Restoring into a descriptor (kbv_reader_stream_fd): a regular file is written by the
 * workers at each batch's place, anything else in order; either way the file holds the
 * stream byte for byte after what was there, the offset ends past it, and the progress
 * callback sees the stream's bytes in order. A damaged chunk early in the stream fails
 * the restore and leaves the file cut back to a prefix of the stream, though later batches
 * were written by the other workers already. */
struct in_order {
	const uint8_t *data;
	uint64_t seen;
	int wrong;
};

static int check_order(void *arg, const uint8_t *p, size_t n)
{
	struct in_order *o = arg;
	if (p) /* NULL when the workers wrote the piece: only its length is told */
		o->wrong |= memcmp(p, o->data + o->seen, n) != 0;
	o->seen += n;
	return 0;
}

static void test_stream_fd(void **s)
{
	(void)s;
	make_repo(1, 1024); /* 1 KiB chunks: ~3000 of them, ~50 batches */
	struct kbv_repo *r = open_repo("pw");
	size_t n = (3u << 20) + 777;
	uint8_t *data = malloc(n);
	randombytes_buf(data, n);
	struct kbv_writer *w;
	struct kbv_stream_result res, small;
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	assert_int_equal(kbv_writer_mem(w, data, n, &res), 0);
	assert_int_equal(kbv_writer_mem(w, data, 60000, &small), 0);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	struct kbv_reader *rd;
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	char path[128];
	snprintf(path, sizeof path, "%s/out", dir);
	static const int modes[] = { O_TRUNC, O_APPEND };
	for (int m = 0; m < 2; m++) {
		/* After four bytes already in the file (written in order): the stream follows them. */
		int fd = open(path, O_WRONLY | O_CREAT | modes[m], 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "head", 4), 4);
		struct in_order o = { data, 0, 0 };
		assert_int_equal(kbv_reader_stream_fd(rd, &res.ref, res.size, &res.hash, fd, "out", check_order, &o), 0);
		assert_int_equal(o.seen, n);
		assert_false(o.wrong);
		assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)(n + 4));
		close(fd);
		struct kbv_buf got = KBV_BUF_INIT;
		assert_int_equal(kbv_read_file(path, &got), 0);
		assert_int_equal(got.len, n + 4);
		assert_memory_equal(got.data, "head", 4);
		assert_memory_equal(got.data + 4, data, n);
		kbv_buf_release(&got);
		unlink(path);
	}
	/* A pipe: in order, by the calling thread (60000 bytes fit in the pipe's buffer). */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(kbv_reader_stream_fd(rd, &small.ref, small.size, &small.hash, p[1], "pipe", NULL, NULL), 0);
	close(p[1]);
	uint8_t *back = malloc(small.size);
	size_t got = 0;
	ssize_t k;
	while ((k = read(p[0], back + got, small.size - got)) > 0)
		got += (size_t)k;
	close(p[0]);
	assert_int_equal(got, small.size);
	assert_memory_equal(back, data, small.size);
	free(back);

	/* Damage the 200th chunk's stored bytes (its bundle's checksum no longer matches). */
	struct leaves lv = { NULL, 0 };
	assert_int_equal(kbv_reader_visit(rd, &res.ref, add_leaf, &lv), 0);
	assert_true(lv.n > 2000);
	MDB_txn *txn;
	struct kbv_loc loc;
	char hex[2 * KBV_PACKID_BYTES + 1];
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	assert_int_equal(kbv_index_get(r->idx, txn, lv.id[200], &loc), 0);
	kbv_index_rend(txn);
	damage_envelope(r, &loc, hex);
	kbv_reader_free(rd); /* no bundle decoded before the damage is cached */
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct in_order o = { data, 0, 0 };
	assert_int_equal(kbv_reader_stream_fd(rd, &res.ref, res.size, &res.hash, fd, "out", check_order, &o),
			 KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), "checksum mismatch"));
	off_t at = lseek(fd, 0, SEEK_CUR);
	close(fd);
	struct kbv_buf part = KBV_BUF_INIT;
	assert_int_equal(kbv_read_file(path, &part), 0);
	assert_int_equal(part.len, o.seen); /* what was delivered in order, nothing past it */
	assert_int_equal(at, (off_t)part.len);
	assert_true(part.len < (size_t)200 * 4096); /* the chunks before the damage, at most */
	if (part.len)
		assert_memory_equal(part.data, data, part.len);
	assert_false(o.wrong);
	kbv_buf_release(&part);
	free(lv.id);
	kbv_reader_free(rd);
	free(data);
	kbv_repo_close(r);
	remove_repo();
}

/* Into a regular file from a local repository a stream is restored window by window and
 * bundle by bundle (reader.c): a stream whose chunks come out of order from the bundles of
 * an earlier one, some of them several times, comes back byte for byte after what the file
 * held, with windows of a few hundred chunks as with one window; with one window each
 * bundle is decoded once; a damaged bundle used late in the stream leaves the file cut back
 * to the windows before it, which were read back and verified: a prefix of the stream. */
/* Stream a, then b, each made durable before the next (b's chunks may be a's). */
static void write_two(struct kbv_repo *r, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
		      struct kbv_stream_result *ra, struct kbv_stream_result *rb)
{
	struct kbv_writer *w;
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	assert_int_equal(kbv_writer_mem(w, a, an, ra), 0);
	assert_int_equal(kbv_writer_flush(w), 0);
	assert_int_equal(kbv_writer_mem(w, b, bn, rb), 0);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
}

/* The DATA chunks of a stream, in order. */
static void stream_leaves(struct kbv_repo *r, const struct kbv_ref *ref, struct leaves *lv)
{
	struct kbv_reader *rd;
	assert_int_equal(kbv_reader_new(r, 1, &rd), 0);
	assert_int_equal(kbv_reader_visit(rd, ref, add_leaf, lv), 0);
	kbv_reader_free(rd);
}

static int stream_file(struct kbv_reader *rd, const struct kbv_stream_result *res, const char *path,
		       struct in_order *o, struct kbv_buf *got)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "head", 4), 4);
	int rc = kbv_reader_stream_fd(rd, &res->ref, res->size, &res->hash, fd, "out", check_order, o);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)(4 + o->seen));
	close(fd);
	assert_int_equal(kbv_read_file(path, got), 0);
	assert_int_equal(got->len, 4 + o->seen);
	assert_memory_equal(got->data, "head", 4);
	return rc;
}

static int cmp_loc(const void *x, const void *y)
{
	const struct kbv_loc *a = x, *b = y;
	if (a->pack != b->pack)
		return a->pack < b->pack ? -1 : 1;
	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* A small stream (at most a bundle's size: read on the walking thread, without the workers)
 * into a regular file: byte for byte, the progress callback seeing its bytes. It reaches
 * the file only once it is whole and proven: over a damaged bundle it fails with the same
 * error as a large one, and nothing of it is written, not even the members of the good
 * bundle before the damage. */
static void test_small_stream_fd(void **s)
{
	(void)s;
	make_repo(1, 1024);
	struct kbv_repo *r = open_repo("pw");
	uint8_t *data = malloc(200000);
	randombytes_buf(data, 200000);
	struct kbv_writer *w;
	struct kbv_stream_result first, small;
	assert_int_equal(kbv_writer_new(r, 2, &w), 0);
	/* Its first 100000 bytes stored before it, so that its chunks begin in that stream's
	 * bundle and end in a bundle of their own */
	assert_int_equal(kbv_writer_mem(w, data, 100000, &first), 0);
	assert_int_equal(kbv_writer_mem(w, data, 200000, &small), 0);
	assert_int_equal(kbv_writer_flush(w), 0);
	kbv_writer_free(w);
	const uint8_t *want = data;
	struct kbv_reader *rd;
	char path[128];
	snprintf(path, sizeof path, "%s/small", dir);
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	struct in_order o = { want, 0, 0 };
	assert_int_equal(kbv_reader_stream_fd(rd, &small.ref, small.size, &small.hash, fd, "small", check_order, &o), 0);
	assert_int_equal(o.seen, small.size);
	assert_false(o.wrong);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)small.size);
	close(fd);
	struct kbv_buf got = KBV_BUF_INIT;
	assert_int_equal(kbv_read_file(path, &got), 0);
	assert_int_equal(got.len, small.size);
	assert_memory_equal(got.data, want, small.size);
	kbv_buf_release(&got);

	/* Its chunks lie in two bundles: damage the second. */
	struct leaves lv = { NULL, 0 };
	MDB_txn *txn;
	struct kbv_loc a, b;
	char hex[2 * KBV_PACKID_BYTES + 1];
	assert_int_equal(kbv_reader_visit(rd, &small.ref, add_leaf, &lv), 0);
	assert_true(lv.n > 100);
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	assert_int_equal(kbv_index_get(r->idx, txn, lv.id[0], &a), 0);
	assert_int_equal(kbv_index_get(r->idx, txn, lv.id[lv.n - 1], &b), 0);
	kbv_index_rend(txn);
	assert_true(a.pack != b.pack || a.offset != b.offset);
	damage_envelope(r, &b, hex);
	kbv_reader_free(rd); /* nothing decoded before the damage is kept */
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct in_order o2 = { want, 0, 0 };
	assert_int_equal(kbv_reader_stream_fd(rd, &small.ref, small.size, &small.hash, fd, "small", check_order, &o2),
			 KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), "checksum mismatch"));
	assert_non_null(strstr(kbv_errmsg(), hex));
	off_t at = lseek(fd, 0, SEEK_CUR);
	close(fd);
	assert_int_equal(kbv_read_file(path, &got), 0);
	assert_int_equal(got.len, 0);
	assert_int_equal(o2.seen, 0);
	assert_int_equal(at, 0);
	kbv_buf_release(&got);
	free(lv.id);
	kbv_reader_free(rd);
	free(data);
	kbv_repo_close(r);
	remove_repo();
}

static void test_stream_windows(void **s)
{
	(void)s;
	make_repo(1, 1024); /* ~1 KiB chunks, ~250 to a bundle */
	struct kbv_repo *r = open_repo("pw");
	size_t n = 2u << 20, h = n / 2, rep = 32u << 10, bn = n + 4 * rep;
	uint8_t *a = malloc(n), *b = malloc(bn);
	randombytes_buf(a, n);
	memcpy(b, a + h, n - h); /* the halves swapped, edits all along, a block four times */
	memcpy(b + (n - h), a, h);
	for (size_t k = 0; k < 20; k++)
		randombytes_buf(b + k * (n / 20) + 333, 2000);
	for (size_t k = 0; k < 4; k++)
		memcpy(b + n + k * rep, a + 100000, rep);
	struct kbv_stream_result ra, rb;
	write_two(r, a, n, b, bn, &ra, &rb);

	/* The stream's chunks, where they are, and what decoding each bundle once costs. */
	struct leaves lv = { 0 };
	stream_leaves(r, &rb.ref, &lv);
	assert_true(lv.n > 1500);
	struct kbv_loc *loc = calloc(lv.n, sizeof *loc), *sorted = calloc(lv.n, sizeof *loc);
	uint64_t *pos = calloc(lv.n + 1, sizeof *pos);
	MDB_txn *txn;
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	for (size_t i = 0; i < lv.n; i++) {
		assert_int_equal(kbv_index_get(r->idx, txn, lv.id[i], &loc[i]), 0);
		pos[i + 1] = pos[i] + loc[i].raw_len;
	}
	memcpy(sorted, loc, lv.n * sizeof *loc);
	qsort(sorted, lv.n, sizeof *loc, cmp_loc);
	struct kbv_codec *codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	struct kbv_packfds fds;
	struct kbv_buf st = KBV_BUF_INIT, one = KBV_BUF_INIT;
	kbv_packfds_init(&fds);
	size_t run = 0, most = 0;
	for (size_t i = 0; i < lv.n; i++) {
		int starts = i == 0 || cmp_loc(&sorted[i], &sorted[i - 1]) != 0;
		run = starts ? 1 : run + 1;
		most = run > most ? run : most;
		if (!starts)
			continue;
		for (size_t k = 0; k < lv.n; k++) /* a chunk of this envelope, decoded */
			if (cmp_loc(&loc[k], &sorted[i]) == 0) {
				assert_int_equal(kbv_pack_read_loc(r, txn, codec, &fds, lv.id[k], &loc[k], &st, &one), 0);
				break;
			}
	}
	uint64_t distinct = fds.bundle.decoded;
	kbv_packfds_release(&fds);
	kbv_codec_free(codec);
	kbv_index_rend(txn);
	assert_true(most <= 512); /* no envelope is split between two jobs (BATCH_MAX) */

	char path[128];
	snprintf(path, sizeof path, "%s/out", dir);
	struct kbv_reader *rd;
	struct kbv_buf got = KBV_BUF_INIT;
	struct in_order o = { b, 0, 0 };
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	assert_int_equal(stream_file(rd, &rb, path, &o, &got), 0); /* one window */
	assert_memory_equal(got.data + 4, b, bn);
	assert_int_equal(o.seen, bn);
	assert_false(o.wrong);
	assert_int_equal(kbv_reader_decoded(rd), distinct);
	kbv_reader_free(rd);

	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	kbv_reader_windows(rd, 50, 300);
	o = (struct in_order){ b, 0, 0 };
	assert_int_equal(stream_file(rd, &rb, path, &o, &got), 0);
	assert_memory_equal(got.data + 4, b, bn);
	assert_int_equal(o.seen, bn);
	assert_true(kbv_reader_decoded(rd) >= distinct);
	kbv_reader_free(rd);

	/* Damage the bundle of a chunk three quarters in; the first chunk that needs it is
	 * in the window starting at chunk `from`. */
	size_t dmg = lv.n * 3 / 4, first = dmg;
	for (size_t i = 0; i < lv.n; i++)
		if (cmp_loc(&loc[i], &loc[dmg]) == 0 && i < first)
			first = i;
	size_t from = first < 50 ? 0 : 50 + (first - 50) / 300 * 300;
	assert_true(from > 0);
	char hex[2 * KBV_PACKID_BYTES + 1];
	damage_envelope(r, &loc[dmg], hex);
	assert_int_equal(kbv_reader_new(r, 2, &rd), 0);
	kbv_reader_windows(rd, 50, 300);
	o = (struct in_order){ b, 0, 0 };
	assert_int_equal(stream_file(rd, &rb, path, &o, &got), KBV_ECORRUPT);
	assert_non_null(strstr(kbv_errmsg(), "checksum mismatch"));
	assert_non_null(strstr(kbv_errmsg(), hex));
	assert_int_equal(o.seen, pos[from]); /* the windows before, and nothing of it */
	assert_memory_equal(got.data + 4, b, o.seen);
	kbv_reader_free(rd);

	kbv_buf_release(&got);
	kbv_buf_release(&st);
	kbv_buf_release(&one);
	free(loc);
	free(sorted);
	free(pos);
	free(lv.id);
	free(a);
	free(b);
	kbv_repo_close(r);
	remove_repo();
}

static void test_planned_reads(void **s)
{
	(void)s;
	make_repo(1, 1024);
	struct kbv_repo *r = open_repo("pw");
	size_t n = 4u << 20;
	uint8_t *a = malloc(n), *b = malloc(n);
	randombytes_buf(a, n);
	memcpy(b, a, n);
	for (size_t k = 0; k < 40; k++) /* edits all along: new chunks between old ones */
		randombytes_buf(b + k * (n / 40) + 777, 3000);
	struct kbv_stream_result ra, rb;
	write_two(r, a, n, b, n, &ra, &rb);
	struct leaves lv = { 0 };
	stream_leaves(r, &rb.ref, &lv);
	assert_true(lv.n > 1000);
	/* distinct envelopes the stream reads */
	MDB_txn *txn;
	size_t envs = 0;
	struct kbv_loc prev = { 0 }, loc;
	assert_int_equal(kbv_index_rbegin(r->idx, &txn), 0);
	for (size_t i = 0; i < lv.n; i++) {
		assert_int_equal(kbv_index_get(r->idx, txn, lv.id[i], &loc), 0);
		envs += i == 0 || loc.pack != prev.pack || loc.offset != prev.offset;
		prev = loc;
	}
	kbv_index_get(r->idx, txn, lv.id[0], &loc);
	struct kbv_pack_info info;
	assert_int_equal(kbv_index_pack(r->idx, txn, loc.pack, &info), 0);
	kbv_index_rend(txn);

	struct kbv_buf out = KBV_BUF_INIT;
	char err[512] = "";
	uint64_t gets = 0;
	/* parts of a few envelopes each (random data: each bundle is about its target size) */
	assert_int_equal(read_planned(r, &lv, 4 * KBV_BUNDLE_TARGET, &out, &gets, err, sizeof err), 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, b, n);
	assert_true(gets > 0 && gets < envs);
	/* One part for the whole stream: still the same bytes, fewer requests. */
	uint64_t gets1 = 0;
	assert_int_equal(read_planned(r, &lv, 64u << 20, &out, &gets1, err, sizeof err), 0);
	assert_memory_equal(out.data, b, n);
	assert_true(gets1 <= 2); /* a span in the original's pack, one in the edit's */

	/* Damage the first chunk's envelope in its pack file. */
	char hex[2 * KBV_PACKID_BYTES + 1], path[4096];
	kbv_hex(info.id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, path, sizeof path);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, loc.offset + 5, SEEK_SET), 0);
	int c = fgetc(f);
	assert_int_equal(fseek(f, loc.offset + 5, SEEK_SET), 0);
	fputc(c ^ 0x40, f);
	fclose(f);
	assert_int_equal(read_planned(r, &lv, 256u << 10, &out, &gets, err, sizeof err), KBV_ECORRUPT);
	assert_non_null(strstr(err, hex));
	assert_non_null(strstr(err, "checksum mismatch"));

	kbv_buf_release(&out);
	free(lv.id);
	free(a);
	free(b);
	kbv_repo_close(r);
	remove_repo();
}

static void square(void *w, void *j)
{
	(void)w;
	int *x = j;
	x[1] = x[0] * x[0];
}

/* The serial stage runs after the parallel one and in submission order. */
static void serial_check(void *arg, void *j)
{
	int *seen = arg, *x = j;
	assert_int_equal(x[1], x[0] * x[0]);
	assert_int_equal(x[0], *seen);
	x[2] = (*seen)++;
}

static void test_pool_order(void **s)
{
	(void)s;
	for (size_t threads = 0; threads < 4; threads++) {
		void *ws[4] = { 0 };
		int serial_seen = 0;
		struct kbv_pool *p = kbv_pool_new(threads, 5, 3 * sizeof(int), square, ws, serial_check, &serial_seen);
		assert_non_null(p);
		int next_in = 0, next_out = 0;
		while (next_out < 1000) {
			int *j;
			while (next_in < 1000 && (j = kbv_pool_acquire(p))) {
				j[0] = next_in++;
				kbv_pool_submit(p);
			}
			j = kbv_pool_oldest(p);
			assert_non_null(j);
			assert_int_equal(j[0], next_out);
			assert_int_equal(j[1], next_out * next_out);
			assert_int_equal(j[2], next_out); /* the serial stage saw it, in order */
			kbv_pool_release(p);
			next_out++;
		}
		assert_null(kbv_pool_oldest(p));
		kbv_pool_free(p);
	}
}

/* The consumer beside: what it saw, checked by the test's own thread (cmocka asserts
 * only there). */
struct beside_seen {
	int next, calls, wrong, fail_at;
	atomic_int inside; /* fn on two threads at once would count as wrong */
};

static int beside_consume(void *arg, void *j)
{
	struct beside_seen *b = arg;
	int *x = j;
	if (atomic_fetch_add(&b->inside, 1) != 0)
		b->wrong++;
	for (volatile int spin = 0; spin < 200; spin++)
		;
	atomic_fetch_sub(&b->inside, 1);
	b->calls++;
	if (x[0] != b->next || x[1] != x[0] * x[0] || x[2] != x[0])
		b->wrong++;
	b->next++;
	return x[0] == b->fail_at ? -5 : 0;
}

static void submit_n(struct kbv_pool *p, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		int *j = kbv_pool_acquire_wait(p);
		j[0] = i;
		kbv_pool_submit(p);
	}
}

/* A consumer beside the submitting thread sees every job once, in order, after both
 * stages; after its failure the rest are released unread (the submitter never waits for
 * ever), kbv_pool_drain() reports the failure once, and the pool serves the next run. */
static void test_pool_beside(void **s)
{
	(void)s;
	for (size_t threads = 0; threads < 4; threads++) {
		void *ws[4] = { 0 };
		int serial_seen = 0;
		struct beside_seen b = { .fail_at = -1 };
		struct kbv_pool *p = kbv_pool_new(threads, 5, 3 * sizeof(int), square, ws, serial_check, &serial_seen);
		assert_non_null(p);
		assert_int_equal(kbv_pool_consume_beside(p, beside_consume, &b), 0);
		submit_n(p, 0, 1000);
		assert_int_equal(kbv_pool_drain(p), 0);
		assert_int_equal(b.calls, 1000);
		assert_int_equal(b.wrong, 0);

		b.fail_at = 1300; /* the 301st job of the next run fails */
		submit_n(p, 1000, 1000);
		assert_int_equal(kbv_pool_drain(p), -5);
		assert_int_equal(b.calls, 1301); /* none after the failure */
		assert_int_equal(kbv_pool_failed(p), 0);
		assert_int_equal(kbv_pool_drain(p), 0);

		/* the next run, after a discard: consumed from the start again */
		b.next = 2000;
		submit_n(p, 2000, 3);
		kbv_pool_discard(p);
		b.next = 2003;
		b.calls = 0;
		submit_n(p, 2003, 100);
		assert_int_equal(kbv_pool_drain(p), 0);
		assert_int_equal(b.calls, 100);
		assert_int_equal(b.wrong, 0);
		kbv_pool_free(p);
	}
}

static void test_snapshot_commit_and_list(void **s)
{
	(void)s;
	make_repo(1, 0);
	struct kbv_repo *r = open_repo("pw");
	struct kbv_writer *w;
	assert_int_equal(kbv_writer_new(r, 0, &w), 0);
	struct kbv_stream_result res;
	assert_int_equal(kbv_writer_mem(w, "hello\n", 6, &res), 0);
	struct kbv_entry e = { KBV_ENTRY_STDIN, "hello.txt", 0600, 5, 0, res.size, res.hash, res.ref, NULL, 0, 0, NULL, NULL };
	struct kbv_snapshot snap = { .time = 1000, .host = "h" };
	assert_int_equal(kbv_snapshot_commit(r, w, &snap, &e, 1), 0);
	kbv_writer_free(w);

	struct kbv_snapshot **list;
	size_t n;
	assert_int_equal(kbv_snapshot_list(r, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(list[0]->id, snap.id, 32);
	struct kbv_reader *rd;
	assert_int_equal(kbv_reader_new(r, 1, &rd), 0);
	assert_int_equal(kbv_snapshot_load_entries(rd, list[0]), 0);
	assert_string_equal(list[0]->entries[0].name, "hello.txt");
	kbv_reader_free(rd);
	kbv_snapshot_list_free(list, n);

	struct kbv_check_opts co = { .read_data = 1 };
	struct kbv_check_result cr;
	assert_int_equal(kbv_check(r, &co, NULL, NULL, &cr), 0);
	assert_int_equal(cr.problems, 0);
	assert_int_equal(cr.snapshots, 1);
	kbv_repo_close(r);
	remove_repo();
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_roundtrip_encrypted),
		cmocka_unit_test(test_roundtrip_plain),
		cmocka_unit_test(test_roundtrip_single_thread), cmocka_unit_test(test_fd_same_chunks),
		cmocka_unit_test(test_planned_reads),
		cmocka_unit_test(test_stream_fd),
		cmocka_unit_test(test_small_stream_fd),
		cmocka_unit_test(test_stream_windows),
		cmocka_unit_test(test_pool_order),
		cmocka_unit_test(test_pool_beside),
		cmocka_unit_test(test_snapshot_commit_and_list),
	};
	return cmocka_run_group_tests_name("repo", tests, NULL, NULL);
}
