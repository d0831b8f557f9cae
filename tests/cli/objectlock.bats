#!/usr/bin/env bats
# Immutable backups: a repository with Object Lock (init --object-lock-days) on a real Ceph
# radosgw (ceph.bash). Every pack, index object, key, config, snapshot and record is written
# in COMPLIANCE mode; the server itself refuses to delete a retained version, to anyone;
# gc and forget leave what is retained and remove it once its retention has lapsed; gc
# extends the retention of what is kept. A "day" is KBVAULT_OBJECT_LOCK_DAY seconds here,
# so that retention lapses within a test.
load helpers
load ceph
load s3obj

setup_file() { ceph_start; }
teardown_file() { ceph_stop; }

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	use_password_file
	export XDG_CACHE_HOME="$TMPD/cache"
	export KBVAULT_OBJECT_LOCK_DAY=20
	BUCKET="kbv-l$BATS_TEST_NUMBER-$RANDOM"
	export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/prod"
	head -c 3000000 /dev/urandom > "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/b.bin"
}

teardown() { [ -z "${PROXY_PID:-}" ] || kill "$PROXY_PID" 2>/dev/null || true; }

# Seconds until the storage's retention of KEY lapses (negative: lapsed).
left() { echo $(($(s3_retention "$1" | cut -d' ' -f2) - $(date +%s))); }

# The keys the repository holds (current versions), without plans and locks.
retained_keys() { s3_keys prod/ | grep -v -e '/plans/' -e '/locks/'; }

@test "init --object-lock-days: a bucket with Object Lock, a version 3 config (2 with --id-hash blake2b), and every object written in COMPLIANCE mode" {
	export KBVAULT_OBJECT_LOCK_DAY=60
	run kbv -r "$TMPD/local" init --object-lock-days 7
	[ "$status" -ne 0 ]
	[[ "$output" == *"Object Lock (--object-lock-days) needs a repository on object storage"* ]]
	run kbv init --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	[ "$status" -eq 0 ]
	[[ "$output" == *"retained 1 days (COMPLIANCE)"* ]]
	s3_curl -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET?object-lock=" | grep -q '<ObjectLockEnabled>Enabled</ObjectLockEnabled>'
	s3_get prod/config "$TMPD/config"
	# config version 3 (BLAKE3 ids, the default): the lock's days at 52, the id hash at 56
	[ "$(od -An -tu4 -j8 -N4 "$TMPD/config" | tr -d ' ')" = 3 ]
	[ "$(od -An -tu4 -j52 -N4 "$TMPD/config" | tr -d ' ')" = 1 ]
	[ "$(od -An -tu4 -j56 -N4 "$TMPD/config" | tr -d ' ')" = 2 ]
	[ "$(stat -c %s "$TMPD/config")" = 68 ]
	# with BLAKE2b ids it stays version 2, which builds from before BLAKE3 read
	kbv -r "s3:$S3_ENDPOINT/$BUCKET-b2/x" init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1 --id-hash blake2b
	s3_curl -f -o "$TMPD/config-b2" -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET-b2/x/config"
	[ "$(od -An -tu4 -j8 -N4 "$TMPD/config-b2" | tr -d ' ')" = 2 ]
	[ "$(stat -c %s "$TMPD/config-b2")" = 64 ]
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	# config, key, a pack, an index object, a manifest
	[ "$(retained_keys | wc -l)" -ge 5 ]
	for k in $(retained_keys); do
		r=$(s3_retention "$k")
		[ "${r%% *}" = COMPLIANCE ] || { echo "$k: '$r'"; false; }
		l=$(left "$k")
		[ "$l" -gt 0 ] && [ "$l" -le 61 ] || { echo "$k: $l s left"; false; }
	done
	# A second init finds the repository (RGW ignores If-None-Match in a versioned bucket:
	# init looks first), and a bucket without Object Lock is refused, not half set up.
	run kbv init --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	[ "$status" -ne 0 ]
	[[ "$output" == *"holds a repository already"* ]]
	run kbv -r "s3:$S3_ENDPOINT/$BUCKET-plain/x" init --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -eq 0 ]
	run kbv -r "s3:$S3_ENDPOINT/$BUCKET-plain/y" init --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	[ "$status" -ne 0 ]
	[[ "$output" == *"exists without Object Lock"* ]]
}

@test "the repository's own credentials cannot delete a retained pack or manifest; a hidden or overwritten one is still there to recover" {
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	pack=$(s3_keys prod/data/ | head -1)
	manifest=$(s3_keys prod/snapshots/ | head -1)
	for k in "$pack" "$manifest"; do
		v=$(s3_versions "$k" | head -1 | cut -d' ' -f2)
		run s3_curl -X DELETE -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/$k?versionId=$v"
		[[ "$output" == *"AccessDenied"* ]] || { echo "$k: $output"; false; }
	done
	# A plain DELETE only hides the pack behind a delete marker; an overwrite adds a version.
	s3_get "$pack" "$TMPD/pack.orig"
	s3_del "$pack"
	run kbv restore latest --stdout
	[ "$status" -ne 0 ]
	head -c 100 /dev/zero > "$TMPD/junk"
	s3_put "$manifest" "$TMPD/junk"
	run kbv snapshots
	[ "$status" -ne 0 ]
	# The retained versions are intact: removing the delete marker and the forged version
	# (neither is retained) brings the repository back, byte for byte.
	marker=$(s3_versions "$pack" | awk '$3 == "marker" {print $2}')
	s3_curl -f -X DELETE -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/$pack?versionId=$marker"
	forged=$(s3_versions "$manifest" | head -1 | cut -d' ' -f2) # newest first
	s3_curl -f -X DELETE -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/$manifest?versionId=$forged"
	kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

@test "forget and gc leave retained snapshots and packs; once retention lapses gc removes every version of them and extends what it keeps" {
	export KBVAULT_OBJECT_LOCK_DAY=30 # room for the slower commands of a sanitizer build
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin a < "$TMPD/b.bin"
	old=$(snap_id 1)
	run kbv forget "$old"
	[ "$status" -eq 6 ]
	[[ "$output" == *"snapshot ${old:0:8} is retained by Object Lock until"* ]]
	run kbv gc --keep-last 1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Object Lock still retains 1 snapshots the policy drops"* ]]
	[ "$(snap_count)" = 2 ]
	# a key still retained cannot be removed either (its password would stay valid)
	printf 'second password\n' > "$TMPD/pw2"
	run kbv key add --new-password-file "$TMPD/pw2"
	[ "$status" -eq 0 ]
	id=$(sed -n 's/^added key \([0-9a-f]\{32\}\)$/\1/p' <<< "$output")
	[ -n "$id" ]
	run kbv key remove "$id"
	[ "$status" -eq 6 ]
	[[ "$output" == *"retained by Object Lock"* ]]
	packs_before=$(s3_keys prod/data/ | wc -l)
	kept_pack=$(s3_keys prod/data/ | head -1)
	sleep 31 # every retention has lapsed
	run kbv gc --keep-last 1
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "$output" == *"removed 1 snapshots, kept 1"* ]]
	[ "$(snap_count)" = 1 ]
	# the dead pack is gone with all its versions; what is kept is retained again
	[ "$(s3_keys prod/data/ | wc -l)" -lt "$packs_before" ]
	for k in $(s3_versions prod/data/ | cut -d' ' -f1); do
		s3_keys prod/data/ | grep -qx "$k" || { echo "a version of deleted $k is left"; false; }
	done
	for k in $(retained_keys); do
		l=$(left "$k")
		[ "$l" -gt 0 ] || { echo "$k: not extended ($l s)"; false; }
	done
	kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	# the snapshot's retention was extended too: forget is refused again
	run kbv forget latest
	[ "$status" -eq 6 ]
}

@test "status warns before retention lapses (a damaged host record changes neither) and is OK once gc has extended everything; the metrics file has the oldest retention" {
	export KBVAULT_OBJECT_LOCK_DAY=40
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	run kbv status --max-age 1h
	[ "$status" -eq 0 ]
	[[ "$output" == *"object lock: COMPLIANCE, 1 days;"* ]]
	# This host's record, written by a gc, authenticated (version 2, a MAC under the
	# repository's keys). Damaged, it must not hide the lapse (the config's and keys'
	# retention, asked by HEAD, would still show it) nor keep gc from extending the packs
	# and manifests it covers: here a retain-until an hour on (within the bounds a clock
	# check allows), the MAC kept.
	kbv gc -q --keep-all
	cache=$(ls -d "$TMPD"/cache/kbvault/*/ | grep -v '/cuts/$')
	[ "$(echo "$cache" | wc -l)" -eq 1 ]
	grep -Eq '^kbvault-object-lock 2 [0-9]+ [0-9]+ [0-9a-f]{64}$' "${cache}object-lock"
	read -r magic version t u mac < "${cache}object-lock"
	echo "$magic $version $t $((t + 3600)) $mac" > "${cache}object-lock"
	sleep 31 # less than a quarter of the retention is left (or none, on a slow machine)
	run kbv status --max-age 1h
	[ "$status" -eq 1 ]
	[[ "$output" == "KBVAULT WARNING - Object Lock retention of the oldest objects "* ]]
	cat > "$TMPD/kbvault.conf" <<EOF
[monitor]
metrics-file = $TMPD/metrics.prom
EOF
	run kbv -c "$TMPD/kbvault.conf" gc --keep-all
	[ "$status" -eq 0 ]
	[[ "$output" == *"extended by this run"* ]]
	for k in $(retained_keys); do # every object, not only those the damaged record left out
		l=$(left "$k")
		[ "$l" -gt 15 ] || { echo "$k: not extended ($l s)"; false; } # not extended: < 9 s
	done
	run kbv status --max-age 1h --json
	[ "$status" -eq 0 ]
	echo "$output" | python3 -c '
import json, sys, time
d = json.load(sys.stdin)["object_lock"]
assert d["mode"] == "COMPLIANCE" and d["days"] == 1 and d["objects"] >= 5, d
assert d["oldest_retention_timestamp"] > time.time() + 10, d'
	grep -E '^kbvault_object_lock_oldest_retention_timestamp_seconds [0-9]' "$TMPD/metrics.prom"
	grep -E '^kbvault_host_last_snapshot_timestamp_seconds\{host="[^"]+"\} [0-9]' "$TMPD/metrics.prom"
	grep -E '^kbvault_gc_lock_held 0' "$TMPD/metrics.prom"
	"$PROMTOOL" check metrics < "$TMPD/metrics.prom"
}

@test "status's retention report lists every kind side by side (one round trip for all seven, not one each), each once; the config's and the key's retention asked side by side too" {
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	s3proxy_start
	echo "lag prod 300" > "$TMPD/rules" # every request held 300 ms
	run kbv -r "s3:$PROXY/$BUCKET/prod" status --max-age 1h
	[ "$status" -eq 0 ]
	[[ "$output" == *"object lock: COMPLIANCE, 1 days;"* ]]
	[ "$(grep -c "prefix=prod%2Fidx%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
	# the report's first HEAD of the config (is it there?) and its listing of the index
	# objects (nothing else sends either here) went out together, not seven holds apart;
	# then the config's and the key's retention (the listings give no time for those), by a
	# HEAD each, together too
	python3 - "$TMPD/rules.times" "/$BUCKET/prod/" <<'PY' || { cat "$TMPD/rules.times"; false; }
import sys
rows = [l.split() for l in open(sys.argv[1])]
at = lambda method, path: [float(r[0]) for r in rows if r[1] == method and r[2] == path]
cfg = at("HEAD", sys.argv[2] + "config")
key = at("HEAD", sys.argv[2] + "key")
idx = [float(r[0]) for r in rows if "prefix=prod%2Fidx%2F" in r[2]]
assert len(cfg) == 2 and len(key) == 1 and len(idx) == 1, (cfg, key, idx)
assert abs(cfg[0] - idx[0]) < 0.3, "the listings went one after the other"
assert abs(cfg[1] - key[0]) < 0.3, "the HEADs went one after the other"
PY
}

@test "the golden Object Lock bucket (config version 2) restores byte for byte, and what a snapshot adds to it is retained" {
	G="$BATS_TEST_DIRNAME/../golden/v2-lock-bucket"
	export KBVAULT_PASSWORD=kbvault-golden
	unset KBVAULT_PASSWORD_FILE
	# a bucket with Object Lock (made by a throwaway repository), then the golden objects
	KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/scratch" kbv init -q --kdf-ops 1 --kdf-mem-mib 8 --object-lock-days 1
	(cd "$G/objects" && find . -type f | sed 's|^\./||') | while read -r f; do
		s3_put "prod/$f" "$G/objects/$f"
	done
	[ "$(kbv restore latest --stream one.txt --stdout | b2sum | cut -d' ' -f1)" = "$(cat "$G/expected-one.b2")" ]
	[ "$(kbv restore latest --stream two.txt --stdout | b2sum | cut -d' ' -f1)" = "$(cat "$G/expected-two.b2")" ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots: ok, 0 problems"* ]]
	kbv snapshot -q --stdin three < "$TMPD/b.bin"
	id=$(snap_id 3)
	[ "$(s3_retention "prod/snapshots/$id" | cut -d' ' -f1)" = COMPLIANCE ]
	run kbv forget "$id"
	[ "$status" -eq 6 ]
}
