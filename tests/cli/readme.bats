#!/usr/bin/env bats
# The README, walked as a new user walks it: its "Using it" block runs as written against
# a real PostgreSQL (tests/tools/runbook.py). Only machine paths change (/var/backups,
# /etc, /srv), the example snapshot id becomes a real one, and neo4j-dump.sh is a
# one-line stand-in on PATH.
load helpers
load pg

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"

setup_file() { pg_start; }
teardown_file() { pg_stop; }

@test "README: the 'Using it' commands run as written" {
	export TMPD="$BATS_TEST_TMPDIR"
	unset KBVAULT_REPO KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	dropdb --if-exists kb > /dev/null 2>&1 || true
	createdb kb
	psql_q -d kb -c "CREATE TABLE documents (id int PRIMARY KEY, body text)" \
		-c "INSERT INTO documents SELECT g, 'doc ' || g FROM generate_series(1, 2000) g" > /dev/null
	mkdir -p "$TMPD/etc/kbvault" "$TMPD/etc/kb" "$TMPD/srv/exports" "$TMPD/bin" "$TMPD/work"
	printf 'readme password\n' > "$TMPD/etc/kbvault/password"
	chmod 600 "$TMPD/etc/kbvault/password"
	echo "setting = 1" > "$TMPD/etc/kb.conf"
	echo "kb config" > "$TMPD/etc/kb/app.ini"
	seq 1 5000 > "$TMPD/srv/exports/export.csv"
	printf '#!/bin/sh\necho "a graph dump"\n' > "$TMPD/bin/neo4j-dump.sh"
	chmod +x "$TMPD/bin/neo4j-dump.sh"
	ln -s "$KBVAULT" "$TMPD/bin/kbvault"
	seq 1 20000 > "$TMPD/work/night1.sql"
	{ seq 1 20000; echo changed; } > "$TMPD/work/night2.sql"
	python3 "$BATS_TEST_DIRNAME/../tools/runbook.py" -s "/var/backups/=$TMPD/var/backups/" -s "/etc/=$TMPD/etc/" \
		-s "/srv/=$TMPD/srv/" -s "3fa2c1=\$(kbvault snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1][\"short_id\"])')" \
		"$ROOT/README.md" readme-using > "$TMPD/using.sh"
	cd "$TMPD/work"
	run env PATH="$TMPD/bin:$PATH" bash -euo pipefail -x "$TMPD/using.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^snapshot .* saved' <<< "$output")" -ge 4 ]
	cmp "$TMPD/work/kb.sql" "$TMPD/work/kb-again.sql"
	[ -f "$TMPD/work/restored/graph.dump" ]
	[[ "$output" == *"check --read-data:"*"ok, 0 problems"* ]]
	[[ "$output" == *"index rebuilt from"* ]]
}
