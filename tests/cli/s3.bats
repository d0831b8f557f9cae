#!/usr/bin/env bats
# Repositories on S3-compatible object storage, against a real server: Debian's Ceph
# radosgw on a one-node cluster that this file starts on free loopback ports (ceph.bash)
# and stops at the end. Every test has its own bucket.
load helpers
load ceph
load s3obj

setup_file() { ceph_start; }
teardown_file() { ceph_stop; }

setup() {
	export TMPD="$BATS_TEST_TMPDIR"
	use_password_file
	export XDG_CACHE_HOME="$TMPD/cache-a"
	BUCKET="kbv-$BATS_TEST_NUMBER-$RANDOM"
	export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/prod"
	head -c 3000000 /dev/urandom > "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/b.bin"
}

s3_init() { kbv init -q --kdf-ops 1 --kdf-mem-mib 8; }

teardown() { [ -z "${PROXY_PID:-}" ] || kill "$PROXY_PID" 2>/dev/null || true; }


@test "s3: init creates the bucket; snapshot, restore byte for byte, check --read-data; a second init is refused" {
	s3_init
	[ "$(s3_keys prod/ | sort | tr '\n' ' ')" = "prod/config prod/key " ]
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	# unchanged: deduplicated; packs uploaded one at a time here (s3-connections = 1)
	printf '[repository]\ns3-connections = 1\n' > "$TMPD/one.conf"
	kbv -c "$TMPD/one.conf" snapshot -q --stdin a < "$TMPD/a.bin"
	[ "$(snap_count)" = 2 ]
	printf '[repository]\ns3-connections = 0\n' > "$TMPD/zero.conf"
	run kbv -c "$TMPD/zero.conf" snapshots
	[ "$status" -eq 2 ]
	[[ "$output" == *"s3-connections must be a number from 1 to 32, not '0'"* ]]
	[ "$(s3_keys prod/snapshots/ | wc -l)" = 2 ]
	# The second snapshot stored next to nothing: the stored bytes are one copy's.
	kbv stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["raw_bytes"] == 2 * 3000000 and s["stored_bytes"] < 3000000 * 1.02, s'
	[ "$(s3_keys prod/data/ | wc -l)" -le 2 ]
	kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots: ok, 0 problems"* ]]
	# Nothing of the repository's own state lands outside the bucket but the cache.
	[ -d "$XDG_CACHE_HOME/kbvault" ]
	run kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -ne 0 ]
	[[ "$output" == *"exists"* ]]
	kbv restore latest --stdout | cmp - "$TMPD/a.bin"
}

@test "s3: another host with an empty cache restores and snapshots; gc elsewhere is noticed by its cache" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	# Host B: its own cache directory, nothing in it.
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v restore latest --stdout
	[ "$status" -eq 0 ]
	XDG_CACHE_HOME="$TMPD/cache-b" kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	XDG_CACHE_HOME="$TMPD/cache-b" kbv snapshot -q --host b --stdin b < "$TMPD/b.bin"
	# Host A sees B's snapshot and its pack, and restores it.
	kbv restore latest --host b --stdout | cmp - "$TMPD/b.bin"
	# A forgets its own snapshot and collects the garbage; B's cache still lists that pack
	# until B looks again: then it drops it, and both still check clean.
	kbv forget "$(kbv snapshots --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["host"] != "b"][0])')" -q
	kbv gc -q --keep-all
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 dropped (gone from the storage)"* ]]
	[[ "$output" == *"1 snapshots: ok, 0 problems"* ]]
	kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	# A deleted cache is rebuilt, not trusted.
	rm -rf "$TMPD/cache-b"
	XDG_CACHE_HOME="$TMPD/cache-b" kbv restore latest --stdout | cmp - "$TMPD/b.bin"
}

@test "s3: index objects: an empty cache is built from them (side by side), not from pack trailers; gc compacts them; a damaged one costs only speed" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin b < "$TMPD/b.bin"
	kbv snapshot -q --stdin a2 < "$TMPD/a.bin" # its data deduplicated, a new entry table
	# One index object per snapshot (each one wrote a pack: its entry table at least).
	[ "$(s3_keys prod/idx/ | wc -l)" = 3 ]
	npacks=$(s3_keys prod/data/ | wc -l)
	# A new host reads the three index objects and no pack trailer.
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v restore latest --stream b --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"$npacks packs indexed from 3 index objects, 0 from pack trailers"* ]]
	XDG_CACHE_HOME="$TMPD/cache-b" kbv restore latest --stream b --stdout | cmp - "$TMPD/b.bin"
	# Another new host reads them side by side (each GET held 300 ms: they overlap), each once.
	s3proxy_start
	: > "$TMPD/rules.inflight"
	echo "lag /prod/idx/ 300" > "$TMPD/rules"
	XDG_CACHE_HOME="$TMPD/cache-x" run kbv -r "s3:$PROXY/$BUCKET/prod" -v restore latest --stream b --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"$npacks packs indexed from 3 index objects, 0 from pack trailers"* ]]
	[ "$(grep -c "^GET /$BUCKET/prod/idx/" "$TMPD/rules.log")" = 3 ]
	[ "$(awk '$1 == "GET" && $2 ~ "/prod/idx/" && $4 > 1' "$TMPD/rules.inflight" | wc -l)" -ge 1 ] ||
		{ cat "$TMPD/rules.inflight"; false; }
	# One of them not found when fetched (a gc removed it since the listing): the fetch
	# beside the key's derivation keeps the two others, the refresh's run finds them kept
	# and asks for that one again, which is then read on its own; its packs come from their
	# trailers, the restore is whole. The two others are fetched once.
	gone=$(s3_keys prod/idx/ | sort | tail -1)
	echo "GET 404 NoSuchKey /$gone" > "$TMPD/rules"
	: > "$TMPD/rules.log"
	XDG_CACHE_HOME="$TMPD/cache-y" kbv -r "s3:$PROXY/$BUCKET/prod" -v restore latest --stream b --stdout \
		> "$TMPD/out" 2> "$TMPD/err"
	cmp "$TMPD/out" "$TMPD/b.bin"
	grep -q "packs indexed from 2 index objects, [1-9][0-9]* from pack trailers" "$TMPD/err" || { cat "$TMPD/err"; false; }
	[ "$(grep -c "^GET /$BUCKET/$gone " "$TMPD/rules.log")" = 3 ] || { cat "$TMPD/rules.log"; false; } # ahead, in the run, on its own
	[ "$(grep -c "^GET /$BUCKET/prod/idx/" "$TMPD/rules.log")" = 5 ] || { cat "$TMPD/rules.log"; false; }
	: > "$TMPD/rules"
	# Host A writes once more; host B fetches that one index object only.
	head -c 500000 /dev/urandom > "$TMPD/c.bin"
	kbv snapshot -q --stdin c < "$TMPD/c.bin"
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v restore latest --stream c --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 packs indexed from 1 index objects, 0 from pack trailers"* ]]
	# An idle repository: nothing to fetch, nothing said.
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v snapshots
	[[ "$output" != *"indexed from"* ]]
	# gc leaves one index object that lists what is left; a third host builds from it.
	kbv forget -q "$(kbv snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
	kbv gc --json --keep-all | python3 -c '
import json, sys
g = json.load(sys.stdin)["gc"]
assert g["index_objects_written"] == 1 and g["index_objects_removed"] == 4, g'
	[ "$(s3_keys prod/idx/ | wc -l)" = 1 ]
	npacks=$(s3_keys prod/data/ | wc -l)
	XDG_CACHE_HOME="$TMPD/cache-c" run kbv -v check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"$npacks packs indexed from 1 index objects, 0 from pack trailers"* ]]
	[[ "$output" == *"3 snapshots: ok, 0 problems"* ]]
	# A damaged index object: a warning, the packs come from their trailers, nothing is lost.
	key=$(s3_keys prod/idx/)
	s3_get "$key" "$TMPD/idx"
	python3 - "$TMPD/idx" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[40] ^= 1; open(p, 'wb').write(b)
PY
	s3_put "$key" "$TMPD/idx"
	XDG_CACHE_HOME="$TMPD/cache-d" run kbv -v restore latest --stream c --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 index objects are damaged"* ]]
	[[ "$output" == *"0 packs indexed from 1 index objects, $npacks from pack trailers"* ]]
	XDG_CACHE_HOME="$TMPD/cache-d" kbv restore latest --stream c --stdout | cmp - "$TMPD/c.bin"
	# repair index replaces it (with the same name when it lists the same packs in the
	# same order: index objects are named by their content; a damaged one is overwritten).
	kbv repair index -q
	[ "$(s3_keys prod/idx/ | wc -l)" = 1 ]
	XDG_CACHE_HOME="$TMPD/cache-f" run kbv -v check
	[ "$status" -eq 0 ]
	[[ "$output" != *"damaged"* ]]
	XDG_CACHE_HOME="$TMPD/cache-e" run kbv -v restore latest --stream a2 --stdout
	[[ "$output" == *"$npacks packs indexed from 1 index objects, 0 from pack trailers"* ]]
	XDG_CACHE_HOME="$TMPD/cache-e" kbv restore latest --stream a2 --stdout | cmp - "$TMPD/a.bin"
}

# Index objects are named by their content: repair index rebuilding the one object of a
# one-pack repository makes exactly the name of the damaged one, and must overwrite it (a
# create-if-absent PUT alone would find the name taken and leave the damage in place).
@test "s3: repair index overwrites a damaged index object it rebuilds under the same name" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	[ "$(s3_keys prod/data/ | wc -l)" = 1 ]
	key=$(s3_keys prod/idx/)
	[ "$(echo "$key" | wc -l)" = 1 ]
	s3_get "$key" "$TMPD/idx"
	python3 - "$TMPD/idx" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[40] ^= 1; open(p, 'wb').write(b)
PY
	s3_put "$key" "$TMPD/idx"
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v check
	[[ "$output" == *"1 index objects are damaged"* ]]
	kbv repair index -q
	[ "$(s3_keys prod/idx/)" = "$key" ] # the same content, so the same name
	XDG_CACHE_HOME="$TMPD/cache-c" run kbv -v check
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 packs indexed from 1 index objects, 0 from pack trailers"* ]]
	[[ "$output" != *"damaged"* ]]
	XDG_CACHE_HOME="$TMPD/cache-c" kbv restore latest --stream a --stdout | cmp - "$TMPD/a.bin"
}

# Five snapshots of 300 kB of random bytes each (streams s1..s5, in $TMPD/s1..s5): a pack
# each, nothing shared.
five_snapshots() {
	for i in 1 2 3 4 5; do
		head -c 300000 /dev/urandom > "$TMPD/s$i"
		kbv snapshot -q --stdin "s$i" < "$TMPD/s$i"
	done
}
# forget_oldest N: forget the N oldest snapshots.
forget_oldest() {
	kbv forget -q $(kbv snapshots --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)[:int(sys.argv[1])]))' "$1")
}

@test "s3: gc removes packs and index objects with one DeleteObjects request each, and its lock; -v counts the requests" {
	s3_init
	five_snapshots
	before=$(s3_keys prod/data/ | wc -l)
	forget_oldest 4
	run kbv -v gc --keep-all
	[ "$status" -eq 0 ]
	# DeleteObjects for the packs, one for the index objects, and the gc lock's DELETE
	[[ "$output" == *"object storage requests: "*", 3 DELETE (0 of them retries)"* ]]
	[ "$((before - $(s3_keys prod/data/ | wc -l)))" -ge 4 ]
	[ "$(s3_keys prod/idx/ | wc -l)" = 1 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 snapshots: ok, 0 problems"* ]]
	kbv restore latest --stdout | cmp - "$TMPD/s5"
}

@test "s3: a command's first requests go side by side: the config, the key and the listing of keys/ (a round trip each); the key is read once" {
	s3_init
	printf 'another password\n' > "$TMPD/pw2"
	chmod 600 "$TMPD/pw2"
	kbv key add -q --new-password-file "$TMPD/pw2"
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	s3proxy_start
	export KBVAULT_REPO="s3:$PROXY/$BUCKET/prod"
	echo "together 3" > "$TMPD/rules"
	run kbv snapshots --json
	[ "$status" -eq 0 ]
	[ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<< "$output")" = 1 ]
	# one after the other, each would have waited alone
	[ "$(grep -c ' together$' "$TMPD/rules.together")" = 3 ]
	grep -q "^GET /$BUCKET/prod/config together\$" "$TMPD/rules.together"
	grep -q "^GET /$BUCKET/prod/key together\$" "$TMPD/rules.together"
	grep -q "^GET /$BUCKET?list-type=2&prefix=prod%2Fkeys%2F together\$" "$TMPD/rules.together"
	# `key`'s bytes come with that first GET: no HEAD of it, no second GET
	[ "$(grep -c "^[A-Z]* /$BUCKET/prod/key " "$TMPD/rules.log")" = 1 ]
	# both keys still found, `key` first; either password opens the repository
	: > "$TMPD/rules"
	run kbv key list
	[ "$status" -eq 0 ]
	[[ "$(sed -n 2p <<< "$output")" == "* key "* ]]
	[ "$(grep -c '^  [0-9a-f]\{32\} ' <<< "$output")" = 1 ]
	KBVAULT_PASSWORD_FILE="$TMPD/pw2" kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	# an error of either request is still the one a user would get one after the other
	echo "GET 403 AccessDenied /prod/key" > "$TMPD/rules" # `key` and keys/<id>, not the listing
	run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 GET s3:$PROXY/$BUCKET/prod/key: HTTP 403 AccessDenied"* ]]
	# `key` gone (passwd removed the one it was opened with): its GET finds none, the
	# other keys open the repository, the old password no longer does
	: > "$TMPD/rules"
	printf 'a third password\n' > "$TMPD/pw3"
	chmod 600 "$TMPD/pw3"
	kbv key passwd -q --new-password-file "$TMPD/pw3"
	[ "$(s3_keys prod/ | grep -c '^prod/key$')" = 0 ]
	KBVAULT_PASSWORD_FILE="$TMPD/pw3" kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	KBVAULT_PASSWORD_FILE="$TMPD/pw2" kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	run kbv snapshots
	[ "$status" -eq 4 ]
	[[ "$output" == *"wrong password"* ]]
	echo "GET 403 AccessDenied" > "$TMPD/rules" # the config's GET and the listing's both fail
	run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 GET s3:$PROXY/$BUCKET/prod/config: HTTP 403 AccessDenied"* ]]
}

@test "s3: small objects go up without waiting for 100 Continue (a round trip each), packs wait for it; nothing is labelled a form" {
	s3proxy_start
	export KBVAULT_REPO="s3:$PROXY/$BUCKET/prod"
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin" # 3 MB of random bytes: a pack over 1 MiB
	kbv forget -q "$(snap_id 1)"
	kbv gc -q --keep-all # a lock, a plan, an index object, a record
	for dir in snapshots idx locks plans records; do
		grep -q "^PUT /$BUCKET/prod/$dir/.* - - application/octet-stream\$" "$TMPD/rules.log"
	done
	[ "$(grep -c '^PUT .* 100-continue ' "$TMPD/rules.log")" -ge 1 ]
	[ "$(grep '^PUT .* 100-continue ' "$TMPD/rules.log" | grep -vc '^PUT [^ ]*/data/')" = 0 ]
	! grep -q 'x-www-form-urlencoded' "$TMPD/rules.log"
	kbv snapshot -q --stdin b < "$TMPD/b.bin"
	kbv check --read-data
	kbv restore latest --stream b --stdout | cmp - "$TMPD/b.bin"
}

@test "s3: gc --keep-last removes the manifests it drops with one DeleteObjects request" {
	s3_init
	for i in 1 2 3 4 5; do # five nights of one stream
		head -c 300000 /dev/urandom > "$TMPD/d$i"
		kbv snapshot -q --stdin db < "$TMPD/d$i"
	done
	run kbv -v gc --keep-last 1
	[ "$status" -eq 0 ]
	[[ "$output" == *"gc removed 4 snapshots, kept 1"* ]]
	# the four manifests, the packs, the index objects, and the gc lock's DELETE
	[[ "$output" == *"object storage requests: "*", 4 DELETE (0 of them retries)"* ]]
	[ "$(s3_keys prod/snapshots/ | wc -l)" = 1 ]
	kbv check
	kbv restore latest --stdout | cmp - "$TMPD/d5"
}

@test "s3: gc's plans, the packs and the snapshots (status: records, WAL and locks too) are listed while the key is derived, not after it, a plan there or not; a new host's index objects too, beside the packs, and its manifests and index objects fetched; nothing else lists ahead; a plan gone when read has the packs and index objects listed again" {
	kbv init -q --kdf-ops 40 --kdf-mem-mib 64 # a derivation of about a second
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	s3proxy_start
	export KBVAULT_REPO="s3:$PROXY/$BUCKET/prod"
	kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	t() { awk -v p="$1" '$3 ~ p { print $1; exit }' "$TMPD/rules.times"; }
	# after the key's GET came the derivation, then the restore's first read of a pack: the
	# three listings went out in its first half, the plans' first (the packs' after them)
	beside() {
		local key plans packs snaps read
		key=$(t "^/$BUCKET/prod/key\$")
		plans=$(t "prefix=prod%2Fplans%2F")
		packs=$(t "prefix=prod%2Fdata%2F")
		snaps=$(t "prefix=prod%2Fsnapshots%2F")
		read=$(t "^/$BUCKET/prod/data/")
		python3 - "$key" "$plans" "$packs" "$snaps" "$read" <<'PY' || { cat "$TMPD/rules.times"; false; }
import sys
key, plans, packs, snaps, read = map(float, sys.argv[1:])
half = key + (read - key) / 2
print(f"plans +{plans - key:.3f} s, packs +{packs - key:.3f} s, snapshots +{snaps - key:.3f} s, read +{read - key:.3f} s")
assert key < plans < packs < half, "the listings waited for the key"
assert key < snaps < half, "the snapshot lookup waited for the key"
PY
	}
	beside
	# one listing of the snapshots: the lookup used the one made beside the derivation
	[ "$(grep -c "prefix=prod%2Fsnapshots%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
	: > "$TMPD/rules.times"
	[ "$(kbv snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
	[ "$(grep -c "prefix=prod%2Fsnapshots%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
	# a host that had never seen the snapshot (an empty cache) lists the packs once: their
	# listing began after the snapshots' was in, so it showed the manifest's index objects.
	# Its index objects are listed once too, beside the packs (after the snapshots' listing,
	# as the packs are) and beside the derivation, in the first half of the command's time
	# after the key's GET.
	for cmd in "restore latest --stdout" "snapshots"; do
		: > "$TMPD/rules.times"
		rm -rf "$TMPD/cache-new"
		XDG_CACHE_HOME="$TMPD/cache-new" kbv $cmd > "$TMPD/out-${cmd%% *}"
		end=$(python3 -c 'import time; print(time.monotonic())') # the proxy's clock
		[ "$(grep -c "prefix=prod%2Fdata%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
		python3 -c "import sys; sys.exit(not $(t "prefix=prod%2Fsnapshots%2F") < $(t "prefix=prod%2Fdata%2F"))" ||
			{ cat "$TMPD/rules.times"; false; }
		[ "$(grep -c "prefix=prod%2Fidx%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
		key=$(t "^/$BUCKET/prod/key\$")
		python3 -c "import sys; sys.exit(not $(t "prefix=prod%2Fsnapshots%2F") < $(t "prefix=prod%2Fidx%2F") < $key + ($end - $key) / 2)" ||
			{ echo "$cmd: the index objects' listing"; cat "$TMPD/rules.times"; false; }
		# and its manifest, fetched once, beside the derivation too
		[ "$(grep -c " /$BUCKET/prod/snapshots/" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
		python3 -c "import sys; sys.exit(not $(t "prefix=prod%2Fsnapshots%2F") < $(t "^/$BUCKET/prod/snapshots/") < $key + ($end - $key) / 2)" ||
			{ echo "$cmd: the manifest's GET"; cat "$TMPD/rules.times"; false; }
		# and its index object, fetched once, after their listing, beside the derivation too
		[ "$(grep -c " /$BUCKET/prod/idx/" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
		python3 -c "import sys; sys.exit(not $(t "prefix=prod%2Fidx%2F") < $(t "^/$BUCKET/prod/idx/") < $key + ($end - $key) / 2)" ||
			{ echo "$cmd: the index object's GET"; cat "$TMPD/rules.times"; false; }
	done
	cmp "$TMPD/out-restore" "$TMPD/a.bin"
	# status looks up its snapshots, records, WAL and locks: each listed once, beside the
	# derivation (in the first half of the command's time after the key's GET)
	: > "$TMPD/rules.times"
	run kbv status
	[ "$status" -eq 0 ]
	end=$(python3 -c 'import time; print(time.monotonic())') # the proxy's clock
	key=$(t "^/$BUCKET/prod/key\$")
	for kind in snapshots records wal locks; do
		[ "$(grep -c "prefix=prod%2F$kind%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
		python3 -c "import sys; sys.exit(not $key < $(t "prefix=prod%2F$kind%2F") < $key + ($end - $key) / 2)" ||
			{ echo "$kind"; cat "$TMPD/rules.times"; false; }
	done
	# a command that does not look snapshots up lists none
	head -c 100000 /dev/urandom > "$TMPD/000000010000000000000001"
	: > "$TMPD/rules.times"
	kbv wal-push --source s "$TMPD/000000010000000000000001"
	! grep -q "prefix=prod%2Fsnapshots%2F" "$TMPD/rules.times" || { cat "$TMPD/rules.times"; false; }
	# with a WAL source there status still lists the WAL once (not once more per source)
	: > "$TMPD/rules.times"
	run kbv status
	[[ "$output" == KBVAULT* ]]
	[ "$(grep -c "prefix=prod%2Fwal%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
	# gc lists the snapshots only once it holds its lock
	kbv snapshot -q --stdin a < "$TMPD/b.bin"
	: > "$TMPD/rules.times"
	kbv gc -q --keep-last 1 --keep-delete 1h
	lock=$(awk -v p="^/$BUCKET/prod/locks/gc" '$2 == "PUT" && $3 ~ p { print $1; exit }' "$TMPD/rules.times")
	snaps=$(t "prefix=prod%2Fsnapshots%2F")
	[ -n "$lock" ] && [ -n "$snaps" ] && python3 -c "import sys; sys.exit(not $lock < $snaps)" ||
		{ cat "$TMPD/rules.times"; false; }
	# with a plan of gc's there (gc keeps one a week after it is ripe) the three listings
	# still go beside the derivation; the plan's bytes, which need the key, are read after
	[ "$(s3_keys prod/plans/ | wc -l)" = 1 ]
	: > "$TMPD/rules.times"
	kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	beside
	[ "$(grep -c "prefix=prod%2Fdata%2F" "$TMPD/rules.times")" = 1 ] || { cat "$TMPD/rules.times"; false; }
	# a plan listed and gone when read (a gc removed it after deleting its packs, maybe
	# after they were listed): the packs are listed again after that read. Another host
	# (an empty cache) reads the plan with a GET, answered 404.
	echo "GET 404 NoSuchKey /prod/plans/" > "$TMPD/rules"
	: > "$TMPD/rules.times"
	XDG_CACHE_HOME="$TMPD/cache-b" kbv restore latest --stdout | cmp - "$TMPD/b.bin"
	# (then the listing is applied: its index objects listed and read; the index listing
	# made beside the derivation, after the first listing of the packs, is not the one
	# applied: they are listed again after the second)
	plan=$(t "^/$BUCKET/prod/plans/")
	again=$(awk '/prefix=prod%2Fdata%2F/ { if (++n == 2) { print $1; exit } }' "$TMPD/rules.times")
	idx=$(awk '/prefix=prod%2Fidx%2F/ { last = $1 } END { print last }' "$TMPD/rules.times")
	[ -n "$plan" ] && [ -n "$again" ] && [ -n "$idx" ] && python3 -c "import sys; sys.exit(not $plan < $again < $idx)" ||
		{ cat "$TMPD/rules.times"; false; }
	[ "$(grep -c "prefix=prod%2Fidx%2F" "$TMPD/rules.times")" = 2 ] || { cat "$TMPD/rules.times"; false; }
	: > "$TMPD/rules"
	# a wrong password is still the error a user gets, whatever the listings met
	echo "GET 403 AccessDenied prefix=prod%2Fdata" > "$TMPD/rules"
	echo nope > "$TMPD/bad"
	run kbv --password-file "$TMPD/bad" snapshots
	[ "$status" -eq 4 ]
	[[ "$output" == *"wrong password"* ]]
	run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 GET s3:$PROXY/$BUCKET?list-type=2&prefix=prod%2Fdata%2F"*"403 AccessDenied"* ]] ||
		{ echo "$output"; false; }
	# a snapshot lookup refused beside the derivation is asked again, and its own error
	# is what the user gets
	echo "GET 403 AccessDenied prefix=prod%2Fsnapshots" > "$TMPD/rules"
	: > "$TMPD/rules.times"
	run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 GET s3:$PROXY/$BUCKET?list-type=2&prefix=prod%2Fsnapshots%2F"*"403 AccessDenied"* ]] ||
		{ echo "$output"; false; }
	[ "$(grep -c "prefix=prod%2Fsnapshots%2F" "$TMPD/rules.times")" = 2 ] || { cat "$TMPD/rules.times"; false; }
}

@test "s3: a command deriving its key keeps no other process of this host waiting; a pack indexed meanwhile has the packs listed again" {
	kbv init -q --kdf-ops 60 --kdf-mem-mib 64 # a derivation of well over a second
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	head -c 1000000 /dev/urandom > "$TMPD/000000010000000000000001"
	head -c 1000000 /dev/urandom > "$TMPD/000000010000000000000002"
	kbv wal-push --source s "$TMPD/000000010000000000000001" # its derived key is cached from now
	s3proxy_start
	# a restore through the proxy (whose log is its alone) lists the packs while it
	# derives its key; meanwhile a wal-push of this host (no derivation) indexes a pack
	KBVAULT_REPO="s3:$PROXY/$BUCKET/prod" "$KBVAULT" restore -q latest --stdout > "$TMPD/out" &
	pid=$!
	for _ in $(seq 200); do grep -q "prefix=prod%2Fdata%2F" "$TMPD/rules.times" 2> /dev/null && break; sleep 0.05; done
	sleep 0.2 # the listing's reply
	kbv wal-push --source s "$TMPD/000000010000000000000002"
	pushed=$(python3 -c 'import time; print(time.monotonic())') # the proxy's clock
	wait "$pid"
	cmp "$TMPD/out" "$TMPD/a.bin"
	# the push did not wait for the restore's key: it was done before the restore's next
	# request after the derivation (the packs listed again, below)
	again=$(awk '/prefix=prod%2Fdata%2F/ { if (++n == 2) { print $1; exit } }' "$TMPD/rules.times")
	[ -n "$again" ] && python3 -c "import sys; sys.exit(not $pushed < $again)" ||
		{ echo "pushed $pushed"; cat "$TMPD/rules.times"; false; }
	# the index changed after the restore read it: the packs were listed again under the
	# lock before its listing was applied
	[ "$(grep -c "prefix=prod%2Fdata%2F" "$TMPD/rules.times")" = 2 ] || { cat "$TMPD/rules.times"; false; }
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"1 snapshots, 2 WAL files: ok"* ]] || { echo "$output"; false; }
}

@test "s3: gc plans from the index: a pack it deletes whole is never read, one it keeps is never HEAD-ed" {
	s3_init
	five_snapshots
	forget_oldest 2
	s3_keys prod/data/ | sort > "$TMPD/before"
	s3proxy_start
	run kbv -r "s3:$PROXY/$BUCKET/prod" gc --keep-all --json
	[ "$status" -eq 0 ]
	python3 -c 'import json,sys; r=json.loads(sys.argv[1])["gc"]; assert r["packs_deleted"]==2 and r["packs_repacked"]==0, r' \
		"$(grep '^{' <<< "$output")"
	s3_keys prod/data/ | sort > "$TMPD/after"
	comm -23 "$TMPD/before" "$TMPD/after" > "$TMPD/deleted"
	[ "$(wc -l < "$TMPD/deleted")" = 2 ]
	# reading every trailer (as on a local disk) would GET the dead packs' ends too
	while read -r key; do
		[ "$(grep -c "^GET /$BUCKET/$key " "$TMPD/rules.log")" = 0 ]
	done < "$TMPD/deleted"
	# no pack is HEAD-ed; the kept snapshots' trees come from this host's metadata cache
	[ "$(grep -c '^HEAD .*\.pack ' "$TMPD/rules.log")" = 0 ]
	[ "$(grep -c '^GET .*\.pack ' "$TMPD/rules.log")" = 0 ]
	# another host, with an empty cache, reads them from the packs, sized by the index
	: > "$TMPD/rules.log"
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -r "s3:$PROXY/$BUCKET/prod" gc --keep-all --dry-run
	[ "$status" -eq 0 ]
	[ "$(grep -c '^HEAD .*\.pack ' "$TMPD/rules.log")" = 0 ]
	grep -q '^GET .*\.pack bytes=' "$TMPD/rules.log"
	for i in 3 4 5; do kbv restore "$(snap_id $((i - 2)))" --stdout | cmp - "$TMPD/s$i"; done
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

# gets KIND: GETs of objects of KIND (snapshots, data) in the proxy's log since it was emptied
gets() { grep -c "^GET /$BUCKET/prod/$1/" "$TMPD/rules.log" || true; }

@test "s3: the metadata cache: manifests, entry tables and trees are read from the bucket once per host (manifests and entry tables side by side); damaged entries are read again; nothing in it is readable; check reads the bucket" {
	s3_init
	head -c 2000000 /dev/urandom > "$TMPD/c.bin"
	for i in 1 2 3; do
		head -c 300000 /dev/urandom >> "$TMPD/c.bin"
		kbv snapshot -q --stdin customer-ledger.sql < "$TMPD/c.bin"
	done
	s3proxy_start
	P="s3:$PROXY/$BUCKET/prod"
	# the host that wrote them lists, applies retention and marks without a GET of either
	kbv -r "$P" snapshots > /dev/null
	kbv -r "$P" gc --keep-last 3 --dry-run > /dev/null
	[ "$(gets snapshots)" = 0 ]
	[ "$(gets data)" = 0 ]
	# a second host reads each manifest once, side by side (each GET held 300 ms: they
	# overlap), then nothing
	export XDG_CACHE_HOME="$TMPD/cache-b"
	: > "$TMPD/rules.inflight"
	echo "lag /prod/snapshots/ 300" > "$TMPD/rules"
	kbv -r "$P" gc --keep-last 3 --dry-run > /dev/null
	[ "$(gets snapshots)" = 3 ]
	[ "$(awk '$1 == "GET" && $2 ~ "/prod/snapshots/" && $4 > 1' "$TMPD/rules.inflight" | wc -l)" -ge 1 ] ||
		{ cat "$TMPD/rules.inflight"; false; }
	: > "$TMPD/rules"
	: > "$TMPD/rules.log"
	kbv -r "$P" gc --keep-last 3 --dry-run > /dev/null
	kbv -r "$P" snapshots > /dev/null
	[ "$(gets snapshots)" = 0 ]
	[ "$(gets data)" = 0 ]
	# a third host's `snapshots` reads the three entry tables side by side too (each GET of
	# a pack held 300 ms: they overlap), then from its cache
	: > "$TMPD/rules.inflight"
	: > "$TMPD/rules.log"
	echo "lag /prod/data/ 300" > "$TMPD/rules"
	XDG_CACHE_HOME="$TMPD/cache-c" kbv -r "$P" snapshots > "$TMPD/list"
	[ "$(grep -c customer-ledger.sql "$TMPD/list")" = 3 ]
	[ "$(gets data)" = 3 ]
	[ "$(awk '$1 == "GET" && $2 ~ "/prod/data/" && $4 > 1' "$TMPD/rules.inflight" | wc -l)" -ge 1 ] ||
		{ cat "$TMPD/rules.inflight"; false; }
	: > "$TMPD/rules"
	: > "$TMPD/rules.log"
	XDG_CACHE_HOME="$TMPD/cache-c" kbv -r "$P" snapshots > /dev/null
	[ "$(gets data)" = 0 ]
	meta=$(echo "$TMPD"/cache-b/kbvault/*/meta)
	[ "$(ls "$meta/manifests" | wc -l)" = 3 ]
	[ "$(ls "$meta/entries" | wc -l)" = 3 ]
	[ "$(ls "$meta/trees" | wc -l)" -ge 3 ]
	# sealed: no stream name, no chunk id list in the clear
	! grep -rq customer-ledger "$meta" || { echo "a stream name is readable in the cache"; false; }
	# damaged entries are not believed: read again from the bucket, and replaced
	for f in "$meta"/*/*; do
		python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-5]^=1; open(p,"wb").write(b)' "$f"
	done
	: > "$TMPD/rules.log"
	[ "$(kbv -r "$P" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3 ]
	kbv -r "$P" restore latest --stdout | cmp - "$TMPD/c.bin"
	[ "$(gets snapshots)" = 3 ]
	kbv -r "$P" gc --keep-last 3 --dry-run > /dev/null # the older two's tables and trees
	: > "$TMPD/rules.log"
	kbv -r "$P" gc --keep-last 3 --dry-run > /dev/null
	[ "$(gets snapshots)" = 0 ]
	[ "$(gets data)" = 0 ]
	# check proves what the bucket holds, whatever the cache says
	run kbv -r "$P" check
	[ "$status" -eq 0 ]
	[ "$(gets snapshots)" = 3 ]
	# forgotten snapshots leave the cache; gc drops the trees no kept snapshot needs
	ntrees=$(ls "$meta/trees" | wc -l)
	kbv -r "$P" gc -q --keep-last 1
	[ "$(ls "$meta/manifests" | wc -l)" = 1 ]
	[ "$(ls "$meta/entries" | wc -l)" = 1 ]
	[ "$(ls "$meta/trees" | wc -l)" -lt "$ntrees" ]
	kbv -r "$P" restore latest --stdout | cmp - "$TMPD/c.bin"
	# the first host's cache still names the forgotten snapshots: its listing drops them
	export XDG_CACHE_HOME="$TMPD/cache-a"
	[ "$(kbv -r "$P" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]
	[ "$(ls "$TMPD"/cache-a/kbvault/*/meta/manifests | wc -l)" = 1 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
}

@test "s3: records (gc's, drills') are read from the bucket once per host, side by side, and listed once by status; a damaged or changed one is read from the bucket; one gone leaves the cache" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/b.bin"
	for _ in 1 2 3; do kbv gc -q --keep-all; done
	[ "$(s3_keys prod/records/ | wc -l)" = 3 ]
	s3proxy_start
	P="s3:$PROXY/$BUCKET/prod"
	# the host that wrote them reads none of them; status lists them once
	: > "$TMPD/rules.log"
	run kbv -r "$P" status
	[ "$status" -eq 0 ]
	[[ "$output" == "KBVAULT OK"* ]]
	[ "$(gets records)" = 0 ]
	[ "$(grep -c "prefix=prod%2Frecords%2F" "$TMPD/rules.log")" = 1 ]
	# another host reads each once, side by side (each GET held 300 ms: they overlap),
	# then from its cache
	export XDG_CACHE_HOME="$TMPD/cache-b"
	: > "$TMPD/rules.log"
	: > "$TMPD/rules.inflight"
	echo "lag /prod/records/ 300" > "$TMPD/rules"
	run kbv -r "$P" status
	[ "$status" -eq 0 ]
	[ "$(gets records)" = 3 ]
	[ "$(awk '$1 == "GET" && $2 ~ "/prod/records/" && $4 > 1' "$TMPD/rules.inflight" | wc -l)" -ge 1 ] ||
		{ cat "$TMPD/rules.inflight"; false; }
	: > "$TMPD/rules"
	: > "$TMPD/rules.log"
	kbv -r "$P" status > /dev/null
	kbv -r "$P" stats > /dev/null
	[ "$(gets records)" = 0 ]
	meta=$(echo "$TMPD"/cache-b/kbvault/*/meta)
	[ "$(ls "$meta/records" | wc -l)" = 3 ]
	# a damaged entry is read again from the bucket
	f=$(ls "$meta"/records/* | head -1)
	python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-5]^=1; open(p,"wb").write(b)' "$f"
	: > "$TMPD/rules.log"
	kbv -r "$P" status > /dev/null
	[ "$(gets records)" = 1 ]
	# a record changed in the bucket (another size) is read from there, and its damage named
	name=$(s3_keys prod/records/ | head -1)
	head -c 100 /dev/urandom > "$TMPD/junk"
	s3_put "$name" "$TMPD/junk"
	run kbv -r "$P" status
	[ "$status" -eq 3 ]
	[[ "$output" == *"record '"*"${name##*/}' is damaged"* ]] || { echo "$output"; false; }
	# a record gone from the bucket leaves the cache
	s3_del "$name"
	kbv -r "$P" status > /dev/null
	[ "$(ls "$meta/records" | wc -l)" = 2 ]
	[ ! -e "$meta/records/${name##*/}" ]
}

# `restore latest --stream X` walks back from the newest snapshot to the first that holds X.
# The newest's entry table is read alone (it usually holds X); past it the older tables are
# read side by side, not one round trip each.
@test "s3: restore latest --stream past snapshots that lack it: the newest entry table read alone, the older ones side by side" {
	s3_init
	kbv snapshot -q --stdin x < "$TMPD/b.bin"
	for i in 1 2 3 4 5; do
		head -c 20000 /dev/urandom > "$TMPD/y$i"
		kbv snapshot -q --stdin y < "$TMPD/y$i"
	done
	s3proxy_start
	echo "lag /prod/data/ 300" > "$TMPD/rules"
	: > "$TMPD/rules.times"
	XDG_CACHE_HOME="$TMPD/cache-new" kbv -r "s3:$PROXY/$BUCKET/prod" restore latest --stream x --stdout |
		cmp - "$TMPD/b.bin"
	XDG_CACHE_HOME="$TMPD/cache-new" kbv -r "s3:$PROXY/$BUCKET/prod" restore latest --stream y --stdout |
		cmp - "$TMPD/y5"
	python3 - "$TMPD/rules.times" <<'PY' || { cat "$TMPD/rules.times"; false; }
import sys
gets = [(float(t), p) for t, m, p in (l.split() for l in open(sys.argv[1])) if m == "GET" and "/prod/data/" in p]
gets.sort()
print(gets)
first, second = gets[0], gets[1]
# the newest's table alone: the next read of a pack waited for it (each held 300 ms)
assert second[0] - first[0] > 0.25, "the newest's table was not read alone"
# then the older ones (four without x, and x's) side by side: three packs or more at once
together = {p.split("?")[0] for t, p in gets[1:] if t - second[0] < 0.15}
assert len(together) >= 3, f"the older tables were read one after another: {together}"
PY
}

@test "s3: a restore's workers share their read windows: no range of a pack is fetched twice" {
	s3_init
	head -c 30000000 /dev/urandom > "$TMPD/big.bin"
	kbv snapshot -q --stdin big < "$TMPD/big.bin"
	s3proxy_start
	kbv -r "s3:$PROXY/$BUCKET/prod" restore latest --stdout | cmp - "$TMPD/big.bin"
	grep '^GET .*\.pack bytes=' "$TMPD/rules.log" | sort | uniq -d > "$TMPD/twice"
	[ ! -s "$TMPD/twice" ] || { cat "$TMPD/twice"; false; }
	# 30 MB in 2 MiB windows: about 15 GETs, not one per worker and window
	[ "$(grep -c '^GET .*\.pack bytes=' "$TMPD/rules.log")" -le 20 ]
}

@test "s3: a tree of 4,000 small files is restored from a few read windows read ahead, not a request per file; no range twice; a busy server; read ahead goes on into the next pack" {
	s3_init
	for d in 1 2 3 4; do
		mkdir -p "$TMPD/tree/d$d"
		head -c 3000000 /dev/urandom | split -b 3000 -a 3 - "$TMPD/tree/d$d/f"
	done
	(cd "$TMPD" && kbv snapshot -q tree)
	s3proxy_start
	echo "lag .pack 300" > "$TMPD/rules" # each pack GET takes 0.3 s: those sent together overlap
	kbv -r "s3:$PROXY/$BUCKET/prod" restore -q latest --target "$TMPD/out"
	diff -r "$TMPD/tree" "$TMPD/out/tree"
	grep '^GET .*\.pack bytes=' "$TMPD/rules.log" | sort | uniq -d > "$TMPD/twice"
	[ ! -s "$TMPD/twice" ] || { cat "$TMPD/twice"; false; }
	# 12 MB of packs in 2 MiB windows: a few GETs (a planned read per file was 4,000), and
	# read ahead fetches no more than the packs hold
	[ "$(grep -c '^GET .*\.pack bytes=' "$TMPD/rules.log")" -le 12 ]
	# one reading thread walks the tree: pack GETs that overlap are its windows read ahead
	most=$(grep '^GET .*\.pack bytes=' "$TMPD/rules.inflight" | awk '$4 > m { m = $4 } END { print m + 0 }')
	[ "$most" -ge 3 ] || { cat "$TMPD/rules.inflight"; false; }
	# packs of 3 MiB (two windows each, so nothing is read ahead within one): a pass that
	# read one pack to its end reads the next one's second window beside its first
	mv "$TMPD/tree" "$TMPD/tree1"
	for d in 1 2 3 4; do
		mkdir -p "$TMPD/tree/e$d"
		head -c 3000000 /dev/urandom | split -b 3000 -a 3 - "$TMPD/tree/e$d/f"
	done
	(cd "$TMPD" && KBVAULT_PACK_SIZE=3145728 kbv snapshot -q tree)
	: > "$TMPD/rules.inflight"
	kbv -r "s3:$PROXY/$BUCKET/prod" restore -q latest --target "$TMPD/out3"
	diff -r "$TMPD/tree" "$TMPD/out3/tree"
	[ "$(grep -c '^GET .*\.pack bytes=.* [2-9]$' "$TMPD/rules.inflight")" -ge 1 ] ||
		{ cat "$TMPD/rules.inflight"; false; }
	# a read ahead that meets a busy server is dropped, and the reader's own request retries
	echo "every 3 503" > "$TMPD/rules"
	kbv -r "s3:$PROXY/$BUCKET/prod" restore -q latest --target "$TMPD/out2"
	diff -r "$TMPD/tree" "$TMPD/out2/tree"
	# three packs of a little over 12 MiB (seven windows, the last from byte 12582912 on):
	# once the reader went on from one pack to the next in the order they were written, the
	# windows read ahead go on into the pack after it before the reader has finished this
	# one. Each pack's last window is held 2 s more, so the reader cannot finish the second
	# pack before it comes: the third pack's first GET must arrive while another GET is in
	# flight (the build before asked for the third pack only when the reader got there, the
	# second read to its end: its first GET arrives alone)
	mv "$TMPD/tree" "$TMPD/tree3"
	for d in 1 2 3; do
		mkdir -p "$TMPD/tree/g$d"
		head -c 12000000 /dev/urandom | split -b 3000 -a 4 - "$TMPD/tree/g$d/f"
	done
	(cd "$TMPD" && KBVAULT_PACK_SIZE=12582912 kbv snapshot -q tree)
	printf 'lag .pack 300\nlag bytes=12582912- 2000\n' > "$TMPD/rules"
	: > "$TMPD/rules.inflight"
	kbv -r "s3:$PROXY/$BUCKET/prod" restore -q latest --target "$TMPD/out4"
	diff -r "$TMPD/tree" "$TMPD/out4/tree"
	third=$(awk '$1 == "GET" && $2 ~ /\.pack$/ && !($2 in seen) { seen[$2] = 1; if (++k == 3) { print $4; exit } }' \
		"$TMPD/rules.inflight")
	[ "${third:-0}" -ge 2 ] || { cat "$TMPD/rules.inflight"; false; }
}

@test "s3: the golden bucket (format/index.md index objects version 1) builds an empty cache from its index objects and restores byte for byte" {
	G="$BATS_TEST_DIRNAME/../golden/v1-bucket"
	export KBVAULT_PASSWORD=kbvault-golden
	unset KBVAULT_PASSWORD_FILE
	# an empty bucket (made by a throwaway repository), then the golden objects under prod/
	KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/scratch" kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	(cd "$G/objects" && find . -type f | sed 's|^\./||') | while read -r f; do
		s3_put "prod/$f" "$G/objects/$f"
	done
	run kbv -v restore latest --stream one.txt --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 packs indexed from 2 index objects, 0 from pack trailers"* ]]
	[ "$(kbv restore latest --stream one.txt --stdout | b2sum | cut -d' ' -f1)" = "$(cat "$G/expected-one.b2")" ]
	[ "$(kbv restore latest --stream two.txt --stdout | b2sum | cut -d' ' -f1)" = "$(cat "$G/expected-two.b2")" ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots: ok, 0 problems"* ]]
}

@test "s3: listings page through continuation tokens (pages of 2 keys): snapshots, cache refresh, check, gc; deletions in batches of 2 sent at once" {
	s3_init
	for i in 1 2 3 4 5 6 7; do
		head -c 100000 /dev/urandom > "$TMPD/s$i"
		kbv snapshot -q --stdin "s$i" < "$TMPD/s$i"
	done
	[ "$(s3_keys prod/data/ | wc -l)" = 7 ]
	export KBVAULT_S3_LIST_PAGE=2
	[ "$(snap_count)" = 7 ]
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv -v check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"7 packs indexed"* ]]
	[[ "$output" == *"7 packs"*"7 snapshots: ok, 0 problems"* ]]
	kbv forget -q "$(snap_id 1)"
	kbv gc -q --keep-all
	[ "$(s3_keys prod/data/ | wc -l)" = 6 ]
	for i in 2 3 4 5 6 7; do
		XDG_CACHE_HOME="$TMPD/cache-b" kbv restore latest --stream "s$i" --stdout | cmp - "$TMPD/s$i"
	done
	# five packs go in three DeleteObjects of at most 2 keys, sent by parallel threads
	for i in 1 2 3 4 5; do kbv forget -q "$(snap_id 1)"; done
	KBVAULT_S3_DELETE_BATCH=2 kbv gc -q --keep-all
	[ "$(s3_keys prod/data/ | wc -l)" = 1 ]
	[ "$(snap_count)" = 1 ]
	kbv restore latest --stdout | cmp - "$TMPD/s7"
	XDG_CACHE_HOME="$TMPD/cache-b" run kbv check --read-data
	[ "$status" -eq 0 ]
}

@test "s3: a wrong secret, a missing bucket, no credentials and a server that does not answer: clear errors, no secret in any output" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	secret=$AWS_SECRET_ACCESS_KEY
	AWS_SECRET_ACCESS_KEY=not-the-secret-at-all run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"403"*"check the access key and secret"* ]]
	[[ "$output" != *"not-the-secret-at-all"* ]]
	run kbv -r "s3:$S3_ENDPOINT/no-such-bucket-$RANDOM" snapshots
	[ "$status" -eq 3 ]
	[[ "$output" == *"no kbvault repository"*"kbvault init"* ]]
	AWS_SECRET_ACCESS_KEY= run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"no S3 credentials"* ]]
	run kbv -r "s3:http://127.0.0.1:1/$BUCKET" snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"Couldn't connect"*"attempts"* ]]
	# A child process never sees the secret: a command stream dumps its environment.
	kbv snapshot -q --command env -- env
	run kbv restore latest --stream env --stdout
	[ "$status" -eq 0 ]
	[[ "$output" == *"AWS_ACCESS_KEY_ID"* ]]
	[[ "$output" != *"$secret"* ]]
	[[ "$output" != *"AWS_SECRET_ACCESS_KEY"* ]]
	# Nor do logs, errors or the status output name it.
	run kbv -v status
	[[ "$output" != *"$secret"* ]]
}

@test "s3: credentials from [repository] s3-credentials-file (AWS format, profiles), region and URL checks" {
	cat > "$TMPD/creds" <<EOF
[default]
aws_access_key_id = WRONG
aws_secret_access_key = WRONG

[backup]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = $AWS_SECRET_ACCESS_KEY
EOF
	cat > "$TMPD/kbvault.conf" <<EOF
[repository]
path = $KBVAULT_REPO
s3-credentials-file = $TMPD/creds
s3-region = us-east-1
EOF
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	unset KBVAULT_REPO
	local id=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	AWS_PROFILE=backup s3_init
	AWS_PROFILE=backup kbv snapshot -q --stdin a < "$TMPD/a.bin"
	AWS_PROFILE=backup kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	run kbv snapshots # [default] holds wrong keys
	[ "$status" -ne 0 ]
	[[ "$output" == *"403"* ]]
	AWS_PROFILE=nobody run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"no profile [nobody]"* ]]
	export AWS_ACCESS_KEY_ID=$id AWS_SECRET_ACCESS_KEY=$secret
	# A bucket outside us-east-1 is created with its region as LocationConstraint: this
	# radosgw serves the region "default" and refuses others, by name.
	AWS_DEFAULT_REGION=eu-west-1 run kbv -r "s3:$S3_ENDPOINT/$BUCKET-eu/r" init -q --kdf-ops 1 --kdf-mem-mib 8
	[ "$status" -ne 0 ]
	[[ "$output" == *"InvalidLocationConstraint (the server does not serve region 'eu-west-1'"* ]]
	AWS_DEFAULT_REGION=default kbv -r "s3:$S3_ENDPOINT/$BUCKET-dflt/r" init -q --kdf-ops 1 --kdf-mem-mib 8
	AWS_DEFAULT_REGION=default kbv -r "s3:$S3_ENDPOINT/$BUCKET-dflt/r" snapshot -q --stdin b < "$TMPD/b.bin"
	AWS_DEFAULT_REGION=default kbv -r "s3:$S3_ENDPOINT/$BUCKET-dflt/r" restore latest --stdout | cmp - "$TMPD/b.bin"
	for bad in "s3:ftp://h/b" "s3:http://127.0.0.1:1" "s3:http://127.0.0.1:1/BAD_BUCKET" "s3:http://127.0.0.1:1/ab"; do
		run kbv -r "$bad" snapshots
		[ "$status" -eq 2 ] || [ "$status" -eq 1 ]
		[[ "$output" == *"$bad"* ]]
	done
}

@test "s3: failures of the storage mid-snapshot record nothing; the next snapshot works and everything checks clean" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	# Through the fault-injecting backend around S3: the manifest's PUT, a pack's PUT, a listing.
	# New bytes each time: a stream the failed run before stored whole (and an entry table
	# made in the same second) would need no pack, and the pack's fault would never come.
	for spec in commit:snapshot:1 commit:pack:1 list:pack:1; do
		head -c 1000000 /dev/urandom > "$TMPD/b.bin"
		KBVAULT_FAULT=$spec run kbv snapshot -q --stdin b < "$TMPD/b.bin"
		[ "$status" -ne 0 ] || { echo "$spec: $output"; false; }
		[[ "$output" == *"injected fault"* ]]
		[ "$(snap_count)" = 1 ]
	done
	# The server gone mid-snapshot (radosgw killed while a big stream is being sent): the
	# stream comes through a pipe, its second half only after the server is gone, so the
	# snapshot cannot have ended before (a fast machine sent 40 MB in less than a sleep).
	head -c 40000000 /dev/urandom > "$TMPD/big.bin"
	mkfifo "$TMPD/pipe"
	kbv snapshot -q --stdin big < "$TMPD/pipe" 2> "$TMPD/err" &
	pid=$!
	exec 5> "$TMPD/pipe"
	head -c 20000000 "$TMPD/big.bin" >&5 || true
	sleep 0.5 # a pack or two on their way up
	ceph_rgw_stop
	tail -c +20000001 "$TMPD/big.bin" >&5 2> /dev/null || true # it may have failed already
	exec 5>&-
	st=0
	wait "$pid" || st=$?
	ceph_rgw_start
	[ "$st" -ne 0 ]
	grep -q "s3 " "$TMPD/err"
	[ "$(snap_count)" = 1 ]
	kbv snapshot -q --stdin b < "$TMPD/b.bin"
	[ "$(snap_count)" = 2 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	kbv restore latest --stream b --stdout | cmp - "$TMPD/b.bin"
	kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/a.bin"
}

@test "s3: a server answering 503 SlowDown and 500, resetting connections and cutting uploads: retried; when it persists, a clear error and nothing recorded" {
	s3proxy_start
	export KBVAULT_REPO="s3:$PROXY/$BUCKET/prod"
	s3_init
	printf 'every 3 503\nevery 5 reset\nevery 7 cut\nevery 11 500\n' > "$TMPD/rules"
	run kbv -v snapshot --stdin a < "$TMPD/a.bin"
	[ "$status" -eq 0 ]
	retries=$(printf '%s\n' "$output" | sed -n 's/.*DELETE (\([0-9]*\) of them retries).*/\1/p')
	[ "$retries" -ge 3 ]
	kbv snapshot -q --stdin b < "$TMPD/b.bin"
	kbv restore latest --stream b --stdout | cmp - "$TMPD/b.bin"
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots: ok, 0 problems"* ]]
	all="$output"
	# A server that keeps answering 503: a bounded number of tries, then one clear line.
	echo 'always 503' > "$TMPD/rules"
	run kbv snapshot -q --stdin c < "$TMPD/a.bin"
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 GET s3:$PROXY/$BUCKET/prod/config: HTTP 503"*", still after 6 attempts"* ]]
	all="$all$output"
	# The same from the middle of a snapshot: its packs' PUTs answered 503 SlowDown.
	echo 'PUT 503 SlowDown' > "$TMPD/rules"
	run kbv snapshot -q --stdin c < "$TMPD/a.bin"
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 PUT s3:$PROXY/$BUCKET/prod/data/"*": HTTP 503 SlowDown, still after 6 attempts"* ]]
	all="$all$output"
	# A full quota: not retried, the server's code named, nothing recorded.
	echo 'PUT 403 QuotaExceeded' > "$TMPD/rules"
	head -c 100000 /dev/urandom > "$TMPD/c.bin"
	run kbv -v snapshot --stdin c < "$TMPD/c.bin"
	[ "$status" -ne 0 ]
	[[ "$output" == *"s3 PUT s3:$PROXY/$BUCKET/prod/"*"HTTP 403 QuotaExceeded"* ]]
	[[ "$output" == *"GET, 1 PUT, "*"(0 of them retries)"* ]]
	all="$all$output"
	# A clock too far off: said so.
	echo 'GET 403 RequestTimeTooSkewed' > "$TMPD/rules"
	run kbv snapshots
	[ "$status" -ne 0 ]
	[[ "$output" == *"RequestTimeTooSkewed (this machine's clock is off"* ]]
	all="$all$output"
	: > "$TMPD/rules"
	[ "$(snap_count)" = 2 ]
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"2 snapshots: ok, 0 problems"* ]]
	kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/a.bin"
	[[ "$all" != *"$AWS_SECRET_ACCESS_KEY"* ]]
}

@test "s3: kill -9 during snapshots and gc leaves every committed snapshot restorable" {
	s3_init
	head -c 20000000 /dev/urandom > "$TMPD/big.bin"
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	for delay in 0.3 0.6 1.0; do
		"$KBVAULT" snapshot -q --stdin big < "$TMPD/big.bin" & # the binary itself, not the kbv function
		pid=$!
		sleep "$delay"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	"$KBVAULT" gc -q --keep-all &
	pid=$!
	sleep 0.2
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	run kbv check --read-data
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	kbv restore "$(snap_id 1)" --stdout | cmp - "$TMPD/a.bin"
	n=$(snap_count)
	for i in $(seq 2 "$n"); do
		kbv restore "$(snap_id "$i")" --stdout | cmp - "$TMPD/big.bin"
	done
	kbv gc -q --keep-all
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" == *"0 problems"* ]]
}

@test "s3: key add, passwd and remove on object storage; the old password is refused afterwards" {
	s3_init
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	printf 'second password\n' > "$TMPD/pw2"
	printf 'third password\n' > "$TMPD/pw3"
	chmod 600 "$TMPD/pw2" "$TMPD/pw3"
	kbv key add -q --new-password-file "$TMPD/pw2"
	[ "$(s3_keys prod/keys/ | wc -l)" = 1 ]
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv restore latest --stdout | cmp - "$TMPD/a.bin"
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 kbv key passwd -q --new-password-file "$TMPD/pw3"
	KBVAULT_PASSWORD_FILE=$TMPD/pw2 run kbv snapshots
	[ "$status" -eq 4 ]
	kbv snapshots > /dev/null # `key` (init's) still opens it
	run kbv key remove key # the key in use
	[ "$status" -eq 2 ]
	[[ "$output" == *"--force"* ]]
	KBVAULT_PASSWORD_FILE=$TMPD/pw3 kbv key remove -q key
	[ "$(s3_keys prod/ | grep -c '^prod/key$' || true)" = 0 ]
	run kbv snapshots
	[ "$status" -eq 4 ]
	KBVAULT_PASSWORD_FILE=$TMPD/pw3 kbv restore latest --stdout | cmp - "$TMPD/a.bin"
}

@test "s3: copy local -> S3 -> another local: every snapshot restores identically; a second copy transfers nothing" {
	export KBVAULT_REPO_S3=$KBVAULT_REPO
	export KBVAULT_REPO=$TMPD/local-a
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin b --tag t < "$TMPD/b.bin"
	cat "$TMPD/a.bin" "$TMPD/b.bin" | kbv snapshot -q --stdin ab
	KBVAULT_REPO=$KBVAULT_REPO_S3 kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	run kbv -r "$KBVAULT_REPO_S3" copy --from-repo "$TMPD/local-a" --from-password-file "$TMPD/pw"
	[ "$status" -eq 0 ]
	[[ "$output" == *"3 snapshots copied"* ]]
	objects=$(s3_keys prod/ | sort)
	run kbv -r "$KBVAULT_REPO_S3" copy --from-repo "$TMPD/local-a" --from-password-file "$TMPD/pw"
	[ "$status" -eq 0 ]
	[[ "$output" == *"0 snapshots copied, 3 already there"* ]]
	[ "$(s3_keys prod/ | sort)" = "$objects" ]
	KBVAULT_REPO=$TMPD/local-b kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	kbv -r "$TMPD/local-b" copy -q --from-repo "$KBVAULT_REPO_S3" --from-password-file "$TMPD/pw"
	strip() { python3 -c 'import json,sys; print([(s["time"], s["host"], s["tags"], [(x["name"], x.get("xxh3_128", x.get("blake2b_256"))) for x in s["streams"]]) for s in json.load(sys.stdin)])'; }
	[ "$(kbv -r "$TMPD/local-b" snapshots --json | strip)" = "$(kbv snapshots --json | strip)" ]
	kbv -r "$TMPD/local-b" restore latest --stream ab --stdout | cmp - <(cat "$TMPD/a.bin" "$TMPD/b.bin")
	kbv -r "$TMPD/local-b" restore latest --stream b --stdout | cmp - "$TMPD/b.bin"
	kbv -r "$TMPD/local-b" check --read-data
	kbv -r "$KBVAULT_REPO_S3" check --read-data
}

@test "s3: snapshots running side by side on one host, then gc: nothing indexed twice, nothing lost" {
	# Each process refreshes the cache when it opens the repository while the others upload
	# and index packs: a pack indexed twice once made gc refuse and check report damage.
	s3_init
	head -c 20000000 /dev/urandom > "$TMPD/big.bin"
	for round in 1 2 3; do
		pids=
		for i in 1 2 3; do
			"$KBVAULT" snapshot -q --stdin "big$i" < "$TMPD/big.bin" &
			pids="$pids $!"
			sleep 0.3
		done
		for p in $pids; do wait "$p"; done
		kbv gc -q --keep-all
		run kbv check --read-data
		[ "$status" -eq 0 ] || { echo "round $round: $output"; false; }
	done
	[ "$(snap_count)" = 9 ]
	for i in 1 2 3; do kbv restore latest --stream "big$i" --stdout | cmp - "$TMPD/big.bin"; done
}

@test "s3: kill -9 during a copy into the bucket; the next copy completes and everything restores" {
	export KBVAULT_REPO_S3=$KBVAULT_REPO
	export KBVAULT_REPO=$TMPD/local-a
	kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	head -c 20000000 /dev/urandom > "$TMPD/big.bin"
	kbv snapshot -q --stdin a < "$TMPD/a.bin"
	kbv snapshot -q --stdin big < "$TMPD/big.bin"
	KBVAULT_REPO=$KBVAULT_REPO_S3 kbv init -q --kdf-ops 1 --kdf-mem-mib 8
	for delay in 0.4 0.8 1.2; do
		"$KBVAULT" -r "$KBVAULT_REPO_S3" copy -q --from-repo "$TMPD/local-a" --from-password-file "$TMPD/pw" &
		pid=$!
		sleep "$delay"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		run kbv -r "$KBVAULT_REPO_S3" check --read-data
		[ "$status" -eq 0 ] || { echo "$output"; false; }
	done
	kbv -r "$KBVAULT_REPO_S3" copy -q --from-repo "$TMPD/local-a" --from-password-file "$TMPD/pw"
	[ "$(KBVAULT_REPO=$KBVAULT_REPO_S3 snap_count)" = 2 ]
	kbv -r "$KBVAULT_REPO_S3" restore latest --stream big --stdout | cmp - "$TMPD/big.bin"
	kbv -r "$KBVAULT_REPO_S3" restore latest --stream a --stdout | cmp - "$TMPD/a.bin"
}
