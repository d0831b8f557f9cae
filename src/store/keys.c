/* Key objects (format/keyfile.md): `key` from init (version 1) and keys/<keyid> from
 * `key add` (version 2, with who made it and when), each wrapping the same master key
 * material with its own password. Making, checking and unwrapping one; reading all of a
 * repository's; adding and removing them. */
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "kbv/keys.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <xxhash.h>

#define KEY_HEADER 92
#define KEY_MATERIAL 96
#define KEY_META_MAX 4096

static int derive(uint8_t out[32], const char *pw, size_t pwlen, const uint8_t salt[16], uint64_t ops, uint64_t mem)
{
	if (crypto_pwhash(out, 32, pw, pwlen, salt, ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return kbv_error(KBV_ENOMEM, "argon2id with %llu MiB failed (out of memory)",
				 (unsigned long long)(mem >> 20));
	return 0;
}

/* The associated data of a key file: its header, and for version 2 its metadata. */
static int key_ad(const uint8_t *k, const uint8_t *meta, size_t mlen, uint8_t **ad, size_t *adlen)
{
	*adlen = KEY_HEADER + mlen;
	*ad = malloc(*adlen);
	if (!*ad)
		return kbv_error(KBV_ENOMEM, "out of memory");
	memcpy(*ad, k, KEY_HEADER);
	if (mlen)
		memcpy(*ad + KEY_HEADER, meta, mlen);
	return 0;
}

int kbv_keyfile_make(const uint8_t repo_id[16], int encrypted, const struct kbv_keys *keys, const char *pw,
		     size_t pwlen, uint64_t ops, uint64_t mem, const char *meta, struct kbv_buf *out)
{
	size_t plen = encrypted ? KEY_MATERIAL + crypto_aead_xchacha20poly1305_ietf_ABYTES : KEY_MATERIAL;
	size_t mlen = meta ? strlen(meta) : 0, extra = meta ? 4 + mlen : 0;
	size_t len = KEY_HEADER + plen + extra + 8;
	uint8_t *ad = NULL;
	size_t adlen;
	int rc = 0;
	if (mlen > KEY_META_MAX)
		return kbv_error(KBV_EINVAL, "key metadata of %zu bytes (at most %d)", mlen, KEY_META_MAX);
	out->len = 0;
	TRY(kbv_buf_reserve(out, len));
	uint8_t *k = out->data;
	memset(k, 0, len);
	memcpy(k, "KBVKEY\0\0", 8);
	kbv_put32(k + 8, meta ? 2 : 1);
	kbv_put32(k + 12, encrypted ? 1 : 0);
	memcpy(k + 72, repo_id, 16);
	kbv_put32(k + 88, (uint32_t)plen);
	if (meta) {
		kbv_put32(k + KEY_HEADER + plen, (uint32_t)mlen);
		memcpy(k + KEY_HEADER + plen + 4, meta, mlen);
	}
	if (encrypted) {
		if (ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN)
			return kbv_error(KBV_EINVAL, "argon2id limits too small");
		kbv_put64(k + 16, ops);
		kbv_put64(k + 24, mem);
		randombytes_buf(k + 32, 16);
		randombytes_buf(k + 48, 24);
		uint8_t wk[32];
		TRY(derive(wk, pw, pwlen, k + 32, ops, mem));
		rc = key_ad(k, meta ? (const uint8_t *)meta : NULL, mlen, &ad, &adlen);
		if (rc == 0)
			crypto_aead_xchacha20poly1305_ietf_encrypt(k + KEY_HEADER, NULL, (const uint8_t *)keys,
								   KEY_MATERIAL, ad, adlen, NULL, k + 48, wk);
		sodium_memzero(wk, sizeof wk);
		TRY(rc);
	} else {
		memcpy(k + KEY_HEADER, keys, KEY_MATERIAL);
	}
	kbv_put64(k + len - 8, XXH3_64bits(k, len - 8));
	out->len = len;
out:
	free(ad);
	return rc;
}

/* The metadata of a sound key file k (NULL and 0 for version 1). */
static const uint8_t *key_meta(const uint8_t *k, size_t *mlen)
{
	uint32_t plen = kbv_get32(k + 88);
	if (kbv_get32(k + 8) != 2) {
		*mlen = 0;
		return NULL;
	}
	*mlen = kbv_get32(k + KEY_HEADER + plen);
	return k + KEY_HEADER + plen + 4;
}

int kbv_keyfile_check(const uint8_t *k, size_t len, const char *what, const struct kbv_repo *r)
{
	if (len < KEY_HEADER + 8 || memcmp(k, "KBVKEY\0\0", 8) != 0)
		return kbv_error(KBV_ECORRUPT, "key file '%s' is damaged (bad magic or truncated)", what);
	uint32_t ver = kbv_get32(k + 8);
	if (ver != 1 && ver != 2)
		return kbv_error(KBV_EVERSION, "key file '%s' has version %u; this kbvault reads versions 1 and 2", what,
				 ver);
	uint32_t kdf = kbv_get32(k + 12), plen = kbv_get32(k + 88);
	size_t want = kdf ? KEY_MATERIAL + crypto_aead_xchacha20poly1305_ietf_ABYTES : KEY_MATERIAL;
	size_t body = KEY_HEADER + (size_t)plen;
	if (kdf > 1 || plen != want || len < body + 8)
		return kbv_error(KBV_ECORRUPT, "key file '%s' is damaged (checksum mismatch)", what);
	if (ver == 2) {
		if (len < body + 4 + 8 || kbv_get32(k + body) > KEY_META_MAX)
			return kbv_error(KBV_ECORRUPT, "key file '%s' is damaged (metadata length)", what);
		body += 4 + kbv_get32(k + body);
	}
	if (len != body + 8 || kbv_get64(k + body) != XXH3_64bits(k, body))
		return kbv_error(KBV_ECORRUPT, "key file '%s' is damaged (checksum mismatch)", what);
	if ((kdf == 1) != (r->encrypted == 1) || memcmp(k + 72, r->repo_id, 16) != 0)
		return kbv_error(KBV_ECORRUPT, "key file '%s' does not belong to this repository's config", what);
	return 0;
}

int kbv_keyfile_unwrap(const uint8_t *k, const char *pw, size_t pwlen, struct kbv_keys *keys)
{
	if (kbv_get32(k + 12) == 0) {
		memcpy(keys, k + KEY_HEADER, KEY_MATERIAL);
		return 0;
	}
	uint8_t wk[32], *ad = NULL;
	size_t mlen, adlen;
	int rc = 0;
	const uint8_t *meta = key_meta(k, &mlen);
	TRY(key_ad(k, meta, mlen, &ad, &adlen));
	TRY(derive(wk, pw, pwlen, k + 32, kbv_get64(k + 16), kbv_get64(k + 24)));
	int bad = crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)keys, NULL, NULL, k + KEY_HEADER,
							     KEY_MATERIAL + crypto_aead_xchacha20poly1305_ietf_ABYTES, ad,
							     adlen, k + 48, wk);
	sodium_memzero(wk, sizeof wk);
	if (bad)
		rc = KBV_EAUTH;
out:
	free(ad);
	return rc;
}

struct gather {
	struct kbv_repo *r;
	int rc;
};

static int on_key(void *arg, const char *name, uint64_t size, int64_t mtime)
{
	struct gather *g = arg;
	struct kbv_repo *r = g->r;
	(void)size;
	(void)mtime;
	struct kbv_keyobj *ko = realloc(r->keyobjs, (r->nkeyobjs + 1) * sizeof *ko);
	if (!ko)
		return kbv_error(KBV_ENOMEM, "out of memory");
	r->keyobjs = ko;
	ko = &r->keyobjs[r->nkeyobjs++];
	memset(ko, 0, sizeof *ko);
	snprintf(ko->name, sizeof ko->name, "%s", name);
	return 0;
}

int kbv_repo_list_keys(struct kbv_repo *r)
{
	struct gather g = { r, 0 };
	int rc = kbv_be_list(r->be, KBV_OBJ_KEY, on_key, &g);
	if (rc < 0)
		return rc;
	/* `key` first: the one every repository has, tried first. */
	for (size_t i = 1; i < r->nkeyobjs; i++)
		if (!r->keyobjs[i].name[0]) {
			struct kbv_keyobj t = r->keyobjs[0];
			r->keyobjs[0] = r->keyobjs[i];
			r->keyobjs[i] = t;
		}
	return 0;
}

int kbv_repo_read_keys(struct kbv_repo *r)
{
	char what[1024];
	int rc = 0, sound = 0, first_bad = 0;
	if (r->nkeyobjs == 0) {
		kbv_be_describe(r->be, KBV_OBJ_KEY, "", what, sizeof what);
		return kbv_error(KBV_ECORRUPT, "key file '%s' is missing", what);
	}
	for (size_t i = 0; i < r->nkeyobjs; i++) {
		struct kbv_keyobj *ko = &r->keyobjs[i];
		kbv_be_describe(r->be, KBV_OBJ_KEY, ko->name, what, sizeof what);
		rc = kbv_be_get(r->be, KBV_OBJ_KEY, ko->name, &ko->data);
		if (rc == 0)
			rc = kbv_keyfile_check(ko->data.data, ko->data.len, what, r);
		if (rc == KBV_ENOTFOUND) /* removed since the listing */
			rc = 0, ko->damaged = 1;
		else if (rc == KBV_ECORRUPT || rc == KBV_EVERSION) {
			ko->damaged = 1;
			snprintf(ko->why, sizeof ko->why, "%s", kbv_errmsg());
			if (!first_bad)
				first_bad = rc;
		} else if (rc < 0) {
			return rc;
		} else {
			sound++;
		}
	}
	rc = 0;
	if (!sound) {
		/* Say what is wrong with the first damaged one. */
		for (size_t i = 0; i < r->nkeyobjs; i++)
			if (r->keyobjs[i].why[0])
				return kbv_error(first_bad, "%s", r->keyobjs[i].why);
		kbv_be_describe(r->be, KBV_OBJ_KEY, "", what, sizeof what);
		return kbv_error(KBV_ECORRUPT, "key file '%s' is missing", what);
	}
	return rc;
}

void kbv_repo_free_keys(struct kbv_repo *r)
{
	for (size_t i = 0; i < r->nkeyobjs; i++) {
		if (r->keyobjs[i].data.data)
			sodium_memzero(r->keyobjs[i].data.data, r->keyobjs[i].data.len);
		kbv_buf_release(&r->keyobjs[i].data);
	}
	free(r->keyobjs);
	r->keyobjs = NULL;
	r->nkeyobjs = 0;
}

const struct kbv_keyobj *kbv_repo_first_key(const struct kbv_repo *r)
{
	for (size_t i = 0; i < r->nkeyobjs; i++)
		if (!r->keyobjs[i].damaged)
			return &r->keyobjs[i];
	return NULL;
}

/* ---- the derived-key cache (format/keyfile.md, "Derived-key cache") ---- */

static int kdf_cache_on;

void kbv_repo_kdf_cache(int on)
{
	kdf_cache_on = on;
}

#define KDF_CACHE_MAGIC "KBVKDFC1"
#define KDF_CACHE_LEN (8 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + 32 + crypto_aead_xchacha20poly1305_ietf_ABYTES)

/* The cache file of key file k: <cache>/kdf-<hex of BLAKE2b-128(salt, ops, mem)>, and the
 * key that seals it: BLAKE2b-256 keyed by the password of "kbvault-kdf-cache", salt, ops,
 * mem. Without the password the file is useless; with it, it saves one Argon2id. */
static int kdf_cache_names(const struct kbv_repo *r, const uint8_t *k, const char *pw, size_t pwlen, char *path,
			   size_t cap, uint8_t seal[32])
{
	uint8_t params[32], h[16];
	char hex[33];
	int rc = 0;
	if (!r->cache_path)
		return kbv_error(KBV_EINVAL, "no cache directory");
	memcpy(params, k + 32, 16);          /* salt */
	memcpy(params + 16, k + 16, 16);     /* ops, mem */
	crypto_generichash(h, sizeof h, params, sizeof params, NULL, 0);
	kbv_hex(h, sizeof h, hex);
	TRY(kbv_path(path, cap, "%s/kdf-%s", r->cache_path, hex));
	crypto_generichash_state st;
	uint8_t pk[crypto_generichash_KEYBYTES_MAX];
	/* the password as a BLAKE2b key: hashed down first when longer than a key may be */
	crypto_generichash(pk, sizeof pk, (const uint8_t *)pw, pwlen, NULL, 0);
	crypto_generichash_init(&st, pk, sizeof pk, 32);
	crypto_generichash_update(&st, (const uint8_t *)"kbvault-kdf-cache", 17);
	crypto_generichash_update(&st, params, sizeof params);
	crypto_generichash_final(&st, seal, 32);
	sodium_memzero(pk, sizeof pk);
out:
	return rc;
}

/* The Argon2id result of pw for key file k from the cache: 0 and wk, or -1 (none, stale, or
 * sealed with another password). */
static int kdf_cache_get(const struct kbv_repo *r, const uint8_t *k, const char *pw, size_t pwlen, uint8_t wk[32])
{
	char path[PATH_MAX];
	uint8_t seal[32], buf[KDF_CACHE_LEN + 1];
	if (kdf_cache_names(r, k, pw, pwlen, path, sizeof path, seal) < 0)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), ok = -1;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
	if (fd >= 0)
		close(fd);
	if (n == KDF_CACHE_LEN && !memcmp(buf, KDF_CACHE_MAGIC, 8))
		ok = crypto_aead_xchacha20poly1305_ietf_decrypt(
			     wk, NULL, NULL, buf + 8 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
			     32 + crypto_aead_xchacha20poly1305_ietf_ABYTES, (const uint8_t *)path, strlen(path), buf + 8,
			     seal) == 0
			     ? 0
			     : -1;
	sodium_memzero(seal, sizeof seal);
	return ok;
}

/* Keep wk for the next run (best effort: a cache that cannot be written costs only time). */
static void kdf_cache_put(const struct kbv_repo *r, const uint8_t *k, const char *pw, size_t pwlen, const uint8_t wk[32])
{
	char path[PATH_MAX], dir[PATH_MAX];
	uint8_t seal[32], buf[KDF_CACHE_LEN];
	if (kdf_cache_names(r, k, pw, pwlen, path, sizeof path, seal) < 0)
		return;
	memcpy(buf, KDF_CACHE_MAGIC, 8);
	randombytes_buf(buf + 8, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(buf + 8 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, wk, 32,
						   (const uint8_t *)path, strlen(path), NULL, buf + 8, seal);
	sodium_memzero(seal, sizeof seal);
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = 0;
	if (kbv_mkdir_parents(dir) == 0 && kbv_mkdir(dir, NULL) == 0)
		(void)kbv_write_replace(path, buf, sizeof buf, 0600);
}

/* kbv_keyfile_unwrap(), with the derived-key cache when it is on. */
static int unwrap_cached(struct kbv_repo *r, const uint8_t *k, const char *pw, size_t pwlen, struct kbv_keys *keys)
{
	uint8_t wk[32], *ad = NULL;
	size_t mlen, adlen;
	int rc = 0, cached = 0;
	if (!kdf_cache_on || kbv_get32(k + 12) == 0)
		return kbv_keyfile_unwrap(k, pw, pwlen, keys);
	const uint8_t *meta = key_meta(k, &mlen);
	TRY(key_ad(k, meta, mlen, &ad, &adlen));
	cached = kdf_cache_get(r, k, pw, pwlen, wk) == 0;
	if (!cached)
		TRY(derive(wk, pw, pwlen, k + 32, kbv_get64(k + 16), kbv_get64(k + 24)));
	int bad = crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)keys, NULL, NULL, k + KEY_HEADER,
							     KEY_MATERIAL + crypto_aead_xchacha20poly1305_ietf_ABYTES, ad,
							     adlen, k + 48, wk);
	if (bad && cached) {
		free(ad);
		sodium_memzero(wk, sizeof wk);
		return kbv_keyfile_unwrap(k, pw, pwlen, keys); /* a stale entry: the slow way */
	}
	if (!bad && !cached)
		kdf_cache_put(r, k, pw, pwlen, wk);
	rc = bad ? KBV_EAUTH : 0;
out:
	sodium_memzero(wk, sizeof wk);
	free(ad);
	return rc;
}

int kbv_repo_try_keys(struct kbv_repo *r, const char *pw, size_t pwlen)
{
	for (size_t i = 0; i < r->nkeyobjs; i++) {
		struct kbv_keyobj *ko = &r->keyobjs[i];
		if (ko->damaged)
			continue;
		int rc = unwrap_cached(r, ko->data.data, pw, pwlen, r->keys);
		if (rc == 0) {
			r->key_used = (int)i;
			return 0;
		}
		if (rc != KBV_EAUTH)
			return rc;
	}
	return KBV_EAUTH;
}

/* A string member of j, or "". */
static const char *jstr(const json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	return v ? v : "";
}

int kbv_key_list(const struct kbv_repo *r, struct kbv_key_info **out, size_t *n)
{
	struct kbv_key_info *v = calloc(r->nkeyobjs ? r->nkeyobjs : 1, sizeof *v);
	if (!v)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (size_t i = 0; i < r->nkeyobjs; i++) {
		const struct kbv_keyobj *ko = &r->keyobjs[i];
		struct kbv_key_info *ki = &v[i];
		snprintf(ki->id, sizeof ki->id, "%s", ko->name[0] ? ko->name : "key");
		ki->in_use = r->keys && r->key_used == (int)i;
		ki->damaged = ko->damaged;
		if (ko->damaged)
			continue;
		const uint8_t *k = ko->data.data;
		ki->version = (int)kbv_get32(k + 8);
		ki->kdf_mem = kbv_get64(k + 24);
		size_t mlen;
		const uint8_t *meta = key_meta(k, &mlen);
		json_t *j = meta ? json_loadb((const char *)meta, mlen, 0, NULL) : NULL;
		snprintf(ki->host, sizeof ki->host, "%s", jstr(j, "host"));
		snprintf(ki->user, sizeof ki->user, "%s", jstr(j, "user"));
		snprintf(ki->created, sizeof ki->created, "%s", jstr(j, "created"));
		json_decref(j);
	}
	*out = v;
	*n = r->nkeyobjs;
	return 0;
}

int kbv_key_add(struct kbv_repo *r, const char *pw, size_t pwlen, const char *host, const char *user, char id[33])
{
	const struct kbv_keyobj *used;
	struct kbv_buf kf = KBV_BUF_INIT;
	uint8_t rnd[16];
	char created[40];
	int rc = 0;
	if (!r->keys)
		return kbv_error(KBV_EINVAL, "the repository must be unlocked to add a key");
	used = r->key_used >= 0 ? &r->keyobjs[r->key_used] : kbv_repo_first_key(r);
	if (!used)
		return kbv_error(KBV_EINVAL, "the repository has no sound key to take the Argon2id cost from");
	const uint8_t *k = used->data.data;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *j = json_pack("{s:s, s:s, s:s}", "host", host ? host : "", "user", user ? user : "", "created", created);
	char *meta = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!meta)
		return kbv_error(KBV_ENOMEM, "out of memory");
	/* The new key costs what the one in use costs to derive. */
	uint64_t ops = r->encrypted ? kbv_get64(k + 16) : 0, mem = r->encrypted ? kbv_get64(k + 24) : 0;
	TRY(kbv_keyfile_make(r->repo_id, r->encrypted, r->keys, pw, pwlen, ops, mem, meta, &kf));
	randombytes_buf(rnd, sizeof rnd);
	kbv_hex(rnd, sizeof rnd, id);
	TRY(kbv_be_put(r->be, KBV_OBJ_KEY, id, kf.data, kf.len, KBV_PUT_EXCL));
	/* This handle knows it from now on (key passwd removes the old one next). */
	struct kbv_keyobj *ko = realloc(r->keyobjs, (r->nkeyobjs + 1) * sizeof *ko);
	if (!ko) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	r->keyobjs = ko;
	ko = &r->keyobjs[r->nkeyobjs++];
	memset(ko, 0, sizeof *ko);
	snprintf(ko->name, sizeof ko->name, "%s", id);
	ko->data = kf;
	kf = (struct kbv_buf)KBV_BUF_INIT;
out:
	free(meta);
	if (kf.data)
		sodium_memzero(kf.data, kf.len);
	kbv_buf_release(&kf);
	return rc;
}

int kbv_key_remove(struct kbv_repo *r, const char *id, int force)
{
	size_t sound = 0;
	int which = -1;
	const char *name = strcmp(id, "key") ? id : "";
	for (size_t i = 0; i < r->nkeyobjs; i++) {
		if (!r->keyobjs[i].damaged)
			sound++;
		if (!strcmp(r->keyobjs[i].name, name))
			which = (int)i;
	}
	if (which < 0)
		return kbv_error(KBV_ENOTFOUND, "no key '%s' (kbvault key list shows them)", id);
	if (!r->keyobjs[which].damaged && sound <= 1)
		return kbv_error(KBV_EINVAL, "key '%s' is the repository's last key: removing it would lock everyone "
					     "out; add another first (kbvault key add)",
				 id);
	if (which == r->key_used && r->keys && !force)
		return kbv_error(KBV_EINVAL, "key '%s' is the one this command opened the repository with; give --force "
					     "to remove it anyway (kbvault key passwd replaces it safely)",
				 id);
	char what[96];
	snprintf(what, sizeof what, "key '%s' (its password opens the repository until then)", id);
	int rc = kbv_repo_refuse_retained(r, KBV_OBJ_KEY, name, what);
	if (rc == 0)
		rc = kbv_be_remove(r->be, KBV_OBJ_KEY, name);
	if (rc < 0)
		return rc;
	struct kbv_keyobj gone = r->keyobjs[which];
	memmove(&r->keyobjs[which], &r->keyobjs[which + 1], (r->nkeyobjs - (size_t)which - 1) * sizeof gone);
	r->nkeyobjs--;
	if (r->key_used == which)
		r->key_used = -1; /* the master keys stay unlocked; no key object is "in use" now */
	else if (r->key_used > which)
		r->key_used--;
	if (gone.data.data)
		sodium_memzero(gone.data.data, gone.data.len);
	kbv_buf_release(&gone.data);
	return 0;
}
