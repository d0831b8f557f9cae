#!/bin/bash
# gc on a repository of many packs (issue 16: gc's cost grows with packs, not with
# snapshots x packs), on Debian's Ceph radosgw started here. A repository of N packs is
# built quickly by making the writers' pack target tiny (KBVAULT_PACK_SIZE, bytes: packs
# of any size are valid): snapshot A of N x 110 KiB of random bytes (a pack holds
# at least one bundle of chunks, up to 128 KiB: format/blob.md), then snapshot B of its
# first half, then gc --keep-last 1 drops A and deletes the packs only A used (about half).
# For each N: packs, gc seconds and the requests gc sent (from the gateway's access log).
# restic 0.14 (Debian's) gets the same two snapshots and forget --keep-last 1 --prune in
# the same run: its packs are at least 4 MiB (--pack-size), so the same data makes far
# fewer of them; N restic packs would take N x 4 MiB (40 GiB for 10,000).
#   bench/s3-manypacks.sh           N = 1000 and 10000 (PACKS="1000 10000")
# Needs KBVAULT; writes bench/results/s3-manypacks.md.
set -euo pipefail
K=${KBVAULT:?}
PACKS=${PACKS:-1000 10000}
cd "$(dirname "$0")/.."
OUT=$PWD/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-s3-manypacks}
rm -rf "$W"
mkdir -p "$W" "$OUT"
# shellcheck source=../tests/cli/ceph.bash
. tests/cli/ceph.bash
ceph_start
trap 'ceph_stop' EXIT
export KBVAULT_PASSWORD=bench XDG_CACHE_HOME="$W/cache" KBVAULT_PACK_SIZE=16384
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/restic-cache"
now() { date +%s.%N; }
# shellcheck source=gateway.sh
. bench/gateway.sh
# "N (PUT/GET/HEAD/LIST/DELETE)" served for BUCKET since the last call
counted() { requests "$1" | awk '{printf "%d (%d/%d/%d/%d/%d)\n", $1 + $2 + $3 + $4 + $5, $1, $2, $3, $4, $5}'; }
rows=()
for n in $PACKS; do
	R=s3:$S3_ENDPOINT/many$n
	"$K" -q -r "$R" init --kdf-ops 1 --kdf-mem-mib 8
	head -c $((n * 112640)) /dev/urandom > "$W/a"
	head -c $((n * 56320)) "$W/a" > "$W/b"
	t0=$(now)
	"$K" -q -r "$R" snapshot --stdin s < "$W/a"
	t1=$(now)
	"$K" -q -r "$R" snapshot --stdin s < "$W/b"
	packs=$("$K" -r "$R" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs"])')
	requests "many$n" > /dev/null
	t2=$(now)
	"$K" -q -r "$R" gc --keep-last 1 > "$W/gc$n.out"
	t3=$(now)
	kreq=$(counted "many$n")
	after=$("$K" -r "$R" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs"])')
	"$K" -q -r "$R" restore latest --stdout | cmp - "$W/b"
	rows+=("kbvault|$n|$packs|$after|$(python3 -c "print(f'{$t1 - $t0:.1f}')")|$(python3 -c "print(f'{$t3 - $t2:.2f}')")|$kreq")
	RR=s3:$S3_ENDPOINT/restic$n
	restic -q -r "$RR" init > /dev/null
	t0=$(now)
	restic -q -r "$RR" backup --pack-size 4 --stdin --stdin-filename s < "$W/a" > /dev/null
	t1=$(now)
	restic -q -r "$RR" backup --pack-size 4 --stdin --stdin-filename s < "$W/b" > /dev/null
	packs=$(restic -q -r "$RR" list packs | wc -l)
	requests "restic$n" > /dev/null
	t2=$(now)
	restic -q -r "$RR" forget --keep-last 1 --prune > "$W/restic$n.out"
	t3=$(now)
	rreq=$(counted "restic$n")
	after=$(restic -q -r "$RR" list packs | wc -l)
	restic -q -r "$RR" dump latest s | cmp - "$W/b"
	rows+=("restic|$n|$packs|$after|$(python3 -c "print(f'{$t1 - $t0:.1f}')")|$(python3 -c "print(f'{$t3 - $t2:.2f}')")|$rreq")
	rm -f "$W/a" "$W/b"
done
{
	echo "Packs of one bundle, ~110 KiB (KBVAULT_PACK_SIZE=16384), encrypted, radosgw on this machine (2 cores)."
	echo "gc --keep-last 1 drops the first of two snapshots; about half the packs become garbage."
	echo
	echo "restic: the same bytes with --pack-size 4 (MiB, its least), forget --keep-last 1 --prune."
	echo
	echo "| tool | data, packs target | packs before gc | packs after | snapshot A, s | gc, s | gc requests (PUT/GET/HEAD/LIST/DELETE) |"
	echo "|---|---|---|---|---|---|---|"
	for r in "${rows[@]}"; do
		IFS='|' read -r t a b c d e f <<< "$r"
		echo "| $t | $a | $b | $c | $d | $e | $f |"
	done
} > "$OUT/s3-manypacks.md"
cat "$OUT/s3-manypacks.md"
