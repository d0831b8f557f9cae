#include "kbv/repo.h"
#include "kbv/backend.h"
#include "kbv/beside.h"
#include "kbv/error.h"
#include "kbv/fsio.h"
#include "store/cache.h"
#include "store/metacache.h"
#include "store/plan.h"
#include "store/repo_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define CONFIG_BYTES 60    /* version 1 */
#define CONFIG_BYTES_V2 64 /* version 2: a repository with Object Lock */
#define CONFIG_BYTES_V3 68 /* version 3: the id hash recorded */
#define MANIFESTS_AHEAD_BYTES (8u << 20) /* a new host's manifests fetched beside its derivation */
#define INDEXES_AHEAD_MOST 64             /* a new host's index objects fetched beside it too */
#define INDEXES_AHEAD_BYTES (16u << 20)

int kbv_repo_sub(const struct kbv_repo *r, const char *sub, char *out, size_t cap)
{
	return kbv_path(out, cap, "%s/%s", r->local ? r->local : r->path, sub);
}

/* Process-wide settings for repositories on object storage (kbv_repo_set_remote). */
static struct {
	char *access, *secret, *token, *region, *ca_file, *cache_dir;
	int connections;
	int set;
} remote;

static void forget_secret(char **p)
{
	if (*p) {
		sodium_memzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void remote_clear(void)
{
	forget_secret(&remote.access);
	forget_secret(&remote.secret);
	forget_secret(&remote.token);
	free(remote.region);
	free(remote.ca_file);
	free(remote.cache_dir);
	remote.region = remote.ca_file = remote.cache_dir = NULL;
}

static int dup_opt(char **dst, const char *v)
{
	*dst = NULL;
	return v && !(*dst = strdup(v)) ? -1 : 0;
}

int kbv_repo_set_remote(const struct kbv_s3_opts *s3, const char *cache_dir)
{
	if (!remote.set) {
		atexit(remote_clear);
		remote.set = 1;
	}
	remote_clear();
	if ((s3 && (dup_opt(&remote.access, s3->access_key) < 0 || dup_opt(&remote.secret, s3->secret_key) < 0 ||
		    dup_opt(&remote.token, s3->session_token) < 0 || dup_opt(&remote.region, s3->region) < 0 ||
		    dup_opt(&remote.ca_file, s3->ca_file) < 0)) ||
	    dup_opt(&remote.cache_dir, cache_dir) < 0) {
		remote_clear();
		return kbv_error(KBV_ENOMEM, "out of memory");
	}
	remote.connections = s3 ? s3->connections : 0;
	return 0;
}

/* <cache base>/<repository id>, where this host keeps what it caches of r (not created). */
static int cache_path(const struct kbv_repo *r, char *dir, size_t cap)
{
	char base[PATH_MAX], hex[33];
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int rc = 0;
	if (remote.cache_dir)
		TRY(kbv_path(base, sizeof base, "%s", remote.cache_dir));
	else if (xdg && xdg[0] == '/')
		TRY(kbv_path(base, sizeof base, "%s/kbvault", xdg));
	else if (home && home[0] == '/')
		TRY(kbv_path(base, sizeof base, "%s/.cache/kbvault", home));
	else
		return kbv_error(KBV_EINVAL, "repository '%s': no cache directory (set XDG_CACHE_HOME or HOME)", r->path);
	kbv_hex(r->repo_id, sizeof r->repo_id, hex);
	TRY(kbv_path(dir, cap, "%s/%s", base, hex));
out:
	return rc;
}

/* The cache directory of the repository r (config read): <base>/<repository id>. */
static int cache_dir(struct kbv_repo *r)
{
	char dir[PATH_MAX];
	int rc = 0;
	TRY(cache_path(r, dir, sizeof dir));
	TRY(kbv_mkdir_parents(dir));
	TRY(kbv_mkdir(dir, NULL));
	if (!(r->local = strdup(dir)))
		rc = kbv_error(KBV_ENOMEM, "out of memory");
out:
	return rc;
}

void kbv_repo_cache_report(const struct kbv_repo *r, struct kbv_cache_report *out)
{
	*out = r->cache;
}

/* Version 1, version 2 when the repository has Object Lock, version 3 when its ids are
 * not BLAKE2b (format/repository.md). */
static size_t encode_config(uint8_t *p, const struct kbv_repo *r)
{
	uint32_t ver = r->id_hash != KBV_ID_BLAKE2B ? KBV_CONFIG_VERSION_IDHASH
		       : r->lock_days		    ? KBV_CONFIG_VERSION_LOCK
						    : KBV_FORMAT_VERSION;
	size_t end = ver == KBV_CONFIG_VERSION_IDHASH ? 60 : ver == KBV_CONFIG_VERSION_LOCK ? 56 : 52;
	memcpy(p, "KBVREPO\0", 8);
	kbv_put32(p + 8, ver);
	kbv_put32(p + 12, r->encrypted ? 1 : 0);
	memcpy(p + 16, r->repo_id, 16);
	kbv_put32(p + 32, r->chunk_min);
	kbv_put32(p + 36, r->chunk_avg);
	kbv_put32(p + 40, r->chunk_max);
	kbv_put32(p + 44, (uint32_t)r->zstd_level);
	kbv_put32(p + 48, r->pack_size);
	if (ver != KBV_FORMAT_VERSION)
		kbv_put32(p + 52, r->lock_days);
	if (ver == KBV_CONFIG_VERSION_IDHASH)
		kbv_put32(p + 56, (uint32_t)r->id_hash);
	kbv_put64(p + end, XXH3_64bits(p, end));
	return end + 8;
}

/* The names KBVAULT_FAULT took before there was a backend layer, as backend faults. The
 * index (a local cache, not a backend object) keeps its own points: index-commit,
 * gc-index-commit, gc-index-batch, repair-pack (kbv_fault()). */
static const char *const legacy_faults[][2] = {
	{ "pack-write:", "write:pack:" },	  { "pack-fsync:", "commit:pack:" },
	{ "snapshot-write:", "commit:snapshot:" }, { "gc-pack-write:", "commit:pack:" },
	{ "gc-delete:", "remove:pack:" },
};

int kbv_repo_backend(const char *path, struct kbv_backend **out)
{
	int rc;
	if (kbv_s3_url_ok(path)) {
		struct kbv_s3_opts o = { remote.access, remote.secret, remote.token, remote.region, remote.ca_file,
					 remote.connections };
		rc = kbv_backend_s3_new(path, &o, out);
	} else if (kbv_shared_url_ok(path)) {
		rc = kbv_backend_shared_new(path + 7, out);
	} else {
		rc = kbv_backend_local_new(path, out);
	}
	const char *spec = getenv("KBVAULT_FAULT");
	if (rc < 0 || !spec || !*spec)
		return rc;
	if (!strncmp(spec, "index-commit:", 13) || !strncmp(spec, "gc-index-commit:", 16) ||
	    !strncmp(spec, "gc-index-batch:", 15) || !strncmp(spec, "repair-pack:", 12))
		return 0;
	char buf[64];
	for (size_t i = 0; i < sizeof legacy_faults / sizeof *legacy_faults; i++) {
		size_t len = strlen(legacy_faults[i][0]);
		if (!strncmp(spec, legacy_faults[i][0], len)) {
			snprintf(buf, sizeof buf, "%s%s", legacy_faults[i][1], spec + len);
			spec = buf;
			break;
		}
	}
	rc = kbv_backend_fault_new(*out, spec, out);
	if (rc < 0)
		*out = NULL;
	return rc;
}

int kbv_repo_init(const char *path, const struct kbv_init_opts *opts, const char *password, size_t pwlen)
{
	struct kbv_repo r = { 0 };
	struct kbv_keys *keys = NULL;
	if (sodium_init() < 0)
		return kbv_error(KBV_EINTERNAL, "libsodium failed to initialize");
	struct kbv_buf kf = KBV_BUF_INIT;
	char p[PATH_MAX];
	struct kbv_backend *be = NULL;
	int rc = 0;

	r.encrypted = opts->encrypted;
	r.lock_days = opts->object_lock_days;
	r.id_hash = opts->id_hash ? opts->id_hash : KBV_DEFAULT_ID_HASH;
	if (r.id_hash != KBV_ID_BLAKE2B && r.id_hash != KBV_ID_BLAKE3)
		return kbv_error(KBV_EINVAL, "unknown id hash %d", r.id_hash);
	r.chunk_avg = opts->chunk_avg ? opts->chunk_avg : KBV_DEFAULT_CHUNK_AVG;
	r.chunk_min = r.chunk_avg / 4;
	r.chunk_max = r.chunk_avg * 4;
	r.zstd_level = opts->zstd_level ? opts->zstd_level : KBV_DEFAULT_ZSTD_LEVEL;
	r.pack_size = opts->pack_size ? opts->pack_size : KBV_DEFAULT_PACK_SIZE;
	TRY(kbv_cdc_check_params(r.chunk_min, r.chunk_avg, r.chunk_max));
	if (r.zstd_level < 1 || r.zstd_level > 19)
		return kbv_error(KBV_EINVAL, "zstd level %d is outside 1..19", r.zstd_level);
	if (r.pack_size < (1u << 20) || r.pack_size > (1u << 30))
		return kbv_error(KBV_EINVAL, "pack size %u is outside 1 MiB..1 GiB", r.pack_size);
	if (r.encrypted && !password)
		return kbv_error(KBV_EINVAL, "an encrypted repository needs a password");
	if (r.lock_days > KBV_MAX_LOCK_DAYS)
		return kbv_error(KBV_EINVAL, "--object-lock-days %u is more than %u (ten years)", r.lock_days,
				 KBV_MAX_LOCK_DAYS);

	int s3 = kbv_s3_url_ok(path);
	if (r.lock_days && !s3)
		return kbv_error(KBV_EINVAL, "'%s': Object Lock (--object-lock-days) needs a repository on object storage "
					     "(s3:...)", path);
	/* a shared directory (shared:/path) is made like a local one, without the host's own
	 * lock and index (they are in each host's cache directory) */
	int shared = kbv_shared_url_ok(path);
	const char *dir = shared ? path + 7 : path;
	if (shared && dir[0] != '/')
		return kbv_error(KBV_EINVAL, "'%s': a shared directory is given by its absolute path (shared:/path)", path);
	int prc = s3 ? 0 : kbv_mkdir_parents(dir); /* like restic: init creates the path to the repository */
	if (prc < 0)
		return prc;
	if (s3) {
		/* A bucket: created when missing; the config object's create-if-absent below
		 * refuses a prefix that holds a repository already. */
		TRY(kbv_repo_backend(path, &be));
		if (r.lock_days) {
			TRY(kbv_backend_s3_make_lock_bucket(be));
			/* A bucket with Object Lock keeps versions, and Ceph RGW 16 does not honour
			 * If-None-Match there: a PUT over a repository would add a version, not fail.
			 * Look first (a race between two inits remains: init once). */
			int e = kbv_be_exists(be, KBV_OBJ_CONFIG, "");
			if (e == 0)
				e = kbv_be_exists(be, KBV_OBJ_KEY, "");
			if (e > 0)
				rc = kbv_error(KBV_EEXIST, "'%s' holds a repository already", path);
			TRY(e < 0 ? e : rc);
			TRY(kbv_be_set_retention(be, kbv_repo_lock_seconds(&r)));
		} else {
			TRY(kbv_backend_s3_make_bucket(be));
		}
	} else if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST)
			return kbv_error(KBV_EIO, "create '%s': %s", dir, strerror(errno));
		int e = kbv_dir_empty(dir);
		if (e < 0)
			return kbv_error(KBV_EEXIST, "'%s' exists and is not a directory", dir);
		if (!e)
			return kbv_error(KBV_EEXIST, "'%s' is not empty; kbvault init needs a new or empty directory", dir);
	}
	static const char *const subs[] = { "data", "snapshots", "tmp", "index" };
	for (size_t i = 0; !s3 && i < sizeof subs / sizeof *subs - (size_t)shared; i++) {
		TRY(kbv_path(p, sizeof p, "%s/%s", dir, subs[i]));
		TRY(kbv_mkdir(p, NULL));
	}
	if (!s3 && !shared) {
		TRY(kbv_path(p, sizeof p, "%s/lock", path));
		int lfd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (lfd < 0) {
			rc = kbv_error(KBV_EIO, "create '%s': %s", p, strerror(errno));
			goto out;
		}
		close(lfd);
	}

	randombytes_buf(r.repo_id, sizeof r.repo_id);
	keys = sodium_malloc(sizeof *keys);
	if (!keys) {
		rc = kbv_error(KBV_ENOMEM, "out of secure memory");
		goto out;
	}
	randombytes_buf(keys, sizeof *keys);

	/* Key file (version 1: `key`). */
	uint64_t ops = opts->kdf_ops ? opts->kdf_ops : 3, mem = opts->kdf_mem ? opts->kdf_mem : (64u << 20);
	TRY(kbv_keyfile_make(r.repo_id, r.encrypted, keys, password, pwlen, ops, mem, NULL, &kf));

	uint8_t cfg[CONFIG_BYTES_V3];
	size_t cfglen = encode_config(cfg, &r);
	if (!be)
		TRY(kbv_repo_backend(path, &be));
	TRY(kbv_be_put(be, KBV_OBJ_KEY, "", kf.data, kf.len, KBV_PUT_EXCL));
	TRY(kbv_be_put(be, KBV_OBJ_CONFIG, "", cfg, cfglen, KBV_PUT_EXCL));
out:
	kbv_backend_free(be);
	if (kf.data)
		sodium_memzero(kf.data, kf.len);
	kbv_buf_release(&kf);
	sodium_free(keys);
	return rc;
}

int kbv_repo_config_decode(const uint8_t *b, size_t len, const char *what, struct kbv_repo *r)
{
	if (len < 12 || memcmp(b, "KBVREPO\0", 8) != 0)
		return kbv_error(KBV_ENOREPO, "'%s' is not a kbvault repository (bad config magic)", what);
	uint32_t ver = kbv_get32(b + 8);
	if (ver < KBV_FORMAT_VERSION || ver > KBV_CONFIG_VERSION_IDHASH)
		return kbv_error(KBV_EVERSION, "repository '%s' has format version %u; this kbvault reads versions %u to %u",
				 r->path ? r->path : what, ver, KBV_FORMAT_VERSION, KBV_CONFIG_VERSION_IDHASH);
	size_t end = ver == KBV_CONFIG_VERSION_IDHASH ? 60 : ver == KBV_CONFIG_VERSION_LOCK ? 56 : 52;
	if (len != end + 8 || kbv_get64(b + end) != XXH3_64bits(b, end))
		return kbv_error(KBV_ECORRUPT, "config '%s' is damaged (checksum mismatch or wrong size %zu)", what, len);
	r->lock_days = ver == KBV_FORMAT_VERSION ? 0 : kbv_get32(b + 52);
	if ((ver == KBV_CONFIG_VERSION_LOCK && r->lock_days < 1) || r->lock_days > KBV_MAX_LOCK_DAYS)
		return kbv_error(KBV_ECORRUPT, "config '%s' has an Object Lock of %u days", what, r->lock_days);
	r->id_hash = ver == KBV_CONFIG_VERSION_IDHASH ? (int)kbv_get32(b + 56) : KBV_ID_BLAKE2B;
	if (r->id_hash != KBV_ID_BLAKE2B && r->id_hash != KBV_ID_BLAKE3)
		return kbv_error(KBV_EVERSION, "config '%s' names id hash %d, which this kbvault does not know", what,
				 r->id_hash);
	uint32_t flags = kbv_get32(b + 12);
	if (flags & ~1u)
		return kbv_error(KBV_EVERSION, "config '%s' has unknown flags 0x%x", what, flags);
	r->encrypted = flags & 1;
	memcpy(r->repo_id, b + 16, 16);
	r->chunk_min = kbv_get32(b + 32);
	r->chunk_avg = kbv_get32(b + 36);
	r->chunk_max = kbv_get32(b + 40);
	r->zstd_level = (int)kbv_get32(b + 44);
	r->pack_size = kbv_get32(b + 48);
	if (kbv_cdc_check_params(r->chunk_min, r->chunk_avg, r->chunk_max) < 0 || r->zstd_level < 1 ||
	    r->zstd_level > 19)
		return kbv_error(KBV_ECORRUPT, "config '%s' has invalid parameters", what);
	return 0;
}

static int read_config(struct kbv_repo *r)
{
	char p[PATH_MAX];
	struct kbv_buf b = KBV_BUF_INIT;
	int rc = 0;
	kbv_be_describe(r->be, KBV_OBJ_CONFIG, "", p, sizeof p);
	rc = kbv_be_get(r->be, KBV_OBJ_CONFIG, "", &b);
	if (rc == KBV_ENOTFOUND && kbv_s3_url_ok(r->path)) {
		rc = kbv_error(KBV_ENOREPO, "no kbvault repository at '%s' (no config object, or no such bucket; create "
					    "it with 'kbvault init')",
			       r->path);
		goto out;
	}
	if (rc == KBV_ENOTFOUND) {
		struct stat st;
		if (stat(kbv_shared_url_ok(r->path) ? r->path + 7 : r->path, &st) < 0)
			rc = kbv_error(KBV_ENOREPO, "repository '%s' does not exist (create it with 'kbvault init')", r->path);
		else
			rc = kbv_error(KBV_ENOREPO, "'%s' is not a kbvault repository (no config file)", r->path);
		goto out;
	}
	TRY(rc);
	rc = kbv_repo_config_decode(b.data, b.len, p, r);
out:
	kbv_buf_release(&b);
	return rc;
}

/* "PID 1234 (kbvault gc --keep-last 3)": the first process /proc/locks shows holding a
 * lock on the file behind fd, or "another process" when it cannot tell. */
static void lock_holder(int fd, char *out, size_t cap)
{
	struct stat st;
	char line[256];
	long pid = 0;
	snprintf(out, cap, "another process");
	FILE *f = fstat(fd, &st) == 0 ? fopen("/proc/locks", "re") : NULL;
	if (!f)
		return;
	while (!pid && fgets(line, sizeof line, f)) {
		char kind[16], mode[16];
		long p;
		unsigned maj, min;
		unsigned long long ino;
		if (strstr(line, "->")) /* a waiter, not a holder */
			continue;
		if (sscanf(line, "%*[^:]: %15s %*s %15s %ld %x:%x:%llu", kind, mode, &p, &maj, &min, &ino) == 6 &&
		    !strcmp(kind, "FLOCK") && ino == (unsigned long long)st.st_ino && makedev(maj, min) == st.st_dev)
			pid = p;
	}
	fclose(f);
	if (!pid)
		return;
	char path[64], cmd[160] = "";
	snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
	int cfd = open(path, O_RDONLY | O_CLOEXEC);
	if (cfd >= 0) {
		ssize_t n = read(cfd, cmd, sizeof cmd - 1);
		close(cfd);
		for (ssize_t i = 0; i < n; i++)
			if (cmd[i] == 0 || (unsigned char)cmd[i] < 0x20)
				cmd[i] = ' ';
		cmd[n > 0 ? n : 0] = 0;
		while (n > 0 && cmd[n - 1] == ' ')
			cmd[--n] = 0;
	}
	snprintf(out, cap, *cmd ? "PID %ld (%s)" : "PID %ld", pid, cmd);
}

/* Take the repository lock, waiting at most w->seconds (forever without w). The kernel
 * drops the locks of dead processes, so this never waits on a crashed one. */
static int take_lock(int fd, const char *path, enum kbv_lock lock, const struct kbv_lock_wait *w)
{
	int op = lock == KBV_LOCK_SHARED ? LOCK_SH : LOCK_EX;
	struct timespec t0, now;
	int told = 0;
	if (!w) {
		while (flock(fd, op) < 0)
			if (errno != EINTR)
				return kbv_error(KBV_ELOCKED, "lock '%s': %s", path, strerror(errno));
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return kbv_error(KBV_ELOCKED, "lock '%s': %s", path, strerror(errno));
		char holder[200];
		clock_gettime(CLOCK_MONOTONIC, &now);
		double waited = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		if (waited >= w->seconds) {
			lock_holder(fd, holder, sizeof holder);
			return kbv_error(KBV_ELOCKED, "the repository is locked by %s; gave up after %.0f s (--lock-wait)",
					 holder, waited);
		}
		if (!told++ && w->waiting) {
			lock_holder(fd, holder, sizeof holder);
			w->waiting(w->arg, holder);
		}
		struct timespec nap = { 0, 100 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
}

static int list_key_names(void *r)
{
	return kbv_repo_list_keys(r);
}

/* The config, and the names of the key objects. On object storage the two go side by side:
 * each is a request (and the first, a connection's set-up) that nothing else can start
 * before, once per command, and neither depends on the other. The result is the
 * sequential one's: the config's error first, then the listing's. */
static int read_config_and_key_names(struct kbv_repo *r)
{
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL) {
		int rc = read_config(r);
		return rc < 0 ? rc : kbv_repo_list_keys(r);
	}
	struct kbv_beside keys;
	kbv_beside_start(&keys, list_key_names, r);
	int rc = read_config(r);
	return kbv_beside_wait(&keys, rc);
}

int kbv_repo_open(const char *path, enum kbv_lock lock, struct kbv_repo **out)
{
	return kbv_repo_open_wait(path, lock, NULL, out);
}

int kbv_repo_open_wait(const char *path, enum kbv_lock lock, const struct kbv_lock_wait *w, struct kbv_repo **out)
{
	struct kbv_repo *r = calloc(1, sizeof *r);
	char p[PATH_MAX];
	int rc = 0;
	if (sodium_init() < 0) {
		free(r);
		return kbv_error(KBV_EINTERNAL, "libsodium failed to initialize");
	}
	if (!r)
		return kbv_error(KBV_ENOMEM, "out of memory");
	r->lockfd = -1;
	pthread_mutex_init(&r->idx_mu, NULL);
	r->key_used = -1;
	r->path = strdup(path);
	if (!r->path) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	TRY(kbv_repo_backend(r->path, &r->be));
	TRY(read_config_and_key_names(r));
	/* Benchmarks make repositories of many small packs (bench/s3-manypacks.sh): packs of
	 * any size are valid, the config's size is only the writers' target. */
	r->pack_size = (uint32_t)kbv_env_long("KBVAULT_PACK_SIZE", KBV_PACK_SIZE_HOOK_MIN, KBV_PACK_SIZE_HOOK_MAX,
					      r->pack_size);
	if (r->lock_days)
		TRY(kbv_be_set_retention(r->be, kbv_repo_lock_seconds(r)));
	TRY(kbv_repo_read_keys(r));
	if (kbv_backend_features(r->be) & KBV_BE_LOCAL)
		r->local = strdup(r->path);
	else
		TRY(cache_dir(r));
	if (!r->local) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	if (lock != KBV_LOCK_NONE) {
		TRY(kbv_repo_sub(r, "lock", p, sizeof p));
		r->lockfd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
		if (r->lockfd < 0) {
			rc = kbv_error(KBV_EIO, "open lock '%s': %s", p, strerror(errno));
			goto out;
		}
		TRY(take_lock(r->lockfd, p, lock, w));
	}
	/* Scratch and cache directories may be missing (a copy made by a tool that drops empty
	 * directories); they hold nothing a snapshot depends on. */
	TRY(kbv_repo_sub(r, "tmp", p, sizeof p));
	TRY(kbv_mkdir(p, NULL));
	TRY(kbv_repo_sub(r, "index", p, sizeof p));
	TRY(kbv_mkdir(p, NULL));
	rc = kbv_index_open(p, &r->idx);
	if (rc == KBV_ECORRUPT && lock == KBV_LOCK_EXCLUSIVE) {
		/* The index is a cache. Alone in the repository (repair index, gc), a damaged one
		 * is set aside and a new empty one opened: repair rebuilds it, gc refuses to
		 * delete anything with an index that lacks what the snapshots use. */
		char from[PATH_MAX + 16], to[PATH_MAX + 32];
		snprintf(from, sizeof from, "%s/data.mdb", p);
		snprintf(to, sizeof to, "%s/data.mdb.damaged", p);
		if (rename(from, to) == 0) {
			snprintf(from, sizeof from, "%s/lock.mdb", p);
			unlink(from);
			rc = kbv_index_open(p, &r->idx);
		}
	}
	TRY(rc);
	*out = r;
	r = NULL;
out:
	kbv_repo_close(r);
	return rc;
}

int kbv_repo_needs_password(const struct kbv_repo *r)
{
	return r->encrypted;
}

void kbv_repo_params(const struct kbv_repo *r, struct kbv_repo_params *out)
{
	memcpy(out->repo_id, r->repo_id, sizeof out->repo_id);
	out->encrypted = r->encrypted;
	out->chunk_min = r->chunk_min;
	out->chunk_avg = r->chunk_avg;
	out->chunk_max = r->chunk_max;
	out->zstd_level = r->zstd_level;
	out->pack_size = r->pack_size;
	out->object_lock_days = r->lock_days;
	out->object_lock_seconds = kbv_repo_lock_seconds(r);
	out->id_hash = r->id_hash;
}

const char *kbv_repo_path(const struct kbv_repo *r)
{
	return r->path;
}

/* What a repository on object storage lists while its key is derived (kbv_repo_unlock):
 * none of it needs the key, and each listing is a round trip. */
struct open_lists {
	struct kbv_repo *r;
	struct kbv_plans_listed plans;
	struct kbv_pack_listing packs;
	int packs_listed;
};

/* A listing the command asked for (kbv_repo_will_list), kept by the backend. */
struct ahead {
	struct kbv_repo *r;
	enum kbv_obj kind;
	struct kbv_beside thread;
};

static int list_ahead(void *arg)
{
	struct ahead *a = arg;
	kbv_be_list_ahead(a->r->be, a->kind);
	return 0; /* a failed one keeps nothing: the lookup asks again and reports it */
}

static int get_listed_ahead(void *arg)
{
	struct ahead *a = arg;
	kbv_be_get_listed_ahead(a->r->be, a->kind, KBV_META_AHEAD, MANIFESTS_AHEAD_BYTES);
	return 0; /* one whose fetch failed is not kept: the lookup reads it and reports it */
}

/* A new host's index objects: listed, then the first of them fetched, kept by the backend
 * for the refresh's reads (it merges them all: the cache indexes no pack). */
static int list_get_indexes(void *arg)
{
	struct ahead *a = arg;
	kbv_be_list_ahead(a->r->be, a->kind);
	kbv_be_get_listed_ahead(a->r->be, a->kind, INDEXES_AHEAD_MOST, INDEXES_AHEAD_BYTES);
	return 0; /* a listing or fetch that failed keeps nothing: the refresh asks again */
}

static int stop_at_pack(void *arg, uint32_t packno, const struct kbv_pack_info *info)
{
	(void)arg;
	(void)packno;
	(void)info;
	return 1;
}

/* 1 when this host's index cache indexes no pack (a new host), else 0 (an error too). */
static int indexes_no_pack(struct kbv_repo *r)
{
	MDB_txn *txn = NULL;
	if (kbv_index_rbegin(r->idx, &txn) < 0)
		return 0;
	int rc = kbv_index_each_pack(r->idx, txn, stop_at_pack, NULL);
	kbv_index_rend(txn);
	return rc == 0;
}

/* gc's plans, then the packs (this host's index cache read first, under its refresh lock,
 * which is let go until the listing is applied: cache.c). The protocol's order
 * (format/repository.md, "Writers") is the plans' listing before the packs'; the plans'
 * bytes are read once the key is there (from this host's metadata cache, or a GET), and
 * when one of them is gone by then the packs are listed again (kbv_repo_unlock). What the
 * command will look up (its snapshots, records, WAL) is listed beside the plans, each kind
 * on a thread of its own, the snapshots before the packs: every manifest listed then has its index
 * objects in the packs' listing, and the lookup need not list the packs again for one this
 * host had never seen (kbv_snapshot_list_damaged). */
static int list_beside_key(void *arg)
{
	struct open_lists *o = arg;
	struct ahead lists[KBV_OBJ_KINDS];
	size_t n = 0;
	for (int k = 0; k < KBV_OBJ_KINDS; k++)
		if (o->r->will_list & (1u << k)) {
			lists[n] = (struct ahead){ .r = o->r, .kind = (enum kbv_obj)k };
			kbv_beside_start(&lists[n].thread, list_ahead, &lists[n]);
			n++;
		}
	int rc = kbv_plans_list(o->r, &o->plans);
	/* the packs wait for the snapshots only (a long WAL listing does not hold them up) */
	for (size_t i = 0; i < n; i++)
		if (lists[i].kind == KBV_OBJ_SNAPSHOT)
			rc = kbv_beside_wait(&lists[i].thread, rc);
	/* A new host (a cache that indexes no pack): its refresh wants every pack the bucket
	 * holds, so its first request is the listing of the index objects, made here beside
	 * the packs', after the snapshots' was in as theirs is (format/repository.md,
	 * "Writers"). Dropped unused if the packs are listed again before the refresh, and at
	 * the end of every refresh (kbv_repo_apply_listing). A hint read without the refresh
	 * lock: at worst a listing unused, or one not made ahead. */
	struct ahead idx = { .r = o->r, .kind = KBV_OBJ_INDEX }, man = { .r = o->r, .kind = KBV_OBJ_SNAPSHOT };
	int idx_ahead = rc == 0 && indexes_no_pack(o->r);
	int man_ahead = idx_ahead && (o->r->will_list & (1u << KBV_OBJ_SNAPSHOT));
	if (idx_ahead)
		kbv_beside_start(&idx.thread, list_get_indexes, &idx);
	/* Its lookup will read every manifest it lists (its metadata cache holds none): the
	 * first run of them is fetched now too, kept by the backend for those reads. */
	if (man_ahead)
		kbv_beside_start(&man.thread, get_listed_ahead, &man);
	if (rc == 0) {
		rc = kbv_repo_list_packs(o->r, &o->packs, 0);
		o->packs_listed = rc == 0;
	}
	if (idx_ahead)
		rc = kbv_beside_wait(&idx.thread, rc);
	if (man_ahead)
		rc = kbv_beside_wait(&man.thread, rc);
	for (size_t i = 0; i < n; i++)
		if (lists[i].kind != KBV_OBJ_SNAPSHOT)
			rc = kbv_beside_wait(&lists[i].thread, rc);
	return rc;
}

void kbv_repo_will_list(struct kbv_repo *r, enum kbv_obj kind)
{
	r->will_list |= 1u << kind;
}

int kbv_repo_unlock(struct kbv_repo *r, const char *password, size_t pwlen)
{
	int rc = 0, on_storage = !(kbv_backend_features(r->be) & KBV_BE_LOCAL);
	struct open_lists o = { .r = r, .packs = { .lockfd = -1 } };
	struct kbv_beside lists;
	if (r->keys)
		return 0;
	if (r->encrypted && !password)
		return kbv_error(KBV_EAUTH, "repository '%s' is encrypted and no password was given", r->path);
	r->keys = sodium_malloc(sizeof *r->keys);
	if (!r->keys)
		return kbv_error(KBV_ENOMEM, "out of secure memory");
	char cp[PATH_MAX];
	if (!r->cache_path && cache_path(r, cp, sizeof cp) == 0 && !(r->cache_path = strdup(cp))) {
		rc = kbv_error(KBV_ENOMEM, "out of memory");
		goto out;
	}
	/* On object storage the listings go beside the key's derivation (Argon2id, a fifth
	 * of a second): the first listing then waits for nothing. */
	if (on_storage)
		kbv_beside_start(&lists, list_beside_key, &o);
	rc = kbv_repo_try_keys(r, password, pwlen);
	if (rc == KBV_EAUTH)
		rc = kbv_error(KBV_EAUTH, "wrong password for repository '%s'", r->path);
	if (on_storage)
		rc = kbv_beside_wait(&lists, rc); /* the key's error first */
	TRY(rc);
	kbv_keys_set_id_hash(r->keys, r->id_hash);
	TRY(kbv_cdc_init(&r->cdc, r->keys->gear, r->chunk_min, r->chunk_avg, r->chunk_max));
	if (on_storage) {
		/* gc's plans are read before the cache is brought up to date: the packs they name
		 * count as absent to writers (format/repository.md). */
		r->plans = calloc(1, sizeof *r->plans);
		if (!r->plans) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		TRY(kbv_plans_read_listed(r, &o.plans, r->plans));
		/* A plan listed and gone when read was removed by a gc, after the packs it named
		 * were deleted, maybe after they were listed: the packs are listed again, now,
		 * which no longer shows them. */
		if (r->plans->gone && o.packs_listed) {
			kbv_pack_listing_release(&o.packs);
			o.packs_listed = 0;
			kbv_be_list_drop(r->be, KBV_OBJ_INDEX);
		}
		/* Other hosts write to object storage too: the cache catches up before use. */
		TRY(kbv_repo_catch_up_listed(r, o.packs_listed ? &o.packs : NULL));
	}
out:
	kbv_plans_listed_release(&o.plans);
	kbv_pack_listing_release(&o.packs);
	if (rc < 0) {
		sodium_free(r->keys);
		r->keys = NULL;
		if (r->plans)
			kbv_plans_release(r->plans);
		free(r->plans);
		r->plans = NULL;
		free(r->condemned);
		r->condemned = NULL;
		r->ncondemned = 0;
	}
	return rc;
}

void kbv_repo_close(struct kbv_repo *r)
{
	if (!r)
		return;
	kbv_index_close(r->idx);
	if (r->plans)
		kbv_plans_release(r->plans);
	free(r->plans);
	free(r->condemned);
	if (r->lockfd >= 0)
		close(r->lockfd);
	sodium_free(r->keys);
	kbv_repo_free_keys(r);
	kbv_backend_free(r->be);
	kbv_buf_release(&r->idx_pend);
	pthread_mutex_destroy(&r->idx_mu);
	free(r->path);
	free(r->local);
	free(r->cache_path);
	free(r);
}
