/* Keyed BLAKE3-256 of many messages at once, on the reference implementation's own
 * compression functions (blake3_impl.h of the vendored C code).
 *
 * blake3_hasher_update hashes one message's whole chunks side by side; a message of 8 KiB
 * has only eight, which leaves half of a 16-lane AVX-512 pass empty, and its trailing
 * chunks (those after the largest whole power-of-two subtree) are compressed a block at a
 * time. A chunk's chaining value depends only on its bytes, the key and its index in the
 * message, so here the whole chunks of equal index of all the messages go through
 * blake3_hash_many together (16 lanes full), and only each message's partial last chunk and
 * its parent nodes are compressed one by one. The tree above the chunks is the one of the
 * BLAKE3 specification (section 2.1): the left subtree of n chunks holds the largest power
 * of two of them that is less than n; the root is compressed with the ROOT flag and its
 * first 32 bytes of output are its chaining value. tests/unit/test_blob.c checks every
 * result against blake3_hasher on lengths around every boundary. */
#include "codec/blake3_batch.h"

#include "blake3_impl.h"

#include <sodium.h>
#include <string.h>

/* Chunks of a message this handles (64 KiB: twice the default chunk_max); longer messages
 * use blake3_hasher. */
#define MAX_CHUNKS 64
/* Messages taken together: one pass of blake3_hash_many per chunk index fills 16 lanes. */
#define GROUP 16

/* The chaining value of the partial last chunk `index` of a message (or of the only chunk,
 * with the ROOT flag when `root`): compressed a block at a time. */
static void chunk_cv(const uint32_t key[8], const uint8_t *p, size_t len, uint64_t index, int root,
		     uint8_t out[BLAKE3_OUT_LEN])
{
	uint32_t cv[8];
	uint8_t block[BLAKE3_BLOCK_LEN];
	memcpy(cv, key, sizeof cv);
	size_t nblocks = len ? (len + BLAKE3_BLOCK_LEN - 1) / BLAKE3_BLOCK_LEN : 1;
	for (size_t b = 0; b < nblocks; b++) {
		size_t at = b * BLAKE3_BLOCK_LEN, n = len - at < BLAKE3_BLOCK_LEN ? len - at : BLAKE3_BLOCK_LEN;
		uint8_t flags = KEYED_HASH;
		if (b == 0)
			flags |= CHUNK_START;
		if (b + 1 == nblocks)
			flags |= CHUNK_END | (root ? ROOT : 0);
		memset(block, 0, sizeof block);
		if (n)
			memcpy(block, p + at, n);
		blake3_compress_in_place(cv, block, (uint8_t)n, index, flags);
	}
	store_cv_words(out, cv);
}

/* The parents of one level of a group's trees: at most half its chunks. */
#define MAX_IN (GROUP * MAX_CHUNKS / 2)

/* n inputs of `blocks` whole blocks each, side by side, all with the same counter; their
 * chaining values go to out[] in order. */
static void hash_many(const uint8_t *const *in, size_t n, size_t blocks, const uint32_t key[8], uint64_t counter,
		      uint8_t flags, uint8_t start, uint8_t end, uint8_t (*out)[BLAKE3_OUT_LEN])
{
	if (n)
		blake3_hash_many(in, n, blocks, key, counter, false, flags, start, end, &out[0][0]);
}

void kbv_blake3_keyed_batch(const uint8_t key[BLAKE3_KEY_LEN], const uint8_t *base, const uint32_t *offs,
			    const uint32_t *lens, size_t n, uint8_t (*out)[BLAKE3_OUT_LEN])
{
	uint32_t kw[8];
	load_key_words(key, kw);
	uint8_t cvs[GROUP][MAX_CHUNKS][BLAKE3_OUT_LEN]; /* message m's chunk values: 32 KiB */
	for (size_t g = 0; g < n; g += GROUP) {
		size_t gn = n - g < GROUP ? n - g : GROUP, maxfull = 0;
		size_t full[GROUP];
		for (size_t m = 0; m < gn; m++) {
			size_t len = lens[g + m];
			/* a message of one chunk is its own root; whole chunks of longer messages
			 * go side by side below */
			full[m] = len > BLAKE3_CHUNK_LEN && len <= MAX_CHUNKS * BLAKE3_CHUNK_LEN ? len / BLAKE3_CHUNK_LEN : 0;
			if (full[m] > maxfull)
				maxfull = full[m];
		}
		for (size_t k = 0; k < maxfull; k++) {
			const uint8_t *in[GROUP];
			uint8_t res[GROUP][BLAKE3_OUT_LEN];
			size_t who[GROUP], cnt = 0;
			for (size_t m = 0; m < gn; m++)
				if (k < full[m]) {
					in[cnt] = base + offs[g + m] + k * BLAKE3_CHUNK_LEN;
					who[cnt++] = m;
				}
			hash_many(in, cnt, BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN, kw, k, KEYED_HASH, CHUNK_START, CHUNK_END, res);
			for (size_t i = 0; i < cnt; i++)
				memcpy(cvs[who[i]][k], res[i], BLAKE3_OUT_LEN);
		}
		size_t nodes[GROUP]; /* message m's nodes of the current level: cvs[m][0 .. nodes[m]) */
		for (size_t m = 0; m < gn; m++) {
			const uint8_t *p = base + offs[g + m];
			size_t len = lens[g + m];
			nodes[m] = 0; /* done below, or done here */
			if (len > MAX_CHUNKS * BLAKE3_CHUNK_LEN) {
				blake3_hasher h;
				blake3_hasher_init_keyed(&h, key);
				blake3_hasher_update(&h, p, len);
				blake3_hasher_finalize(&h, out[g + m], BLAKE3_OUT_LEN);
				sodium_memzero(&h, sizeof h); /* it holds the key */
			} else if (!full[m]) {
				chunk_cv(kw, p, len, 0, 1, out[g + m]);
			} else {
				nodes[m] = full[m];
				if (len % BLAKE3_CHUNK_LEN) {
					size_t at = nodes[m] * BLAKE3_CHUNK_LEN;
					chunk_cv(kw, p + at, len - at, nodes[m], 0, cvs[m][nodes[m]]);
					nodes[m]++;
				}
			}
		}
		/* The tree, a level at a time: adjacent nodes pair into parents, an odd last node
		 * goes up as it is (this is the spec's left-complete tree); the parents of all the
		 * messages of a level side by side, the roots (a level of two) at the end. */
		for (;;) {
			const uint8_t *in[MAX_IN];
			uint8_t res[MAX_IN][BLAKE3_OUT_LEN];
			size_t cnt = 0;
			for (size_t m = 0; m < gn; m++)
				if (nodes[m] > 2)
					for (size_t k = 0; k + 1 < nodes[m]; k += 2)
						in[cnt++] = cvs[m][k];
			if (!cnt)
				break;
			hash_many(in, cnt, 1, kw, 0, KEYED_HASH | PARENT, 0, 0, res);
			cnt = 0;
			for (size_t m = 0; m < gn; m++) {
				if (nodes[m] <= 2)
					continue;
				size_t up = 0;
				for (size_t k = 0; k + 1 < nodes[m]; k += 2)
					memcpy(cvs[m][up++], res[cnt++], BLAKE3_OUT_LEN);
				if (nodes[m] % 2)
					memcpy(cvs[m][up++], cvs[m][nodes[m] - 1], BLAKE3_OUT_LEN);
				nodes[m] = up;
			}
		}
		const uint8_t *in[GROUP];
		uint8_t res[GROUP][BLAKE3_OUT_LEN];
		size_t cnt = 0;
		for (size_t m = 0; m < gn; m++)
			if (nodes[m] == 2)
				in[cnt++] = cvs[m][0];
		hash_many(in, cnt, 1, kw, 0, KEYED_HASH | PARENT | ROOT, 0, 0, res);
		cnt = 0;
		for (size_t m = 0; m < gn; m++)
			if (nodes[m] == 2)
				memcpy(out[g + m], res[cnt++], BLAKE3_OUT_LEN);
	}
	sodium_memzero(kw, sizeof kw);
}
