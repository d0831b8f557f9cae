#!/usr/bin/env bats
# Sources other than PostgreSQL in application snapshots: a neo4j source driven through a
# STAND-IN for neo4j-admin (tests/standins/neo4j-admin: same commands, same dump header,
# same exit codes; no Neo4j server can be installed here), command sources and path
# sources. Then one application snapshot holding PostgreSQL (a real server), Neo4j, a path
# and a command source, and what a failure of any one of them does.
load helpers
load pg
load qdrant

setup_file() { pg_start; }
teardown_file() { pg_stop; }

STANDIN="$BATS_TEST_DIRNAME/../standins/neo4j-admin"

setup() {
	setup_repo
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	export NEO4J_STANDIN_HOME="$TMPD/neo4j"
	store="$NEO4J_STANDIN_HOME/data/databases/neo4j"
	mkdir -p "$store/schema"
	head -c 300000 /dev/urandom > "$store/neostore.nodestore.db"
	seq 1 20000 > "$store/neostore.relationshipstore.db"
	echo v1 > "$store/schema/index.txt"
	LOG="$TMPD/hooks.log"
}

teardown() {
	qdrant_stop
	dropdb --if-exists kbsrc > /dev/null 2>&1 || true
	dropdb --if-exists kbsrc_back > /dev/null 2>&1 || true
}

neo4j_conf() {
	cat >> "$KBVAULT_CONFIG" <<EOF
[source graph]
type = neo4j
database = neo4j
dump-command = $STANDIN database dump neo4j --to-stdout
load-command = $STANDIN database load neo4j --from-stdin --overwrite-destination=true
before = echo before >> $LOG
after = echo after >> $LOG
EOF
}

store_sum() { (cd "$store" && find . -type f -print0 | sort -z | xargs -0 b2sum); }

@test "neo4j: dump between the hooks, restore through load-command between the hooks" {
	neo4j_conf
	kbv snapshot -q
	[ "$(cat "$LOG")" = "$(printf 'before\nafter')" ]
	want=$(store_sum)
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
assert [x["name"] for x in s["streams"]] == ["graph/neo4j.dump"], s["streams"]
assert s["sources"] == [{"name": "graph", "type": "neo4j", "meta": {"database": "neo4j", "streams": {"dump": "graph/neo4j.dump"}}}], s'
	# The stored stream is the dump as neo4j-admin wrote it.
	[ "$(kbv restore latest --source graph --stdout | head -c 4)" = DZV1 ]
	echo v2 > "$store/schema/index.txt"
	rm "$store/neostore.nodestore.db"
	kbv restore latest --source graph
	[ "$(store_sum)" = "$want" ]
	[ "$(tail -2 "$LOG")" = "$(printf 'before\nafter')" ]
}

@test "neo4j: a dump that fails midway records nothing; the after hook still runs" {
	neo4j_conf
	NEO4J_STANDIN_FAIL=dump-midway run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"source 'graph' failed"*"exited with status 1"* ]]
	[ "$(snap_count)" = 0 ]
	[ "$(cat "$LOG")" = "$(printf 'before\nafter')" ]
	kbv check
}

@test "neo4j: a before hook that fails stops the source (after still runs); an after hook that fails is reported" {
	neo4j_conf
	sed -i 's/^before = .*/before = echo before >> '"${LOG//\//\\/}"'; exit 3/' "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"before hook of source 'graph' exited with status 3"* ]]
	[ "$(snap_count)" = 0 ]
	[ "$(cat "$LOG")" = "$(printf 'before\nafter')" ]
	# The dump worked but the database did not come back: the snapshot is kept, and the
	# exit status and the message say what needs attention.
	sed -i 's/^before = .*/before = true/; s/^after = .*/after = exit 4/' "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 1 ]
	[[ "$output" == *"after hook of source 'graph' exited with status 4"* ]]
	[[ "$output" == *"is recorded, but an after hook failed"* ]]
	[ "$(snap_count)" = 1 ]
}

@test "neo4j: a load that fails is an error, and a damaged snapshot never reaches load-command whole" {
	neo4j_conf
	kbv snapshot -q
	NEO4J_STANDIN_FAIL=load run kbv restore latest --source graph
	[ "$status" -eq 7 ]
	[[ "$output" == *"load-command of source 'graph' exited with status 1"* ]]
	echo v2 > "$store/schema/index.txt"
	pack=$(a_pack)
	flip_byte "$pack" $(($(stat -c %s "$pack") / 2))
	run kbv restore latest --source graph
	[ "$status" -eq 5 ]
	[[ "$output" == *"killed before the end of its input"* ]]
	[ "$(cat "$store/schema/index.txt")" = v2 ] # the store was not overwritten
}

@test "command source: any dump/restore pair, exit statuses checked both ways" {
	mkdir -p "$TMPD/cache"
	seq 1 5000 > "$TMPD/cache/a"
	cat > "$KBVAULT_CONFIG" <<EOF
[source cache]
type = command
dump-command = tar -C $TMPD/cache -cf - . | gzip -1 | gzip -d
restore-command = tar -C $TMPD/cache -xf -
EOF
	kbv snapshot -q
	rm "$TMPD/cache/a"
	kbv restore latest --source cache
	[ "$(seq 1 5000)" = "$(cat "$TMPD/cache/a")" ]
	# The pipe a restore-command reads is 1 MiB wide (every child's stdin pipe is widened
	# before it starts), and the bytes are the same.
	sed -i "s|^restore-command = .*|restore-command = python3 -c 'import fcntl; print(fcntl.fcntl(0, fcntl.F_GETPIPE_SZ))' > $TMPD/size; tar -C $TMPD/cache -xf -|" "$KBVAULT_CONFIG"
	rm "$TMPD/cache/a"
	kbv restore latest --source cache
	[ "$(seq 1 5000)" = "$(cat "$TMPD/cache/a")" ]
	[ "$(cat "$TMPD/size")" = 1048576 ]
	# A pipeline whose first command fails is a failure (bash -o pipefail).
	sed -i 's|^dump-command = .*|dump-command = tar -C /nonexistent -cf - . \| cat|' "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[ "$(snap_count)" = 1 ]
	sed -i 's|^restore-command = .*|restore-command = cat > /dev/null; exit 9|' "$KBVAULT_CONFIG"
	run kbv restore latest --source cache
	[ "$status" -eq 7 ]
	[[ "$output" == *"restore-command of source 'cache' exited with status 9"* ]]
}

@test "path source: recursive, mode, mtime and symlinks kept; restore to a directory or in place" {
	d="$TMPD/srv/uploads"
	mkdir -p "$d/sub"
	echo hello > "$d/a.txt"
	head -c 100000 /dev/urandom > "$d/sub/blob.bin"
	chmod 640 "$d/sub/blob.bin"
	ln -s a.txt "$d/link"
	touch -h -d '2026-01-02 03:04:05' "$d/a.txt" "$d/link"
	cat > "$KBVAULT_CONFIG" <<EOF
[source uploads]
type = path
paths = $d $TMPD/srv/missing-is-an-error
EOF
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"source 'uploads' failed"*"missing-is-an-error"* ]]
	sed -i "s|^paths = .*|paths = $d|" "$KBVAULT_CONFIG"
	kbv snapshot -q
	want=$(cd "$d" && find . -type f -print0 | sort -z | xargs -0 b2sum)
	kbv restore latest --source uploads --target "$TMPD/out"
	rel=${d#/}
	[ "$(cd "$TMPD/out/uploads/$rel" && find . -type f -print0 | sort -z | xargs -0 b2sum)" = "$want" ]
	# In place: back where it was.
	rm -rf "$d"
	run kbv restore latest --source uploads
	[ "$status" -eq 2 ] # files: --target DIR or --in-place, said explicitly
	kbv restore latest --source uploads --in-place -q
	[ "$(cd "$d" && find . -type f -print0 | sort -z | xargs -0 b2sum)" = "$want" ]
	[ "$(stat -c %a "$d/sub/blob.bin")" = 640 ]
	[ "$(readlink "$d/link")" = a.txt ]
	[ "$(date -u -r "$d/a.txt" +%F)" = 2026-01-02 ] || [ "$(date -r "$d/a.txt" +%F)" = 2026-01-02 ]
}

@test "path source: files whose owners change from one to the next, in nested directories, come back byte for byte with every owner (as root)" {
	[ "$(id -u)" = 0 ] || skip "needs root to own files as another user"
	id postgres > /dev/null # installed with PostgreSQL by make deps
	d="$TMPD/srv/tree"
	mkdir -p "$d/a/b/c" "$d/a/z"
	# By name, by number only (no such user or group here), and mixed; one after another.
	owners=(root:root postgres:postgres 4242:4343 postgres:root nobody:nogroup)
	i=0
	for dir in "$d" "$d/a" "$d/a/b" "$d/a/b/c" "$d/a/z"; do
		for f in 1 2 3 4 5 6; do
			head -c $((RANDOM % 4000 + 1)) /dev/urandom > "$dir/f$f"
			chown "${owners[$((i % 5))]}" "$dir/f$f"
			i=$((i + 1))
		done
	done
	head -c 3000000 /dev/urandom > "$d/a/big" # and one larger than a bundle, through the workers
	chown 4242:postgres "$d/a/big"
	cat > "$KBVAULT_CONFIG" <<EOF2
[source tree]
type = path
paths = $d
EOF2
	kbv snapshot -q
	kbv restore latest --source tree --target "$TMPD/out"
	rel=${d#/}
	list() { (cd "$1" && find . -type f -printf '%p %U:%G %m\n' | sort && find . -type f -print0 | sort -z | xargs -0 b2sum); }
	[ "$(list "$TMPD/out/tree/$rel")" = "$(list "$d")" ] || { diff <(list "$TMPD/out/tree/$rel") <(list "$d"); false; }
	[ "$(stat -c %U:%G "$TMPD/out/tree/$rel/a/f2")" = "$(stat -c %U:%G "$d/a/f2")" ]
}

@test "drill: path sources are restored and hashed, command and neo4j sources go through drill-load-command" {
	mkdir -p "$TMPD/files/sub"
	seq 1 3000 > "$TMPD/files/sub/a"
	cat > "$KBVAULT_CONFIG" <<EOF
[source uploads]
type = path
paths = $TMPD/files

[source cache]
type = command
dump-command = seq 1 100
restore-command = cat > /dev/null
drill-load-command = test "\$(wc -l)" = 100
EOF
	neo4j_conf
	kbv snapshot -q
	run kbv drill
	[ "$status" -eq 0 ]
	[[ "$output" == *"drill uploads: PASS"*"restored 1 files (13893 bytes) into a scratch directory; every hash matches"* ]]
	[[ "$output" == *"drill cache: PASS"*"drill-load-command, which succeeded"* ]]
	[[ "$output" == *"drill graph: skipped (no drill-load-command"* ]]
	# A drill-load-command that rejects what it is given fails the drill.
	sed -i 's/= 100$/= 99/' "$KBVAULT_CONFIG"
	run kbv drill
	[ "$status" -eq 7 ]
	[[ "$output" == *"drill cache: FAIL"*"drill-load-command of source 'cache' exited with status 1"* ]]
	kbv stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["last_drill"]["ok"] is False and d["last_successful_drill"]["ok"] is True, d'
}

# A database kbsrc of 1000 rows, a directory, and a configuration of three sources: kb
# (PostgreSQL), uploads (path), cache (command).
mixed_sources() {
	createdb kbsrc
	psql_q -d kbsrc -c "CREATE TABLE t (id int PRIMARY KEY, v text)" -c "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g" > /dev/null
	mkdir -p "$TMPD/files"
	echo file > "$TMPD/files/f.txt"
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kbsrc user=postgres

[source uploads]
type = path
paths = $TMPD/files

[source cache]
type = command
dump-command = echo cached
restore-command = cat > $TMPD/cache.out
EOF
}

@test "one application snapshot of PostgreSQL, Qdrant, Neo4j, a path and a command; a failure in any one records nothing" {
	qdrant_start
	mixed_sources
	cat >> "$KBVAULT_CONFIG" <<EOF

[source vectors]
type = qdrant
url = $QURL
EOF
	neo4j_conf
	kbv snapshot -q
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1
assert [(x["name"], x["type"]) for x in s[0]["sources"]] == [("kb", "postgres"), ("uploads", "path"), ("cache", "command"), ("vectors", "qdrant"), ("graph", "neo4j")], s[0]["sources"]'
	kbv snapshots | grep -q 'kb (postgres), uploads (path), cache (command), vectors (qdrant), graph (neo4j)'
	# Each restores.
	kbv restore latest --source kb --target-db kbsrc_back -q
	[ "$(psql_q -At -d kbsrc_back -c 'SELECT count(*) FROM t')" = 1000 ]
	kbv restore latest --source cache
	[ "$(cat "$TMPD/cache.out")" = cached ]
	kbv restore latest --source uploads --target "$TMPD/out"
	[ "$(cat "$TMPD/out/uploads/${TMPD#/}/files/f.txt")" = file ]
	kbv restore latest --source graph
	kbv restore latest --source vectors --collection-suffix _back -q
	[ "$(curl -sf "$QURL/collections/docs_back" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["points_count"])')" = 1000 ]
	# Any one failing: nothing recorded, the source named.
	for broken in kb uploads cache vectors graph; do
		cp "$KBVAULT_CONFIG" "$TMPD/good.conf"
		case $broken in
		kb) sed -i 's/dbname=kbsrc/dbname=nope/' "$KBVAULT_CONFIG" ;;
		uploads) sed -i "s|^paths = .*|paths = $TMPD/nope|" "$KBVAULT_CONFIG" ;;
		cache) sed -i 's/^dump-command = echo cached/dump-command = false/' "$KBVAULT_CONFIG" ;;
		graph) export NEO4J_STANDIN_FAIL=dump-midway ;;
		vectors) qdrant_fault download-500 ;;
		esac
		run kbv snapshot
		unset NEO4J_STANDIN_FAIL
		cp "$TMPD/good.conf" "$KBVAULT_CONFIG"
		[ "$status" -eq 7 ] || { echo "source $broken: exit $status: $output"; false; }
		[[ "$output" == *"source '$broken' failed, no snapshot recorded"* ]]
		[ "$(snap_count)" = 1 ]
	done
	kbv check
}

@test "restore --all-sources puts every source back: PostgreSQL into its recorded database, files in place" {
	mixed_sources
	neo4j_conf
	kbv snapshot -q
	want=$(store_sum)
	# Lose a bit of everything.
	psql_q -d kbsrc -c "DELETE FROM t WHERE id > 10" > /dev/null
	rm "$TMPD/files/f.txt"
	echo v2 > "$store/schema/index.txt"
	# Files need --in-place said explicitly; nothing is restored before every check passed.
	run kbv restore latest --all-sources
	[ "$status" -eq 2 ]
	[[ "$output" == *"source 'uploads' holds files"* ]]
	[ ! -e "$TMPD/cache.out" ]
	# A source the configuration cannot restore into is found before anything is restored.
	cp "$KBVAULT_CONFIG" "$TMPD/good.conf"
	sed -i '/^\[source cache\]/,/^restore-command/d' "$KBVAULT_CONFIG"
	if grep -q cache "$KBVAULT_CONFIG"; then false; fi
	run kbv restore latest --all-sources --in-place --force
	[ "$status" -eq 2 ]
	[[ "$output" == *"source 'cache' (command) needs its restore-command in the configuration"* ]]
	[ "$(psql_q -At -d kbsrc -c 'SELECT count(*) FROM t')" = 10 ]
	cp "$TMPD/good.conf" "$KBVAULT_CONFIG"
	# A database holding tables is not overwritten without --force.
	run kbv restore latest --all-sources --in-place
	[ "$status" -ne 0 ]
	[[ "$output" == *"kbsrc"* ]]
	[ "$(psql_q -At -d kbsrc -c 'SELECT count(*) FROM t')" = 10 ]
	kbv restore latest --all-sources --in-place --force -q
	[ "$(psql_q -At -d kbsrc -c 'SELECT count(*) FROM t')" = 1000 ]
	[ "$(cat "$TMPD/files/f.txt")" = file ]
	[ "$(cat "$TMPD/cache.out")" = cached ]
	[ "$(store_sum)" = "$want" ]
	# One source by name, back into its own database.
	psql_q -d kbsrc -c "DELETE FROM t" > /dev/null
	kbv restore latest --source kb --force -q
	[ "$(psql_q -At -d kbsrc -c 'SELECT count(*) FROM t')" = 1000 ]
}

@test "restore --all-sources with more sources than command-line words puts every one back" {
	# The list of sources restored grows past the words restore was given (it once lived in
	# an array sized by them); twelve path sources, each back in place byte for byte.
	: > "$KBVAULT_CONFIG"
	for i in $(seq 1 12); do
		mkdir -p "$TMPD/many/s$i"
		head -c $((i * 1000)) /dev/urandom > "$TMPD/many/s$i/data"
		printf '[source s%d]\ntype = path\npaths = %s\n' "$i" "$TMPD/many/s$i" >> "$KBVAULT_CONFIG"
	done
	want=$(cd "$TMPD/many" && find . -type f -print0 | sort -z | xargs -0 b2sum)
	kbv snapshot -q
	rm -rf "$TMPD/many"
	kbv restore latest --all-sources --in-place -q
	[ "$(cd "$TMPD/many" && find . -type f -print0 | sort -z | xargs -0 b2sum)" = "$want" ]
}
