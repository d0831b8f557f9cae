/* XXH3 for the bulk paths (the whole-stream digest, the pack trailer's envelope checksums):
 * on x86-64 through libxxhash's run-time dispatch, which picks AVX2 or AVX-512 where the
 * CPU has them (the plain entry points are the SSE2 build: 7 against 23 GB/s on data in
 * cache here, docs/benchmarks.md); elsewhere the plain ones. The hashes are the same. */
#ifndef KBV_CODEC_XXH_H
#define KBV_CODEC_XXH_H

#include <xxhash.h>
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#endif
