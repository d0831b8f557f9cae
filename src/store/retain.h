/* Object Lock at the repository level (src/store/retain.c; format/repository.md "Object
 * Lock"). Every function is a no-op (0) on a repository without Object Lock. */
#ifndef KBV_STORE_RETAIN_H
#define KBV_STORE_RETAIN_H

#include <stdint.h>

#include "kbv/backend.h"

struct kbv_repo;

/* Is the object still retained (1, *until its retain-until) or deletable (0)? `mtime` is
 * its LastModified from a listing (0: unknown): when that alone shows it retained, no
 * request is sent; else one HEAD asks the storage. Objects of kinds Object Lock does not
 * retain (plans, locks) are never retained. */
int kbv_repo_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, int64_t mtime, int64_t *until);

/* kbv_repo_retained() as an error for a command that must remove the object now:
 * KBV_ELOCKED naming `what` and the date its retention lapses; 0 when it is not retained;
 * another error as it came. */
int kbv_repo_refuse_retained(struct kbv_repo *r, enum kbv_obj kind, const char *name, const char *what);

#endif
