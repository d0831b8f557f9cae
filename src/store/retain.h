/* Object Lock at the repository level (src/store/retain.c; format/repository.md "Object
 * Lock"). Every function is a no-op (0) on a repository without Object Lock. */
#ifndef KBV_STORE_RETAIN_H
#define KBV_STORE_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/backend.h"

struct kbv_repo;
struct kbv_keys;

/* Is the object still retained (1, *until its retain-until) or deletable (0)? `mtime` is
 * its LastModified from a listing (0: unknown): when that alone shows it retained, no
 * request is sent; else one HEAD asks the storage. Objects of kinds Object Lock does not
 * retain (plans, locks) are never retained. */
int kbv_repo_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, int64_t mtime, int64_t *until);

/* kbv_repo_retained() as an error for a command that must remove the object now:
 * KBV_ELOCKED naming `what` and the date its retention lapses; 0 when it is not retained;
 * another error as it came. */
int kbv_repo_refuse_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, const char *what);

/* This host's record of its last extension pass (the file `object-lock` in the cache
 * directory, format/repository.md): one line `kbvault-object-lock 2 T U MAC`, MAC the hex
 * of BLAKE2b-256, keyed with a key derived from the master keys, of the line before " MAC".
 * Longest line, its newline and a NUL included. */
#define KBV_LOCKREC_MAX 128
/* Write the line of (t, until) under `keys` into line[cap], newline included: its length,
 * or KBV_EINVAL when cap is too small. Pure. */
int kbv_lockrec_format(const struct kbv_keys *keys, int64_t t, int64_t until, char *line, size_t cap);
/* The (t, until) of line[0..len) (no NUL needed): 0 when it is exactly the line
 * kbv_lockrec_format() writes for them under `keys`, with 0 < t < until; KBV_ECORRUPT for
 * anything else (*t and *until then 0). Pure. */
int kbv_lockrec_parse(const struct kbv_keys *keys, const char *line, size_t len, int64_t *t, int64_t *until);

#endif
