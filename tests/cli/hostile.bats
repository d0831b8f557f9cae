#!/usr/bin/env bats
# Restore into hostile places (issue 13): planted symlinks in the target, a target owned by
# someone else, setuid files. Nothing may be written outside the target, and no symlink
# the snapshot did not create is followed.
load helpers

setup() {
	setup_repo
	mkdir -p "$TMPD/src/dir" "$TMPD/outside"
	echo "restored content" > "$TMPD/src/dir/file"
	echo "victim" > "$TMPD/outside/victim"
	chmod 0751 "$TMPD/outside"
	touch -d '2001-01-01 00:00:00' "$TMPD/outside"
	(cd "$TMPD" && kbv snapshot -q src)
}

outside_untouched() {
	[ "$(cat "$TMPD/outside/victim")" = victim ]
	[ "$(stat -c %a "$TMPD/outside")" = 751 ]
	[ "$(stat -c %Y "$TMPD/outside")" = "$(date -d '2001-01-01 00:00:00' +%s)" ]
	[ "$(ls "$TMPD/outside")" = victim ]
}

@test "a symlink planted at a file's name is replaced with --overwrite, never written through" {
	mkdir -p "$TMPD/T/src/dir"
	ln -s "$TMPD/outside/victim" "$TMPD/T/src/dir/file"
	run kbv restore latest --target "$TMPD/T"
	[ "$status" -eq 1 ]
	[[ "$output" == *"'src/dir/file' exists and was left as it is"* ]]
	[[ "$output" == *"restore with --overwrite"* ]]
	outside_untouched
	[ -L "$TMPD/T/src/dir/file" ]
	kbv restore latest --target "$TMPD/T" --overwrite
	outside_untouched
	[ ! -L "$TMPD/T/src/dir/file" ]
	[ "$(cat "$TMPD/T/src/dir/file")" = "restored content" ]
	# no temporary file is left beside it
	[ "$(ls -A "$TMPD/T/src/dir")" = file ]
}

@test "a directory symlink in the target is not followed: no mode, time or file lands outside" {
	mkdir -p "$TMPD/T/src"
	ln -s "$TMPD/outside" "$TMPD/T/src/dir"
	run kbv restore latest --target "$TMPD/T" --overwrite
	[ "$status" -ne 0 ]
	[[ "$output" == *"'src/dir' is a symlink or not a directory in the target; kbvault does not follow it"* ]]
	outside_untouched
}

@test "restore --target: existing files are kept and named unless --overwrite" {
	kbv restore latest --target "$TMPD/T"
	echo "mine" > "$TMPD/T/src/dir/file"
	run kbv restore latest --target "$TMPD/T"
	[ "$status" -eq 1 ]
	[[ "$output" == *"1 entry already existed"* ]]
	[ "$(cat "$TMPD/T/src/dir/file")" = mine ]
	run kbv restore latest --target "$TMPD/T" --json
	[ "$status" -eq 1 ]
	python3 -c "import json,sys; j=json.loads(sys.argv[1].splitlines()[-1] if sys.argv[1].startswith('{') else [l for l in sys.argv[1].splitlines() if l.startswith('{')][0]); assert j['skipped']==1, j" "$output"
	kbv restore latest --target "$TMPD/T" --overwrite
	[ "$(cat "$TMPD/T/src/dir/file")" = "restored content" ]
}

@test "a target owned by a hostile user: links they plant are never followed (as root)" {
	[ "$(id -u)" = 0 ] || skip "needs root to act as another user"
	command -v setpriv > /dev/null || skip "setpriv (util-linux) missing"
	# the hostile user must reach the target: open the way down to it
	d="$TMPD"
	while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
	mkdir -p "$TMPD/T"
	chown nobody "$TMPD/T"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	as_nobody mkdir -p "$TMPD/T/src"
	as_nobody ln -s /etc "$TMPD/T/src/dir"
	run kbv restore latest --target "$TMPD/T" --overwrite
	[ "$status" -ne 0 ]
	[ ! -e /etc/file ]
	as_nobody rm "$TMPD/T/src/dir"
	as_nobody mkdir "$TMPD/T/src/dir"
	as_nobody ln -s "$TMPD/outside/victim" "$TMPD/T/src/dir/file"
	kbv restore latest --target "$TMPD/T" --overwrite
	outside_untouched
	[ "$(cat "$TMPD/T/src/dir/file")" = "restored content" ]
}

@test "a user's setuid file comes back as that user's, never as root's; without its owner, without the bit" {
	[ "$(id -u)" = 0 ] || skip "needs root to own files as another user"
	cp /bin/true "$TMPD/src/tool"
	chown nobody:nogroup "$TMPD/src/tool"
	chmod 6755 "$TMPD/src/tool"
	(cd "$TMPD" && kbv snapshot -q src)
	kbv restore latest --target "$TMPD/T"
	[ "$(stat -c '%U:%G %a' "$TMPD/T/src/tool")" = "nobody:nogroup 6755" ]
	# Restored by a user who cannot give files away: no setuid, no setgid.
	d="$TMPD"
	while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
	cp -a "$KBVAULT_REPO" "$TMPD/repo-nobody"
	chown -R nobody "$TMPD/repo-nobody" "$TMPD/pw"
	mkdir "$TMPD/T2" && chown nobody "$TMPD/T2"
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$KBVAULT" -r "$TMPD/repo-nobody" restore latest --target "$TMPD/T2" -q
	[ "$(stat -c '%U %a' "$TMPD/T2/src/tool")" = "nobody 755" ]
}

@test "children get no kbvault secret and no descriptor of ours; a closed stdin does not hang" {
	export KBVAULT_PASSWORD='s3cret-repository-password'
	unset KBVAULT_PASSWORD_FILE
	kbv init -q -r "$TMPD/r2" --kdf-ops 1 --kdf-mem-mib 8
	kbv -r "$TMPD/r2" snapshot -q --command probe -- sh -c 'env; ls -l /proc/$$/fd'
	kbv -r "$TMPD/r2" restore latest --stdout > "$TMPD/probe"
	! grep -q 's3cret' "$TMPD/probe" || { grep s3cret "$TMPD/probe"; false; }
	! grep -q KBVAULT_PASSWORD "$TMPD/probe"
	# only 0, 1 and 2 (the listing's own: total line, then one line per descriptor)
	fds=$(grep -- '->' "$TMPD/probe" | awk '{print $9}' | sort -n | tr '\n' ' ')
	[ "$fds" = "0 1 2 " ] || { cat "$TMPD/probe"; false; }
	# (closed inside bash -c: a bare `run ... <&-` lets bats' own output pipe take fd 0)
	run timeout 20 bash -c '"$0" -r "$1" snapshot --stdin s <&-' "$KBVAULT" "$TMPD/r2"
	[ "$status" -eq 7 ]
	[[ "$output" == *"standard input was empty"* ]]
}
