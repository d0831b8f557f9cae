/* Fuzz targets: each file defines LLVMFuzzerTestOneInput for one parser of untrusted bytes.
 * `make fuzz` links them with libFuzzer (clang); `make test` replays the checked-in corpus
 * through tests/fuzz/replay.c, so every input ever found interesting keeps being run. */
#ifndef KBV_FUZZ_H
#define KBV_FUZZ_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif
