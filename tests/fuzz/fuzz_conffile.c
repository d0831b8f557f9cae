/* The configuration file, kbvault.conf (src/config/config.c, parsed with libinih; not the
 * repository's `config`, which fuzz_config takes): it loads or fails with an error, and what
 * it accepts is within its documented bounds: every source name valid and every source of
 * a known type, retention counts 0..1000000, keep-within's units 0..100000, a max-age that
 * kbv_age_parse takes. The same bytes as one line go through kbv_duration_parse and
 * kbv_age_parse on their own. The file is a memfd named by /proc/self/fd, so the real
 * loader (fopen, line counting, long-line handling) runs. Corpus: the configurations of
 * the docs and tests, and edge cases (a long line, inline comments, continuation lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "kbv/config.h"
#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/retention.h"
#include "kbv/snapshot.h"

static int within(int v, int max) { return v >= 0 && v <= max; }

static void check_durations(const uint8_t *data, size_t size)
{
	char s[256];
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = 0;
	struct kbv_duration d;
	int rc = kbv_duration_parse(s, &d);
	if (rc != 0 && rc != KBV_EINVAL)
		abort();
	if (rc == 0 && (!within(d.years, 100000) || !within(d.months, 100000) || !within(d.days, 100000) ||
			!within(d.hours, 100000) || !s[0]))
		abort();
	long long secs = -1;
	rc = kbv_age_parse(s, &secs);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0 && (secs <= 0 || secs > 100LL * 365 * 86400 * 604800))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_durations(data, size);
	int fd = memfd_create("kbvault.conf", 0);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct kbv_config *c = NULL;
	int rc = kbv_config_load(path, &c);
	close(fd);
	if (rc != 0 && rc != KBV_EINVAL && rc != KBV_EIO && rc != KBV_ENOMEM)
		abort();
	if (rc == 0) {
		const struct kbv_policy *p = &c->retention;
		if (!within(p->last, 1000000) || !within(p->hourly, 1000000) || !within(p->daily, 1000000) ||
		    !within(p->weekly, 1000000) || !within(p->monthly, 1000000) || !within(p->yearly, 1000000) ||
		    !within(p->within.years, 100000) || !within(p->within.months, 100000) ||
		    !within(p->within.days, 100000) || !within(p->within.hours, 100000))
			abort();
		long long secs;
		if (c->max_age && kbv_age_parse(c->max_age, &secs) != 0)
			abort();
		for (size_t i = 0; i < c->nsources; i++)
			if (!kbv_source_name_ok(c->sources[i].name) || !kbv_config_source(c, c->sources[i].name) ||
			    !kbv_source_kind((enum kbv_source_type)c->sources[i].type))
				abort();
		kbv_config_free(c);
	}
	return 0;
}
