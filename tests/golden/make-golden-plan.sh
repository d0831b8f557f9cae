#!/bin/bash
# Regenerate the golden repository that holds a deletion plan of gc (format/repository.md,
# "Many writers and gc", plan version 1). Run ONLY when that format changes;
# tests/cli/golden.bats must keep reading it. Unencrypted.
#   tests/golden/make-golden-plan.sh
# Two snapshots of one stream; gc --keep-last 1 --keep-delete 36500d condemned the first
# one's pack in a plan that will not be ripe for a hundred years.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=${KBVAULT:-$ROOT/build/kbvault}
G=${GENDUMP:-$ROOT/build/bench/gendump}
D=tests/golden/v5-plan
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$G" --mb 1 --day 1 > "$W/old.sql"
head -c 300000 /dev/urandom > "$W/kb.sql"
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-plain
unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
"$K" init -q --no-encryption
(cd "$W" && "$K" snapshot -q --host golden --tag plan --stdin kb.sql < old.sql)
(cd "$W" && "$K" snapshot -q --host golden --tag plan --stdin kb.sql < kb.sql)
"$K" gc -q --keep-last 1 --keep-delete 36500d
(cd "$W" && xxhsum -H2 kb.sql) > "$D/expected.xxh128"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
ls "$KBVAULT_REPO/plans" | wc -l | grep -qx 1
echo "golden repository with a deletion plan in $D"
