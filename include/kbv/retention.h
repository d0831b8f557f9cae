/* Retention policy (pure: no I/O): which snapshots a keep-policy keeps, with reasons.
 *
 * Semantics follow restic's `forget`: snapshots are considered newest first, per group
 * (a set of snapshots of the same sources); keep-last N keeps the N newest; keep-hourly,
 * -daily, -weekly (ISO 8601 weeks), -monthly and -yearly N keep the newest snapshot of each
 * of the N most recent calendar buckets that hold a snapshot (empty buckets are not
 * counted); keep-within D keeps every snapshot no older than the group's newest minus D;
 * keep-tag keeps every snapshot with one of the tags. Policies combine as a union. Buckets
 * use the snapshot's local time as recorded (its own UTC offset), so a DST change never
 * moves a snapshot into another day. */
#ifndef KBV_RETENTION_H
#define KBV_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct kbv_duration {
	int years, months, days, hours;
};

struct kbv_policy {
	int last, hourly, daily, weekly, monthly, yearly;
	struct kbv_duration within; /* all zero: no keep-within */
	const char *const *tags;
	size_t ntags;
};

struct kbv_retention_item {
	/* in */
	int64_t time;      /* seconds since the epoch, UTC */
	uint32_t nsec;
	int32_t tzoff;     /* the snapshot's UTC offset, seconds */
	const char *group; /* snapshots of the same group compete */
	const char *const *tags;
	size_t ntags;
	/* out */
	int keep;
	char reasons[64]; /* "last, daily, monthly", empty when not kept */
};

/* Does the policy keep anything at all? A policy that keeps nothing is a usage error for
 * its callers, never "delete everything". */
int kbv_policy_is_empty(const struct kbv_policy *p);

/* Parse a duration such as "2d", "36h", "1y6m", "1y2m3d4h" (years, months, days, hours).
 * Returns 0 or KBV_EINVAL. */
int kbv_duration_parse(const char *s, struct kbv_duration *d);

/* Decide keep/reasons for every item (any order). Returns 0 or KBV_ENOMEM. */
int kbv_retention_apply(const struct kbv_policy *p, struct kbv_retention_item *items, size_t n);

struct kbv_reader;
struct kbv_snapshot;
/* The retention group of s, into *out (malloc()ed, the caller's): snapshots compete for
 * retention within a group, the same host and the same sources ("HOST sources:a,b"), or,
 * for ad-hoc snapshots, the same top-level stream names ("HOST streams:x,y"; entries are
 * loaded through rd when needed). */
int kbv_retention_group(struct kbv_reader *rd, struct kbv_snapshot *s, char **out);

#endif
