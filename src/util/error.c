#include "kbv/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg[1024];

const char *kbv_strerror(int code)
{
	switch (code) {
	case KBV_OK: return "success";
	case KBV_EIO: return "i/o error";
	case KBV_ENOMEM: return "out of memory";
	case KBV_EINVAL: return "invalid argument";
	case KBV_ENOTFOUND: return "not found";
	case KBV_ECORRUPT: return "corrupt data";
	case KBV_EAUTH: return "authentication failed";
	case KBV_EVERSION: return "unsupported format version";
	case KBV_ELOCKED: return "repository locked";
	case KBV_ESOURCE: return "source failed";
	case KBV_EEXIST: return "already exists";
	case KBV_ENOREPO: return "not a repository";
	case KBV_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

int kbv_error(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return code;
}

int kbv_error_prefix(int code, const char *fmt, ...)
{
	char head[512], old[sizeof errmsg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, errmsg, sizeof old);
	const char *tail = old[0] ? old : kbv_strerror(code);
	/* Truncation is acceptable: the head names the place, the tail the cause. */
	size_t n = strlen(head);
	memcpy(errmsg, head, n);
	size_t room = sizeof errmsg - n - 1;
	size_t tl = strnlen(tail, room > 2 ? room - 2 : 0);
	memcpy(errmsg + n, ": ", 2);
	memcpy(errmsg + n + 2, tail, tl);
	errmsg[n + 2 + tl] = 0;
	return code;
}

const char *kbv_errmsg(void)
{
	return errmsg[0] ? errmsg : "no error message";
}
