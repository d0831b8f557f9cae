/* The inside of a storage backend: what an implementation fills in (include/kbv/backend.h
 * is what the rest of kbvault calls). Each implementation embeds struct kbv_backend,
 * struct kbv_be_wr and struct kbv_be_rd as the first member of its own structs. */
#ifndef KBV_BACKEND_IMPL_H
#define KBV_BACKEND_IMPL_H

#include "kbv/backend.h"

struct kbv_backend_ops {
	const char *name;
	int (*create)(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_wr **out);
	int (*append)(struct kbv_be_wr *w, const void *p, size_t n);
	int (*commit)(struct kbv_be_wr *w, unsigned flags);
	void (*discard)(struct kbv_be_wr *w);
	int (*sync)(struct kbv_backend *be); /* optional: for KBV_COMMIT_ASYNC */
	int (*open)(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_be_rd **out,
		    uint64_t *size);
	/* optional: open an object whose size the caller knows (from the index): object
	 * storage then sends no HEAD, and a missing object is found at the first read */
	int (*open_known)(struct kbv_backend *be, enum kbv_obj kind, const char *name, uint64_t size,
			  struct kbv_be_rd **out);
	int (*read)(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off);
	/* optional: kbv_be_read_once (else read) */
	int (*read_once)(struct kbv_be_rd *rd, void *p, size_t n, uint64_t off);
	void (*close)(struct kbv_be_rd *rd);
	/* optional: kbv_be_read_then (else nothing) */
	void (*read_then)(struct kbv_be_rd *rd, enum kbv_obj kind, const char *name, uint64_t size);
	/* optional: a whole object in one request (object storage: one GET, not HEAD + GET);
	 * else open, read and close */
	int (*get)(struct kbv_backend *be, enum kbv_obj kind, const char *name, struct kbv_buf *out);
	int (*list)(struct kbv_backend *be, enum kbv_obj kind, kbv_be_list_fn fn, void *arg);
	int (*remove)(struct kbv_backend *be, enum kbv_obj kind, const char *name);
	/* optional: several at once (names checked by the caller); else one by one */
	int (*remove_many)(struct kbv_backend *be, enum kbv_obj kind, const char *const *names, size_t n);
	int (*clock)(struct kbv_backend *be, int64_t *now);
	/* optional (object storage with Object Lock): see kbv_be_set_retention() and after */
	int (*set_retention)(struct kbv_backend *be, int64_t seconds);
	int (*retention)(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until);
	int (*extend)(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until);
	void (*describe)(struct kbv_backend *be, enum kbv_obj kind, const char *name, char *out, size_t cap);
	void (*free)(struct kbv_backend *be);
};

struct kbv_backend {
	const struct kbv_backend_ops *ops;
	unsigned features;
	const char *root;  /* KBV_BE_LOCAL: the directory */
	unsigned parallel; /* transfers worth running at once (0: one) */
	/* backend.c's alone, under its mutex (kbv_be_list_ahead): the listing kept of each kind,
	 * and whether this backend began a write or a removal since they were made */
	struct kbv_be_ahead *ahead[KBV_OBJ_KINDS];
	int changed;
	/* the same: objects of each kind's kept listing fetched ahead (kbv_be_get_listed_ahead) */
	struct kbv_be_kept *kept[KBV_OBJ_KINDS];
};

struct kbv_be_wr {
	struct kbv_backend *be;
};

struct kbv_be_rd {
	struct kbv_backend *be;
};

#endif
