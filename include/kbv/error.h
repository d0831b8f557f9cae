/* kbvault status codes and per-thread error messages.
 *
 * Every library function returns int: 0 on success or one of the negative KBV_E* codes.
 * The function that detects a failure records a human message (what and where) with
 * kbv_error(); callers may add context with kbv_error_prefix(). The library never prints.
 */
#ifndef KBV_ERROR_H
#define KBV_ERROR_H

enum kbv_status {
	KBV_OK = 0,
	KBV_EIO = -1,        /* the operating system refused a read, write or fsync */
	KBV_ENOMEM = -2,     /* out of memory */
	KBV_EINVAL = -3,     /* invalid argument or usage */
	KBV_ENOTFOUND = -4,  /* no such snapshot, stream or blob */
	KBV_ECORRUPT = -5,   /* stored bytes fail a checksum or structural check */
	KBV_EAUTH = -6,      /* wrong or missing password (a blob failing its tag is ECORRUPT) */
	KBV_EVERSION = -7,   /* format version this build does not know */
	KBV_ELOCKED = -8,    /* repository lock not available */
	KBV_ESOURCE = -9,    /* a source (dump command, input stream) failed */
	KBV_EEXIST = -10,    /* something is already there */
	KBV_ENOREPO = -11,   /* the path is not a kbvault repository */
	KBV_EINTERNAL = -12, /* a library (LMDB, zstd) reported an unexpected error */
};

/* Static name of a status code ("corrupt data", ...). Never NULL. */
const char *kbv_strerror(int code);

/* Record a message for this thread and return `code`, so `return kbv_error(...)` works. */
int kbv_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current message with "<context>: " and return `code`. */
int kbv_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread; valid until the next kbv_error() here. */
const char *kbv_errmsg(void);

/* Forward a negative status to the function's single cleanup label `out`. */
#define TRY(expr)                         \
	do {                              \
		int try_rc_ = (expr);     \
		if (try_rc_ < 0) {        \
			rc = try_rc_;     \
			goto out;         \
		}                         \
	} while (0)

#endif
