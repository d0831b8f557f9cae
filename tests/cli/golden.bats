#!/usr/bin/env bats
# The format is a contract: repositories written by every released format version, checked
# in under tests/golden/vN, must keep listing, checking and restoring byte for byte.
load helpers

golden() {
	local v=$1 kind=$2
	export TMPD="$BATS_TEST_TMPDIR"
	cp -a "$BATS_TEST_DIRNAME/../golden/v$v/repo-$kind" "$TMPD/repo"
	export KBVAULT_REPO="$TMPD/repo"
	unset KBVAULT_PASSWORD_FILE
	if [ "$kind" = encrypted ]; then export KBVAULT_PASSWORD=kbvault-golden; else unset KBVAULT_PASSWORD; fi
	EXP="$BATS_TEST_DIRNAME/../golden/v$v/expected.b2"
}

want() { grep " $1\$" "$EXP" | cut -d' ' -f1; }

# golden_plain NAME: a copy of the unencrypted golden repository tests/golden/NAME, its
# expected hashes (EXP, for want) and the path prefix its path source recorded (prefix).
golden_plain() {
	export TMPD="$BATS_TEST_TMPDIR"
	G="$BATS_TEST_DIRNAME/../golden/$1"
	cp -a "$G/repo-plain" "$TMPD/repo"
	export KBVAULT_REPO="$TMPD/repo"
	unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	EXP="$G/expected.b2"
	prefix=$(cat "$G/path-prefix" 2>/dev/null || true)
}

check_v1() {
	golden 1 "$1"
	[ "$(snap_count)" = 2 ]
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s[0]["host"] == "golden" and s[0]["tags"] == ["v1"], s[0]
names = [x["name"] for x in s[0]["streams"]]
assert names == ["kb.sql", "echo.txt", "tree", "tree/a.txt", "tree/link", "tree/sub", "tree/sub/x.txt"], names'
	kbv check --read-data
	[ "$(kbv restore "$(snap_id 1)" --stream kb.sql --stdout | b2sum | cut -d' ' -f1)" = "$(want kb0.sql)" ]
	[ "$(kbv restore latest --stdout | b2sum | cut -d' ' -f1)" = "$(want kb1.sql)" ]
	kbv restore "$(snap_id 1)" --target "$TMPD/out"
	[ "$(cat "$TMPD/out/echo.txt")" = golden ]
	[ "$(b2sum < "$TMPD/out/tree/a.txt" | cut -d' ' -f1)" = "$(want tree/a.txt)" ]
	[ "$(b2sum < "$TMPD/out/tree/sub/x.txt" | cut -d' ' -f1)" = "$(want tree/sub/x.txt)" ]
	[ "$(readlink "$TMPD/out/tree/link")" = a.txt ]
	[ "$(stat -c %a "$TMPD/out/tree/sub/x.txt")" = 640 ]
	[ "$(date -u -d @"$(stat -c %Y "$TMPD/out/tree/a.txt")" +%F)" = 2026-01-02 ] ||
		[ "$(date -d @"$(stat -c %Y "$TMPD/out/tree/a.txt")" +%F)" = 2026-01-02 ]
	# This build can keep writing to it, and the index rebuilds from its packs.
	echo more | kbv snapshot -q --stdin more.txt
	[ "$(kbv restore latest --stdout)" = more ]
	rm -rf "$KBVAULT_REPO/index"
	kbv repair index
	kbv check --read-data
}

@test "format v1 encrypted repository still restores byte for byte" { check_v1 encrypted; }
@test "format v1 unencrypted repository still restores byte for byte" { check_v1 plain; }

@test "format v1 golden repository with a wrong password is refused" {
	golden 1 encrypted
	KBVAULT_PASSWORD=wrong run kbv snapshots
	[ "$status" -eq 4 ]
}

# Snapshot body version 2 (sources with metadata) and records version 1 (a drill verdict),
# written by tests/golden/make-golden-sources.sh.
@test "golden repository with a PostgreSQL source and a drill record still reads and restores" {
	export TMPD="$BATS_TEST_TMPDIR"
	cp -a "$BATS_TEST_DIRNAME/../golden/v1-sources/repo-encrypted" "$TMPD/repo"
	export KBVAULT_REPO="$TMPD/repo" KBVAULT_PASSWORD=kbvault-golden
	unset KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	EXP="$BATS_TEST_DIRNAME/../golden/v1-sources/expected.b2"
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1 and s[0]["host"] == "golden" and s[0]["tags"] == ["sources"], s
src = s[0]["sources"]
assert [(x["name"], x["type"]) for x in src] == [("kb", "postgres")], src
m = src[0]["meta"]
assert m["mode"] == "native" and m["database"] == "golden" and m["streams"] == {"database": "kb/database.sql"}, m
assert [(t["name"], t["rows"], t["order"]) for t in m["tables"]] == [("public.docs", 50, "key"), ("public.tags", 20, "physical")], m
assert s[0]["last_drill"]["ok"] is True, s[0]'
	kbv stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["last_successful_drill"]
assert d["kind"] == "drill" and d["sources"][0]["rows"] == 70, d'
	kbv check --read-data
	[ "$(kbv restore latest --source kb --stdout | b2sum | cut -d' ' -f1)" = "$(want database.sql)" ]
	kbv restore latest --source kb --target "$TMPD/out"
	[ "$(b2sum < "$TMPD/out/kb/database.sql" | cut -d' ' -f1)" = "$(want database.sql)" ]
	# A damaged record is named, not skipped.
	rec=$(ls "$KBVAULT_REPO/records/" | head -1)
	flip_byte "$KBVAULT_REPO/records/$rec" 40
	run kbv stats --json
	[ "$status" -eq 5 ]
	[[ "$output" == *"record"*"$rec"* ]]
}

# Snapshot body version 2 with Qdrant, Neo4j, command and path metadata, unencrypted
# (tests/golden/make-golden-kinds.sh, through the stand-ins).
@test "golden repository with qdrant, neo4j, command and path sources still reads and restores" {
	golden_plain v1-kinds
	kbv snapshots --json | python3 -c "
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1 and s[0]['tags'] == ['kinds'], s
src = {x['name']: x for x in s[0]['sources']}
assert [x['type'] for x in s[0]['sources']] == ['qdrant', 'neo4j', 'command', 'path'], s[0]['sources']
q = src['vectors']['meta']
assert q['version'] == '1.12.4-standin' and q['collections'][0]['name'] == 'docs' and q['collections'][0]['points'] == 1000, q
assert q['collections'][0]['stream'] == 'vectors/docs.snapshot' and len(q['collections'][0]['checksum']) == 64, q
assert src['graph']['meta'] == {'database': 'neo4j', 'streams': {'dump': 'graph/neo4j.dump'}}, src['graph']
assert src['cache']['meta'] == {'streams': {'dump': 'cache/dump'}}, src['cache']
assert src['uploads']['meta'] == {'paths': ['/$prefix/files']}, src['uploads']"
	kbv check --read-data
	for stream in vectors/docs.snapshot graph/neo4j.dump cache/dump; do
		[ "$(kbv restore latest --stream "$stream" --stdout | b2sum | cut -d' ' -f1)" = "$(want "$stream")" ]
	done
	# The Qdrant stream is the snapshot file Qdrant described: its recorded SHA-256.
	sum=$(kbv snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["sources"][0]["meta"]["collections"][0]["checksum"])')
	[ "$(kbv restore latest --stream vectors/docs.snapshot --stdout | sha256sum | cut -d' ' -f1)" = "$sum" ]
	kbv restore latest --source uploads --target "$TMPD/out"
	[ "$(b2sum < "$TMPD/out/uploads/$prefix/files/a.txt" | cut -d' ' -f1)" = "$(want a.txt)" ]
	[ "$(b2sum < "$TMPD/out/uploads/$prefix/files/sub/b.txt" | cut -d' ' -f1)" = "$(want sub/b.txt)" ]
	[ "$(readlink "$TMPD/out/uploads/$prefix/files/link")" = a.txt ]
}

# Snapshot body version 3: entry format 2 with owners (tests/golden/make-golden-owners.sh).
@test "golden repository of body version 3 (owners) reads, and restores owners as root" {
	golden_plain v3-owners
	kbv snapshots --json | python3 -c "
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1 and s[0]['tags'] == ['owners'], s
e = {x['name'].split('/files/', 1)[-1]: x for x in s[0]['streams']}
assert e['home/nobody.txt']['owner'] == {'uid': 65534, 'gid': 65534, 'user': 'nobody', 'group': 'nogroup'}, e['home/nobody.txt']
assert e['root.txt']['owner']['user'] == 'root' and e['root.txt']['owner']['uid'] == 0, e['root.txt']
assert len(e['root.txt']['blake2b_256']) == 64 and 'xxh3_128' not in e['root.txt'], e['root.txt']
assert e['home/link']['owner']['user'] == 'nobody', e['home/link']"
	kbv check --read-data
	kbv restore latest --target "$TMPD/out"
	d="$TMPD/out/files/$prefix/files"
	[ "$(b2sum < "$d/root.txt" | cut -d' ' -f1)" = "$(want root.txt)" ]
	[ "$(b2sum < "$d/home/nobody.txt" | cut -d' ' -f1)" = "$(want home/nobody.txt)" ]
	[ "$(b2sum < "$d/home/tool" | cut -d' ' -f1)" = "$(want home/tool)" ]
	if [ "$(id -u)" = 0 ]; then
		[ "$(stat -c '%U:%G' "$d/home/nobody.txt")" = nobody:nogroup ]
		[ "$(stat -c '%U:%G %a' "$d/home/tool")" = "nobody:nogroup 4755" ]
		[ "$(stat -c '%U:%G' "$d/home")" = nobody:nogroup ]
		[ "$(stat -c '%U' "$d/root.txt")" = root ]
		[ "$(stat -c '%U:%G' "$d/home/link")" = nobody:nogroup ]
		[ "$(readlink "$d/home/link")" = nobody.txt ]
	fi
}

# Key file version 2 (keys/<keyid> with metadata) beside version 1 (`key`), written by
# tests/golden/make-golden-keys.sh: either password opens the repository.
@test "golden repository with key files of versions 1 and 2 opens with either password" {
	export TMPD="$BATS_TEST_TMPDIR"
	G="$BATS_TEST_DIRNAME/../golden/v2-keys"
	cp -a "$G/repo-encrypted" "$TMPD/repo"
	export KBVAULT_REPO="$TMPD/repo"
	unset KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	for pw in kbvault-golden kbvault-golden-2; do
		[ "$(KBVAULT_PASSWORD=$pw kbv restore latest --stdout | b2sum | cut -d' ' -f1)" = "$(cat "$G/expected.b2")" ]
	done
	KBVAULT_PASSWORD=kbvault-golden-2 kbv key list --json | python3 -c '
import json, sys
k = {x["id"]: x for x in json.load(sys.stdin)}
assert len(k) == 2 and "key" in k, k
v2 = [x for i, x in k.items() if i != "key"][0]
assert v2["current"] and not k["key"]["current"], k
assert v2["created"].startswith("2026-") and v2["user"] and v2["host"], v2
assert k["key"]["created"] == "" and not k["key"]["damaged"], k'
	KBVAULT_PASSWORD=kbvault-golden kbv check --read-data
	KBVAULT_PASSWORD=wrong run kbv snapshots
	[ "$status" -eq 4 ]
}

# Snapshot body version 4: entry format 3 names each stream's digest algorithm
# (tests/golden/make-golden-digest.sh). One snapshot written as new ones are (XXH3-128), one
# copied from the body version 3 golden repository (it keeps its BLAKE2b-256 digests).
@test "golden repository of body version 4 (digest algorithms): XXH3-128 and BLAKE2b-256 streams list, check and restore" {
	golden_plain v4-digest
	EXP="$G/expected.xxh128"
	kbv snapshots --json > "$TMPD/list.json"
	python3 - "$TMPD/list.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert [x["tags"] for x in s] == [["owners"], ["digest"]], s
new = {x["name"]: x for x in s[1]["streams"]}
assert set(new["kb.sql"]) == {"name", "kind", "size", "xxh3_128"}, new["kb.sql"]
old = [x for x in s[0]["streams"] if x["kind"] == "file"]
assert len(old) == 3 and all(len(x["blake2b_256"]) == 64 and "xxh3_128" not in x for x in old), old
PY
	# the digests are what the standard tools print
	for f in kb.sql echo.txt; do
		[ "$(kbv restore latest --stream "$f" --stdout | xxhsum -H2 | cut -d' ' -f1)" = "$(want "$f")" ]
		grep -q "\"xxh3_128\": \"$(want "$f")\"" "$TMPD/list.json"
	done
	old=$(kbv snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]; print(s["id"], [x for x in s["streams"] if x["name"].endswith("/root.txt")][0]["name"])')
	want_b2=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))[0]; print([x for x in s["streams"] if x["name"].endswith("/root.txt")][0]["blake2b_256"])' "$TMPD/list.json")
	[ "$(kbv restore ${old% *} --stream "${old#* }" --stdout | b2sum -l 256 | cut -d' ' -f1)" = "$want_b2" ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

# copy keeps the digest algorithm a snapshot recorded: a body version 3 snapshot copied into
# a new repository still carries its BLAKE2b-256 digests, and a second copy finds it there.
@test "copy of a body version 3 snapshot keeps its BLAKE2b-256 digests; copying again copies nothing" {
	golden_plain v3-owners
	export KBVAULT_REPO="$TMPD/new"
	kbv init -q --no-encryption
	kbv copy -q --from-repo "$TMPD/repo"
	a=$(kbv -r "$TMPD/repo" snapshots --json | python3 -c 'import json,sys; print(sorted((x["name"], x.get("blake2b_256")) for x in json.load(sys.stdin)[0]["streams"]))')
	b=$(kbv snapshots --json | python3 -c 'import json,sys; print(sorted((x["name"], x.get("blake2b_256")) for x in json.load(sys.stdin)[0]["streams"]))')
	[ "$a" = "$b" ]
	[[ "$a" =~ [0-9a-f]{64} ]] # the digests are there, not None
	run kbv -v copy --from-repo "$TMPD/repo"
	[ "$status" -eq 0 ]
	[ "$(snap_count)" = 1 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

# A deletion plan of gc (format/repository.md, "Many writers and gc", plan version 1): it
# names the forgotten snapshot's pack and will not be ripe for a hundred years.
@test "golden plan version 1: gc reads the plan and leaves its pack waiting; the kept snapshot restores" {
	golden_plain v5-plan
	EXP="$G/expected.xxh128"
	[ "$(snap_count)" = 1 ]
	[ "$(kbv restore latest --stdout | xxhsum -H2 | cut -d' ' -f1)" = "$(want kb.sql)" ]
	run kbv gc --keep-all --json
	[ "$status" -eq 0 ]
	echo "$output" | python3 -c '
import json, sys
g = json.load(sys.stdin)["gc"]
assert g["packs_waiting"] == 1 and g["packs_deleted"] == 0 and g["plans_damaged"] == 0, g'
	[ "$(ls "$TMPD/repo/plans" | wc -l)" = 1 ]
	[ "$(ls "$TMPD/repo/data"/*/*.pack | wc -l)" = 2 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	# A damaged plan condemns nothing (writers do not heed it either): gc says so, and the
	# dead pack it named is garbage like any other.
	p=$(ls "$TMPD/repo/plans"/*)
	printf 'x' | dd of="$p" bs=1 seek=40 conv=notrunc status=none
	run kbv gc --keep-all --json
	[ "$status" -eq 0 ]
	[[ "$output" == *'"plans_damaged":1'* ]]
	[ "$(ls "$TMPD/repo/data"/*/*.pack | wc -l)" = 1 ]
	run kbv check
	[ "$status" -eq 5 ]
	[[ "$output" == *"deletion plan $(basename "$p") does not authenticate"* ]]
	[ "$(kbv restore latest --stdout | xxhsum -H2 | cut -d' ' -f1)" = "$(want kb.sql)" ]
}

# The WAL archive (format/wal.md, WAL object version 1): three files of source kbp, fetched
# byte for byte; an object copied under another file's name is refused, not served.
@test "golden WAL archive version 1: every file fetches byte for byte; check and status read it" {
	export TMPD="$BATS_TEST_TMPDIR"
	G="$BATS_TEST_DIRNAME/../golden/v6-wal"
	cp -a "$G/repo-encrypted" "$TMPD/repo"
	export KBVAULT_REPO="$TMPD/repo" KBVAULT_PASSWORD=kbvault-golden
	unset KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	EXP="$G/expected.xxh128"
	local f
	for f in 000000010000000000000003 00000002.history 000000010000000000000003.00000028.backup; do
		kbv wal-fetch --source kbp "$f" "$TMPD/$f"
		[ "$(xxhsum -H2 "$TMPD/$f" | cut -d' ' -f1)" = "$(want "$f")" ]
	done
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"3 WAL files: ok"* ]]
	run kbv status
	[[ "$output" == *"kbp: WAL archive 1 segments (000000010000000000000003 .. 000000010000000000000003)"*"no gaps"* ]]
	# the same pushed again is a success; the object is not rewritten
	cp -a "$TMPD/repo/wal/kbp~000000010000000000000003" "$TMPD/before"
	kbv wal-push --source kbp "$TMPD/000000010000000000000003"
	cmp "$TMPD/before" "$TMPD/repo/wal/kbp~000000010000000000000003"
	# a segment's object under the name of the next segment: damage, named
	cp "$TMPD/repo/wal/kbp~000000010000000000000003" "$TMPD/repo/wal/kbp~000000010000000000000004"
	run kbv wal-fetch --source kbp 000000010000000000000004 "$TMPD/x"
	[ "$status" -eq 5 ]
	[[ "$output" == *"kbp~000000010000000000000004"*"names another file"* ]]
	[ ! -e "$TMPD/x" ]
	run kbv check
	[ "$status" -eq 5 ]
	[[ "$output" == *"000000010000000000000004"* ]]
}

# Config version 3, BLAKE3 blob ids (tests/golden/make-golden-blake3.sh). Unencrypted: every
# read recomputes the ids, so this build must make exactly the ids written on 2026-12-01.
@test "golden repository of config version 3 (BLAKE3 ids): check, restore, and the same bytes again add no chunk" {
	golden_plain v7-blake3
	EXP="$G/expected.xxh128"
	[ "$(kbv stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_hash"])')" = blake3 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[ "$(kbv restore latest --stream kb.sql --stdout | xxhsum -H2 | cut -d' ' -f1)" = "$(want kb.sql)" ]
	kbv restore latest --target "$TMPD/out"
	(cd "$TMPD/out" && xxhsum -c "$EXP")
	# ~90 chunks of the dump are all known: at most the new snapshot's entry table is new
	kbv restore latest --stream kb.sql --stdout > "$TMPD/kb.sql"
	kbv snapshot --json --stdin kb.sql < "$TMPD/kb.sql" | tail -1 > "$TMPD/snap.json"
	python3 - "$TMPD/snap.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["chunks"] > 80 and s["new_chunks"] <= 1 and s["new_bytes"] < 1024, s
PY
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

# Across id hashes: copy re-chunks and re-ids into the target's hash, both ways.
@test "copy between a BLAKE3 and a BLAKE2b repository, both ways, restores byte for byte" {
	golden_plain v7-blake3
	EXP="$G/expected.xxh128"
	kbv -r "$TMPD/b2" init -q --no-encryption --id-hash blake2b
	kbv -r "$TMPD/b2" copy -q --from-repo "$TMPD/repo"
	[ "$(kbv -r "$TMPD/b2" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_hash"])')" = blake2b ]
	[ "$(od -An -tu4 -j8 -N4 "$TMPD/b2/config" | tr -d ' ')" = 1 ]
	kbv -r "$TMPD/b3" init -q --no-encryption
	kbv -r "$TMPD/b3" copy -q --from-repo "$TMPD/b2"
	for r in b2 b3; do
		[ "$(kbv -r "$TMPD/$r" restore latest --stream kb.sql --stdout | xxhsum -H2 | cut -d' ' -f1)" = "$(want kb.sql)" ]
		kbv -r "$TMPD/$r" check --read-data
	done
	run kbv -r "$TMPD/b3" -v copy --from-repo "$TMPD/b2"
	[ "$status" -eq 0 ]
	[ "$(kbv -r "$TMPD/b3" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
}
