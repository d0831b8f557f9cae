#include "kbv/snapshot.h"
#include "kbv/beside.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/idxobj.h"
#include "store/metacache.h"
#include "store/plan.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_HEADER 16
#define BODY_VERSION 4 /* 4: entry format 3 (digest algorithm); 3: entry format 2 (owners); 2: sources; 1: the first */
#define SOURCE_NAME_MAX 64

int kbv_entry_has_data(const struct kbv_entry *e)
{
	return e->kind == KBV_ENTRY_STDIN || e->kind == KBV_ENTRY_COMMAND || e->kind == KBV_ENTRY_FILE;
}

int kbv_entry_name_ok(const char *name)
{
	if (!name[0] || name[0] == '/')
		return 0;
	const char *p = name;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
		if (slash && !*p)
			return 0; /* trailing slash */
	}
	return 1;
}

int kbv_source_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SOURCE_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

const struct kbv_snapsource *kbv_snapshot_source(const struct kbv_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nsources; i++)
		if (!strcmp(s->sources[i].name, name))
			return &s->sources[i];
	return NULL;
}

static int meta_ok(const char *text)
{
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	int ok = j && json_is_object(j);
	json_decref(j);
	return ok;
}

/* The entry format of a snapshot body version (format/snapshot.md). */
static int entry_format(uint32_t body_version)
{
	return body_version >= 4 ? 3 : body_version == 3 ? 2 : 1;
}

/* The recorded digest: a known algorithm for a stream of bytes (NONE only for directories
 * and symlinks), and zero past its length. */
static int digest_ok(const struct kbv_entry *x)
{
	if (x->hash.alg == KBV_DIGEST_NONE)
		return !kbv_entry_has_data(x);
	if (!kbv_digest_known(x->hash.alg))
		return 0;
	for (size_t i = kbv_digest_len(x->hash.alg); i < sizeof x->hash.v; i++)
		if (x->hash.v[i])
			return 0;
	return 1;
}

int kbv_entries_encode(const struct kbv_entry *e, size_t n, struct kbv_buf *out)
{
	int rc = 0;
	uint8_t ref[33];
	for (size_t i = 0; i < n; i++) {
		TRY(kbv_buf_add_u8(out, e[i].kind));
		TRY(kbv_buf_add_str32(out, e[i].name));
		TRY(kbv_buf_add_u32(out, e[i].mode));
		TRY(kbv_buf_add_u64(out, (uint64_t)e[i].mtime));
		TRY(kbv_buf_add_u32(out, e[i].mtime_ns));
		TRY(kbv_buf_add_u64(out, e[i].size));
		TRY(kbv_buf_add_u8(out, e[i].hash.alg));
		TRY(kbv_buf_add(out, e[i].hash.v, 32));
		kbv_ref_put(ref, &e[i].ref);
		TRY(kbv_buf_add(out, ref, sizeof ref));
		TRY(kbv_buf_add_str32(out, e[i].target ? e[i].target : ""));
		TRY(kbv_buf_add_u32(out, e[i].uid));
		TRY(kbv_buf_add_u32(out, e[i].gid));
		TRY(kbv_buf_add_str16(out, e[i].user ? e[i].user : ""));
		TRY(kbv_buf_add_str16(out, e[i].group ? e[i].group : ""));
	}
out:
	return rc;
}

void kbv_entries_free(struct kbv_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].target);
		free(e[i].user);
		free(e[i].group);
	}
	free(e);
}

int kbv_entries_decode(const uint8_t *p, size_t len, struct kbv_entry **out, size_t *n)
{
	return kbv_entries_decode_format(p, len, 3, out, n);
}

int kbv_entries_decode_format(const uint8_t *p, size_t len, int format, struct kbv_entry **out, size_t *n)
{
	struct kbv_rd r = kbv_rd_make(p, len);
	struct kbv_entry *e = NULL;
	size_t cnt = 0, cap = 0;
	int rc = 0;
	while (r.off < r.len) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct kbv_entry *ne = realloc(e, cap * sizeof *e);
			if (!ne) {
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			e = ne;
		}
		struct kbv_entry *x = &e[cnt];
		memset(x, 0, sizeof *x);
		cnt++;
		x->kind = kbv_rd_u8(&r);
		x->name = kbv_rd_str32(&r);
		x->mode = kbv_rd_u32(&r);
		x->mtime = (int64_t)kbv_rd_u64(&r);
		x->mtime_ns = kbv_rd_u32(&r);
		x->size = kbv_rd_u64(&r);
		x->hash.alg = format >= 3 ? kbv_rd_u8(&r) : KBV_DIGEST_BLAKE2B_256;
		const uint8_t *h = kbv_rd_bytes(&r, 32);
		if (h)
			memcpy(x->hash.v, h, 32);
		const uint8_t *ref = kbv_rd_bytes(&r, 33);
		if (ref)
			kbv_ref_get(ref, &x->ref);
		x->target = kbv_rd_str32(&r);
		if (format >= 2) {
			x->uid = kbv_rd_u32(&r);
			x->gid = kbv_rd_u32(&r);
			x->user = kbv_rd_str16(&r);
			x->group = kbv_rd_str16(&r);
		}
		if (r.bad || x->kind < KBV_ENTRY_STDIN || x->kind > KBV_ENTRY_SYMLINK || !kbv_entry_name_ok(x->name) ||
		    x->mtime_ns >= 1000000000u || !digest_ok(x)) {
			rc = kbv_error(KBV_ECORRUPT, "entry table is malformed at byte %zu (entry %zu)", r.off, cnt - 1);
			goto out;
		}
		if (x->kind != KBV_ENTRY_SYMLINK) {
			free(x->target);
			x->target = NULL;
		}
	}
	*out = e;
	*n = cnt;
	e = NULL;
out:
	kbv_entries_free(e, cnt);
	return rc;
}

int kbv_snapshot_encode_body(const struct kbv_snapshot *s, struct kbv_buf *out)
{
	int rc = 0;
	uint8_t ref[33];
	TRY(kbv_buf_add_u32(out, BODY_VERSION));
	TRY(kbv_buf_add_u64(out, (uint64_t)s->time));
	TRY(kbv_buf_add_u32(out, s->nsec));
	TRY(kbv_buf_add_u32(out, (uint32_t)s->tzoff));
	TRY(kbv_buf_add_str16(out, s->host ? s->host : ""));
	if (s->ntags > UINT16_MAX)
		return kbv_error(KBV_EINVAL, "too many tags");
	TRY(kbv_buf_add_u16(out, (uint16_t)s->ntags));
	for (size_t i = 0; i < s->ntags; i++)
		TRY(kbv_buf_add_str16(out, s->tags[i]));
	TRY(kbv_buf_add_u64(out, s->nentries));
	TRY(kbv_buf_add_u64(out, s->total_size));
	kbv_ref_put(ref, &s->table_ref);
	TRY(kbv_buf_add(out, ref, sizeof ref));
	TRY(kbv_buf_add_u64(out, s->table_size));
	if (s->nsources > UINT16_MAX)
		return kbv_error(KBV_EINVAL, "too many sources");
	TRY(kbv_buf_add_u16(out, (uint16_t)s->nsources));
	for (size_t i = 0; i < s->nsources; i++) {
		const struct kbv_snapsource *x = &s->sources[i];
		if (!kbv_source_name_ok(x->name) || kbv_snapshot_source(s, x->name) != x || !meta_ok(x->meta))
			return kbv_error(KBV_EINVAL, "source '%s': bad or duplicate name, or metadata that is not a JSON object",
					 x->name);
		TRY(kbv_buf_add_str16(out, x->name));
		TRY(kbv_buf_add_str16(out, x->type));
		TRY(kbv_buf_add_str32(out, x->meta));
	}
out:
	return rc;
}

int kbv_snapshot_decode_body(const uint8_t *p, size_t len, struct kbv_snapshot *s)
{
	struct kbv_rd r = kbv_rd_make(p, len);
	uint32_t ver = kbv_rd_u32(&r);
	if (!r.bad && (ver < 1 || ver > BODY_VERSION))
		return kbv_error(KBV_EVERSION, "snapshot body has version %u; this kbvault reads versions 1 to %u", ver,
				 BODY_VERSION);
	s->body_version = ver;
	s->time = (int64_t)kbv_rd_u64(&r);
	s->nsec = kbv_rd_u32(&r);
	s->tzoff = (int32_t)kbv_rd_u32(&r);
	s->host = kbv_rd_str16(&r);
	s->ntags = kbv_rd_u16(&r);
	s->tags = calloc(s->ntags + 1, sizeof *s->tags);
	if (!s->tags)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < s->ntags && !r.bad; i++)
		s->tags[i] = kbv_rd_str16(&r);
	s->nentries = kbv_rd_u64(&r);
	s->total_size = kbv_rd_u64(&r);
	const uint8_t *ref = kbv_rd_bytes(&r, 33);
	if (ref)
		kbv_ref_get(ref, &s->table_ref);
	s->table_size = kbv_rd_u64(&r);
	if (ver >= 2 && !r.bad) {
		size_t n = kbv_rd_u16(&r);
		s->sources = calloc(n + 1, sizeof *s->sources);
		if (!s->sources)
			return kbv_error(KBV_ENOMEM, "out of memory");
		for (size_t i = 0; i < n && !r.bad; i++) {
			struct kbv_snapsource *x = &s->sources[i];
			s->nsources++;
			x->name = kbv_rd_str16(&r);
			x->type = kbv_rd_str16(&r);
			x->meta = kbv_rd_str32(&r);
			if (r.bad)
				break;
			if (!kbv_source_name_ok(x->name) || kbv_snapshot_source(s, x->name) != x || !meta_ok(x->meta))
				return kbv_error(KBV_ECORRUPT, "snapshot body is malformed (source %zu)", i);
		}
	}
	if (r.bad || r.off != r.len || s->nsec >= 1000000000u)
		return kbv_error(KBV_ECORRUPT, "snapshot body is malformed");
	return 0;
}

void kbv_snapshot_free(struct kbv_snapshot *s)
{
	if (!s)
		return;
	free(s->host);
	for (size_t i = 0; s->tags && i < s->ntags; i++)
		free(s->tags[i]);
	free(s->tags);
	for (size_t i = 0; s->sources && i < s->nsources; i++) {
		free(s->sources[i].name);
		free(s->sources[i].type);
		free(s->sources[i].meta);
	}
	free(s->sources);
	kbv_entries_free(s->entries, s->nloaded);
	free(s);
}

int kbv_snapshot_commit(struct kbv_repo *r, struct kbv_writer *w, struct kbv_snapshot *s,
			const struct kbv_entry *entries, size_t n)
{
	struct kbv_buf table = KBV_BUF_INIT, body = KBV_BUF_INIT, env = KBV_BUF_INIT, file = KBV_BUF_INIT;
	struct kbv_stream_result res;
	struct kbv_codec *codec = NULL;
	char name[2 * KBV_ID_BYTES + 1];
	int rc = 0;

	s->nentries = n;
	s->total_size = 0;
	for (size_t i = 0; i < n; i++) {
		if (!kbv_entry_name_ok(entries[i].name))
			return kbv_error(KBV_EINVAL, "'%s' is not a valid entry name", entries[i].name);
		s->total_size += entries[i].size;
	}
	TRY(kbv_entries_encode(entries, n, &table));
	TRY(kbv_writer_mem(w, table.data, table.len, &res));
	s->table_ref = res.ref;
	s->table_size = res.size;
	/* Everything the manifest references must be durable and indexed first (on object
	 * storage: listed in an index object). */
	TRY(kbv_writer_flush(w));
	TRY(kbv_repo_publish_index(r));

	TRY(kbv_snapshot_encode_body(s, &body));
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!codec) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	kbv_blob_id(r->keys, KBV_BLOB_SNAPSHOT, body.data, body.len, s->id);
	TRY(kbv_blob_encode(codec, KBV_BLOB_SNAPSHOT, s->id, body.data, body.len, &env));
	uint8_t h[SNAP_HEADER];
	memcpy(h, "KBVSNAP\0", 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, r->encrypted ? 1 : 0);
	TRY(kbv_buf_add(&file, h, sizeof h));
	TRY(kbv_buf_add(&file, env.data, env.len));
	kbv_hex(s->id, KBV_ID_BYTES, name);
	/* The last look before the PUT: has gc condemned packs too long ago for this snapshot
	 * to rely on them (format/repository.md, "Many writers and gc")? */
	TRY(kbv_plans_check_commit(r, r->plans));
	/* create-if-absent: a manifest is never overwritten */
	rc = kbv_be_put(r->be, KBV_OBJ_SNAPSHOT, name, file.data, file.len, KBV_PUT_EXCL);
	if (rc < 0) {
		kbv_error_prefix(rc, "write snapshot");
		goto out;
	}
	kbv_meta_put(r, KBV_META_MANIFEST, s->id, file.data, file.len);
	kbv_meta_put(r, KBV_META_ENTRIES, s->id, table.data, table.len);
out:
	kbv_codec_free(codec);
	kbv_buf_release(&table);
	kbv_buf_release(&body);
	kbv_buf_release(&env);
	kbv_buf_release(&file);
	return rc;
}

/* Decode the manifest file `file` of snapshot `id` (named `path` in messages) into *out. */
static int decode_manifest(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES], const char *path,
			   const struct kbv_buf *file, struct kbv_snapshot **out)
{
	struct kbv_buf body = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	struct kbv_snapshot *s = NULL;
	int rc = 0;
	if (file->len < SNAP_HEADER || memcmp(file->data, "KBVSNAP\0", 8) != 0) {
		rc = kbv_error(KBV_ECORRUPT, "snapshot file '%s' is damaged (bad magic or truncated)", path);
		goto out;
	}
	if (kbv_get32(file->data + 8) != 1) {
		rc = kbv_error(KBV_EVERSION, "snapshot '%s' has version %u; this kbvault reads version 1", path,
			       kbv_get32(file->data + 8));
		goto out;
	}
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	s = calloc(1, sizeof *s);
	if (!codec || !s) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	rc = kbv_blob_decode(codec, KBV_BLOB_SNAPSHOT, id, file->data + SNAP_HEADER, file->len - SNAP_HEADER,
			     KBV_RAW_UNKNOWN, &body);
	if (rc < 0) {
		kbv_error_prefix(rc, "snapshot '%s'", path);
		goto out;
	}
	rc = kbv_snapshot_decode_body(body.data, body.len, s);
	if (rc < 0) {
		kbv_error_prefix(rc, "snapshot '%s'", path);
		goto out;
	}
	memcpy(s->id, id, KBV_ID_BYTES);
	*out = s;
	s = NULL;
out:
	kbv_snapshot_free(s);
	kbv_codec_free(codec);
	kbv_buf_release(&body);
	return rc;
}

/* Load snapshot all[k] (its id; its listed size unless `a` is NULL). Listed (`a`, the
 * listing all[0..n) fetched ahead as it is read): taken from the metadata cache when the
 * cached copy has exactly the listed size (a manifest truncated or replaced in the bucket
 * is then read, and named, from there), else read through `a`. Not listed (`a` NULL): a
 * GET, never the cache. */
static int load(struct kbv_repo *r, const struct kbv_meta_listed *all, size_t k, size_t n, struct kbv_ahead *a,
		struct kbv_snapshot **out, int *fetched)
{
	struct kbv_buf file = KBV_BUF_INIT;
	char path[PATH_MAX], name[2 * KBV_ID_BYTES + 1];
	const uint8_t *id = all[k].id;
	int rc = 0;
	kbv_hex(id, KBV_ID_BYTES, name);
	kbv_be_describe(r->be, KBV_OBJ_SNAPSHOT, name, path, sizeof path);
	if (a) {
		TRY(rc = kbv_meta_get(r, KBV_META_MANIFEST, id, &file));
		if (rc == 1 && file.len == all[k].size && decode_manifest(r, id, path, &file, out) == 0) {
			rc = 0;
			goto out;
		}
		rc = 0;
		TRY(kbv_ahead_get(a, all, k, n, n - k, &file));
	} else {
		TRY(kbv_be_get(r->be, KBV_OBJ_SNAPSHOT, name, &file));
	}
	if (fetched)
		*fetched = 1;
	TRY(decode_manifest(r, id, path, &file, out));
	if (a)
		kbv_meta_put(r, KBV_META_MANIFEST, id, file.data, file.len);
out:
	kbv_buf_release(&file);
	return rc;
}

int kbv_snapshot_load(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES], struct kbv_snapshot **out)
{
	struct kbv_meta_listed one = { .size = UINT64_MAX };
	memcpy(one.id, id, KBV_ID_BYTES);
	return load(r, &one, 0, 1, NULL, out, NULL);
}

static int snap_cmp(const void *a, const void *b)
{
	const struct kbv_snapshot *x = *(struct kbv_snapshot *const *)a, *y = *(struct kbv_snapshot *const *)b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->nsec != y->nsec)
		return x->nsec < y->nsec ? -1 : 1;
	return memcmp(x->id, y->id, KBV_ID_BYTES);
}

void kbv_snapshot_list_free(struct kbv_snapshot **list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		kbv_snapshot_free(list[i]);
	free(list);
}

void kbv_snapshot_damage_free(struct kbv_snapshot_damage *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++)
		free(d[i].msg);
	free(d);
}

const struct kbv_snapshot_damage *kbv_snapshot_damage_find(const struct kbv_snapshot_damage *d, size_t n,
							   const char *spec)
{
	size_t len = strlen(spec);
	for (size_t i = 0; i < n && len >= 4 && len <= 2 * KBV_ID_BYTES; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(d[i].id, KBV_ID_BYTES, hex);
		if (!strncmp(hex, spec, len))
			return &d[i];
	}
	return NULL;
}

int kbv_snapshot_list(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n)
{
	struct kbv_snapshot_damage *bad = NULL;
	size_t nbad = 0;
	int rc = kbv_snapshot_list_damaged(r, list, n, &bad, &nbad);
	if (rc == 0 && nbad) {
		rc = kbv_error(KBV_ECORRUPT, "%s", bad[0].msg);
		kbv_snapshot_list_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	kbv_snapshot_damage_free(bad, nbad);
	return rc;
}

/* The object name of manifest `id` into name, or KBV_ELOCKED when Object Lock still
 * retains it (nothing may remove it then). */
static int removable(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES], char name[2 * KBV_ID_BYTES + 1])
{
	char what[96];
	kbv_hex(id, KBV_ID_BYTES, name);
	snprintf(what, sizeof what, "snapshot %.8s", name);
	return kbv_repo_refuse_retained(r, KBV_OBJ_SNAPSHOT, name, what);
}

int kbv_snapshot_remove(struct kbv_repo *r, const uint8_t id[KBV_ID_BYTES])
{
	char name[2 * KBV_ID_BYTES + 1];
	int rc = removable(r, id, name);
	if (rc == 0)
		rc = kbv_be_remove(r->be, KBV_OBJ_SNAPSHOT, name);
	return rc < 0 ? kbv_error_prefix(rc, "remove snapshot") : 0;
}

int kbv_snapshot_remove_many(struct kbv_repo *r, const uint8_t (*ids)[KBV_ID_BYTES], size_t n)
{
	char (*hex)[2 * KBV_ID_BYTES + 1] = calloc(n ? n : 1, sizeof *hex);
	const char **names = calloc(n ? n : 1, sizeof *names);
	int rc = hex && names ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && rc == 0; i++) {
		names[i] = hex[i];
		rc = removable(r, ids[i], hex[i]);
	}
	if (rc == 0 && n)
		rc = kbv_be_remove_many(r->be, KBV_OBJ_SNAPSHOT, names, n);
	free(names);
	free(hex);
	return rc < 0 ? kbv_error_prefix(rc, "remove snapshot") : 0;
}

int kbv_snapshot_ids(struct kbv_repo *r, struct kbv_buf *ids)
{
	struct kbv_buf l = KBV_BUF_INIT;
	ids->len = 0;
	int rc = kbv_be_list(r->be, KBV_OBJ_SNAPSHOT, kbv_meta_listed_add, &l);
	for (size_t i = 0; rc == 0 && i < l.len / sizeof(struct kbv_meta_listed); i++)
		rc = kbv_buf_add(ids, ((struct kbv_meta_listed *)l.data)[i].id, KBV_ID_BYTES);
	kbv_buf_release(&l);
	return rc;
}

int kbv_snapshot_list_damaged(struct kbv_repo *r, struct kbv_snapshot ***list, size_t *n,
			      struct kbv_snapshot_damage **damaged, size_t *n_damaged)
{
	struct kbv_snapshot **v = NULL;
	struct kbv_snapshot_damage *bad = NULL;
	struct kbv_buf ids = KBV_BUF_INIT; /* struct kbv_meta_listed */
	size_t cnt = 0, cap = 0, nbad = 0;
	int rc = 0, fetched = 0;
	uint64_t listed_at = 0;
	struct kbv_meta_ahead ahead; /* the manifests this host has not seen, side by side */
	kbv_meta_ahead_init(&ahead, r, KBV_META_MANIFEST, KBV_OBJ_SNAPSHOT);
	TRY(kbv_be_list_done(r->be, KBV_OBJ_SNAPSHOT, kbv_meta_listed_add, &ids, &listed_at));
	size_t nids = ids.len / sizeof(struct kbv_meta_listed);
	for (size_t k = 0; k < nids; k++) {
		const struct kbv_meta_listed *all = (const struct kbv_meta_listed *)ids.data;
		const uint8_t *id = all[k].id;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct kbv_snapshot **nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			v = nv;
		}
		rc = load(r, all, k, nids, &ahead.a, &v[cnt], &fetched);
		if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
			struct kbv_snapshot_damage *nb = realloc(bad, (nbad + 1) * sizeof *nb);
			if (!nb) {
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			bad = nb;
			memcpy(bad[nbad].id, id, KBV_ID_BYTES);
			if (!(bad[nbad].msg = strdup(kbv_errmsg()))) {
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			nbad++;
			rc = 0;
			continue;
		}
		TRY(rc);
		cnt++;
	}
	if (cnt)
		qsort(v, cnt, sizeof *v, snap_cmp);
	/* A manifest this host had not seen may be another host's, committed after this
	 * host's cache was brought up to date: its index object is in the bucket before it, so
	 * catching up now indexes every blob the listed snapshots reference (object storage;
	 * not while a writer of this handle holds its view of the index). Unless the packs
	 * were listed into the cache after this listing was in (the snapshots listed while the
	 * key was derived: kbv_repo_unlock): theirs then showed every such index object. */
	if (fetched && r->keys && !r->nwriters && !(listed_at < r->cache_from))
		TRY(kbv_repo_catch_up(r));
	/* What the listing no longer has (forgotten here or on another host) leaves the
	 * metadata cache. */
	kbv_meta_listed_sort(&ids);
	kbv_meta_retain(r, KBV_META_MANIFEST, kbv_meta_listed_has, &ids);
	kbv_meta_retain(r, KBV_META_ENTRIES, kbv_meta_listed_has, &ids);
	*list = v;
	*n = cnt;
	*damaged = bad;
	*n_damaged = nbad;
	v = NULL;
	bad = NULL;
	nbad = 0;
out:
	kbv_ahead_release(&ahead.a);
	kbv_buf_release(&ids);
	kbv_snapshot_list_free(v, cnt);
	kbv_snapshot_damage_free(bad, nbad);
	return rc;
}

int kbv_snapshot_matches(const struct kbv_snapshot *s, const struct kbv_snapshot_filter *f)
{
	if (!f)
		return 1;
	if (f->host && (!s->host || strcmp(s->host, f->host)))
		return 0;
	for (size_t i = 0; i < f->nsources; i++)
		if (!kbv_snapshot_source(s, f->sources[i]))
			return 0;
	for (size_t i = 0; i < f->ntags; i++) {
		size_t k = 0;
		while (k < s->ntags && strcmp(s->tags[k], f->tags[i]))
			k++;
		if (k == s->ntags)
			return 0;
	}
	return 1;
}

void kbv_snapshot_filter_describe(const struct kbv_snapshot_filter *f, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
#define ADD(...)                                                                   \
	do {                                                                       \
		int w_ = snprintf(out + len, cap - len, __VA_ARGS__);              \
		len = w_ < 0 ? len : (size_t)w_ >= cap - len ? cap - 1 : len + (size_t)w_; \
	} while (0)
	for (size_t i = 0; f && i < f->nsources; i++)
		ADD("%s'%s'", i ? ", " : f->nsources > 1 ? "of sources " : "of source ", f->sources[i]);
	if (f && f->host)
		ADD("%son host '%s'", len ? " " : "", f->host);
	for (size_t i = 0; f && i < f->ntags; i++)
		ADD("%s'%s'", i ? ", " : len ? " tagged " : "tagged ", f->tags[i]);
#undef ADD
}

int kbv_snapshot_find(struct kbv_snapshot **list, size_t n, const char *spec, struct kbv_snapshot **out)
{
	return kbv_snapshot_find_in(list, n, spec, NULL, out);
}

int kbv_snapshot_find_in(struct kbv_snapshot **list, size_t n, const char *spec, const struct kbv_snapshot_filter *f,
			 struct kbv_snapshot **out)
{
	if (strcmp(spec, "latest") == 0) {
		if (!n)
			return kbv_error(KBV_ENOTFOUND, "the repository has no snapshots");
		for (size_t i = n; i-- > 0;)
			if (kbv_snapshot_matches(list[i], f)) {
				*out = list[i];
				return 0;
			}
		char what[512];
		kbv_snapshot_filter_describe(f, what, sizeof what);
		return kbv_error(KBV_ENOTFOUND, "no snapshot %s", what);
	}
	size_t len = strlen(spec);
	if (len < 4 || len > 2 * KBV_ID_BYTES || strspn(spec, "0123456789abcdef") != len)
		return kbv_error(KBV_EINVAL, "'%s' is not a snapshot id (use 'latest', or 4 to 64 hex digits)", spec);
	struct kbv_snapshot *found = NULL;
	for (size_t i = 0; i < n; i++) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(list[i]->id, KBV_ID_BYTES, hex);
		if (strncmp(hex, spec, len) == 0) {
			if (found)
				return kbv_error(KBV_EINVAL, "snapshot prefix '%s' is ambiguous", spec);
			found = list[i];
		}
	}
	if (!found)
		return kbv_error(KBV_ENOTFOUND, "no snapshot '%s'", spec);
	*out = found;
	return 0;
}

/* ---- entry tables of many snapshots, side by side ---- */

struct load_many {
	struct kbv_repo *r;
	struct kbv_snapshot **v; /* those to load */
	struct kbv_reader *rd[KBV_BESIDE_MOST]; /* each thread's own */
	int no_reader[KBV_BESIDE_MOST];
};

static int load_one_table(void *arg, unsigned t, size_t i)
{
	struct load_many *l = arg;
	struct kbv_snapshot *s = l->v[i];
	if (!l->rd[t] && (l->no_reader[t] || (l->no_reader[t] = kbv_reader_new(l->r, 1, &l->rd[t]) < 0)))
		return 0; /* best effort: it is loaded later, by the caller's own load */
	if (kbv_snapshot_load_entries(l->rd[t], s) < 0) {
		/* what it met is reported by the caller's own load */
		kbv_entries_free(s->entries, s->nloaded);
		s->entries = NULL;
		s->nloaded = 0;
	}
	return 0;
}

void kbv_snapshot_load_entries_all(struct kbv_repo *r, struct kbv_snapshot **list, size_t n)
{
	struct load_many l = { .r = r };
	size_t m = 0;
	unsigned threads = kbv_backend_parallel(r->be);
	if (threads < 2) /* local: reads from the page cache, nothing to gain */
		return;
	if (!(l.v = calloc(n ? n : 1, sizeof *l.v)))
		return;
	for (size_t i = 0; i < n; i++)
		if (!list[i]->entries && !kbv_meta_holds(r, KBV_META_ENTRIES, list[i]->id, list[i]->table_size))
			l.v[m++] = list[i];
	if (m >= 2) /* one: the caller's own load */
		kbv_beside_each(m, threads, load_one_table, &l);
	for (size_t t = 0; t < KBV_BESIDE_MOST; t++)
		kbv_reader_free(l.rd[t]);
	free(l.v);
}

void kbv_snapshot_load_entries_before(struct kbv_repo *r, struct kbv_snapshot **list, size_t i,
				      const struct kbv_snapshot_filter *f)
{
	struct kbv_snapshot *batch[KBV_BESIDE_MOST];
	size_t most = kbv_backend_parallel(r->be), m = 0;
	if (most > KBV_BESIDE_MOST)
		most = KBV_BESIDE_MOST;
	for (size_t j = i + 1; j-- > 0 && m < most;)
		if (!list[j]->entries && kbv_snapshot_matches(list[j], f))
			batch[m++] = list[j];
	kbv_snapshot_load_entries_all(r, batch, m);
}

int kbv_snapshot_load_entries(struct kbv_reader *rd, struct kbv_snapshot *s)
{
	struct kbv_buf table = KBV_BUF_INIT;
	int rc = 0;
	if (s->entries)
		return 0;
	/* s came from the listing: a cached table (authenticated) saves reading its chunks. */
	struct kbv_repo *r = kbv_reader_repo(rd);
	int cached = kbv_meta_get(r, KBV_META_ENTRIES, s->id, &table);
	if (cached < 0)
		return cached;
	if (cached && table.len == s->table_size &&
	    kbv_entries_decode_format(table.data, table.len, entry_format(s->body_version), &s->entries, &s->nloaded) ==
		    0 &&
	    s->nloaded == s->nentries)
		goto out;
	kbv_entries_free(s->entries, s->nloaded);
	s->entries = NULL;
	s->nloaded = 0;
	rc = kbv_reader_mem(rd, &s->table_ref, s->table_size, &table);
	if (rc == 0 && table.len == s->table_size)
		kbv_meta_put(r, KBV_META_ENTRIES, s->id, table.data, table.len);
	if (rc == 0)
		rc = kbv_entries_decode_format(table.data, table.len, entry_format(s->body_version), &s->entries, &s->nloaded);
	if (rc == 0 && s->nloaded != s->nentries)
		rc = kbv_error(KBV_ECORRUPT, "entry table holds %zu entries, the manifest says %llu", s->nloaded,
			       (unsigned long long)s->nentries);
	if (rc < 0) {
		char hex[2 * KBV_ID_BYTES + 1];
		kbv_hex(s->id, KBV_ID_BYTES, hex);
		kbv_error_prefix(rc, "snapshot %.12s: entry table", hex);
	}
out:
	kbv_buf_release(&table);
	return rc;
}
