/* The repository config file (format/repository.md): parses or fails cleanly, and what it
 * accepts has valid chunker and zstd parameters and an Object Lock of at most ten years. Corpus: the golden repositories' configs. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kbv/chunker.h"
#include "kbv/repo.h"
#include "store/repo_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbv_repo r;
	memset(&r, 0, sizeof r);
	if (kbv_repo_config_decode(data, size, "fuzz", &r) == 0 &&
	    (r.zstd_level < 1 || r.zstd_level > 19 || kbv_cdc_check_params(r.chunk_min, r.chunk_avg, r.chunk_max) < 0 ||
	     r.lock_days > KBV_MAX_LOCK_DAYS))
		abort();
	return 0;
}
