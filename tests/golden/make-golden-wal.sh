#!/bin/bash
# Regenerate the golden repository of the WAL archive (format/wal.md, WAL object version 1).
# Run ONLY when that format changes; tests/cli/golden.bats must keep reading it. Encrypted
# (password kbvault-golden), so the object's sealing is what is pinned.
#   tests/golden/make-golden-wal.sh
# Three archived files of source 'kbp': a segment (1 MiB of seeded random hex text standing
# in for WAL of a 1 MiB segment size: the object does not look inside), a timeline history file and a backup history
# file.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=${KBVAULT:-$ROOT/build/kbvault}
D=tests/golden/v6-wal
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 -c 'import random, sys; random.seed(6); sys.stdout.write("".join(random.choice("0123456789abcdef\n") for _ in range(1 << 20)))' > "$W/000000010000000000000003"
printf '1\t0/3000000\tno recovery target specified\n' > "$W/00000002.history"
printf 'START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\nLABEL: golden\n' > "$W/000000010000000000000003.00000028.backup"
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-encrypted KBVAULT_PASSWORD=kbvault-golden
unset KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
"$K" init -q --kdf-ops 1 --kdf-mem-mib 8
for f in 000000010000000000000003 00000002.history 000000010000000000000003.00000028.backup; do
	"$K" wal-push --source kbp "$W/$f"
done
(cd "$W" && xxhsum -H2 000000010000000000000003 00000002.history 000000010000000000000003.00000028.backup) > "$D/expected.xxh128"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
ls "$KBVAULT_REPO/wal" | wc -l | grep -qx 3
echo "golden repository of the WAL archive in $D"
