#!/bin/bash
# Regenerate the golden repository of config version 3 with BLAKE3 blob ids
# (format/repository.md "config", format/blob.md "Ids"). Run ONLY when that format changes;
# tests/cli/golden.bats and tests/unit/test_repo.c must keep reading it. Unencrypted, so a
# reader recomputes every id from the bytes: the ids themselves are what is pinned.
#   tests/golden/make-golden-blake3.sh
# One snapshot: a 1 MB dump on standard input and a small directory tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=${KBVAULT:-$ROOT/build/kbvault}
G=${GENDUMP:-$ROOT/build/bench/gendump}
D=tests/golden/v7-blake3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$G" --mb 1 --day 7 > "$W/kb.sql"
mkdir -p "$W/tree/sub"
printf 'golden blake3\n' > "$W/tree/a.txt"
head -c 30000 "$W/kb.sql" > "$W/tree/sub/x.sql"
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-plain
unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
"$K" init -q --no-encryption --id-hash blake3
(cd "$W" && "$K" snapshot -q --host golden --tag blake3 --stdin kb.sql tree < kb.sql)
(cd "$W" && xxhsum -H2 kb.sql tree/a.txt tree/sub/x.sql) > "$D/expected.xxh128"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
[ "$(od -An -tu4 -j8 -N4 "$KBVAULT_REPO/config" | tr -d ' ')" = 3 ]
echo "golden repository of config version 3 (BLAKE3 ids) in $D"
