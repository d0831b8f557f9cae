#!/bin/bash
# Many hosts, one bucket (issue 16), on Debian's Ceph radosgw started here: the ingest of
# three writer hosts snapshotting at once (each its own cache and --host, each its own
# stream) against one writer alone, and the requests each kind of operation sends (from
# kbvault -v: every attempt counted). Synthetic streams from bench/gendump, MB MiB each
# (default 150), different seeds, so the three share little.
#   bench/s3-hosts.sh   (make bench-s3 runs it after bench/s3.sh)
# Needs KBVAULT and GENDUMP; writes bench/results/s3-hosts.md.
set -euo pipefail
K=${KBVAULT:?} G=${GENDUMP:?}
MB=${MB:-150}
cd "$(dirname "$0")/.."
OUT=$PWD/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-s3-hosts}
rm -rf "$W"
mkdir -p "$W" "$OUT"
# shellcheck source=../tests/cli/ceph.bash
. tests/cli/ceph.bash
ceph_start
trap 'ceph_stop' EXIT
export KBVAULT_PASSWORD=bench
for h in 1 2 3; do "$G" --seed "$h" --day 0 --mb "$MB" > "$W/s$h.sql"; done
bytes=$(stat -c %s "$W/s1.sql")
now() { date +%s.%N; }
as() { local h=$1; shift; XDG_CACHE_HOME="$W/cache-$h" "$K" "$@"; }
# requests: the "object storage requests: ..." line of a -v run
requests() { grep -o 'object storage requests: .*' "$1" | sed 's/object storage requests: //'; }

"$K" -q -r "s3:$S3_ENDPOINT/one" init
t0=$(now)
as 1 -q -r "s3:$S3_ENDPOINT/one" snapshot --host h1 --stdin s.sql < "$W/s1.sql"
t1=$(now)
"$K" -q -r "s3:$S3_ENDPOINT/three" init
pids=()
t2=$(now)
for h in 1 2 3; do
	as "$h" -q -r "s3:$S3_ENDPOINT/three" snapshot --host "h$h" --stdin s.sql < "$W/s$h.sql" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t3=$(now)
R=s3:$S3_ENDPOINT/three
# requests per operation, on the three-host repository
as 1 -v -r "$R" snapshots > /dev/null 2> "$W/idle.log"
as 1 -v -r "$R" snapshot --host h1 --stdin s.sql < "$W/s1.sql" > /dev/null 2> "$W/unchanged.log"
as 4 -v -r "$R" snapshots > /dev/null 2> "$W/newhost.log"
as 1 -v -r "$R" restore latest --host h2 --stdout 2> "$W/restore.log" | cmp - "$W/s2.sql"
as 1 -v -r "$R" gc --keep-last 1 > /dev/null 2> "$W/gc.log"
as 1 -v -r "$R" check > /dev/null 2> "$W/check.log"
python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" > "$OUT/s3-hosts.md" <<PY
import sys
b, t0, t1, t2, t3 = int(sys.argv[1]), *map(float, sys.argv[2:])
one, three = b / 1048576 / (t1 - t0), 3 * b / 1048576 / (t3 - t2)
print(f"Streams of {b / 1048576:.0f} MiB (bench/gendump, seeds 1-3), encrypted, radosgw on this machine (2 cores).")
print()
print("| | seconds | MiB/s |")
print("|---|---|---|")
print(f"| one writer | {t1 - t0:.2f} | {one:.1f} |")
print(f"| three writers at once (total) | {t3 - t2:.2f} | {three:.1f} |")
print(f"| three / one | | {three / one:.2f}x |")
print()
print("Requests per operation on the three-host repository (kbvault -v, every attempt counted):")
print()
print("| operation | requests |")
print("|---|---|")
PY
for op in idle:"snapshots (list), warm cache" unchanged:"snapshot of an unchanged stream" newhost:"snapshots from a new host (empty cache)" restore:"restore of one stream" gc:"gc --keep-last 1 (two passes, delay 0)" check:"check"; do
	echo "| ${op#*:} | $(requests "$W/${op%%:*}.log") |" >> "$OUT/s3-hosts.md"
done
cat "$OUT/s3-hosts.md"
