#!/usr/bin/env bats
# kbvault status follows the Nagios/Icinga plugin conventions: one summary line first,
# exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
load helpers

setup() {
	setup_repo
	unset KBVAULT_CONFIG
	cd "$TMPD"
}

@test "a fresh snapshot is OK, with the summary line first" {
	echo data | kbv snapshot -q --stdin a.txt
	run kbv status --max-age 1h
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "KBVAULT OK - 1 source, oldest last snapshot "*"never drilled, never collected"*"| oldest_age="* ]]
	kbv status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["status"] == "OK" and s["code"] == 0 and s["sources"][0]["age_seconds"] < 3600, s'
	# gc leaves a record that status reports.
	kbv gc -q --keep-last 1
	[[ "$(kbv status | head -1)" == *"last gc "*" ago"* ]]
}

@test "a stale snapshot is WARNING, twice as stale is CRITICAL" {
	echo data | kbv snapshot -q --stdin a.txt
	sleep 3
	run kbv status --max-age 2s
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "KBVAULT WARNING - last snapshot of (ad-hoc streams) is "*"old (max 2s)"* ]]
	run kbv status --max-age 1s
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "KBVAULT CRITICAL - "* ]]
	# [monitor] max-age is the default.
	printf '[monitor]\nmax-age = 1s\n' > "$TMPD/kbvault.conf"
	run kbv -c "$TMPD/kbvault.conf" status
	[ "$status" -eq 2 ]
}

@test "no snapshot at all, or none of a configured source, is CRITICAL" {
	run kbv status
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "KBVAULT CRITICAL - no snapshots at all"* ]]
	echo data | kbv snapshot -q --stdin a.txt
	printf '[source kb]\ntype = command\ndump-command = echo x\nrestore-command = cat\n' > "$TMPD/kbvault.conf"
	run kbv -c "$TMPD/kbvault.conf" status
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "KBVAULT CRITICAL - no snapshot of kb"* ]]
	kbv -c "$TMPD/kbvault.conf" snapshot -q
	run kbv -c "$TMPD/kbvault.conf" status
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" == "kb: snapshot "* ]]
}

@test "an unreadable repository is UNKNOWN" {
	run kbv -r "$TMPD/nowhere" status
	[ "$status" -eq 3 ]
	[[ "${lines[*]}" == *"KBVAULT UNKNOWN - the repository cannot be opened"* ]]
	KBVAULT_PASSWORD=wrong run env -u KBVAULT_PASSWORD_FILE "$KBVAULT" status
	[ "$status" -eq 3 ]
	run kbv status --max-age soon
	[ "$status" -eq 3 ]
}
