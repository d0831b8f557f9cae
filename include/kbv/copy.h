/* Copying snapshots from one repository into another (src/engine/copy.c), for a second copy
 * elsewhere (3-2-1): local to object storage and back. */
#ifndef KBV_COPY_H
#define KBV_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/reader.h"
#include "kbv/snapshot.h"
#include "kbv/writer.h"

/* The snapshot of dst[] (listed from the target; entries are loaded through dst_rd as
 * needed) that holds the same snapshot as s (entries loaded): same time, host, tags and
 * entries with the same content hashes. *found is NULL when there is none. */
int kbv_copy_find(struct kbv_reader *dst_rd, struct kbv_snapshot **dst, size_t ndst, const struct kbv_snapshot *s,
		  struct kbv_snapshot **found);

/* Copy s (entries loaded, read through src_rd) into the repository dst through the writer
 * w: every stream read and authenticated, stored by dst's own chunker and keys (dedup
 * against what dst holds), checked against the hash s recorded, then the manifest, with
 * s's time, host, tags and sources, written durably. Its id in dst goes to new_id. */
int kbv_copy_snapshot(struct kbv_reader *src_rd, const struct kbv_snapshot *s, struct kbv_repo *dst,
		      struct kbv_writer *w, uint8_t new_id[KBV_ID_BYTES]);

#endif
