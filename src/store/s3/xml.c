/* Replies of object storage, parsed (xml.h). */
#include "xml.h"
#include "kbv/error.h"

#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kbv_s3_xml_field(const void *body, size_t len, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	out[0] = 0;
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	if (!body || !len)
		return;
	const char *s = memmem(body, len, open, strlen(open));
	if (!s)
		return;
	s += strlen(open);
	const char *e = memmem(s, len - (size_t)(s - (const char *)body), close, strlen(close));
	if (!e)
		return;
	size_t n = (size_t)(e - s) < cap - 1 ? (size_t)(e - s) : cap - 1;
	memcpy(out, s, n);
	out[n] = 0;
}

static void xml_start(void *arg, const XML_Char *el, const XML_Char **attr)
{
	struct kbv_s3_listing *l = arg;
	(void)attr;
	l->text.len = 0;
	if (!strcmp(el, "Contents") || !strcmp(el, "Version") || !strcmp(el, "DeleteMarker")) {
		l->in_contents = 1;
		l->marker = !strcmp(el, "DeleteMarker");
		l->key[0] = 0;
		l->version[0] = 0;
		l->size = 0;
		l->mtime = 0;
		l->have_size = l->have_mtime = 0;
	}
}

static void xml_text(void *arg, const XML_Char *s, int len)
{
	struct kbv_s3_listing *l = arg;
	if (len > 0 && kbv_buf_add(&l->text, s, (size_t)len) < 0)
		l->bad = KBV_ENOMEM;
}

int64_t kbv_s3_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!e)
		return 0;
	if (*e == '.') /* a fraction of a second */
		for (e++; *e >= '0' && *e <= '9'; e++)
			;
	if (*e == 'Z')
		e++;
	else if (!strcmp(e, "+00:00") || !strcmp(e, "+0000"))
		e += strlen(e); /* UTC written as an offset */
	if (*e)
		return 0; /* an offset or other trailing text: not a time S3 writes */
	time_t t = timegm(&tm);
	return t > 86400 ? (int64_t)t : 0;
}

static void add_item(struct kbv_s3_listing *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		struct kbv_s3_item *it = realloc(l->items, cap * sizeof *it);
		if (!it) {
			l->bad = KBV_ENOMEM;
			return;
		}
		l->items = it;
		l->cap = cap;
	}
	struct kbv_s3_item *it = &l->items[l->n];
	/* The name is the last path element, without ".pack" for packs. */
	const char *slash = strrchr(l->key, '/'), *base = slash ? slash + 1 : l->key;
	size_t len = strlen(base);
	if (len >= sizeof it->name)
		len = 0; /* no object name is that long: skipped by the caller's name check */
	memcpy(it->name, base, len);
	it->name[len] = 0;
	if (len > 5 && !strcmp(it->name + len - 5, ".pack"))
		it->name[len - 5] = 0;
	it->size = l->size;
	it->mtime = l->mtime;
	len = strlen(l->version);
	if (len >= sizeof it->version)
		len = 0;
	memcpy(it->version, l->version, len);
	it->version[len] = 0;
	it->marker = l->marker;
	l->n++;
}

static void xml_end(void *arg, const XML_Char *el)
{
	struct kbv_s3_listing *l = arg;
	char v[1024];
	size_t n = l->text.len < sizeof v - 1 ? l->text.len : sizeof v - 1;
	memcpy(v, l->text.data ? (const char *)l->text.data : "", n);
	v[n] = 0;
	l->text.len = 0;
	if (l->in_contents && !strcmp(el, "Key")) {
		snprintf(l->key, sizeof l->key, "%s", v);
	} else if (l->in_contents && !strcmp(el, "Size")) {
		long sz = 0; /* no object is 2^63 bytes: S3's limit is 5 TiB */
		l->have_size = kbv_parse_long(v, 0, LONG_MAX, &sz) == 0;
		l->size = (uint64_t)sz;
	} else if (l->in_contents && !strcmp(el, "LastModified")) {
		l->mtime = kbv_s3_parse_time(v);
		l->have_mtime = l->mtime > 0;
	} else if (l->in_contents && !strcmp(el, "VersionId")) {
		snprintf(l->version, sizeof l->version, "%s", v);
	} else if (!strcmp(el, "Contents") || !strcmp(el, "Version") || !strcmp(el, "DeleteMarker")) {
		l->in_contents = 0;
		if ((!l->have_size && !l->marker) || !l->have_mtime) {
			if (!l->bad) {
				char key[96];
				snprintf(key, sizeof key, "%.80s", l->key);
				for (char *c = key; *c; c++)
					if ((unsigned char)*c < 0x20 || *c == 0x7f)
						*c = '?';
				snprintf(l->bad_why, sizeof l->bad_why, "its entry of '%s' has no readable %s", key,
					 !l->have_mtime ? "LastModified" : "Size");
				l->bad = KBV_ECORRUPT;
			}
			return;
		}
		add_item(l);
	} else if (!strcmp(el, "NextKeyMarker")) {
		snprintf(l->next_key, sizeof l->next_key, "%s", v);
	} else if (!strcmp(el, "NextVersionIdMarker")) {
		snprintf(l->next_version, sizeof l->next_version, "%s", v);
	} else if (!strcmp(el, "IsTruncated")) {
		l->truncated = !strcmp(v, "true");
	} else if (!strcmp(el, "NextContinuationToken")) {
		snprintf(l->token, sizeof l->token, "%s", v);
	}
}

int kbv_s3_listing_parse(struct kbv_s3_listing *l, const void *body, size_t len)
{
	l->n = 0;
	l->truncated = 0;
	l->token[0] = 0;
	l->next_key[0] = l->next_version[0] = 0;
	l->in_contents = 0;
	l->bad = 0;
	l->bad_why[0] = 0;
	l->text.len = 0;
	if (len > INT_MAX)
		return KBV_ECORRUPT;
	XML_Parser xp = XML_ParserCreate(NULL);
	if (!xp)
		return KBV_ENOMEM;
	XML_SetUserData(xp, l);
	XML_SetElementHandler(xp, xml_start, xml_end);
	XML_SetCharacterDataHandler(xp, xml_text);
	int ok = XML_Parse(xp, body ? (const char *)body : "", (int)len, 1) == XML_STATUS_OK;
	XML_ParserFree(xp);
	if (l->bad)
		return l->bad;
	return ok ? 0 : KBV_ECORRUPT;
}

void kbv_s3_listing_release(struct kbv_s3_listing *l)
{
	free(l->items);
	kbv_buf_release(&l->text);
	memset(l, 0, sizeof *l);
}
