/* Objects that are one sealed blob behind a 16-byte header (store/sealed.h). */
#include "store/sealed.h"

#include "kbv/error.h"

#include <string.h>

int kbv_sealed_make(const struct kbv_repo *r, struct kbv_codec *codec, const char magic[8], int type,
		    const struct kbv_buf *body, char name[65], struct kbv_buf *file)
{
	struct kbv_buf env = KBV_BUF_INIT;
	uint8_t id[KBV_ID_BYTES], h[KBV_SEALED_HEADER];
	int rc = 0;
	kbv_blob_id(r->keys, type, body->data, body->len, id);
	TRY(kbv_blob_encode(codec, type, id, body->data, body->len, &env));
	memcpy(h, magic, 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, r->encrypted ? 1 : 0);
	file->len = 0;
	TRY(kbv_buf_add(file, h, sizeof h));
	TRY(kbv_buf_add(file, env.data, env.len));
	kbv_hex(id, KBV_ID_BYTES, name);
out:
	kbv_buf_release(&env);
	return rc;
}

int kbv_sealed_open(const struct kbv_repo *r, struct kbv_codec *codec, const char magic[8], int type,
		    const char *what, const char *name, const uint8_t *file, size_t len, struct kbv_buf *body)
{
	uint8_t id[KBV_ID_BYTES];
	int rc = 0;
	if (kbv_unhex(name, id, KBV_ID_BYTES) < 0)
		return kbv_error(KBV_EINVAL, "'%s' is not the name of a %s", name, what);
	if (len < KBV_SEALED_HEADER || memcmp(file, magic, 8) != 0)
		return kbv_error(KBV_ECORRUPT, "%s '%s' is damaged (bad magic or truncated)", what, name);
	if (kbv_get32(file + 8) != 1)
		return kbv_error(KBV_EVERSION, "%s '%s' has version %u; this kbvault reads version 1", what, name,
				 kbv_get32(file + 8));
	if (kbv_get32(file + 12) != (r->encrypted ? 1u : 0u))
		return kbv_error(KBV_ECORRUPT, "%s '%s' is damaged (its encryption flag is not the repository's)", what,
				 name);
	rc = kbv_blob_decode(codec, type, id, file + KBV_SEALED_HEADER, len - KBV_SEALED_HEADER, KBV_RAW_UNKNOWN, body);
	if (rc < 0)
		kbv_error_prefix(rc, "%s '%s'", what, name);
	return rc;
}
