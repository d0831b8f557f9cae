/* The table of source kinds (include/kbv/kinds.h). */
#include "kbv/kinds.h"
#include "kbv/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct kbv_source_kind kinds[] = {
	{ KBV_SOURCE_POSTGRES, "postgres", kbv_kind_postgres_snapshot, kbv_kind_postgres_drill, KBV_DRILL_NEEDS_PG_DSN,
	  kbv_kind_postgres_restore, kbv_kind_postgres_restore_needs, 0 },
	{ KBV_SOURCE_QDRANT, "qdrant", kbv_kind_qdrant_snapshot, kbv_kind_qdrant_drill, 0, kbv_kind_qdrant_restore, NULL,
	  KBV_RESTORE_URL },
	/* neo4j-admin database dump --to-stdout: a dump command with the database recorded */
	{ KBV_SOURCE_NEO4J, "neo4j", kbv_kind_command_snapshot, kbv_kind_command_drill, KBV_DRILL_NEEDS_LOAD_COMMAND,
	  kbv_kind_command_restore, kbv_kind_neo4j_restore_needs, 0 },
	{ KBV_SOURCE_COMMAND, "command", kbv_kind_command_snapshot, kbv_kind_command_drill,
	  KBV_DRILL_NEEDS_LOAD_COMMAND, kbv_kind_command_restore, kbv_kind_command_restore_needs, 0 },
	{ KBV_SOURCE_PATH, "path", kbv_kind_path_snapshot, kbv_kind_path_drill, 0, kbv_kind_path_restore, NULL,
	  KBV_RESTORE_IN_PLACE },
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
