#!/usr/bin/env bats
# kill -9 at random moments of a snapshot, in a loop: afterwards the repository checks
# clean, every committed snapshot restores byte for byte, and the next snapshot works.
# KBV_CRASH_ITER sets the loop count (make soak runs 300).
load helpers

setup() { setup_repo; }

@test "kill -9 during snapshots never loses a committed snapshot" {
	iters=${KBV_CRASH_ITER:-30}
	on_s3 && iters=${KBV_CRASH_ITER:-8} # s3.bats kills snapshots, gc and copies too
	[ -n "${KBV_SOAK:-}" ] && iters=${KBV_CRASH_ITER:-300}
	"$GENDUMP" --mb 24 --day 0 > "$TMPD/base.sql"
	kbv snapshot -q --stdin db.sql < "$TMPD/base.sql"
	declare -A want
	want[$(snap_id 1)]=$(b2sum < "$TMPD/base.sql" | cut -d' ' -f1)
	killed=0
	for i in $(seq 1 "$iters"); do
		"$GENDUMP" --mb 24 --day "$i" > "$TMPD/day.sql"
		before=$(repo_ls snapshots)
		# The binary itself in the background (a shell function would put a subshell
		# between $! and kbvault, and the kill would miss it).
		"$KBVAULT" snapshot -q --stdin db.sql < "$TMPD/day.sql" &
		pid=$!
		sleep "0.$(printf '%03d' $((RANDOM % 150)))"
		kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
		wait "$pid" || true
		after=$(repo_ls snapshots)
		new=$(comm -13 <(echo "$before") <(echo "$after"))
		if [ -n "$new" ]; then
			want[$new]=$(b2sum < "$TMPD/day.sql" | cut -d' ' -f1)
		fi
		run kbv check
		[ "$status" -eq 0 ] || { echo "iteration $i: $output"; false; }
	done
	echo "# killed $killed of $iters snapshots mid-way" >&3
	[ "$killed" -gt 0 ]
	kbv check --read-data
	for id in "${!want[@]}"; do
		got=$(kbv restore "$id" --stdout | b2sum | cut -d' ' -f1)
		[ "$got" = "${want[$id]}" ] || { echo "snapshot $id differs"; false; }
	done
	kbv snapshot -q --stdin db.sql < "$TMPD/base.sql"
	kbv restore latest --stdout | cmp - "$TMPD/base.sql"
}
