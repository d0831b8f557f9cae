#!/usr/bin/env bats
# A stream larger than 4 GiB: positions and sizes past 32 bits through every path a
# nightly dump of a big database takes (stdin, a file, a restore into a file and into a
# pipe, check --read-data). The stream is a sparse file of 5 GiB and a little more, zeros
# but for four random pieces of 1.5 MB, two of them across the 4 GiB line, so a chunk put
# at the wrong place would show. Costs ~1 minute, ~5 GB of disk for the restored file and
# page cache for the holes read: it runs in make soak (KBV_SOAK=1), on a directory and on
# Ceph (--cli-s3; the zeros deduplicate, so its 2 GiB memstore is room enough), and
# is skipped in make test.
load helpers

setup() {
	[ -n "${KBV_SOAK:-}" ] || skip "a 5 GiB stream: make soak"
	setup_repo
}

@test "a stream over 4 GiB: snapshot from stdin and from a file, restore into a pipe and into a file, byte for byte; check --read-data" {
	f=$TMPD/big.bin
	size=$((5 * 1024 * 1024 * 1024 + 12345))
	python3 - "$f" "$size" <<'PY'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
g = 1 << 30
with open(path, "wb") as out:
    out.truncate(size)
    for off in (0, 4 * g - 700000, 4 * g + 3, size - 1500000):
        out.seek(off)
        out.write(os.urandom(1500000))
PY
	[ "$(stat -c %s "$f")" = "$size" ]

	kbv snapshot -q --stdin big.bin < "$f"
	kbv snapshot -q "$f"
	# both record its size and the XXH3-128 that xxhsum -H2 gives the file
	want=$(xxhsum -H2 "$f" | cut -d' ' -f1)
	kbv snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert len(s) == 2, s
for snap in s:
    (st,) = snap["streams"]
    assert st["size"] == int(sys.argv[1]), st
    assert st["xxh3_128"] == sys.argv[2], (st["xxh3_128"], sys.argv[2])
' "$size" "$want"

	# the stdin snapshot, through a pipe (the restore's own exit status counts too)
	set -o pipefail
	kbv restore "$(snap_id 1)" --stream big.bin --stdout | cmp - "$f"
	set +o pipefail
	# the file snapshot, into a file
	kbv restore -q latest --target "$TMPD/r"
	[ "$(stat -c %s "$TMPD/r/${f#/}")" = "$size" ]
	cmp "$TMPD/r/${f#/}" "$f"
	rm -f "$TMPD/r/${f#/}"

	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"0 problems"* ]]
}
