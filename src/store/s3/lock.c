/* Object Lock on S3 (s3.h; format/repository.md "Object Lock"): what is written is
 * retained in COMPLIANCE mode (write.c adds the headers); its retention is read and
 * extended here (removal of every version: remove.c). */
#include "s3.h"
#include "xml.h"
#include "kbv/buf.h"
#include "kbv/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_set_retention(struct kbv_backend *be, int64_t seconds)
{
	if (seconds < 0)
		return kbv_error(KBV_EINVAL, "a retention of %lld seconds", (long long)seconds);
	((struct s3 *)be)->lock_secs = seconds;
	return 0;
}

int s3_retention(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t *until)
{
	struct s3 *s = (struct s3 *)be;
	char key[512];
	s3_obj_key(s, kind, name, key, sizeof key);
	struct req q = { .method = "HEAD", .key = key };
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200)
		rc = s3_fail(s, &q);
	if (rc == 0)
		*until = q.lock_until;
	kbv_buf_release(&q.err);
	return rc;
}

int s3_extend(struct kbv_backend *be, enum kbv_obj kind, const char *name, int64_t until)
{
	struct s3 *s = (struct s3 *)be;
	char key[512], t[40], body[256], sums[160];
	s3_obj_key(s, kind, name, key, sizeof key);
	s3_iso_time(until, t, sizeof t);
	int n = snprintf(body, sizeof body,
			 "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>"
			 "<RetainUntilDate>%s</RetainUntilDate></Retention>",
			 t);
	struct req q = { .method = "PUT", .key = key, .query = "retention=", .body = body, .len = (size_t)n,
			 .hdr = { "Content-Type: application/xml" } };
	s3_checksum_headers(&q, 1, sums, sizeof sums);
	int rc = s3_do(s, &q);
	if (rc == 0 && q.status != 200 && q.status != 204)
		rc = s3_fail(s, &q);
	kbv_buf_release(&q.err);
	return rc;
}
