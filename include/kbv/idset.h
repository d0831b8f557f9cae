/* A set of 32-byte blob ids (open addressing). For sets that stay small: the ids of one
 * open pack, the TREE blobs seen by check. */
#ifndef KBV_IDSET_H
#define KBV_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct kbv_idset {
	uint8_t (*ids)[32];
	uint8_t *used;
	size_t cap, n;
};
#define KBV_IDSET_INIT { NULL, NULL, 0, 0 }

int kbv_idset_has(const struct kbv_idset *s, const uint8_t id[32]);
/* Add (no check for duplicates: callers test first). Returns 0 or KBV_ENOMEM. */
int kbv_idset_add(struct kbv_idset *s, const uint8_t id[32]);
void kbv_idset_clear(struct kbv_idset *s);
void kbv_idset_release(struct kbv_idset *s);

#endif
