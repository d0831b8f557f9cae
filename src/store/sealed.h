/* Objects that are one sealed blob behind a 16-byte header: 8-byte magic, u32 version 1,
 * u32 encryption flag, then the blob's envelope (format/blob.md), named by the hex of the
 * blob's id. Index objects (format/index.md) and gc's deletion plans
 * (format/repository.md) are written and read through here. */
#ifndef KBV_STORE_SEALED_H
#define KBV_STORE_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"
#include "kbv/buf.h"
#include "store/repo_impl.h"

#define KBV_SEALED_HEADER 16

/* Seal `body` as a blob of `type` behind the header with `magic`: *name (65 bytes) the
 * object's name, `file` its bytes (replaced). Pure but for the keys in `codec`. */
int kbv_sealed_make(const struct kbv_repo *r, struct kbv_codec *codec, const char magic[8], int type,
		    const struct kbv_buf *body, char name[65], struct kbv_buf *file);
/* Verify an object `name` of that magic and type and decode its body into `body`.
 * KBV_ECORRUPT or KBV_EVERSION, the message naming "<what> '<name>'". */
int kbv_sealed_open(const struct kbv_repo *r, struct kbv_codec *codec, const char magic[8], int type,
		    const char *what, const char *name, const uint8_t *file, size_t len, struct kbv_buf *body);

#endif
