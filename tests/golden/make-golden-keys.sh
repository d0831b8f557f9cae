#!/bin/bash
# Regenerate the golden repository with two keys: `key` (key file version 1, made by init,
# password kbvault-golden) and keys/<keyid> (version 2, with metadata, made by `key add`,
# password kbvault-golden-2), holding one snapshot of one stream. Run ONLY when the key
# file format changes (format/keyfile.md); tests/cli/golden.bats must keep opening it with
# either password.
#   tests/golden/make-golden-keys.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
K=$PWD/build/kbvault
D=tests/golden/v2-keys
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rm -rf "$D"
mkdir -p "$D"
export KBVAULT_PASSWORD=kbvault-golden
"$K" -q -r "$D/repo-encrypted" init --kdf-ops 1 --kdf-mem-mib 8
seq 1 5000 > "$W/golden.txt"
"$K" -q -r "$D/repo-encrypted" snapshot --host golden --stdin golden.txt < "$W/golden.txt"
printf 'kbvault-golden-2\n' > "$W/pw2"
chmod 600 "$W/pw2"
"$K" -q -r "$D/repo-encrypted" key add --new-password-file "$W/pw2"
rm -rf "$D/repo-encrypted/tmp" "$D/repo-encrypted/index/lock.mdb"
b2sum < "$W/golden.txt" | cut -d' ' -f1 > "$D/expected.b2"
