/* Growable byte buffer with explicit ownership, and little-endian field helpers. */
#ifndef KBV_BUF_H
#define KBV_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kbv_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
#define KBV_BUF_INIT { NULL, 0, 0 }

/* Make room for `extra` more bytes. Returns 0 or KBV_ENOMEM. */
int kbv_buf_reserve(struct kbv_buf *b, size_t extra);
int kbv_buf_add(struct kbv_buf *b, const void *p, size_t n);
int kbv_buf_add_u8(struct kbv_buf *b, uint8_t v);
int kbv_buf_add_u16(struct kbv_buf *b, uint16_t v);
int kbv_buf_add_u32(struct kbv_buf *b, uint32_t v);
int kbv_buf_add_u64(struct kbv_buf *b, uint64_t v);
int kbv_buf_add_str16(struct kbv_buf *b, const char *s);
int kbv_buf_add_str32(struct kbv_buf *b, const char *s);
/* Free the memory; the buffer is empty and reusable afterwards. */
void kbv_buf_release(struct kbv_buf *b);
/* Hand the memory to the caller (who frees it); the buffer is left empty. */
uint8_t *kbv_buf_detach(struct kbv_buf *b, size_t *len);

static inline void kbv_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void kbv_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kbv_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t kbv_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kbv_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kbv_get64(const uint8_t *p)
{
	return (uint64_t)kbv_get32(p) | (uint64_t)kbv_get32(p + 4) << 32;
}

/* Bounds-checked reader over a byte range. After any read past the end, `bad` is set and
 * every further read returns zeros; check `bad` once at the end. */
struct kbv_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	int bad;
};
static inline struct kbv_rd kbv_rd_make(const void *p, size_t len)
{
	struct kbv_rd r = { p, len, 0, 0 };
	return r;
}
const uint8_t *kbv_rd_bytes(struct kbv_rd *r, size_t n);
uint8_t kbv_rd_u8(struct kbv_rd *r);
uint16_t kbv_rd_u16(struct kbv_rd *r);
uint32_t kbv_rd_u32(struct kbv_rd *r);
uint64_t kbv_rd_u64(struct kbv_rd *r);
/* A str16/str32 as a new NUL-terminated string (caller frees); NULL and `bad` on error or
 * when the string contains a NUL byte. */
char *kbv_rd_str16(struct kbv_rd *r);
char *kbv_rd_str32(struct kbv_rd *r);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void kbv_hex(const uint8_t *p, size_t n, char *out);
/* Parse exactly 2n hex digits. Returns 0 or KBV_EINVAL. */
int kbv_unhex(const char *s, uint8_t *out, size_t n);
/* A whole decimal number in [min, max]: digits from the first byte to the last (a '-'
 * first only when min < 0; no '+', no white space, nothing after, no overflow);
 * KBV_EINVAL otherwise, with *out untouched. The checked replacement for atoi/atol. */
int kbv_parse_long(const char *s, long min, long max, long *out);
/* The environment variable `name` as kbv_parse_long() reads it; `dflt` when it is unset,
 * empty or not a number of [min, max] (the CLI refuses such a value at start-up, so a
 * reader needs no message of its own). */
long kbv_env_long(const char *name, long min, long max, long dflt);
/* yes/true/on/1 -> 1, no/false/off/0 and NULL -> 0, anything else -> -1. */
int kbv_parse_bool(const char *v);

#endif
