#!/bin/bash
# Regenerate the golden repository of snapshot body version 3 (entry format 2: owners),
# format/snapshot.md. Run ONLY when that format changes; tests/cli/golden.bats must keep
# reading it. As root (the files belong to nobody and to root). Unencrypted.
#   sudo tests/golden/make-golden-owners.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
K=${KBVAULT:-$ROOT/build/kbvault}
D=tests/golden/v3-owners
[ "$(id -u)" = 0 ] || { echo "run as root: the fixture holds files of other users" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/files/home"
echo "root's" > "$W/files/root.txt"
seq 1 3000 > "$W/files/home/nobody.txt"
cp /bin/true "$W/files/home/tool"
chown -R nobody:nogroup "$W/files/home"
chmod 4755 "$W/files/home/tool"
ln -s nobody.txt "$W/files/home/link"
chown -h nobody:nogroup "$W/files/home/link"
touch -h -d '2026-01-02 03:04:05' "$W/files/root.txt" "$W/files/home/nobody.txt" "$W/files/home/tool" "$W/files/home/link" "$W/files/home" "$W/files"
cat > "$W/kbvault.conf" <<CONF
[source files]
type = path
paths = $W/files
CONF
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_REPO=$ROOT/$D/repo-plain KBVAULT_CONFIG=$W/kbvault.conf
unset KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE
"$K" init -q --no-encryption
"$K" snapshot -q --host golden --tag owners
(cd "$W/files" && b2sum root.txt home/nobody.txt home/tool) > "$D/expected.b2"
echo "${W#/}" > "$D/path-prefix"
rm -rf "$KBVAULT_REPO/tmp" "$KBVAULT_REPO/index/lock.mdb"
echo "golden repository of body version 3 (owners) in $D"
