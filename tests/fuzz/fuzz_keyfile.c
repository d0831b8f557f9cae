/* The key file (format/keyfile.md), checked against a repository config: the input is one
 * byte (bit 0: encrypted), the 16-byte repository id, then the key file. Parses or fails
 * cleanly. Corpus: the golden repositories' key files. */
#include <string.h>

#include "fuzz.h"
#include "kbv/repo.h"
#include "store/repo_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 17)
		return 0;
	struct kbv_repo r;
	memset(&r, 0, sizeof r);
	r.encrypted = data[0] & 1;
	memcpy(r.repo_id, data + 1, 16);
	kbv_keyfile_check(data + 17, size - 17, "fuzz", &r);
	return 0;
}
