#!/bin/bash
# Regenerate the golden repository holding one snapshot with a Qdrant, a Neo4j, a command
# and a path source (their metadata in snapshot body version 2), made through the stand-ins
# of tests/standins. Run ONLY when that metadata's documented shape changes
# (format/snapshot.md); tests/cli/golden.bats must keep reading it. Unencrypted, so the
# plain-repository code path has a fixture with sources too.
#   tests/golden/make-golden-kinds.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=$ROOT/build/kbvault
D=tests/golden/v1-kinds
W=$(mktemp -d)
python3 tests/standins/qdrant_standin.py --port-file "$W/port" --collections docs --segments 2 --segment-kb 16 --seed 3 &
QPID=$!
trap 'kill $QPID; rm -rf "$W"' EXIT
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.05; done
export NEO4J_STANDIN_HOME=$W/neo4j
mkdir -p "$W/neo4j/data/databases/neo4j" "$W/files/sub"
seq 1 500 > "$W/neo4j/data/databases/neo4j/store.db"
echo golden > "$W/files/a.txt"
seq 1 2000 > "$W/files/sub/b.txt"
ln -s a.txt "$W/files/link"
touch -h -d '2026-01-02 03:04:05' "$W/files/a.txt" "$W/files/sub/b.txt" "$W/files/link"
cat > "$W/kbvault.conf" <<CONF
[source vectors]
type = qdrant
url = http://127.0.0.1:$(cat "$W/port")
[source graph]
type = neo4j
database = neo4j
dump-command = $ROOT/tests/standins/neo4j-admin database dump neo4j --to-stdout
load-command = true
[source cache]
type = command
dump-command = seq 1 1000
restore-command = true
[source uploads]
type = path
paths = $W/files
CONF
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-plain KBVAULT_CONFIG=$W/kbvault.conf
unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE
"$K" init -q --no-encryption
"$K" snapshot -q --host golden --tag kinds
"$K" restore latest --target "$W/out" -q
(cd "$W/out" && b2sum vectors/docs.snapshot graph/neo4j.dump cache/dump) > "$D/expected.b2"
(cd "$W/out/uploads/${W#/}/files" && b2sum a.txt sub/b.txt) >> "$D/expected.b2"
echo "${W#/}" > "$D/path-prefix"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
echo "golden repository with qdrant, neo4j, command and path sources in $D"
