/* Source kinds "command" and "neo4j": a dump command's standard output is the stream,
 * between an optional before hook and an after hook that runs whatever happened (it
 * restarts what the before hook stopped). neo4j is `neo4j-admin database dump --to-stdout`
 * under another name, with the database recorded. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/kinds.h"
#include "kbv/load.h"
#include "kbv/shell.h"
#include "kbv/proc.h"

int kbv_kind_command_snapshot(struct kbv_sink *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char name[256], what[200];
	int neo4j = sc->type == KBV_SOURCE_NEO4J, rc = 0;
	if (neo4j)
		snprintf(name, sizeof name, "%s/%s.dump", sc->name, sc->database ? sc->database : "neo4j");
	else
		snprintf(name, sizeof name, "%s/dump", sc->name);
	snprintf(what, sizeof what, "the dump-command of source '%s'", sc->name);
	if (sc->before)
		rc = kbv_shell_hook(sc->name, "before hook", sc->before);
	if (rc == 0) {
		pid_t pid;
		int fd;
		rc = kbv_shell_start(sc->dump_command, -1, &pid, &fd);
		if (rc == 0)
			rc = kbv_sink_child(c, name, pid, fd, what);
	}
	/* The after hook runs whatever happened: it restarts what before stopped. */
	if (sc->after) {
		int arc = kbv_shell_hook(sc->name, "after hook", sc->after);
		if (arc < 0 && rc == 0) {
			kbv_sink_warn(c, "%s; the dump itself succeeded and is kept", kbv_errmsg());
			kbv_sink_set_degraded(c);
		}
	}
	if (rc < 0)
		return rc;
	*meta = json_pack("{s:{s:s}}", "streams", "dump", name);
	if (neo4j)
		json_object_set_new(*meta, "database", json_string(sc->database ? sc->database : "neo4j"));
	return 0;
}

static int drill_load_run(struct kbv_reader *rd, const struct kbv_snapshot *s, const struct kbv_snapsource *src,
			  const struct kbv_source_cfg *sc, char *const env[], json_t *res, int *ok)
{
	json_t *meta = json_loads(src->meta, 0, NULL);
	const char *name = json_string_value(json_object_get(json_object_get(meta, "streams"), "dump"));
	const struct kbv_entry *e = NULL;
	char what[200];
	int rc = 0;
	*ok = 0;
	for (size_t i = 0; name && i < s->nloaded && !e; i++)
		if (!strcmp(s->entries[i].name, name))
			e = &s->entries[i];
	json_decref(meta);
	if (!e)
		return kbv_error(KBV_ECORRUPT, "source '%s': the snapshot lacks the stream its metadata names", src->name);
	snprintf(what, sizeof what, "the drill-load-command of source '%s'", src->name);
	pid_t pid;
	int fd;
	rc = kbv_shell_start_writer_env(sc->drill_load_command, env, &pid, &fd);
	if (rc == 0)
		rc = kbv_load_child(rd, e, pid, fd, what, NULL);
	if (rc == 0) {
		char sum[200];
		snprintf(sum, sizeof sum, "%llu bytes loaded by its drill-load-command, which succeeded",
			 (unsigned long long)e->size);
		json_object_set_new(res, "summary", json_string(sum));
		json_object_set_new(res, "mismatches", json_array());
		*ok = 1;
	}
	return rc;
}

/* drill: the stream into drill-load-command, whose exit status is the verdict;
 * then drill-cleanup-command, whatever happened. Both find where to put the scratch copy
 * in their environment: KBVAULT_DRILL_NAME (a name no other drill uses, for a scratch
 * database or directory), KBVAULT_DRILL_SOURCE and KBVAULT_DRILL_SNAPSHOT. */
int kbv_kind_command_drill(const struct kbv_drill_ctx *d, json_t *res, int *ok)
{
	struct kbv_reader *rd = d->rd;
	const struct kbv_snapshot *s = d->s;
	const struct kbv_snapsource *src = d->src;
	const struct kbv_source_cfg *sc = d->sc; /* has a drill-load-command (KBV_DRILL_NEEDS_LOAD_COMMAND) */
	char id[2 * KBV_ID_BYTES + 1], name[96], vsrc[128], vsnap[96];
	kbv_hex(s->id, KBV_ID_BYTES, id);
	snprintf(name, sizeof name, "KBVAULT_DRILL_NAME=kbvault_drill_%.8s_%ld", id, (long)getpid());
	snprintf(vsrc, sizeof vsrc, "KBVAULT_DRILL_SOURCE=%s", src->name);
	snprintf(vsnap, sizeof vsnap, "KBVAULT_DRILL_SNAPSHOT=%s", id);
	char *env[] = { name, vsrc, vsnap, NULL };
	int rc = drill_load_run(rd, s, src, sc, env, res, ok);
	if (sc->drill_cleanup_command) {
		int crc = kbv_shell_hook_env(src->name, "drill-cleanup-command", sc->drill_cleanup_command, env);
		if (crc < 0) {
			kbv_events_warn(d->ev, "%s (clean up by hand: %s)", kbv_errmsg(), name + strlen("KBVAULT_DRILL_NAME="));
			if (rc == 0)
				rc = crc;
			*ok = 0;
		}
	}
	return rc;
}

/* restore --source: the stream into the configured restore-command (command) or
 * load-command between the before and after hooks (neo4j). */
int kbv_kind_command_restore(const struct kbv_restore_ctx *c, json_t *report, int *mismatch)
{
	const struct kbv_source_cfg *sc = c->sc; /* restore_needs passed: it has the command */
	const struct kbv_snapsource *src = c->src;
	int neo4j = !strcmp(src->type, "neo4j"), rc = 0;
	const char *cmd = neo4j ? sc->load_command : sc->restore_command;
	json_t *meta = json_loads(src->meta, 0, NULL);
	const char *name = json_string_value(json_object_get(json_object_get(meta, "streams"), "dump"));
	const struct kbv_entry *e = NULL;
	(void)mismatch;
	for (size_t i = 0; name && i < c->s->nloaded && !e; i++)
		if (!strcmp(c->s->entries[i].name, name))
			e = &c->s->entries[i];
	json_decref(meta);
	if (!e)
		return kbv_error(KBV_ECORRUPT, "source '%s': the snapshot does not hold the stream its metadata names",
				 src->name);
	char what[200];
	snprintf(what, sizeof what, "the %s of source '%s'", neo4j ? "load-command" : "restore-command", src->name);
	if (sc->before)
		rc = kbv_shell_hook(src->name, "before hook", sc->before);
	if (rc == 0) {
		pid_t pid;
		int fd;
		rc = kbv_shell_start_writer(cmd, &pid, &fd);
		if (rc == 0)
			rc = kbv_load_child(c->rd, e, pid, fd, what, c->progress);
	}
	if (sc->after) {
		int arc = kbv_shell_hook(src->name, "after hook", sc->after);
		if (rc == 0)
			rc = arc;
		else if (arc < 0)
			kbv_events_warn(c->ev, "the after hook of source '%s' failed too", src->name);
	}
	if (rc == 0)
		kbv_report_add(report, "lines", "restored source '%s' (%s) through its %s: %llu bytes", src->name, src->type,
			       neo4j ? "load-command" : "restore-command", (unsigned long long)e->size);
	return rc;
}

const char *kbv_kind_command_restore_needs(const struct kbv_source_cfg *sc)
{
	return sc && sc->restore_command ? NULL : "its restore-command";
}

const char *kbv_kind_neo4j_restore_needs(const struct kbv_source_cfg *sc)
{
	return sc && sc->load_command ? NULL : "its load-command";
}

/* neo4j: neo4j-admin's dump to stdout and load from stdin, with the database recorded */
const struct kbv_source_key kbv_kind_neo4j_keys[] = {
	KBV_SOURCE_KEY("database", database, 0),
	KBV_SOURCE_KEY("dump-command", dump_command, 1),
	KBV_SOURCE_KEY("load-command", load_command, 1),
	KBV_SOURCE_KEY("before", before, 0),
	KBV_SOURCE_KEY("after", after, 0),
	KBV_SOURCE_KEY("drill-load-command", drill_load_command, 0),
	KBV_SOURCE_KEY("drill-cleanup-command", drill_cleanup_command, 0),
	{ NULL, 0, 0 },
};

const struct kbv_source_key kbv_kind_command_keys[] = {
	KBV_SOURCE_KEY("dump-command", dump_command, 1),
	KBV_SOURCE_KEY("restore-command", restore_command, 1),
	KBV_SOURCE_KEY("before", before, 0),
	KBV_SOURCE_KEY("after", after, 0),
	KBV_SOURCE_KEY("drill-load-command", drill_load_command, 0),
	KBV_SOURCE_KEY("drill-cleanup-command", drill_cleanup_command, 0),
	{ NULL, 0, 0 },
};
