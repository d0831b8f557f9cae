#!/bin/bash
# A restore of a tree of many small files, the way a path source's snapshot of an uploads
# folder or a configuration tree comes back: 20,000 files of 0.5-4.5 KB (text with a random
# tail) in 200 directories, 42 MB (81 MB of 4 KiB blocks). Each round restores it with kbvault (KBVAULT; and OTHER,
# a second kbvault binary, for a before/after figure in the same run) and with restic, each
# into a freshly made ext4 file system: a loop image in /dev/shm, made again every round, so
# every restore meets the same empty file system (right after as many inodes were deleted,
# ext4's inode allocator makes creating files several times slower, and the figures drift
# with whatever ran before). The order is turned round every other round. Without root (no
# loop mount) each restore goes into a fresh directory under the work directory instead,
# and the script says so.
# With S3=1 the repositories (kbvault's and restic's) are buckets of Debian's Ceph radosgw,
# started here as the tests start it (tests/cli/ceph.bash); with RTT_MS=N as well, both tools
# reach it through bench/lagproxy.py, which adds a round trip of N ms to every request (a
# bucket across a network). TREE=random restores a larger tree instead: 40,000 files of 2-8
# KB of random bytes in 400 directories, 200 MB that compress to nothing (as many packs).
#   KBVAULT=build/kbvault [OTHER=old/kbvault] [ROUNDS=6] [S3=1 [RTT_MS=30]] [TREE=random]
#   bench/restore-tree.sh   (make bench-files)
# Writes bench/results/restore-tree.csv and restore-tree.md (restore-tree-s3.* with S3=1,
# -s3-rttN with RTT_MS, -random with TREE=random): medians and the ratio to restic.
set -euo pipefail
K=${KBVAULT:?KBVAULT names the kbvault binary}
ROUNDS=${ROUNDS:-6}
cd "$(dirname "$0")/.."
OUT=bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-tree}
MNT=$W/mnt IMG=/dev/shm/kbvault-bench-tree.img
umount "$MNT" 2> /dev/null || true
rm -rf "$W"
mkdir -p "$W/mnt" "$OUT"
cleanup() { umount "$MNT" 2> /dev/null || true; rm -f "$IMG"; }
trap cleanup EXIT
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
SUFFIX= STORE="a directory"
repo() { echo "$W/repo-$1"; } # repo TOOL: where TOOL's repository is
if [ -n "${S3:-}" ]; then
	# shellcheck source=../tests/cli/ceph.bash
	. tests/cli/ceph.bash
	ceph_start
	trap 'cleanup; ceph_stop' EXIT
	SUFFIX=-s3 STORE="a bucket of Ceph radosgw $(radosgw --version | cut -d' ' -f3) on this machine"
	EP=$S3_ENDPOINT
	if [ -n "${RTT_MS:-}" ]; then
		# shellcheck source=gateway.sh
		. bench/gateway.sh
		trap 'kill ${PROXY_PID:-} 2> /dev/null; cleanup; ceph_stop' EXIT
		lagproxy_start "$RTT_MS"
		EP=$LAG_EP
		SUFFIX=-s3-rtt$RTT_MS STORE="$STORE, behind a round trip of $RTT_MS ms (bench/lagproxy.py)"
	fi
	repo() { echo "s3:$EP/tree-$1"; }
fi

WHAT="20,000 small files" MODE=text
if [ "${TREE:-}" = random ]; then
	SUFFIX=$SUFFIX-random WHAT="40,000 small files of random bytes" MODE=random
fi
python3 - "$W/tree" "$MODE" <<'EOF'
import os, random, sys
root, mode = sys.argv[1], sys.argv[2]
random.seed(7 if mode == "text" else 9)
for d in range(200 if mode == "text" else 400):
    p = f"{root}/d{d:03}/sub"
    os.makedirs(p)
    for f in range(100):
        if mode == "text":
            n = random.randint(500, 4500)
            body = (f"doc {d} {f} " * (n // 12 + 1)).encode()[:n] + random.randbytes(64)
        else:
            body = random.randbytes(random.randint(2000, 8000))
        with open(f"{p}/f{f:03}.{'txt' if mode == 'text' else 'bin'}", "wb") as fh:
            fh.write(body)
EOF
want=$(cd "$W/tree" && find . -type f -print0 | sort -z | xargs -0 b2sum | b2sum)

tools=(kbvault)
declare -A BIN=([kbvault]=$K)
if [ -n "${OTHER:-}" ]; then
	tools+=(other)
	BIN[other]=$OTHER
fi
tools+=(restic)
find "$W/tree" -type f -exec cat {} + > /dev/null
: > "$W/backup.txt"
for t in "${tools[@]}"; do # the tree's first snapshot, once each (what a restore reads)
	if [ "$t" = restic ]; then
		restic init -q -r "$(repo restic)" > /dev/null
		(cd "$W" && /usr/bin/time -f "$t %e %U %S" -a -o "$W/backup.txt" restic -q -r "$(repo restic)" backup tree > /dev/null)
	else
		"${BIN[$t]}" init -q -r "$(repo "$t")"
		(cd "$W" && /usr/bin/time -f "$t %e %U %S" -a -o "$W/backup.txt" "${BIN[$t]}" -r "$(repo "$t")" snapshot -q tree)
	fi
done

fresh_fs() { # a new empty ext4 at $MNT; 1 when there is none to be had
	[ "$(id -u)" = 0 ] || return 1
	umount "$MNT" 2> /dev/null || true
	truncate -s 4G "$IMG" && mkfs.ext4 -q -F "$IMG" && mount -o loop "$IMG" "$MNT" || return 1
}
where="a fresh ext4 (loop image in /dev/shm) per round"
CSV=$OUT/restore-tree$SUFFIX.csv
echo "tool,round,seconds,user_seconds,sys_seconds" > "$CSV"
for r in $(seq 1 "$ROUNDS"); do
	if ! fresh_fs; then
		where="fresh directories under $W (no loop mount here: the figures drift with the file system's state)"
		rm -rf "$MNT"
		mkdir -p "$MNT"
	fi
	order=("${tools[@]}")
	if ((r % 2 == 0)); then
		mapfile -t order < <(printf '%s\n' "${tools[@]}" | tac)
	fi
	for t in "${order[@]}"; do
		sync
		if [ "$t" = restic ]; then
			/usr/bin/time -f "%e %U %S" -o "$W/t" restic -q -r "$(repo restic)" restore latest --target "$MNT/$t" > /dev/null
		else
			/usr/bin/time -f "%e %U %S" -o "$W/t" "${BIN[$t]}" -r "$(repo "$t")" restore latest --target "$MNT/$t" -q
		fi
		got=$(cd "$MNT/$t/tree" && find . -type f -print0 | sort -z | xargs -0 b2sum | b2sum)
		[ "$got" = "$want" ] || { echo "$t restored something else in round $r" >&2; exit 1; }
		read -r e u s < "$W/t"
		echo "$t,$r,$e,$u,$s" >> "$CSV"
	done
done

python3 - "$CSV" "$OUT/restore-tree$SUFFIX.md" "$where" "$(restic version | cut -d' ' -f2)" "$W/backup.txt" "$STORE" "$WHAT" <<'EOF'
import csv, statistics, sys, subprocess
rows = list(csv.DictReader(open(sys.argv[1])))
tools = list(dict.fromkeys(r["tool"] for r in rows))
med = {t: {k: statistics.median(float(r[k]) for r in rows if r["tool"] == t)
           for k in ("seconds", "user_seconds", "sys_seconds")} for t in tools}
rounds = len([r for r in rows if r["tool"] == tools[0]])
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = [f"# Restore of {sys.argv[7]} (`make bench-files`, {rev})", "",
       f"{rounds} rounds, repositories in {sys.argv[6]}, each restore into {sys.argv[3]}; restic {sys.argv[4]}; medians.", "",
       "| tool | wall s | user s | sys s | restic's wall / this |", "|---|---|---|---|---|"]
for t in tools:
    m = med[t]
    out.append(f"| {t} | {m['seconds']:.2f} | {m['user_seconds']:.2f} | {m['sys_seconds']:.2f} | "
               f"{med['restic']['seconds'] / m['seconds']:.2f}x |")
out += ["", "The tree's first snapshot, once each (the repositories the restores read; files in the page cache):", "",
        "| tool | wall s | user s | sys s |", "|---|---|---|---|"]
for line in open(sys.argv[5]):
    t, e, u, s = line.split()
    out.append(f"| {t} | {e} | {u} | {s} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
