#!/bin/bash
# Regenerate the golden repository of snapshot body version 4 (entry format 3: the digest
# algorithm of each stream), format/snapshot.md. Run ONLY when that format changes;
# tests/cli/golden.bats must keep reading it. Unencrypted.
#   tests/golden/make-golden-digest.sh
# Two snapshots: one written as new snapshots are (XXH3-128 digests), and one copied from
# the body version 3 golden repository, which keeps the BLAKE2b-256 digests it recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=${KBVAULT:-$ROOT/build/kbvault}
G=${GENDUMP:-$ROOT/build/bench/gendump}
D=tests/golden/v4-digest
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$G" --mb 1 --day 3 > "$W/kb.sql"
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-plain
unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
"$K" init -q --no-encryption
(cd "$W" && "$K" snapshot -q --host golden --tag digest --stdin kb.sql --command echo.txt -- echo golden < kb.sql)
"$K" copy -q --from-repo "$ROOT/tests/golden/v3-owners/repo-plain"
(cd "$W" && echo golden > echo.txt && xxhsum -H2 kb.sql echo.txt) > "$D/expected.xxh128"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
echo "golden repository of body version 4 (digest algorithms) in $D"
