#include "kbv/record.h"
#include "kbv/blob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/metacache.h"
#include "store/repo_impl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define REC_HEADER 16

int kbv_record_write(struct kbv_repo *r, const json_t *rec)
{
	struct kbv_buf env = KBV_BUF_INIT, file = KBV_BUF_INIT;
	struct kbv_codec *codec = NULL;
	char name[2 * KBV_ID_BYTES + 1];
	uint8_t id[KBV_ID_BYTES], h[REC_HEADER];
	int rc = 0;
	char *body = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!body || !codec) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	size_t len = strlen(body);
	kbv_blob_id(r->keys, KBV_BLOB_RECORD, body, len, id);
	TRY(kbv_blob_encode(codec, KBV_BLOB_RECORD, id, body, len, &env));
	memcpy(h, "KBVRCRD\0", 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, r->encrypted ? 1 : 0);
	TRY(kbv_buf_add(&file, h, sizeof h));
	TRY(kbv_buf_add(&file, env.data, env.len));
	kbv_hex(id, KBV_ID_BYTES, name);
	rc = kbv_be_put(r->be, KBV_OBJ_RECORD, name, file.data, file.len, KBV_PUT_EXCL);
	if (rc == KBV_EEXIST)
		rc = 0; /* the very same record (same body) is already there */
	if (rc == 0 && kbv_meta_on(r))
		kbv_meta_put(r, KBV_META_RECORD, id, file.data, file.len);
out:
	free(body);
	kbv_codec_free(codec);
	kbv_buf_release(&env);
	kbv_buf_release(&file);
	return rc;
}

/* The record all[k] the listing just returned: from this host's metadata cache when it holds
 * the object with the listed size (a record is written once, never changed), else read
 * through `a` (fetched ahead with others of all[0..n), or a GET), which the cache then
 * keeps. Either way it is authenticated here. */
static int load_one(struct kbv_repo *r, struct kbv_codec *codec, const struct kbv_meta_listed *all, size_t k,
		    size_t n, struct kbv_ahead *a, json_t **out)
{
	const struct kbv_meta_listed *l = &all[k];
	struct kbv_buf file = KBV_BUF_INIT;
	char name[2 * KBV_ID_BYTES + 1], path[PATH_MAX];
	int rc = kbv_meta_on(r) ? kbv_meta_get(r, KBV_META_RECORD, l->id, &file) : 0, fetched = 0;
	kbv_hex(l->id, KBV_ID_BYTES, name);
	kbv_be_describe(r->be, KBV_OBJ_RECORD, name, path, sizeof path);
	TRY(rc);
	if (rc == 0 || file.len != l->size) {
		TRY(kbv_ahead_get(a, all, k, n, n - k, &file));
		fetched = 1;
	}
	rc = kbv_record_decode(codec, l->id, file.data, file.len, path, out);
	if (rc == 0 && fetched && kbv_meta_on(r))
		kbv_meta_put(r, KBV_META_RECORD, l->id, file.data, file.len);
out:
	kbv_buf_release(&file);
	return rc;
}

int kbv_record_decode(struct kbv_codec *codec, const uint8_t id[KBV_ID_BYTES], const uint8_t *p, size_t len,
		      const char *what, json_t **out)
{
	struct kbv_buf body = KBV_BUF_INIT;
	int rc = 0;
	if (len < REC_HEADER || memcmp(p, "KBVRCRD\0", 8) != 0)
		return kbv_error(KBV_ECORRUPT, "record '%s' is damaged (bad magic or truncated)", what);
	if (kbv_get32(p + 8) != 1)
		return kbv_error(KBV_EVERSION, "record '%s' has version %u; this kbvault reads version 1", what,
				 kbv_get32(p + 8));
	rc = kbv_blob_decode(codec, KBV_BLOB_RECORD, id, p + REC_HEADER, len - REC_HEADER, KBV_RAW_UNKNOWN, &body);
	if (rc < 0) {
		kbv_error_prefix(rc, "record '%s'", what);
		goto out;
	}
	json_t *j = json_loadb((const char *)body.data, body.len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "kind")) ||
	    !json_is_string(json_object_get(j, "time"))) {
		json_decref(j);
		rc = kbv_error(KBV_ECORRUPT, "record '%s' is not a record (JSON object with kind and time)", what);
		goto out;
	}
	*out = j;
out:
	kbv_buf_release(&body);
	return rc;
}

static int by_time(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	return strcmp(json_string_value(json_object_get(x, "time")), json_string_value(json_object_get(y, "time")));
}

int kbv_record_lists(struct kbv_repo *r, const char *const *kinds, size_t nkinds, json_t **out)
{
	struct kbv_codec *codec = NULL;
	struct kbv_buf ids = KBV_BUF_INIT; /* struct kbv_meta_listed */
	json_t **v = NULL;
	size_t n = 0, nout = 0;
	int rc = 0;
	struct kbv_meta_ahead ahead; /* the records this host has not seen, side by side */
	kbv_meta_ahead_init(&ahead, r, KBV_META_RECORD, KBV_OBJ_RECORD);
	TRY(kbv_be_list(r->be, KBV_OBJ_RECORD, kbv_meta_listed_add, &ids));
	size_t nids = ids.len / sizeof(struct kbv_meta_listed);
	kbv_meta_listed_sort(&ids);
	if (kbv_meta_on(r)) /* records gone from the bucket leave the cache */
		kbv_meta_retain(r, KBV_META_RECORD, kbv_meta_listed_has, &ids);
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	v = calloc(nids ? nids : 1, sizeof *v);
	if (!codec || !v) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nids; k++) {
		json_t *j = NULL;
		TRY(load_one(r, codec, (const struct kbv_meta_listed *)ids.data, k, nids, &ahead.a, &j));
		v[n++] = j;
	}
	if (n)
		qsort(v, n, sizeof *v, by_time);
	for (; nout < nkinds; nout++) {
		if (!(out[nout] = json_array())) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n && rc == 0; i++)
			if (!strcmp(json_string_value(json_object_get(v[i], "kind")), kinds[nout]) &&
			    json_array_append(out[nout], v[i]) < 0)
				rc = kbv_error(KBV_ENOMEM, "out of memory");
		TRY(rc);
	}
out:
	if (rc < 0)
		for (size_t i = 0; i < nout && i < nkinds; i++) {
			json_decref(out[i]);
			out[i] = NULL;
		}
	for (size_t i = 0; i < n; i++)
		json_decref(v[i]);
	kbv_ahead_release(&ahead.a);
	free(v);
	kbv_buf_release(&ids);
	kbv_codec_free(codec);
	return rc;
}

int kbv_record_list(struct kbv_repo *r, const char *kind, json_t **out)
{
	return kbv_record_lists(r, &kind, 1, out);
}
