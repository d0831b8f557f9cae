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
	printf 'correct horse battery staple\n' > "$TMPD/pw"
	chmod 600 "$TMPD/pw"
	export KBVAULT_PASSWORD_FILE="$TMPD/pw"
	unset KBVAULT_PASSWORD
	export XDG_CACHE_HOME="$TMPD/cache-a"
	export KBVAULT_REPO="shared:$TMPD/nfs/repo"
	head -c 3000000 /dev/urandom > "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/b.bin"
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
}

# on HOST CMD...: run kbvault as another host (its own cache)
on() { local h=$1; shift; XDG_CACHE_HOME="$TMPD/cache-$h" kbv "$@"; }

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

# As tests/cli/manyhosts.bats's soak, on the shared directory: three writer hosts and a gc
# host, kill -9 at random; after every round check --read-data passes and every kept
# snapshot restores byte for byte. 3 rounds here; KBV_SOAK=1 (make soak): 30.
@test "shared soak: three writers and a gc on four hosts, kill -9 at random; check passes and every kept snapshot restores, every round" {
	rounds=3
	[ -z "${KBV_SOAK:-}" ] || rounds=30
	export KBVAULT_GC_LOCK_STALE=2 # a killed gc's lock goes stale fast
	kills=0 refused=0 committed=0
	for r in $(seq 1 "$rounds"); do
		pids=()
		for h in 1 2 3; do
			{ "$GENDUMP" --mb 6 --day "$r" --seed 7; head -c 200000 /dev/urandom; } > "$TMPD/in-h$h-r$r"
			XDG_CACHE_HOME="$TMPD/cache-h$h" "$KBVAULT" snapshot -q --host "h$h" --tag "r$r" --stdin s \
				< "$TMPD/in-h$h-r$r" > "$TMPD/out-h$h-r$r" 2>&1 &
			pids+=($!)
		done
		XDG_CACHE_HOME="$TMPD/cache-g" "$KBVAULT" gc -q --keep-last 2 > "$TMPD/out-g-r$r" 2>&1 &
		pids+=($!)
		if [ $((RANDOM % 4)) -ne 0 ]; then
			sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
			victim=${pids[$((RANDOM % 4))]}
			if kill -9 "$victim" 2>/dev/null; then kills=$((kills + 1)); fi
		fi
		for i in 0 1 2 3; do
			st=0
			wait "${pids[$i]}" || st=$?
			# 0 done, 6 refused to commit beside gc (writers) or gc locked out, 137 killed
			if [ "$st" -ne 0 ] && [ "$st" -ne 6 ] && [ "$st" -ne 137 ]; then
				cat "$TMPD"/out-*-r"$r"
				echo "round $r: process $i exited $st"
				false
			fi
			[ "$i" -eq 3 ] || { [ "$st" -ne 6 ] || refused=$((refused + 1)); [ "$st" -ne 0 ] || committed=$((committed + 1)); }
		done
		run on g check --read-data
		[ "$status" -eq 0 ] || { echo "round $r: $output"; false; }
		on g snapshots --json > "$TMPD/list.json"
		python3 -c '
import json, sys
for s in json.load(open(sys.argv[1])):
    print(s["id"], s["host"], s["tags"][0])' "$TMPD/list.json" > "$TMPD/kept"
		while read -r id host tag; do
			on v restore "$id" --stdout | cmp - "$TMPD/in-$host-$tag" || { echo "round $r: snapshot $id ($host $tag) differs"; false; }
		done < "$TMPD/kept"
	done
	echo "# $rounds rounds, $kills kill -9, $committed snapshots committed, $refused refused beside gc, 0 lost" >&3
}
