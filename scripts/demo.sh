#!/bin/bash
# The README's first command ends here: a short demonstration on kbvault's built-in default
# repository location. XDG_DATA_HOME points into build/demo so the demo leaves nothing in
# your home directory; without it the default is ~/.local/share/kbvault/repo.
set -euo pipefail
K=${KBVAULT:?}
G=${GENDUMP:?}
D=$(pwd)/build/demo
rm -rf "$D"
mkdir -p "$D"
export XDG_DATA_HOME="$D"
unset KBVAULT_REPO KBVAULT_PASSWORD
export KBVAULT_PASSWORD_FILE="$D/password"
head -c 24 /dev/urandom | base64 > "$KBVAULT_PASSWORD_FILE"
chmod 600 "$KBVAULT_PASSWORD_FILE"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "kbvault init"
"$K" init
step "gendump --day 0 | kbvault snapshot --stdin kb.sql      # night 1: a 64 MB SQL dump"
"$G" --mb 64 --day 0 > "$D/kb-day0.sql"
"$K" snapshot --stdin kb.sql --tag nightly < "$D/kb-day0.sql"
step "gendump --day 1 | kbvault snapshot --stdin kb.sql      # night 2: 2% of rows edited"
"$G" --mb 64 --day 1 > "$D/kb-day1.sql"
"$K" snapshot --stdin kb.sql --tag nightly < "$D/kb-day1.sql"
step "kbvault snapshots"
"$K" snapshots
step "kbvault stats"
"$K" stats
first=$("$K" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["short_id"])')
step "kbvault restore $first --stdout > restored.sql && cmp restored.sql kb-day0.sql"
"$K" restore "$first" --stdout > "$D/restored.sql"
cmp "$D/restored.sql" "$D/kb-day0.sql" && echo "night 1 restored byte for byte"
step "kbvault check --read-data"
"$K" check --read-data
printf '\nnightly gzip would have stored: %s bytes; kbvault stores: %s bytes\n' \
	"$(cat "$D/kb-day0.sql" "$D/kb-day1.sql" | gzip -6 | wc -c)" "$(du -sb "$D/kbvault/repo/data" | cut -f1)"
