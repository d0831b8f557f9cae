/* microbench: per-core throughput of each stage of the snapshot pipeline, on 256 MiB of
 * the synthetic SQL dump (or of random bytes with --random). Prints CSV:
 * stage,bytes,seconds,MB_per_s */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "codec/xxh.h"
#include "engine/cutter.h"
#include "kbv/blob.h"
#include "codec/aead.h"
#include "kbv/chunker.h"
#include "kbv/digest.h"
#include "kbv/fsio.h"
#include "store/index.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *stage, size_t bytes, double secs)
{
	printf("%s,%zu,%.4f,%.1f\n", stage, bytes, secs, (double)bytes / secs / 1e6);
}

/* The index transaction at the end of a first snapshot, a sequential stage: 16 packs of
 * 7,000 new chunks (a GB of new data in chunks of ~8 KiB: what the 889 MB dump's first
 * snapshot indexes in one transaction), into an empty index and then into one that holds
 * ten times as many. Reported per GB of new data. */
static void bench_index(void)
{
	enum { PACKS = 16, PER = 7000, FILL = 10 };
	char dir[] = "/tmp/kbv-microbench-XXXXXX";
	struct kbv_index *idx;
	if (!mkdtemp(dir))
		return;
	if (kbv_index_open(dir, &idx) < 0) {
		kbv_rmdir_flat(dir);
		return;
	}
	struct kbv_pack_info info[PACKS];
	struct kbv_pack_entry *e[PACKS];
	const struct kbv_pack_entry *ce[PACKS];
	size_t counts[PACKS];
	int ok = 1;
	for (size_t p = 0; p < PACKS; p++) {
		e[p] = calloc(PER, sizeof *e[p]);
		ok &= e[p] != NULL;
		ce[p] = e[p];
		counts[p] = PER;
	}
	for (int round = 0; ok && round <= FILL; round++) {
		for (size_t p = 0; p < PACKS; p++) {
			memset(&info[p], 0, sizeof info[p]);
			randombytes_buf(info[p].id, sizeof info[p].id);
			info[p].size = 16u << 20;
			info[p].blobs = PER;
			for (uint32_t i = 0; i < PER; i++) {
				e[p][i].type = KBV_BLOB_DATA;
				randombytes_buf(e[p][i].id, KBV_ID_BYTES);
				e[p][i].offset = i * 2300;
				e[p][i].stored_len = 2300;
				e[p][i].raw_len = 8192;
			}
		}
		double t = now();
		if (kbv_index_add_packs(idx, info, ce, counts, PACKS) < 0)
			break;
		if (round == 0 || round == FILL)
			report(round ? "index_add_112k_chunks_to_1.1m" : "index_add_112k_chunks_to_empty",
			       (size_t)PACKS * PER * 8192, now() - t);
	}
	kbv_index_close(idx);
	for (size_t p = 0; p < PACKS; p++)
		free(e[p]);
	kbv_rmdir_flat(dir);
}

int main(int argc, char **argv)
{
	size_t n = (size_t)256 << 20;
	const char *file = NULL;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--random"))
			file = argv[i];
	if (sodium_init() < 0)
		return 1;
	uint8_t *p = malloc(n);
	if (file) {
		FILE *f = fopen(file, "rb");
		size_t got = f ? fread(p, 1, n, f) : 0;
		if (f)
			fclose(f);
		for (size_t o = got; got && o < n; o += got) /* repeat to fill */
			memcpy(p + o, p, o + got <= n ? got : n - o);
	} else {
		randombytes_buf(p, n);
	}
	static const uint8_t key[32];
	struct kbv_cdc c;
	kbv_cdc_init(&c, key, 2048, 8192, 32768);
	printf("stage,bytes,seconds,MB_per_s\n");
	/* Touch the buffer once before timing: on this project's VMs the first user-space pass
	 * over freshly filled memory pays the hypervisor's page-table faults, which made the
	 * first stage measured (FastCDC) look 4-5 times slower than it is. */
	volatile uint64_t warm = XXH3_64bits(p, n);
	(void)warm;

	size_t chunks = 0;
	double t = now();
	for (size_t pos = 0; pos < n; chunks++)
		pos += kbv_cdc_cut(&c, p + pos, n - pos);
	report("fastcdc_2byte", n, now() - t);
	t = now();
	for (size_t pos = 0; pos < n;)
		pos += kbv_cdc_cut_reference(&c, p + pos, n - pos);
	report("fastcdc_reference_1byte", n, now() - t);
	/* The writer's cut of 1 MiB slots on 2 and 4 segments (engine/cutter.c): wall time of
	 * the calling thread, helpers included; on 2 cores 4 segments share them. */
	for (size_t segs = 2; segs <= 4; segs += 2) {
		struct kbv_cutter *k;
		size_t maxn = (1u << 20) / c.min + 2, cnt;
		uint32_t *lens = malloc(maxn * sizeof *lens);
		if (kbv_cutter_new(&c, segs, maxn, &k) < 0 || !lens)
			return 1;
		t = now();
		for (size_t pos = 0; pos < n;)
			pos += kbv_cutter_cut(k, &c, p + pos, n - pos, 1, 1u << 20, lens, maxn, &cnt);
		char name[64];
		snprintf(name, sizeof name, "fastcdc_cutter_%zuseg", segs);
		report(name, n, now() - t);
		kbv_cutter_free(k);
		free(lens);
	}

	struct kbv_keys keys;
	randombytes_buf(&keys, sizeof keys);
	kbv_keys_set_id_hash(&keys, KBV_ID_BLAKE2B);
	uint8_t id[32];
	t = now();
	for (size_t pos = 0; pos < n; pos += 8192)
		kbv_blob_id(&keys, KBV_BLOB_DATA, p + pos, 8192, id);
	report("blake2b_256_keyed_8k", n, now() - t);
	kbv_keys_set_id_hash(&keys, KBV_ID_BLAKE3);
	t = now();
	for (size_t pos = 0; pos < n; pos += 8192)
		kbv_blob_id(&keys, KBV_BLOB_DATA, p + pos, 8192, id);
	report("blake3_256_keyed_8k", n, now() - t);
	/* a worker's way: a batch's chunks together (codec/blake3_batch.c); also at 9,300
	 * bytes, about the dumps' mean chunk, whose last KiB is partial */
	static const uint32_t sizes[] = { 8192, 9300 };
	enum { BATCH = 128 };
	uint32_t offs[BATCH], lens[BATCH];
	uint8_t ids[BATCH][32];
	for (size_t z = 0; z < 2; z++) {
		char name[64];
		size_t span = (size_t)sizes[z] * BATCH, done = 0;
		if (z) {
			t = now();
			for (size_t pos = 0; pos + sizes[z] <= n; pos += sizes[z], done += sizes[z])
				kbv_blob_id(&keys, KBV_BLOB_DATA, p + pos, sizes[z], id);
			snprintf(name, sizeof name, "blake3_256_keyed_%u", sizes[z]);
			report(name, done, now() - t);
		}
		for (uint32_t i = 0; i < BATCH; i++) {
			offs[i] = i * sizes[z];
			lens[i] = sizes[z];
		}
		done = 0;
		t = now();
		for (size_t pos = 0; pos + span <= n; pos += span, done += span)
			kbv_blob_ids(&keys, KBV_BLOB_DATA, p + pos, offs, lens, BATCH, ids);
		snprintf(name, sizeof name, "blake3_256_keyed_%u_batch%d", sizes[z], BATCH);
		report(name, done, now() - t);
	}
	kbv_keys_set_id_hash(&keys, KBV_ID_BLAKE2B);
	t = now();
	uint64_t x = 0;
	for (size_t pos = 0; pos < n; pos += 8192)
		x ^= XXH3_64bits(p + pos, 8192);
	report("xxh3_8k", n, now() - t);
	/* The whole-stream digest as the writer's serial stage takes it: 1 MiB at a time, in
	 * order, through kbv_digester (libxxhash's dispatch, codec/xxh.h), on bytes that are
	 * not in this core's cache. */
	{
		struct kbv_digester d;
		struct kbv_digest dg;
		size_t slot = (size_t)1 << 20;
		if (kbv_digester_init(&d, KBV_DIGEST_XXH3_128) == 0) {
			t = now();
			for (size_t pos = 0; pos < n; pos += slot)
				kbv_digester_update(&d, p + pos, n - pos < slot ? n - pos : slot);
			kbv_digester_final(&d, &dg);
			report("xxh3_128_stream_1m", n, now() - t);
			kbv_digester_release(&d);
		}
	}

	/* The envelope cipher (codec/aead.h) on 256 KiB pieces, a bundle's size: OpenSSL's
	 * ChaCha20-Poly1305 under HChaCha20, and libsodium's XChaCha20-Poly1305 (the same bytes). */
	{
		size_t piece = 256u << 10, m = n < (64u << 20) ? n : (64u << 20);
		uint8_t *ct = malloc(piece + KBV_AEAD_TAG), *pt = malloc(piece), nonce[KBV_AEAD_NONCE] = { 0 };
		static const uint8_t ad[37];
		for (int use = 1; use >= 0 && ct && pt; use--) {
			struct kbv_aead *a = kbv_aead_new(use);
			char name[64];
			if (!a)
				break;
			const char *who = kbv_aead_openssl(a) ? "openssl" : "libsodium";
			t = now();
			for (size_t pos = 0; pos + piece <= m; pos += piece)
				kbv_aead_seal(a, ct, p + pos, piece, ad, sizeof ad, nonce, key);
			snprintf(name, sizeof name, "xchacha20poly1305_seal_256k_%s", who);
			report(name, m / piece * piece, now() - t);
			t = now();
			for (size_t pos = 0; pos + piece <= m; pos += piece)
				if (kbv_aead_open(a, pt, ct, piece + KBV_AEAD_TAG, ad, sizeof ad, nonce, key) != 0)
					return 1; /* the last piece sealed, opened again and again */
			snprintf(name, sizeof name, "xchacha20poly1305_open_256k_%s", who);
			report(name, m / piece * piece, now() - t);
			kbv_aead_free(a);
		}
		free(ct);
		free(pt);
	}

	struct kbv_codec *enc = kbv_codec_new(&keys, 1, 3), *plain = kbv_codec_new(&keys, 0, 3);
	struct kbv_buf out = KBV_BUF_INIT, back = KBV_BUF_INIT;
	size_t sub = n / 4, stored = 0;
	t = now();
	for (size_t pos = 0; pos < sub; pos += 8192) {
		kbv_blob_encode(plain, KBV_BLOB_DATA, id, p + pos, 8192, &out);
		stored += out.len;
	}
	report("zstd3_8k_compress", sub, now() - t);
	t = now();
	for (size_t pos = 0; pos < sub; pos += 8192)
		kbv_blob_encode(enc, KBV_BLOB_DATA, id, p + pos, 8192, &out);
	report("zstd3_plus_xchacha20poly1305_8k", sub, now() - t);
	kbv_blob_encode(enc, KBV_BLOB_DATA, id, p, 8192, &out);
	t = now();
	for (size_t pos = 0; pos < sub; pos += 8192)
		kbv_blob_decode(enc, KBV_BLOB_DATA, id, out.data, out.len, 8192, &back);
	report("decrypt_plus_unzstd_8k", sub, now() - t);
	fprintf(stderr, "chunks %zu (avg %.0f B), per-chunk zstd ratio x%.2f, xxh %llx\n", chunks,
		(double)n / (double)chunks, (double)sub / (double)stored, (unsigned long long)x);
	bench_index();
	kbv_codec_free(enc);
	kbv_codec_free(plain);
	kbv_buf_release(&out);
	kbv_buf_release(&back);
	free(p);
	return 0;
}
