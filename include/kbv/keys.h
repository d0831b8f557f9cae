/* A repository's keys (format/keyfile.md): every key object wraps the same master keys with
 * its own password, so passwords can be added, changed and revoked without touching the
 * data. Local and object-storage repositories alike. */
#ifndef KBV_KEYS_H
#define KBV_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/repo.h"

struct kbv_key_info {
	char id[40];      /* "key" (the one init wrote) or 32 hex digits */
	int version;      /* of its file: 1 or 2 */
	int in_use;       /* this handle was unlocked with it */
	int damaged;      /* unreadable (skipped); the fields below are empty */
	char host[128], user[64], created[40]; /* who made it and when (version 2), else "" */
	uint64_t kdf_mem; /* Argon2id memory, bytes (0: unencrypted) */
};

/* Every key object of r (opened): *out is the caller's (free()), *n entries. */
int kbv_key_list(const struct kbv_repo *r, struct kbv_key_info **out, size_t *n);

/* Add a key for password pw (r unlocked): keys/<id>, written create-if-absent and durable
 * when this returns 0; the Argon2id cost is that of the key r was unlocked with. The new
 * id (32 hex digits) goes to id. */
int kbv_key_add(struct kbv_repo *r, const char *pw, size_t pwlen, const char *host, const char *user, char id[33]);

/* Remove key `id` ("key" or 32 hex digits). KBV_EINVAL for the last sound key, and for the
 * key r was unlocked with unless `force`; KBV_ENOTFOUND when there is no such key. */
int kbv_key_remove(struct kbv_repo *r, const char *id, int force);

#endif
