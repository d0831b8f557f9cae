#include "store/pack.h"
#include "codec/xxh.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WBUF_SIZE (1u << 20)

struct kbv_packw {
	struct kbv_repo *repo;
	struct kbv_codec *codec;
	struct kbv_be_wr *obj; /* the pack object being written */
	uint8_t id[KBV_PACKID_BYTES];
	uint64_t off;          /* bytes in the pack so far, buffered or written */
	struct kbv_buf wbuf;   /* not yet written */
	struct kbv_buf entries;
};

static int packw_flush(struct kbv_packw *w)
{
	if (!w->wbuf.len)
		return 0;
	int rc = kbv_be_append(w->obj, w->wbuf.data, w->wbuf.len);
	w->wbuf.len = 0;
	return rc;
}

int kbv_packw_new(struct kbv_repo *r, struct kbv_codec *codec, struct kbv_packw **out)
{
	struct kbv_packw *w = calloc(1, sizeof *w);
	int rc = 0;
	if (!w)
		return kbv_error(KBV_ENOMEM, "out of memory");
	w->repo = r;
	w->codec = codec;
	randombytes_buf(w->id, sizeof w->id);
	char hex[2 * KBV_PACKID_BYTES + 1];
	kbv_hex(w->id, sizeof w->id, hex);
	TRY(kbv_be_create(r->be, KBV_OBJ_PACK, hex, &w->obj));
	TRY(kbv_buf_reserve(&w->wbuf, WBUF_SIZE));
	uint8_t h[KBV_PACK_HEADER];
	memcpy(h, "KBVPACK\0", 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, r->encrypted ? 1 : 0);
	memcpy(h + 16, w->id, KBV_PACKID_BYTES);
	TRY(kbv_buf_add(&w->wbuf, h, sizeof h));
	w->off = sizeof h;
	*out = w;
	w = NULL;
out:
	kbv_packw_free(w);
	return rc;
}

static int packw_append(struct kbv_packw *w, const void *stored, size_t n)
{
	int rc = 0;
	if (w->wbuf.len + n > WBUF_SIZE)
		TRY(packw_flush(w));
	if (n >= WBUF_SIZE)
		TRY(kbv_be_append(w->obj, stored, n));
	else
		TRY(kbv_buf_add(&w->wbuf, stored, n));
	w->off += n;
out:
	return rc;
}

int kbv_packw_add(struct kbv_packw *w, int type, const uint8_t id[KBV_ID_BYTES], const void *stored, size_t n,
		  uint32_t raw_len)
{
	if (w->off + n > UINT32_MAX - (1u << 24))
		return kbv_error(KBV_EINVAL, "pack would exceed 4 GiB");
	struct kbv_pack_entry e = { (uint8_t)type, { 0 }, (uint32_t)w->off, (uint32_t)n, 0, raw_len,
				    XXH3_64bits(stored, n) };
	memcpy(e.id, id, KBV_ID_BYTES);
	int rc = kbv_buf_add(&w->entries, &e, sizeof e);
	return rc < 0 ? rc : packw_append(w, stored, n);
}

int kbv_packw_add_bundle(struct kbv_packw *w, const void *stored, size_t size, uint64_t xxh, uint32_t n,
			 const uint8_t (*ids)[KBV_ID_BYTES], const uint32_t *lens)
{
	if (w->off + size > UINT32_MAX - (1u << 24))
		return kbv_error(KBV_EINVAL, "pack would exceed 4 GiB");
	uint64_t before = 0;
	int rc = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct kbv_pack_entry e = { KBV_BLOB_DATA, { 0 }, (uint32_t)w->off, (uint32_t)size,
					    kbv_bundle_offset(n, before), lens[i], xxh };
		memcpy(e.id, ids[i], KBV_ID_BYTES);
		TRY(kbv_buf_add(&w->entries, &e, sizeof e));
		before += lens[i];
	}
	rc = packw_append(w, stored, size);
out:
	return rc;
}

int kbv_packw_add_copy(struct kbv_packw *w, const void *stored, size_t size, const struct kbv_pack_entry *e, size_t k)
{
	if (w->off + size > UINT32_MAX - (1u << 24))
		return kbv_error(KBV_EINVAL, "pack would exceed 4 GiB");
	uint64_t xxh = XXH3_64bits(stored, size);
	int rc = 0;
	for (size_t i = 0; i < k; i++) {
		struct kbv_pack_entry c = e[i];
		if (c.xxh != xxh || c.stored_len != size)
			return kbv_error(KBV_ECORRUPT, "blob %02x%02x%02x%02x...: its envelope does not match its trailer entry",
					 c.id[0], c.id[1], c.id[2], c.id[3]);
		c.offset = (uint32_t)w->off;
		TRY(kbv_buf_add(&w->entries, &c, sizeof c));
	}
	rc = packw_append(w, stored, size);
out:
	return rc;
}

uint64_t kbv_packw_size(const struct kbv_packw *w) { return w->off; }
size_t kbv_packw_count(const struct kbv_packw *w) { return w->entries.len / sizeof(struct kbv_pack_entry); }
const struct kbv_pack_entry *kbv_packw_entries(const struct kbv_packw *w)
{
	return (const struct kbv_pack_entry *)w->entries.data;
}

static uint8_t *trailer_id(const uint8_t packid[KBV_PACKID_BYTES], uint8_t id[KBV_ID_BYTES])
{
	memset(id, 0, KBV_ID_BYTES);
	memcpy(id, packid, KBV_PACKID_BYTES);
	return id;
}

int kbv_packw_finish(struct kbv_packw *w, unsigned flags, struct kbv_pack_info *info)
{
	struct kbv_buf plain = KBV_BUF_INIT, env = KBV_BUF_INIT;
	uint8_t tid[KBV_ID_BYTES];
	int rc = 0;
	size_t n = kbv_packw_count(w);
	const struct kbv_pack_entry *e = kbv_packw_entries(w);

	TRY(kbv_trailer_encode(e, n, &plain));
	TRY(kbv_blob_encode(w->codec, KBV_BLOB_TRAILER, trailer_id(w->id, tid), plain.data, plain.len, &env));
	uint8_t f[KBV_PACK_FOOTER];
	kbv_put64(f, w->off);
	kbv_put32(f + 8, (uint32_t)env.len);
	kbv_put32(f + 12, 1);
	kbv_put64(f + 16, XXH3_64bits(env.data, env.len));
	memcpy(f + 24, "KBVPEND\0", 8);
	TRY(packw_flush(w));
	TRY(kbv_be_append(w->obj, env.data, env.len));
	TRY(kbv_be_append(w->obj, f, sizeof f));
	w->off += env.len + sizeof f;
	TRY(kbv_be_commit(w->obj, flags));
	memcpy(info->id, w->id, KBV_PACKID_BYTES);
	info->size = w->off;
	info->blobs = (uint32_t)n;
out:
	kbv_buf_release(&plain);
	kbv_buf_release(&env);
	return rc;
}

void kbv_packw_free(struct kbv_packw *w)
{
	if (!w)
		return;
	kbv_be_discard(w->obj); /* an uncommitted pack is dropped */
	kbv_buf_release(&w->wbuf);
	kbv_buf_release(&w->entries);
	free(w);
}

int kbv_pack_read_trailer(struct kbv_repo *r, struct kbv_codec *codec, const uint8_t packid[KBV_PACKID_BYTES],
			  struct kbv_buf *entries, size_t *n, uint64_t *size)
{
	return kbv_pack_open_trailer(r, codec, packid, 0, NULL, entries, n, size);
}

/* The tail read first: the footer, and in one read the trailer before it unless the
 * trailer is larger (a pack of 16 MiB of 8 KiB chunks has a trailer of ~100 KiB). */
#define TAIL_READ (256u << 10)

int kbv_pack_open_trailer(struct kbv_repo *r, struct kbv_codec *codec, const uint8_t packid[KBV_PACKID_BYTES],
			  uint64_t known, struct kbv_be_rd **keep, struct kbv_buf *entries, size_t *n, uint64_t *size)
{
	char path[PATH_MAX], hex[2 * KBV_PACKID_BYTES + 1];
	struct kbv_buf env = KBV_BUF_INIT, plain = KBV_BUF_INIT, tail = KBV_BUF_INIT;
	struct kbv_be_rd *rd = NULL;
	uint64_t end = known;
	int rc = 0;
	kbv_hex(packid, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, path, sizeof path);
	if (known)
		rc = kbv_be_open_known(r->be, KBV_OBJ_PACK, hex, &end, &rd);
	else
		rc = kbv_be_open(r->be, KBV_OBJ_PACK, hex, &rd, &end);
	if (rc < 0) {
		kbv_error_prefix(rc, "pack");
		goto out;
	}
	if (end < KBV_PACK_HEADER + KBV_PACK_FOOTER) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s' is truncated (%llu bytes)", path, (unsigned long long)end);
		goto out;
	}
	uint8_t h[KBV_PACK_HEADER], f[KBV_PACK_FOOTER];
	size_t tn = end - KBV_PACK_HEADER < TAIL_READ ? (size_t)(end - KBV_PACK_HEADER) : TAIL_READ;
	TRY(kbv_buf_reserve(&tail, tn));
	TRY(kbv_be_read(rd, tail.data, tn, end - tn));
	tail.len = tn;
	memcpy(f, tail.data + tn - KBV_PACK_FOOTER, sizeof f);
	/* 32 bytes with a request of their own: a read window would fetch 2 MiB for them */
	TRY(kbv_be_read_once(rd, h, sizeof h, 0));
	if (memcmp(h, "KBVPACK\0", 8) != 0 || memcmp(f + 24, "KBVPEND\0", 8) != 0) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s' has a bad %s magic (truncated or overwritten)", path,
			       memcmp(h, "KBVPACK\0", 8) ? "header" : "footer");
		goto out;
	}
	if (kbv_get32(h + 8) != 1 || kbv_get32(f + 12) != 1) {
		rc = kbv_error(KBV_EVERSION, "pack '%s' has version %u; this kbvault reads version 1", path,
			       kbv_get32(h + 8));
		goto out;
	}
	if (memcmp(h + 16, packid, KBV_PACKID_BYTES) != 0 || (kbv_get32(h + 12) & 1) != (uint32_t)r->encrypted) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s' header does not match its name or the repository", path);
		goto out;
	}
	uint64_t toff = kbv_get64(f);
	uint32_t tlen = kbv_get32(f + 8);
	if (toff < KBV_PACK_HEADER || toff + tlen != end - KBV_PACK_FOOTER) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s' footer points outside the file", path);
		goto out;
	}
	TRY(kbv_buf_reserve(&env, tlen));
	if (toff >= end - tn) /* within the tail already read */
		memcpy(env.data, tail.data + (toff - (end - tn)), tlen);
	else
		TRY(kbv_be_read(rd, env.data, tlen, toff));
	env.len = tlen;
	if (XXH3_64bits(env.data, tlen) != kbv_get64(f + 16)) {
		rc = kbv_error(KBV_ECORRUPT, "pack '%s': trailer checksum mismatch at offset %llu", path,
			       (unsigned long long)toff);
		goto out;
	}
	uint8_t tid[KBV_ID_BYTES];
	rc = kbv_blob_decode(codec, KBV_BLOB_TRAILER, trailer_id(packid, tid), env.data, tlen, KBV_RAW_UNKNOWN, &plain);
	if (rc < 0) {
		kbv_error_prefix(rc, "pack '%s': trailer", path);
		goto out;
	}
	TRY(kbv_trailer_parse(plain.data, plain.len, toff, path, entries, n));
	*size = end;
	if (keep) {
		*keep = rd;
		rd = NULL;
	}
out:
	kbv_be_close(rd);
	kbv_buf_release(&tail);
	kbv_buf_release(&env);
	kbv_buf_release(&plain);
	return rc;
}

int kbv_trailer_encode(const struct kbv_pack_entry *e, size_t n, struct kbv_buf *out)
{
	int rc = 0;
	TRY(kbv_buf_reserve(out, 4 + n * KBV_TRAILER_ENTRY));
	TRY(kbv_buf_add_u32(out, (uint32_t)n));
	for (size_t i = 0; i < n; i++) {
		TRY(kbv_buf_add_u8(out, e[i].type));
		TRY(kbv_buf_add(out, e[i].id, KBV_ID_BYTES));
		TRY(kbv_buf_add_u32(out, e[i].offset));
		TRY(kbv_buf_add_u32(out, e[i].stored_len));
		TRY(kbv_buf_add_u32(out, e[i].raw_off));
		TRY(kbv_buf_add_u32(out, e[i].raw_len));
		TRY(kbv_buf_add_u64(out, e[i].xxh));
	}
out:
	return rc;
}

int kbv_trailer_parse(const uint8_t *plain, size_t len, uint64_t trailer_off, const char *what,
		      struct kbv_buf *entries, size_t *n)
{
	struct kbv_rd rd = kbv_rd_make(plain, len);
	uint32_t count = kbv_rd_u32(&rd);
	if (rd.bad || len != 4 + (size_t)count * KBV_TRAILER_ENTRY)
		return kbv_error(KBV_ECORRUPT, "pack '%s': trailer lists %u blobs in %zu bytes", what, count, len);
	entries->len = 0;
	int rc = kbv_buf_reserve(entries, (size_t)count * sizeof(struct kbv_pack_entry) + 1);
	if (rc < 0)
		return rc;
	struct kbv_pack_entry *e = (struct kbv_pack_entry *)entries->data;
	for (uint32_t i = 0; i < count; i++) {
		e[i].type = kbv_rd_u8(&rd);
		memcpy(e[i].id, kbv_rd_bytes(&rd, KBV_ID_BYTES), KBV_ID_BYTES);
		e[i].offset = kbv_rd_u32(&rd);
		e[i].stored_len = kbv_rd_u32(&rd);
		e[i].raw_off = kbv_rd_u32(&rd);
		e[i].raw_len = kbv_rd_u32(&rd);
		e[i].xxh = kbv_rd_u64(&rd);
		if (e[i].offset < KBV_PACK_HEADER || (uint64_t)e[i].offset + e[i].stored_len > trailer_off ||
		    (e[i].type != KBV_BLOB_DATA && e[i].type != KBV_BLOB_TREE && e[i].type != KBV_BLOB_SNAPSHOT))
			return kbv_error(KBV_ECORRUPT, "pack '%s': trailer entry %u is out of range", what, i);
	}
	entries->len = (size_t)count * sizeof(struct kbv_pack_entry);
	*n = count;
	return 0;
}

struct each_pack {
	kbv_packfile_fn fn;
	void *arg;
};

static int each_pack(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct each_pack *ep = arg;
	uint8_t id[KBV_PACKID_BYTES];
	if (kbv_unhex(name, id, KBV_PACKID_BYTES) < 0)
		return 0;
	return ep->fn(ep->arg, id, size, mtime);
}

int kbv_each_packfile(struct kbv_repo *r, kbv_packfile_fn fn, void *arg)
{
	struct each_pack ep = { fn, arg };
	return kbv_be_list(r->be, KBV_OBJ_PACK, each_pack, &ep);
}

void kbv_packfds_init(struct kbv_packfds *c)
{
	memset(c, 0, sizeof *c);
}

void kbv_packfds_release(struct kbv_packfds *c)
{
	for (int i = 0; i < 8; i++)
		kbv_be_close(c->slot[i].rd);
	kbv_bundle_cache_release(&c->bundle);
	kbv_packfds_init(c);
}

/* Packs are numbered as they were written, and a snapshot writes its chunks into one pack
 * after another: a thread whose reads went on from pack P-1 to P (a restore walking a tree
 * of small files, or a stream, in the order they were written) reads P+1 next. It is asked
 * after P (kbv_be_read_then), so that over a network the windows read ahead of the reader
 * go on into P+1 before it gets there, as they do within a pack (docs/benchmarks.md, "Small
 * files from a distant bucket"). A thread that jumps between packs says nothing. */
static void read_then(struct kbv_repo *r, MDB_txn *txn, struct kbv_packfds *c, uint32_t packno,
		      struct kbv_be_rd *rd)
{
	if (c->has_last && c->last == packno)
		return;
	int in_order = c->has_last && packno == c->last + 1;
	c->last = packno;
	c->has_last = 1;
	struct kbv_pack_info next;
	char hex[2 * KBV_PACKID_BYTES + 1];
	if (!in_order || packno == UINT32_MAX || kbv_index_pack(r->idx, txn, packno + 1, &next) < 0)
		return; /* the last pack (or a pack gc dropped): nothing to say */
	kbv_hex(next.id, KBV_PACKID_BYTES, hex);
	kbv_be_read_then(rd, KBV_OBJ_PACK, hex, next.size);
}

/* The open pack number packno (a cached reader, or a new one in the least recently used
 * slot). */
static int packrd(struct kbv_repo *r, MDB_txn *txn, struct kbv_packfds *c, uint32_t packno, char *path,
		  size_t cap, struct kbv_be_rd **rd, uint64_t *size)
{
	struct kbv_pack_info info;
	char hex[2 * KBV_PACKID_BYTES + 1];
	int rc = kbv_index_pack(r->idx, txn, packno, &info);
	if (rc < 0)
		return rc;
	kbv_hex(info.id, KBV_PACKID_BYTES, hex);
	kbv_be_describe(r->be, KBV_OBJ_PACK, hex, path, cap);
	int lru = 0, k = -1;
	for (int i = 0; i < 8 && k < 0; i++) {
		if (c->slot[i].rd && c->slot[i].packno == packno)
			k = i;
		else if (c->slot[i].used < c->slot[lru].used)
			lru = i;
	}
	if (k < 0) {
		struct kbv_be_rd *f = NULL;
		uint64_t fsize = info.size;
		rc = kbv_be_open_known(r->be, KBV_OBJ_PACK, hex, &fsize, &f);
		if (rc == KBV_ENOTFOUND) /* the index names it: a pack that is gone is damage */
			return kbv_error(KBV_ECORRUPT, "open pack '%s': %s", path, "No such file or directory");
		if (rc < 0)
			return rc;
		k = lru;
		kbv_be_close(c->slot[k].rd);
		c->slot[k].rd = f;
		c->slot[k].packno = packno;
		c->slot[k].size = fsize;
	}
	c->slot[k].used = ++c->clock;
	*rd = c->slot[k].rd;
	*size = c->slot[k].size;
	read_then(r, txn, c, packno, *rd);
	return 0;
}

void kbv_bundle_cache_clear(struct kbv_bundle_cache *bc)
{
	for (int i = 0; i < KBV_BUNDLES_CACHED; i++)
		bc->slot[i].valid = 0;
}

void kbv_bundle_cache_release(struct kbv_bundle_cache *bc)
{
	for (int i = 0; i < KBV_BUNDLES_CACHED; i++)
		kbv_buf_release(&bc->slot[i].plain);
	memset(bc, 0, sizeof *bc);
}

/* The slot holding the envelope of `e` decoded, or -1. */
static int bundle_slot(const struct kbv_bundle_cache *bc, uint32_t packno, const struct kbv_pack_entry *e)
{
	if (!bc || e->type != KBV_BLOB_DATA)
		return -1;
	for (int i = 0; i < KBV_BUNDLES_CACHED; i++)
		if (bc->slot[i].valid && bc->slot[i].pack == packno && bc->slot[i].offset == e->offset)
			return i;
	return -1;
}

int kbv_bundle_cached(const struct kbv_bundle_cache *bc, uint32_t packno, const struct kbv_pack_entry *e)
{
	return bundle_slot(bc, packno, e) >= 0;
}

/* kbv_pack_decode_at() without the copy: *p points at the blob's bytes, in a slot of `bc`
 * (a bundle's member) or in `out` (a blob of its own envelope). */
static int decode_view(struct kbv_codec *codec, const char *packname, uint32_t packno, const struct kbv_pack_entry *e,
		       struct kbv_bundle_cache *bc, const uint8_t *stored, struct kbv_buf *out, const uint8_t **p)
{
	char idhex[2 * KBV_ID_BYTES + 1];
	int rc = 0;
	int k = bundle_slot(bc, packno, e);
	if (k >= 0)
		goto member; /* decoded (and verified) already */
	if (XXH3_64bits(stored, e->stored_len) != e->xxh) {
		kbv_hex(e->id, KBV_ID_BYTES, idhex);
		return kbv_error(KBV_ECORRUPT, "pack '%s': blob %.16s at offset %u: checksum mismatch (stored bytes damaged)",
				 packname, idhex, e->offset);
	}
	if (e->type != KBV_BLOB_DATA) {
		if ((rc = kbv_blob_decode(codec, e->type, e->id, stored, e->stored_len, e->raw_len, out)) == 0)
			*p = out->data;
		goto decoded;
	}
	k = 0; /* the least recently used slot */
	int lim = bc->limit && bc->limit < KBV_BUNDLES_CACHED ? (int)bc->limit : KBV_BUNDLES_CACHED;
	for (int i = 1; i < lim; i++)
		if (bc->slot[i].used < bc->slot[k].used)
			k = i;
	bc->slot[k].valid = 0;
	if ((rc = kbv_bundle_open(codec, stored, e->stored_len, &bc->slot[k].plain)) < 0)
		goto decoded;
	bc->slot[k].valid = 1;
	bc->decoded += bc->slot[k].plain.len;
	bc->slot[k].pack = packno;
	bc->slot[k].offset = e->offset;
member:
	bc->slot[k].used = ++bc->clock;
	rc = kbv_bundle_member(codec, &bc->slot[k].plain, e->id, e->raw_off, e->raw_len, p);
decoded:
	if (rc < 0) {
		kbv_hex(e->id, KBV_ID_BYTES, idhex);
		kbv_error_prefix(rc, "pack '%s': blob %.16s at offset %u", packname, idhex, e->offset);
	}
	return rc;
}

int kbv_pack_decode_at(struct kbv_codec *codec, const char *packname, uint32_t packno, const struct kbv_pack_entry *e,
		       struct kbv_bundle_cache *bc, const uint8_t *stored, struct kbv_buf *out)
{
	struct kbv_bundle_cache local = { 0 };
	const uint8_t *p = NULL;
	if (e->type == KBV_BLOB_DATA && !bc)
		bc = &local;
	int rc = decode_view(codec, packname, packno, e, bc, stored, out, &p);
	if (rc == 0 && p != out->data) {
		out->len = 0;
		rc = kbv_buf_add(out, p, e->raw_len);
	}
	kbv_bundle_cache_release(&local);
	return rc;
}

/* The stored bytes of `e` into `stored`, unless `bc` holds its bundle decoded already. */
static int fetch_stored(struct kbv_be_rd *rd, uint32_t packno, const struct kbv_pack_entry *e,
			const struct kbv_bundle_cache *bc, struct kbv_buf *stored)
{
	int rc;
	if (kbv_bundle_cached(bc, packno, e))
		return 0;
	stored->len = 0;
	if ((rc = kbv_buf_reserve(stored, e->stored_len)) < 0)
		return rc;
	if ((rc = kbv_be_read(rd, stored->data, e->stored_len, e->offset)) < 0) {
		char idhex[2 * KBV_ID_BYTES + 1];
		kbv_hex(e->id, KBV_ID_BYTES, idhex);
		return kbv_error_prefix(rc, "blob %.16s", idhex);
	}
	stored->len = e->stored_len;
	return 0;
}

int kbv_pack_read_at(struct kbv_codec *codec, struct kbv_be_rd *rd, const char *packname, uint32_t packno,
		     const struct kbv_pack_entry *e, struct kbv_bundle_cache *bc, struct kbv_buf *stored,
		     struct kbv_buf *out)
{
	int rc = fetch_stored(rd, packno, e, bc, stored);
	return rc < 0 ? rc : kbv_pack_decode_at(codec, packname, packno, e, bc, stored->data, out);
}

int kbv_pack_locate(struct kbv_repo *r, MDB_txn *txn, int type, const uint8_t id[KBV_ID_BYTES], struct kbv_loc *loc)
{
	char idhex[2 * KBV_ID_BYTES + 1];
	int rc = kbv_index_get(r->idx, txn, id, loc);
	if (rc == KBV_ENOTFOUND) {
		kbv_hex(id, KBV_ID_BYTES, idhex);
		return kbv_error(KBV_ECORRUPT, "blob %s is missing from the index", idhex);
	}
	if (rc < 0)
		return rc;
	if (loc->type != type) {
		kbv_hex(id, KBV_ID_BYTES, idhex);
		return kbv_error(KBV_ECORRUPT, "blob %.16s has type %u, expected %d", idhex, loc->type, type);
	}
	return 0;
}

/* The blob at `loc` read and decoded: copied into `out`, or with `view`, *view pointing at
 * it in fds's bundle cache or in `out`. */
static int read_loc(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds,
		    const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc, struct kbv_buf *stored, struct kbv_buf *out,
		    const uint8_t **view)
{
	char path[PATH_MAX], idhex[2 * KBV_ID_BYTES + 1];
	struct kbv_be_rd *rd = NULL;
	uint64_t psize = 0;
	int rc = packrd(r, txn, fds, loc->pack, path, sizeof path, &rd, &psize);
	if (rc < 0)
		return rc;
	/* The index is not authenticated: a location outside the pack's blob area is damage
	 * (or tampering), found before anything is allocated for it. */
	if (loc->offset < KBV_PACK_HEADER || (uint64_t)loc->offset + loc->stored_len + KBV_PACK_FOOTER > psize) {
		kbv_hex(id, KBV_ID_BYTES, idhex);
		return kbv_error(KBV_ECORRUPT,
				 "pack '%s' is truncated (%llu bytes), or the index is damaged: blob %.16s is indexed at "
				 "offset %u, %u bytes (run 'kbvault check')",
				 path, (unsigned long long)psize, idhex, loc->offset, loc->stored_len);
	}
	struct kbv_pack_entry e = { loc->type, { 0 }, loc->offset, loc->stored_len, loc->raw_off, loc->raw_len, loc->xxh };
	memcpy(e.id, id, KBV_ID_BYTES);
	if (!view)
		return kbv_pack_read_at(codec, rd, path, loc->pack, &e, &fds->bundle, stored, out);
	if ((rc = fetch_stored(rd, loc->pack, &e, &fds->bundle, stored)) < 0)
		return rc;
	return decode_view(codec, path, loc->pack, &e, &fds->bundle, stored->data, out, view);
}

int kbv_pack_read_loc(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds,
		      const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc, struct kbv_buf *stored,
		      struct kbv_buf *out)
{
	return read_loc(r, txn, codec, fds, id, loc, stored, out, NULL);
}

int kbv_pack_view_loc(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds,
		      const uint8_t id[KBV_ID_BYTES], const struct kbv_loc *loc, struct kbv_buf *stored,
		      struct kbv_buf *out, const uint8_t **p)
{
	return read_loc(r, txn, codec, fds, id, loc, stored, out, p);
}

int kbv_pack_read_blob(struct kbv_repo *r, MDB_txn *txn, struct kbv_codec *codec, struct kbv_packfds *fds, int type,
		       const uint8_t id[KBV_ID_BYTES], struct kbv_buf *stored, struct kbv_buf *out)
{
	struct kbv_loc loc;
	int rc = kbv_pack_locate(r, txn, type, id, &loc);
	return rc < 0 ? rc : kbv_pack_read_loc(r, txn, codec, fds, id, &loc, stored, out);
}
