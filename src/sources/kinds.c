/* The table of source kinds (include/kbv/kinds.h). */
#include "kbv/kinds.h"
#include "kbv/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct kbv_source_kind kinds[] = {
	{ .type = KBV_SOURCE_POSTGRES, .name = "postgres", .keys = kbv_kind_postgres_keys,
	  .check = kbv_kind_postgres_check, .snapshot = kbv_kind_postgres_snapshot, .drill = kbv_kind_postgres_drill,
	  .drill_needs = KBV_DRILL_NEEDS_PG_DSN, .restore = kbv_kind_postgres_restore,
	  .restore_needs = kbv_kind_postgres_restore_needs },
	{ .type = KBV_SOURCE_QDRANT, .name = "qdrant", .keys = kbv_kind_qdrant_keys, .check = kbv_kind_qdrant_check,
	  .snapshot = kbv_kind_qdrant_snapshot, .drill = kbv_kind_qdrant_drill, .restore = kbv_kind_qdrant_restore,
	  .restore_flags = KBV_RESTORE_URL },
	/* neo4j-admin database dump --to-stdout: a dump command with the database recorded */
	{ .type = KBV_SOURCE_NEO4J, .name = "neo4j", .keys = kbv_kind_neo4j_keys, .snapshot = kbv_kind_command_snapshot,
	  .drill = kbv_kind_command_drill, .drill_needs = KBV_DRILL_NEEDS_LOAD_COMMAND,
	  .restore = kbv_kind_command_restore, .restore_needs = kbv_kind_neo4j_restore_needs },
	{ .type = KBV_SOURCE_COMMAND, .name = "command", .keys = kbv_kind_command_keys,
	  .snapshot = kbv_kind_command_snapshot, .drill = kbv_kind_command_drill,
	  .drill_needs = KBV_DRILL_NEEDS_LOAD_COMMAND, .restore = kbv_kind_command_restore,
	  .restore_needs = kbv_kind_command_restore_needs },
	{ .type = KBV_SOURCE_PATH, .name = "path", .keys = kbv_kind_path_keys, .snapshot = kbv_kind_path_snapshot,
	  .drill = kbv_kind_path_drill, .restore = kbv_kind_path_restore, .restore_flags = KBV_RESTORE_IN_PLACE },
};

const struct kbv_source_kind *kbv_source_kind(enum kbv_source_type type)
{
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (kinds[i].type == type)
			return &kinds[i];
	return NULL;
}

const struct kbv_source_kind *kbv_source_kind_named(const char *name)
{
	for (size_t i = 0; name && i < sizeof kinds / sizeof *kinds; i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

const char *kbv_source_type_name(int type)
{
	const struct kbv_source_kind *k = kbv_source_kind((enum kbv_source_type)type);
	return k ? k->name : "?";
}

void kbv_source_kind_list(char *out, size_t cap)
{
	size_t n = 0;
	if (cap)
		out[0] = 0;
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds && n < cap; i++) {
		int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", kinds[i].name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

int kbv_source_snapshot(struct kbv_sink *s, const struct kbv_source_cfg *sc, json_t **meta)
{
	const struct kbv_source_kind *k = kbv_source_kind(sc->type);
	if (!k || !k->snapshot)
		return kbv_error(KBV_EINVAL, "source '%s': type %s is not supported by this version of kbvault", sc->name,
				 kbv_source_type_name(sc->type));
	return k->snapshot(s, sc, meta);
}

void kbv_report_add(json_t *report, const char *key, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	json_t *a = json_object_get(report, key);
	if (!a) {
		a = json_array();
		json_object_set_new(report, key, a);
	}
	json_array_append_new(a, json_string(line));
}
