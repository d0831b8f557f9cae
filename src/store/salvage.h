/* Recovering what a pack holds when its trailer (the list of its blobs) is damaged. */
#ifndef KBV_SALVAGE_H
#define KBV_SALVAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/buf.h"
#include "store/index.h"
#include "store/pack.h"
#include "kbv/repo.h"

struct kbv_codec;

/* Walk the envelopes of a pack from its header on, without its trailer, keeping every
 * blob whose envelope verifies whole (src/salvage.c says how an envelope's end is found
 * and proven). `entries` receives struct kbv_pack_entry records as a trailer would list
 * them, *n their count; *lost_from is 0 when the walk reached the end of the blobs, else
 * the offset from which nothing could be proven (lost); *size the file size. Errors only
 * when the file cannot be read or is not this pack at all. The repository must be
 * unlocked (keys). */
int kbv_pack_salvage(struct kbv_repo *r, struct kbv_codec *c, const uint8_t packid[KBV_PACKID_BYTES],
		     struct kbv_buf *entries, size_t *n, uint64_t *lost_from, uint64_t *size);

#endif
