#!/usr/bin/env bats
# kbvault key: several passwords for one repository (format/keyfile.md), on a local
# repository (tests/cli/s3.bats runs the same on object storage).
load helpers

setup() {
	setup_repo
	echo payload | kbv snapshot -q --stdin a
	printf 'second password\n' > "$TMPD/pw2"
	printf 'third password\n' > "$TMPD/pw3"
	chmod 600 "$TMPD/pw2" "$TMPD/pw3"
}

@test "key add: both passwords open the repository; list names who made each key and which one is in use" {
	run kbv key add --new-password-file "$TMPD/pw2"
	[ "$status" -eq 0 ]
	id=$(sed -n 's/^added key \([0-9a-f]\{32\}\)$/\1/p' <<< "$output")
	[ -n "$id" ]
	[ -f "$KBVAULT_REPO/keys/$id" ]
	[ "$(stat -c %a "$KBVAULT_REPO/keys/$id")" = 600 ]
	[ "$(kbv restore latest --stdout)" = payload ]
	[ "$(KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv restore latest --stdout)" = payload ]
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv key list --json | python3 -c '
import json, sys, os
k = {x["id"]: x for x in json.load(sys.stdin)}
assert set(k) == {"key", sys.argv[1]}, k
assert k[sys.argv[1]]["current"] and not k["key"]["current"], k
assert k[sys.argv[1]]["user"] and k[sys.argv[1]]["host"] == os.uname().nodename, k' "$id"
	run kbv key list
	[ "$status" -eq 0 ]
	[[ "$output" == *"* key"*"(used now)"* ]]
	# The password itself is in no output.
	[[ "$output" != *"second password"* ]]
}

@test "key passwd: the old password is refused afterwards, the new one opens it, the data is untouched" {
	before=$(find "$KBVAULT_REPO/data" "$KBVAULT_REPO/snapshots" -type f | sort | xargs b2sum)
	run kbv key passwd --new-password-file "$TMPD/pw2"
	[ "$status" -eq 0 ]
	[[ "$output" == *"replaces key key"* ]]
	[ ! -e "$KBVAULT_REPO/key" ]
	run kbv snapshots
	[ "$status" -eq 4 ]
	[[ "$output" == *"wrong password"* ]]
	export KBVAULT_PASSWORD_FILE=$TMPD/pw2
	[ "$(kbv restore latest --stdout)" = payload ]
	kbv key passwd -q --new-password-file "$TMPD/pw3"
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 run kbv snapshots
	[ "$status" -eq 4 ]
	[ "$(KBVAULT_PASSWORD_FILE=$TMPD/pw3 kbv restore latest --stdout)" = payload ]
	[ "$(find "$KBVAULT_REPO/data" "$KBVAULT_REPO/snapshots" -type f | sort | xargs b2sum)" = "$before" ]
	KBVAULT_PASSWORD_FILE=$TMPD/pw3 kbv check --read-data
}

@test "key remove: never the last key, the one in use only with --force, an unknown id is named" {
	run kbv key remove key
	[ "$status" -eq 2 ]
	[[ "$output" == *"last key"* ]]
	kbv key add -q --new-password-file "$TMPD/pw2"
	id=$(ls "$KBVAULT_REPO/keys")
	run kbv key remove key
	[ "$status" -eq 2 ]
	[[ "$output" == *"--force"* ]]
	run kbv key remove 0123456789abcdef0123456789abcdef
	[ "$status" -ne 0 ]
	[[ "$output" == *"no key '0123456789abcdef0123456789abcdef'"* ]]
	# Removed with the other password: the first one no longer opens it.
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv key remove -q key
	run kbv snapshots
	[ "$status" -eq 4 ]
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 run kbv key remove "$id" --force
	[ "$status" -eq 2 ]
	[[ "$output" == *"last key"* ]]
	[ "$(KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv restore latest --stdout)" = payload ]
}

@test "a damaged key file costs only that key: the others open the repository, list names it" {
	kbv key add -q --new-password-file "$TMPD/pw2"
	id=$(ls "$KBVAULT_REPO/keys")
	flip_byte "$KBVAULT_REPO/keys/$id" 100
	[ "$(kbv restore latest --stdout)" = payload ]
	run kbv key list
	[ "$status" -eq 0 ]
	[[ "$output" == *"$id"*"(damaged)"* ]]
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 run kbv snapshots
	[ "$status" -eq 4 ]
	# The damaged one may go, even though only one sound key is left.
	kbv key remove -q "$id"
	[ ! -e "$KBVAULT_REPO/keys/$id" ]
}

@test "key: usage errors and no new password are plain" {
	run kbv key
	[ "$status" -eq 2 ]
	run kbv key remove
	[ "$status" -eq 2 ]
	run kbv key list --force
	[ "$status" -eq 2 ]
	run kbv key add < /dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"new password"* ]]
}

@test "wal-push keeps the derived key sealed in the cache: later pushes skip Argon2id, a wrong or changed password still fails" {
	export XDG_CACHE_HOME="$TMPD/cache"
	printf 'one' > "$TMPD/000000010000000000000001"
	printf 'two' > "$TMPD/000000010000000000000002"
	kbv wal-push --source s "$TMPD/000000010000000000000001"
	local f
	f=$(ls "$XDG_CACHE_HOME"/kbvault/*/kdf-*)
	[ "$(stat -c %a "$f")" = 600 ]
	# the cached key is sealed: the password itself is not in it
	run grep -c "correct horse" "$f"
	[ "$output" = 0 ]
	kbv wal-push --source s "$TMPD/000000010000000000000002"
	printf 'wrong\n' > "$TMPD/bad"
	chmod 600 "$TMPD/bad"
	run env KBVAULT_PASSWORD_FILE="$TMPD/bad" "$KBVAULT" wal-push --source s "$TMPD/000000010000000000000002"
	[ "$status" -eq 4 ]
	# after key passwd the old password opens nothing, cache or not; the new one works
	printf 'new secret\n' > "$TMPD/pw2"
	chmod 600 "$TMPD/pw2"
	kbv key passwd -q --new-password-file "$TMPD/pw2"
	run kbv wal-fetch --source s 000000010000000000000001 "$TMPD/back"
	[ "$status" -eq 4 ]
	KBVAULT_PASSWORD_FILE="$TMPD/pw2" kbv wal-fetch --source s 000000010000000000000001 "$TMPD/back"
	[ "$(cat "$TMPD/back")" = one ]
	# a damaged entry costs only time
	printf 'garbage' > "$f"
	KBVAULT_PASSWORD_FILE="$TMPD/pw2" kbv wal-fetch --source s 000000010000000000000002 "$TMPD/back"
	[ "$(cat "$TMPD/back")" = two ]
}
