#!/usr/bin/env bats
# The everyday commands, as a user runs them.
load helpers

setup() { setup_repo; }

@test "init refuses a non-empty directory and a second init" {
	run kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -eq 1 ]
	if on_s3; then
		[[ "$output" == *"exists already"* ]]
	else
		[[ "$output" == *"is not empty"* ]]
	fi
}

@test "stdin stream round trip, byte for byte, with latest and prefixes" {
	"$GENDUMP" --mb 4 > "$TMPD/kb.sql"
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	kbv restore latest --stdout > "$TMPD/out.sql"
	cmp "$TMPD/kb.sql" "$TMPD/out.sql"
	id=$(snap_id 1)
	kbv restore "${id:0:6}" --stdout | cmp - "$TMPD/kb.sql"
	kbv restore "$id" --stream kb.sql --stdout | cmp - "$TMPD/kb.sql"
}

@test "snapshot and restore on many worker threads (KBVAULT_THREADS up to its 256: smaller batches, fewer bundles each, a read transaction each) are byte for byte, through a pipe and into a file" {
	"$GENDUMP" --mb 12 --day 1 > "$TMPD/d1.sql"
	"$GENDUMP" --mb 12 --day 2 > "$TMPD/d2.sql"
	KBVAULT_THREADS=256 kbv snapshot -q --stdin kb.sql < "$TMPD/d1.sql"
	kbv snapshot -q --stdin kb.sql < "$TMPD/d2.sql" # its chunks from both snapshots' bundles
	KBVAULT_THREADS=256 kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/d1.sql"
	for t in 1 64; do
		KBVAULT_THREADS=$t kbv restore latest --stdout | cmp - "$TMPD/d2.sql"
		rm -f "$TMPD/out.sql"
		KBVAULT_THREADS=$t kbv restore latest --stdout > "$TMPD/out.sql"
		cmp "$TMPD/out.sql" "$TMPD/d2.sql"
	done
}

@test "a pipe into a snapshot or out of a restore (stderr into it too or not) is widened to 1 MiB (at Linux's 64 KiB both ends wake sixteen times as often), and carries the same bytes" {
	"$GENDUMP" --mb 4 > "$TMPD/kb.sql"
	# the writer sends a first piece, then waits (30 s at most) for kbvault to widen the pipe
	python3 -c '
import fcntl, sys, time
data = open(sys.argv[1], "rb").read()
out = sys.stdout.buffer
out.write(data[:4096]); out.flush()
for _ in range(3000):
    if fcntl.fcntl(1, fcntl.F_GETPIPE_SZ) >= 1 << 20:
        break
    time.sleep(0.01)
print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ), file=sys.stderr)
out.write(data[4096:]); out.flush()
' "$TMPD/kb.sql" 2> "$TMPD/in-size" | kbv snapshot -q --stdin kb.sql
	[ "$(cat "$TMPD/in-size")" = 1048576 ]
	# the reader looks once the first byte is there (kbvault widens before it writes), says
	# the size on stderr and passes the stream on
	size_then_cat() {
		python3 -c '
import fcntl, sys
first = sys.stdin.buffer.read(1)
print(fcntl.fcntl(0, fcntl.F_GETPIPE_SZ), file=sys.stderr)
sys.stdout.buffer.write(first + sys.stdin.buffer.read())
'
	}
	kbv restore latest --stdout | size_then_cat 2> "$TMPD/out-size" | cmp - "$TMPD/kb.sql"
	[ "$(cat "$TMPD/out-size")" = 1048576 ]
	# the same with stderr into that pipe too (written in order for the shared offset)
	rm "$TMPD/out-size"
	kbv restore -q latest --stdout 2>&1 | size_then_cat 2> "$TMPD/out-size" | cmp - "$TMPD/kb.sql"
	[ "$(cat "$TMPD/out-size")" = 1048576 ]
}

@test "stdin from a file, read on several threads, is the stream a pipe gives, from the file's offset on" {
	"$GENDUMP" --mb 6 > "$TMPD/kb.sql"
	export KBVAULT_THREADS=4 # a file in pieces on the cutting threads, a pipe read ahead on its own
	KBVAULT_READ_PIECES=1 kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	# the reading thread alone (the default where the workers take every CPU)
	KBVAULT_READ_PIECES=0 kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	cat "$TMPD/kb.sql" | kbv snapshot -q --stdin kb.sql
	# a writer that pauses mid-way, as pg_dump does between tables
	{ head -c 1500000 "$TMPD/kb.sql"; sleep 0.3; tail -c +1500001 "$TMPD/kb.sql"; } | kbv snapshot -q --stdin kb.sql
	want=$(xxhsum -H2 "$TMPD/kb.sql" | cut -d' ' -f1)
	[ "$(kbv snapshots --json | grep -o "\"xxh3_128\": \"$want\"" | wc -l)" = 4 ]
	kbv restore latest --stdout | cmp - "$TMPD/kb.sql"
	# a file already read in part: the stream is the rest of it, and the offset is left at
	# its end, as read(2) would leave it
	{ dd bs=1000 count=1 of=/dev/null status=none; KBVAULT_READ_PIECES=1 kbv snapshot -q --stdin rest.sql; cat > "$TMPD/after"; } < "$TMPD/kb.sql"
	[ ! -s "$TMPD/after" ]
	tail -c +1001 "$TMPD/kb.sql" > "$TMPD/rest.sql"
	kbv restore latest --stdout | cmp - "$TMPD/rest.sql"
	{ dd bs=1000 count=1 of=/dev/null status=none; KBVAULT_READ_PIECES=0 kbv snapshot -q --stdin rest.sql; cat > "$TMPD/after"; } < "$TMPD/kb.sql"
	[ ! -s "$TMPD/after" ]
	kbv restore latest --stdout | cmp - "$TMPD/rest.sql"
}

@test "snapshot --command runs the dumper and stores its output" {
	"$GENDUMP" --mb 2 > "$TMPD/kb.sql"
	kbv snapshot -q --command kb.sql -- cat "$TMPD/kb.sql"
	kbv restore latest --stdout | cmp - "$TMPD/kb.sql"
}

@test "several streams and paths in one snapshot; --target restores them all" {
	mkdir -p "$TMPD/src/sub/deeper"
	echo one > "$TMPD/src/a.txt"
	head -c 300000 /dev/urandom > "$TMPD/src/sub/blob.bin"
	: > "$TMPD/src/empty"
	ln -s a.txt "$TMPD/src/link"
	chmod 640 "$TMPD/src/sub/blob.bin"
	touch -d '2020-02-03 04:05:06' "$TMPD/src/a.txt"
	seq 1 100000 > "$TMPD/seq"
	cd "$TMPD"
	kbv snapshot -q --stdin numbers.txt --command date.txt --command two.txt src -- echo hello -- printf 'x\ny\n' < seq
	kbv restore latest --target "$TMPD/out"
	cmp "$TMPD/out/numbers.txt" seq
	[ "$(cat "$TMPD/out/date.txt")" = hello ]
	[ "$(cat "$TMPD/out/two.txt")" = "$(printf 'x\ny')" ]
	diff -r "$TMPD/src" "$TMPD/out/src"
	[ "$(stat -c %a "$TMPD/out/src/sub/blob.bin")" = 640 ]
	[ "$(stat -c %Y "$TMPD/out/src/a.txt")" = "$(stat -c %Y "$TMPD/src/a.txt")" ]
	[ "$(readlink "$TMPD/out/src/link")" = a.txt ]
	[ -d "$TMPD/out/src/sub/deeper" ]
	# No leftovers of the write-then-rename.
	[ -z "$(find "$TMPD/out" -name '*.kbvault-partial')" ]
	# Selecting one directory restores just that.
	kbv restore latest --target "$TMPD/only" --stream src/sub
	[ -f "$TMPD/only/src/sub/blob.bin" ]
	[ ! -e "$TMPD/only/numbers.txt" ]
}

@test "snapshots --json has the documented fields, oldest first" {
	echo a | kbv snapshot -q --stdin a --tag nightly --host db1
	echo bb | kbv snapshot -q --stdin b
	kbv snapshots --json > "$TMPD/list.json"
	python3 - "$TMPD/list.json" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
assert len(s) == 2
for x in s:
    assert re.fullmatch(r"[0-9a-f]{64}", x["id"]) and x["short_id"] == x["id"][:8]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", x["time"])
    assert isinstance(x["tags"], list) and isinstance(x["host"], str)
    assert all("name" in t and "size" in t for t in x["streams"])
assert s[0]["tags"] == ["nightly"] and s[0]["host"] == "db1"
assert s[0]["streams"][0] == {"name": "a", "kind": "stdin", "size": 2, "xxh3_128": s[0]["streams"][0]["xxh3_128"]}
assert s[0]["time"] <= s[1]["time"]
PY
	# The recorded hash is the XXH3-128 of the stream, named by its algorithm: the standard
	# xxhsum -H2 prints the same hex.
	want=$(echo a | xxhsum -H2 | cut -d' ' -f1)
	[ ${#want} = 32 ]
	grep -q "\"xxh3_128\": \"$want\"" "$TMPD/list.json"
	run kbv snapshots
	[[ "$output" == *"#nightly"* ]]
}

@test "an unchanged re-snapshot stores almost nothing; stats report dedup" {
	"$GENDUMP" --mb 8 > "$TMPD/kb.sql"
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	before=$(repo_bytes data)
	out=$(kbv snapshot --json --stdin kb.sql < "$TMPD/kb.sql")
	new=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["new_bytes"])')
	[ "$new" -lt 1000 ]
	after=$(repo_bytes data)
	[ $((after - before)) -lt 20000 ]
	kbv stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["snapshots"] == 2 and s["dedup_ratio"] > 1.9, s
assert s["compression_ratio"] > 1.5 and s["stored_bytes"] < s["raw_bytes"] / 3, s
for k in ("raw_bytes", "stored_bytes", "chunks", "packs"): assert s[k] > 0, k'
}

@test "a lightly edited dump adds little" {
	"$GENDUMP" --mb 8 --day 0 > "$TMPD/d0.sql"
	"$GENDUMP" --mb 8 --day 1 > "$TMPD/d1.sql"
	kbv snapshot -q --stdin kb.sql < "$TMPD/d0.sql"
	new=$(kbv snapshot --json --stdin kb.sql < "$TMPD/d1.sql" | python3 -c 'import json,sys; print(json.load(sys.stdin)["new_bytes"])')
	size=$(stat -c %s "$TMPD/d1.sql")
	[ "$new" -lt $((size / 2)) ]
	kbv restore latest --stdout | cmp - "$TMPD/d1.sql"
	kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/d0.sql"
}

@test "cut hints: the next snapshot of a stream cuts where the last one did, into the chunks the scan makes" {
	export XDG_CACHE_HOME="$TMPD/cache"
	"$GENDUMP" --mb 8 --day 0 > "$TMPD/d0.sql"
	"$GENDUMP" --mb 8 --day 1 > "$TMPD/d1.sql"
	size=$(stat -c %s "$TMPD/d0.sql")
	json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
	[ "$(kbv snapshot --json --stdin kb.sql < "$TMPD/d0.sql" | json hinted_bytes)" -eq 0 ]
	# one file per stream name, the name not in it, readable by the user alone
	cuts=$(echo "$XDG_CACHE_HOME"/kbvault/*/cuts)
	[ "$(ls "$cuts" | wc -l)" -eq 1 ]
	[ "$(stat -c %a "$cuts"/*)" = 600 ]
	! ls "$cuts" | grep -q kb.sql
	# unchanged: all but the last chunk cut from the hints, nothing new (at most the
	# snapshot's entry table, whose time may differ)
	out=$(kbv snapshot --json --stdin kb.sql < "$TMPD/d0.sql")
	[ "$(echo "$out" | json hinted_bytes)" -gt $((size - 32768)) ]
	[ "$(echo "$out" | json new_bytes)" -lt 1000 ]
	# edited: most bytes cut from the hints...
	out=$(kbv snapshot --json --stdin kb.sql < "$TMPD/d1.sql")
	[ "$(echo "$out" | json hinted_bytes)" -gt $((size / 2)) ]
	chunks=$(echo "$out" | json chunks)
	# ...into exactly the scan's chunks: the same stream cut without hints (another
	# cache) finds every chunk stored already, and as many
	out=$(XDG_CACHE_HOME="$TMPD/cache2" kbv snapshot --json --stdin kb.sql < "$TMPD/d1.sql")
	[ "$(echo "$out" | json hinted_bytes)" -eq 0 ]
	[ "$(echo "$out" | json new_bytes)" -lt 1000 ]
	[ "$(echo "$out" | json chunks)" -eq "$chunks" ]
	kbv restore latest --stdout | cmp - "$TMPD/d1.sql"
	# another name has hints of its own; a file's path is a name too
	[ "$(kbv snapshot --json --stdin other.sql < "$TMPD/d1.sql" | json hinted_bytes)" -eq 0 ]
	mkdir "$TMPD/dir" && cp "$TMPD/d0.sql" "$TMPD/dir/"
	kbv snapshot -q "$TMPD/dir"
	[ "$(kbv snapshot --json "$TMPD/dir" | json hinted_bytes)" -gt $((size - 32768)) ]
	# damage in the hints costs nothing but the scan: the same chunks, the same bytes
	for f in "$cuts"/*; do head -c 1000 /dev/urandom | dd of="$f" bs=1 seek=40 conv=notrunc status=none; done
	out=$(kbv -v snapshot --json --stdin kb.sql < "$TMPD/d0.sql" 2> "$TMPD/log")
	[ "$(echo "$out" | json new_bytes)" -lt 1000 ]
	grep -q "cut where their stream's last snapshot from this host cut" "$TMPD/log"
	kbv restore latest --stdout | cmp - "$TMPD/d0.sql"
	kbv check --read-data
}

@test "unencrypted repository works and needs no password" {
	export KBVAULT_REPO="$TMPD/plain"
	on_s3 && export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/plain"
	unset KBVAULT_PASSWORD_FILE
	kbv init -q --no-encryption
	echo hi | kbv snapshot -q --stdin hi
	[ "$(kbv restore latest --stdout)" = hi ]
	kbv check --read-data
}

@test "empty stream and empty file round trip" {
	# an empty --stdin is refused unless allowed (issue 12: a failed dump looks like this)
	kbv snapshot -q --allow-empty --stdin empty < /dev/null
	[ "$(kbv restore latest --stdout | wc -c)" = 0 ]
	kbv check --read-data
}

@test "check --read-data passes on a healthy repository; repair index rebuilds it" {
	"$GENDUMP" --mb 4 | kbv snapshot -q --stdin kb.sql
	kbv check --read-data
	rm -rf "$(repo_index_dir)"
	kbv repair index
	kbv check --read-data
	"$GENDUMP" --mb 4 | cmp - <(kbv restore latest --stdout)
}

@test "two snapshots may run at the same time" {
	"$GENDUMP" --mb 8 --day 0 > "$TMPD/a.sql"
	"$GENDUMP" --mb 8 --day 3 > "$TMPD/b.sql"
	kbv snapshot -q --stdin a.sql < "$TMPD/a.sql" &
	kbv snapshot -q --stdin b.sql < "$TMPD/b.sql" &
	wait %1
	wait %2
	[ "$(snap_count)" = 2 ]
	kbv check --read-data
	kbv restore latest --stdout > "$TMPD/x"
	kbv restore "$(snap_id 1)" --stdout > "$TMPD/y"
	cat "$TMPD/x" "$TMPD/y" | md5sum > "$TMPD/m1"
	{ cmp -s "$TMPD/x" "$TMPD/a.sql" && cmp -s "$TMPD/y" "$TMPD/b.sql"; } ||
		{ cmp -s "$TMPD/x" "$TMPD/b.sql" && cmp -s "$TMPD/y" "$TMPD/a.sql"; }
}

@test "usage errors exit 2 with a hint" {
	run kbv snapshot
	[ "$status" -eq 2 ]
	[[ "$output" == *"nothing to store"* ]]
	run kbv restore latest
	[ "$status" -eq 2 ]
	run kbv snapshot --stdin a --stdin b
	[ "$status" -eq 2 ]
	run kbv frobnicate
	[ "$status" -eq 2 ]
	run kbv snapshot --command x
	[ "$status" -eq 2 ]
	run kbv snapshot --stdin ../escape < /dev/null
	[ "$status" -eq 2 ]
}

@test "help and --help agree for every command" {
	for c in init snapshot snapshots restore stats check repair; do
		a=$(kbv help "$c")
		b=$(kbv "$c" --help)
		[ "$a" = "$b" ]
		[[ "$a" == usage:* ]]
	done
}

@test "check and restore run safely while snapshots are being written" {
	for d in 0 1 2 3; do "$GENDUMP" --mb 16 --day $d > "$TMPD/d$d.sql"; done
	kbv snapshot -q --stdin db.sql < "$TMPD/d0.sql"
	( for d in 1 2 3; do "$KBVAULT" snapshot -q --stdin db.sql < "$TMPD/d$d.sql"; done ) &
	writer=$!
	n=0
	while kill -0 "$writer" 2>/dev/null; do
		kbv check -q
		kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/d0.sql"
		n=$((n + 1))
	done
	wait "$writer"
	[ "$n" -ge 1 ]
	[ "$(snap_count)" = 4 ]
	kbv check --read-data
}

@test "check leaves to the next check what is committed while it runs: a WAL file or a snapshot added just before its listing is checked, never reported unrestorable" {
	"$GENDUMP" --mb 2 | kbv snapshot -q --stdin kb.sql
	# random bytes: every blob of a pushed file is new to the repository
	head -c 3000000 /dev/urandom > "$TMPD/000000010000000000000001"
	head -c 3000000 /dev/urandom > "$TMPD/000000010000000000000002"
	kbv wal-push --source s "$TMPD/000000010000000000000001"
	# KBVAULT_FAULT=...:pause holds check's first listing of the kind until go: the
	# other process commits its blobs and its object at exactly that point
	for what in wal snapshot; do
		mkdir "$TMPD/p-$what"
		KBVAULT_FAULT=list:$what:1:pause KBVAULT_FAULT_PAUSE="$TMPD/p-$what" "$KBVAULT" check --read-data \
			> "$TMPD/check-$what" 2>&1 &
		pid=$!
		wait_file "$TMPD/p-$what/reached"
		if [ $what = wal ]; then
			kbv wal-push --source s "$TMPD/000000010000000000000002"
		else
			"$GENDUMP" --mb 2 --day 4 | kbv snapshot -q --stdin kb.sql
		fi
		touch "$TMPD/p-$what/go"
		st=0
		wait "$pid" || st=$?
		cat "$TMPD/check-$what"
		[ "$st" -eq 0 ]
	done
	# each pass checked what was committed before its paused listing
	grep -q "1 snapshots, 2 WAL files: ok" "$TMPD/check-wal"
	grep -q "2 snapshots, 2 WAL files: ok" "$TMPD/check-snapshot"
	kbv check --read-data
	[ "$(snap_count)" = 2 ]
	kbv wal-fetch --source s 000000010000000000000002 "$TMPD/back"
	cmp "$TMPD/back" "$TMPD/000000010000000000000002"
}
