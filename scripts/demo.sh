#!/bin/bash
# The README's first command ends here: a short demonstration on kbvault's built-in default
# repository location. XDG_DATA_HOME points into build/demo so the demo leaves nothing in
# your home directory; without it the default is ~/.local/share/kbvault/repo.
set -euo pipefail
K=${KBVAULT:?}
G=${GENDUMP:?}
D=$(pwd)/build/demo
rm -rf "$D"
mkdir -p "$D"
export XDG_DATA_HOME="$D"
unset KBVAULT_REPO KBVAULT_PASSWORD
export KBVAULT_PASSWORD_FILE="$D/password"
head -c 24 /dev/urandom | base64 > "$KBVAULT_PASSWORD_FILE"
chmod 600 "$KBVAULT_PASSWORD_FILE"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "kbvault init"
"$K" init
step "gendump --day 0 | kbvault snapshot --stdin kb.sql      # night 1: a 64 MB SQL dump"
"$G" --mb 64 --day 0 > "$D/kb-day0.sql"
"$K" snapshot --stdin kb.sql --tag nightly < "$D/kb-day0.sql"
step "gendump --day 1 | kbvault snapshot --stdin kb.sql      # night 2: 2% of rows edited"
"$G" --mb 64 --day 1 > "$D/kb-day1.sql"
"$K" snapshot --stdin kb.sql --tag nightly < "$D/kb-day1.sql"
step "kbvault snapshots"
"$K" snapshots
step "kbvault stats"
"$K" stats
first=$("$K" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["short_id"])')
step "kbvault restore $first --stdout > restored.sql && cmp restored.sql kb-day0.sql"
"$K" restore "$first" --stdout > "$D/restored.sql"
cmp "$D/restored.sql" "$D/kb-day0.sql" && echo "night 1 restored byte for byte"
step "kbvault check --read-data"
"$K" check --read-data
printf '\nnightly gzip would have stored: %s bytes; kbvault stores: %s bytes\n' \
	"$(cat "$D/kb-day0.sql" "$D/kb-day1.sql" | gzip -6 | wc -c)" "$(du -sb "$D/kbvault/repo/data" | cut -f1)"

# Part two: an application snapshot of a PostgreSQL database, from a configuration file. A
# private server (Debian's package, 127.0.0.1, a free port) stands in for yours.
# shellcheck source=../tests/cli/pg.bash
. "$(dirname "$0")/../tests/cli/pg.bash"
pg_start > /dev/null
trap pg_stop EXIT
createdb kb
psql_q -d kb > /dev/null <<'SQL'
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL, body text);
INSERT INTO documents (title, body)
SELECT 'doc ' || g, (SELECT string_agg(md5(g::text || '/' || k), ' ') FROM generate_series(1, 25) k) FROM generate_series(1, 20000) g;
SQL
cat > "$D/kbvault.conf" <<CONF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres

[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
CONF
export KBVAULT_CONFIG="$D/kbvault.conf"
step "cat kbvault.conf"
cat "$KBVAULT_CONFIG"
step "kbvault snapshot                                          # every configured source, one consistent moment"
"$K" snapshot
step "psql -c 'UPDATE 1% of documents; VACUUM FULL documents'; kbvault snapshot   # rows moved, few changed"
psql_q -d kb -c "UPDATE documents SET body = body || ' edited' WHERE id % 100 = 0" -c "VACUUM FULL documents" > /dev/null
"$K" snapshot
pgfirst=$("$K" snapshots --json | python3 -c 'import json,sys; print([s for s in json.load(sys.stdin) if s["sources"]][0]["short_id"])')
step "kbvault restore $pgfirst --source kb --target-db kb_restored"
"$K" restore "$pgfirst" --source kb --target-db kb_restored
step "kbvault drill                                             # restore into a scratch database and compare"
"$K" drill
step "kbvault snapshots"
"$K" snapshots
