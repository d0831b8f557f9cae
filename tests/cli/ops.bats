#!/usr/bin/env bats
# Operations: the man pages agree with `kbvault help`, `make install` installs them, the
# systemd units and the cron file in docs/ are valid and run a backup, and `make backup` /
# `make restore` do what they say.
load helpers

ROOT="$BATS_TEST_DIRNAME/../.."

setup() {
	setup_repo
	unset KBVAULT_CONFIG
	cd "$TMPD"
}

commands() { kbv help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }' | grep -vx 'help\|version'; }
globals() { kbv help | sed -n '/^Global options/,$p' | grep -o -- '--[a-z][a-z-]*' | sort -u; }

@test "every command has a man page, and its options are the ones kbvault help prints" {
	n=0
	for c in $(commands); do
		page="$ROOT/docs/man/kbvault-$c.1"
		[ -f "$page" ] || { echo "no man page for $c"; false; }
		# NAME: the same one-line summary as the command list
		summary=$(kbv help | awk -v c="$c" '$1 == c { $1 = ""; sub(/^ +/, ""); print }')
		name=$(sed -n '/^\.SH NAME/{n;p}' "$page" | sed 's/\\-/-/g')
		[ "$name" = "kbvault-$c - $summary" ] || { echo "$c: NAME '$name' vs help '$summary'"; false; }
		# the options of `help CMD` (without the global ones) = those of the page's SYNOPSIS
		helpopts=$(kbv help "$c" | sed '/^Global options/,$d' | grep -o -- '--[a-z][a-z-]*' | sort -u | comm -23 - <(globals))
		synopsis=$(sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$page" | sed 's/\\-/-/g' | grep -o -- '--[a-z][a-z-]*' | sort -u | comm -23 - <(globals))
		[ "$helpopts" = "$synopsis" ] || { echo "$c: help has [$helpopts], the man page's SYNOPSIS [$synopsis]"; false; }
		# and each of them is described under OPTIONS
		for o in $synopsis; do
			sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$page" | sed 's/\\-/-/g' | grep -q -- "^\\\\fB$o\\\\fR\|\\\\fB$o\\\\fR \\\\fI\|, \\\\fB$o\\\\fR" ||
				{ echo "$c: $o is not described under OPTIONS"; false; }
		done
		# --help and help CMD print the same
		[ "$(kbv "$c" --help)" = "$(kbv help "$c")" ]
		n=$((n + 1))
	done
	[ "$n" -ge 11 ]
	# kbvault(1) lists every command and describes every global option
	for c in $(commands); do grep -q "kbvault\\\\-$c (1)" "$ROOT/docs/man/kbvault.1"; done
	for o in $(globals); do sed -n '/^\.SH GLOBAL OPTIONS/,/^\.SH /p' "$ROOT/docs/man/kbvault.1" | sed 's/\\-/-/g' | grep -q -- "$o"; done
}

@test "make install puts the program and every man page in place, and they render without warnings" {
	make -s -C "$ROOT" install DESTDIR="$TMPD/root" PROG="$KBVAULT" > /dev/null
	[ -x "$TMPD/root/usr/local/bin/kbvault" ]
	for p in "$ROOT"/docs/man/*.1; do [ -f "$TMPD/root/usr/local/share/man/man1/$(basename "$p")" ]; done
	[ -f "$TMPD/root/usr/local/share/man/man5/kbvault.conf.5" ]
	for p in "$TMPD"/root/usr/local/share/man/man*/*; do
		out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$p" 2>&1)
		[ -z "$out" ] || { echo "$p: $out"; false; }
	done
	MANPATH="$TMPD/root/usr/local/share/man" man kbvault-gc | grep -q -- '--keep-daily'
	MANPATH="$TMPD/root/usr/local/share/man" man 5 kbvault.conf | grep -q 'ping-url'
}

# A configuration with a command source and a path source, keep-last 2.
ops_config() {
	mkdir -p "$TMPD/files"
	echo "v1" > "$TMPD/files/a.txt"
	cat > "$TMPD/kbvault.conf" <<EOF
[repository]
path = $KBVAULT_REPO
password-file = $TMPD/pw

[source notes]
type = command
dump-command = cat $TMPD/notes.txt
restore-command = cat > $TMPD/notes.restored

[source files]
type = path
paths = $TMPD/files

[retention]
keep-last = 2

[monitor]
log-file = $TMPD/kbvault.log
EOF
	seq 1 1000 > "$TMPD/notes.txt"
	unset KBVAULT_REPO KBVAULT_PASSWORD_FILE
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
}

@test "systemd: the units pass systemd-analyze verify, and the service's commands run a backup" {
	command -v systemd-analyze # installed by make deps (Debian's systemd package)
	make -s -C "$ROOT" install DESTDIR="$TMPD/root" PROG="$KBVAULT" > /dev/null
	mkdir "$TMPD/units"
	# The one change: the program where this test installed it instead of /usr/local/bin.
	for u in "$ROOT"/docs/systemd/*; do
		sed "s|/usr/local/bin/kbvault|$TMPD/root/usr/local/bin/kbvault|g" "$u" > "$TMPD/units/$(basename "$u")"
	done
	[ "$(ls "$TMPD/units" | wc -l)" -eq 4 ]
	# man: references in Documentation= are checked against the installed pages.
	MANPATH="$TMPD/root/usr/local/share/man" run systemd-analyze verify "$TMPD"/units/*
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# The service's ExecStart lines, in order, as systemd would run them (Type=oneshot: stop
	# at the first failure).
	ops_config
	for night in 1 2 3; do
		echo "night $night" >> "$TMPD/notes.txt"
		grep '^ExecStart=' "$TMPD/units/kbvault-backup.service" | cut -d= -f2- | while read -r cmd; do
			$cmd || exit 1
		done
	done
	[ "$(snap_count)" = 2 ]
	grep -q 'INFO  kbvault gc\[[0-9]*\]: gc removed 1 snapshots' "$TMPD/kbvault.log"
	# The verify service: drill (the path source is checked; the command source has no
	# drill-load-command and is skipped) and a partial read of the data.
	grep '^ExecStart=' "$TMPD/units/kbvault-verify.service" | cut -d= -f2- | while read -r cmd; do
		$cmd || exit 1
	done
	kbv stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["last_drill"]["ok"] is True, d'
}

@test "cron: every line of docs/cron/kbvault is valid, and its commands run a backup" {
	python3 - "$ROOT/docs/cron/kbvault" <<'PY'
import re, sys
ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
jobs = 0
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if re.fullmatch(r"[A-Z_]+=\S.*", line):
        continue
    f = line.split(None, 6)
    assert len(f) == 7, f"line {n}: want 5 time fields, a user and a command: {line}"
    for (lo, hi), v in zip(ranges, f[:5]):
        for part in v.split(","):
            m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
            assert m, f"line {n}: bad field {v!r}"
            for x in (m.group(2), m.group(3)):
                assert x is None or lo <= int(x) <= hi, f"line {n}: {x} outside {lo}-{hi}"
    assert re.fullmatch(r"[a-z_][a-z0-9_-]*", f[5]), f"line {n}: bad user {f[5]!r}"
    jobs += 1
assert jobs == 2, jobs
PY
	# Run each job's command the way cron would (sh -c, the file's PATH and KBVAULT_CONFIG
	# replaced by this test's), with the lock file moved into the scratch directory.
	ops_config
	mkdir -p "$TMPD/bin"
	ln -s "$KBVAULT" "$TMPD/bin/kbvault"
	grep -E '^[0-9*]' "$ROOT/docs/cron/kbvault" | cut -d' ' -f7- | sed "s|/run/lock/|$TMPD/|" > "$TMPD/jobs"
	[ "$(wc -l < "$TMPD/jobs")" = 2 ]
	backup=$(sed -n 1p "$TMPD/jobs")
	for night in 1 2 3; do
		echo "night $night" >> "$TMPD/notes.txt"
		PATH="$TMPD/bin:/usr/bin:/bin" sh -c "$backup"
	done
	[ "$(snap_count)" = 2 ]
	PATH="$TMPD/bin:/usr/bin:/bin" sh -c "$(sed -n 2p "$TMPD/jobs")"
	kbv stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["last_drill"]["ok"] is True, d'
}

@test "make backup snapshots and applies the policy; make restore BACKUP= puts the sources back" {
	ops_config
	for night in 1 2 3; do
		echo "night $night" >> "$TMPD/notes.txt"
		make -s -C "$ROOT" backup KBVAULT_BIN="$KBVAULT" > /dev/null
	done
	[ "$(snap_count)" = 2 ]
	want=$(cat "$TMPD/notes.txt")
	id=$(snap_id 1)
	# lose the data
	rm -rf "$TMPD/files"
	run make -s -C "$ROOT" restore KBVAULT_BIN="$KBVAULT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"usage: make restore BACKUP="* ]]
	make -s -C "$ROOT" restore BACKUP=latest KBVAULT_BIN="$KBVAULT"
	[ "$(cat "$TMPD/notes.restored")" = "$want" ]
	[ "$(cat "$TMPD/files/a.txt")" = v1 ]
	# an older snapshot, one source
	make -s -C "$ROOT" restore BACKUP="${id:0:8}" SOURCE=notes KBVAULT_BIN="$KBVAULT"
	[ "$(cat "$TMPD/notes.restored")" = "$(head -n -1 "$TMPD/notes.txt")" ]
}

@test "make install: systemd units and cron file call the installed program; an example configuration that loads" {
	make -s -C "$ROOT" install DESTDIR="$TMPD/root" PREFIX=/opt/kbv PROG="$KBVAULT" > /dev/null
	units="$TMPD/root/opt/kbv/lib/systemd/system"
	[ "$(ls "$units" | wc -l)" -eq 4 ]
	grep -h '^ExecStart=' "$units"/*.service | while read -r l; do
		[[ "$l" == "ExecStart=/opt/kbv/bin/kbvault "* ]] || { echo "$l"; exit 1; }
	done
	! grep -q /usr/local "$units"/* || { echo "a unit still names /usr/local"; false; }
	grep -qx 'PATH=/opt/kbv/bin:/usr/bin:/bin' "$TMPD/root/opt/kbv/share/doc/kbvault/cron.d/kbvault"
	ex="$TMPD/root/etc/kbvault/kbvault.conf.example"
	[ "$(stat -c %a "$ex")" = 600 ]
	# The example loads (no line is refused); it only fails on the repository it names.
	sed -i "s|^password-file = .*|password-file = $TMPD/pw|; s|^path = .*|path = $TMPD/nothing|" "$ex"
	run env -u KBVAULT_REPO -u KBVAULT_PASSWORD_FILE "$KBVAULT" -c "$ex" snapshots
	[[ "$output" == *"repository '$TMPD/nothing' does not exist"* ]] || { echo "$output"; false; }
	make -s -C "$ROOT" uninstall DESTDIR="$TMPD/root" PREFIX=/opt/kbv > /dev/null
	[ -z "$(find "$TMPD/root" -type f)" ]
}

@test "every configuration example in README.md and docs/examples loads: no line of them is refused" {
	python3 - "$ROOT/README.md" "$TMPD" <<'PY'
import re, sys
readme, out = sys.argv[1], sys.argv[2]
blocks = re.findall(r"```ini\n(.*?)```", open(readme).read(), re.S)
assert len(blocks) >= 4, len(blocks)
for i, b in enumerate(blocks):
    open(f"{out}/readme-{i}.conf", "w").write(b)
PY
	cp "$ROOT/docs/examples/kbvault.conf" "$TMPD/readme-example.conf"
	n=0
	for f in "$TMPD"/readme-*.conf; do
		# the password files they name do not exist here: point them at one that does
		sed -i "s|^password-file = [^ ;#]*|password-file = $TMPD/pw|; s|^api-key-file = [^ ;#]*|api-key-file = $TMPD/pw|" "$f"
		run env -u KBVAULT_PASSWORD_FILE "$KBVAULT" -c "$f" -r "$TMPD/no-repo" snapshots
		[[ "$output" == *"repository '$TMPD/no-repo' does not exist"* ]] || { echo "$f:"; cat "$f"; echo "$output"; false; }
		n=$((n + 1))
	done
	[ "$n" -ge 5 ]
}
