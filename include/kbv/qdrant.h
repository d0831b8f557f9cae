/* Qdrant through its REST API (libcurl): collections, point counts, and collection
 * snapshots created, streamed, verified (SHA-256), deleted and uploaded. Never prints. */
#ifndef KBV_QDRANT_H
#define KBV_QDRANT_H

#include <stddef.h>
#include <stdint.h>

struct kbv_qdrant;

/* `url` like http://127.0.0.1:6333 (no trailing slash needed); `api_key` may be NULL.
 * `timeout` seconds: a connection must be made, and a transfer must move at least one
 * byte, within it. TLS certificates are verified. */
int kbv_qdrant_open(const char *url, const char *api_key, long timeout, struct kbv_qdrant **out);
void kbv_qdrant_close(struct kbv_qdrant *q);

/* GET /: the server's version string (caller frees). */
int kbv_qdrant_version(struct kbv_qdrant *q, char **version);
/* GET /collections: names (free each and the array). */
int kbv_qdrant_collections(struct kbv_qdrant *q, char ***names, size_t *n);
/* GET /collections/{c}: result.points_count. KBV_ENOTFOUND when there is no such collection. */
int kbv_qdrant_points(struct kbv_qdrant *q, const char *collection, int64_t *points);
/* DELETE /collections/{c}. */
int kbv_qdrant_drop(struct kbv_qdrant *q, const char *collection);

struct kbv_qdrant_snap {
	char name[256];
	char checksum[65]; /* SHA-256, hex, as the server reported it */
	int64_t size;
};
/* POST /collections/{c}/snapshots?wait=true. */
int kbv_qdrant_snapshot_create(struct kbv_qdrant *q, const char *collection, struct kbv_qdrant_snap *s);
/* GET /collections/{c}/snapshots/{name} into fd; the SHA-256 of what arrived is compared
 * with s->checksum: KBV_ESOURCE on a mismatch or a short transfer. */
int kbv_qdrant_snapshot_download(struct kbv_qdrant *q, const char *collection, const struct kbv_qdrant_snap *s,
				 int fd);
/* DELETE /collections/{c}/snapshots/{name}. */
int kbv_qdrant_snapshot_delete(struct kbv_qdrant *q, const char *collection, const char *name);
/* POST /collections/{c}/snapshots/upload?priority=snapshot&checksum=... with the file at
 * `path` as the multipart field "snapshot". */
int kbv_qdrant_upload(struct kbv_qdrant *q, const char *collection, const char *path, const char *checksum);

#endif
