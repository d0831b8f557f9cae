/* gc and the WAL archive (engine/gc_impl.h; format/wal.md "Retention"): the base backups
 * kept snapshots hold say, per source, the first segment recovery still needs; archived
 * files from there on are roots of the mark, older segments and backup history files go.
 * A source whose archive no kept snapshot holds a base backup for keeps every file. */
#include "engine/gc_impl.h"
#include "kbv/error.h"
#include "kbv/reader.h"
#include "kbv/snapshot.h"
#include "kbv/wal.h"
#include "store/repo_impl.h"
#include "store/retain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void gc_wal_note(struct wal_floor *f, const struct kbv_snapshot *s)
{
	for (size_t i = 0; i < s->nsources; i++) {
		json_t *meta = json_loads(s->sources[i].meta, 0, NULL);
		const char *mode = json_string_value(json_object_get(meta, "mode"));
		const char *seg = json_string_value(json_object_get(meta, "start_segment"));
		json_int_t size = json_integer_value(json_object_get(meta, "wal_segment_size"));
		uint32_t tli;
		uint64_t segno;
		if (mode && !strcmp(mode, "physical") && seg && size > 0 &&
		    kbv_wal_segno(seg, (uint64_t)size, &tli, &segno) == 0 && f->n < GC_WAL_SOURCES) {
			size_t k = 0;
			while (k < f->n && strcmp(f->src[k].name, s->sources[i].name))
				k++;
			if (k == f->n) {
				snprintf(f->src[k].name, sizeof f->src[k].name, "%s", s->sources[i].name);
				f->src[k].segno = segno;
				f->src[k].seg_size = (uint64_t)size;
				f->n++;
			} else if (segno < f->src[k].segno) {
				f->src[k].segno = segno;
			}
		}
		json_decref(meta);
	}
}

struct walk {
	struct mark *m;
	struct kbv_reader *rd;
	const struct wal_floor *f;
	int remove;
	struct kbv_gc_result *res;
	struct kbv_buf gone; /* "<source>\0<file>\0" pairs to remove after the listing */
};

static int mark_ref(void *arg, int type, const uint8_t id[KBV_ID_BYTES])
{
	(void)type;
	return gc_mark_id(arg, type, id);
}

/* Is this file older than what the oldest kept base backup of its source needs? */
static int obsolete(const struct wal_floor *f, const char *source, const char *file)
{
	for (size_t k = 0; k < f->n; k++) {
		if (strcmp(f->src[k].name, source))
			continue;
		char seg[25];
		uint32_t tli;
		uint64_t segno;
		size_t len = strlen(file);
		if (len != 24 && !(len == 40 && !strcmp(file + 33, ".backup")) && !(len == 32 && !strcmp(file + 24, ".partial")))
			return 0; /* history files stay: they are small and name every timeline */
		memcpy(seg, file, 24);
		seg[24] = 0;
		return kbv_wal_segno(seg, f->src[k].seg_size, &tli, &segno) == 0 && segno < f->src[k].segno;
	}
	return 0;
}

static int on_file(void *arg, const char *source, const char *file, int64_t mtime)
{
	struct walk *w = arg;
	struct kbv_wal_info info;
	int rc = 0;
	(void)mtime;
	if (obsolete(w->f, source, file)) {
		w->res->wal_files_dropped++;
		if (w->remove)
			TRY(kbv_wal_names_add(&w->gone, source, file));
		return 0;
	}
	w->res->wal_files_kept++;
	TRY(kbv_wal_read(w->m->r, source, file, &info));
	w->res->wal_bytes_kept += info.size;
	if (info.ref.depth != KBV_REF_EMPTY)
		TRY(kbv_reader_visit(w->rd, &info.ref, mark_ref, w->m));
out:
	return rc;
}

int gc_mark_wal(struct mark *m, struct kbv_reader *rd, const struct wal_floor *f, int remove,
		struct kbv_gc_result *res)
{
	struct walk w = { m, rd, f, remove, res, KBV_BUF_INIT };
	int rc = 0;
	m->snap = "WAL archive";
	TRY(kbv_wal_list(m->r, NULL, on_file, &w));
	/* Removed after the listing: with Object Lock, a file still retained stays a root. */
	const char *source, *file;
	for (size_t off = 0; (source = kbv_wal_names_next(&w.gone, &off, &file));) {
		char name[128];
		int64_t until;
		snprintf(name, sizeof name, "%s~%s", source, file);
		if (m->r->lock_days) {
			TRY(rc = kbv_repo_retained(m->r, KBV_OBJ_WAL, name, 0, &until));
			if (rc == 1) {
				struct kbv_wal_info info;
				rc = 0;
				res->wal_files_dropped--;
				res->wal_files_kept++;
				TRY(kbv_wal_read(m->r, source, file, &info));
				if (info.ref.depth != KBV_REF_EMPTY)
					TRY(kbv_reader_visit(rd, &info.ref, mark_ref, m));
				continue;
			}
		}
		TRY(kbv_wal_remove(m->r, source, file));
	}
out:
	kbv_buf_release(&w.gone);
	return rc;
}
