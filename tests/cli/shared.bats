#!/usr/bin/env bats
# Many hosts, one repository on a shared file system (shared:/path; format/repository.md
# "A directory shared by several hosts"): the objects are files as in a local repository,
# but each host keeps its index and metadata cache in its own cache directory (LMDB must
# not live on a network file system) and the hosts meet through index objects, deletion
# plans and the gc lock file, as on object storage. A "host" is a cache directory of its
# own (XDG_CACHE_HOME) and a --host name; the directory stands for an NFS mount.
load helpers

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	use_password_file
	export XDG_CACHE_HOME="$TMPD/cache-a"
	export KBVAULT_REPO="shared:$TMPD/nfs/repo"
	head -c 3000000 /dev/urandom > "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/b.bin"
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
}


pack_bytes() { find "$TMPD/nfs/repo/data" -name '*.pack' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

@test "shared: init lays out the directory without a host's index or lock; a relative path is refused" {
	[ -f "$TMPD/nfs/repo/config" ] && [ -f "$TMPD/nfs/repo/key" ] && [ -d "$TMPD/nfs/repo/data" ]
	[ ! -e "$TMPD/nfs/repo/index" ] && [ ! -e "$TMPD/nfs/repo/lock" ]
	run kbv -r shared:relative/repo init --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -ne 0 ]
	[[ "$output" == *"absolute path"* ]]
	run kbv init --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -ne 0 ]
	[[ "$output" == *"not empty"* ]]
}

@test "shared: two hosts snapshot at once; each deduplicates against the other's packs and restores the other's snapshots" {
	on a snapshot -q --host a --stdin s < "$TMPD/a.bin" &
	pa=$!
	on b snapshot -q --host b --stdin s < "$TMPD/b.bin" &
	pb=$!
	wait "$pa"
	wait "$pb"
	# each host's cache is its own; the other's packs come from the index objects
	[ -d "$TMPD/cache-a/kbvault" ] && [ -d "$TMPD/cache-b/kbvault" ]
	[ "$(ls "$TMPD/nfs/repo/idx" | wc -l)" -ge 2 ]
	run on b -v restore latest --host a --stdout
	[ "$status" -eq 0 ]
	on b restore latest --host a --stdout | cmp - "$TMPD/a.bin"
	on a restore latest --host b --stdout | cmp - "$TMPD/b.bin"
	# host b stores host a's bytes again: its packs grow by a manifest's worth, not 3 MB
	before=$(pack_bytes)
	on b snapshot -q --host b --stdin s2 < "$TMPD/a.bin"
	[ $(($(pack_bytes) - before)) -lt 100000 ]
	run on c check --read-data
	[ "$status" -eq 0 ]
}

@test "shared: gc from one host condemns, deletes on the file system's clock, and the others' caches follow" {
	on a snapshot -q --host a --stdin s < "$TMPD/a.bin"
	on a snapshot -q --host a --stdin s < "$TMPD/b.bin"
	on b restore latest --stdout | cmp - "$TMPD/b.bin" # b's cache knows both packs
	packs=$(find "$TMPD/nfs/repo/data" -name '*.pack' | wc -l)
	run on c gc --keep-last 1
	[ "$status" -eq 0 ]
	[ "$(find "$TMPD/nfs/repo/data" -name '*.pack' | wc -l)" -lt "$packs" ]
	[ ! -e "$TMPD/nfs/repo/locks/gc" ] # the gc lock file is gone with the gc
	on b restore latest --stdout | cmp - "$TMPD/b.bin"
	run on b check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 snapshots: ok, 0 problems"* ]]
}

@test "shared: a host whose clock is hours fast does not take a plan for ripe early: ages are the file system's" {
	command -v faketime > /dev/null || { echo "faketime is missing: scripts/deps.sh installs it"; false; }
	on a snapshot -q --host a --stdin s < "$TMPD/a.bin"
	on a snapshot -q --host a --stdin s < "$TMPD/b.bin"
	packs=$(find "$TMPD/nfs/repo/data" -name '*.pack' | wc -l)
	run on a gc --keep-last 1 --keep-delete 1h
	[ "$status" -eq 0 ]
	[[ "$output" == *"condemned 1 packs"* ]]
	# By its own clock the plan is 5 hours old, past its hour; by the file system's (the
	# mtime the server gives a file it creates) it is seconds old: nothing goes.
	# (NO_FAKE_STAT: libfaketime would otherwise shift the file times this host reads,
	# which on a network file system come from the server's clock, not this host's.)
	XDG_CACHE_HOME="$TMPD/cache-f" NO_FAKE_STAT=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		run faketime -f '+5h' "$KBVAULT" gc --keep-all --keep-delete 1h
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 packs wait in earlier deletion plans"* ]]
	[ "$(find "$TMPD/nfs/repo/data" -name '*.pack' | wc -l)" = "$packs" ]
	on b restore latest --stdout | cmp - "$TMPD/b.bin"
}

# The soak of tests/cli/manyhosts.bats (soak_hosts, helpers.bash) on the shared directory:
# three writer hosts and a gc host, kill -9 at random; check and every kept snapshot's
# restore after every round. 3 rounds here; KBV_SOAK=1 (make soak): 30.
@test "shared soak: three writers and a gc on four hosts, kill -9 at random; check passes and every kept snapshot restores, every round" {
	soak_hosts
}
