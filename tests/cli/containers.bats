#!/usr/bin/env bats
# Databases in containers, the set-up kbvault replaces (docker exec ... pg_dump): through a
# STAND-IN for the docker CLI (tests/standins/docker: same calls, same isolation of the
# environment, same refusals; Docker cannot run here) in front of the real PostgreSQL
# client programs and server, and the neo4j-admin stand-in.
load helpers
load pg

setup_file() { pg_start; }
teardown_file() { pg_stop; }

STANDINS="$BATS_TEST_DIRNAME/../standins"

setup() {
	setup_repo
	export PATH="$STANDINS:$PATH"
	export DOCKER_STANDIN_HOME="$TMPD/docker" DOCKER_STANDIN_LOG="$TMPD/docker.log"
	mkdir -p "$DOCKER_STANDIN_HOME/containers/kb-postgres-1"
	echo running > "$DOCKER_STANDIN_HOME/containers/kb-postgres-1/state"
	echo postgres:15 > "$DOCKER_STANDIN_HOME/containers/kb-postgres-1/image"
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	createdb kb
	psql_q -d kb -c "CREATE TABLE documents (id int PRIMARY KEY, body text)" \
		-c "INSERT INTO documents SELECT g, 'doc ' || g FROM generate_series(1, 500) g" > /dev/null
}

teardown() {
	for d in $(psql_q -At -d postgres -c "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres','template0','template1')"); do
		dropdb --if-exists "$d" > /dev/null 2>&1 || true
	done
	psql_q -c "DROP ROLE IF EXISTS kbsecret" > /dev/null 2>&1 || true
}

@test "PostgreSQL in a container: pg_dump and psql run through client-command-prefix; native mode, restore and drill work" {
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres
client-command-prefix = docker exec -i -e PGPASSWORD kb-postgres-1

[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
EOF
	# The host's PG* settings do not reach into the container: only the command line can.
	kbv snapshot -q
	grep -q '^docker exec -i -e PGPASSWORD kb-postgres-1 pg_dump -Fp --snapshot=.*--dbname=' "$DOCKER_STANDIN_LOG"
	grep -q '^docker exec -i -e PGPASSWORD kb-postgres-1 pg_dump --version' "$DOCKER_STANDIN_LOG"
	[ "$(kbv snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["sources"][0]["meta"]["mode"])')" = native ]
	kbv restore latest --source kb --target-db kb_back -q
	grep -q '^docker exec -i -e PGPASSWORD kb-postgres-1 psql ' "$DOCKER_STANDIN_LOG"
	[ "$(psql_q -At -d kb_back -c 'SELECT count(*) FROM documents')" = 500 ]
	run kbv drill
	[ "$status" -eq 0 ]
	[[ "$output" == *"drill kb: PASS"* ]]
	# A stopped container: Docker's refusal reaches the user, nothing is recorded.
	echo stopped > "$DOCKER_STANDIN_HOME/containers/kb-postgres-1/state"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"container kb-postgres-1 is not running"* ]]
	[ "$(snap_count)" = 1 ]
}

@test "through a prefix the password crosses in PGPASSWORD, never on a command line" {
	pg_password_role kbsecret pa55-in-the-dsn
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=kbsecret password=pa55-in-the-dsn
client-command-prefix = docker exec -i -e PGPASSWORD kb-postgres-1
EOF
	run kbv snapshot -q
	pg_password_role_end kbsecret
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(snap_count)" = 1 ]
	! grep -q 'pa55' "$DOCKER_STANDIN_LOG" || { grep pa55 "$DOCKER_STANDIN_LOG"; false; }
	grep -q "user='kbsecret'" "$DOCKER_STANDIN_LOG"
}

@test "a pg_dump older than the server is refused before anything runs, naming both versions and the way out" {
	mkdir -p "$TMPD/oldbin"
	printf '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n' > "$TMPD/oldbin/pg_dump"
	chmod +x "$TMPD/oldbin/pg_dump"
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres
pg-bin-dir = $TMPD/oldbin
EOF
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"pg_dump is version 9 and the server 1"*"set pg-bin-dir"*"client-command-prefix"* ]]
	[ "$(snap_count)" = 0 ]
	# pg-bin-dir pointing at the server's own client programs works
	sed -i "s|^pg-bin-dir = .*|pg-bin-dir = $PGBIN|" "$KBVAULT_CONFIG"
	kbv snapshot -q
	[ "$(snap_count)" = 1 ]
	sed -i "s|^pg-bin-dir = .*|pg-bin-dir = relative/bin|" "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 2 ]
	[[ "$output" == *"pg-bin-dir must be an absolute path"* ]]
}

neo4j_setup() {
	mkdir -p "$DOCKER_STANDIN_HOME/containers/kb-neo4j-1" "$DOCKER_STANDIN_HOME/volumes/kb_neo4j_data/databases/neo4j"
	echo "kb_neo4j_data:/data" > "$DOCKER_STANDIN_HOME/containers/kb-neo4j-1/mounts"
	echo neo4j:5-community > "$DOCKER_STANDIN_HOME/containers/kb-neo4j-1/image"
	head -c 200000 /dev/urandom > "$DOCKER_STANDIN_HOME/volumes/kb_neo4j_data/databases/neo4j/neostore.nodestore.db"
	echo v1 > "$DOCKER_STANDIN_HOME/volumes/kb_neo4j_data/databases/neo4j/version.txt"
	docker start kb-neo4j-1 > /dev/null
}

@test "Neo4j Community in Docker: stop, dump in a throw-away container on the volume, start; restore the same way" {
	neo4j_setup
	# The recipe of README.md, as written there.
	cat > "$KBVAULT_CONFIG" <<EOF
[source graph]
type = neo4j
database = neo4j
before = docker stop kb-neo4j-1
dump-command = docker run --rm -v kb_neo4j_data:/data neo4j:5-community neo4j-admin database dump neo4j --to-stdout
after = docker start kb-neo4j-1
load-command = docker run --rm -i -v kb_neo4j_data:/data neo4j:5-community neo4j-admin database load neo4j --from-stdin --overwrite-destination=true
EOF
	: > "$DOCKER_STANDIN_LOG"
	kbv snapshot -q
	# the sequence: stopped, dumped offline, started again
	[ "$(cut -d' ' -f2 "$DOCKER_STANDIN_LOG" | tr '\n' ' ')" = "stop run start " ]
	[ "$(cat "$DOCKER_STANDIN_HOME/containers/kb-neo4j-1/state")" = running ]
	echo v2 > "$DOCKER_STANDIN_HOME/volumes/kb_neo4j_data/databases/neo4j/version.txt"
	: > "$DOCKER_STANDIN_LOG"
	kbv restore latest --source graph -q
	[ "$(cut -d' ' -f2 "$DOCKER_STANDIN_LOG" | tr '\n' ' ')" = "stop run start " ]
	[ "$(cat "$DOCKER_STANDIN_HOME/volumes/kb_neo4j_data/databases/neo4j/version.txt")" = v1 ]
	# The old example (stop the container, then docker exec into it) cannot work, and says so.
	sed -i 's|^dump-command = .*|dump-command = docker exec kb-neo4j-1 neo4j-admin database dump neo4j --to-stdout|' "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"container kb-neo4j-1 is not running"* ]]
	# Without the before hook, the running database refuses an offline dump (Community).
	sed -i '/^before = /d; s|^dump-command = .*|dump-command = docker run --rm -v kb_neo4j_data:/data neo4j:5-community neo4j-admin database dump neo4j --to-stdout|' "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"The database is in use"* ]]
}
