#!/bin/bash
# PostgreSQL sources over days of an evolving knowledge-base database, same data, same run:
# repository growth per day for kbvault's native mode, kbvault's pg_dump mode, restic
# (pg_dump | restic backup --stdin) and the nightly `pg_dump | gzip -6` files.
#   bench/pg-evolve.sh quick   (~2 minutes)     bench/pg-evolve.sh full   (~8 minutes)
# Needs KBVAULT (the binary); `make bench-pg` sets it. Starts its own PostgreSQL
# (tests/cli/pg.bash). Writes bench/results/pg-<mode>.csv and .md.
set -euo pipefail
MODE=${1:-quick}
K=${KBVAULT:?}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-pg}
if [ "$MODE" = full ]; then DOCS=20000; DAYS=10; SCALE=10; else DOCS=4000; DAYS=6; SCALE=2; fi
REWRITE_DAY=5 # a maintenance night: CLUSTER chunks by document, rewriting it in another order

# shellcheck source=../tests/cli/pg.bash
. tests/cli/pg.bash
# shellcheck source=pg/lib.sh
. bench/pg/lib.sh
rm -rf "$W"
mkdir -p "$W/gz" "$OUT"
pg_start
trap 'pg_stop' EXIT
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/restic-cache"
echo "== machine: $(nproc) cores; $("$K" version); $(restic version | cut -d' ' -f1-2); $(pg_dump --version)"
echo "== day 0: $DOCS documents, pgbench scale $SCALE"
kb_create "$DOCS" "$SCALE"

for m in native pg_dump; do
	cat > "$W/$m.conf" <<CONF
[repository]
path = $W/kbv-$m
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres
mode = $m
CONF
	KBVAULT_CONFIG="$W/$m.conf" "$K" init -q --kdf-ops 1 --kdf-mem-mib 8
done
restic -r "$W/restic" init -q > /dev/null

CSV=$OUT/pg-$MODE.csv
echo "day,dump_bytes,native_repo,pg_dump_repo,restic_repo,gzip_bytes,native_s,pg_dump_s,restic_s,note" > "$CSV"
size() { du -sb "$1" | cut -f1; }
for day in $(seq 0 $((DAYS - 1))); do
	note=""
	if [ "$day" -gt 0 ]; then
		kb_night "$day" "$SCALE" "$REWRITE_DAY"
		[ "$day" = "$REWRITE_DAY" ] && note="CLUSTER chunks USING chunks_doc"
	fi
	t0=$(date +%s.%N)
	KBVAULT_CONFIG="$W/native.conf" "$K" snapshot -q
	t1=$(date +%s.%N)
	KBVAULT_CONFIG="$W/pg_dump.conf" "$K" snapshot -q
	t2=$(date +%s.%N)
	pg_dump -Fp -d kb > "$W/day.sql"
	t3=$(date +%s.%N)
	restic -r "$W/restic" backup -q --stdin --stdin-filename kb.sql < "$W/day.sql" > /dev/null
	t4=$(date +%s.%N)
	gzip -6 < "$W/day.sql" > "$W/gz/day$day.sql.gz"
	row="$day,$(stat -c %s "$W/day.sql"),$(size "$W/kbv-native"),$(size "$W/kbv-pg_dump"),$(size "$W/restic"),$(size "$W/gz")"
	row="$row,$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" 'BEGIN { printf "%.2f,%.2f,%.2f", b - a, c - b, e - d }'),$note"
	echo "$row" >> "$CSV"
	echo "day $day: $row"
done

# Every tool's last night restores; kbvault's native snapshot is also drilled.
KBVAULT_CONFIG="$W/native.conf" "$K" restore latest --source kb --target-db kb_check -q
cat > "$W/drill.conf" <<CONF
[repository]
path = $W/kbv-native
[source kb]
type = postgres
dsn = host=127.0.0.1 port=$PGPORT dbname=kb user=postgres
[drill]
postgres-dsn = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
CONF
KBVAULT_CONFIG="$W/drill.conf" "$K" drill

python3 - "$CSV" "$OUT/pg-$MODE.md" "$MODE" "$REWRITE_DAY" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, mode, rewrite = sys.argv[2], sys.argv[3], int(sys.argv[4])
mb = lambda b: int(b) / 1e6
tools = [("kbvault native", "native_repo"), ("kbvault pg_dump mode", "pg_dump_repo"), ("restic (pg_dump --stdin)", "restic_repo"), ("nightly gzip -6 files", "gzip_bytes")]
L = [f"# PostgreSQL sources over {len(rows)} days ({mode})", "",
     f"Command: `make bench-pg{'-quick' if mode == 'quick' else ''}` (bench/pg-evolve.sh {mode}). Repository size (MB) after each night; the dump column is one plain pg_dump.", "",
     "| day | dump MB | " + " | ".join(t for t, _ in tools) + " | note |", "|" + "---|" * (len(tools) + 3)]
for r in rows:
    L.append(f"| {r['day']} | {mb(r['dump_bytes']):.1f} | " + " | ".join(f"{mb(r[c]):.1f}" for _, c in tools) + f" | {r['note']} |")
def growth(col, days):
    g = [int(rows[i][col]) - int(rows[i - 1][col]) for i in days]
    return sum(g) / len(g) / 1e6 if g else 0
normal = [i for i in range(1, len(rows)) if i != rewrite]
L += ["", "| | " + " | ".join(t for t, _ in tools) + " |", "|" + "---|" * (len(tools) + 1)]
L.append("| mean growth per ordinary night, MB | " + " | ".join(f"{growth(c, normal):.2f}" for _, c in tools) + " |")
if rewrite < len(rows):
    L.append(f"| growth on the CLUSTER night (day {rewrite}), MB | " + " | ".join(f"{growth(c, [rewrite]):.2f}" for _, c in tools) + " |")
last = rows[-1]
L.append("| total after the last night, MB | " + " | ".join(f"{mb(last[c]):.1f}" for _, c in tools) + " |")
L.append("| total relative to restic | " + " | ".join(f"x{int(last[c]) / int(last['restic_repo']):.2f}" for _, c in tools) + " |")
ns = [float(r["native_s"]) for r in rows]; ps = [float(r["pg_dump_s"]) for r in rows]; rs = [float(r["restic_s"]) for r in rows]
L += ["", f"Mean seconds per night: kbvault native {sum(ns)/len(ns):.2f} s, kbvault pg_dump mode {sum(ps)/len(ps):.2f} s (each includes its own dump), restic {sum(rs)/len(rs):.2f} s (backup of a dump already on disk)."]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
