#!/bin/bash
# kbvault against restic on the same S3 server in the same run (issue 15): Debian's Ceph
# radosgw on a one-node cluster started here (tests/cli/ceph.bash), each tool in its own
# bucket, encrypted repositories. The data: a synthetic pg_dump series (bench/gendump,
# DAYS nights of about MB MiB each, day by day as a knowledge base evolves). Per night:
# ingest seconds and MB/s, peak RSS, and the requests the gateway served (from its access
# log: PUT, GET, HEAD, LIST, DELETE). Then restore of the last night (kbvault restore
# --stdout, restic dump), and retention + gc (kbvault gc --keep-last 2 against restic
# forget --keep-last 2 --prune). Bytes stored: the buckets' object sizes.
#   bench/s3.sh   (make bench-s3; DAYS=5 MB=200 by default)
# Needs KBVAULT and GENDUMP; writes bench/results/s3.csv and s3.md.
set -euo pipefail
K=${KBVAULT:?} G=${GENDUMP:?}
DAYS=${DAYS:-5} MB=${MB:-200}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-s3}
rm -rf "$W"
mkdir -p "$W" "$OUT"
# shellcheck source=../tests/cli/ceph.bash
. tests/cli/ceph.bash
ceph_start
trap 'ceph_stop' EXIT
LOG=$CEPH_DIR/log/client.rgw.a.log
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache" RESTIC_CACHE_DIR="$W/restic-cache"
KR=s3:$S3_ENDPOINT/kbvault-bench
RR=s3:$S3_ENDPOINT/restic-bench
"$K" -q -r "$KR" init
restic -q -r "$RR" init > /dev/null

# requests BUCKET: "put get head list delete" served for BUCKET since the last call (it
# runs in a subshell: where it got to is kept in a file)
requests() {
	local b=$1 n from=0
	[ -f "$W/seen-$b" ] && from=$(cat "$W/seen-$b")
	n=$(grep -c "beast: .*\"[A-Z]* /$b[/?\" ]" "$LOG" || true)
	echo "$n" > "$W/seen-$b"
	grep "beast: .*\"[A-Z]* /$b[/?\" ]" "$LOG" | tail -n +"$((from + 1))" | python3 -c '
import re, sys
c = {"PUT": 0, "GET": 0, "HEAD": 0, "LIST": 0, "DELETE": 0, "POST": 0}
for line in sys.stdin:
    m = re.search(r"\"([A-Z]+) (\S+) HTTP", line)
    if not m:
        continue
    meth, path = m.groups()
    if meth == "GET" and ("list-type" in path or "?" in path and path.split("?")[0].count("/") == 1):
        meth = "LIST"
    c[meth] = c.get(meth, 0) + 1
print(c["PUT"], c["GET"], c["HEAD"], c["LIST"], c["DELETE"] + c["POST"])'
}

# stored BUCKET: bytes of all its objects
stored() {
	radosgw-admin -c "$CEPH_DIR/ceph.conf" bucket stats --bucket "$1" 2>/dev/null |
		python3 -c 'import json,sys; u=json.load(sys.stdin).get("usage",{}); print(sum(v.get("size_actual", v.get("size",0)) for v in u.values()))'
}

# timed CMD...: run CMD, print "seconds peak_rss_kb"
timed() {
	/usr/bin/time -f "%e %M" -o "$W/time" "$@" > "$W/cmd.out" 2> "$W/cmd.err" || {
		echo "failed: $*" >&2
		cat "$W/cmd.err" >&2
		exit 1
	}
	cat "$W/time"
}

CSV=$OUT/s3.csv
echo "tool,operation,day,bytes,seconds,mb_per_s,peak_rss_kb,put,get,head,list,delete,stored_bytes" > "$CSV"
requests kbvault-bench > /dev/null
requests restic-bench > /dev/null
row() { # tool op day bytes "secs rss" "put get head list delete" stored
	local secs rss
	read -r secs rss <<< "$5"
	python3 -c "import sys; b,s=int(sys.argv[1]),float(sys.argv[2]); print(f'{b/1048576/s:.1f}' if s > 0 else 'inf')" "$4" "$secs" > "$W/rate"
	echo "$1,$2,$3,$4,$secs,$(cat "$W/rate"),$rss,$(tr ' ' ',' <<< "$6"),$7" >> "$CSV"
}
for d in $(seq 0 $((DAYS - 1))); do
	"$G" --day "$d" --mb "$MB" > "$W/kb.sql"
	bytes=$(stat -c %s "$W/kb.sql")
	t=$(timed "$K" -q -r "$KR" snapshot --stdin kb.sql < "$W/kb.sql")
	row kbvault ingest "$d" "$bytes" "$t" "$(requests kbvault-bench)" "$(stored kbvault-bench)"
	t=$(timed restic -q -r "$RR" backup --stdin --stdin-filename kb.sql < "$W/kb.sql")
	row restic ingest "$d" "$bytes" "$t" "$(requests restic-bench)" "$(stored restic-bench)"
done
t=$(timed "$K" -q -r "$KR" restore latest --stdout)
row kbvault restore $((DAYS - 1)) "$bytes" "$t" "$(requests kbvault-bench)" "$(stored kbvault-bench)"
cmp "$W/cmd.out" "$W/kb.sql"
t=$(timed restic -q -r "$RR" dump latest kb.sql)
row restic restore $((DAYS - 1)) "$bytes" "$t" "$(requests restic-bench)" "$(stored restic-bench)"
cmp "$W/cmd.out" "$W/kb.sql"
t=$(timed "$K" -q -r "$KR" gc --keep-last 2)
row kbvault gc - 0 "$t" "$(requests kbvault-bench)" "$(stored kbvault-bench)"
t=$(timed restic -q -r "$RR" forget --keep-last 2 --prune)
row restic gc - 0 "$t" "$(requests restic-bench)" "$(stored restic-bench)"

python3 - "$CSV" > "$OUT/s3.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def tot(tool, op, key):
    return sum(float(r[key]) for r in rows if r["tool"] == tool and r["operation"] == op)
print("| | kbvault | restic | kbvault / restic |")
print("|---|---|---|---|")
for op, label in (("ingest", "ingest, all nights"), ("restore", "restore, last night"), ("gc", "gc (keep last 2)")):
    ks, rs = tot("kbvault", op, "seconds"), tot("restic", op, "seconds")
    if op != "gc":
        kb, rb = tot("kbvault", op, "bytes"), tot("restic", op, "bytes")
        print(f"| {label}, MB/s | {kb/1048576/ks:.1f} | {rb/1048576/rs:.1f} | {(kb/ks)/(rb/rs):.2f}x |")
    else:
        print(f"| {label}, seconds | {ks:.2f} | {rs:.2f} | {rs/ks:.2f}x faster |")
    for k in ("put", "get", "head", "list", "delete"):
        kv, rv = tot("kbvault", op, k), tot("restic", op, k)
        if kv or rv:
            print(f"| {label}, {k.upper()} requests | {kv:.0f} | {rv:.0f} | |")
last = lambda tool: [r for r in rows if r["tool"] == tool][-1]
ks, rs = int(last("kbvault")["stored_bytes"]), int(last("restic")["stored_bytes"])
print(f"| stored after gc, MiB | {ks/1048576:.1f} | {rs/1048576:.1f} | {ks/rs:.2f} |")
rss = lambda tool: max(int(r["peak_rss_kb"]) for r in rows if r["tool"] == tool)
print(f"| peak RSS, MiB | {rss('kbvault')/1024:.0f} | {rss('restic')/1024:.0f} | |")
EOF
cat "$OUT/s3.md"
