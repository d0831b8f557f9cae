/* The WAL archive (kbv/wal.h, format/wal.md): a file's bytes go through the writer like any
 * stream; a small sealed object wal/<source>~<file> says where they are. Written in the
 * order of a snapshot: packs, what indexes them, then the object (create-if-absent). */
#include "kbv/wal.h"
#include "kbv/blob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/snapshot.h"
#include "store/idxobj.h"
#include "store/plan.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAL_HEADER 16 /* magic, version, encryption flag; then the blob id, then the envelope */
static const char wal_magic[8] = "KBVWAL\0\0";

/* ---- names and segment arithmetic ---- */

static int hexval(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

int kbv_wal_segno(const char *file, uint64_t seg_size, uint32_t *tli, uint64_t *segno)
{
	uint64_t t, hi, lo;
	if (strlen(file) != 24 || hexval(file, 8, &t) < 0 || hexval(file + 8, 8, &hi) < 0 ||
	    hexval(file + 16, 8, &lo) < 0 || seg_size == 0)
		return -1;
	uint64_t per = 0x100000000ull / seg_size;
	if (lo >= per)
		return -1;
	*tli = (uint32_t)t;
	*segno = hi * per + lo;
	return 0;
}

void kbv_wal_segname(uint32_t tli, uint64_t segno, uint64_t seg_size, char out[25])
{
	uint64_t per = 0x100000000ull / seg_size;
	snprintf(out, 25, "%08" PRIX32 "%08" PRIX64 "%08" PRIX64, tli, segno / per, segno % per);
}

int kbv_wal_lsn_segno(const char *lsn, uint64_t seg_size, uint64_t *segno)
{
	unsigned long long hi, lo;
	char tail;
	if (!lsn || sscanf(lsn, "%llX/%llX%c", &hi, &lo, &tail) != 2 || hi > 0xffffffffull || lo > 0xffffffffull ||
	    seg_size == 0)
		return -1;
	*segno = ((uint64_t)hi << 32 | (uint64_t)lo) / seg_size;
	return 0;
}

static int obj_name(const char *source, const char *file, char *out, size_t cap)
{
	if ((size_t)snprintf(out, cap, "%s~%s", source, file) >= cap || !kbv_wal_name_ok(out))
		return kbv_error(KBV_EINVAL, "'%s' of source '%s' is not a file PostgreSQL archives", file, source);
	return 0;
}

/* ---- the object body ---- */

int kbv_wal_encode(const struct kbv_wal_info *w, char **out)
{
	char hash[65], ref[67], sysid[24];
	uint8_t rb[33];
	kbv_digest_hex(&w->hash, hash);
	kbv_ref_put(rb, &w->ref);
	kbv_hex(rb, sizeof rb, ref);
	snprintf(sysid, sizeof sysid, "%" PRIu64, w->sysid);
	json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:i, s:s, s:s, s:I, s:s, s:I}", "version", 1, "source", w->source,
			      "file", w->file, "size", (json_int_t)w->size, "digest", (int)w->hash.alg, "hash", hash,
			      "ref", ref, "time", (json_int_t)w->time, "sysid", sysid, "timeline",
			      (json_int_t)w->timeline);
	*out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return *out ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
}

int kbv_wal_decode(const char *body, size_t len, const char *source, const char *file, struct kbv_wal_info *out)
{
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const char *src = NULL, *f = NULL, *hash = NULL, *ref = NULL, *sysid = NULL;
	json_int_t version = 0, size = -1, digest = -1, t = 0, tli = -1;
	uint8_t rb[33];
	int rc = 0;
	memset(out, 0, sizeof *out);
	if (!j || json_unpack(j, "{s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:s, s:I}", "version", &version, "source",
			      &src, "file", &f, "size", &size, "digest", &digest, "hash", &hash, "ref", &ref, "time",
			      &t, "sysid", &sysid, "timeline", &tli) != 0) {
		rc = kbv_error(KBV_ECORRUPT, "WAL object '%s~%s' is damaged (its body is not the expected JSON)", source,
			       file);
		goto out;
	}
	if (version != 1) {
		rc = kbv_error(KBV_EVERSION, "WAL object '%s~%s' has body version %lld; this kbvault reads version 1",
			       source, file, (long long)version);
		goto out;
	}
	/* the digest's number is checked as the JSON holds it, before it is narrowed to an int
	 * (4294967297 is not digest 1); a length of 0 is an unknown digest */
	size_t hl = digest >= 0 && digest <= 255 ? kbv_digest_len((int)digest) : 0;
	char *end;
	errno = 0;
	unsigned long long sid = strtoull(sysid, &end, 10);
	if (strcmp(src, source) != 0 || strcmp(f, file) != 0 || size < 0 || hl == 0 ||
	    strlen(hash) != 2 * hl || kbv_unhex(hash, out->hash.v, hl) < 0 || strlen(ref) != 66 ||
	    kbv_unhex(ref, rb, sizeof rb) < 0 || tli < 0 || tli > 0xffffffffll || *sysid < '0' || *sysid > '9' ||
	    *end || errno) {
		rc = kbv_error(KBV_ECORRUPT, "WAL object '%s~%s' is damaged (it names another file or has bad fields)",
			       source, file);
		goto out;
	}
	snprintf(out->source, sizeof out->source, "%s", src);
	snprintf(out->file, sizeof out->file, "%s", f);
	out->size = (uint64_t)size;
	out->hash.alg = (uint8_t)digest;
	kbv_ref_get(rb, &out->ref);
	out->time = (int64_t)t;
	out->sysid = sid;
	out->timeline = (uint32_t)tli;
out:
	json_decref(j);
	return rc;
}

/* ---- reading and writing objects ---- */

int kbv_wal_read(struct kbv_repo *r, const char *source, const char *file, struct kbv_wal_info *out)
{
	struct kbv_buf obj = KBV_BUF_INIT, body = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	char name[128], what[PATH_MAX];
	int rc = 0;
	TRY(obj_name(source, file, name, sizeof name));
	kbv_be_describe(r->be, KBV_OBJ_WAL, name, what, sizeof what);
	TRY(kbv_be_get(r->be, KBV_OBJ_WAL, name, &obj));
	const uint8_t *p = obj.data;
	if (obj.len < WAL_HEADER + KBV_ID_BYTES || memcmp(p, wal_magic, 8) != 0) {
		rc = kbv_error(KBV_ECORRUPT, "WAL object '%s' is damaged (bad magic or truncated)", what);
		goto out;
	}
	if (kbv_get32(p + 8) != 1) {
		rc = kbv_error(KBV_EVERSION, "WAL object '%s' has version %u; this kbvault reads version 1", what,
			       kbv_get32(p + 8));
		goto out;
	}
	if (kbv_get32(p + 12) != (r->encrypted ? 1u : 0u)) {
		rc = kbv_error(KBV_ECORRUPT, "WAL object '%s' is damaged (its encryption flag is not the repository's)",
			       what);
		goto out;
	}
	if (!(codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	rc = kbv_blob_decode(codec, KBV_BLOB_WAL, p + WAL_HEADER, p + WAL_HEADER + KBV_ID_BYTES,
			     obj.len - WAL_HEADER - KBV_ID_BYTES, KBV_RAW_UNKNOWN, &body);
	if (rc < 0) {
		kbv_error_prefix(rc, "WAL object '%s'", what);
		goto out;
	}
	rc = kbv_wal_decode((const char *)body.data, body.len, source, file, out);
out:
	kbv_codec_free(codec);
	kbv_buf_release(&obj);
	kbv_buf_release(&body);
	return rc;
}

static int wal_put(struct kbv_repo *r, const struct kbv_wal_info *w)
{
	struct kbv_buf env = KBV_BUF_INIT, file = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	char *body = NULL, name[128];
	uint8_t id[KBV_ID_BYTES], h[WAL_HEADER];
	int rc = 0;
	TRY(obj_name(w->source, w->file, name, sizeof name));
	TRY(kbv_wal_encode(w, &body));
	if (!(codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	kbv_blob_id(r->keys, KBV_BLOB_WAL, body, strlen(body), id);
	TRY(kbv_blob_encode(codec, KBV_BLOB_WAL, id, body, strlen(body), &env));
	memcpy(h, wal_magic, 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, r->encrypted ? 1 : 0);
	TRY(kbv_buf_add(&file, h, sizeof h));
	TRY(kbv_buf_add(&file, id, sizeof id));
	TRY(kbv_buf_add(&file, env.data, env.len));
	rc = kbv_be_put(r->be, KBV_OBJ_WAL, name, file.data, file.len, KBV_PUT_EXCL);
out:
	free(body);
	kbv_codec_free(codec);
	kbv_buf_release(&env);
	kbv_buf_release(&file);
	return rc;
}

/* ---- push ---- */

/* The digest in `alg` of the file open at fd, from its offset on; fd is rewound after. */
static int file_digest(int fd, const char *path, int alg, struct kbv_digest *out)
{
	int rc = kbv_digest_fd(fd, alg, path, out, NULL);
	if (rc == 0 && lseek(fd, 0, SEEK_SET) < 0)
		rc = kbv_error(KBV_EIO, "seek '%s': %s", path, strerror(errno));
	return rc;
}

/* Is what is archived under that name the same file? 1 yes, 0 no (message set), < 0 error. */
static int same_as_archived(int fd, const char *path, uint64_t size, const struct kbv_wal_info *have)
{
	struct kbv_digest d;
	char a[65], b[65];
	int rc = 0;
	if (size == have->size) {
		TRY(file_digest(fd, path, have->hash.alg, &d));
		if (kbv_digest_equal(&d, &have->hash))
			return 1;
	} else {
		d.alg = 0;
	}
	kbv_digest_hex(&have->hash, a);
	if (d.alg)
		kbv_digest_hex(&d, b);
	else
		snprintf(b, sizeof b, "(not read)");
	return kbv_error(KBV_EEXIST,
			 "WAL file '%s' of source '%s' is already archived with other contents (%llu bytes, %s %.16s; "
			 "this one: %llu bytes, %.16s): refused, the archive keeps the first",
			 have->file, have->source, (unsigned long long)have->size, kbv_digest_name(have->hash.alg), a,
			 (unsigned long long)size, b);
out:
	return rc;
}

/* The timeline and system identifier in a segment's first page (its long header:
 * xlp_magic u16, xlp_info u16, xlp_tli u32, xlp_pageaddr u64, xlp_rem_len u32, padding,
 * then xlp_sysid u64 at byte 24; little-endian on every platform PostgreSQL runs here). */
static void segment_header(int fd, struct kbv_wal_info *w)
{
	uint8_t h[40];
	size_t got = 0;
	if (kbv_read_upto(fd, h, sizeof h, &got, "segment") == 0 && got == sizeof h && (kbv_get16(h + 2) & 0x0002)) {
		w->timeline = kbv_get32(h + 4);
		w->sysid = kbv_get64(h + 24);
	}
	(void)lseek(fd, 0, SEEK_SET);
}

int kbv_wal_push(struct kbv_repo *r, const char *source, const char *path, size_t nthreads, int *existed)
{
	struct kbv_wal_info w = { 0 }, have;
	struct kbv_writer *wr = NULL;
	struct kbv_stream_result res;
	struct stat st;
	const char *base = strrchr(path, '/');
	char name[128];
	int rc = 0, fd = -1;
	base = base ? base + 1 : path;
	*existed = 0;
	if (!kbv_source_name_ok(source))
		return kbv_error(KBV_EINVAL, "'%s' is not a valid source name", source);
	TRY(obj_name(source, base, name, sizeof name));
	snprintf(w.source, sizeof w.source, "%s", source);
	snprintf(w.file, sizeof w.file, "%s", base);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		rc = kbv_error(KBV_ESOURCE, "open '%s': %s", path, strerror(errno));
		goto out;
	}
	/* Already archived? PostgreSQL pushes a file again when it did not see the first push
	 * succeed (a crash after the object was written): the same bytes are a success. */
	rc = kbv_wal_read(r, source, base, &have);
	if (rc == 0) {
		rc = same_as_archived(fd, path, (uint64_t)st.st_size, &have);
		*existed = rc == 1;
		rc = rc == 1 ? 0 : rc;
		goto out;
	}
	if (rc != KBV_ENOTFOUND)
		goto out;
	if (strlen(base) == 24)
		segment_header(fd, &w);
	if (strlen(base) == 16) { /* a history file: the timeline it starts */
		uint64_t t = 0;
		(void)hexval(base, 8, &t);
		w.timeline = (uint32_t)t;
	}
	TRY(kbv_writer_new(r, nthreads, &wr));
	char what[PATH_MAX + 16];
	snprintf(what, sizeof what, "WAL file '%s'", path);
	TRY(kbv_writer_fd(wr, fd, what, &res));
	if (res.size != (uint64_t)st.st_size) {
		rc = kbv_error(KBV_ESOURCE, "WAL file '%s' changed while it was archived (%llu bytes read, %llu at start)",
			       path, (unsigned long long)res.size, (unsigned long long)st.st_size);
		goto out;
	}
	w.size = res.size;
	w.hash = res.hash;
	w.ref = res.ref;
	w.time = (int64_t)time(NULL);
	/* Everything the object references must be durable and indexed first. */
	TRY(kbv_writer_flush(wr));
	TRY(kbv_repo_publish_index(r));
	TRY(kbv_plans_check_commit(r, r->plans));
	rc = wal_put(r, &w);
	if (rc == KBV_EEXIST) {
		/* another push of the same name won the race: compare with what it stored */
		TRY(kbv_wal_read(r, source, base, &have));
		rc = same_as_archived(fd, path, w.size, &have);
		*existed = rc == 1;
		rc = rc == 1 ? 0 : rc;
	}
out:
	kbv_writer_free(wr);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- fetch ---- */

struct fetch_out {
	int fd;
	const char *path;
};

static int fetch_sink(void *arg, const uint8_t *p, size_t n)
{
	struct fetch_out *o = arg;
	return kbv_write_full(o->fd, p, n, o->path);
}

int kbv_wal_fetch(struct kbv_repo *r, struct kbv_reader *rd, const char *source, const char *file, const char *dest)
{
	struct kbv_wal_info w;
	int rc = 0;
	TRY(kbv_wal_read(r, source, file, &w));
	struct fetch_out o = { open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), dest };
	if (o.fd < 0)
		return kbv_error(KBV_EIO, "create '%s': %s", dest, strerror(errno));
	rc = kbv_reader_stream(rd, &w.ref, w.size, &w.hash, fetch_sink, &o);
	if (rc == 0 && fsync(o.fd) < 0)
		rc = kbv_error(KBV_EIO, "fsync '%s': %s", dest, strerror(errno));
	if (close(o.fd) < 0 && rc == 0)
		rc = kbv_error(KBV_EIO, "close '%s': %s", dest, strerror(errno));
	if (rc == KBV_ENOTFOUND) /* the object is there, its data is not: damage, not absence */
		{
		char msg[512];
		snprintf(msg, sizeof msg, "%s", kbv_errmsg());
		rc = kbv_error(KBV_ECORRUPT, "%s", msg);
	}
	if (rc < 0) {
		kbv_error_prefix(rc, "WAL file '%s' of source '%s'", file, source);
		unlink(dest); /* never a partial or unverified segment where PostgreSQL looks */
	}
out:
	return rc;
}

static int buf_sink(void *arg, const uint8_t *p, size_t n)
{
	return kbv_buf_add(arg, p, n);
}

int kbv_wal_get(struct kbv_repo *r, struct kbv_reader *rd, const char *source, const char *file, struct kbv_buf *out)
{
	struct kbv_wal_info w;
	int rc = 0;
	out->len = 0;
	TRY(kbv_wal_read(r, source, file, &w));
	if (w.size > (64u << 20))
		return kbv_error(KBV_EINVAL, "WAL file '%s' of source '%s' is too large to read into memory", file, source);
	rc = kbv_reader_stream(rd, &w.ref, w.size, &w.hash, buf_sink, out);
	if (rc == KBV_ENOTFOUND)
		rc = KBV_ECORRUPT;
	if (rc < 0)
		kbv_error_prefix(rc, "WAL file '%s' of source '%s'", file, source);
out:
	return rc;
}

/* ---- listing and removal ---- */

/* The WAL objects as listed once: "<source>~<file>\0" and the mtime (8 bytes) in records of
 * REC bytes, sorted by name, so that a source's files are together and in order. */
#define REC (128 + 8)

static int on_wal(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	(void)size;
	if (!strchr(name, '~'))
		return 0;
	char rec[REC] = { 0 };
	snprintf(rec, 128, "%s", name);
	memcpy(rec + 128, &mtime, 8);
	return kbv_buf_add(arg, rec, sizeof rec);
}

static int cmp_rec(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int list_records(struct kbv_repo *r, struct kbv_buf *names)
{
	int rc = kbv_be_list(r->be, KBV_OBJ_WAL, on_wal, names);
	if (rc == 0 && names->len)
		qsort(names->data, names->len / REC, REC, cmp_rec);
	return rc;
}

/* fn for each listed file of `source` (NULL: of every source), in order. */
static int each_record(const struct kbv_buf *names, const char *source, kbv_wal_list_fn fn, void *arg)
{
	int rc = 0;
	for (size_t i = 0; i < names->len / REC && rc == 0; i++) {
		char rec[REC];
		memcpy(rec, names->data + i * REC, REC);
		char *t = strchr(rec, '~');
		int64_t mtime;
		memcpy(&mtime, rec + 128, 8);
		*t = 0;
		if (!source || !strcmp(rec, source))
			rc = fn(arg, rec, t + 1, mtime);
	}
	return rc;
}

int kbv_wal_list(struct kbv_repo *r, const char *source, kbv_wal_list_fn fn, void *arg)
{
	struct kbv_buf names = KBV_BUF_INIT;
	int rc = list_records(r, &names);
	if (rc == 0)
		rc = each_record(&names, source, fn, arg);
	kbv_buf_release(&names);
	return rc;
}

int kbv_wal_names_add(struct kbv_buf *names, const char *source, const char *file)
{
	int rc = kbv_buf_add(names, source, strlen(source) + 1);
	return rc < 0 ? rc : kbv_buf_add(names, file, strlen(file) + 1);
}

const char *kbv_wal_names_next(const struct kbv_buf *names, size_t *off, const char **file)
{
	if (*off >= names->len)
		return NULL;
	const char *source = (const char *)names->data + *off;
	*file = source + strlen(source) + 1;
	*off += strlen(source) + strlen(*file) + 2;
	return source;
}

int kbv_wal_remove(struct kbv_repo *r, const char *source, const char *file)
{
	char name[128];
	int rc = 0;
	TRY(obj_name(source, file, name, sizeof name));
	rc = kbv_be_remove(r->be, KBV_OBJ_WAL, name);
out:
	return rc;
}

/* ---- the archive's shape ---- */

struct seg_ctx {
	struct kbv_buf segs;
	uint64_t files;
	char newest[48];
	int64_t newest_mtime;
};

static int on_seg(void *arg, const char *source, const char *file, int64_t mtime)
{
	struct seg_ctx *c = arg;
	size_t len = strlen(file);
	uint64_t t, hi, lo;
	(void)source;
	c->files++;
	if (len != 24 && !(len == 32 && !strcmp(file + 24, ".partial")))
		return 0;
	if (hexval(file, 8, &t) < 0 || hexval(file + 8, 8, &hi) < 0 || hexval(file + 16, 8, &lo) < 0)
		return 0;
	if (len == 24 && strcmp(file, c->newest) > 0) {
		snprintf(c->newest, sizeof c->newest, "%s", file);
		c->newest_mtime = mtime;
	}
	/* the number is made with the segment size below, once it is known: keep hi, lo */
	struct kbv_wal_seg s = { hi << 32 | lo, (uint32_t)t, mtime };
	return kbv_buf_add(&c->segs, &s, sizeof s);
}

static int cmp_seg(const void *a, const void *b)
{
	const struct kbv_wal_seg *x = a, *y = b;
	if (x->segno != y->segno)
		return x->segno < y->segno ? -1 : 1;
	return x->tli < y->tli ? -1 : x->tli > y->tli;
}

/* kbv_wal_archive_read from a listing made already (list_records). */
static int archive_from(struct kbv_repo *r, const struct kbv_buf *names, const char *source,
			struct kbv_wal_archive *out)
{
	struct seg_ctx c = { KBV_BUF_INIT, 0, "", 0 };
	struct kbv_wal_info info;
	int rc = 0;
	memset(out, 0, sizeof *out);
	TRY(each_record(names, source, on_seg, &c));
	out->files = c.files;
	if (*c.newest) {
		TRY(kbv_wal_read(r, source, c.newest, &info));
		out->seg_size = info.size;
	}
	size_t n = c.segs.len / sizeof(struct kbv_wal_seg);
	struct kbv_wal_seg *s = (struct kbv_wal_seg *)c.segs.data;
	if (out->seg_size && !(out->seg_size & (out->seg_size - 1)) && out->seg_size <= 0x100000000ull) {
		uint64_t per = 0x100000000ull / out->seg_size;
		for (size_t i = 0; i < n; i++)
			s[i].segno = (s[i].segno >> 32) * per + (s[i].segno & 0xffffffffu);
	} else {
		n = 0;
		out->seg_size = 0;
	}
	if (n)
		qsort(s, n, sizeof *s, cmp_seg);
	size_t len;
	out->segs = (struct kbv_wal_seg *)kbv_buf_detach(&c.segs, &len);
	out->n = n;
out:
	kbv_buf_release(&c.segs);
	return rc;
}

int kbv_wal_archive_read(struct kbv_repo *r, const char *source, struct kbv_wal_archive *out)
{
	struct kbv_buf names = KBV_BUF_INIT;
	int rc = list_records(r, &names);
	if (rc == 0)
		rc = archive_from(r, &names, source, out);
	else
		memset(out, 0, sizeof *out);
	kbv_buf_release(&names);
	return rc;
}

void kbv_wal_archive_release(struct kbv_wal_archive *a)
{
	free(a->segs);
	memset(a, 0, sizeof *a);
}

uint64_t kbv_wal_gaps(const struct kbv_wal_archive *a, uint64_t from, int exact, uint64_t *first, size_t *before)
{
	uint64_t gaps = 0;
	size_t i = 0;
	*first = UINT64_MAX;
	*before = SIZE_MAX;
	while (i < a->n && a->segs[i].segno < from)
		i++;
	if (exact && (i == a->n || a->segs[i].segno > from)) { /* `from` itself is missing */
		*first = from;
		gaps += i == a->n ? 1 : a->segs[i].segno - from;
	}
	for (size_t prev = i; i < a->n; i++) {
		if (a->segs[i].segno > a->segs[prev].segno + 1) {
			if (*first == UINT64_MAX) {
				*first = a->segs[prev].segno + 1;
				*before = prev;
			}
			gaps += a->segs[i].segno - a->segs[prev].segno - 1;
		}
		prev = i;
	}
	return gaps;
}

static int on_source(void *arg, const char *source, const char *file, int64_t mtime)
{
	json_t *a = arg;
	(void)file;
	(void)mtime;
	size_t n = json_array_size(a);
	if (n && !strcmp(json_string_value(json_array_get(a, n - 1)), source))
		return 0; /* sorted by name: a source's files are together */
	return json_array_append_new(a, json_string(source)) == 0 ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
}

static int sources_from(const struct kbv_buf *names, json_t **out)
{
	json_t *a = json_array();
	int rc = a ? each_record(names, NULL, on_source, a) : kbv_error(KBV_ENOMEM, "out of memory");
	if (rc < 0) {
		json_decref(a);
		return rc;
	}
	*out = a;
	return 0;
}

int kbv_wal_sources(struct kbv_repo *r, json_t **out)
{
	struct kbv_buf names = KBV_BUF_INIT;
	int rc = list_records(r, &names);
	if (rc == 0)
		rc = sources_from(&names, out);
	kbv_buf_release(&names);
	return rc;
}

/* The first segment the oldest base backup of `source` among the snapshots needs, or 0. */
static uint64_t oldest_start(struct kbv_snapshot *const *list, size_t n, const char *source, uint64_t seg_size)
{
	uint64_t best = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct kbv_snapsource *src = kbv_snapshot_source(list[i], source);
		if (!src)
			continue;
		json_t *meta = json_loads(src->meta, 0, NULL);
		const char *seg = json_string_value(json_object_get(meta, "start_segment"));
		uint32_t tli;
		uint64_t segno;
		if (seg && kbv_wal_segno(seg, seg_size, &tli, &segno) == 0 && segno < best)
			best = segno;
		json_decref(meta);
	}
	return best == UINT64_MAX ? 0 : best;
}

int kbv_wal_summarize(struct kbv_repo *r, struct kbv_snapshot *const *list, size_t n, struct kbv_wal_summary **out,
		      size_t *nout)
{
	json_t *sources = NULL;
	struct kbv_wal_summary *v = NULL;
	struct kbv_buf names = KBV_BUF_INIT; /* one listing for every source */
	int rc = 0;
	*out = NULL;
	*nout = 0;
	TRY(list_records(r, &names));
	TRY(sources_from(&names, &sources));
	size_t ns = json_array_size(sources);
	if (ns && !(v = calloc(ns, sizeof *v))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ns; i++) {
		struct kbv_wal_archive a;
		struct kbv_wal_summary *w = &v[i];
		snprintf(w->source, sizeof w->source, "%s", json_string_value(json_array_get(sources, i)));
		TRY(archive_from(r, &names, w->source, &a));
		w->files = a.files;
		w->segments = a.n;
		if (a.n) {
			uint64_t first;
			size_t before;
			kbv_wal_segname(a.segs[0].tli, a.segs[0].segno, a.seg_size, w->first);
			kbv_wal_segname(a.segs[a.n - 1].tli, a.segs[a.n - 1].segno, a.seg_size, w->last);
			for (size_t k = 0; k < a.n; k++)
				if (a.segs[k].mtime > w->last_time)
					w->last_time = a.segs[k].mtime;
			w->gaps = kbv_wal_gaps(&a, oldest_start(list, n, w->source, a.seg_size), 0, &first, &before);
			if (w->gaps)
				kbv_wal_segname(a.segs[before].tli, first, a.seg_size, w->first_gap);
		}
		kbv_wal_archive_release(&a);
	}
	*out = v;
	*nout = ns;
	v = NULL;
out:
	free(v);
	json_decref(sources);
	kbv_buf_release(&names);
	return rc;
}

/* ---- copy ---- */

static int collect(void *arg, const char *source, const char *file, int64_t mtime)
{
	struct kbv_buf *b = arg;
	int rc = 0;
	(void)mtime;
	TRY(kbv_buf_add(b, source, strlen(source)));
	TRY(kbv_buf_add(b, "~", 1));
	TRY(kbv_buf_add(b, file, strlen(file) + 1));
out:
	return rc;
}

/* Is "source~file" in the NUL-separated, name-sorted list `have`? *cursor walks it
 * forward: the names asked for come in the same order (one merge of two sorted lists). */
static int listed(const struct kbv_buf *have, size_t *cursor, const char *name)
{
	while (*cursor < have->len) {
		const char *h = (const char *)have->data + *cursor;
		int c = strcmp(h, name);
		if (c == 0)
			return 1;
		if (c > 0)
			return 0;
		*cursor += strlen(h) + 1;
	}
	return 0;
}

int kbv_wal_copy(struct kbv_repo *src, struct kbv_reader *src_rd, struct kbv_repo *dst, uint64_t *copied,
		 uint64_t *present)
{
	struct kbv_buf want = KBV_BUF_INIT, have = KBV_BUF_INIT, data = KBV_BUF_INIT;
	struct kbv_writer *w = NULL;
	int rc = 0;
	size_t cursor = 0;
	*copied = *present = 0;
	TRY(kbv_wal_list(src, NULL, collect, &want));
	TRY(kbv_wal_list(dst, NULL, collect, &have));
	for (size_t off = 0; off < want.len;) {
		char *name = (char *)want.data + off, *t = strchr(name, '~');
		struct kbv_wal_info in, out;
		struct kbv_stream_result res;
		off += strlen(name) + 1;
		if (listed(&have, &cursor, name)) {
			(*present)++;
			continue;
		}
		*t = 0;
		const char *source = name, *file = t + 1;
		TRY(kbv_wal_read(src, source, file, &in));
		TRY(kbv_wal_get(src, src_rd, source, file, &data));
		if (!w)
			TRY(kbv_writer_new(dst, 0, &w));
		TRY(kbv_writer_mem(w, data.data, data.len, &res));
		/* what the object references is durable and indexed before the object */
		TRY(kbv_writer_flush(w));
		TRY(kbv_repo_publish_index(dst));
		TRY(kbv_plans_check_commit(dst, dst->plans));
		out = in;
		out.size = res.size;
		out.hash = res.hash;
		out.ref = res.ref;
		rc = wal_put(dst, &out);
		if (rc == KBV_EEXIST) { /* pushed there meanwhile: the same bytes, or refused */
			struct kbv_wal_info there;
			TRY(kbv_wal_read(dst, source, file, &there));
			if (there.size != in.size || (there.hash.alg == in.hash.alg && !kbv_digest_equal(&there.hash, &in.hash))) {
				rc = kbv_error(KBV_EEXIST, "WAL file '%s' of source '%s' is in the target with other contents",
					       file, source);
				goto out;
			}
			rc = 0;
			(*present)++;
			continue;
		}
		TRY(rc);
		(*copied)++;
	}
out:
	kbv_writer_free(w);
	kbv_buf_release(&want);
	kbv_buf_release(&have);
	kbv_buf_release(&data);
	return rc;
}
