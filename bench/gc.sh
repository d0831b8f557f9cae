#!/bin/bash
# gc and check on a repository of more than a million chunks, next to restic's
# forget --prune and check on the same data, in the same run.
#   bench/gc.sh   (make bench-gc, ~3 minutes)
# 30 dumps of ~84 MiB (bench/gendump, seeds 1..30; they share some content) are stored
# by restic and by kbvault twice: with 1 KiB chunks, so that the repository holds more
# than a million chunks, and with its default 8 KiB. restic keeps its own ~1 MiB chunks:
# it has about a thousand times fewer blobs to handle. Then the policy "keep the last 15"
# drops half the snapshots and their data. Peak RSS comes from /usr/bin/time; the
# anonymous (heap) part, sampled every 20 ms from /proc, is shown beside it: kbvault maps
# its LMDB index read-only, and those pages are page cache, not heap. Writes
# bench/results/gc.md.
set -euo pipefail
K=${KBVAULT:?}
G=${BENCHBIN:?}/gendump
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-/tmp/kbvault-bench-gc}
N=${GC_SNAPSHOTS:-30}
rm -rf "$W"
mkdir -p "$W" bench/results
export KBVAULT_REPO=$W/kbv KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$W/restic-cache
unset KBVAULT_CONFIG
"$K" init -q --kdf-ops 1 --kdf-mem-mib 8 --chunk-avg 1024
KBVAULT_REPO=$W/kbv8 "$K" init -q --kdf-ops 1 --kdf-mem-mib 8
restic -r "$W/restic" init -q > /dev/null
for i in $(seq 1 "$N"); do
	"$G" --mb 100 --seed "$i" > "$W/dump.sql"
	"$K" snapshot -q --stdin kb.sql < "$W/dump.sql"
	KBVAULT_REPO=$W/kbv8 "$K" snapshot -q --stdin kb.sql < "$W/dump.sql"
	restic -r "$W/restic" backup -q --stdin --stdin-filename kb.sql < "$W/dump.sql" > /dev/null
done
rm -f "$W/dump.sql"
chunks=$("$K" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
chunks8=$(KBVAULT_REPO=$W/kbv8 "$K" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
rblobs=$(restic -r "$W/restic" stats --mode raw-data --json 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("total_blob_count", 0))')
echo "kbvault: $chunks chunks; restic: $rblobs blobs"

measure() { # name cmd...: "seconds rss_kb anon_kb"
	local name=$1
	shift
	/usr/bin/time -f "%e %M" -o "$W/time" "$@" > "$W/$name.out" 2>&1 &
	local tpid=$! anon=0
	while kill -0 "$tpid" 2> /dev/null; do
		for p in $(pgrep -P "$tpid"); do
			a=$(awk '/RssAnon/ {print $2}' "/proc/$p/status" 2> /dev/null || echo 0)
			[ "${a:-0}" -gt "$anon" ] && anon=$a
		done
		sleep 0.02
	done
	wait "$tpid" || { cat "$W/$name.out" >&2; exit 1; }
	echo "$(tail -1 "$W/time") $anon"
}
size() { du -sb "$1" | cut -f1; }
kb_before=$(size "$W/kbv")
k8_before=$(size "$W/kbv8")
r_before=$(size "$W/restic")
read -r kc_s kc_rss kc_anon < <(measure kcheck "$K" check)
read -r k8c_s k8c_rss k8c_anon < <(KBVAULT_REPO=$W/kbv8 measure k8check "$K" check)
read -r rc_s rc_rss rc_anon < <(measure rcheck restic -r "$W/restic" check)
read -r kg_s kg_rss kg_anon < <(measure kgc "$K" gc -q --keep-last $((N / 2)))
read -r k8g_s k8g_rss k8g_anon < <(KBVAULT_REPO=$W/kbv8 measure k8gc "$K" gc -q --keep-last $((N / 2)))
read -r rg_s rg_rss rg_anon < <(measure rgc restic -r "$W/restic" forget -q --keep-last $((N / 2)) --prune)
kb_after=$(size "$W/kbv")
k8_after=$(size "$W/kbv8")
r_after=$(size "$W/restic")
# Everything kept still restores, for both.
"$K" check --read-data > /dev/null
"$K" restore latest --stdout | b2sum > "$W/k.b2"
restic -r "$W/restic" dump latest kb.sql | b2sum > "$W/r.b2"
"$G" --mb 100 --seed "$N" | b2sum > "$W/want.b2"
verified=no
cmp -s "$W/k.b2" "$W/want.b2" && cmp -s "$W/r.b2" "$W/want.b2" && verified=yes

python3 - <<PY | tee bench/results/gc.md
chunks, chunks8, rblobs, n = $chunks, $chunks8, $rblobs, $N
rows = [
    ("gc (restic: forget --prune), seconds", $kg_s, $k8g_s, $rg_s, "s"),
    ("gc, peak RSS MiB", $kg_rss / 1024, $k8g_rss / 1024, $rg_rss / 1024, "m"),
    ("gc, peak anonymous memory MiB", $kg_anon / 1024, $k8g_anon / 1024, $rg_anon / 1024, "m"),
    ("check, seconds", $kc_s, $k8c_s, $rc_s, "s"),
    ("check, peak RSS MiB", $kc_rss / 1024, $k8c_rss / 1024, $rc_rss / 1024, "m"),
    ("check, peak anonymous memory MiB", $kc_anon / 1024, $k8c_anon / 1024, $rc_anon / 1024, "m"),
    ("repository before, MB", $kb_before / 1e6, $k8_before / 1e6, $r_before / 1e6, "b"),
    ("repository after, MB", $kb_after / 1e6, $k8_after / 1e6, $r_after / 1e6, "b"),
]
print("# gc and check: kbvault vs restic, same data, same run\n")
print(f"Command: \`make bench-gc\` (bench/gc.sh). {n} dumps of ~84 MiB; policy keep-last {n // 2}.")
print(f"Blobs: kbvault 1 KiB chunks {chunks:,}; kbvault 8 KiB (default) {chunks8:,}; restic {rblobs:,}.\n")
print("| | kbvault, 1 KiB chunks | kbvault, default | restic | 1 KiB / restic | default / restic |")
print("|---|---|---|---|---|---|")
for name, a, b, r, kind in rows:
    ra = f"x{a / r:.2f}" if kind != "b" and r else ""
    rb = f"x{b / r:.2f}" if kind != "b" and r else ""
    fmt = (lambda v: f"{v:.2f}") if kind == "s" else (lambda v: f"{v:.0f}") if kind == "m" else (lambda v: f"{v:.1f}")
    print(f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(r)} | {ra} | {rb} |")
print(f"\nkbvault gc per million chunks (1 KiB repository): peak RSS {$kg_rss / 1024 / (chunks / 1e6):.0f} MiB, anonymous {$kg_anon / 1024 / (chunks / 1e6):.0f} MiB.")
print("Latest snapshot restored and verified byte for byte by kbvault and restic: $verified.")
PY
