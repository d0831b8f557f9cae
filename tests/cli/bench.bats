#!/usr/bin/env bats
# kbvault bench chunking: the chunk-size study on the user's own files, writing nothing.
load helpers

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	export KBVAULT_REPO="$TMPD/no-repo-here"
	unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	"$GENDUMP" --mb 16 --day 0 > "$TMPD/day0.sql"
	"$GENDUMP" --mb 16 --day 1 > "$TMPD/day1.sql"
}

@test "bench chunking: per size figures, what each file adds, and nothing written" {
	run kbv bench chunking "$TMPD/day0.sql" "$TMPD/day1.sql" "$TMPD/day1.sql"
	[ "$status" -eq 0 ]
	[[ "$output" == *"avg chunk"*"dedup"*"stored"*"index"* ]]
	[[ "$output" == *"day1.sql"* ]]
	[ ! -e "$KBVAULT_REPO" ]
	kbv bench chunking --json --sizes 4K,8K,1M "$TMPD/day0.sql" "$TMPD/day1.sql" "$TMPD/day1.sql" | python3 -c '
import json, os, sys
r = json.load(sys.stdin)
assert [x["chunk_avg"] for x in r] == [4096, 8192, 1 << 20], r
size = sum(os.path.getsize(os.environ["TMPD"] + f) for f in ("/day0.sql", "/day1.sql", "/day1.sql"))
for x in r:
    assert x["raw_bytes"] == size, x
    nb = x["file_new_bytes"]
    assert nb[2] == 0, x                         # the same file again adds nothing
    assert x["unique_bytes"] == sum(nb), x
    assert abs(x["dedup_ratio"] - size / x["unique_bytes"]) < 1e-6, x
    assert x["index_bytes_estimate"] == 290 * x["unique_chunks"], x
by = {x["chunk_avg"]: x for x in r}
# smaller chunks find more of the lightly edited night again
assert by[4096]["file_new_bytes"][1] < by[8192]["file_new_bytes"][1] < by[1 << 20]["file_new_bytes"][1], r
assert by[8192]["file_new_bytes"][1] < 0.5 * by[8192]["file_new_bytes"][0], r
assert by[4096]["chunks"] > by[8192]["chunks"] > by[1 << 20]["chunks"], r
'
}

@test "bench chunking: the stored estimate is close to what a repository really stores" {
	kbv bench chunking --json --sizes 8K "$TMPD/day0.sql" "$TMPD/day1.sql" > "$TMPD/est.json"
	export KBVAULT_REPO="$TMPD/repo" KBVAULT_PASSWORD=x
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	kbv snapshot -q --stdin db.sql < "$TMPD/day0.sql"
	kbv snapshot -q --stdin db.sql < "$TMPD/day1.sql"
	packs=$(find "$TMPD/repo/data" -name '*.pack' -printf '%s\n' | awk '{ s += $1 } END { print s }')
	python3 - "$TMPD/est.json" "$packs" <<'PY'
import json, sys
est = json.load(open(sys.argv[1]))[0]["stored_bytes_estimate"]
real = int(sys.argv[2])
assert abs(est - real) / real < 0.15, (est, real)
print(f"estimate {est}, packs {real}, {100 * (est - real) / real:+.1f}%")
PY
}

@test "bench chunking: bad input is named" {
	run kbv bench chunking "$TMPD/missing.sql"
	[ "$status" -eq 1 ]
	[[ "$output" == *"missing.sql"* ]]
	run kbv bench chunking "$TMPD"
	[ "$status" -eq 2 ]
	[[ "$output" == *"not a regular file"* ]]
	run kbv bench chunking --sizes 3000 "$TMPD/day0.sql"
	[ "$status" -eq 2 ]
	[[ "$output" == *"power of two"* ]]
	run kbv bench chunking
	[ "$status" -eq 2 ]
	run kbv bench
	[ "$status" -eq 2 ]
	[[ "$output" == *"kbvault bench chunking FILE"* ]]
}
