#!/bin/bash
# kbvault against restic, borg and the nightly-gzip script on synthetic pg_dump output
# (bench/gendump), on the same data in the same run.
#   bench/run.sh quick   (make bench-synthetic-quick, ~3 min)   bench/run.sh full   (make bench-synthetic, ~15 min)
# Needs KBVAULT (the binary) and BENCHBIN (gendump, microbench); `make bench` sets both.
# Writes bench/results/synthetic-<mode>.csv, -series.csv, .md and plots.
set -euo pipefail
MODE=${1:-quick}
K=${KBVAULT:?}
G=$BENCHBIN/gendump
cd "$(dirname "$0")/.."
OUT=bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench}
rm -rf "$W"
mkdir -p "$W" "$OUT"
if [ "$MODE" = full ]; then BIG_MB=1250; DAYS=10; DAY_MB=256; else BIG_MB=300; DAYS=5; DAY_MB=64; fi

export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_BASE_DIR="$W/borg-base" RESTIC_CACHE_DIR="$W/restic-cache" XDG_CACHE_HOME="$W/cache"
P=synthetic-$MODE
CSV=$OUT/$P.csv
SERIES=$OUT/$P-series.csv
echo "tool,operation,input_bytes,seconds,mb_per_s,peak_rss_kb,repo_bytes,verified" > "$CSV"
echo "tool,day,input_bytes,repo_bytes" > "$SERIES"

# run TOOL OP INPUT_BYTES REPO_DIR IN OUT CMD... : time CMD (stdin from IN, stdout to OUT),
# record elapsed seconds, peak RSS and the repository's size afterwards.
run() {
	local tool=$1 op=$2 bytes=$3 repo=$4 in=$5 out=$6
	shift 6
	/usr/bin/time -f "%e %M" -o "$W/time" "$@" < "$in" > "$out" 2> "$W/stderr" || {
		echo "FAILED: $tool $op" >&2
		cat "$W/stderr" >&2
		return 1
	}
	read -r secs rss < <(tail -1 "$W/time")
	local size=0
	[ -n "$repo" ] && size=$(du -sb "$repo" | cut -f1)
	local mbs
	mbs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }')
	echo "$tool,$op,$bytes,$secs,$mbs,$rss,$size,${VERIFIED:-}" >> "$CSV"
	printf '%-18s %-10s %8.2f s %9s MB/s %8s KB RSS %12s B repo %s\n' "$tool" "$op" "$secs" "$mbs" "$rss" "$size" "${VERIFIED:-}"
}
N=/dev/null

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $("$K" version); $(restic version | cut -d' ' -f1-2); $(borg --version)"
echo "== big dump: generating ~$BIG_MB MB (day 0) and a lightly edited one (day 1)"
"$G" --mb "$BIG_MB" --day 0 > "$W/big0.sql"
"$G" --mb "$BIG_MB" --day 1 > "$W/big1.sql"
B0=$(stat -c %s "$W/big0.sql")
B1=$(stat -c %s "$W/big1.sql")
H0=$(b2sum < "$W/big0.sql" | cut -d' ' -f1)
cat "$W/big0.sql" "$W/big1.sql" > /dev/null # warm the page cache for everyone

restore_check() { # tool name: verify a restore byte for byte (not timed)
	local got
	got=$("$@" | b2sum | cut -d' ' -f1)
	[ "$got" = "$H0" ] && echo yes || echo NO
}

# --- kbvault (defaults: encrypted, 8 KiB chunks, zstd 3)
export KBVAULT_REPO=$W/kbvault
"$K" init -q
run kbvault first "$B0" "$W/kbvault" "$W/big0.sql" $N "$K" snapshot -q --stdin db.sql
run kbvault unchanged "$B0" "$W/kbvault" "$W/big0.sql" $N "$K" snapshot -q --stdin db.sql
run kbvault edited "$B1" "$W/kbvault" "$W/big1.sql" $N "$K" snapshot -q --stdin db.sql
first=$("$K" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
VERIFIED=$(restore_check "$K" restore -q "$first" --stdout) \
	run kbvault restore "$B0" "" $N $N "$K" restore -q "$first" --stdout

# --- restic
restic init -q -r "$W/restic" > /dev/null
R() { restic -q -r "$W/restic" "$@"; }
run restic first "$B0" "$W/restic" "$W/big0.sql" $N restic -q -r "$W/restic" backup --stdin --stdin-filename db.sql
run restic unchanged "$B0" "$W/restic" "$W/big0.sql" $N restic -q -r "$W/restic" backup --stdin --stdin-filename db.sql
run restic edited "$B1" "$W/restic" "$W/big1.sql" $N restic -q -r "$W/restic" backup --stdin --stdin-filename db.sql
rfirst=$(R snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["short_id"])')
VERIFIED=$(restore_check R dump "$rfirst" db.sql) run restic restore "$B0" "" $N $N restic -q -r "$W/restic" dump "$rfirst" db.sql

# --- borg: default chunker (~2 MiB) and a small one (~8 KiB, like kbvault's)
for variant in default small; do
	repo=$W/borg-$variant
	borg init -e repokey-blake2 "$repo" > /dev/null 2>&1
	cp=()
	[ $variant = small ] && cp=(--chunker-params buzhash,11,15,13,4095)
	run "borg-$variant" first "$B0" "$repo" "$W/big0.sql" $N borg create "${cp[@]}" --stdin-name db.sql "$repo::a" -
	run "borg-$variant" unchanged "$B0" "$repo" "$W/big0.sql" $N borg create "${cp[@]}" --stdin-name db.sql "$repo::b" -
	run "borg-$variant" edited "$B1" "$repo" "$W/big1.sql" $N borg create "${cp[@]}" --stdin-name db.sql "$repo::c" -
	VERIFIED=$(restore_check borg extract --stdout "$repo::a") \
		run "borg-$variant" restore "$B0" "" $N $N borg extract --stdout "$repo::a"
done

# --- the nightly script: pg_dump | gzip -6, every file kept
mkdir -p "$W/gzip"
run gzip first "$B0" "$W/gzip" "$W/big0.sql" "$W/gzip/a.sql.gz" gzip -6 -c
run gzip unchanged "$B0" "$W/gzip" "$W/big0.sql" "$W/gzip/b.sql.gz" gzip -6 -c
run gzip edited "$B1" "$W/gzip" "$W/big1.sql" "$W/gzip/c.sql.gz" gzip -6 -c
VERIFIED=$(restore_check gzip -dc "$W/gzip/a.sql.gz") run gzip restore "$B0" "" "$W/gzip/a.sql.gz" $N gzip -dc
rm -rf "$W/kbvault" "$W/restic" "$W/borg-default" "$W/borg-small" "$W/gzip" "$W/big0.sql" "$W/big1.sql"

# --- ten (or five) nights of an evolving database: repository growth per tool
echo "== $DAYS nights of ~$DAY_MB MB dumps (physical row order, default churn), cumulative repository bytes"
export KBVAULT_REPO=$W/s-kbvault
"$K" init -q
restic init -q -r "$W/s-restic" > /dev/null
borg init -e repokey-blake2 "$W/s-borg-default" > /dev/null 2>&1
borg init -e repokey-blake2 "$W/s-borg-small" > /dev/null 2>&1
mkdir -p "$W/s-gzip"
for d in $(seq 0 $((DAYS - 1))); do
	"$G" --mb "$DAY_MB" --day "$d" > "$W/day.sql"
	n=$(stat -c %s "$W/day.sql")
	"$K" snapshot -q --stdin db.sql < "$W/day.sql"
	restic -q -r "$W/s-restic" backup --stdin --stdin-filename db.sql < "$W/day.sql"
	borg create --stdin-name db.sql "$W/s-borg-default::d$d" - < "$W/day.sql"
	borg create --chunker-params buzhash,11,15,13,4095 --stdin-name db.sql "$W/s-borg-small::d$d" - < "$W/day.sql"
	gzip -6 -c "$W/day.sql" > "$W/s-gzip/d$d.sql.gz"
	for t in kbvault restic borg-default borg-small gzip; do
		echo "$t,$((d + 1)),$n,$(du -sb "$W/s-$t" | cut -f1)" >> "$SERIES"
	done
done
# Native-mode preview: the same nights with rows in primary-key order (issue: PostgreSQL source).
export KBVAULT_REPO=$W/s-kbvault-pk
"$K" init -q
for d in $(seq 0 $((DAYS - 1))); do
	"$G" --mb "$DAY_MB" --day "$d" --pk-order > "$W/day.sql"
	"$K" snapshot -q --stdin db.sql < "$W/day.sql"
	echo "kbvault-pk-order,$((d + 1)),$(stat -c %s "$W/day.sql"),$(du -sb "$W/s-kbvault-pk" | cut -f1)" >> "$SERIES"
done

# The heavy-churn profile (10x the pgbench updates, ~9x the change sites): kbvault and restic.
export KBVAULT_REPO=$W/h-kbvault
"$K" init -q
restic init -q -r "$W/h-restic" > /dev/null
for d in $(seq 0 $((DAYS - 1))); do
	"$G" --mb "$DAY_MB" --day "$d" --pgbench-permille 50 > "$W/day.sql"
	n=$(stat -c %s "$W/day.sql")
	"$K" snapshot -q --stdin db.sql < "$W/day.sql"
	restic -q -r "$W/h-restic" backup --stdin --stdin-filename db.sql < "$W/day.sql"
	echo "kbvault-heavy,$((d + 1)),$n,$(du -sb "$W/h-kbvault" | cut -f1)" >> "$SERIES"
	echo "restic-heavy,$((d + 1)),$n,$(du -sb "$W/h-restic" | cut -f1)" >> "$SERIES"
done
rm -rf "$W/h-kbvault" "$W/h-restic"

# --- chunk size sweep on the same nights (kbvault only)
SWEEP=$OUT/$P-chunk-sweep.csv
echo "chunk_avg,repo_bytes,data_bytes,index_bytes,chunks,dedup_ratio,seconds" > "$SWEEP"
for avg in 4096 8192 16384 65536 1048576; do
	export KBVAULT_REPO=$W/sweep-$avg
	"$K" init -q --chunk-avg "$avg"
	s=$(date +%s.%N)
	for d in $(seq 0 $((DAYS - 1))); do "$G" --mb "$DAY_MB" --day "$d" | "$K" snapshot -q --stdin db.sql; done
	e=$(date +%s.%N)
	"$K" stats --json > "$W/st.json"
	python3 - "$W/st.json" "$avg" "$(du -sb "$W/sweep-$avg" | cut -f1)" "$(du -sb "$W/sweep-$avg/data" | cut -f1)" \
		"$(du -sb "$W/sweep-$avg/index" | cut -f1)" "$(echo "$e - $s" | bc)" >> "$SWEEP" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]},{sys.argv[3]},{sys.argv[4]},{sys.argv[5]},{s['chunks']},{s['dedup_ratio']:.3f},{sys.argv[6]}")
PY
	rm -rf "$W/sweep-$avg"
done

# --- microbenchmarks (one core each)
"$G" --mb 256 > "$W/micro.sql"
"$BENCHBIN/microbench" "$W/micro.sql" > "$OUT/$P-micro.csv" 2> /dev/null

python3 bench/report.py "$P"
command -v gnuplot > /dev/null && gnuplot -e "mode='$P'" bench/plot.gp || true
rm -rf "$W"
echo "== results: $OUT/$P.md"
