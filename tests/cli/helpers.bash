# Shared set-up for the CLI tests: a scratch directory, a fast-KDF repository, helpers.
# KBVAULT (the binary) and GENDUMP (the dump generator) come from the Makefile.
#
# The core suites (basic, crash, gc, badinput, pitr) run twice in make test: on a
# directory, and with KBV_TEST_BACKEND=s3 against the S3 server that scripts/run-tests.sh
# (or, by hand, tests/cli/with-ceph.sh) started (a bucket per test, the index cache in the
# test's directory). The repo_* helpers below look at and
# damage the repository's objects on either; where the backends differ by design a test
# asks on_s3 and says why.
load s3obj

on_s3() { [ "${KBV_TEST_BACKEND:-local}" = s3 ]; }

setup_repo() {
	export TMPD="$BATS_TEST_TMPDIR"
	export KBVAULT_REPO="$TMPD/repo"
	if on_s3; then
		[ -n "${S3_ENDPOINT:-}" ] || { echo "KBV_TEST_BACKEND=s3 needs S3_ENDPOINT (tests/cli/with-ceph.sh)" >&2; return 1; }
		BUCKET="kbv-$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER-$RANDOM"
		export KBVAULT_REPO="s3:$S3_ENDPOINT/$BUCKET/repo" XDG_CACHE_HOME="$TMPD/cache"
	fi
	use_password_file
	"$KBVAULT" init -q --kdf-ops 1 --kdf-mem-mib 8 "$@"
}

# The test's password, in a file of mode 600 that KBVAULT_PASSWORD_FILE names.
use_password_file() {
	printf 'correct horse battery staple\n' > "$TMPD/pw"
	chmod 600 "$TMPD/pw"
	export KBVAULT_PASSWORD_FILE="$TMPD/pw"
	unset KBVAULT_PASSWORD
}

kbv() { "$KBVAULT" "$@"; }

# on HOST CMD...: run kbvault as another host of a shared repository (its own cache)
on() { local h=$1; shift; XDG_CACHE_HOME="$TMPD/cache-$h" kbv "$@"; }

# The soak of many hosts on one repository (KBVAULT_REPO: a bucket or a shared
# directory): three writer hosts snapshot evolving streams (a shared dump that changes
# each round, plus bytes of their own) while a fourth runs gc with a keep-last policy and
# the default delay; most rounds kill -9 one of the four at a random moment. After every
# round check --read-data passes and every kept snapshot restores byte for byte. 3 rounds,
# or 30 with KBV_SOAK=1 (make soak). Reports rounds, kills and 0 lost on fd 3.
soak_hosts() {
	local rounds=3 kills=0 refused=0 committed=0 r h i st victim pids
	[ -z "${KBV_SOAK:-}" ] || rounds=30
	export KBVAULT_GC_LOCK_STALE=2 # a killed gc's lock goes stale fast
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
			# 0 done, 6 refused to commit beside gc (writers), 137 killed: anything else fails
			if [ "$st" -ne 0 ] && [ "$st" -ne 6 ] && [ "$st" -ne 137 ]; then
				cat "$TMPD"/out-*-r"$r"
				echo "round $r: process $i exited $st"
				return 1
			fi
			[ "$i" -eq 3 ] || { [ "$st" -ne 6 ] || refused=$((refused + 1)); [ "$st" -ne 0 ] || committed=$((committed + 1)); }
		done
		run on g check --read-data
		[ "$status" -eq 0 ] || { echo "round $r: $output"; return 1; }
		on g snapshots --json > "$TMPD/list.json"
		python3 -c '
import json, sys
for s in json.load(open(sys.argv[1])):
    print(s["id"], s["host"], s["tags"][0])' "$TMPD/list.json" > "$TMPD/kept"
		while read -r id host tag; do
			on v restore "$id" --stdout | cmp - "$TMPD/in-$host-$tag" || { echo "round $r: snapshot $id ($host $tag) differs"; return 1; }
		done < "$TMPD/kept"
	done
	echo "# $rounds rounds, $kills kill -9, $committed snapshots committed, $refused refused beside gc, 0 lost" >&3
}

# The n-th snapshot id (1 = oldest) from the JSON listing.
# Wait until FILE exists (a kbvault paused by KBVAULT_FAULT=...:pause says so), at most 60 s.
wait_file() {
	local i
	for i in $(seq 1 600); do [ -e "$1" ] && return 0; sleep 0.1; done
	echo "$1 never appeared" >&2
	return 1
}

snap_id() { kbv snapshots --json | python3 -c "import json,sys; print(json.load(sys.stdin)[$1-1]['id'])"; }
snap_count() { kbv snapshots --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }

# A repository object is named by its path: a file for a local repository, "s3:KEY" (the
# key below the bucket) on S3.
# repo_ls DIR: the names in snapshots/, keys/, data/ (packs: their ids), ...
repo_ls() {
	if on_s3; then
		s3_keys "repo/$1/" | sed 's|.*/||; s|\.pack$||' | sort
	else
		find "$KBVAULT_REPO/$1" -type f ! -name '.*' -printf '%f\n' 2>/dev/null | sed 's|\.pack$||' | sort
	fi
}
# repo_obj DIR NAME: the object's path ("snapshots" ID, "data" PACKID, "" config).
repo_obj() {
	local rel=$2
	[ -z "$1" ] || rel=$1/$2
	[ "$1" != data ] || rel=data/${2:0:2}/$2.pack
	if on_s3; then echo "s3:repo/$rel"; else echo "$KBVAULT_REPO/$rel"; fi
}
# Bytes of the objects under DIR (data: the packs).
repo_bytes() {
	if on_s3; then s3_bytes "repo/$1/"; else du -sb "$KBVAULT_REPO/$1" | cut -f1; fi
}
# The index: on a directory the repository's own; on S3 the local cache of it.
repo_index_dir() {
	if on_s3; then echo "$XDG_CACHE_HOME/kbvault"; else echo "$KBVAULT_REPO/index"; fi
}

# Edit an object in place: obj_edit OBJ CMD... runs CMD with a local file holding it.
obj_edit() {
	local o=$1
	shift
	if [[ "$o" == s3:* ]]; then
		local f="$TMPD/obj.$RANDOM"
		s3_get "${o#s3:}" "$f"
		"$@" "$f"
		s3_put "${o#s3:}" "$f"
		rm -f "$f"
	else
		"$@" "$o"
	fi
}
obj_size() { if [[ "$1" == s3:* ]]; then s3_curl -I -H "x-amz-content-sha256: $S3_EMPTY_SHA" "$S3_ENDPOINT/$BUCKET/${1#s3:}" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p'; else stat -c %s "$1"; fi; }
obj_rm() { if [[ "$1" == s3:* ]]; then s3_del "${1#s3:}"; else rm "$1"; fi; }
# obj_truncate OBJ SIZE (truncate(1)'s sizes: -100 cuts 100 bytes)
obj_truncate() { obj_edit "$1" truncate -s "$2"; }
obj_rename() { # OBJ NEWOBJ
	if [[ "$1" == s3:* ]]; then
		s3_get "${1#s3:}" "$TMPD/obj.mv" && s3_put "${2#s3:}" "$TMPD/obj.mv" && s3_del "${1#s3:}"
	else
		mv "$1" "$2"
	fi
}

# A pack of the repository (the largest, so it holds data).
a_pack() {
	if on_s3; then
		s3_listing repo/data/ | python3 -c '
import re, sys
x = sys.stdin.read()
c = re.findall(r"<Key>([^<]*)</Key>.*?<Size>(\d+)</Size>", x, re.S)
print("s3:" + max(c, key=lambda k: int(k[1]))[0])'
	else
		find "$KBVAULT_REPO/data" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2
	fi
}

# Flip one byte at an offset of a file (or of a repository object: s3:KEY).
flip_byte() { obj_edit "$1" flip_byte_file "$2"; }
flip_byte_file() {
	local off=$1 f=$2
	local b
	b=$(dd if="$f" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 0x55) & 255)))" | dd of="$f" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
}
