#include "kbv/retention.h"
#include "kbv/buf.h"
#include "kbv/error.h"
#include "kbv/snapshot.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int kbv_policy_is_empty(const struct kbv_policy *p)
{
	const struct kbv_duration *w = &p->within;
	return !p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly && !p->ntags &&
	       !w->years && !w->months && !w->days && !w->hours;
}

int kbv_duration_parse(const char *s, struct kbv_duration *d)
{
	memset(d, 0, sizeof *d);
	if (!*s)
		return kbv_error(KBV_EINVAL, "empty duration");
	while (*s) {
		char *end;
		long v = *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1; /* no sign, no space */
		if (v < 0 || v > 100000)
			return kbv_error(KBV_EINVAL, "bad duration '%s' (use e.g. 2d, 36h, 1y6m)", s);
		int *unit = *end == 'y' ? &d->years : *end == 'm' ? &d->months : *end == 'd' ? &d->days
			  : *end == 'h' ? &d->hours : NULL;
		if (!unit)
			return kbv_error(KBV_EINVAL, "bad duration unit in '%s' (y, m, d or h)", s);
		if (*unit + v > 100000) /* "1y1y..." repeated: no int overflow */
			return kbv_error(KBV_EINVAL, "bad duration '%s' (use e.g. 2d, 36h, 1y6m)", s);
		*unit += (int)v;
		s = end + 1;
	}
	return 0;
}

static struct tm local_tm(const struct kbv_retention_item *it)
{
	time_t lt = (time_t)(it->time + it->tzoff);
	struct tm tm;
	gmtime_r(&lt, &tm);
	return tm;
}

enum { B_HOUR, B_DAY, B_WEEK, B_MONTH, B_YEAR, NBUCKETS };

static long bucket(const struct tm *tm, int kind)
{
	long y = tm->tm_year + 1900L, m = tm->tm_mon + 1;
	switch (kind) {
	case B_HOUR: return ((y * 100 + m) * 100 + tm->tm_mday) * 100 + tm->tm_hour;
	case B_DAY: return (y * 100 + m) * 100 + tm->tm_mday;
	case B_WEEK: {
		char buf[16];
		long w = 0;
		strftime(buf, sizeof buf, "%G%V", tm); /* ISO 8601 week-based year and week */
		kbv_parse_long(buf, 0, LONG_MAX, &w);
		return w;
	}
	case B_MONTH: return y * 100 + m;
	default: return y;
	}
}

/* Local time of `it` minus a calendar duration, as seconds in the same local frame. */
static int64_t minus(const struct kbv_retention_item *it, const struct kbv_duration *d)
{
	struct tm tm = local_tm(it);
	tm.tm_year -= d->years;
	tm.tm_mon -= d->months;
	tm.tm_mday -= d->days;
	tm.tm_hour -= d->hours;
	return (int64_t)timegm(&tm); /* normalizes, e.g. March 31 minus 1 month -> March 3 */
}

static void add_reason(struct kbv_retention_item *it, const char *why)
{
	size_t n = strlen(it->reasons);
	snprintf(it->reasons + n, sizeof it->reasons - n, "%s%s", n ? ", " : "", why);
	it->keep = 1;
}

static int newest_first(const void *a, const void *b)
{
	const struct kbv_retention_item *x = *(struct kbv_retention_item *const *)a,
					  *y = *(struct kbv_retention_item *const *)b;
	int g = strcmp(x->group, y->group);
	if (g)
		return g;
	if (x->time != y->time)
		return x->time > y->time ? -1 : 1;
	if (x->nsec != y->nsec)
		return x->nsec > y->nsec ? -1 : 1;
	return x > y ? -1 : x < y; /* identical times: the later item in the input counts as newer */
}

int kbv_retention_apply(const struct kbv_policy *p, struct kbv_retention_item *items, size_t n)
{
	static const char *const names[NBUCKETS] = { "hourly", "daily", "weekly", "monthly", "yearly" };
	struct kbv_retention_item **v = malloc((n + 1) * sizeof *v);
	if (!v)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		v[i] = &items[i];
		items[i].keep = 0;
		items[i].reasons[0] = 0;
	}
	if (n)
		qsort(v, n, sizeof *v, newest_first);
	const int want[NBUCKETS] = { p->hourly, p->daily, p->weekly, p->monthly, p->yearly };
	const struct kbv_duration *w = &p->within;
	int has_within = w->years || w->months || w->days || w->hours;
	for (size_t start = 0; start < n;) {
		size_t end = start;
		while (end < n && !strcmp(v[end]->group, v[start]->group))
			end++;
		int left[NBUCKETS], last_left = p->last;
		long prev[NBUCKETS];
		int have_prev[NBUCKETS] = { 0 };
		memcpy(left, want, sizeof left);
		int64_t cutoff = has_within ? minus(v[start], w) : 0;
		for (size_t i = start; i < end; i++) {
			struct kbv_retention_item *it = v[i];
			struct tm tm = local_tm(it);
			if (last_left > 0) {
				add_reason(it, "last");
				last_left--;
			}
			for (int k = 0; k < NBUCKETS; k++) {
				if (left[k] <= 0)
					continue;
				long b = bucket(&tm, k);
				if (!have_prev[k] || b != prev[k]) {
					add_reason(it, names[k]);
					prev[k] = b;
					have_prev[k] = 1;
					left[k]--;
				}
			}
			if (has_within && it->time + it->tzoff >= cutoff)
				add_reason(it, "within");
			for (size_t t = 0; t < p->ntags; t++)
				for (size_t u = 0; u < it->ntags; u++)
					if (!strcmp(p->tags[t], it->tags[u]) && !strstr(it->reasons, "tag"))
						add_reason(it, "tag");
		}
		start = end;
	}
	free(v);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int kbv_retention_group(struct kbv_reader *rd, struct kbv_snapshot *s, char **out)
{
	size_t n = s->nsources, cap = 64 + strlen(s->host);
	char **names = NULL;
	int rc = n ? 0 : kbv_snapshot_load_entries(rd, s);
	if (rc < 0)
		return rc;
	size_t total = n ? n : s->nloaded;
	names = calloc(total + 1, sizeof *names);
	if (!names)
		return kbv_error(KBV_ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < total; i++) {
		const char *nm = n ? s->sources[i].name : s->entries[i].name;
		size_t len = strcspn(nm, "/");
		int dup = 0;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strlen(names[j]) == len && !strncmp(names[j], nm, len);
		if (!dup) {
			names[k] = strndup(nm, len);
			cap += len + 1;
			k++;
		}
	}
	qsort(names, k, sizeof *names, cmp_str);
	char *g = malloc(cap);
	if (g) {
		size_t off = (size_t)snprintf(g, cap, "%s %s:", s->host, n ? "sources" : "streams");
		for (size_t j = 0; j < k && off < cap; j++)
			off += (size_t)snprintf(g + off, cap - off, "%s%s", j ? "," : "", names[j] ? names[j] : "");
	}
	for (size_t j = 0; j < k; j++)
		free(names[j]);
	free(names);
	*out = g;
	return g ? 0 : kbv_error(KBV_ENOMEM, "out of memory");
}
