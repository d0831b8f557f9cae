/* kbvault snapshot: sources that are a dump command (type = command, type = neo4j, with
 * optional before/after hooks) or files (type = path). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap.h"
#include "shell.h"
#include "kbv/error.h"
#include "kbv/source.h"

int snap_add_dump_command(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char name[256], what[200];
	int neo4j = sc->type == KBV_SOURCE_NEO4J, rc = 0;
	if (neo4j)
		snprintf(name, sizeof name, "%s/%s.dump", sc->name, sc->database ? sc->database : "neo4j");
	else
		snprintf(name, sizeof name, "%s/dump", sc->name);
	snprintf(what, sizeof what, "the dump-command of source '%s'", sc->name);
	if (sc->before)
		rc = shell_hook(sc->name, "before hook", sc->before);
	if (rc == 0) {
		pid_t pid;
		int fd;
		rc = shell_start(sc->dump_command, -1, &pid, &fd);
		if (rc == 0)
			rc = snap_store_child(c, name, pid, fd, what);
	}
	/* The after hook runs whatever happened: it restarts what before stopped. */
	if (sc->after) {
		int arc = shell_hook(sc->name, "after hook", sc->after);
		if (arc < 0 && rc == 0) {
			cli_warn("%s; the dump itself succeeded and is kept", kbv_errmsg());
			c->hook_failed = 1;
		}
	}
	if (rc < 0)
		return rc;
	*meta = json_pack("{s:{s:s}}", "streams", "dump", name);
	if (neo4j)
		json_object_set_new(*meta, "database", json_string(sc->database ? sc->database : "neo4j"));
	return 0;
}

int snap_add_paths(struct snap_ctx *c, const struct kbv_source_cfg *sc, json_t **meta)
{
	char *list = strdup(sc->paths), *save = NULL;
	json_t *paths = json_array();
	int rc = 0;
	if (!list)
		return kbv_error(KBV_ENOMEM, "out of memory");
	for (char *p = strtok_r(list, " \t,", &save); p && rc == 0; p = strtok_r(NULL, " \t,", &save)) {
		char rel[PATH_MAX], name[PATH_MAX + 80];
		if (p[0] != '/') {
			rc = kbv_error(KBV_EINVAL, "source '%s': path '%s' is not absolute (it is restored to where it was)",
				       sc->name, p);
			break;
		}
		if ((rc = kbv_path_to_name(p, rel, sizeof rel)) < 0)
			break;
		snprintf(name, sizeof name, "%s/%s", sc->name, rel);
		c->exclude = sc->exclude;
		rc = kbv_walk(p, name, snap_add_path, c);
		c->exclude = NULL;
		json_array_append_new(paths, json_string(p));
	}
	free(list);
	if (rc < 0) {
		json_decref(paths);
		return rc;
	}
	*meta = json_pack("{s:o}", "paths", paths);
	if (sc->exclude)
		json_object_set_new(*meta, "exclude", json_string(sc->exclude));
	return 0;
}
