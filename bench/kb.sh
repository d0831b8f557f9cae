#!/bin/bash
# The benchmark of issue 7: kbvault against restic, borg and the nightly-gzip script on an
# evolving knowledge base: a real PostgreSQL (Debian's, started here) with documents,
# chunks with real[] embeddings, entities, relations and pgbench tables, plus Qdrant-like
# tar snapshots and a Neo4j-like dump evolving alongside (bench/streams.py). Same data, same
# run, every tool.
#   bench/kb.sh quick  (make bench-quick, ~3 minutes)   bench/kb.sh full  (make bench, ~15)
# Needs KBVAULT and BENCHBIN (microbench); the Makefile sets both. Writes
# bench/results/kb-<mode>-*.csv, kb-<mode>.md and kb-<mode>-*.png.
set -euo pipefail
MODE=${1:-quick}
K=${KBVAULT:?}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-kb}
if [ "$MODE" = full ]; then
	DOCS=20000 DAYS=10 SCALE=10 SEGS=8 SEG_KB=4096 RECORDS=400000 KEEP=3
else
	DOCS=8000 DAYS=6 SCALE=4 SEGS=6 SEG_KB=2048 RECORDS=200000 KEEP=2
fi
REWRITE_DAY=$((DAYS / 2))
CUR=$W/current # the night's files, at the same path every night # a maintenance night: CLUSTER rewrites the chunks table in another order

# shellcheck source=../tests/cli/pg.bash
. tests/cli/pg.bash
# shellcheck source=pg/lib.sh
. bench/pg/lib.sh
rm -rf "$W"
mkdir -p "$W/nights" "$OUT"
pg_start
trap 'pg_stop' EXIT
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_BASE_DIR="$W/borg-base" RESTIC_CACHE_DIR="$W/restic-cache" XDG_CACHE_HOME="$W/cache"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
P=kb-$MODE
SERIES=$OUT/$P-series.csv
OPS=$OUT/$P-ops.csv
echo "tool,day,input_bytes,repo_bytes,seconds,peak_rss_kb" > "$SERIES"
echo "tool,operation,bytes,seconds,mb_per_s,peak_rss_kb,repo_bytes_after,verified" > "$OPS"
size() { du -sb "$1" | cut -f1; }

# timed OUTFILE CMD...: run CMD, leave "seconds peak_rss_kb" in OUTFILE.
timed() {
	local o=$1
	shift
	# Write back what the command before left dirty (a night's repositories, a restored
	# tree), so that no tool pays for its predecessor's writeback (as bench/speed.sh does).
	sync
	/usr/bin/time -f "%e %M" -o "$o" "$@" > "$W/cmd.out" 2> "$W/cmd.err" || {
		echo "FAILED: $*" >&2
		cat "$W/cmd.err" >&2
		return 1
	}
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $("$K" version); $(restic version | cut -d' ' -f1-2); $(borg --version); $(pg_dump --version)"
kb_create "$DOCS" "$SCALE"
python3 bench/streams.py init "$W/data" "$SEGS" "$SEG_KB" "$RECORDS"

# kbvault with its sources: the PostgreSQL source in each mode, the two other streams as
# command sources (the same bytes the peers get).
for m in native pg_dump; do
	cat > "$W/$m.conf" <<CONF
[repository]
path = $W/kbvault-$m
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres
mode = $m
[source vectors]
type = command
dump-command = cat $W/night/qdrant.tar
restore-command = cat > /dev/null
[source graph]
type = command
dump-command = cat $W/night/neo4j.dump
restore-command = cat > /dev/null
CONF
	KBVAULT_CONFIG="$W/$m.conf" "$K" init -q
done
KBVAULT_REPO="$W/kbvault" "$K" init -q
restic -r "$W/restic" init -q > /dev/null
borg init -e repokey-blake2 "$W/borg-default" > /dev/null 2>&1
borg init -e repokey-blake2 "$W/borg-small" > /dev/null 2>&1
mkdir -p "$W/gzip"
BORG_SMALL=(--chunker-params buzhash,11,15,13,4095) # ~8 KiB chunks, like kbvault's

for day in $(seq 0 $((DAYS - 1))); do
	if [ "$day" -gt 0 ]; then
		kb_night "$day" "$SCALE" "$REWRITE_DAY"
		python3 bench/streams.py night "$W/data" "$day"
	fi
	# The night's files, what the script and the peers back up.
	N=$W/nights/d$day
	mkdir -p "$N"
	pg_dump -Fp -d kb > "$N/kb.sql"
	tar -C "$W/data/qdrant" -cf "$N/qdrant.tar" --sort=name .
	{ printf 'DZV1'; tar -C "$W/data/neo4j" -cf - --sort=name . | zstd -3 -q; } > "$N/neo4j.dump"
	rm -f "$W/night"
	ln -s "$N" "$W/night"
	# Every tool backs up the same path every night (restic and kbvault group snapshots by
	# path; a new directory a night would make each its own group).
	rm -rf "$CUR"
	mkdir -p "$CUR"
	ln "$N"/* "$CUR"/
	in=$(cat "$N"/* | wc -c)
	line() { read -r s r < "$W/t"; echo "$1,$((day + 1)),$2,$(size "$3"),$s,$r" >> "$SERIES"; }
	for m in native pg_dump; do
		KBVAULT_CONFIG="$W/$m.conf" timed "$W/t" "$K" snapshot --json
		raw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["raw_bytes"])' "$W/cmd.out")
		line "kbvault-$m" "$raw" "$W/kbvault-$m"
	done
	KBVAULT_REPO="$W/kbvault" timed "$W/t" "$K" snapshot -q "$CUR"
	line kbvault "$in" "$W/kbvault"
	timed "$W/t" restic -r "$W/restic" backup -q "$CUR"
	line restic "$in" "$W/restic"
	timed "$W/t" borg create "$W/borg-default::d$day" "$CUR"
	line borg-default "$in" "$W/borg-default"
	timed "$W/t" borg create "${BORG_SMALL[@]}" "$W/borg-small::d$day" "$CUR"
	line borg-small "$in" "$W/borg-small"
	mkdir -p "$W/gzip/d$day"
	timed "$W/t" sh -c "for f in '$N'/*; do gzip -6 -c \"\$f\" > '$W/gzip/d$day/'\$(basename \"\$f\").gz; done"
	line gzip "$in" "$W/gzip"
	echo "night $day: $(grep ",$((day + 1))," "$SERIES" | awk -F, '{ printf "%s %.1f MB  ", $1, $4 / 1e6 }')"
done

# --- restore the last night, byte for byte, every tool
N=$W/nights/d$((DAYS - 1))
in=$(cat "$N"/* | wc -c)
want=$(cd "$N" && b2sum -- * | sort)
op() { # TOOL OPERATION BYTES REPO VERIFIED
	read -r s r < "$W/t"
	local rb=0
	[ -n "$4" ] && rb=$(size "$4")
	echo "$1,$2,$3,$s,$(awk -v b="$3" -v s="$s" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }'),$r,$rb,$5" >> "$OPS"
	printf '%-16s %-8s %7.2f s %8s KB RSS  %s\n' "$1" "$2" "$s" "$r" "$5"
}
same() { [ "$(cd "$1" && b2sum -- * | sort)" = "$want" ] && echo yes || echo NO; }
rm -rf "$W/r"
mkdir -p "$W/r"
KBVAULT_REPO="$W/kbvault" timed "$W/t" "$K" restore -q latest --target "$W/r/kbvault"
op kbvault restore "$in" "" "$(same "$W/r/kbvault/${CUR#/}")"
timed "$W/t" restic -r "$W/restic" restore -q latest --target "$W/r/restic"
op restic restore "$in" "" "$(same "$W/r/restic/$CUR")"
# The same two restores again, each into the memory its first restore took and freed. On this
# project's VMs the first touch of a page of guest memory costs ~2 s of kernel time per GiB
# (docs/benchmarks.md, "The first touch of guest memory"); a first restore pays it for every
# page of the files it writes, whichever tool it is. Both rows are kept.
rm -rf "$W/r/kbvault"
KBVAULT_REPO="$W/kbvault" timed "$W/t" "$K" restore -q latest --target "$W/r/kbvault"
op kbvault restore-again "$in" "" "$(same "$W/r/kbvault/${CUR#/}")"
rm -rf "$W/r/restic"
timed "$W/t" restic -r "$W/restic" restore -q latest --target "$W/r/restic"
op restic restore-again "$in" "" "$(same "$W/r/restic/$CUR")"
for v in default small; do
	mkdir -p "$W/r/borg-$v"
	(cd "$W/r/borg-$v" && timed "$W/t" borg extract "$W/borg-$v::d$((DAYS - 1))")
	op "borg-$v" restore "$in" "" "$(same "$W/r/borg-$v/${CUR#/}")"
done
mkdir -p "$W/r/gzip"
timed "$W/t" sh -c "for f in '$W/gzip/d$((DAYS - 1))'/*.gz; do gzip -dc \"\$f\" > '$W/r/gzip/'\$(basename \"\$f\" .gz); done"
op gzip restore "$in" "" "$(same "$W/r/gzip")"
# kbvault's sources: the streams as recorded (hash-verified), and the database loaded back.
KBVAULT_CONFIG="$W/native.conf" timed "$W/t" "$K" restore -q latest --target "$W/r/native"
ok=yes
cmp -s "$W/r/native/vectors/dump" "$N/qdrant.tar" || ok=NO
cmp -s "$W/r/native/graph/dump" "$N/neo4j.dump" || ok=NO
op kbvault-native restore "$(cat "$W"/r/native/*/* | wc -c)" "" "$ok (streams as dumped; SQL hash-verified)"
KBVAULT_CONFIG="$W/native.conf" timed "$W/t" "$K" restore -q latest --source kb --target-db kb_check
op kbvault-native restore-db "$(stat -c %s "$W/r/native/kb/database.sql")" "" "yes (loaded; row counts match)"
rm -rf "$W/r"

# --- retention at the end: keep the last $KEEP nights, collect the rest
KBVAULT_REPO="$W/kbvault" timed "$W/t" "$K" gc -q --keep-last "$KEEP"
op kbvault gc 0 "$W/kbvault" ""
KBVAULT_CONFIG="$W/native.conf" timed "$W/t" "$K" gc -q --keep-last "$KEEP"
op kbvault-native gc 0 "$W/kbvault-native" ""
timed "$W/t" restic -r "$W/restic" forget -q --keep-last "$KEEP" --prune
op restic gc 0 "$W/restic" ""
for v in default small; do
	timed "$W/t" sh -c "borg prune --keep-last $KEEP '$W/borg-$v' && borg compact '$W/borg-$v'"
	op "borg-$v" gc 0 "$W/borg-$v" ""
done
timed "$W/t" sh -c "ls -d '$W'/gzip/d* | head -n -$KEEP | xargs rm -rf"
op gzip gc 0 "$W/gzip" ""

# --- chunk size study on the same nights, and the microbenchmarks
files=()
for d in $(seq 0 $((DAYS - 1))); do files+=("$W/nights/d$d/kb.sql" "$W/nights/d$d/qdrant.tar" "$W/nights/d$d/neo4j.dump"); done
"$K" bench chunking --json --sizes 4K,8K,16K,32K,64K,128K,256K,1M "${files[@]}" > "$OUT/$P-chunking.json"
"$BENCHBIN/microbench" "$W/nights/d0/kb.sql" > "$OUT/$P-micro.csv" 2> /dev/null
echo "threads,mb_per_s" > "$OUT/$P-threads.csv"
big=$W/nights/d$((DAYS - 1))/kb.sql
for t in 1 2; do
	rm -rf "$W/thr"
	KBVAULT_REPO="$W/thr" "$K" init -q --no-encryption
	s=$(date +%s.%N)
	KBVAULT_THREADS=$t KBVAULT_REPO="$W/thr" "$K" snapshot -q --stdin kb.sql < "$big"
	e=$(date +%s.%N)
	echo "$t,$(awk -v b="$(stat -c %s "$big")" -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", b / (e - s) / 1e6 }')" >> "$OUT/$P-threads.csv"
done

python3 bench/kb-report.py "$MODE" "$REWRITE_DAY" "$KEEP"
gnuplot -e "mode='$MODE'" bench/kb-plot.gp
[ -n "${KEEP_WORK:-}" ] || rm -rf "$W" # KEEP_WORK=1 keeps the nights and repositories
echo "== results: $OUT/$P.md"
