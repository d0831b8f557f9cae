#!/usr/bin/env bats
# Qdrant sources against a STAND-IN for Qdrant's REST API (tests/standins/qdrant_standin.py:
# Qdrant's paths, JSON shapes, checksums and multipart upload; no Qdrant server can be
# installed on the test machines).
load helpers
load qdrant

setup() {
	setup_repo
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	printf 'the-api-key\n' > "$TMPD/qdrant.key"
	qdrant_start --api-key the-api-key
	write_config
}

teardown() { qdrant_stop; }

write_config() {
	cat > "$KBVAULT_CONFIG" <<CONF
[source vectors]
type = qdrant
url = $QURL
api-key-file = $TMPD/qdrant.key
timeout = 3
${1:-}
CONF
}

server_snapshots() { qdrant_state | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots_on_server"])'; }

@test "every collection streamed into the repository, checksum verified, server copy deleted, restored with a suffix" {
	kbv snapshot -q
	[ "$(server_snapshots)" = 0 ]
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
assert sorted(x["name"] for x in s["streams"]) == ["vectors/chunks.snapshot", "vectors/docs.snapshot"], s["streams"]
m = s["sources"][0]["meta"]
assert m["version"] == "1.12.4-standin", m
cols = {c["name"]: c for c in m["collections"]}
assert cols["docs"]["points"] == 1000 and cols["chunks"]["points"] == 2000, cols
assert all(len(c["checksum"]) == 64 for c in cols.values())'
	# The stored stream is the snapshot file itself: its SHA-256 is the one Qdrant gave.
	want=$(kbv snapshots --json | python3 -c 'import json,sys; print([c for c in json.load(sys.stdin)[0]["sources"][0]["meta"]["collections"] if c["name"] == "docs"][0]["checksum"])')
	[ "$(kbv restore latest --stream vectors/docs.snapshot --stdout | sha256sum | cut -d' ' -f1)" = "$want" ]
	run kbv restore latest --source vectors --collection-suffix _restored
	[ "$status" -eq 0 ]
	[[ "$output" == *"restored collection 'docs' as 'docs_restored': 1000 points, as the snapshot recorded"* ]]
	qdrant_state | python3 -c 'import json,sys; s=json.load(sys.stdin)["collections"]; assert s["docs_restored"] == 1000 and s["chunks_restored"] == 2000, s'
}

@test "restore into another Qdrant with --target-url; only the configured collections are taken" {
	write_config "collections = docs"
	kbv snapshot -q
	first=$QURL
	qdrant_stop
	qdrant_start --api-key the-api-key --collections other
	kbv restore latest --source vectors --target-url "$QURL" -q
	qdrant_state | python3 -c 'import json,sys; s=json.load(sys.stdin)["collections"]; assert s == {"other": 1000, "docs": 1000}, s'
	[ "$first" != "$QURL" ]
}

@test "segments that change partially between snapshots deduplicate" {
	kbv snapshot -q
	qdrant_mutate docs 0.05
	qdrant_mutate chunks 0.02
	kbv snapshot --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
share = s["new_bytes"] / s["raw_bytes"]
print("new bytes after 5%% and 2%% of one segment changed: %.1f%%" % (100 * share))
# 0.9% of the bytes changed, in two runs of one segment each; what else is new is the
# chunks around them and around the tar headers that changed, and where chunk boundaries
# fall depends on the repository'"'"'s keyed Gear table: 12 runs here gave 2.8 to 6.5%, one CI
# run 11.7% (27 new chunks of 228). Without deduplication it would be 100%.
assert share < 0.20, s'
}

@test "a wrong API key: no snapshot, HTTP 403 named, the key never printed" {
	printf 'not-the-key\n' > "$TMPD/qdrant.key"
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"source 'vectors' failed"*"403"*"Invalid api-key"* ]]
	[[ "$output" != *"not-the-key"* ]]
	[ "$(snap_count)" = 0 ]
}

@test "a refused connection: no snapshot, a clear error" {
	qdrant_stop
	run kbv snapshot
	[ "$status" -eq 7 ]
	[[ "$output" == *"source 'vectors' failed"*"127.0.0.1"* ]]
	[ "$(snap_count)" = 0 ]
}

@test "HTTP 500, a dropped connection, a wrong checksum, a stalled transfer: nothing recorded, server copy deleted" {
	for fault in create-500 download-500 drop bad-checksum slow; do
		qdrant_fault "$fault"
		start=$(date +%s)
		run kbv snapshot
		echo "$fault: $output"
		[ "$status" -eq 7 ]
		[[ "$output" == *"source 'vectors' failed"* ]]
		case $fault in
		create-500 | download-500) [[ "$output" == *"500"* ]] ;;
		bad-checksum) [[ "$output" == *"SHA-256"*"Qdrant said"* ]] ;;
		slow) [ $(($(date +%s) - start)) -lt 20 ] ;; # the 3 s timeout, not the 30 s stall
		esac
		[ "$(snap_count)" = 0 ]
		[ "$(server_snapshots)" = 0 ]
	done
	kbv snapshot -q
	[ "$(snap_count)" = 1 ]
	kbv check --read-data
}

@test "a restore whose upload Qdrant rejects fails; drill uploads to scratch collections and removes them" {
	kbv snapshot -q
	kbv drill
	qdrant_state | python3 -c 'import json,sys; s=json.load(sys.stdin)["collections"]; assert sorted(s) == ["chunks", "docs"], s'
	kbv stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["last_drill"]
v = d["sources"][0]
assert d["ok"] and v["type"] == "qdrant" and v["collections"] == 2 and v["points"] == 3000, d'
	printf 'not-the-key\n' > "$TMPD/qdrant.key"
	run kbv restore latest --source vectors --collection-suffix _x
	[ "$status" -eq 7 ]
	[[ "$output" == *"403"* ]] || { echo "$output"; false; }
}
