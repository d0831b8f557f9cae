/* The repository keys under which the Object Lock record fuzz target and its seeds read
 * and write (fuzz_lockrec.c, seeds.c): fixed, so a seed's MAC stays valid. */
#ifndef KBV_FUZZ_LOCKREC_INPUT_H
#define KBV_FUZZ_LOCKREC_INPUT_H

#include "kbv/blob.h"

static void lockrec_keys(struct kbv_keys *k)
{
	*k = (struct kbv_keys){ 0 };
	for (int i = 0; i < 32; i++) {
		k->enc[i] = (uint8_t)i;
		k->id[i] = (uint8_t)(32 + i);
	}
}

#endif
