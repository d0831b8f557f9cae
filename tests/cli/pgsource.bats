#!/usr/bin/env bats
# PostgreSQL sources from the configuration file, against a real server the harness starts
# (Debian's postgresql package, 127.0.0.1, a free port) and the real pg_dump, psql and
# pg_dumpall: native and pg_dump modes, fidelity, consistency under concurrent writes,
# restore into a database, drill, and every way a dump can fail.
load helpers
load pg

setup_file() { pg_start; }
teardown_file() { pg_stop; }

setup() {
	setup_repo
	DB=src_$BATS_TEST_NUMBER
	createdb "$DB"
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	write_config native
}

teardown() {
	for d in $(psql_q -At -d postgres -c "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres','template0','template1')"); do
		dropdb --if-exists "$d" > /dev/null 2>&1 || true
	done
}

write_config() {
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=$DB user=postgres
mode = $1
${2:-}

[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
EOF
}

# What a user compares after a restore: the schema exactly, and every row (rows sorted,
# since a restored table's physical order is whatever the load wrote).
strip() { grep -v -e '^-- Dumped' -e '^\\restrict ' -e '^\\unrestrict '; }
schema_of() { pg_dump --schema-only -d "$1" | strip; }
data_of() { pg_dump --data-only -d "$1" | strip | LC_ALL=C sort; }
same_db() {
	diff <(schema_of "$1") <(schema_of "$2") || return 1
	diff <(data_of "$1") <(data_of "$2") || return 1
}

# Many object kinds, rows moved out of key order by updates, awkward values.
rich_schema() {
	psql_q -d "$1" > /dev/null <<'SQL'
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.posint AS int CHECK (VALUE > 0);
CREATE SEQUENCE app.ticket_seq START 100;
CREATE TABLE app.documents (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	title text NOT NULL CHECK (title <> ''),
	body text, meta jsonb, tags text[], embedding real[], raw bytea, feeling app.mood,
	score double precision, price numeric(12,3), happened timestamptz, span interval, day date,
	words int GENERATED ALWAYS AS (length(coalesce(body, ''))) STORED
);
CREATE TABLE app.chunks (doc_id bigint REFERENCES app.documents (id) ON DELETE CASCADE, n app.posint, text text,
	PRIMARY KEY (doc_id, n));
CREATE TABLE app.entities (id serial PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE TABLE app.relations (src int NOT NULL REFERENCES app.entities, dst int NOT NULL REFERENCES app.entities,
	kind text, UNIQUE (src, dst, kind));
CREATE TABLE app.uniq (code text NOT NULL, v int);
CREATE UNIQUE INDEX uniq_code ON app.uniq (code);
CREATE TABLE app.nokey (a int, b text);
CREATE TABLE app.measure (city int, logdate date NOT NULL, peak int) PARTITION BY RANGE (logdate);
CREATE TABLE app.measure_2025 PARTITION OF app.measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.measure_2026 PARTITION OF app.measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE app.parent (id int PRIMARY KEY, x text);
CREATE TABLE app.child (y int) INHERITS (app.parent);
CREATE UNLOGGED TABLE app.cache (k text PRIMARY KEY, v text);
CREATE TABLE public."Odd Name" ("Col A" int PRIMARY KEY, "tab	col" text);
CREATE VIEW app.titles AS SELECT id, title FROM app.documents;
CREATE INDEX documents_meta ON app.documents USING gin (meta);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := NEW.title; RETURN NEW; END $$;
CREATE TRIGGER documents_touch BEFORE UPDATE ON app.documents FOR EACH ROW EXECUTE FUNCTION app.touch();
COMMENT ON TABLE app.documents IS 'documents with prose bodies';
ALTER TABLE app.nokey ENABLE ROW LEVEL SECURITY;
CREATE POLICY positive ON app.nokey USING (a > 0);

INSERT INTO app.documents (title, body, meta, tags, embedding, raw, feeling, score, price, happened, span, day)
SELECT 'doc ' || g,
       CASE WHEN g % 97 = 0 THEN NULL
            ELSE 'tab' || E'\t' || 'backslash' || E'\\' || 'newline' || E'\n' || repeat('prose ', g % 40) END,
       jsonb_build_object('n', g, 'nested', jsonb_build_object('even', g % 2 = 0)),
       ARRAY['t' || (g % 7), NULL, 'q"uote'],
       ARRAY[g * 0.5, -g * 0.25, 1e-30]::real[],
       decode(md5(g::text), 'hex'),
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood,
       (ARRAY['NaN', 'Infinity', '-0', '1e-300', '0.1'])[1 + g % 5]::float8,
       g * 1.125,
       '2026-03-29 01:30:00+00'::timestamptz + g * interval '17 minutes',
       g * interval '1 day 3 hours',
       DATE '2026-01-01' + g
FROM generate_series(1, 2000) g;
UPDATE app.documents SET body = body || ' edited' WHERE id % 3 = 0; -- rows leave key order
INSERT INTO app.chunks SELECT d, n, 'chunk ' || n FROM generate_series(1, 500) d, generate_series(1, 3) n;
INSERT INTO app.entities (name) SELECT 'entity ' || g FROM generate_series(1, 300) g;
INSERT INTO app.relations SELECT g, 1 + g % 300, CASE WHEN g % 5 = 0 THEN NULL ELSE 'rel' END FROM generate_series(1, 300) g;
INSERT INTO app.uniq SELECT 'c' || g, g FROM generate_series(1, 200) g;
UPDATE app.uniq SET v = v + 1 WHERE v % 2 = 0;
INSERT INTO app.nokey SELECT g, CASE WHEN g % 2 = 0 THEN NULL ELSE E'a\\b\tc' END FROM generate_series(1, 100) g;
INSERT INTO app.measure SELECT g, DATE '2025-06-01' + g, g * 2 FROM generate_series(1, 400) g;
INSERT INTO app.parent VALUES (1, 'p');
INSERT INTO app.child VALUES (2, 'c', 7);
INSERT INTO app.cache SELECT 'k' || g, 'v' FROM generate_series(1, 50) g;
INSERT INTO public."Odd Name" VALUES (1, E'x\ty'), (2, NULL);
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT feeling, count(*) FROM app.documents GROUP BY feeling;
SELECT setval('app.ticket_seq', 4242);
SELECT nextval('app.entities_id_seq');
SQL
}

meta() { kbv snapshots --json | python3 -c "import json,sys; s=json.load(sys.stdin)[$1-1]; print(json.dumps(s['sources'][0]['meta']))"; }

@test "native mode restores to the same database a stock pg_dump restores to (schema and every row)" {
	rich_schema "$DB"
	# Rows around the size of the dump thread's output buffer (256 KiB: a COPY row of
	# "id<TAB>text<NL>" one byte under it, exactly it, and over four times it) among small ones.
	psql_q -d "$DB" -c "CREATE TABLE app.wide (id int PRIMARY KEY, t text);
		INSERT INTO app.wide SELECT g, repeat(chr(96 + g), 100) FROM generate_series(1, 20) g;
		INSERT INTO app.wide VALUES (21, repeat('u', 262139)), (22, repeat('v', 262140)),
			(23, repeat(md5('w'), 32768)), (24, 'last');" > /dev/null
	kbv snapshot -q
	# The stock dump of the same state, restored the stock way.
	createdb stock
	pg_dump -Fp -d "$DB" | psql_q -d stock > /dev/null
	kbv restore latest --source kb --target-db native
	same_db stock native
	same_db "$DB" native
	# Key order where a key exists, physical order where none does.
	meta 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m["mode"] == "native", m
order = {t["name"]: t["order"] for t in m["tables"]}
rows = {t["name"]: t["rows"] for t in m["tables"]}
assert order["app.documents"] == "key" and order["app.chunks"] == "key", order
assert order["app.uniq"] == "key", order            # unique index on a NOT NULL column
assert order["app.relations"] == "physical", order  # its unique key has a nullable column
assert order["app.nokey"] == "physical", order
assert rows["app.documents"] == 2000 and rows["app.measure_2025"] == 213 and rows["app.child"] == 1, rows
assert rows["app.wide"] == 24 and order["app.wide"] == "key", (rows, order)
assert "app.measure" not in rows and "app.mood_counts" not in rows, rows
assert m["server_version_num"] >= 150000 and m["wal_lsn"] and m["snapshot"] and m["database_size"] > 0, m
assert m["streams"]["database"] == "kb/database.sql", m'
	# The rows of a keyed table are in key order in the stream.
	kbv restore latest --source kb --stdout | awk '/^COPY app.documents /{on=1; next} /^\\\.$/{on=0} on{print $1}' > "$TMPD/ids"
	sort -n "$TMPD/ids" | diff - "$TMPD/ids"
	[ "$(wc -l < "$TMPD/ids")" = 2000 ]
}

@test "pg_dump mode stores stock pg_dump output and records row counts" {
	rich_schema "$DB"
	write_config pg_dump
	kbv snapshot -q
	kbv restore latest --source kb --target-db restored
	same_db "$DB" restored
	meta 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m["mode"] == "pg_dump" and m["dump_tool"].startswith("15."), m
rows = {t["name"]: t["rows"] for t in m["tables"]}
assert rows["app.documents"] == 2000 and rows["app.nokey"] == 100, rows
assert all(t["order"] == "physical" for t in m["tables"])'
	kbv restore latest --source kb --stdout | grep -q '^-- Dumped by pg_dump version'
}

@test "pg_dump mode with jobs: a parallel directory-format dump, restored by pg_restore -j and drilled" {
	rich_schema "$DB"
	write_config pg_dump "jobs = 2"
	kbv snapshot -q
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
names = [x["name"] for x in s["streams"]]
assert "kb/dump/toc.dat" in names and sum(n.endswith(".dat") for n in names) > 10, names
m = s["sources"][0]["meta"]
assert m["format"] == "directory" and m["jobs"] == 2 and m["streams"] == {"directory": "kb/dump"}, m
rows = {t["name"]: t["rows"] for t in m["tables"]}
assert rows["app.documents"] == 2000 and rows["app.nokey"] == 100, rows'
	[ -z "$(ls "$KBVAULT_REPO/tmp")" ] # the spooled dump is gone
	kbv restore latest --source kb --target-db fromdir
	same_db "$DB" fromdir
	kbv drill -q
}

@test "snapshot, change, snapshot: the first restores to exactly what the database held then" {
	rich_schema "$DB"
	pg_dump -Fp -d "$DB" > "$TMPD/reference.sql"
	kbv snapshot -q --tag before
	psql_q -d "$DB" -c "UPDATE app.documents SET title = title || '!' WHERE id % 10 = 0" \
		-c "DELETE FROM app.nokey WHERE a < 50" -c "VACUUM FULL app.documents" -c "SELECT setval('app.ticket_seq', 9999)" > /dev/null
	kbv snapshot -q
	[ "$(snap_count)" = 2 ]
	createdb reference
	psql_q -d reference -f "$TMPD/reference.sql" > /dev/null
	kbv restore "$(snap_id 1)" --source kb --target-db first
	same_db reference first
	[ "$(psql_q -At -d first -c 'SELECT last_value FROM app.ticket_seq')" = 4242 ]
}

# CLUSTER rewrites a table in another order: every row moves, no row changes.
new_bytes_after_cluster() {
	write_config "$1"
	kbv snapshot -q
	psql_q -d "$DB" -c "CREATE INDEX by_title ON app.documents (title)" -c "CLUSTER app.documents USING by_title" > /dev/null
	kbv snapshot --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(round(100 * s["new_bytes"] / s["raw_bytes"]))'
}

@test "a table rewrite (CLUSTER) costs a native snapshot almost nothing; a pg_dump-mode one much more" {
	rich_schema "$DB"
	native=$(new_bytes_after_cluster native)
	dropdb "$DB" && createdb "$DB" && rich_schema "$DB"
	stock=$(new_bytes_after_cluster pg_dump)
	echo "new bytes after CLUSTER: native $native%, pg_dump $stock%"
	[ "$native" -le 5 ]
	[ "$stock" -ge 25 ]
}

@test "writes running during a snapshot do not tear it: the restore is one consistent moment" {
	psql_q -d "$DB" > /dev/null <<'SQL'
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE ledger (id bigserial PRIMARY KEY, src int, dst int, amount int);
INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) g;
CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 150000) g;
ALTER TABLE filler ADD PRIMARY KEY (id);
SQL
	# Transfers, each its own transaction, touching both tables.
	(
		i=0
		while [ ! -e "$TMPD/stop" ]; do
			i=$((i + 1))
			a=$((1 + i % 100)) b=$((1 + (i * 7) % 100))
			psql_q -d "$DB" -c "BEGIN; UPDATE accounts SET balance = balance - 5 WHERE id = $a;
				UPDATE filler SET pad = md5(pad) WHERE id = $i;
				UPDATE accounts SET balance = balance + 5 WHERE id = $b;
				INSERT INTO ledger (src, dst, amount) VALUES ($a, $b, 5); COMMIT;" > /dev/null
		done
	) &
	writer=$!
	sleep 0.3
	kbv snapshot -q
	sleep 0.3
	touch "$TMPD/stop"
	wait "$writer"
	kbv restore latest --source kb --target-db moment
	# Every account's balance is explained by the ledger rows of the same moment.
	[ "$(psql_q -At -d moment -c "SELECT count(*) FROM accounts a WHERE balance <> 1000
		- coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)
		+ coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0)")" = 0 ]
	[ "$(psql_q -At -d moment -c 'SELECT sum(balance) FROM accounts')" = 100000 ]
	# ...and writes did happen while it ran, and after.
	during=$(psql_q -At -d moment -c 'SELECT count(*) FROM ledger')
	after=$(psql_q -At -d "$DB" -c 'SELECT count(*) FROM ledger')
	[ "$during" -gt 0 ] && [ "$after" -gt "$during" ]
}

@test "restore --target-db refuses a database that holds tables unless --force, and checks row counts" {
	rich_schema "$DB"
	kbv snapshot -q
	# Also the source database itself ("load it back into the original system").
	run kbv restore latest --source kb --target-db "$DB"
	[ "$status" -ne 0 ]
	[[ "$output" == *"exists and is not empty"*"--force"* ]]
	psql_q -d "$DB" -c "DELETE FROM app.nokey" > /dev/null
	kbv restore latest --source kb --target-db "$DB" --force -q
	[ "$(psql_q -At -d "$DB" -c 'SELECT count(*) FROM app.nokey')" = 100 ]
	createdb target
	psql_q -d target -c "CREATE TABLE keep_me (x int)" > /dev/null
	run kbv restore latest --source kb --target-db target
	[ "$status" -ne 0 ]
	[ "$(psql_q -At -d target -c "SELECT count(*) FROM pg_tables WHERE tablename = 'keep_me'")" = 1 ]
	run kbv restore latest --source kb --target-db target --force
	[ "$status" -eq 0 ]
	[[ "$output" == *"row counts match the snapshot"* ]]
	same_db "$DB" target
	# --target-dsn: another connection string, here with the server given explicitly.
	kbv restore latest --source kb --target-db other --target-dsn "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" -q
	same_db "$DB" other
}

@test "a damaged repository loads nothing into the target database" {
	rich_schema "$DB"
	kbv snapshot -q
	pack=$(a_pack)
	flip_byte "$pack" $(($(stat -c %s "$pack") / 2))
	run kbv restore latest --source kb --target-db broken
	[ "$status" -eq 5 ]
	[[ "$output" == *"rolled back"* ]]
	# psql never saw the end of its input, so it committed nothing.
	[ "$(psql_q -At -d broken -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'")" = 0 ]
	# nor does one table (its SQL reaches psql in pieces of 256 KiB; app.documents is more)
	createdb one_table
	run kbv restore latest --source kb --table app.documents --target-db one_table
	[ "$status" -ne 0 ]
	[[ "$output" == *"killed before the end of its input"* ]] || { echo "$output"; false; }
	[ "$(psql_q -At -d one_table -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'")" = 0 ]
}

@test "drill restores into a scratch database, compares, drops it and records the verdict" {
	rich_schema "$DB"
	kbv snapshot -q
	run kbv drill
	[ "$status" -eq 0 ]
	[[ "$output" == *"drill kb: PASS"*"row counts and checksums match"* ]]
	[ "$(psql_q -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'kbvault_drill%'")" = 0 ]
	id=$(snap_id 1)
	kbv stats --json | python3 -c "
import json, sys
s = json.load(sys.stdin)
d = s['last_successful_drill']
assert d['snapshot'] == '$id' and d['ok'] is True, d
src = d['sources'][0]
assert src['name'] == 'kb' and src['tables'] >= 12 and src['rows'] > 4000 and src['mismatches'] == [], src"
	kbv snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]; assert s["last_drill"]["ok"] is True, s'
	kbv check
}

@test "drill of a damaged snapshot fails, says why, and records the failure" {
	rich_schema "$DB"
	kbv snapshot -q
	kbv drill -q
	pack=$(a_pack)
	flip_byte "$pack" $(($(stat -c %s "$pack") / 2))
	run kbv drill
	[ "$status" -eq 5 ]
	[[ "$output" == *"drill kb: FAIL"* ]]
	[ "$(psql_q -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'kbvault_drill%'")" = 0 ]
	kbv stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["last_drill"]["ok"] is False and "error" in s["last_drill"]["sources"][0], s["last_drill"]
assert s["last_successful_drill"]["ok"] is True'
}

@test "drill names every table whose rows differ from what the snapshot recorded" {
	rich_schema "$DB"
	kbv snapshot -q
	# A snapshot of the same dump whose figures disagree with it, as a kbvault bug or a
	# dump that does not restore what it held would make them (mksnap writes it).
	kbv restore latest --source kb --stdout > "$TMPD/db.sql"
	meta 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
for t in m["tables"]:
    if t["name"] == "app.nokey": t["rows"] += 1
    if t["name"] == "app.uniq": t["checksum"] = "0123456789abcdef"
print(json.dumps(m))' > "$TMPD/meta.json"
	KBVAULT_PASSWORD=$(cat "$TMPD/pw") "$MKSNAP" "$KBVAULT_REPO" "file:kb/database.sql=@$TMPD/db.sql" "source:kb=postgres=@$TMPD/meta.json"
	run kbv drill "$(snap_id 1)" # mksnap's snapshot is dated 1970: the oldest
	[ "$status" -eq 5 ]
	[[ "$output" == *"drill kb: FAIL"* ]]
	[[ "$output" == *"app.nokey: 100 rows, the snapshot recorded 101"* ]]
	[[ "$output" == *"app.uniq: row checksum"*"the snapshot recorded 0123456789abcdef"* ]]
	kbv stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["last_drill"]
assert d["ok"] is False and len(d["sources"][0]["mismatches"]) == 2, d'
	# The real snapshot still passes.
	kbv drill -q latest
}

@test "a database that does not exist: no snapshot, exit 7, the source named" {
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=$DB user=postgres
[source missing]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=no_such_db user=postgres
EOF
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"source 'missing'"*"no_such_db"* ]]
	[ "$(snap_count)" = 0 ]
	# --source narrows the snapshot to the good one.
	kbv snapshot -q --source kb
	kbv snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert [x["name"] for x in s[0]["sources"]] == ["kb"], s'
	run kbv snapshot --source nope
	[ "$status" -eq 2 ]
	[[ "$output" == *"no source 'nope'"* ]]
	kbv check
}

@test "a wrong password: no snapshot, a clear error, and the password never printed" {
	pg_password_role pwuser right-secret
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=$DB user=pwuser password=wrong-secret
EOF
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"password authentication failed"* ]]
	[[ "$output" != *"wrong-secret"* ]]
	[ "$(snap_count)" = 0 ]
	# The documented way: a password file, which pg_dump inherits too.
	printf '127.0.0.1:%s:*:pwuser:right-secret\n' "$PGPORT" > "$TMPD/pgpass"
	chmod 600 "$TMPD/pgpass"
	write_config native
	sed -i "s/user=postgres$/user=pwuser/" "$KBVAULT_CONFIG"
	PGPASSFILE="$TMPD/pgpass" kbv snapshot -q
	[ "$(snap_count)" = 1 ]
	pg_password_role_end pwuser
}

big_table() {
	psql_q -d "$DB" -c "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 12) AS t FROM generate_series(1, 400000) g" \
		-c "ALTER TABLE big ADD PRIMARY KEY (id)" > /dev/null
}

# Wait (up to 20 s) until `cond` holds.
wait_for() {
	for _ in $(seq 400); do
		eval "$1" && return 0
		sleep 0.05
	done
	return 1
}

@test "the server going away in the middle of a native dump records no snapshot" {
	big_table
	"$KBVAULT" snapshot -q 2> "$TMPD/err" &
	pid=$!
	wait_for "[ \"\$(psql_q -At -d postgres -c \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%big%'\")\" = 1 ]"
	pg_ctl_stop
	st=0
	wait "$pid" || st=$?
	pg_ctl_start
	[ "$st" -eq 7 ]
	grep -q "source 'kb' failed" "$TMPD/err"
	[ "$(snap_count)" = 0 ]
	kbv check
}

@test "pg_dump killed halfway records no snapshot" {
	big_table
	write_config pg_dump
	"$KBVAULT" snapshot -q 2> "$TMPD/err" &
	pid=$!
	wait_for "pgrep -f 'pg_dump -Fp --snapshot' > /dev/null"
	sleep 0.1
	pkill -9 -f 'pg_dump -Fp --snapshot'
	st=0
	wait "$pid" || st=$?
	[ "$st" -eq 7 ]
	grep -q "killed by signal 9" "$TMPD/err"
	[ "$(snap_count)" = 0 ]
	kbv check
}

@test "large objects: native mode refuses and points to pg_dump mode, which stores them" {
	psql_q -d "$DB" -c "CREATE TABLE t (id int PRIMARY KEY)" -c "SELECT lo_from_bytea(0, 'blob')" > /dev/null
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"large object"*"mode = pg_dump"* ]]
	write_config pg_dump
	kbv snapshot -q
	kbv restore latest --source kb --target-db withlo -q
	[ "$(psql_q -At -d withlo -c "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata")" = blob ]
}

@test "globals = yes adds roles from pg_dumpall --globals-only as a second stream" {
	psql_q -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN CREATE ROLE app_reader; END IF; END\$\$" > /dev/null
	write_config native "globals = yes"
	kbv snapshot -q
	kbv restore latest --stream kb/globals.sql --stdout | grep -q 'CREATE ROLE app_reader'
	run kbv restore latest --source kb --stdout
	[ "$status" -eq 2 ] # two streams: choose one
	kbv snapshots | grep -q 'kb (postgres)'
}

@test "restore --target-db: the recorded owner and access list come back; a role without CREATEDB is told what to do" {
	psql_q -c "CREATE ROLE kbapp LOGIN" -c "CREATE ROLE kbbackup LOGIN" -c "CREATE ROLE ghost LOGIN" > /dev/null
	psql_q -c "ALTER DATABASE $DB OWNER TO kbapp" -c "REVOKE ALL ON DATABASE $DB FROM PUBLIC" \
		-c "GRANT CONNECT ON DATABASE $DB TO kbbackup" > /dev/null
	psql_q -d "$DB" -U kbapp -c "CREATE TABLE docs (id int PRIMARY KEY, body text)" -c "INSERT INTO docs VALUES (1, 'a')" > /dev/null
	kbv snapshot -q
	acl=$(psql_q -At -c "SELECT datacl::text FROM pg_database WHERE datname = '$DB'")
	kbv restore latest --source kb --target-db kb_back -q
	[ "$(psql_q -At -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kb_back'")" = kbapp ]
	[ "$(psql_q -At -c "SELECT datacl::text FROM pg_database WHERE datname = 'kb_back'")" = "$acl" ]
	# PostgreSQL 15: the owner is who may create tables in public; the application works on
	psql_q -d kb_back -U kbapp -c "CREATE TABLE newer (x int)" > /dev/null
	# --owner: someone else
	kbv restore latest --source kb --target-db kb_other --owner kbbackup -q
	[ "$(psql_q -At -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kb_other'")" = kbbackup ]
	run kbv restore latest --source kb --target-db kb_x --owner nosuchrole
	[ "$status" -ne 0 ]
	[[ "$output" == *"role 'nosuchrole' does not exist"* ]]
	# A backup role without CREATEDB: the error says so and where to go
	run kbv restore latest --source kb --target-db kb_y --target-dsn "host=127.0.0.1 port=$PGPORT user=kbbackup dbname=postgres"
	[ "$status" -ne 0 ]
	[[ "$output" == *"lacks CREATEDB"*"--target-dsn"* ]]
	# A recorded owner that is gone: the database is the connecting role's, and the role is named
	psql_q -c "ALTER DATABASE $DB OWNER TO ghost" > /dev/null
	kbv snapshot -q
	psql_q -c "ALTER DATABASE $DB OWNER TO postgres" -c "DROP ROLE ghost" > /dev/null
	run kbv restore latest --source kb --target-db kb_z
	[ "$status" -eq 0 ]
	[[ "$output" == *"role ghost named by the snapshot as owner"*"--owner ROLE"* ]] || { echo "$output"; false; }
	[ "$(psql_q -At -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kb_z'")" = postgres ]
	for d in kb_back kb_other kb_z "$DB"; do dropdb "$d"; done
	psql_q -c "DROP ROLE kbapp" -c "DROP ROLE kbbackup" > /dev/null
}

# The definition of one table as the catalog has it: columns, indexes, constraints.
table_def() {
	psql_q -At -d "$1" -c "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' ||
	   a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || a.attidentity::text || a.attgenerated::text, '; ' ORDER BY a.attnum)
	   FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	   WHERE a.attrelid = '$2'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
	psql_q -At -d "$1" -c "SELECT indexdef FROM pg_indexes WHERE schemaname || '.' || tablename = '$2' ORDER BY 1"
	psql_q -At -d "$1" -c "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '$2'::regclass ORDER BY 1"
	psql_q -At -d "$1" -c "SELECT obj_description('$2'::regclass, 'pg_class')"
}

@test "restore --table: one table's schema, indexes, constraints, sequences and rows into another database, checked" {
	rich_schema "$DB"
	kbv snapshot -q
	run kbv restore latest --source kb --table app.documents --target-db tables_db
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" == *"restored table app.documents of source 'kb'"*"2000 rows"*"row count and checksum match"* ]]
	# what a user compares: the definition and every row
	diff <(table_def "$DB" app.documents) <(table_def tables_db app.documents)
	diff <(psql_q -At -d "$DB" -c "SELECT * FROM app.documents ORDER BY id") <(psql_q -At -d tables_db -c "SELECT * FROM app.documents ORDER BY id")
	# the identity sequence goes on where it was
	[ "$(psql_q -At -d tables_db -c "INSERT INTO app.documents (title) VALUES ('next') RETURNING id")" = 2001 ]
	# no other table came along; the trigger (a function of its own) was left out, and said so
	[ "$(psql_q -At -d tables_db -c "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'app' AND relkind = 'r'")" = documents ]
	[[ "$output" == *"left out trigger"*"documents_touch"* ]]
	# a table whose foreign keys point elsewhere: the key is left out, the rest comes
	run kbv restore latest --source kb --table app.relations --target-db tables_db
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" == *"left out foreign key"*"relations_src_fkey"* ]]
	[ "$(psql_q -At -d tables_db -c "SELECT count(*) FROM app.relations")" = 300 ]
	[ "$(psql_q -At -d tables_db -c "SELECT count(*) FROM pg_indexes WHERE tablename = 'relations'")" = 1 ]
	# a serial table's sequence value comes with it
	run kbv restore latest --source kb --table entities --target-db tables_db
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(psql_q -At -d tables_db -c "SELECT last_value FROM app.entities_id_seq")" = "$(psql_q -At -d "$DB" -c "SELECT last_value FROM app.entities_id_seq")" ]
}

@test "restore --table: back into the live database after a DROP; as SQL on stdout; a wrong name lists close ones" {
	rich_schema "$DB"
	kbv snapshot -q
	local before uniq
	before=$(psql_q -At -d "$DB" -c "SELECT count(*) FROM app.documents")
	uniq=$(psql_q -At -d "$DB" -c "SELECT count(*), sum(v) FROM app.uniq")
	psql_q -d "$DB" -c "DROP TABLE app.uniq"
	run kbv restore latest --source kb --table app.uniq --target-db "$DB"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(psql_q -At -d "$DB" -c "SELECT count(*), sum(v) FROM app.uniq")" = "$uniq" ]
	[ "$(psql_q -At -d "$DB" -c "SELECT indexdef FROM pg_indexes WHERE indexname = 'uniq_code'")" = "CREATE UNIQUE INDEX uniq_code ON app.uniq USING btree (code)" ]
	# the other tables were not touched
	[ "$(psql_q -At -d "$DB" -c "SELECT count(*) FROM app.documents")" = "$before" ]
	# restoring over a table that is there fails in psql's one transaction: nothing changes
	run kbv restore latest --source kb --table app.uniq --target-db "$DB"
	[ "$status" -ne 0 ]
	[[ "$output" == *"already exists"* ]]
	[ "$(psql_q -At -d "$DB" -c "SELECT count(*) FROM app.uniq")" = 200 ]
	# as SQL: that table only, loadable by psql
	kbv restore latest --source kb --table '"Odd Name"' --stdout > "$TMPD/odd.sql"
	grep -q 'CREATE TABLE public."Odd Name"' "$TMPD/odd.sql"
	run grep -c "app.documents" "$TMPD/odd.sql"
	[ "$output" = 0 ]
	createdb odd_db
	psql_q -d odd_db -v ON_ERROR_STOP=1 -f "$TMPD/odd.sql" > /dev/null
	[ "$(psql_q -At -d odd_db -c 'SELECT count(*) FROM public."Odd Name"')" = 2 ]
	# a name the snapshot does not have: exit 1, close names listed
	run kbv restore latest --source kb --table app.documnts --target-db x_db
	[ "$status" -eq 1 ]
	[[ "$output" == *"has no table 'app.documnts'; close names: app.documents"* ]]
	[ "$(psql_q -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'x_db'")" = 0 ]
}
