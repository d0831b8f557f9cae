#!/usr/bin/env bats
# Bad input gets a clear error naming what and where, a documented exit code, and never a
# silently wrong byte.
load helpers

setup() {
	setup_repo
	"$GENDUMP" --mb 4 > "$TMPD/kb.sql"
}

@test "wrong password: exit 4, says so" {
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	echo nope > "$TMPD/bad"
	run kbv --password-file "$TMPD/bad" snapshots
	[ "$status" -eq 4 ]
	[[ "$output" == *"wrong password"* ]]
	KBVAULT_PASSWORD_FILE= KBVAULT_PASSWORD=nope run kbv snapshots
	[ "$status" -eq 4 ]
}

@test "no password anywhere and no terminal: exit 4 naming the ways to give one" {
	unset KBVAULT_PASSWORD_FILE
	run setsid -w "$KBVAULT" snapshots < /dev/null
	[ "$status" -eq 4 ]
	[[ "$output" == *"KBVAULT_PASSWORD_FILE"* ]]
}

@test "missing repository and non-repository: exit 3" {
	run kbv -r "$TMPD/nowhere" snapshots
	[ "$status" -eq 3 ]
	[[ "$output" == *"does not exist"* ]]
	mkdir "$TMPD/plain-dir"
	run kbv -r "$TMPD/plain-dir" snapshots
	[ "$status" -eq 3 ]
	[[ "$output" == *"not a kbvault repository"* ]]
}

# (version 2 is the config of a repository with Object Lock, version 3 one that records its
# id hash: format/repository.md)
version_9() { printf '\x09' | dd of="$1" bs=1 seek=8 conv=notrunc 2>/dev/null; }

@test "unknown format version: exit 3, naming the versions" {
	obj_edit "$(repo_obj "" config)" version_9
	run kbv snapshots
	[ "$status" -eq 3 ]
	[[ "$output" == *"format version 9"* && "$output" == *"versions 1 to 3"* ]]
}

@test "damaged config or key file: exit 5, naming the file" {
	flip_byte "$(repo_obj "" config)" 40
	run kbv snapshots
	[ "$status" -eq 5 ]
	[[ "$output" == *"config"* && "$output" == *"damaged"* ]]
}

@test "a flipped byte in a pack: check --read-data names pack and blob; restore refuses" {
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	pack=$(a_pack)
	flip_byte "$pack" 5000
	run kbv check --read-data
	[ "$status" -eq 5 ]
	name=$(basename "$pack" .pack)
	[[ "$output" == *"$name"* && "$output" == *"blob"* && "$output" == *"checksum mismatch"* ]]
	run kbv restore latest --target "$TMPD/out"
	[ "$status" -eq 5 ]
	[[ "$output" == *"$name"* ]]
	# Nothing half-written is left under the final name.
	[ ! -e "$TMPD/out/kb.sql" ]
	[ ! -e "$TMPD/out/kb.sql.kbvault-partial" ]
	run kbv restore latest --stdout
	[ "$status" -eq 5 ]
	# Into a file (written by the workers at known offsets): the file holds a prefix of the
	# stream, nothing past the damage.
	status=0
	kbv restore latest --stdout > "$TMPD/part" 2> "$TMPD/err" || status=$?
	[ "$status" -eq 5 ]
	size=$(stat -c %s "$TMPD/part")
	[ "$size" -lt "$(stat -c %s "$TMPD/kb.sql")" ]
	cmp -n "$size" "$TMPD/part" "$TMPD/kb.sql"
	# The blocks reserved for the whole stream before it was written (where the file system
	# reserves them) are given back past that prefix.
	[ "$(stat -c %b "$TMPD/part")" -le $(((size + 4095) / 4096 * 8 + 8)) ] || { stat "$TMPD/part"; false; }
}

@test "a flipped byte under a small file (read without the workers): restore refuses, naming the pack, and writes nothing of it" {
	head -c 200000 "$TMPD/kb.sql" > "$TMPD/small.sql"
	kbv snapshot -q --stdin small.sql < "$TMPD/small.sql"
	kbv restore latest --stdout | cmp - "$TMPD/small.sql"
	pack=$(a_pack)
	flip_byte "$pack" 5000
	run kbv restore latest --target "$TMPD/out"
	[ "$status" -eq 5 ]
	[[ "$output" == *"$(basename "$pack" .pack)"* && "$output" == *"small.sql"* ]]
	[ -z "$(ls -A "$TMPD/out")" ] # neither the file nor its partial beside it
	# Into a file and through a pipe: a small stream is written only once proven whole.
	status=0
	kbv restore latest --stdout > "$TMPD/part" 2> "$TMPD/err" || status=$?
	[ "$status" -eq 5 ]
	[ ! -s "$TMPD/part" ]
	[ "$(kbv restore latest --stdout 2> /dev/null | wc -c)" -eq 0 ]
}

@test "a pack truncated or deleted: check and restore fail with exit 5" {
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	pack=$(a_pack)
	# Losing only the footer: check reports it; restore still reads every (verified) blob.
	obj_truncate "$pack" -100
	run kbv check
	[ "$status" -eq 5 ]
	[[ "$output" == *"$(basename "$pack" .pack)"* && "$output" == *"truncated"* ]]
	kbv restore latest --stdout | cmp - "$TMPD/kb.sql"
	# Losing data: restore fails, naming the pack.
	obj_truncate "$pack" $(($(obj_size "$pack") / 2))
	run kbv restore latest --stdout
	[ "$status" -eq 5 ]
	[[ "$output" == *"$(basename "$pack" .pack)"* && "$output" == *"truncated"* ]]
	obj_rm "$pack"
	run kbv check
	[ "$status" -eq 5 ]
	[[ "$output" == *"missing"* ]]
	run kbv restore latest --stdout
	[ "$status" -eq 5 ]
}

@test "a tampered or renamed snapshot file is refused" {
	echo data | kbv snapshot -q --stdin a
	f=$(repo_obj snapshots "$(repo_ls snapshots | head -1)")
	obj_rename "$f" "$(repo_obj snapshots "$(printf 'ab%.0s' {1..32})")"
	run kbv snapshots
	[ "$status" -eq 5 ]
	[[ "$output" == *"authentication failed"* ]]
	run kbv check
	[ "$status" -eq 5 ]
}

@test "a dump command that fails records no snapshot: exit 7, says why" {
	echo first | kbv snapshot -q --stdin ok
	run kbv snapshot --command kb.sql -- sh -c 'head -c 3000000 /dev/urandom; exit 3'
	[ "$status" -eq 7 ]
	[[ "$output" == *"exited with status 3"* && "$output" == *"kb.sql"* ]]
	run kbv snapshot --command kb.sql -- sh -c 'head -c 1000 /dev/zero; kill -9 $$'
	[ "$status" -eq 7 ]
	[[ "$output" == *"killed by signal 9"* ]]
	run kbv snapshot --command kb.sql -- /no/such/dumper
	[ "$status" -eq 7 ]
	# One failing source fails the whole snapshot, even next to a good one.
	run kbv snapshot --stdin good --command bad -- false < "$TMPD/kb.sql"
	[ "$status" -eq 7 ]
	[ "$(snap_count)" = 1 ]
	kbv check
}

@test "restore names a missing stream; --stdout with several streams asks to choose" {
	echo a > "$TMPD/f1"
	echo b > "$TMPD/f2"
	kbv snapshot -q "$TMPD/f1" "$TMPD/f2"
	run kbv restore latest --stdout
	[ "$status" -eq 2 ]
	[[ "$output" == *"--stream"* ]]
	run kbv restore latest --stdout --stream nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"no stream 'nope'"* ]]
	run kbv restore deadbeef --stdout
	[ "$status" -eq 1 ]
	[[ "$output" == *"no snapshot"* ]]
}

# Faults at each step of the write order leave exactly the state a crash there would:
# the repository checks clean (garbage at most) and the earlier snapshot restores.
@test "injected faults at pack fsync, index commit and manifest write lose nothing" {
	kbv snapshot -q --stdin kb.sql < "$TMPD/kb.sql"
	"$GENDUMP" --mb 40 --day 2 > "$TMPD/big.sql"
	for fault in pack-write:2 pack-fsync:1 index-commit:1 snapshot-write:1; do
		KBVAULT_FAULT=$fault run kbv snapshot -q --stdin big.sql < "$TMPD/big.sql"
		[ "$status" -eq 1 ]
		[[ "$output" == *"injected fault"* ]]
		[ "$(snap_count)" = 1 ]
		kbv check --read-data
	done
	kbv restore latest --stdout | cmp - "$TMPD/kb.sql"
	kbv snapshot -q --stdin big.sql < "$TMPD/big.sql"
	kbv restore latest --stdout | cmp - "$TMPD/big.sql"
	kbv check --read-data
}

@test "a crafted manifest cannot make restore write through its own symlink" {
	mkdir "$TMPD/outside"
	# "x -> outside" followed by "x/evil": a real directory walk never produces this.
	KBVAULT_PASSWORD=$(cat "$TMPD/pw") "$MKSNAP" "$KBVAULT_REPO" "link:x=$TMPD/outside" "file:x/evil=gotcha" "file:ok.txt=fine"
	run kbv restore latest --target "$TMPD/out"
	[ ! -e "$TMPD/outside/evil" ]
	[ "$(cat "$TMPD/out/ok.txt")" = fine ]
}

@test "restore refuses a manifest naming a path outside the target" {
	# The library refuses to write such a name (and refuses to read one: test_format).
	KBVAULT_PASSWORD=$(cat "$TMPD/pw") run "$MKSNAP" "$KBVAULT_REPO" "file:../escape=bad"
	[ "$status" -eq 1 ]
	[[ "$output" == *"not a valid entry name"* ]]
	[ "$(snap_count)" = 0 ]
}

@test "a truncated manifest or key file is named, exit 5" {
	echo data | kbv snapshot -q --stdin a
	f=$(repo_obj snapshots "$(repo_ls snapshots | head -1)")
	obj_truncate "$f" -7
	run kbv snapshots
	[ "$status" -eq 5 ]
	[[ "$output" == *"$(basename "$f")"* ]]
	run kbv check
	[ "$status" -eq 5 ]
	obj_truncate "$(repo_obj "" key)" 50
	run kbv stats
	[ "$status" -eq 5 ]
	[[ "$output" == *"key file"* && "$output" == *"damaged"* ]]
}
