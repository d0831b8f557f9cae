#!/usr/bin/env bats
# Many hosts, one repository on object storage (format/repository.md, "Many writers and
# gc"): gc condemns packs in deletion plans and deletes them only once the plan's delay
# has passed on the server's clock; a writer that started before a plan and is stalled
# past half its delay refuses to commit. Against a real Ceph radosgw (ceph.bash). A
# "host" is a cache directory of its own (XDG_CACHE_HOME) and a --host name.
load helpers
load ceph
load s3obj

setup_file() { ceph_start; }
teardown_file() { ceph_stop; }

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	use_password_file
	export XDG_CACHE_HOME="$TMPD/cache-a"
	BUCKET="kbv-m$BATS_TEST_NUMBER-$RANDOM"
	export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/prod"
	head -c 3000000 /dev/urandom > "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/b.bin"
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
}

teardown() {
	[ -z "${WRITER:-}" ] || { kill -CONT "$WRITER" 2>/dev/null; kill "$WRITER" 2>/dev/null; } || true
}


packs() { s3_keys prod/data/ | wc -l; }
plans() { s3_keys prod/plans/ | wc -l; }

# Start host B snapshotting a.bin's bytes from a FIFO (it dedups against host A's pack),
# feed it everything but the end, and stop it with SIGSTOP: a writer stalled mid-way.
stalled_writer() {
	mkfifo "$TMPD/fifo"
	XDG_CACHE_HOME="$TMPD/cache-b" "$KBVAULT" snapshot -q --host b --stdin b < "$TMPD/fifo" > "$TMPD/writer.out" 2>&1 &
	WRITER=$!
	exec 4> "$TMPD/fifo"
	cat "$TMPD/a.bin" >&4
	sleep 1 # it has read what is there and looked up its chunks
	kill -STOP "$WRITER"
}

resume_writer() {
	kill -CONT "$WRITER"
	exec 4>&-
	WRITER_STATUS=0
	wait "$WRITER" || WRITER_STATUS=$?
	WRITER=
}

@test "gc --keep-delete condemns packs in a plan; a later gc deletes them once the delay has passed on the server's clock" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin a < "$TMPD/b.bin"
	[ "$(packs)" = 2 ]
	run kbv gc --keep-last 1 --keep-delete 8s
	[ "$status" -eq 0 ]
	[[ "$output" == *"condemned 1 packs"* ]]
	[ "$(plans)" = 1 ]
	[ "$(packs)" = 2 ] # nothing deleted yet
	# status says what gc has condemned and when it may go
	run kbv status --json --max-age 1h
	echo "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)["deletion_plans"]
assert d["plans"] == 1 and d["packs"] == 1 and d["ripe_packs"] == 0 and 0 < d["next_ripe_in_seconds"] <= 8, d'
	kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	run kbv check
	[ "$status" -eq 0 ]
	# Not ripe yet: the pack waits; nothing is deleted and nothing planned twice.
	run kbv gc --keep-all --keep-delete 8s
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 packs wait in earlier deletion plans"* ]]
	[ "$(packs)" = 2 ]
	[ "$(plans)" = 1 ]
	sleep 9
	# Ripe: deleted. Another host runs this gc: any host may. The plan stays for a week
	# (writers that started before it must still see it when they commit).
	run on c gc --keep-all --keep-delete 8s --json
	[ "$status" -eq 0 ]
	echo "$output" | python3 -c '
import json, sys
g = json.load(sys.stdin)["gc"]
assert g["packs_deleted"] == 1 and g["plans_removed"] == 0 and g["packs_planned"] == 0, g'
	[ "$(packs)" = 1 ]
	[ "$(plans)" = 1 ]
	kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	# A plan is read from the bucket once per host, then from its metadata cache (an
	# object of the same size is not fetched again: a damaged copy in the bucket of that
	# size is what only a host without the entry sees); the entry goes with the plan.
	on d snapshot -q --host d --stdin d < "$TMPD/b.bin"
	[ "$(ls "$TMPD"/cache-d/kbvault/*/meta/plans | wc -l)" = 1 ]
	plan=$(s3_keys prod/plans/)
	s3_get "$plan" "$TMPD/plan"
	head -c "$(stat -c %s "$TMPD/plan")" /dev/zero > "$TMPD/junk"
	s3_put "$plan" "$TMPD/junk"
	damaged() { python3 -c 'import json,sys; print(json.load(sys.stdin)["deletion_plans"]["damaged"])'; }
	[ "$(on d status --json --max-age 1h | damaged)" = 0 ]
	[ "$(on e status --json --max-age 1h | damaged)" = 1 ]
	s3_del "$plan"
	on d snapshot -q --host d --stdin d < "$TMPD/b.bin"
	[ "$(ls "$TMPD"/cache-d/kbvault/*/meta/plans | wc -l)" = 0 ]
}

@test "a writer stalled past half the delay refuses to commit; gc then deletes the pack and nothing is lost" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	pack=$(s3_keys prod/data/)
	stalled_writer
	# Host A forgets its snapshot and condemns the pack the stalled writer leans on.
	kbv forget "$(snap_id 1)"
	run kbv gc --keep-all --keep-delete 4s
	[ "$status" -eq 0 ]
	[[ "$output" == *"condemned 1 packs"* ]]
	sleep 3 # past half the delay on the server's clock
	resume_writer
	cat "$TMPD/writer.out"
	[ "$WRITER_STATUS" -eq 6 ]
	grep -q "gc condemned packs while this snapshot ran" "$TMPD/writer.out"
	[ "$(snap_count)" = 0 ]
	sleep 2
	run kbv gc --keep-all --keep-delete 4s
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/data/ | grep -x "$pack")" ] # deleted, now that it is ripe
	run kbv check --read-data
	[ "$status" -eq 0 ]
	# Host B tries again: it stores its data anew, and it restores.
	on b snapshot -q --host b --stdin b < "$TMPD/a.bin"
	on b restore latest --stdout | cmp - "$TMPD/a.bin"
}

@test "a writer that commits within half the delay keeps the condemned pack alive; one started after the plan stores its data anew, and then the pack goes" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	pack=$(s3_keys prod/data/)
	stalled_writer
	kbv forget "$(snap_id 1)"
	run kbv gc --keep-all --keep-delete 10s
	[ "$status" -eq 0 ]
	[[ "$output" == *"condemned 1 packs"* ]]
	resume_writer
	[ "$WRITER_STATUS" -eq 0 ]
	sleep 11
	# Ripe, but host B's snapshot, committed in time, needs it: kept.
	run kbv gc --keep-all --keep-delete 10s
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 condemned packs were kept: snapshots committed since need them"* ]]
	s3_keys prod/data/ | grep -qx "$pack"
	on a restore latest --host b --stdout | cmp - "$TMPD/a.bin"
	# Host C starts while the plan names the pack: it stores the same bytes again rather
	# than lean on it; its copies take over, and the next gc deletes the condemned pack.
	before=$(s3_bytes prod/data/)
	on c snapshot -q --host c --stdin c < "$TMPD/a.bin"
	[ "$(($(s3_bytes prod/data/) - before))" -gt 2900000 ]
	run kbv gc --keep-all --keep-delete 10s
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/data/ | grep -x "$pack")" ]
	[ "$(snap_count)" = 2 ]
	on a restore latest --host b --stdout | cmp - "$TMPD/a.bin"
	on d restore latest --host c --stdout | cmp - "$TMPD/a.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	# status shows each host's newest snapshot
	run kbv status --max-age 1h --json
	echo "$output" | python3 -c '
import json, sys
h = json.load(sys.stdin)["hosts"]
assert sorted(x["host"] for x in h) == ["b", "c"] and all(x["age_seconds"] < 600 for x in h), h'
	run kbv status --max-age 1h
	[[ "$output" == *"hosts: "*"b last snapshot"*"c last snapshot"* ]] || [[ "$output" == *"hosts: "*"c last snapshot"*"b last snapshot"* ]]
}

@test "the default gc (--keep-delete 0) beside a stalled writer on another host: the writer refuses, nothing is lost" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	stalled_writer
	kbv forget "$(snap_id 1)"
	run kbv gc --keep-all
	[ "$status" -eq 0 ]
	[ "$(packs)" = 0 ]
	resume_writer
	cat "$TMPD/writer.out"
	[ "$WRITER_STATUS" -eq 6 ]
	grep -q "gc condemned packs while this snapshot ran" "$TMPD/writer.out"
	[ "$(snap_count)" = 0 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

@test "a host whose clock is 14 minutes fast does not take a plan for ripe early: ages are the server's" {
	command -v faketime > /dev/null || { echo "faketime is missing: scripts/deps.sh installs it"; false; }
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv forget "$(snap_id 1)"
	run kbv gc --keep-all --keep-delete 10m
	[ "$status" -eq 0 ]
	[ "$(plans)" = 1 ]
	# By its own clock the plan is 14 minutes old, past its 10-minute delay; by the
	# server's it is seconds old. (S3 refuses requests signed more than 15 minutes off.)
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		run faketime -f '+14m' "$KBVAULT" gc --keep-all --keep-delete 10m
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 packs wait in earlier deletion plans"* ]]
	[ "$(packs)" = 1 ]
	[ "$(plans)" = 1 ]
}

@test "a host whose clock is hours off is refused by the server (RequestTimeTooSkewed), deletes nothing, and blocks nobody" {
	command -v faketime > /dev/null || { echo "faketime is missing: scripts/deps.sh installs it"; false; }
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin a < "$TMPD/b.bin"
	before=$(s3_keys prod/ | sort)
	for off in '+3h' '-5h'; do
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
			run faketime -f "$off" "$KBVAULT" gc --keep-last 1
		[ "$status" -ne 0 ]
		[[ "$output" == *"RequestTimeTooSkewed"*"clock is off"* ]]
	done
	[ "$(s3_keys prod/ | sort)" = "$before" ] # nothing deleted, no lock or plan left behind
	# the others go on: a snapshot and a gc of a host with a true clock
	on b snapshot -q --host b --stdin b < "$TMPD/a.bin"
	run kbv gc --keep-last 1
	[ "$status" -eq 0 ]
	kbv restore latest --stream a --stdout | cmp - "$TMPD/b.bin"
}

@test "a host that indexed a copy while it did not know the plan finds the copy when the condemned pack goes" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	on v snapshots > /dev/null # host V caches the pack
	kbv forget "$(snap_id 1)"
	run kbv gc --keep-all --keep-delete 2s
	[ "$status" -eq 0 ]
	plan=$(s3_keys prod/plans/)
	[ -n "$plan" ]
	# Host C starts after the plan: it stores the bytes again, in a pack of its own.
	on c snapshot -q --host c --stdin c < "$TMPD/a.bin"
	# Host V catches up while the plan is out of its sight (as when its listing of plans
	# came just before the plan, and its listing of packs just after): it indexes C's pack
	# but keeps the blobs where it first found them, in the condemned pack.
	s3_get "$plan" "$TMPD/plan"
	s3_del "$plan"
	on v snapshots > /dev/null
	s3_put "$plan" "$TMPD/plan"
	sleep 3
	run kbv gc --keep-all --keep-delete 2s # ripe: the condemned pack goes
	[ "$status" -eq 0 ]
	# V drops the pack, and the blobs it held come back from the index objects, in C's pack.
	run on v -v restore latest --host c --stdout
	[ "$status" -eq 0 ]
	on v restore latest --host c --stdout | cmp - "$TMPD/a.bin"
	run on v check
	[ "$status" -eq 0 ]
}

# plant_lock HOST PID: a gc lock as another host's running gc writes it (format/repository.md)
plant_lock() {
	printf '{"host":"%s","token":"0123456789abcdef0123456789abcdef","pid":%s}' "$1" "$2" > "$TMPD/lock.json"
	s3_put prod/locks/gc "$TMPD/lock.json"
}

@test "one gc at a time: another host's live lock refuses gc and survives unlock; a stale one is taken over, or removed by unlock" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	run kbv gc --keep-all
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/locks/)" ] # released at the end
	plant_lock ghost 4242
	run kbv gc --keep-all
	[ "$status" -eq 6 ]
	[[ "$output" == *"gc is running on host ghost (PID 4242)"* ]]
	run kbv gc --keep-all --dry-run # a dry run changes nothing and takes no lock
	[ "$status" -eq 0 ]
	run kbv status --json --max-age 1h
	echo "$output" | python3 -c '
import json, sys
l = json.load(sys.stdin)["gc_lock"]
assert l["host"] == "ghost" and l["pid"] == 4242 and 1500 < l["stale_in_seconds"] <= 1800, l'
	run kbv unlock
	[ "$status" -eq 6 ]
	[[ "$output" == *"left in place"* ]]
	[ "$(s3_keys prod/locks/)" = prod/locks/gc ]
	# Stale after 2 s here (KBVAULT_GC_LOCK_STALE): the next gc removes it and runs.
	export KBVAULT_GC_LOCK_STALE=2
	sleep 3
	run kbv status --max-age 1h
	[[ "$output" == *"gc lock: held by ghost (PID 4242), STALE"* ]]
	run kbv gc --keep-all
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/locks/)" ]
	plant_lock ghost 4243
	sleep 3
	run kbv unlock --json
	[ "$status" -eq 0 ]
	[[ "$output" == *'"removed":true'* ]]
	[ -z "$(s3_keys prod/locks/)" ]
	run kbv unlock
	[ "$status" -eq 0 ]
	[[ "$output" == *"no gc lock is held"* ]]
	# A lock of this host whose process is gone is dead at once (a gc killed here).
	unset KBVAULT_GC_LOCK_STALE
	sleep 0 &
	gone=$!
	wait "$gone"
	plant_lock "$(hostname)" "$gone"
	run kbv gc --keep-all
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/locks/)" ]
	# A pid beyond pid_t's range is no process's, even one that narrows to a gone one: that
	# lock goes stale only by the clock.
	plant_lock "$(hostname)" "$((gone + 4294967296))"
	run kbv gc --keep-all
	[ "$status" -eq 6 ]
	[[ "$output" == *"gc is running on host $(hostname)"* ]]
	[ "$(s3_keys prod/locks/)" = prod/locks/gc ]
}

# The soak of the issue "many hosts" (soak_hosts, helpers.bash): three writer hosts and a
# gc host, kill -9 at random; check and every kept snapshot's restore after every round.
# 3 rounds here; KBV_SOAK=1 (make soak): 30.
@test "soak: three writers and a gc on four hosts, kill -9 at random; check passes and every kept snapshot restores, every round" {
	soak_hosts
}

# An append-only host: its own credentials (a second radosgw user) under a bucket policy
# that allows GetObject, PutObject and ListBucket and denies DeleteObject.
@test "an append-only host snapshots, restores and checks; its gc and forget are refused by the server, and nothing is lost" {
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	radosgw-admin -c "$CEPH_DIR/ceph.conf" user create --uid appendonly --display-name appendonly \
		--access-key KBVAPPENDONLY000000 --secret appendonlysecret00000000000000000000000 > /dev/null 2>&1 || true
	cat > "$TMPD/policy.json" <<JSON
{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/appendonly"]},
  "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
  "Resource": ["arn:aws:s3:::$BUCKET", "arn:aws:s3:::$BUCKET/*"]},
 {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam:::user/appendonly"]},
  "Action": ["s3:DeleteObject"], "Resource": ["arn:aws:s3:::$BUCKET/*"]}]}
JSON
	s3_curl -X PUT -H "x-amz-content-sha256: $(sha256sum "$TMPD/policy.json" | cut -d' ' -f1)" \
		-T "$TMPD/policy.json" "$S3_ENDPOINT/$BUCKET?policy="; echo
	ao() { AWS_ACCESS_KEY_ID=KBVAPPENDONLY000000 AWS_SECRET_ACCESS_KEY=appendonlysecret00000000000000000000000 \
		XDG_CACHE_HOME="$TMPD/cache-ao" "$KBVAULT" "$@"; }
	ao snapshot -q --host ao --stdin b < "$TMPD/b.bin"
	ao restore latest --host ao --stdout | cmp - "$TMPD/b.bin"
	ao restore latest --stream a --stdout | cmp - "$TMPD/a.bin"
	run ao check --read-data
	[ "$status" -eq 0 ]
	before=$(s3_keys prod/ | sort)
	run ao forget "$(snap_id 1)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"403"* ]]
	run ao gc --keep-last 1 --allow-remove-all
	[ "$status" -ne 0 ]
	echo "$output"
	[[ "$output" == *"AccessDenied"* ]]
	# Every snapshot and pack is still there; the owner's credentials still collect.
	[ "$(snap_count)" = 2 ]
	kbv restore latest --stream a --stdout | cmp - "$TMPD/a.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	run kbv gc --keep-all
	[ "$status" -eq 0 ]
	[ -z "$(s3_keys prod/locks/)" ]
}
