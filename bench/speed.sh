#!/bin/bash
# The speed aims of issue 17, side by side with restic in one run: first snapshot, unchanged
# re-snapshot and restore of one ~1 GB dump (bench/gendump, the pg_dump-shaped output the
# issue's profile was taken on), encrypted repositories, page cache warm for everyone.
# Then the zstd level sweep that chose the default: first snapshot time and stored bytes per
# level on the same dump, and, when NIGHTS names a directory of nights (d0, d1, ... each
# holding a night's files, as bench/kb.sh leaves them under its work directory), the stored
# bytes of all nights per level.
#   bench/speed.sh   (make bench-speed; MB=1000 ROUNDS=1 LEVELS="1 2 3" NIGHTS= THREADS="1 2")
# Then KBVAULT_THREADS scaling and, with MICROBENCH, the sequential stages' cost per GB.
# Needs KBVAULT and GENDUMP; writes bench/results/speed.csv and speed.md.
set -euo pipefail
K=${KBVAULT:?} G=${GENDUMP:?}
MB=${MB:-1000} ROUNDS=${ROUNDS:-1} LEVELS=${LEVELS:-1 2 3} NIGHTS=${NIGHTS:-}
cd "$(dirname "$0")/.."
OUT=bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-speed}
rm -rf "$W"
mkdir -p "$W" "$OUT"
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
CSV=$OUT/speed.csv
echo "tool,operation,round,input_bytes,seconds,cpu_seconds,mb_per_s,peak_rss_kb,repo_bytes" > "$CSV"

"$G" --mb "$MB" --day 1 > "$W/dump.sql"
B=$(stat -c %s "$W/dump.sql")
H=$(xxhsum -H2 < "$W/dump.sql" | cut -d' ' -f1)
cat "$W/dump.sql" > /dev/null

# timed TOOL OP ROUND REPO CMD... (stdin from $IN, stdout to $OUTF): one CSV line
timed() {
	local tool=$1 op=$2 round=$3 repo=$4
	shift 4
	# Write back what the command before left dirty (a restored GB, a repository), so that
	# no command pays for its predecessor's writeback.
	sync
	/usr/bin/time -f "%e %U %S %M" -o "$W/t" "$@" < "${IN:-/dev/null}" > "${OUTF:-/dev/null}" 2> "$W/err" || {
		echo "FAILED: $tool $op" >&2
		cat "$W/err" >&2
		exit 1
	}
	read -r e u s m < "$W/t"
	local size=0
	[ -n "$repo" ] && size=$(du -sb "$repo" | cut -f1)
	awk -v t="$tool" -v o="$op" -v r="$round" -v b="$B" -v e="$e" -v u="$u" -v s="$s" -v m="$m" -v z="$size" \
		'BEGIN { printf "%s,%s,%s,%s,%s,%.2f,%.1f,%s,%s\n", t, o, r, b, e, u + s, b / e / 1e6, m, z }' >> "$CSV"
	tail -1 "$CSV"
}

verify() { # what a restore wrote (to a file, or its hash through a pipe), against the dump
	if [ "${2:-}" = pipe ]; then
		[ "$(cut -d' ' -f1 < "$W/out")" = "$H" ] || { echo "FAILED: $1 restored other bytes" >&2; exit 1; }
	else
		[ "$(xxhsum -H2 < "$W/out" | cut -d' ' -f1)" = "$H" ] || { echo "FAILED: $1 restored other bytes" >&2; exit 1; }
	fi
	rm -f "$W/out"
}

for r in $(seq 1 "$ROUNDS"); do
	rm -rf "$W/kbvault" "$W/restic"
	"$K" -q -r "$W/kbvault" init
	IN=$W/dump.sql timed kbvault first "$r" "$W/kbvault" "$K" -q -r "$W/kbvault" snapshot --stdin dump.sql
	IN=$W/dump.sql timed kbvault unchanged "$r" "$W/kbvault" "$K" -q -r "$W/kbvault" snapshot --stdin dump.sql
	# The same again through a pipe, as `pg_dump | kbvault snapshot --stdin` gives it (cat's
	# CPU counted for both tools)
	timed kbvault unchanged-pipe "$r" "$W/kbvault" bash -c 'cat "$0" | "$1" -q -r "$2" snapshot --stdin dump.sql' "$W/dump.sql" "$K" "$W/kbvault"
	OUTF=$W/out timed kbvault restore "$r" "" "$K" -q -r "$W/kbvault" restore latest --stdout
	verify kbvault
	# The same restore into a pipe (as into pg_restore or psql), hashed on the way: what a
	# GB written into fresh page-cache pages costs this VM (0.3-3.6 s for `dd` of the dump)
	# is not in it, for either tool.
	OUTF=$W/out timed kbvault restore-pipe "$r" "" bash -c '"$0" -q -r "$1" restore latest --stdout | xxhsum -H2' "$K" "$W/kbvault"
	verify kbvault pipe
	restic -q -r "$W/restic" init > /dev/null
	IN=$W/dump.sql timed restic first "$r" "$W/restic" restic -q -r "$W/restic" backup --stdin --stdin-filename dump.sql
	IN=$W/dump.sql timed restic unchanged "$r" "$W/restic" restic -q -r "$W/restic" backup --stdin --stdin-filename dump.sql
	timed restic unchanged-pipe "$r" "$W/restic" bash -c 'cat "$0" | restic -q -r "$1" backup --stdin --stdin-filename dump.sql' "$W/dump.sql" "$W/restic"
	OUTF=$W/out timed restic restore "$r" "" restic -q -r "$W/restic" dump latest dump.sql
	verify restic
	OUTF=$W/out timed restic restore-pipe "$r" "" bash -c 'restic -q -r "$0" dump latest dump.sql | xxhsum -H2' "$W/restic"
	verify restic pipe
done

# Scaling with cores: the same first and unchanged snapshot with KBVAULT_THREADS 1 and 2
# (workers; the reading thread and the stream check are one thread each whatever the count)
for t in ${THREADS:-1 2}; do
	rm -rf "$W/thr"
	"$K" -q -r "$W/thr" init
	IN=$W/dump.sql KBVAULT_THREADS=$t timed "kbvault-threads-$t" first 1 "$W/thr" "$K" -q -r "$W/thr" snapshot --stdin dump.sql
	IN=$W/dump.sql KBVAULT_THREADS=$t timed "kbvault-threads-$t" unchanged 1 "$W/thr" "$K" -q -r "$W/thr" snapshot --stdin dump.sql
done
rm -rf "$W/thr"

# The sequential stages' cost per GB, one core each (bench/microbench on the dump): the
# reading thread reads (the kernel's copy: cat to /dev/null) and cuts (FastCDC, on as many
# segments as workers: fastcdc_cutter_N); the serial stage hashes the stream (XXH3-128);
# the index transaction that ends a snapshot indexes its new chunks (index_add_*, per GB
# of new data in chunks of ~8 KiB, into an empty index and into one of 1.1 million).
if [ -n "${MICROBENCH:-}" ]; then
	"$MICROBENCH" "$W/dump.sql" > "$W/micro.csv" 2> /dev/null
	read_s=$( { /usr/bin/time -f "%e" cat "$W/dump.sql" > /dev/null; } 2>&1)
	python3 - "$W/micro.csv" "$B" "$read_s" >> "$CSV" <<'PY'
import csv, sys
rows = {r["stage"]: r for r in csv.DictReader(l for l in open(sys.argv[1]) if "," in l and not l.startswith("chunks"))}
b = float(sys.argv[2])
print(f"stage,read,1,{int(b)},{sys.argv[3]},,{b / float(sys.argv[3]) / 1e6:.1f},,")
for k in ("fastcdc_2byte", "fastcdc_cutter_2seg", "fastcdc_cutter_4seg", "xxh3_8k", "xxh3_128_stream_1m", "blake3_256_keyed_8k",
          "blake3_256_keyed_9300", "blake3_256_keyed_9300_batch128", "blake2b_256_keyed_8k", "zstd3_8k_compress",
          "index_add_112k_chunks_to_empty", "index_add_112k_chunks_to_1.1m"):
    if k in rows:
        r = rows[k]
        print(f"stage,{k},1,{r['bytes']},{r['seconds']},,{r['MB_per_s']},,")
PY
fi

# zstd levels: first snapshot of the dump, and every night of NIGHTS, per level
for l in $LEVELS; do
	rm -rf "$W/lvl"
	"$K" -q -r "$W/lvl" init --zstd-level "$l"
	IN=$W/dump.sql timed "kbvault-zstd-$l" first 1 "$W/lvl" "$K" -q -r "$W/lvl" snapshot --stdin dump.sql
	if [ -n "$NIGHTS" ]; then
		rm -rf "$W/lvl"
		"$K" -q -r "$W/lvl" init --zstd-level "$l"
		start=$(date +%s.%N)
		for n in "$NIGHTS"/d*; do
			rm -rf "$W/cur"
			mkdir -p "$W/cur"
			cp "$n"/* "$W/cur/"
			"$K" -q -r "$W/lvl" snapshot "$W/cur"
		done
		secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
		echo "kbvault-zstd-$l,nights,1,$(du -sb "$NIGHTS" | cut -f1),$secs,,,,$(du -sb "$W/lvl" | cut -f1)" >> "$CSV"
		tail -1 "$CSV"
	fi
done
rm -rf "$W"

python3 - "$CSV" "$OUT/speed.md" "$MB" "$("$K" version)" "$(restic version | cut -d' ' -f1-2)" <<'PY'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
def med(tool, op, key):
    v = [float(r[key]) for r in rows if r["tool"] == tool and r["operation"] == op and r[key]]
    return statistics.median(v) if v else None
out = [f"# Speed: kbvault and restic on one {sys.argv[3]} MB dump (bench/speed.sh)", "",
       f"{sys.argv[4]}; {sys.argv[5]}; encrypted repositories; medians of the rounds in bench/results/speed.csv.", "",
       "| operation | kbvault s | kbvault MB/s | restic s | restic MB/s | kbvault speed / restic | kbvault CPU s | restic CPU s | kbvault peak RSS MiB |",
       "|---|---|---|---|---|---|---|---|---|"]
for op in ("first", "unchanged", "unchanged-pipe", "restore", "restore-pipe"):
    k, r = med("kbvault", op, "seconds"), med("restic", op, "seconds")
    out.append(f"| {op} | {k:.2f} | {med('kbvault', op, 'mb_per_s'):.0f} | {r:.2f} | {med('restic', op, 'mb_per_s'):.0f} | "
               f"{r / k:.2f}x | {med('kbvault', op, 'cpu_seconds'):.2f} | {med('restic', op, 'cpu_seconds'):.2f} | "
               f"{med('kbvault', op, 'peak_rss_kb') / 1024:.0f} |")
thr = [r for r in rows if r["tool"].startswith("kbvault-threads-")]
if thr:
    out += ["", "| KBVAULT_THREADS | first s | first CPU s | unchanged s | unchanged MB/s |", "|---|---|---|---|---|"]
    for t in sorted({r["tool"] for r in thr}):
        f = [r for r in thr if r["tool"] == t and r["operation"] == "first"][0]
        u = [r for r in thr if r["tool"] == t and r["operation"] == "unchanged"][0]
        out.append(f"| {t.rsplit('-', 1)[1]} | {f['seconds']} | {f['cpu_seconds']} | {u['seconds']} | {u['mb_per_s']} |")
st = [r for r in rows if r["tool"] == "stage"]
if st:
    out += ["", "| stage (one core; fastcdc_cutter_N: the reading thread's cut on N segments; index_add: per GB of new data) | MB/s | seconds per GB |",
            "|---|---|---|"]
    for r in st:
        out.append(f"| {r['operation']} | {float(r['mb_per_s']):.0f} | {1000 / float(r['mb_per_s']):.2f} |")
out += ["", "| zstd level | first snapshot s | CPU s | stored bytes (dump) | stored bytes (nights) |", "|---|---|---|---|---|"]
for r in rows:
    if r["tool"].startswith("kbvault-zstd-") and r["operation"] == "first":
        t = r["tool"]
        n = [x["repo_bytes"] for x in rows if x["tool"] == t and x["operation"] == "nights"]
        out.append(f"| {t.rsplit('-', 1)[1]} | {r['seconds']} | {r['cpu_seconds']} | {r['repo_bytes']} | {n[0] if n else ''} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
