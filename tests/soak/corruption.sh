#!/bin/bash
# Corruption sweep (make soak): every file of a repository, in turn, gets a byte flipped
# (at its start, middle and end), is cut to half, cut to nothing, or deleted; then every
# reading command runs on the damaged copy. What must hold, and is counted:
#   - no command crashes (killed by a signal) or hangs (60 s);
#   - no restore exits 0 with a wrong byte;
#   - every snapshot that does not need the damaged file still restores byte for byte
#     (which snapshots need which file is measured first by deleting it alone).
# Usage: KBVAULT=build/kbvault tests/soak/corruption.sh   (prints one line per failure
# and a summary; exit 1 when anything failed)
set -uo pipefail
K=${KBVAULT:?KBVAULT must name the kbvault binary}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export KBVAULT_PASSWORD=corruption-sweep
unset KBVAULT_PASSWORD_FILE KBVAULT_CONFIG
R="$W/pristine"
"$K" init -q -r "$R" --kdf-ops 1 --kdf-mem-mib 8
mkdir -p "$W/files/sub"
head -c 700000 /dev/urandom > "$W/s1"
{ seq 1 60000; head -c 200000 /dev/urandom; } > "$W/s2"
seq 1 30000 > "$W/files/a.txt"
head -c 50000 /dev/urandom > "$W/files/sub/b.bin"
"$K" -r "$R" snapshot -q --stdin s1 < "$W/s1"
"$K" -r "$R" snapshot -q --stdin s2 < "$W/s2"
(cd "$W" && "$K" -r "$R" snapshot -q files)
"$K" -r "$R" snapshot -q --command s3 -- sh -c "cat '$W/s1'; seq 1 1000"
ids=$("$K" -r "$R" snapshots --json | python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(sys.stdin)))')
# expected: each snapshot restored whole, hashed file by file
declare -A want
for id in $ids; do
	"$K" -r "$R" restore "$id" --target "$W/want-$id" -q || { echo "pristine restore of $id failed"; exit 1; }
	want[$id]=$(cd "$W/want-$id" && find . -type f -print0 | sort -z | xargs -0 b2sum | b2sum)
done

cases=0 failed_cases=0 commands=0 failures=0 crashes=0 hangs=0 wrong=0 lost=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run ARGS...: the command on the damaged copy; crashes and hangs are failures.
run() {
	commands=$((commands + 1))
	timeout 60 "$K" -r "$W/work" "$@" > "$W/out" 2> "$W/err"
	local rc=$?
	if [ $rc = 124 ]; then hangs=$((hangs + 1)); fail "$case: '$*' hangs"; fi
	if [ $rc -gt 128 ] && [ $rc != 124 ]; then crashes=$((crashes + 1)); fail "$case: '$*' killed by signal $((rc - 128))"; fi
	return $rc
}

# restored_ok ID: restore the snapshot into a fresh directory; 0 when it restored and is
# right, 1 when it failed cleanly; a wrong byte with exit 0 is a failure.
restored_ok() {
	rm -rf "$W/got"
	if run restore "$1" --target "$W/got" -q; then
		got=$(cd "$W/got" && find . -type f -print0 | sort -z | xargs -0 b2sum | b2sum)
		if [ "$got" != "${want[$1]}" ]; then wrong=$((wrong + 1)); fail "$case: restore $1 exit 0 with wrong bytes"; fi
		return 0
	fi
	return 1
}

files=$(cd "$R" && find . -type f ! -name lock ! -name lock.mdb | sed 's|^\./||' | sort)
# Which snapshots need each file: delete it alone and see which restores fail.
declare -A needs
for f in $files; do
	rm -rf "$W/work" && cp -a "$R" "$W/work" && rm "$W/work/$f"
	case="measure $f"
	needs[$f]=""
	for id in $ids; do restored_ok "$id" || needs[$f]+=" $id"; done
done

for f in $files; do
	size=$(stat -c %s "$R/$f")
	for m in flip-start flip-middle flip-end half empty delete; do
		rm -rf "$W/work" && cp -a "$R" "$W/work"
		p="$W/work/$f"
		case "$m" in
		flip-*)
			[ "$size" -gt 0 ] || continue
			case "$m" in flip-start) off=$((size > 40 ? 40 : 0)) ;; flip-middle) off=$((size / 2)) ;; flip-end) off=$((size - 1)) ;; esac
			b=$(dd if="$p" bs=1 skip="$off" count=1 2> /dev/null | od -An -tu1 | tr -d ' ')
			printf "$(printf '\\%03o' $(((b ^ 0x55) & 255)))" | dd of="$p" bs=1 seek="$off" count=1 conv=notrunc 2> /dev/null ;;
		half) truncate -s $((size / 2)) "$p" ;;
		empty) truncate -s 0 "$p" ;;
		delete) rm "$p" ;;
		esac
		case="$f $m"
		cases=$((cases + 1))
		before=$failures
		run snapshots
		run check --read-data
		run stats
		run status
		# A manifest damaged must cost only its own snapshot; other damage costs the
		# snapshots that needed the file (measured above) at most.
		for id in $ids; do
			if ! restored_ok "$id"; then
				[[ "${needs[$f]}" == *"$id"* || "$f" == snapshots/"$id" ]] && continue
				# the index is a cache: after repair index every snapshot must come back
				if [[ "$f" == index/* ]]; then
					run repair index > /dev/null
					restored_ok "$id" && continue
				fi
				lost=$((lost + 1))
				fail "$case: snapshot ${id:0:8}, which does not need $f, did not restore: $(tail -1 "$W/err")"
			fi
		done
		[ "$failures" = "$before" ] || failed_cases=$((failed_cases + 1))
	done
done
echo "corruption sweep: $(echo "$files" | wc -w) files x 6 damages = $cases cases, $commands commands;" \
	"crashes $crashes, hangs $hangs, wrong bytes with exit 0: $wrong, intact snapshots lost: $lost"
echo "$((cases - failed_cases)) passed, $failed_cases failed"
[ "$failures" = 0 ]
