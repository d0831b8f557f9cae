#include "kbv/record.h"
#include "kbv/blob.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
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
out:
	free(body);
	kbv_codec_free(codec);
	kbv_buf_release(&env);
	kbv_buf_release(&file);
	return rc;
}

static int load_one(struct kbv_repo *r, struct kbv_codec *codec, const char *name, const uint8_t id[KBV_ID_BYTES],
		    json_t **out)
{
	struct kbv_buf file = KBV_BUF_INIT;
	char path[PATH_MAX];
	int rc = 0;
	kbv_be_describe(r->be, KBV_OBJ_RECORD, name, path, sizeof path);
	TRY(kbv_be_get(r->be, KBV_OBJ_RECORD, name, &file));
	rc = kbv_record_decode(codec, id, file.data, file.len, path, out);
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

static int add_name(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	uint8_t id[KBV_ID_BYTES];
	(void)size;
	(void)mtime;
	return kbv_unhex(name, id, KBV_ID_BYTES) < 0 ? 0 : kbv_buf_add(arg, id, KBV_ID_BYTES);
}

int kbv_record_list(struct kbv_repo *r, const char *kind, json_t **out)
{
	struct kbv_codec *codec = NULL;
	struct kbv_buf ids = KBV_BUF_INIT;
	json_t **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	TRY(kbv_be_list(r->be, KBV_OBJ_RECORD, add_name, &ids));
	codec = kbv_codec_new(r->keys, r->encrypted, r->zstd_level);
	if (!codec) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < ids.len / KBV_ID_BYTES; k++) {
		const uint8_t *id = ids.data + k * KBV_ID_BYTES;
		char name[2 * KBV_ID_BYTES + 1];
		json_t *j = NULL;
		kbv_hex(id, KBV_ID_BYTES, name);
		TRY(load_one(r, codec, name, id, &j));
		if (strcmp(json_string_value(json_object_get(j, "kind")), kind) != 0) {
			json_decref(j);
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			json_t **nv = realloc(v, cap * sizeof *nv);
			if (!nv) {
				json_decref(j);
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			v = nv;
		}
		v[n++] = j;
	}
	if (n)
		qsort(v, n, sizeof *v, by_time);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(arr, v[i]);
	*out = arr;
out:
	for (size_t i = 0; i < n; i++)
		json_decref(v[i]);
	free(v);
	kbv_buf_release(&ids);
	kbv_codec_free(codec);
	return rc;
}
