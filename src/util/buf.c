#include "kbv/buf.h"
#include "kbv/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int kbv_buf_reserve(struct kbv_buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return kbv_error(KBV_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
	b->data = p;
	b->cap = cap;
	return 0;
}

int kbv_buf_add(struct kbv_buf *b, const void *p, size_t n)
{
	int rc = kbv_buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int kbv_buf_add_u8(struct kbv_buf *b, uint8_t v) { return kbv_buf_add(b, &v, 1); }

int kbv_buf_add_u16(struct kbv_buf *b, uint16_t v)
{
	uint8_t t[2];
	kbv_put16(t, v);
	return kbv_buf_add(b, t, 2);
}

int kbv_buf_add_u32(struct kbv_buf *b, uint32_t v)
{
	uint8_t t[4];
	kbv_put32(t, v);
	return kbv_buf_add(b, t, 4);
}

int kbv_buf_add_u64(struct kbv_buf *b, uint64_t v)
{
	uint8_t t[8];
	kbv_put64(t, v);
	return kbv_buf_add(b, t, 8);
}

int kbv_buf_add_str16(struct kbv_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT16_MAX)
		return kbv_error(KBV_EINVAL, "string of %zu bytes is too long", n);
	int rc = kbv_buf_add_u16(b, (uint16_t)n);
	return rc < 0 ? rc : kbv_buf_add(b, s, n);
}

int kbv_buf_add_str32(struct kbv_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX)
		return kbv_error(KBV_EINVAL, "string of %zu bytes is too long", n);
	int rc = kbv_buf_add_u32(b, (uint32_t)n);
	return rc < 0 ? rc : kbv_buf_add(b, s, n);
}

void kbv_buf_release(struct kbv_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

uint8_t *kbv_buf_detach(struct kbv_buf *b, size_t *len)
{
	uint8_t *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

const uint8_t *kbv_rd_bytes(struct kbv_rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t kbv_rd_u8(struct kbv_rd *r)
{
	const uint8_t *p = kbv_rd_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t kbv_rd_u16(struct kbv_rd *r)
{
	const uint8_t *p = kbv_rd_bytes(r, 2);
	return p ? kbv_get16(p) : 0;
}

uint32_t kbv_rd_u32(struct kbv_rd *r)
{
	const uint8_t *p = kbv_rd_bytes(r, 4);
	return p ? kbv_get32(p) : 0;
}

uint64_t kbv_rd_u64(struct kbv_rd *r)
{
	const uint8_t *p = kbv_rd_bytes(r, 8);
	return p ? kbv_get64(p) : 0;
}

static char *rd_str(struct kbv_rd *r, size_t n)
{
	const uint8_t *p = kbv_rd_bytes(r, n);
	if (!p || memchr(p, 0, n)) {
		r->bad = 1;
		return NULL;
	}
	char *s = malloc(n + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

char *kbv_rd_str16(struct kbv_rd *r) { return rd_str(r, kbv_rd_u16(r)); }
char *kbv_rd_str32(struct kbv_rd *r) { return rd_str(r, kbv_rd_u32(r)); }

void kbv_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kbv_unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return KBV_EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return KBV_EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int kbv_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	/* strtol would skip any white space and take a sign: the number starts at once */
	if (!s || !(isdigit((unsigned char)*s) || (min < 0 && *s == '-' && isdigit((unsigned char)s[1]))))
		return KBV_EINVAL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return KBV_EINVAL;
	*out = v;
	return 0;
}

long kbv_env_long(const char *name, long min, long max, long dflt)
{
	long v;
	return kbv_parse_long(getenv(name), min, max, &v) == 0 ? v : dflt;
}

int kbv_parse_bool(const char *v)
{
	if (!v)
		return 0;
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcmp(v, "0"))
		return 0;
	return -1;
}
