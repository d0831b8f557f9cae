#include "store/index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <limits.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_VERSION 1
#define LOC_BYTES 29
#define PACK_BYTES 28

struct kbv_index {
	MDB_env *env;
	MDB_dbi blobs, packs, meta;
};

static int mdb_fail(int mrc, const char *what)
{
	return kbv_error(mrc == MDB_MAP_FULL ? KBV_EIO : KBV_EINTERNAL, "index: %s: %s", what, mdb_strerror(mrc));
}

/* A failed commit: LMDB reports a short write on a full disk as EIO; say what it is and
 * what state the repository is in (the transaction was not committed). */
static int commit_fail(struct kbv_index *idx, int mrc)
{
	const char *dir = NULL;
	if ((mrc == EIO || mrc == ENOSPC) && mdb_env_get_path(idx->env, &dir) == 0 && dir && kbv_disk_full(dir))
		return kbv_error(KBV_EIO, "index: commit: no space left on device ('%s'): what this run wrote is not "
					  "recorded and the repository is as before it; free space and run it again (gc "
					  "removes the leftovers)",
				 dir);
	return mdb_fail(mrc, "commit");
}

/* Commit *txn; *txn is NULL afterwards, committed or not. */
static int txn_commit(struct kbv_index *idx, MDB_txn **txn)
{
	int mrc = mdb_txn_commit(*txn);
	*txn = NULL;
	return mrc ? commit_fail(idx, mrc) : 0;
}

/* Is dir/data.mdb at least as long as its own newest meta page says (LMDB maps the file;
 * reading a page past its end is SIGBUS, not an error)? The meta pages are pages 0 and 1:
 * a 16-byte page header, then magic, version, address, mapsize, two 48-byte database
 * records (the first one's u32 pad holds the page size), last page number, txn id. */
int kbv_index_file_check(const char *dir)
{
	char path[PATH_MAX];
	uint8_t m[2][160];
	struct stat st;
	int rc = 0;
	if ((rc = kbv_path(path, sizeof path, "%s/data.mdb", dir)) < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : kbv_error(KBV_EIO, "open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_size == 0) { /* new: LMDB writes it */
		close(fd);
		return 0;
	}
	uint64_t best_txn = 0, need = 0;
	int found = 0;
	ssize_t got = pread(fd, m[0], sizeof m[0], 0);
	uint32_t psize = got == (ssize_t)sizeof m[0] ? kbv_get32(m[0] + 16 + 24) : 0;
	for (int i = 0; i < 2 && psize >= 512 && psize <= (1u << 16); i++) {
		if (i == 1 && pread(fd, m[1], sizeof m[1], (off_t)psize) != (ssize_t)sizeof m[1])
			break;
		const uint8_t *meta = m[i] + 16;
		if (kbv_get32(meta) != 0xBEEFC0DEu)
			continue;
		uint64_t last = kbv_get64(meta + 120), txn = kbv_get64(meta + 128);
		if (!found || txn > best_txn) {
			best_txn = txn;
			need = (last + 1) * psize;
			found = 1;
		}
	}
	close(fd);
	if (!found)
		return kbv_error(KBV_ECORRUPT, "index '%s' is damaged (no valid meta page): the index is a cache; "
					       "'kbvault repair index' rebuilds it from the packs",
				 path);
	if ((uint64_t)st.st_size < need)
		return kbv_error(KBV_ECORRUPT, "index '%s' is truncated (%lld of %llu bytes): the index is a cache; "
					       "'kbvault repair index' rebuilds it from the packs",
				 path, (long long)st.st_size, (unsigned long long)need);
	return 0;
}

int kbv_index_open(const char *dir, struct kbv_index **out)
{
	struct kbv_index *idx = calloc(1, sizeof *idx);
	MDB_txn *txn = NULL;
	int rc = 0, mrc;
	if (!idx)
		return kbv_error(KBV_ENOMEM, "out of memory");
	/* Every worker of a snapshot (up to 256, KBVAULT_THREADS) or a restore (up to 64) holds
	 * a read transaction (MDB_NOTLS): 256 slots left a snapshot with 256 workers (or a host
	 * with that many CPUs) at MDB_READERS_FULL, and commands running at once share the
	 * table. 1,024 slots are a 64 KiB lock file. */
	if ((mrc = mdb_env_create(&idx->env)) || (mrc = mdb_env_set_maxdbs(idx->env, 4)) ||
	    (mrc = mdb_env_set_mapsize(idx->env, (size_t)64 << 30)) || (mrc = mdb_env_set_maxreaders(idx->env, 1024))) {
		rc = mdb_fail(mrc, "create environment");
		goto out;
	}
	TRY(kbv_index_file_check(dir));
	if ((mrc = mdb_env_open(idx->env, dir, MDB_NOTLS, 0600))) {
		rc = mdb_fail(mrc, dir);
		goto out;
	}
	/* LMDB opens its data file without O_CLOEXEC: a child process must not inherit a
	 * writable descriptor of the index. */
	mdb_filehandle_t dfd;
	if (mdb_env_get_fd(idx->env, &dfd) == 0 && dfd >= 0)
		fcntl(dfd, F_SETFD, fcntl(dfd, F_GETFD) | FD_CLOEXEC);
	/* A process killed while reading leaves its reader slot behind; until cleared, it pins
	 * old pages and the file can only grow. */
	int dead;
	if ((mrc = mdb_reader_check(idx->env, &dead))) {
		rc = mdb_fail(mrc, "reader check");
		goto out;
	}
	if ((mrc = mdb_txn_begin(idx->env, NULL, 0, &txn)) ||
	    (mrc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &idx->blobs)) ||
	    (mrc = mdb_dbi_open(txn, "packs", MDB_CREATE | MDB_INTEGERKEY, &idx->packs)) ||
	    (mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &idx->meta))) {
		rc = mdb_fail(mrc, "open databases");
		goto out;
	}
	MDB_val k = { 7, "version" }, v;
	mrc = mdb_get(txn, idx->meta, &k, &v);
	if (mrc == MDB_NOTFOUND) {
		uint8_t ver[4];
		kbv_put32(ver, INDEX_VERSION);
		v.mv_size = 4;
		v.mv_data = ver;
		if ((mrc = mdb_put(txn, idx->meta, &k, &v, 0))) {
			rc = mdb_fail(mrc, "write version");
			goto out;
		}
	} else if (mrc) {
		rc = mdb_fail(mrc, "read version");
		goto out;
	} else if (v.mv_size != 4 || kbv_get32(v.mv_data) != INDEX_VERSION) {
		rc = kbv_error(KBV_EVERSION, "index in '%s' has version %u, this build knows %u (run 'kbvault repair index')",
			       dir, v.mv_size == 4 ? kbv_get32(v.mv_data) : 0, INDEX_VERSION);
		goto out;
	}
	TRY(txn_commit(idx, &txn));
	*out = idx;
	idx = NULL;
out:
	if (txn)
		mdb_txn_abort(txn);
	kbv_index_close(idx);
	return rc;
}

void kbv_index_close(struct kbv_index *idx)
{
	if (!idx)
		return;
	if (idx->env)
		mdb_env_close(idx->env);
	free(idx);
}

int kbv_index_rbegin(struct kbv_index *idx, MDB_txn **txn)
{
	int mrc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, txn);
	return mrc ? mdb_fail(mrc, "begin read") : 0;
}

int kbv_index_renew(MDB_txn *txn)
{
	mdb_txn_reset(txn);
	int mrc = mdb_txn_renew(txn);
	return mrc ? mdb_fail(mrc, "renew read") : 0;
}

void kbv_index_rend(MDB_txn *txn)
{
	if (txn)
		mdb_txn_abort(txn);
}

static void decode_loc(const uint8_t *p, struct kbv_loc *loc)
{
	loc->pack = kbv_get32(p);
	loc->offset = kbv_get32(p + 4);
	loc->stored_len = kbv_get32(p + 8);
	loc->raw_off = kbv_get32(p + 12);
	loc->raw_len = kbv_get32(p + 16);
	loc->xxh = kbv_get64(p + 20);
	loc->type = p[28];
}

int kbv_index_get(struct kbv_index *idx, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES], struct kbv_loc *loc)
{
	MDB_val k = { KBV_ID_BYTES, (void *)id }, v;
	int mrc = mdb_get(txn, idx->blobs, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return KBV_ENOTFOUND;
	if (mrc)
		return mdb_fail(mrc, "get blob");
	if (v.mv_size != LOC_BYTES)
		return kbv_error(KBV_ECORRUPT, "index: blob entry of %zu bytes", v.mv_size);
	if (loc)
		decode_loc(v.mv_data, loc);
	return 0;
}

static void decode_pack(const uint8_t *p, struct kbv_pack_info *info)
{
	memcpy(info->id, p, KBV_PACKID_BYTES);
	info->size = kbv_get64(p + 16);
	info->blobs = kbv_get32(p + 24);
}

int kbv_index_pack(struct kbv_index *idx, MDB_txn *txn, uint32_t packno, struct kbv_pack_info *info)
{
	unsigned int key = packno;
	MDB_val k = { sizeof key, &key }, v;
	int mrc = mdb_get(txn, idx->packs, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return kbv_error(KBV_ENOTFOUND, "index: no pack number %u", packno);
	if (mrc)
		return mdb_fail(mrc, "get pack");
	if (v.mv_size != PACK_BYTES)
		return kbv_error(KBV_ECORRUPT, "index: pack entry of %zu bytes", v.mv_size);
	decode_pack(v.mv_data, info);
	return 0;
}

void kbv_index_set_nosync(struct kbv_index *idx)
{
	mdb_env_set_flags(idx->env, MDB_NOSYNC, 1);
}

int kbv_index_put_raw(struct kbv_index *idx, int table, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int mrc = mdb_txn_begin(idx->env, NULL, 0, &txn);
	if (mrc)
		return mdb_fail(mrc, "begin write");
	mrc = val ? mdb_put(txn, table ? idx->packs : idx->blobs, &k, &v, 0)
		  : mdb_del(txn, table ? idx->packs : idx->blobs, &k, NULL);
	if (mrc && !(mrc == MDB_NOTFOUND && !val)) {
		mdb_txn_abort(txn);
		return mdb_fail(mrc, "put raw");
	}
	mrc = mdb_txn_commit(txn);
	return mrc ? mdb_fail(mrc, "commit") : 0;
}

/* Put one blob's location through `cur`, a cursor of the blobs table: one cursor for a
 * run of puts in key order, because LMDB skips the walk down from the root when the next
 * key falls on the page the cursor is on (with mdb_put each key walked the whole tree). */
static int put_loc(MDB_cursor *cur, uint32_t no, const struct kbv_pack_entry *e, unsigned int flags)
{
	uint8_t lb[LOC_BYTES];
	kbv_put32(lb, no);
	kbv_put32(lb + 4, e->offset);
	kbv_put32(lb + 8, e->stored_len);
	kbv_put32(lb + 12, e->raw_off);
	kbv_put32(lb + 16, e->raw_len);
	kbv_put64(lb + 20, e->xxh);
	lb[28] = e->type;
	MDB_val bk = { KBV_ID_BYTES, (void *)e->id }, bv = { LOC_BYTES, lb };
	int mrc = mdb_cursor_put(cur, &bk, &bv, flags);
	if (mrc == MDB_KEYEXIST)
		return KBV_EEXIST;
	return mrc ? mdb_fail(mrc, "put blob") : 0;
}

/* meta "next_pack": the number the next pack takes (0 in a new index). */
static int get_next_pack(MDB_txn *txn, MDB_dbi meta, uint32_t *no)
{
	MDB_val nk = { 9, "next_pack" }, v;
	int mrc = mdb_get(txn, meta, &nk, &v);
	*no = 0;
	if (mrc == 0 && v.mv_size == 4)
		*no = kbv_get32(v.mv_data);
	else if (mrc != MDB_NOTFOUND)
		return mrc ? mdb_fail(mrc, "get next_pack") : kbv_error(KBV_ECORRUPT, "index: bad next_pack");
	return 0;
}

static int put_next_pack(MDB_txn *txn, MDB_dbi meta, uint32_t no)
{
	uint8_t nb[4];
	kbv_put32(nb, no);
	MDB_val nk = { 9, "next_pack" }, v = { sizeof nb, nb };
	int mrc = mdb_put(txn, meta, &nk, &v, 0);
	return mrc ? mdb_fail(mrc, "put next_pack") : 0;
}

static int put_pack(MDB_txn *txn, MDB_dbi dbi, uint32_t no, const struct kbv_pack_info *info)
{
	uint8_t pb[PACK_BYTES];
	memcpy(pb, info->id, KBV_PACKID_BYTES);
	kbv_put64(pb + 16, info->size);
	kbv_put32(pb + 24, info->blobs);
	unsigned int key = no;
	MDB_val pk = { sizeof key, &key }, pv = { PACK_BYTES, pb };
	int mrc = mdb_put(txn, dbi, &pk, &pv, 0);
	return mrc ? mdb_fail(mrc, "put pack") : 0;
}

/* Is the pack `pi` (its blobs e[0..n)) indexed already? Another process of this host may
 * have indexed it since the caller looked: the cache refresh of a repository on object
 * storage indexes the packs it finds listed, among them one a running snapshot has just
 * uploaded and is about to index itself. A second entry for one pack file would let gc
 * see it as dead under one number and delete the file the other number's blobs live in.
 * A blob of the pack that is not indexed proves the pack is not (indexing adds every
 * blob); one located in this pack proves it is; when every blob is located elsewhere, the
 * pack table is searched. */
static int pack_known(struct kbv_index *idx, MDB_txn *txn, const struct kbv_pack_info *pi,
		      const struct kbv_pack_entry *e, size_t n, int *known)
{
	struct kbv_pack_info other;
	struct kbv_loc loc;
	*known = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = kbv_index_get(idx, txn, e[i].id, &loc);
		if (rc == KBV_ENOTFOUND)
			return 0;
		if (rc < 0)
			return rc;
		if (kbv_index_pack(idx, txn, loc.pack, &other) == 0 && !memcmp(other.id, pi->id, KBV_PACKID_BYTES)) {
			*known = 1;
			return 0;
		}
	}
	MDB_cursor *cur;
	MDB_val k, v;
	int mrc = mdb_cursor_open(txn, idx->packs, &cur);
	if (mrc)
		return mdb_fail(mrc, "open cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !*known; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		*known = v.mv_size == PACK_BYTES && !memcmp(v.mv_data, pi->id, KBV_PACKID_BYTES);
	mdb_cursor_close(cur);
	return mrc && mrc != MDB_NOTFOUND ? mdb_fail(mrc, "scan packs") : 0;
}

/* Is the blob's current location in one of the packs over[] (sorted)? */
static int located_in(struct kbv_index *idx, MDB_txn *txn, const uint8_t *id, const uint32_t *over, size_t nover)
{
	struct kbv_loc loc;
	if (!nover || kbv_index_get(idx, txn, id, &loc) < 0)
		return 0;
	size_t lo = 0, hi = nover;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (over[mid] == loc.pack)
			return 1;
		if (over[mid] < loc.pack)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int kbv_index_add_packs(struct kbv_index *idx, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks)
{
	return kbv_index_add_packs_over(idx, packs, entries, counts, npacks, NULL, 0);
}

/* One blob of a group being indexed: its entry, its pack's number and its place in the
 * group (a blob stored twice in the group keeps its first copy, as in pack order). */
struct put_ref {
	uint64_t head; /* the id's first 8 bytes, big-endian: sorts as memcmp does */
	const struct kbv_pack_entry *e;
	uint32_t no;
	uint32_t seq;
};

static uint64_t id_head(const uint8_t *id)
{
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | id[i];
	return h;
}

static int cmp_put_ref(const struct put_ref *x, const struct put_ref *y)
{
	if (x->head != y->head)
		return x->head < y->head ? -1 : 1;
	int c = memcmp(x->e->id, y->e->id, KBV_ID_BYTES);
	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_put_ref_q(const void *a, const void *b)
{
	return cmp_put_ref(a, b);
}

/* refs[0..n) in cmp_put_ref's order, `tmp` as large. A first snapshot ends with this sort of
 * every new chunk on the thread that ends it (qsort() of them all took 30 ms per GB of new
 * chunks): a stable radix sort on the top 32 bits of the heads (ids are hashes, so these
 * are uniform), then qsort() of each run those bits leave tied (a blob listed twice in the
 * group, or two heads in ~4 billion alike: runs of two, rarely; and a trailer of a damaged
 * or hostile pack that repair reads, however it lists its ids, costs no more than qsort). */
static void sort_put_refs(struct put_ref *refs, struct put_ref *tmp, size_t n)
{
	struct put_ref *from = refs, *to = tmp;
	for (int shift = 32; shift < 64; shift += 8) {
		size_t at[256] = { 0 }, sum = 0;
		for (size_t i = 0; i < n; i++)
			at[from[i].head >> shift & 255]++;
		for (int d = 0; d < 256; d++) {
			size_t c = at[d];
			at[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			to[at[from[i].head >> shift & 255]++] = from[i];
		struct put_ref *t = from;
		from = to;
		to = t;
	}
	/* four passes: the sorted refs are back in refs */
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && refs[j].head >> 32 == refs[i].head >> 32; j++)
			;
		if (j - i > 1)
			qsort(refs + i, j - i, sizeof *refs, cmp_put_ref_q);
	}
}

int kbv_index_add_packs_over(struct kbv_index *idx, const struct kbv_pack_info *packs,
			     const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks,
			     const uint32_t *over, size_t nover)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	struct put_ref *refs = NULL;
	size_t nrefs = 0, total = 0;
	int rc = 0, mrc;
	for (size_t p = 0; p < npacks; p++)
		total += counts[p];
	if (total && !(refs = malloc(2 * total * sizeof *refs)))
		return kbv_error(KBV_ENOMEM, "out of memory");
	if ((mrc = mdb_txn_begin(idx->env, NULL, 0, &txn))) {
		free(refs);
		return mdb_fail(mrc, "begin write");
	}
	if ((mrc = mdb_cursor_open(txn, idx->blobs, &cur))) {
		rc = mdb_fail(mrc, "open cursor");
		goto out;
	}
	uint32_t no;
	TRY(get_next_pack(txn, idx->meta, &no));
	for (size_t p = 0; p < npacks; p++) {
		int known = 0;
		/* listed twice in the group: its blobs are not put yet, so pack_known cannot
		 * see the first listing; one number for it all the same */
		for (size_t q = 0; q < p && !known; q++)
			known = !memcmp(packs[q].id, packs[p].id, KBV_PACKID_BYTES);
		if (!known)
			TRY(pack_known(idx, txn, &packs[p], entries[p], counts[p], &known));
		if (known)
			continue;
		TRY(put_pack(txn, idx->packs, no, &packs[p]));
		for (size_t i = 0; i < counts[p]; i++) {
			refs[nrefs] = (struct put_ref){ id_head(entries[p][i].id), &entries[p][i], no, (uint32_t)nrefs };
			nrefs++;
		}
		no++;
	}
	/* in key order: each page of the tree is found once, not once per random key */
	sort_put_refs(refs, refs + total, nrefs);
	for (size_t r = 0; r < nrefs; r++) {
		rc = put_loc(cur, refs[r].no, refs[r].e, MDB_NOOVERWRITE);
		if (rc == KBV_EEXIST && located_in(idx, txn, refs[r].e->id, over, nover))
			rc = put_loc(cur, refs[r].no, refs[r].e, 0); /* the old one is condemned */
		else if (rc == KBV_EEXIST)
			rc = 0; /* indexed elsewhere first: this copy is garbage */
		if (rc < 0)
			goto out;
	}
	TRY(put_next_pack(txn, idx->meta, no));
	mdb_cursor_close(cur);
	rc = txn_commit(idx, &txn);
out:
	if (txn)
		mdb_txn_abort(txn); /* and its cursor */
	free(refs);
	return rc;
}

/* The user's callback for a walk over one database. */
struct visitor {
	kbv_index_blob_fn blob;
	kbv_index_pack_fn pack;
	void *arg;
};

/* Visit every record of a database in key order; `entry` decodes one and calls the user's
 * callback. */
typedef int (*entry_fn)(const MDB_val *k, const MDB_val *v, const struct visitor *vis);

static int each(MDB_txn *txn, MDB_dbi dbi, const char *what, entry_fn entry, const struct visitor *vis)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(txn, dbi, &cur), rc = 0;
	if (mrc)
		return mdb_fail(mrc, "open cursor");
	MDB_val k, v;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((rc = entry(&k, &v, vis)) != 0)
			break;
	if (!rc && mrc != MDB_NOTFOUND)
		rc = mdb_fail(mrc, what);
	mdb_cursor_close(cur);
	return rc;
}

static int blob_entry(const MDB_val *k, const MDB_val *v, const struct visitor *vis)
{
	if (k->mv_size != KBV_ID_BYTES || v->mv_size != LOC_BYTES)
		return kbv_error(KBV_ECORRUPT, "index: malformed blob entry");
	struct kbv_loc loc;
	decode_loc(v->mv_data, &loc);
	return vis->blob(vis->arg, k->mv_data, &loc);
}

static int pack_entry(const MDB_val *k, const MDB_val *v, const struct visitor *vis)
{
	if (k->mv_size != sizeof(unsigned int) || v->mv_size != PACK_BYTES)
		return kbv_error(KBV_ECORRUPT, "index: malformed pack entry");
	unsigned int no;
	memcpy(&no, k->mv_data, sizeof no);
	struct kbv_pack_info info;
	decode_pack(v->mv_data, &info);
	return vis->pack(vis->arg, no, &info);
}

int kbv_index_each_blob(struct kbv_index *idx, MDB_txn *txn, kbv_index_blob_fn fn, void *arg)
{
	struct visitor vis = { fn, NULL, arg };
	return each(txn, idx->blobs, "iterate blobs", blob_entry, &vis);
}

int kbv_index_each_pack(struct kbv_index *idx, MDB_txn *txn, kbv_index_pack_fn fn, void *arg)
{
	struct visitor vis = { NULL, fn, arg };
	return each(txn, idx->packs, "iterate packs", pack_entry, &vis);
}

/* ---- index objects merged (meta `idxobj:` + 32-byte id) ---- */

#define OBJ_PREFIX "idxobj:"
#define OBJ_PREFIX_LEN 7

static void obj_key(const uint8_t id[KBV_ID_BYTES], uint8_t k[OBJ_PREFIX_LEN + KBV_ID_BYTES])
{
	memcpy(k, OBJ_PREFIX, OBJ_PREFIX_LEN);
	memcpy(k + OBJ_PREFIX_LEN, id, KBV_ID_BYTES);
}

int kbv_index_obj_merged(struct kbv_index *idx, MDB_txn *txn, const uint8_t id[KBV_ID_BYTES])
{
	uint8_t kb[OBJ_PREFIX_LEN + KBV_ID_BYTES];
	obj_key(id, kb);
	MDB_val k = { sizeof kb, kb }, v;
	int mrc = mdb_get(txn, idx->meta, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return 0;
	return mrc ? mdb_fail(mrc, "look up index object") : 1;
}

int kbv_index_each_obj(struct kbv_index *idx, MDB_txn *txn, kbv_index_obj_fn fn, void *arg)
{
	MDB_cursor *cur = NULL;
	MDB_val k = { OBJ_PREFIX_LEN, OBJ_PREFIX }, v;
	int rc = 0, mrc;
	if ((mrc = mdb_cursor_open(txn, idx->meta, &cur)))
		return mdb_fail(mrc, "iterate index objects");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && rc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < OBJ_PREFIX_LEN || memcmp(k.mv_data, OBJ_PREFIX, OBJ_PREFIX_LEN) != 0)
			break;
		if (k.mv_size == OBJ_PREFIX_LEN + KBV_ID_BYTES)
			rc = fn(arg, (const uint8_t *)k.mv_data + OBJ_PREFIX_LEN);
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc && mrc != MDB_NOTFOUND)
		rc = mdb_fail(mrc, "iterate index objects");
	return rc;
}

int kbv_index_mark_objs(struct kbv_index *idx, const uint8_t (*add)[KBV_ID_BYTES], size_t nadd,
			const uint8_t (*drop)[KBV_ID_BYTES], size_t ndrop)
{
	MDB_txn *txn = NULL;
	int rc = 0, mrc;
	if (!nadd && !ndrop)
		return 0;
	if ((mrc = mdb_txn_begin(idx->env, NULL, 0, &txn)))
		return mdb_fail(mrc, "begin write transaction");
	for (size_t i = 0; i < ndrop; i++) {
		uint8_t kb[OBJ_PREFIX_LEN + KBV_ID_BYTES];
		obj_key(drop[i], kb);
		MDB_val k = { sizeof kb, kb };
		if ((mrc = mdb_del(txn, idx->meta, &k, NULL)) && mrc != MDB_NOTFOUND) {
			rc = mdb_fail(mrc, "forget index object");
			goto out;
		}
	}
	for (size_t i = 0; i < nadd; i++) {
		uint8_t kb[OBJ_PREFIX_LEN + KBV_ID_BYTES];
		obj_key(add[i], kb);
		MDB_val k = { sizeof kb, kb }, v = { 0, "" };
		if ((mrc = mdb_put(txn, idx->meta, &k, &v, 0))) {
			rc = mdb_fail(mrc, "record index object");
			goto out;
		}
	}
	rc = txn_commit(idx, &txn);
out:
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

#define GC_BATCH 5000 /* changes per write transaction: bounds LMDB's dirty pages */

struct put {
	const struct kbv_pack_entry *e;
	uint32_t no;
};

static int cmp_put(const void *a, const void *b)
{
	return memcmp(((const struct put *)a)->e->id, ((const struct put *)b)->e->id, KBV_ID_BYTES);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int gc_commit(struct kbv_index *idx, const struct kbv_pack_info *packs, const struct kbv_pack_entry *const *entries,
		     const size_t *counts, size_t npacks, const uint32_t *gone, size_t ngone, uint64_t *removed);

int kbv_index_gc_commit(struct kbv_index *idx, const struct kbv_pack_info *packs,
			const struct kbv_pack_entry *const *entries, const size_t *counts, size_t npacks,
			const uint32_t *gone, size_t ngone)
{
	return gc_commit(idx, packs, entries, counts, npacks, gone, ngone, NULL);
}

int kbv_index_drop_packs(struct kbv_index *idx, const uint32_t *gone, size_t ngone, uint64_t *removed)
{
	*removed = 0;
	return gc_commit(idx, NULL, NULL, NULL, 0, gone, ngone, removed);
}

int kbv_index_fill(struct kbv_index *idx, uint32_t packno, const struct kbv_pack_entry *e, size_t n, uint64_t *filled)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur;
	int rc = 0, mrc;
	if ((mrc = mdb_txn_begin(idx->env, NULL, 0, &txn)))
		return mdb_fail(mrc, "begin write");
	if ((mrc = mdb_cursor_open(txn, idx->blobs, &cur))) {
		rc = mdb_fail(mrc, "open cursor");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rc = put_loc(cur, packno, &e[i], MDB_NOOVERWRITE);
		if (rc == 0)
			(*filled)++;
		else if (rc == KBV_EEXIST)
			rc = 0;
		if (rc < 0)
			goto out;
	}
	mdb_cursor_close(cur);
	rc = txn_commit(idx, &txn);
out:
	if (txn)
		mdb_txn_abort(txn); /* and its cursor */
	return rc;
}

static int gc_commit(struct kbv_index *idx, const struct kbv_pack_info *packs, const struct kbv_pack_entry *const *entries,
		     const size_t *counts, size_t npacks, const uint32_t *gone, size_t ngone, uint64_t *removed)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	int rc = 0, mrc;
	size_t changes = 0;
	if ((mrc = mdb_txn_begin(idx->env, NULL, 0, &txn)))
		return mdb_fail(mrc, "begin write");
	uint32_t first;
	TRY(get_next_pack(txn, idx->meta, &first));
	/* The new packs and the numbers they take, in the first transaction. */
	for (size_t p = 0; p < npacks; p++)
		TRY(put_pack(txn, idx->packs, first + (uint32_t)p, &packs[p]));
	TRY(put_next_pack(txn, idx->meta, first + (uint32_t)npacks));
	/* Their blobs take over the locations, in key order (so a batch dirties few pages),
	 * in batches: until every batch is in, the old locations stay valid (the old packs
	 * are deleted only after this returns). */
	size_t total = 0;
	for (size_t p = 0; p < npacks; p++)
		total += counts[p];
	struct put *puts = malloc((total + 1) * sizeof *puts);
	if (!puts) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	size_t np = 0;
	for (size_t p = 0; p < npacks; p++)
		for (size_t i = 0; i < counts[p]; i++)
			puts[np++] = (struct put){ &entries[p][i], first + (uint32_t)p };
	if (total)
		qsort(puts, total, sizeof *puts, cmp_put);
	MDB_cursor *pc = NULL; /* the batch's, closed before its transaction ends */
	for (size_t i = 0; i < total && rc == 0; i++) {
		if (!pc && (mrc = mdb_cursor_open(txn, idx->blobs, &pc))) {
			rc = mdb_fail(mrc, "open cursor");
			break;
		}
		rc = put_loc(pc, puts[i].no, puts[i].e, 0);
		if (rc == 0 && ++changes % GC_BATCH == 0) {
			mdb_cursor_close(pc);
			pc = NULL;
			mrc = mdb_txn_commit(txn);
			txn = NULL;
			kbv_index_release_pages(idx);
			if (mrc || (mrc = mdb_txn_begin(idx->env, NULL, 0, &txn)))
				rc = commit_fail(idx, mrc);
		}
	}
	if (pc)
		mdb_cursor_close(pc);
	free(puts);
	if (rc < 0)
		goto out;
	/* Then every blob still located in a removed pack goes: one pass in key order. */
	uint32_t *g = malloc((ngone + 1) * sizeof *g);
	if (!g) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	if (ngone) {
		memcpy(g, gone, ngone * sizeof *g);
		qsort(g, ngone, sizeof *g, cmp_u32);
	}
	uint8_t resume[KBV_ID_BYTES];
	int resuming = 0;
	for (; ngone;) {
		if ((mrc = mdb_cursor_open(txn, idx->blobs, &cur))) {
			rc = mdb_fail(mrc, "cursor");
			break;
		}
		MDB_val k = { KBV_ID_BYTES, resume }, val;
		mrc = resuming ? mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &val, MDB_FIRST);
		int batch_full = 0;
		while (mrc == 0) {
			uint32_t no = val.mv_size == LOC_BYTES ? kbv_get32(val.mv_data) : UINT32_MAX;
			if (ngone && bsearch(&no, g, ngone, sizeof *g, cmp_u32)) {
				memcpy(resume, k.mv_data, KBV_ID_BYTES);
				if ((mrc = mdb_cursor_del(cur, 0)))
					break;
				if (removed)
					(*removed)++;
				if (++changes % GC_BATCH == 0) {
					batch_full = 1;
					break;
				}
			}
			mrc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		cur = NULL;
		if (mrc && mrc != MDB_NOTFOUND) {
			rc = mdb_fail(mrc, "delete blobs");
			break;
		}
		if (!batch_full)
			break;
		/* Commit this batch and go on after the last deleted key. */
		mrc = mdb_txn_commit(txn);
		txn = NULL;
		kbv_index_release_pages(idx);
		if (mrc || (mrc = mdb_txn_begin(idx->env, NULL, 0, &txn))) {
			rc = commit_fail(idx, mrc);
			break;
		}
		if (kbv_fault("gc-index-batch")) { /* tests: stop where a kill -9 could */
			rc = kbv_error(KBV_EIO, "gc: index batch: injected fault");
			break;
		}
		resuming = 1;
	}
	for (size_t i = 0; rc == 0 && i < ngone; i++) {
		unsigned int key = g[i];
		MDB_val pk = { sizeof key, &key };
		mrc = mdb_del(txn, idx->packs, &pk, NULL);
		if (mrc && mrc != MDB_NOTFOUND)
			rc = mdb_fail(mrc, "delete pack");
	}
	free(g);
	if (rc < 0)
		goto out;
	rc = txn_commit(idx, &txn);
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int kbv_index_compact(struct kbv_index *idx, const char *dir)
{
	int mrc = mdb_env_copy2(idx->env, dir, MDB_CP_COMPACT);
	return mrc ? mdb_fail(mrc, "compact copy") : 0;
}

void kbv_index_release_pages(struct kbv_index *idx)
{
	MDB_envinfo info;
	if (mdb_env_info(idx->env, &info) == 0 && info.me_mapaddr) {
		/* The map is read-only (no MDB_WRITEMAP): dropping its pages from this process
		 * loses nothing; the next access reads them back from the page cache. */
		long page = sysconf(_SC_PAGESIZE);
		size_t used = (info.me_last_pgno + 1) * (size_t)page;
		madvise(info.me_mapaddr, used, MADV_DONTNEED);
	}
}

int kbv_index_usage(struct kbv_index *idx, uint64_t *used, uint64_t *file)
{
	MDB_envinfo info;
	MDB_stat st;
	int mrc = mdb_env_info(idx->env, &info);
	if (mrc == 0)
		mrc = mdb_env_stat(idx->env, &st);
	if (mrc)
		return mdb_fail(mrc, "stat");
	*file = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	/* Pages in use: every named database's pages plus the main one's. */
	MDB_txn *txn;
	uint64_t pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	if ((mrc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn)))
		return mdb_fail(mrc, "begin read");
	MDB_dbi dbs[3] = { idx->blobs, idx->packs, idx->meta };
	for (int i = 0; i < 3; i++) {
		MDB_stat ds;
		if (mdb_stat(txn, dbs[i], &ds) == 0)
			pages += ds.ms_branch_pages + ds.ms_leaf_pages + ds.ms_overflow_pages;
	}
	mdb_txn_abort(txn);
	*used = pages * st.ms_psize;
	return 0;
}

