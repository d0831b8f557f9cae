#!/usr/bin/env bats
# The configuration file: where it is found, what it sets, what overrides it.
load helpers

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	unset KBVAULT_REPO KBVAULT_PASSWORD KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
	printf 'from-config\n' > "$TMPD/pw"
	cat > "$TMPD/kbvault.conf" <<EOC
[repository]
path = $TMPD/repo-from-config
password-file = $TMPD/pw        ; never on the command line

[source kb]
type = postgres
dsn = host=127.0.0.1 dbname=kb
EOC
}

@test "-c sets repository and password; flags and environment override it" {
	kbv -c "$TMPD/kbvault.conf" init -q --kdf-ops 1 --kdf-mem-mib 8
	[ -f "$TMPD/repo-from-config/config" ]
	echo hi | kbv -c "$TMPD/kbvault.conf" snapshot -q --stdin a
	[ "$(kbv snapshots -c "$TMPD/kbvault.conf" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
	# -r wins over the file; KBVAULT_REPO too.
	KBVAULT_PASSWORD=other kbv -c "$TMPD/kbvault.conf" -r "$TMPD/other" init -q --kdf-ops 1 --kdf-mem-mib 8
	[ -f "$TMPD/other/config" ]
	KBVAULT_REPO="$TMPD/other" KBVAULT_PASSWORD=other kbv -c "$TMPD/kbvault.conf" snapshots -q
	# An environment password wins over the file's password-file: here it is wrong.
	KBVAULT_PASSWORD=wrong run kbv -c "$TMPD/kbvault.conf" snapshots
	[ "$status" -eq 4 ]
}

@test "found through KBVAULT_CONFIG and ./kbvault.conf" {
	KBVAULT_CONFIG="$TMPD/kbvault.conf" kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	echo hi | KBVAULT_CONFIG="$TMPD/kbvault.conf" kbv snapshot -q --stdin a
	cd "$TMPD"
	[ "$(kbv restore latest --stdout)" = hi ]
}

@test "a config error is one line naming file and line; exit 2" {
	printf '[repository]\npath = /x\ncolor = blue\n' > "$TMPD/bad.conf"
	run kbv -c "$TMPD/bad.conf" snapshots
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"bad.conf:3: unknown key 'color' in [repository]"* ]]
	printf '[repository]\npassword-file = %s/missing\n' "$TMPD" > "$TMPD/bad.conf"
	run kbv -c "$TMPD/bad.conf" snapshots
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad.conf:2: password file"*"not readable"* ]]
	run kbv -c "$TMPD/nonexistent.conf" snapshots
	[ "$status" -eq 2 ]
	[[ "$output" == *"does not exist"* ]]
}
