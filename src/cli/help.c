/* kbvault help: each command's summary and usage, and the global options. The man pages
 * (docs/man/) say the same at length; tests/cli/ops.bats keeps them in step. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command_help {
	const char *name;
	const char *summary;
	const char *usage;
};

static const struct command_help commands[] = {
	{ "init", "create a repository",
	  "kbvault init [--no-encryption] [--chunk-avg BYTES] [--zstd-level N] [--kdf-ops N] [--kdf-mem-mib N]\n"
	  "             [--object-lock-days N] [--id-hash blake3|blake2b]\n"
	  "  Creates the repository (-r/KBVAULT_REPO, or the default) encrypted with a password.\n"
	  "  --chunk-avg   average chunk size, a power of two (default 8192); fixed for the repository\n"
	  "  --zstd-level  compression level 1..19 (default 1)\n"
	  "  --object-lock-days N  object storage: a bucket with S3 Object Lock; everything stored is\n"
	  "                retained N days (COMPLIANCE: nobody can delete it); gc extends it\n"
	  "  --id-hash     keyed hash of chunk ids: blake3 (default; kbvault from 2026-12-01 on) or\n"
	  "                blake2b (readable by older kbvault builds)\n" },
	{ "snapshot", "store streams and files as one snapshot",
	  "kbvault snapshot [--source NAME]... [--tag TAG]... [--host HOST]\n"
	  "kbvault snapshot [--stdin NAME [--allow-empty]] [--command NAME]... [--tag TAG]... [--host HOST] [PATH]...\n"
	  "                 [-- CMD [ARG]... [-- CMD [ARG]...]]\n"
	  "  (no streams)    one application snapshot of every source in the configuration; all or\n"
	  "                  nothing: if one source fails, no snapshot is recorded\n"
	  "  --source NAME   only this configured source (repeatable)\n"
	  "  --stdin NAME    store standard input as the stream NAME; an empty input is refused (a\n"
	  "                  dump that failed) unless --allow-empty. Pipe with 'set -o pipefail'\n"
	  "  --command NAME  run the command after '--' (one group per --command, separated by '--')\n"
	  "                  and store its output as NAME; if it fails, no snapshot is recorded\n"
	  "  PATH            files and directories, recursively, with mode and mtime\n" },
	{ "snapshots", "list snapshots", "kbvault snapshots [--json]\n" },
	{ "restore", "restore streams of a snapshot",
	  "kbvault restore SNAPSHOT (--stdout | --target DIR) [--source NAME] [--stream NAME]... [--host HOST] [--tag TAG]...\n"
	  "                [--overwrite]\n"
	  "kbvault restore SNAPSHOT --source NAME --target-db DB [--target-dsn CONNINFO] [--force] [--owner ROLE]\n"
	  "kbvault restore SNAPSHOT --source NAME --table TABLE (--target-db DB [--target-dsn CONNINFO] | --stdout)\n"
	  "kbvault restore SNAPSHOT (--source NAME... | --all-sources) [--in-place] [--force] [--target-url URL]\n"
	  "                [--collection-suffix S]\n"
	  "kbvault restore SNAPSHOT --source NAME --target-dir DIR\n"
	  "                [--target-time TIME | --target-lsn LSN | --target-xid XID | --target-immediate]\n"
	  "  SNAPSHOT      a full id, a unique prefix (4+ hex digits), or 'latest': the newest snapshot\n"
	  "                holding the --source and --stream named, of --host, with every --tag\n"
	  "  --stdout      write the one selected stream to standard output (--json's summary goes to\n"
	  "                standard error)\n"
	  "  --target DIR  write every selected stream as a file under DIR; files there are kept (exit 1)\n"
	  "                unless --overwrite; no symlink in DIR is followed\n"
	  "  --stream NAME select a stream (or a directory and everything below it)\n"
	  "  --source NAME select the streams of a configured source\n"
	  "  --target-db DB  create DB on the source's server (or --target-dsn's) and load the\n"
	  "                PostgreSQL source into it, then compare row counts with the snapshot\n"
	  "  --force       drop and recreate DB when it exists and is not empty\n"
	  "  --owner ROLE  DB belongs to ROLE (default: the owner the snapshot recorded, when that role\n"
	  "                exists; its database access list is restored too)\n"
	  "  --source NAME alone (repeatable), --all-sources: back into each source: PostgreSQL\n"
	  "                into its recorded database (--force if it holds tables), Qdrant upload,\n"
	  "                Neo4j load-command, command restore-command, paths with --in-place\n"
	  "  --target-url, --collection-suffix   Qdrant: another server, collection names + S\n"
	  "  --table TABLE one table (schema.table) of a native or pg_dump snapshot: its schema, indexes,\n"
	  "                own constraints and sequences and its rows, into DB (created when missing; an\n"
	  "                existing one must not have the table) and checked, or as SQL to stdout\n"
	  "  --target-dir DIR  a PostgreSQL base backup (mode = physical) into the empty DIR, set up\n"
	  "                to recover through 'kbvault wal-fetch'; 'latest' with --target-time is the\n"
	  "                newest base backup that ended before TIME\n"
	  "  --target-time TIME ('2026-11-30 14:05:00+00'), --target-lsn LSN, --target-xid XID,\n"
	  "  --target-immediate  where recovery stops (default: the end of the WAL archive); a gap\n"
	  "                in the archive before the target is refused (exit 5)\n" },
	{ "drill", "prove a snapshot restores: load it into a scratch database and compare",
	  "kbvault drill [SNAPSHOT] [--source NAME]... [--target-time TIME]\n"
	  "  Restores every source of SNAPSHOT (default: each source at its own newest snapshot) somewhere\n"
	  "  scratch and checks it:\n"
	  "  PostgreSQL into a database on [drill] postgres-dsn (row counts and checksums), Qdrant\n"
	  "  into scratch collections (point counts), paths into a scratch directory (hashes), Neo4j\n"
	  "  and command sources through drill-load-command. Scratch copies are removed; the\n"
	  "  verdict is recorded in the repository. Exit 0 when all passed, 5 when one differs.\n"
	  "  A PostgreSQL base backup (mode = physical) is recovered in a scratch server on a free\n"
	  "  loopback port through the WAL archive, to --target-time TIME or the end of the archive;\n"
	  "  every database's tables are counted and its B-tree indexes checked with amcheck.\n" },
	{ "forget", "remove snapshots (space comes back at the next gc)", "kbvault forget SNAPSHOT...\n" },
	{ "gc", "apply the retention policy and collect garbage",
	  "kbvault gc [[--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N]\n"
	  "           [--keep-yearly N] [--keep-within DURATION] [--keep-tag TAG]... | --keep-all]\n"
	  "           [--dry-run] [--max-unused PCT] [--max-repack SIZE] [--allow-remove-all] [--keep-delete DURATION]\n"
	  "  The policy comes from the options, else from [retention] in the configuration; without\n"
	  "  either, gc refuses. Snapshots compete within a group (same host, same sources). The\n"
	  "  newest snapshot of each bucket is kept; policies combine as a union. Then every pack\n"
	  "  with nothing live is deleted, and packs with dead blobs are repacked, most dead first,\n"
	  "  until the dead bytes left are at most --max-unused (default 10%) of what is kept; at\n"
	  "  most --max-repack bytes of packs per run. --dry-run shows the plan. Packs are condemned\n"
	  "  in a deletion plan first and deleted by a gc --keep-delete (default 0: this one) later,\n"
	  "  on the storage's clock; one gc at a time (on object storage: the gc lock).\n" },
	{ "status", "is the backup alive? (Nagios/Icinga plugin conventions)",
	  "kbvault status [--max-age AGE] [--json]\n"
	  "  First line: KBVAULT OK|WARNING|CRITICAL|UNKNOWN - summary | perfdata. Per source: the\n"
	  "  last snapshot, its age and size; the last drill and gc; the repository size.\n"
	  "  Exit 0 OK; 1 WARNING (a source's last snapshot older than AGE, or the last drill\n"
	  "  failed); 2 CRITICAL (older than twice AGE, or none); 3 UNKNOWN (unreadable).\n"
	  "  AGE: 90s, 30m, 26h (default, or [monitor] max-age), 2d.\n" },
	{ "stats", "repository size, deduplication and compression", "kbvault stats [--json]\n" },
	{ "unlock", "remove a dead gc's lock",
	  "kbvault unlock [--json]\n"
	  "  Removes the gc lock of a repository on object storage only when it is stale (not\n"
	  "  refreshed for 30 minutes by the storage's clock); a live gc's lock is left. Exit 6 then.\n" },
	{ "wal-push", "archive a WAL file (PostgreSQL's archive_command)",
	  "kbvault wal-push [--source NAME] PATH\n"
	  "  archive_command = 'kbvault wal-push %p'. Stores the file durably, then exits 0; the same\n"
	  "  file pushed again is a success, other bytes under an archived name are refused (exit 1).\n"
	  "  NAME defaults to the configuration's one source with type = postgres, mode = physical.\n" },
	{ "wal-fetch", "restore an archived WAL file (PostgreSQL's restore_command)",
	  "kbvault wal-fetch [--source NAME] FILE DEST\n"
	  "  restore_command = 'kbvault wal-fetch %f %p'. Writes the verified file to DEST; a file the\n"
	  "  archive does not hold exits 1 without a message (PostgreSQL asks for such files).\n" },
	{ "check", "verify the repository",
	  "kbvault check [--read-data | --read-data-subset PCT]\n"
	  "  Verifies packs against the index and every snapshot's references; with --read-data also\n"
	  "  decrypts, decompresses and hashes every blob; with --read-data-subset a rotating share\n"
	  "  of the packs a day. Exit 5 when problems were found.\n" },
	{ "repair", "rebuild the index from the packs", "kbvault repair index\n" },
	{ "copy", "copy snapshots from another repository into this one",
	  "kbvault copy --from-repo REPO [--from-password-file FILE] [SNAPSHOT]...\n"
	  "  Every snapshot of REPO (or the ones named) that this repository lacks is read, verified\n"
	  "  and stored here with its time, host, tags and sources; only chunks this repository\n"
	  "  lacks are written. Running it again copies nothing.\n"
	  "  --from-repo REPO          the repository to copy from (a directory or s3:...)\n"
	  "  --from-password-file FILE its password (else $KBVAULT_FROM_PASSWORD_FILE)\n" },
	{ "key", "list, add, remove and change the repository's passwords",
	  "kbvault key list\n"
	  "kbvault key add [--new-password-file FILE]\n"
	  "kbvault key remove ID [--force]\n"
	  "kbvault key passwd [--new-password-file FILE]\n"
	  "  Every key opens the repository with its own password; init made the first ('key').\n"
	  "  --new-password-file FILE  the new password (else $KBVAULT_NEW_PASSWORD_FILE, or typed)\n"
	  "  --force                   remove the key this command opened the repository with\n" },
	{ "bench", "what each chunk size would make of your dumps (writes nothing)",
	  "kbvault bench chunking [--sizes 4K,8K,...] [--zstd-level N] [--json] FILE...\n"
	  "  Chunks the files in order (each a stream, like successive nights' dumps) at each average\n"
	  "  chunk size and prints chunks, distinct chunks, dedup ratio (raw / distinct), estimated\n"
	  "  stored bytes (compressed as the writer would), estimated index size and speed, then what\n"
	  "  each file would add. No repository, no password.\n"
	  "  --sizes       average chunk sizes, powers of two 1K..4M (default 4K,8K,16K,32K,64K,128K,256K,1M)\n"
	  "  --zstd-level  compression for the estimate (default 1, as init; 0: none)\n" },
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static const char global_help[] =
	"Global options (before or after the command):\n"
	"  -c, --config FILE       configuration file (else $KBVAULT_CONFIG, ./kbvault.conf,\n"
	"                          /etc/kbvault/kbvault.conf); flags and environment override it\n"
	"  -r, --repo PATH         repository (else $KBVAULT_REPO, the config's [repository] path,\n"
	"                          or ~/.local/share/kbvault/repo)\n"
	"      --password-file F   read the password from F (else $KBVAULT_PASSWORD_FILE,\n"
	"                          $KBVAULT_PASSWORD, the config's password-file, or a prompt)\n"
	"  -q, --quiet             no progress and no summary\n"
	"      --json              machine-readable output on stdout\n"
	"  -v, --verbose           log INFO events on stderr too (-vv: and DEBUG)\n"
	"      --lock-wait DURATION  wait at most this long for a repository lock another process\n"
	"                          holds (default 10m; 0: fail at once), then exit 6 naming it\n"
	"Exit codes: 0 ok, 1 failure, 2 usage, 3 no repository or unknown format version,\n"
	"            4 wrong or missing password, 5 data failed verification, 6 locked, 7 source failed\n";

int cli_is_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return 1;
	return 0;
}

void cli_help(const char *cmd)
{
	for (size_t i = 0; cmd && i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, cmd) == 0) {
			printf("usage: %s\n%s(man kbvault-%s for the whole page)\n", commands[i].usage, global_help,
			       commands[i].name);
			return;
		}
	}
	printf("usage: kbvault [global options] COMMAND [options]\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("  %-10s %s\n  %-10s %s\n\n%s", "help", "help on a command", "version", "print the version", global_help);
}
