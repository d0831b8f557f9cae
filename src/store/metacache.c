/* The metadata cache of a repository on object storage (metacache.h). Files
 * CACHE/meta/<kind>/<64 hex id>, written to a temporary name and renamed (no fsync: a
 * file lost or torn by a crash fails authentication and is simply absent). */
#include "store/metacache.h"
#include "kbv/backend.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/repo_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "KBVMETA\0"
#define HEADER 16 /* magic, u32 version, u32 kind */
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define MAX_PLAIN (64u << 20)

static const char *const kind_dir[KBV_META_KINDS] = { "manifests", "entries", "trees", "plans", "records" };

int kbv_meta_on(const struct kbv_repo *r)
{
	return r->keys && !r->meta_off && !(kbv_backend_features(r->be) & KBV_BE_LOCAL);
}

void kbv_meta_bypass(struct kbv_repo *r) { r->meta_off = 1; }

void kbv_meta_local_key(const struct kbv_keys *keys, const char *label, uint8_t key[32])
{
	crypto_generichash_blake2b_state st;
	crypto_generichash_blake2b_init(&st, keys->id, sizeof keys->id, 32);
	crypto_generichash_blake2b_update(&st, (const uint8_t *)label, strlen(label) + 1);
	crypto_generichash_blake2b_update(&st, keys->enc, sizeof keys->enc);
	crypto_generichash_blake2b_final(&st, key, 32);
}

/* The cache key: only a holder of the master keys can write an entry this host accepts. */
static void cache_key(const struct kbv_keys *keys, uint8_t key[32])
{
	kbv_meta_local_key(keys, "kbvault metadata cache v1", key);
}

static void header(uint8_t h[HEADER], int kind)
{
	memcpy(h, MAGIC, 8);
	kbv_put32(h + 8, 1);
	kbv_put32(h + 12, (uint32_t)kind);
}

/* Associated data: the header and the id, so an entry cannot pass for another. */
static void assoc(uint8_t ad[HEADER + KBV_ID_BYTES], int kind, const uint8_t id[KBV_ID_BYTES])
{
	header(ad, kind);
	memcpy(ad + HEADER, id, KBV_ID_BYTES);
}

int kbv_meta_seal(const struct kbv_keys *keys, int kind, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n,
		  struct kbv_buf *file)
{
	uint8_t key[32], ad[HEADER + KBV_ID_BYTES];
	int rc = 0;
	if (kind < 0 || kind >= KBV_META_KINDS || n > MAX_PLAIN)
		return kbv_error(KBV_EINVAL, "metadata cache: kind %d, %zu bytes", kind, n);
	file->len = 0;
	TRY(kbv_buf_reserve(file, HEADER + NONCE + n + TAG));
	assoc(ad, kind, id);
	memcpy(file->data, ad, HEADER);
	randombytes_buf(file->data + HEADER, NONCE);
	cache_key(keys, key);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(file->data + HEADER + NONCE, &clen, p, n, ad, sizeof ad, NULL,
						   file->data + HEADER, key);
	file->len = HEADER + NONCE + (size_t)clen;
out:
	sodium_memzero(key, sizeof key);
	return rc;
}

int kbv_meta_open(const struct kbv_keys *keys, int kind, const uint8_t id[KBV_ID_BYTES], const uint8_t *file,
		  size_t len, struct kbv_buf *plain)
{
	uint8_t key[32], ad[HEADER + KBV_ID_BYTES];
	int rc = 0;
	assoc(ad, kind, id);
	if (len < HEADER + NONCE + TAG || len - (HEADER + NONCE + TAG) > MAX_PLAIN || memcmp(file, ad, HEADER) != 0)
		return kbv_error(KBV_ECORRUPT, "metadata cache entry: bad header or size");
	plain->len = 0;
	TRY(kbv_buf_reserve(plain, len - HEADER - NONCE - TAG));
	cache_key(keys, key);
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain->data, &mlen, NULL, file + HEADER + NONCE,
						       len - HEADER - NONCE, ad, sizeof ad, file + HEADER, key) != 0)
		rc = kbv_error(KBV_ECORRUPT, "metadata cache entry: not authentic");
	else
		plain->len = (size_t)mlen;
out:
	sodium_memzero(key, sizeof key);
	return rc;
}

static int entry_path(const struct kbv_repo *r, int kind, const uint8_t *id, char *out, size_t cap)
{
	char hex[2 * KBV_ID_BYTES + 1] = "";
	if (id)
		kbv_hex(id, KBV_ID_BYTES, hex);
	return kbv_path(out, cap, "%s/meta/%s%s%s", r->local, kind_dir[kind], id ? "/" : "", hex);
}

int kbv_meta_listed_add(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct kbv_meta_listed l = { .size = size };
	(void)mtime;
	return kbv_unhex(name, l.id, KBV_ID_BYTES) < 0 ? 0 : kbv_buf_add(arg, &l, sizeof l);
}

static int cmp_listed(const void *a, const void *b) { return memcmp(a, b, KBV_ID_BYTES); }

void kbv_meta_listed_sort(struct kbv_buf *l)
{
	if (l->len)
		qsort(l->data, l->len / sizeof(struct kbv_meta_listed), sizeof(struct kbv_meta_listed), cmp_listed);
}

int kbv_meta_listed_has(void *arg, const uint8_t id[KBV_ID_BYTES])
{
	const struct kbv_buf *l = arg;
	return l->len && bsearch(id, l->data, l->len / sizeof(struct kbv_meta_listed), sizeof(struct kbv_meta_listed),
				 cmp_listed) != NULL;
}

int kbv_meta_holds(const struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	return kbv_meta_on(r) && entry_path(r, kind, id, path, sizeof path) == 0 && stat(path, &st) == 0 &&
	       (uint64_t)st.st_size == HEADER + NONCE + size + TAG;
}

static int meta_wants(void *arg, const struct kbv_meta_listed *l)
{
	const struct kbv_meta_ahead *m = arg;
	return !kbv_meta_holds(m->r, m->kind, l->id, l->size);
}

void kbv_meta_ahead_init(struct kbv_meta_ahead *m, struct kbv_repo *r, int kind, enum kbv_obj obj)
{
	kbv_ahead_init(&m->a, r->be, obj, KBV_META_AHEAD, 0, meta_wants, m);
	m->r = r;
	m->kind = kind;
}

int kbv_meta_get(struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], struct kbv_buf *plain)
{
	char path[PATH_MAX];
	struct kbv_buf file = KBV_BUF_INIT;
	int rc;
	if (!kbv_meta_on(r) || entry_path(r, kind, id, path, sizeof path) < 0)
		return 0;
	if ((rc = kbv_read_file(path, &file)) < 0) {
		kbv_buf_release(&file);
		return rc == KBV_ENOMEM ? rc : 0; /* absent, or unreadable: a miss either way */
	}
	rc = kbv_meta_open(r->keys, kind, id, file.data, file.len, plain);
	kbv_buf_release(&file);
	if (rc == KBV_ENOMEM)
		return rc;
	if (rc < 0) {
		unlink(path); /* damaged: the caller reads the bucket and puts it again */
		return 0;
	}
	return 1;
}

void kbv_meta_put(struct kbv_repo *r, int kind, const uint8_t id[KBV_ID_BYTES], const void *p, size_t n)
{
	static atomic_uint seq;
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	struct kbv_buf file = KBV_BUF_INIT;
	if (!kbv_meta_on(r) || entry_path(r, kind, id, path, sizeof path) < 0 ||
	    kbv_meta_seal(r->keys, kind, id, p, n, &file) < 0)
		goto out;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && kbv_mkdir_parents(tmp) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	int ok = kbv_write_full(fd, file.data, file.len, tmp) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
out:
	kbv_buf_release(&file);
}

size_t kbv_meta_retain(struct kbv_repo *r, int kind, int (*keep)(void *arg, const uint8_t id[KBV_ID_BYTES]),
		       void *arg)
{
	char dir[PATH_MAX];
	size_t removed = 0;
	if (!kbv_meta_on(r) || entry_path(r, kind, NULL, dir, sizeof dir) < 0)
		return 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		uint8_t id[KBV_ID_BYTES];
		if (de->d_name[0] == '.')
			continue;
		int valid = strlen(de->d_name) == 2 * KBV_ID_BYTES && kbv_unhex(de->d_name, id, sizeof id) == 0;
		if ((!valid || !keep(arg, id)) && unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	if (d)
		closedir(d);
	return removed;
}
