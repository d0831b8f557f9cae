#!/bin/bash
# Regenerate the golden repository of snapshot body version 2 (sources) and records
# version 1 (a drill verdict). Run ONLY when one of those versions changes; the
# repositories of each released version are kept and must keep restoring
# (tests/cli/golden.bats). Needs Debian's PostgreSQL (make deps). Usage:
#   tests/golden/make-golden-sources.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=$ROOT/build/kbvault
D=tests/golden/v1-sources
# shellcheck source=../cli/pg.bash
. tests/cli/pg.bash
pg_start
W=$(mktemp -d)
trap 'pg_stop; rm -rf "$W"' EXIT
createdb golden
psql_q -d golden > /dev/null <<'SQL'
CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
CREATE TABLE tags (doc int, tag text);
CREATE SEQUENCE s START 7;
INSERT INTO docs SELECT g, 'doc ' || g, repeat('golden prose ', g) FROM generate_series(1, 50) g;
INSERT INTO tags SELECT g % 50 + 1, 't' || g FROM generate_series(1, 20) g;
SELECT setval('s', 77);
SQL
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-encrypted KBVAULT_PASSWORD=kbvault-golden KBVAULT_CONFIG=$W/kbvault.conf
cat > "$KBVAULT_CONFIG" <<CONF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=golden user=postgres
[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
CONF
"$K" init -q --kdf-ops 1 --kdf-mem-mib 8
"$K" snapshot -q --host golden --tag sources
"$K" drill -q
"$K" restore latest --source kb --stdout > "$W/database.sql"
(cd "$W" && b2sum database.sql) > "$D/expected.b2"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
echo "golden repository with sources and a drill record in $D"
