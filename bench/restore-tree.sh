#!/bin/bash
# Restore of a tree of many small files: 50 directories of 100 files. Times `restore
# --target` with KBVAULT (and, for a before/after figure in the same run, with OTHER, a
# second kbvault binary reading a repository of its own format), best of five runs.
#   KBVAULT=build/kbvault [OTHER=/path/to/old/kbvault] bench/restore-tree.sh
set -euo pipefail
K=${KBVAULT:?KBVAULT names the kbvault binary}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export KBVAULT_PASSWORD=bench
for d in $(seq 1 50); do
	mkdir -p "$W/tree/d$d/sub"
	for f in $(seq 1 100); do echo "file $d $f" > "$W/tree/d$d/sub/f$f"; done
done
best() { # BINARY REPO: best of five restores, seconds
	local b=$1 r=$2 t best=999
	for _ in 1 2 3 4 5; do
		rm -rf "$W/out"
		t=$( { /usr/bin/time -f %e "$b" -r "$r" restore latest --target "$W/out" -q; } 2>&1 | tail -1)
		best=$(python3 -c "print(min($best, $t))")
	done
	echo "$best"
}
for b in "$K" ${OTHER:+"$OTHER"}; do
	r="$W/repo-$(basename "$(dirname "$b")")-$RANDOM"
	"$b" init -q -r "$r" --kdf-ops 1 --kdf-mem-mib 8
	(cd "$W" && "$b" -r "$r" snapshot -q tree)
	echo "$b: restore of 5000 files in 50 directories: $(best "$b" "$r") s (best of 5)"
done
