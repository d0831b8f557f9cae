/* gc's deletion plans (format/repository.md, "Many writers and gc"): objects
 * `plans/<id>` that name packs gc found unneeded, deleted only by a later look once the
 * plan's delay has passed on the storage's clock. gc writes, reads and removes them;
 * writers read them so that they never lean on a pack a plan names, and check before
 * they commit that no plan appeared too long ago for them. */
#ifndef KBV_STORE_PLAN_H
#define KBV_STORE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/blob.h"
#include "kbv/buf.h"
#include "store/index.h"
#include "store/repo_impl.h"

/* How long a plan outlives its ripeness, and the longest a writer may run (seconds, on the
 * storage's clock): every plan written after a writer started is still listed when it
 * commits (format/repository.md). */
#define KBV_PLAN_KEEP (7 * 86400)

struct kbv_plan {
	uint8_t id[KBV_ID_BYTES]; /* its name */
	int64_t time;             /* its LastModified on the storage's clock */
	uint32_t delay;           /* seconds after `time` before its packs may go */
	size_t npacks;
	uint8_t (*packs)[KBV_PACKID_BYTES];
	uint64_t *sizes;
};

/* Every readable plan of a repository and the storage's clock when they were listed. */
struct kbv_plans {
	int64_t now;
	struct kbv_plan *v;
	size_t n;
	uint64_t damaged;         /* plans skipped: they do not authenticate (named below) */
	char damaged_name[65];
	uint64_t gone;            /* plans listed but removed (by gc) before they were read */
	uint64_t unknown;         /* plans of another version: writers and gc refuse to go on */
	char unknown_name[65];
	uint8_t (*all)[KBV_PACKID_BYTES]; /* every pack some plan names, sorted */
	size_t nall;
};

/* Seal a plan body as a plan file: *name (65 bytes) its name, `file` its bytes. Pure but
 * for the keys in `codec`. */
int kbv_plan_seal(const struct kbv_repo *r, struct kbv_codec *codec, uint32_t delay,
		  const uint8_t (*packs)[KBV_PACKID_BYTES], const uint64_t *sizes, size_t n, char name[65],
		  struct kbv_buf *file);
/* Open a plan file named `name` into *p (its time left 0; free with kbv_plan_release).
 * KBV_ECORRUPT (damage, naming it) or KBV_EVERSION. */
int kbv_plan_open(const struct kbv_repo *r, struct kbv_codec *codec, const char *name, const uint8_t *file,
		  size_t len, struct kbv_plan *p);
/* Parse a decoded plan body into p's delay and packs (free with kbv_plan_release). Pure;
 * KBV_ECORRUPT naming `what` when its length does not match its pack count. */
int kbv_plan_parse(const uint8_t *body, size_t len, const char *what, struct kbv_plan *p);
void kbv_plan_release(struct kbv_plan *p);

/* The plans as listed, and the storage's clock read right after the listing. */
struct kbv_plans_listed {
	struct kbv_buf b; /* of a struct private to plan.c, one per plan */
	size_t n;
	int64_t now;
};

/* The first half of kbv_plans_read, which needs no key: list `plans/` into *l (release
 * with kbv_plans_listed_release, or hand it to kbv_plans_read_listed). A repository on
 * object storage lists them beside the key's derivation (repo.c). */
int kbv_plans_list(struct kbv_repo *r, struct kbv_plans_listed *l);
void kbv_plans_listed_release(struct kbv_plans_listed *l);
/* The second half: read every plan `l` names into *out; takes `l` over (it is empty after,
 * whatever the return). */
int kbv_plans_read_listed(struct kbv_repo *r, struct kbv_plans_listed *l, struct kbv_plans *out);

/* List `plans/`, read every plan (the clock read right after the listing). A plan that
 * does not authenticate is skipped and counted (gc does not act on it either); a plan of
 * another version is skipped and counted as unknown: a newer gc may act on it, so a
 * writer or gc must not go on (kbv_plans_usable), while readers may. */
int kbv_plans_read(struct kbv_repo *r, struct kbv_plans *out);
void kbv_plans_release(struct kbv_plans *p);
/* 0, or KBV_EVERSION naming a plan of another version. */
int kbv_plans_usable(const struct kbv_plans *p);
/* Does some plan of `p` name the pack? */
int kbv_plans_has(const struct kbv_plans *p, const uint8_t id[KBV_PACKID_BYTES]);
/* The index numbers of the packs some plan of `p` names, sorted, into *out (malloc()ed;
 * NULL when none). */
int kbv_plans_packnos(struct kbv_repo *r, const struct kbv_plans *p, uint32_t **out, size_t *n);
/* Is plan i ripe (its packs may be deleted now)? */
int kbv_plan_ripe(const struct kbv_plans *p, size_t i);

/* Write a plan (create-if-absent) naming n packs. */
int kbv_plan_put(struct kbv_repo *r, uint32_t delay, const uint8_t (*packs)[KBV_PACKID_BYTES],
		 const uint64_t *sizes, size_t n);
/* Remove plan objects. */
int kbv_plans_remove(struct kbv_repo *r, const uint8_t (*ids)[KBV_ID_BYTES], size_t n);

/* A writer's last look before its manifest's PUT (object storage; a no-op on a local
 * repository, whose gc holds the exclusive lock): list `plans/` again and refuse
 * (KBV_ELOCKED) when a plan not among `seen` appeared so long ago that half its delay has
 * passed on the storage's clock, or when KBV_PLAN_KEEP has passed since `seen` was
 * listed. */
int kbv_plans_check_commit(struct kbv_repo *r, const struct kbv_plans *seen);

#endif
