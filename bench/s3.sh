#!/bin/bash
# kbvault against restic on the same S3 server in the same run (issue 15): Debian's Ceph
# radosgw on a one-node cluster started here (tests/cli/ceph.bash), each tool in its own
# bucket, encrypted repositories. The data (DATA=kb, the default): the knowledge-base
# series of `make bench` (bench/kb.sh, its quick sizes): a real PostgreSQL evolving night
# by night (its plain pg_dump) with the Qdrant-like and Neo4j-like streams beside it
# (bench/streams.py), DAYS nights; both tools back up the night's directory. DATA=synthetic:
# the pg_dump series of bench/gendump, about MB MiB a night, through standard input. Per
# night: ingest seconds and MB/s, peak RSS, CPU and minor page faults, and the requests the
# gateway served (from its access log: PUT, GET, HEAD, LIST, DELETE). Then restore of the
# last night (byte for byte; RESTORES rounds taking turns, each tool's median), and
# retention + gc (kbvault gc --keep-last 2 against restic forget --keep-last 2 --prune).
# Bytes stored: the buckets' object sizes. The results open with what a page's first touch
# costs on the host.
# RTT_MS=N: both tools reach the gateway through bench/lagproxy.py, which adds a round trip
# of N ms to every exchange, as to a storage service across a network (the proxy's own CPU
# is taken from the same two cores as both tools'); the results then go to s3-rttN.*.
#   bench/s3.sh   (make bench-s3; DATA=kb DAYS=6 by default; DATA=synthetic DAYS=5 MB=200)
# Needs KBVAULT and GENDUMP; writes bench/results/s3.csv and s3.md.
set -euo pipefail
K=${KBVAULT:?} G=${GENDUMP:?}
DATA=${DATA:-kb}
case $DATA in
kb) DAYS=${DAYS:-6} DOCS=8000 SCALE=4 SEGS=6 SEG_KB=2048 RECORDS=200000 ;;
synthetic) DAYS=${DAYS:-5} MB=${MB:-200} ;;
*) echo "DATA is kb or synthetic, not '$DATA'" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-s3}
rm -rf "$W"
mkdir -p "$W" "$OUT"
# shellcheck source=../tests/cli/ceph.bash
. tests/cli/ceph.bash
ceph_start
PROXY_PID=
stop_all() {
	[ -z "$PROXY_PID" ] || kill "$PROXY_PID" 2> /dev/null || true
	! declare -F pg_stop > /dev/null || pg_stop || true
	ceph_stop
}
trap stop_all EXIT
CUR=$W/current # the night's files, at the same path every night (both tools group by path)
if [ "$DATA" = kb ]; then
	# shellcheck source=../tests/cli/pg.bash
	. tests/cli/pg.bash
	# shellcheck source=pg/lib.sh
	. bench/pg/lib.sh
	pg_start
	kb_create "$DOCS" "$SCALE"
	python3 bench/streams.py init "$W/data" "$SEGS" "$SEG_KB" "$RECORDS"
fi
# night D: the night's files into $CUR (kb) or $W/kb.sql (synthetic); prints their bytes
night() {
	if [ "$DATA" = synthetic ]; then
		"$G" --day "$1" --mb "$MB" > "$W/kb.sql"
		stat -c %s "$W/kb.sql"
		return
	fi
	if [ "$1" -gt 0 ]; then
		kb_night "$1" "$SCALE" $((DAYS / 2))
		python3 bench/streams.py night "$W/data" "$1" >&2
	fi
	rm -rf "$CUR"
	mkdir -p "$CUR"
	pg_dump -Fp -d kb > "$CUR/kb.sql"
	tar -C "$W/data/qdrant" -cf "$CUR/qdrant.tar" --sort=name .
	{ printf 'DZV1'; tar -C "$W/data/neo4j" -cf - --sort=name . | zstd -3 -q; } > "$CUR/neo4j.dump"
	cat "$CUR"/* | wc -c
}
# shellcheck source=gateway.sh
. bench/gateway.sh
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$W/cache" RESTIC_CACHE_DIR="$W/restic-cache"
EP=$S3_ENDPOINT NAME=s3
if [ -n "${RTT_MS:-}" ]; then
	lagproxy_start "$RTT_MS"
	EP=$LAG_EP NAME=s3-rtt$RTT_MS
fi
KR=s3:$EP/kbvault-bench
RR=s3:$EP/restic-bench
"$K" -q -r "$KR" init
restic -q -r "$RR" init > /dev/null

# stored BUCKET: bytes of all its objects
stored() {
	radosgw-admin -c "$CEPH_DIR/ceph.conf" bucket stats --bucket "$1" 2>/dev/null |
		python3 -c 'import json,sys; u=json.load(sys.stdin).get("usage",{}); print(sum(v.get("size_actual", v.get("size",0)) for v in u.values()))'
}

# timed CMD...: run CMD, print "seconds peak_rss_kb cpu_seconds minor_faults" (CPU: user +
# system; minor faults: pages the process touched first, each a trap to the kernel)
timed() {
	/usr/bin/time -f "%e %M %U %S %R" -o "$W/time" "$@" > "$W/cmd.out" 2> "$W/cmd.err" || {
		echo "failed: $*" >&2
		cat "$W/cmd.err" >&2
		exit 1
	}
	awk '{ printf "%s %s %.2f %s\n", $1, $2, $3 + $4, $5 }' "$W/time"
}

CSV=$OUT/$NAME.csv
echo "tool,operation,day,bytes,seconds,mb_per_s,peak_rss_kb,cpu_s,minor_faults,put,get,head,list,delete,stored_bytes" > "$CSV"
requests kbvault-bench > /dev/null
requests restic-bench > /dev/null
row() { # tool op day bytes "secs rss cpu faults" "put get head list delete" stored
	local secs rss cpu faults
	read -r secs rss cpu faults <<< "$5"
	python3 -c "import sys; b,s=int(sys.argv[1]),float(sys.argv[2]); print(f'{b/1048576/s:.1f}' if s > 0 else 'inf')" "$4" "$secs" > "$W/rate"
	echo "$1,$2,$3,$4,$secs,$(cat "$W/rate"),$rss,$cpu,$faults,$(tr ' ' ',' <<< "$6"),$7" >> "$CSV"
}
for d in $(seq 0 $((DAYS - 1))); do
	bytes=$(night "$d")
	if [ "$DATA" = synthetic ]; then
		t=$(timed "$K" -q -r "$KR" snapshot --stdin kb.sql < "$W/kb.sql")
	else
		t=$(timed "$K" -q -r "$KR" snapshot "$CUR")
	fi
	row kbvault ingest "$d" "$bytes" "$t" "$(requests kbvault-bench)" "$(stored kbvault-bench)"
	if [ "$DATA" = synthetic ]; then
		t=$(timed restic -q -r "$RR" backup --stdin --stdin-filename kb.sql < "$W/kb.sql")
	else
		t=$(timed restic -q -r "$RR" backup "$CUR")
	fi
	row restic ingest "$d" "$bytes" "$t" "$(requests restic-bench)" "$(stored restic-bench)"
	echo "night $d: $bytes bytes" >&2
done
# restore_one TOOL: restore the last night with TOOL, check it byte for byte, print
# "seconds rss cpu faults" as timed does
restore_one() {
	if [ "$DATA" = synthetic ] && [ "$1" = kbvault ]; then
		timed "$K" -q -r "$KR" restore latest --stdout
		cmp "$W/cmd.out" "$W/kb.sql"
	elif [ "$DATA" = synthetic ]; then
		timed restic -q -r "$RR" dump latest kb.sql
		cmp "$W/cmd.out" "$W/kb.sql"
	elif [ "$1" = kbvault ]; then
		rm -rf "$W/r-kbvault"
		timed "$K" -q -r "$KR" restore latest --target "$W/r-kbvault"
		[ "$(cd "$W/r-kbvault/${CUR#/}" && b2sum -- * | sort)" = "$want" ]
	else
		rm -rf "$W/r-restic"
		timed restic -q -r "$RR" restore latest --target "$W/r-restic"
		[ "$(cd "$W/r-restic/$CUR" && b2sum -- * | sort)" = "$want" ]
	fi
}
# The restore is repeated RESTORES times (3), the two tools taking turns, and each tool's
# median round is reported (with the first round's requests): one timing right after the
# ingest measured whatever the machine was still doing then (the gateway, PostgreSQL),
# and it fell on whichever tool came first.
[ "$DATA" = synthetic ] || want=$(cd "$CUR" && b2sum -- * | sort)
RESTORES=${RESTORES:-3}
: > "$W/restores"
for r in $(seq 1 "$RESTORES"); do
	for tool in kbvault restic; do
		t=$(restore_one "$tool")
		q=$(requests "$tool-bench")
		echo "$tool $r $t $q" >> "$W/restores"
	done
done
for tool in kbvault restic; do
	med=$(awk -v t="$tool" '$1 == t { print $3, $4, $5, $6 }' "$W/restores" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
	q=$(awk -v t="$tool" '$1 == t && $2 == 1 { print $7, $8, $9, $10, $11 }' "$W/restores")
	row "$tool" restore $((DAYS - 1)) "$bytes" "$med" "$q" "$(stored "$tool-bench")"
done
echo "restores (tool round seconds rss cpu faults put get head list delete):" >&2
cat "$W/restores" >&2
t=$(timed "$K" -q -r "$KR" gc --keep-last 2)
row kbvault gc - 0 "$t" "$(requests kbvault-bench)" "$(stored kbvault-bench)"
t=$(timed restic -q -r "$RR" forget --keep-last 2 --prune)
row restic gc - 0 "$t" "$(requests restic-bench)" "$(stored restic-bench)"

# What a first touch of a page costs on this host (a fault taken to the kernel, the page
# zeroed and mapped): it differs several-fold between virtual machines of one kind, and a
# short-lived process pays it for every page it uses, so it belongs beside the figures.
fault_us=$(python3 -c '
import mmap, time
n = 256 << 20
best = None
for _ in range(3):
    m = mmap.mmap(-1, n)
    t = []
    for _ in range(2):  # the second pass touches nothing new: the cost of the loop itself
        t0 = time.perf_counter()
        for i in range(0, n, 4096):
            m[i] = 1
        t.append(time.perf_counter() - t0)
    d = (t[0] - t[1]) / (n // 4096) * 1e6
    best = d if best is None else min(best, d)
    m.close()
print(f"{best:.1f}")')

python3 - "$CSV" "$fault_us" > "$OUT/$NAME.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"Host: a page's first touch costs {sys.argv[2]} us (an anonymous mapping of 256 MiB touched page by page, less the loop's cost; best of three).")
print()
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
    print(f"| {label}, CPU seconds (user + system) | {tot('kbvault', op, 'cpu_s'):.2f} | {tot('restic', op, 'cpu_s'):.2f} | |")
    print(f"| {label}, minor page faults | {tot('kbvault', op, 'minor_faults'):.0f} | {tot('restic', op, 'minor_faults'):.0f} | |")
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
cat "$OUT/$NAME.md"
# KEEP_LOG=1: the gateway's access log stays in the work directory (request by request)
[ -z "${KEEP_LOG:-}" ] || cp "$LOG" "$W/gateway.log"
