#!/usr/bin/env bats
# The recovery runbook (docs/recovery.md) is run as written: each scenario below sets the
# scene (a real PostgreSQL server, a repository with a snapshot, then a loss) and runs the
# page's own command blocks marked for it (tests/tools/runbook.py). Only machine paths are
# replaced: /etc/kbvault, /var/backups/kbvault, /tmp/ and the install prefix, and sudo is
# dropped; and the test server's address where a psql in a container (the docker stand-in
# runs the host's) would find its server on the local socket.
load helpers
load pg
load qdrant

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"

setup_file() { pg_start; }
teardown_file() { pg_stop; }

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	unset KBVAULT_REPO KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	ETC="$TMPD/etc/kbvault"
	REPO="$TMPD/var/backups/kbvault"
	mkdir -p "$ETC" "$TMPD/bin" "$TMPD/srv/uploads/img"
	ln -s "$KBVAULT" "$TMPD/bin/kbvault"
	printf 'runbook password\n' > "$ETC/password"
	chmod 600 "$ETC/password"
	cat > "$ETC/kbvault.conf" <<EOF
[repository]
path = $REPO
password-file = $ETC/password

[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres

[source uploads]
type = path
paths = $TMPD/srv/uploads

[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres

[retention]
keep-daily = 7
EOF
	export KBVAULT_CONFIG="$ETC/kbvault.conf"
	# the knowledge base and its files
	dropdb --if-exists kb > /dev/null 2>&1 || true
	createdb kb
	psql_q -d kb -c "CREATE TABLE documents (id int PRIMARY KEY, title text, body text)" \
		-c "INSERT INTO documents SELECT g, 'doc ' || g, repeat('lorem ipsum ', 50) FROM generate_series(1, 1000) g" > /dev/null
	echo 'a picture' > "$TMPD/srv/uploads/img/a.png"
	echo 'notes' > "$TMPD/srv/uploads/notes.txt"
	PATH="$TMPD/bin:$PATH" kbvault init -q --kdf-ops 1 --kdf-mem-mib 8
	PATH="$TMPD/bin:$PATH" kbvault snapshot -q
}

teardown() {
	qdrant_stop
	for db in kb kb_restored kb_damaged; do dropdb --if-exists "$db" > /dev/null 2>&1 || true; done
}

# runbook NAME: the scenario's blocks as a script, with this machine's paths.
runbook() {
	python3 "$BATS_TEST_DIRNAME/../tools/runbook.py" \
		-s "/etc/kbvault=$ETC" -s "/var/backups/kbvault=$REPO" -s "/tmp/=$TMPD/" -s "sudo =" \
		-s "make install=make install DESTDIR=$TMPD/newhost" -s "offsite/=$TMPD/offsite/" \
		-s "http://127.0.0.1:6333=${QURL:-none}" \
		-s "knowledgebase-postgres-1 psql -d=knowledgebase-postgres-1 psql -h 127.0.0.1 -p ${PGPORT:-5432} -U postgres -d" \
		"$ROOT/docs/recovery.md" "$1"
}

run_runbook() {
	runbook "$1" > "$TMPD/$1.sh"
	(cd "${2:-$TMPD}" && PATH="${3:-$TMPD/bin}:$PATH" bash -euo pipefail -x "$TMPD/$1.sh")
}

@test "runbook 1-2: a dropped PostgreSQL database comes back under its own name" {
	# The newest snapshot holds only the files: "latest --source kb" must still find kb's.
	echo 'later' > "$TMPD/srv/uploads/later.txt"
	kbv snapshot -q --source uploads
	psql_q -d postgres -c 'DROP DATABASE kb' > /dev/null
	run run_runbook lose-postgres
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"row counts match the snapshot"* ]]
	[ "$(psql_q -At -d kb -c 'SELECT count(*) FROM documents')" = 1000 ]
}

@test "runbook 2: a database with wrong data is restored beside it and swapped in" {
	psql_q -d kb -c 'DELETE FROM documents WHERE id > 100' > /dev/null
	run run_runbook bad-postgres
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(psql_q -At -d kb -c 'SELECT count(*) FROM documents')" = 1000 ]
	[ "$(psql_q -At -d kb_damaged -c 'SELECT count(*) FROM documents')" = 100 ]
}

@test "runbook 5: lost files come back, to a scratch directory and in place" {
	want=$(cd "$TMPD/srv/uploads" && find . -type f -print0 | sort -z | xargs -0 b2sum)
	rm -rf "$TMPD/srv/uploads"
	run run_runbook lose-files
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cd "$TMPD/srv/uploads" && find . -type f -print0 | sort -z | xargs -0 b2sum)" = "$want" ]
	[ -f "$TMPD/uploads-restored/uploads/${TMPD#/}/srv/uploads/notes.txt" ]
}

@test "runbook 6: the whole machine is lost; a new host with only the repository and the password" {
	want=$(cd "$TMPD/srv/uploads" && find . -type f -print0 | sort -z | xargs -0 b2sum)
	# What was kept off the machine: the configuration and the password. The repository
	# directory survives (it stands for the copy brought to the new host).
	mkdir "$TMPD/offsite"
	cp "$ETC/kbvault.conf" "$ETC/password" "$TMPD/offsite/"
	# The loss: configuration, program, database and files.
	rm -rf "$TMPD/etc" "$TMPD/bin" "$TMPD/srv"
	psql_q -d postgres -c 'DROP DATABASE kb' > /dev/null
	unset KBVAULT_CONFIG
	run run_runbook new-host "$ROOT" "$TMPD/newhost/usr/local/bin"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -x "$TMPD/newhost/usr/local/bin/kbvault" ]
	[ "$(psql_q -At -d kb -c 'SELECT count(*) FROM documents')" = 1000 ]
	[ "$(cd "$TMPD/srv/uploads" && find . -type f -print0 | sort -z | xargs -0 b2sum)" = "$want" ]
	[[ "$output" == *"drill kb: PASS"* ]]
	[[ "$output" == *"KBVAULT OK"* ]]
	# the schedule resumed: a second snapshot, deduplicated against the first
	export KBVAULT_CONFIG="$ETC/kbvault.conf"
	[ "$(kbv snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]
}

@test "runbook 3: lost Qdrant collections are uploaded again (Qdrant STAND-IN)" {
	qdrant_start
	cat >> "$ETC/kbvault.conf" <<EOF

[source vectors]
type = qdrant
url = $QURL
EOF
	kbv snapshot -q --source vectors
	curl -sf -X DELETE "$QURL/collections/docs" > /dev/null
	run run_runbook lose-qdrant
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"restored collection 'docs' as 'docs': 1000 points, as the snapshot recorded"* ]]
	[[ "$output" == *'"points_count":1000'* ]] || [[ "$output" == *'"points_count": 1000'* ]]
}

@test "runbook 4: a lost Neo4j database is loaded again through load-command (neo4j-admin STAND-IN)" {
	standin="$BATS_TEST_DIRNAME/../standins/neo4j-admin"
	export NEO4J_STANDIN_HOME="$TMPD/neo4j"
	store="$NEO4J_STANDIN_HOME/data/databases/neo4j"
	mkdir -p "$store"
	head -c 200000 /dev/urandom > "$store/neostore.nodestore.db"
	want=$(b2sum < "$store/neostore.nodestore.db")
	cat >> "$ETC/kbvault.conf" <<EOF

[source graph]
type = neo4j
dump-command = $standin database dump neo4j --to-stdout
load-command = $standin database load neo4j --from-stdin --overwrite-destination=true
EOF
	kbv snapshot -q --source graph
	rm -rf "$store"
	run run_runbook lose-neo4j
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(b2sum < "$store/neostore.nodestore.db")" = "$want" ]
}

@test "runbook 4: databases in Docker: Neo4j and PostgreSQL come back through the containers (docker and neo4j-admin STAND-INs)" {
	export PATH="$BATS_TEST_DIRNAME/../standins:$PATH"
	export DOCKER_STANDIN_HOME="$TMPD/docker" DOCKER_STANDIN_LOG="$TMPD/docker.log"
	c="$DOCKER_STANDIN_HOME/containers"
	mkdir -p "$c/knowledgebase-postgres-1" "$c/knowledgebase-neo4j-1" "$DOCKER_STANDIN_HOME/volumes/knowledgebase_neo4j_data/databases/neo4j"
	echo running > "$c/knowledgebase-postgres-1/state"
	echo "knowledgebase_neo4j_data:/data" > "$c/knowledgebase-neo4j-1/mounts"
	echo neo4j:5-community > "$c/knowledgebase-neo4j-1/image"
	store="$DOCKER_STANDIN_HOME/volumes/knowledgebase_neo4j_data/databases/neo4j"
	head -c 200000 /dev/urandom > "$store/neostore.nodestore.db"
	want=$(b2sum < "$store/neostore.nodestore.db")
	docker start knowledgebase-neo4j-1 > /dev/null
	# The README's configuration for these two sources, the server's address substituted.
	python3 - "$ROOT/README.md" "$PGPORT" >> "$ETC/kbvault.conf" <<'PY'
import re, sys
readme, port = sys.argv[1], sys.argv[2]
text = open(readme).read().split("## Databases in containers", 1)[1]
ini = re.search(r"```ini\n(.*?)```", text, re.S).group(1)
for sect in re.split(r"\n(?=\[)", ini):
    if sect.startswith("[source graph]"):
        print("\n" + sect.strip())
    if sect.startswith("[source kb]"):
        pre = [l for l in sect.splitlines() if l.startswith("client-command-prefix")]
        print("\n".join(pre))
PY
	# the prefix line was printed last: move it into [source kb]
	prefix=$(grep '^client-command-prefix' "$ETC/kbvault.conf")
	sed -i '/^client-command-prefix/d' "$ETC/kbvault.conf"
	sed -i "/^dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres/a $prefix" "$ETC/kbvault.conf"
	kbv snapshot -q
	grep -q 'docker exec -i -e PGPASSWORD knowledgebase-postgres-1 pg_dump' "$DOCKER_STANDIN_LOG"
	rm -rf "$store"
	psql_q -d postgres -c 'DROP DATABASE kb' > /dev/null
	run run_runbook containers
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(b2sum < "$store/neostore.nodestore.db")" = "$want" ]
	[[ "$output" == *"1000"* ]]
	[ "$(psql_q -At -d kb -c 'SELECT count(*) FROM documents')" = 1000 ]
	[ "$(cat "$c/knowledgebase-neo4j-1/state")" = running ]
}
