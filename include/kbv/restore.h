/* Restoring entries of a snapshot into a directory tree, safely in a hostile target: every
 * path is walked from a directory descriptor, no symlink the snapshot did not create is
 * followed, files are written under unpredictable names and renamed into place. */
#ifndef KBV_RESTORE_H
#define KBV_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "kbv/reader.h"
#include "kbv/snapshot.h"

struct kbv_restore_opts {
	/* Which entries (NULL: all). */
	int (*select)(const struct kbv_entry *e, void *arg);
	void *select_arg;
	/* Leading bytes of each entry name left out on disk ("<source>/" for in-place). */
	size_t strip;
	/* Replace files and symlinks that exist at an entry's path. Without it they are left
	 * as they are and counted in `skipped` (restic's --overwrite never). */
	int overwrite;
	/* Follow a symlink met in a directory component when it is owned by root or by the
	 * restoring user (in-place restores into the live file system, where /var/run and
	 * the like are links). Off: no symlink in the target is ever followed. */
	int follow_trusted_links;
	/* Called after each file's bytes (may be NULL). */
	void (*progress)(void *arg, uint64_t bytes);
	void *progress_arg;
	/* Called for each entry left alone because it exists (may be NULL). */
	void (*skipped)(void *arg, const char *path);
	void *skipped_arg;
};

struct kbv_restore_result {
	size_t entries; /* entries restored */
	size_t skipped; /* entries left alone because something exists there */
	uint64_t bytes; /* file bytes written */
};

/* Restore the selected entries of s (entries loaded) under `dir` (created if missing).
 * Directories are merged; their modes and times are applied last, deepest first. A file is
 * written to a temporary name (O_EXCL, O_NOFOLLOW) in its directory and renamed over the
 * final name once verified, so a planted symlink is replaced, never written through.
 * Run as root, entries that recorded an owner get it back (by name when the name exists
 * here, else by number); setuid and setgid bits are restored only with the owner. Returns 0 or a
 * KBV_E* code naming the entry; `res` counts what was done up to then. */
int kbv_restore_dir(struct kbv_reader *rd, const struct kbv_snapshot *s, const char *dir,
		    const struct kbv_restore_opts *o, struct kbv_restore_result *res);

#endif
