#include "kbv/idset.h"
#include "kbv/error.h"

#include <stdlib.h>
#include <string.h>

/* Ids are keyed hashes, so their first bytes are already uniformly distributed. */
static size_t slot_of(const struct kbv_idset *s, const uint8_t *id)
{
	uint64_t h;
	memcpy(&h, id, sizeof h);
	return (size_t)h & (s->cap - 1);
}

int kbv_idset_has(const struct kbv_idset *s, const uint8_t id[32])
{
	if (!s->cap)
		return 0;
	for (size_t i = slot_of(s, id);; i = (i + 1) & (s->cap - 1)) {
		if (!s->used[i])
			return 0;
		if (memcmp(s->ids[i], id, 32) == 0)
			return 1;
	}
}

int kbv_idset_add(struct kbv_idset *s, const uint8_t id[32])
{
	if ((s->n + 1) * 2 > s->cap) {
		struct kbv_idset g = KBV_IDSET_INIT;
		g.cap = s->cap ? s->cap * 2 : 1024;
		g.ids = malloc(g.cap * 32);
		g.used = calloc(g.cap, 1);
		if (!g.ids || !g.used) {
			free(g.ids);
			free(g.used);
			return kbv_error(KBV_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < s->cap; i++)
			if (s->used[i])
				kbv_idset_add(&g, s->ids[i]);
		kbv_idset_release(s);
		*s = g;
	}
	size_t i = slot_of(s, id);
	while (s->used[i])
		i = (i + 1) & (s->cap - 1);
	memcpy(s->ids[i], id, 32);
	s->used[i] = 1;
	s->n++;
	return 0;
}

void kbv_idset_clear(struct kbv_idset *s)
{
	if (s->cap)
		memset(s->used, 0, s->cap);
	s->n = 0;
}

void kbv_idset_release(struct kbv_idset *s)
{
	free(s->ids);
	free(s->used);
	s->ids = NULL;
	s->used = NULL;
	s->cap = s->n = 0;
}
