#!/bin/bash
# A/B of two kbvault binaries on the same dump, interleaved so that a noisy machine hurts
# both alike: first snapshot, unchanged re-snapshot, restore (to /dev/null) and restore into
# a fresh file (written back with sync before the next command), each ROUNDS
# times per binary, encrypted repositories. Prints the medians of wall time and of CPU time
# (user + system: steadier than wall time on a shared machine) and new/old ratios.
#   bench/ab.sh OLD_KBVAULT NEW_KBVAULT [MB] [ROUNDS]
# Needs GENDUMP (build/bench/gendump). With AB_S3=1 the repositories are buckets of a Ceph
# radosgw started here (tests/cli/ceph.bash; as root), a new bucket for each first snapshot.
set -euo pipefail
OLD=${1:?old kbvault} NEW=${2:?new kbvault} MB=${3:-200} ROUNDS=${4:-3}
G=${GENDUMP:?}
W=${BENCH_WORK:-/tmp/kbvault-bench-ab}
rm -rf "$W"
mkdir -p "$W"
export KBVAULT_PASSWORD=bench
if [ -n "${AB_S3:-}" ]; then
	# shellcheck source=../tests/cli/ceph.bash
	. "$(dirname "$0")/../tests/cli/ceph.bash"
	ceph_start
	trap ceph_stop EXIT
	export XDG_CACHE_HOME=$W/cache
fi
"$G" --mb "$MB" --day 1 > "$W/dump.sql"
bytes=$(stat -c %s "$W/dump.sql")
run() { # BIN OP -> seconds
	local bin=$1 op=$2 repo=$W/repo-$3
	if [ -n "${AB_S3:-}" ]; then # (run is called in a subshell: the bucket's name is kept in a file)
		[ "$op" = first ] && echo "s3:$S3_ENDPOINT/ab-$3-$(date +%s%N)" > "$W/bucket-$3"
		repo=$(cat "$W/bucket-$3")
	fi
	case $op in
	first) rm -rf "$repo"; "$bin" -r "$repo" init --kdf-mem-mib 16 > /dev/null
	       /usr/bin/time -f "%e %U %S" -o "$W/t" "$bin" -q -r "$repo" snapshot --stdin dump.sql < "$W/dump.sql" ;;
	again) /usr/bin/time -f "%e %U %S" -o "$W/t" "$bin" -q -r "$repo" snapshot --stdin dump.sql < "$W/dump.sql" ;;
	restore) /usr/bin/time -f "%e %U %S" -o "$W/t" "$bin" -q -r "$repo" restore latest --stdout > /dev/null ;;
	file) rm -f "$W/out"; sync
	      /usr/bin/time -f "%e %U %S" -o "$W/t" "$bin" -q -r "$repo" restore latest --stdout > "$W/out"
	      cmp -s "$W/out" "$W/dump.sql" || { echo "FAILED: $bin restored other bytes" >&2; exit 1; }
	      rm -f "$W/out"; sync ;;
	esac
	awk '{printf "%s/%.2f\n", $1, $2 + $3}' "$W/t"
}
declare -A T
for r in $(seq 1 "$ROUNDS"); do
	for side in old new; do
		bin=$OLD
		[ $side = new ] && bin=$NEW
		for op in first again restore file; do
			T[$side-$op]+="$(run "$bin" $op $side) "
		done
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { tr ' ' '\n' | cut -d/ -f1; }
cpu() { tr ' ' '\n' | cut -s -d/ -f2; }
echo "dump: $MB MB ($bytes bytes), $ROUNDS rounds, interleaved; medians"
printf "%-10s %10s %10s %10s %8s %10s %10s %8s\n" operation old_s new_s new_MB/s new/old old_cpu_s new_cpu_s new/old
for op in first again restore file; do
	o=$(echo "${T[old-$op]}" | wall | median) n=$(echo "${T[new-$op]}" | wall | median)
	oc=$(echo "${T[old-$op]}" | cpu | median) nc=$(echo "${T[new-$op]}" | cpu | median)
	awk -v op=$op -v o="$o" -v n="$n" -v oc="$oc" -v nc="$nc" -v b="$bytes" \
		'BEGIN {printf "%-10s %10.2f %10.2f %10.0f %8.2f %10.2f %10.2f %8.2f\n", op, o, n, b/1e6/n, n/o, oc, nc, nc/oc}'
done
