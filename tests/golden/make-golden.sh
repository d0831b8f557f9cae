#!/bin/bash
# Regenerate the golden repositories. Run ONLY when the format version changes: the
# repositories of each released version are kept and must keep restoring
# (tests/cli/golden.bats). Usage: tests/golden/make-golden.sh VERSION
set -euo pipefail
V=${1:?format version}
cd "$(dirname "$0")/../.."
K=$PWD/build/kbvault
G=$PWD/build/bench/gendump
D=tests/golden/v$V
rm -rf "$D"
mkdir -p "$D"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/tree/sub"
printf 'hello golden\n' > "$W/tree/a.txt"
printf 'x%.0s' {1..5000} > "$W/tree/sub/x.txt"
ln -s a.txt "$W/tree/link"
chmod 640 "$W/tree/sub/x.txt"
touch -h -d '2026-01-02 03:04:05' "$W/tree/a.txt" "$W/tree/sub/x.txt" "$W/tree/sub" "$W/tree/link" "$W/tree"
"$G" --mb 1 --day 0 > "$W/kb0.sql"
"$G" --mb 1 --day 1 > "$W/kb1.sql"
for kind in encrypted plain; do
	export KBVAULT_REPO=$PWD/$D/repo-$kind
	if [ $kind = encrypted ]; then
		export KBVAULT_PASSWORD=kbvault-golden
		"$K" init -q --kdf-ops 1 --kdf-mem-mib 8
	else
		unset KBVAULT_PASSWORD
		"$K" init -q --no-encryption
	fi
	(cd "$W" && "$K" snapshot -q --host golden --tag v$V --stdin kb.sql --command echo.txt tree -- echo golden < kb0.sql)
	"$K" snapshot -q --host golden --stdin kb.sql < "$W/kb1.sql"
	rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
done
(cd "$W" && b2sum kb0.sql kb1.sql tree/a.txt tree/sub/x.txt) > "$D/expected.b2"
echo "golden repositories of format v$V in $D"
