#!/bin/bash
# Short commands on a bucket a round trip away, against restic: what a command spends
# before its work starts (the config, the keys, the key's derivation, gc's plans, the
# index cache's refresh, the snapshot lookup). A Ceph radosgw is started here as the tests
# start it (tests/cli/ceph.bash; as root) behind bench/lagproxy.py, which adds RTT_MS to
# every request. One snapshot of 3 MB each, tagged base; each round times, per tool, in
# turns (the order reversed every other round): `snapshots`, a restore of the 3 MB to
# stdout (the newest snapshot tagged base), and a snapshot of 1 MB more. Both tools derive their keys with their defaults (kbvault Argon2id 64 MiB,
# restic scrypt), as a user's would. PLAN=1: each kbvault bucket also holds one of gc's
# deletion plans, as a bucket does for a week after any gc that dropped something (a
# snapshot of 1 MB forgotten, then `gc --keep-all`). NEWHOST=1: every command runs with
# an empty cache (both tools), as on a host that has never seen the bucket (a machine
# replacing a lost one, or a restore host reading another's snapshots). RECORDS=N: each
# kbvault bucket also holds N of gc's records (N runs of `gc --keep-all`, as N nights of
# a nightly gc leave), and `status` is timed too (kbvault only: restic has none).
# LOCKDAYS=N: each kbvault bucket has Object Lock (`init --object-lock-days N`: `status`
# reports the retention of every object), and `status` is timed too. STREAMS=N: each
# bucket (restic's too) also holds N snapshots of 20 kB of another stream, newer than the
# 3 MB, and the restore asks for the newest snapshot holding the 3 MB's stream
# (`restore latest --stream a`; restic: `dump --path /a latest /a`), as a restore of one
# source among sources snapshotted on their own schedules does.
#   KBVAULT=build/kbvault [OTHER=old/kbvault] [ROUNDS=8] [RTT_MS=30] [PLAN=1] [NEWHOST=1] [RECORDS=N] [LOCKDAYS=N] [STREAMS=N] bench/s3-start.sh
# Writes bench/results/s3-start-rttN[-plan][-newhost][-recordsN][-lockN][-streamsN].csv and .md: medians and
# restic's time over each.
set -euo pipefail
K=${KBVAULT:?KBVAULT names the kbvault binary}
ROUNDS=${ROUNDS:-8} RTT=${RTT_MS:-30}
cd "$(dirname "$0")/.."
OUT=bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-start}
rm -rf "$W"
mkdir -p "$W" "$OUT"
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
# shellcheck source=../tests/cli/ceph.bash
. tests/cli/ceph.bash
ceph_start
# shellcheck source=gateway.sh
. bench/gateway.sh
trap 'kill ${PROXY_PID:-} 2> /dev/null; ceph_stop' EXIT
lagproxy_start "$RTT"
EP=$LAG_EP
repo() { echo "s3:$EP/start-$1"; }

head -c 3000000 /dev/urandom > "$W/a.bin"
tools=(kbvault)
declare -A BIN=([kbvault]=$K)
if [ -n "${OTHER:-}" ]; then
	tools+=(other)
	BIN[other]=$OTHER
fi
tools+=(restic)
for t in "${tools[@]}"; do
	if [ "$t" = restic ]; then
		restic init -q -r "$(repo restic)" > /dev/null
		restic -q -r "$(repo restic)" backup --tag base --stdin --stdin-filename a < "$W/a.bin" > /dev/null
	else
		"${BIN[$t]}" init -q ${LOCKDAYS:+--object-lock-days "$LOCKDAYS"} -r "$(repo "$t")"
		"${BIN[$t]}" -r "$(repo "$t")" snapshot -q --tag base --stdin a < "$W/a.bin"
		if [ -n "${PLAN:-}" ]; then
			head -c 1000000 /dev/urandom > "$W/b.bin"
			"${BIN[$t]}" -r "$(repo "$t")" snapshot -q --tag drop --stdin b < "$W/b.bin"
			"${BIN[$t]}" -r "$(repo "$t")" forget -q "$("${BIN[$t]}" -r "$(repo "$t")" snapshots --json |
				python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if "drop" in s["tags"]][0])')"
			"${BIN[$t]}" -r "$(repo "$t")" gc -q --keep-all
		fi
		for _ in $(seq 1 "${RECORDS:-0}"); do "${BIN[$t]}" -r "$(repo "$t")" gc -q --keep-all; done
	fi
	for _ in $(seq 1 "${STREAMS:-0}"); do
		head -c 20000 /dev/urandom > "$W/c.bin"
		if [ "$t" = restic ]; then
			restic -q -r "$(repo restic)" backup --stdin --stdin-filename c < "$W/c.bin" > /dev/null
		else
			"${BIN[$t]}" -r "$(repo "$t")" snapshot -q --stdin c < "$W/c.bin"
		fi
	done
done

one() { # TOOL OP: runs it once, timed into $W/t
	local t=$1 op=$2 r
	r=$(repo "$t")
	head -c 1000000 /dev/urandom > "$W/b.bin"
	[ -z "${NEWHOST:-}" ] || rm -rf "$W/cache" "$W/restic-cache"
	case $t/$op in
	restic/snapshots) /usr/bin/time -f "%e %U %S" -o "$W/t" restic -q -r "$r" snapshots > /dev/null ;;
	restic/restore)
		if [ -n "${STREAMS:-}" ]; then
			/usr/bin/time -f "%e %U %S" -o "$W/t" restic -q -r "$r" dump --path /a latest /a > "$W/out"
		else
			/usr/bin/time -f "%e %U %S" -o "$W/t" restic -q -r "$r" dump --tag base latest /a > "$W/out"
		fi
		;;
	restic/snapshot) /usr/bin/time -f "%e %U %S" -o "$W/t" restic -q -r "$r" backup --stdin --stdin-filename b < "$W/b.bin" > /dev/null ;;
	*/snapshots) /usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$r" snapshots > /dev/null ;;
	*/restore)
		if [ -n "${STREAMS:-}" ]; then
			/usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$r" restore -q latest --stream a --stdout > "$W/out" 2> /dev/null
		else
			/usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$r" restore -q latest --tag base --stdout > "$W/out" 2> /dev/null
		fi
		;;
	*/snapshot) /usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$r" snapshot -q --stdin b < "$W/b.bin" ;;
	*/status) /usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$r" status > /dev/null ;;
	esac
	if [ "$op" = restore ]; then
		cmp -s "$W/out" "$W/a.bin" || { echo "$t restored something else" >&2; exit 1; }
	fi
}

NAME=s3-start-rtt$RTT${PLAN:+-plan}${NEWHOST:+-newhost}${RECORDS:+-records$RECORDS}${LOCKDAYS:+-lock$LOCKDAYS}${STREAMS:+-streams$STREAMS}
OPS=(snapshots restore snapshot)
[ -z "${RECORDS:-}${LOCKDAYS:-}" ] || OPS+=(status)
CSV=$OUT/$NAME.csv
echo "tool,op,round,seconds,user_seconds,sys_seconds" > "$CSV"
for r in $(seq 1 "$ROUNDS"); do
	order=("${tools[@]}")
	if ((r % 2 == 0)); then
		mapfile -t order < <(printf '%s\n' "${tools[@]}" | tac)
	fi
	for op in "${OPS[@]}"; do
		for t in "${order[@]}"; do
			[ "$t/$op" != restic/status ] || continue
			one "$t" "$op"
			read -r e u s < "$W/t"
			echo "$t,$op,$r,$e,$u,$s" >> "$CSV"
		done
	done
done

python3 - "$CSV" "$OUT/$NAME.md" "$RTT" "$(restic version | cut -d' ' -f2)" \
	"$(radosgw --version | cut -d' ' -f3)" "${PLAN:+, a gc plan in each kbvault bucket}${NEWHOST:+, each command on an empty cache}${RECORDS:+, $RECORDS gc records in each kbvault bucket}${LOCKDAYS:+, Object Lock ($LOCKDAYS days) on each kbvault bucket}${STREAMS:+, $STREAMS newer snapshots of another stream in each bucket}" <<'EOF'
import csv, statistics, sys, subprocess
rows = list(csv.DictReader(open(sys.argv[1])))
tools = list(dict.fromkeys(r["tool"] for r in rows))
ops = list(dict.fromkeys(r["op"] for r in rows))
med = {(t, o): statistics.median(float(r["seconds"]) for r in rows if r["tool"] == t and r["op"] == o)
       for t in tools for o in ops if any(r["tool"] == t and r["op"] == o for r in rows)}
rounds = len([r for r in rows if r["tool"] == tools[0] and r["op"] == ops[0]])
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
what = {"snapshots": "`snapshots`", "restore": "restore of 3 MB to stdout", "snapshot": "snapshot of 1 MB",
        "status": "`status` (restic: none)"}
def cell(t, o):
    if (t, o) not in med:
        return "—"
    if t == "restic" or ("restic", o) not in med:
        return f"{med[(t, o)]:.3f}"
    return f"{med[(t, o)]:.3f} ({med[('restic', o)] / med[(t, o)]:.2f}x)"
out = [f"# Short commands on a bucket {sys.argv[3]} ms away{sys.argv[6]} (`bench/s3-start.sh`, {rev})", "",
       f"{rounds} rounds, a bucket of Ceph radosgw {sys.argv[5]} on this machine behind bench/lagproxy.py; "
       f"restic {sys.argv[4]}; median wall seconds (restic's over this).", "",
       "| command | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
for o in ops:
    out.append(f"| {what[o]} | " + " | ".join(cell(t, o) for t in tools) + " |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
