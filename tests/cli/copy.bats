#!/usr/bin/env bats
# kbvault copy between local repositories (tests/cli/s3.bats copies to object storage and
# back): what is copied restores byte for byte, a second run copies nothing, and a damaged
# source records nothing.
load helpers

setup() {
	setup_repo # the source, password "correct horse battery staple"
	SRC=$KBVAULT_REPO
	head -c 2000000 /dev/urandom > "$TMPD/r1"
	kbv snapshot -q --stdin r --tag night --host db1 < "$TMPD/r1"
	mkdir -p "$TMPD/tree/sub"
	echo hello > "$TMPD/tree/sub/x"
	ln -s x "$TMPD/tree/sub/link"
	kbv snapshot -q "$TMPD/tree"
	head -c 500000 /dev/urandom > "$TMPD/r2"
	cat "$TMPD/r1" "$TMPD/r2" | kbv snapshot -q --stdin r --tag night --host db1
	# The target: another password.
	printf 'target password\n' > "$TMPD/pw-target"
	chmod 600 "$TMPD/pw-target"
	export KBVAULT_REPO=$TMPD/target KBVAULT_PASSWORD_FILE=$TMPD/pw-target
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
}

@test "copy: every snapshot arrives with its time, host, tags and bytes; the second run copies nothing" {
	run kbv copy --from-repo "$SRC" --from-password-file "$TMPD/pw"
	[ "$status" -eq 0 ]
	[[ "$output" == *"3 snapshots copied, 0 already there"* ]]
	strip() { python3 -c 'import json,sys; print([(s["time"], s["host"], s["tags"], s["size"], [(x["name"], x.get("xxh3_128", x.get("blake2b_256"))) for x in s["streams"]]) for s in json.load(sys.stdin)])'; }
	[ "$(kbv snapshots --json | strip)" = "$(KBVAULT_REPO=$SRC KBVAULT_PASSWORD_FILE=$TMPD/pw kbv snapshots --json | strip)" ]
	kbv restore latest --host db1 --stdout | cmp - <(cat "$TMPD/r1" "$TMPD/r2")
	kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/r1"
	kbv restore "$(snap_id 2)" --target "$TMPD/out"
	[ "$(readlink "$TMPD/out/${TMPD#/}/tree/sub/link")" = x ]
	kbv check --read-data
	before=$(find "$KBVAULT_REPO/data" "$KBVAULT_REPO/snapshots" -type f | sort)
	run kbv copy --from-repo "$SRC" --from-password-file "$TMPD/pw"
	[ "$status" -eq 0 ]
	[[ "$output" == *"0 snapshots copied, 3 already there"* ]]
	[ "$(find "$KBVAULT_REPO/data" "$KBVAULT_REPO/snapshots" -type f | sort)" = "$before" ]
	# Deduplicated in the target: the third snapshot's first 2 MB were stored once.
	kbv stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["stored_bytes"] < 2600000, s'
}

@test "copy of the snapshots named; the source's password is checked; nothing copied from a damaged source" {
	KBVAULT_PASSWORD_FILE=$TMPD/pw-target run kbv copy --from-repo "$SRC" --from-password-file "$TMPD/pw-target"
	[ "$status" -eq 4 ]
	run kbv copy --from-repo "$SRC"
	[ "$status" -eq 4 ]
	[[ "$output" == *"--from-password-file"* ]]
	first=$(KBVAULT_REPO=$SRC KBVAULT_PASSWORD_FILE=$TMPD/pw snap_id 1)
	KBVAULT_FROM_PASSWORD_FILE=$TMPD/pw kbv copy -q --from-repo "$SRC" "${first:0:8}"
	[ "$(snap_count)" = 1 ]
	kbv restore latest --stdout | cmp - "$TMPD/r1"
	# Damage the source's newest data: its copy fails, and records nothing.
	for p in $(find "$SRC/data" -name '*.pack'); do
		size=$(stat -c %s "$p")
		flip_byte "$p" $((size / 3))
	done
	run kbv copy --from-repo "$SRC" --from-password-file "$TMPD/pw"
	[ "$status" -ne 0 ]
	[ "$(snap_count)" -lt 3 ]
	kbv check --read-data
	run kbv copy --from-repo "$KBVAULT_REPO" --from-password-file "$TMPD/pw-target"
	[ "$status" -eq 2 ]
}

@test "what copy brings over deduplicates against what is snapshotted here: copy cuts it with this repository's chunker" {
	# restic needs init --copy-chunker-params for this; kbvault's copy re-chunks every stream
	# through the target's own writer, so the target's Gear key cuts both alike.
	kbv copy -q --from-repo "$SRC" --from-password-file "$TMPD/pw" "$(KBVAULT_REPO=$SRC KBVAULT_PASSWORD_FILE=$TMPD/pw snap_id 1)"
	new=$(kbv snapshot --json --stdin again < "$TMPD/r1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["new_bytes"])')
	echo "new bytes of the same 2 MB snapshotted after the copy: $new"
	[ "$new" -lt 10000 ]
	kbv restore latest --stream again --stdout | cmp - "$TMPD/r1"
	# The target's keys are its own: the source's password does not open it.
	KBVAULT_PASSWORD_FILE=$TMPD/pw run kbv snapshots
	[ "$status" -eq 4 ]
	# restic's way to the same end is refused with the reason, and nothing is created
	run kbv -r "$TMPD/another" init --copy-chunker-params --from-repo "$SRC"
	[ "$status" -eq 2 ]
	[[ "$output" == *"init needs no source repository (restic's --copy-chunker-params): 'kbvault copy' cuts what it brings with this repository's own chunker"* ]]
	[ ! -e "$TMPD/another" ]
}

@test "copy-to: [repository] copy-to is filled after each snapshot; a failed copy says so, keeps the snapshot, and the next run catches up" {
	# The source keeps its password (taken for the copy-to too), the target has its own file.
	cat > "$TMPD/kbvault.conf" <<CONF
[repository]
path = $SRC
password-file = $TMPD/pw
copy-to = $TMPD/target
copy-to-password-file = $TMPD/pw-target
CONF
	unset KBVAULT_REPO KBVAULT_PASSWORD_FILE
	export KBVAULT_CONFIG=$TMPD/kbvault.conf
	head -c 300000 /dev/urandom > "$TMPD/r3"
	run kbv -v snapshot --stdin r3 < "$TMPD/r3"
	[ "$status" -eq 0 ]
	[[ "$output" == *"copy-to '$TMPD/target': 4 snapshots copied, 0 already there"* ]]
	KBVAULT_REPO=$TMPD/target KBVAULT_PASSWORD_FILE=$TMPD/pw-target kbv restore latest --stream r3 --stdout | cmp - "$TMPD/r3"
	# The copy-to repository out of reach: the snapshot is recorded, the exit code says what failed.
	mv "$TMPD/target" "$TMPD/target.away"
	head -c 300000 /dev/urandom > "$TMPD/r4"
	run kbv snapshot -q --stdin r4 < "$TMPD/r4"
	[ "$status" -ne 0 ]
	[[ "$output" == *"copy-to '$TMPD/target' failed; the snapshot is recorded in '$SRC'"* ]]
	kbv restore latest --stream r4 --stdout | cmp - "$TMPD/r4"
	# Back again: the next snapshot brings both over.
	mv "$TMPD/target.away" "$TMPD/target"
	run kbv -v snapshot --stdin r5 < "$TMPD/r3"
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots copied, 4 already there"* ]]
	KBVAULT_REPO=$TMPD/target KBVAULT_PASSWORD_FILE=$TMPD/pw-target kbv restore latest --stream r4 --stdout | cmp - "$TMPD/r4"
	[ "$(KBVAULT_REPO=$TMPD/target KBVAULT_PASSWORD_FILE=$TMPD/pw-target snap_count)" = 6 ]
}
