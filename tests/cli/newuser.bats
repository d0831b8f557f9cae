#!/usr/bin/env bats
# What a new user hit (issue 12): each test here failed before its fix. No PostgreSQL
# server is needed: path and command sources show the per-source behaviour.
load helpers

setup() {
	setup_repo
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	mkdir -p "$TMPD/files"
	echo one > "$TMPD/files/a.txt"
	echo "db v1" > "$TMPD/db.txt"
	cat > "$KBVAULT_CONFIG" <<EOF
[source kb]
type = command
dump-command = cat $TMPD/db.txt
restore-command = cat > $TMPD/db.restored
drill-load-command = cmp - $TMPD/db.txt

[source uploads]
type = path
paths = $TMPD/files
EOF
}

@test "restore --stdout --json: the stream alone on stdout, the summary on stderr" {
	head -c 200000 /dev/urandom > "$TMPD/in"
	kbv snapshot -q --stdin kb.sql < "$TMPD/in"
	kbv restore latest --stream kb.sql --stdout --json > "$TMPD/out" 2> "$TMPD/err"
	cmp "$TMPD/in" "$TMPD/out"
	python3 -c "import json,sys; j=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); assert j['bytes']==200000, j" "$TMPD/err"
	# The same for a source's stream selected with --source.
	kbv snapshot -q
	kbv restore latest --source kb --stdout --json > "$TMPD/out2" 2> /dev/null
	cmp "$TMPD/db.txt" "$TMPD/out2"
}

@test "an empty --stdin stream is an error unless --allow-empty; the bytes read are the stream's" {
	run bash -c "false | '$KBVAULT' snapshot --stdin kb.sql"
	[ "$status" -eq 7 ]
	[[ "$output" == *"standard input was empty; no snapshot recorded"* ]]
	[[ "$output" == *"pipefail"* ]]
	[ "$(snap_count)" -eq 0 ]
	kbv snapshot -q --allow-empty --stdin empty.sql < /dev/null
	[ "$(snap_count)" -eq 1 ]
	run bash -c "printf abc | '$KBVAULT' snapshot --stdin three"
	[ "$status" -eq 0 ]
	[[ "$output" == *"3 B read"* ]]
	run bash -c "printf abc | '$KBVAULT' snapshot --json --stdin three"
	python3 -c "import json,sys; assert json.loads(sys.argv[1])['read_bytes']==3" "$output"
}

@test "latest resolves per source (and per host and tag) for restore" {
	kbv snapshot -q --tag nightly
	echo "db v2" > "$TMPD/db.txt"
	kbv snapshot -q --source kb --host other
	echo two > "$TMPD/files/b.txt"
	kbv snapshot -q --source uploads
	# The newest snapshot holds only uploads: latest --source kb is the one before.
	kbv restore latest --source kb --target "$TMPD/r1"
	[ "$(cat "$TMPD/r1/kb/dump")" = "db v2" ]
	kbv restore latest --source kb --host other --target "$TMPD/r2"
	[ "$(cat "$TMPD/r2/kb/dump")" = "db v2" ]
	kbv restore latest --source kb --tag nightly --target "$TMPD/r3"
	[ "$(cat "$TMPD/r3/kb/dump")" = "db v1" ]
	kbv restore latest --source kb
	[ "$(cat "$TMPD/db.restored")" = "db v2" ]
	run kbv restore latest --source kb --host nosuch --target "$TMPD/r4"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no snapshot of source 'kb' on host 'nosuch'"* ]]
	# --stream with latest: the newest snapshot that holds that stream.
	printf 'adhoc' | kbv snapshot -q --stdin notes.txt
	kbv snapshot -q --source uploads
	[ "$(kbv restore latest --stream notes.txt --stdout)" = "adhoc" ]
}

@test "drill: every source at its own newest snapshot; status and its JSON per source" {
	kbv snapshot -q
	kbv snapshot -q --source uploads
	run kbv drill
	[ "$status" -eq 0 ]
	[[ "$output" == *"drill uploads: PASS"* ]]
	[[ "$output" == *"drill kb: PASS"* ]]
	run kbv status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "KBVAULT OK - "*"last drill PASS"* ]]
	[[ "$output" == *"kb: snapshot "*"drill PASS"* ]]
	[[ "$output" == *"uploads: snapshot "*"drill PASS"* ]]
	# kb's dump changes so its drill fails; a later drill of uploads passes: still WARNING.
	echo "changed" > "$TMPD/db.txt"
	run kbv drill --source kb
	[ "$status" -ne 0 ]
	kbv drill --source uploads
	run kbv status
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "KBVAULT WARNING - the last drill of kb FAILED"* ]]
	kbv status --json | python3 -c "
import json,sys
j=json.load(sys.stdin)
s={x['name']: x for x in j['sources']}
assert s['kb']['last_drill']['ok'] is False, s
assert s['uploads']['last_drill']['ok'] is True, s"
}

@test "status names a source that was never drilled" {
	kbv snapshot -q
	kbv drill --source uploads
	run kbv status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"last drill PASS"*"1 source never drilled"* ]]
	[[ "$output" == *"kb: snapshot "*"never drilled"* ]]
	kbv status --json | python3 -c "
import json,sys
s={x['name']: x for x in json.load(sys.stdin)['sources']}
assert s['kb']['last_drill'] is None, s"
}

@test "'#' comments after a value are comments for every command; a bad max-age is refused at load" {
	cat >> "$KBVAULT_CONFIG" <<EOF2
[monitor]
max-age = 26h          # for kbvault status
ping-timeout = 10      # seconds per try
EOF2
	kbv snapshot -q
	run kbv status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "KBVAULT OK"* ]]
	sed -i 's/^max-age = .*/max-age = 26x/' "$KBVAULT_CONFIG"
	n=$(grep -n '^max-age' "$KBVAULT_CONFIG" | cut -d: -f1)
	for cmd in "snapshot -q" "snapshots" "status"; do
		run kbv $cmd
		[ "$status" -ne 0 ]
		[[ "$output" == *"kbvault.conf:$n: max-age must be a duration"* ]] || { echo "$cmd: $output"; false; }
	done
}

# The command names, from kbvault help.
commands() { kbv help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }' | grep -vx 'help\|version'; }

@test "help on an unknown command exits 2; an unknown option is one message naming it, exit 2, for every command" {
	run kbv help nosuch
	[ "$status" -eq 2 ]
	[[ "$output" == *"'nosuch' is not a command"* ]]
	for c in $(commands); do
		run kbv "$c" --no-such-option
		[ "$status" -eq 2 ] || [ "$c" = status ] || { echo "$c: exit $status"; false; }
		[ "${#lines[@]}" -eq 1 ] || { echo "$c: ${#lines[@]} lines: $output"; false; }
		[[ "$output" == *"--no-such-option"* ]] || [ "$c" = status ] || { echo "$c: $output"; false; }
	done
	# status speaks the Nagios plugin language: one UNKNOWN line, exit 3
	run kbv status --no-such-option
	[ "$status" -eq 3 ]
	[ "${#lines[@]}" -eq 1 ]
}

@test "every synopsis, in kbvault help and in the man pages, has balanced brackets" {
	for c in $(commands); do
		kbv help "$c" | sed '/^Global options/,$d' | grep '^usage:\|^kbvault\|^ \{4,\}\[' > "$TMPD/syn" || true
		python3 - "$c" "$TMPD/syn" "$BATS_TEST_DIRNAME/../../docs/man/kbvault-$c.1" <<'PY'
import re, sys
cmd, helpf, man = sys.argv[1:]
def balanced(text):
    d = {'[': 0, '(': 0}
    for ch in text:
        if ch in '[(': d[ch] += 1
        if ch == ']': d['['] -= 1
        if ch == ')': d['('] -= 1
        if min(d.values()) < 0: return False
    return not any(d.values())
for line in open(helpf).read().split('usage: ')[-1].split('\nkbvault'):
    assert balanced(line), (cmd, 'help', line)
t = open(man).read()
syn = t.split('.SH SYNOPSIS', 1)[1].split('.SH', 1)[0]
for block in syn.split('.B kbvault')[1:]:
    plain = re.sub(r'\\f[BIRP]', '', block).replace('\\-', '-')
    assert balanced(plain), (cmd, 'man', plain)
PY
	done
}

@test "every command given --json prints JSON on stdout" {
	head -c 50000 /dev/urandom > "$TMPD/in"
	kbv snapshot -q --stdin x < "$TMPD/in"
	kbv snapshot -q --stdin y < "$TMPD/in"
	id=$(snap_id 1)
	# one JSON document, or one per line (drill prints a verdict per snapshot)
	json_ok() { python3 -c '
import json,sys
t=sys.stdin.read()
try: json.loads(t)
except ValueError: [json.loads(l) for l in t.splitlines() if l.strip()] or sys.exit(1)'; }
	for cmd in "snapshots" "stats" "check" "status" "repair index" "forget $id" "gc --keep-last 1" "drill" \
		"restore latest --target $TMPD/out" "bench chunking $TMPD/in"; do
		# status's exit code is the health verdict (Nagios); drill finds nothing to drill in
		# ad-hoc streams (a usage error, no output)
		kbv $cmd --json > "$TMPD/j" 2> "$TMPD/e" || [ "${cmd%% *}" = drill ] || [ "${cmd%% *}" = status ] ||
			{ echo "$cmd failed"; cat "$TMPD/e"; false; }
		[ "${cmd%% *}" = drill ] && continue
		json_ok < "$TMPD/j" || { echo "$cmd --json printed:"; cat "$TMPD/j"; false; }
	done
	kbv init --json -r "$TMPD/repo2" --kdf-ops 1 --kdf-mem-mib 8 > "$TMPD/j" 2> /dev/null || true
	json_ok < "$TMPD/j" || { echo "init --json printed:"; cat "$TMPD/j"; false; }
}

@test "init: a non-empty directory is exit 1 as its man page says; the KDF default is the page's 64 MiB; a number option is digits alone" {
	mkdir -p "$TMPD/full" && touch "$TMPD/full/x"
	run kbv init -r "$TMPD/full"
	[ "$status" -eq 1 ]
	grep -q '1 when the directory is not empty' "$BATS_TEST_DIRNAME/../../docs/man/kbvault-init.1"
	grep -q '3 passes, 64 MiB' "$BATS_TEST_DIRNAME/../../docs/man/kbvault-init.1"
	KBVAULT_PASSWORD=pw kbv init -q -r "$TMPD/defaults"
	# keyfile: memlimit is the u64 at offset 24 (format/keyfile.md)
	mem=$(od -An -tu8 -j24 -N8 "$TMPD/defaults/key" | tr -d ' ')
	[ "$mem" -eq $((64 << 20)) ]
	# A number option is digits alone: a sign, a space or an overflow is refused, and no
	# repository is made (strtoull read "-18446744073709551615" as 1, "-1" as 2^64-1).
	for a in "--zstd-level=-18446744073709551615" "--kdf-ops=-1" "--zstd-level=99999999999999999999999" \
		"--zstd-level= 3" "--chunk-avg=-4294967295" "--kdf-mem-mib=+8"; do
		run kbv init -r "$TMPD/numbers" --no-encryption "$a"
		[ "$status" -eq 2 ]
		[[ "$output" == *"${a%%=*} takes"* ]]
		[ ! -e "$TMPD/numbers" ]
	done
}

@test "a lock held by another process: who holds it is said, the wait is bounded, exit 6" {
	kbv snapshot -q
	setsid flock -x "$KBVAULT_REPO/lock" sleep 30 &
	holder=$! # its own process group: flock and the sleep holding the lock with it
	sleep 0.3
	start=$(date +%s)
	run kbv --lock-wait 1s snapshots
	end=$(date +%s)
	kill -- -"$holder"
	wait "$holder" || true
	[ "$status" -eq 6 ]
	[[ "$output" == *"locked by PID "*"flock"*"; waiting up to 1 s"* ]]
	[[ "$output" == *"gave up after 1 s (--lock-wait)"* ]]
	[ $((end - start)) -le 5 ]
	run kbv snapshots --lock-wait 0
	[ "$status" -eq 0 ]
	run kbv --lock-wait 5 snapshots
	[ "$status" -eq 2 ]
	[[ "$output" == *"--lock-wait takes a duration"* ]]
}

@test "a bad number in the environment (KBVAULT_THREADS and its kin, the test hooks too) is a usage error naming it, before the command runs" {
	kbv snapshot -q
	count() { kbv snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
	before=$(count)
	for e in KBVAULT_THREADS=four KBVAULT_THREADS=0 KBVAULT_THREADS=8x KBVAULT_THREADS=257 \
		KBVAULT_READ_PIECES=yes KBVAULT_GC_LOCK_STALE=-5 KBVAULT_CHECK_DAY=tuesday \
		KBVAULT_ARCHIVE_TIMEOUT=5s KBVAULT_OBJECT_LOCK_DAY=0 KBVAULT_PACK_SIZE=1M KBVAULT_S3_LIST_PAGE=1001 \
		KBVAULT_S3_DELETE_BATCH=-1; do
		run env "$e" "$KBVAULT" snapshot -q --stdin x < /dev/null
		[ "$status" -eq 2 ]
		[[ "$output" == *"${e%%=*} must be a whole number from "*", not '${e#*=}'"* ]]
	done
	[ "$(count)" -eq "$before" ] # nothing ran
	# Empty is unset; good values run.
	KBVAULT_THREADS= kbv snapshots > /dev/null
	KBVAULT_THREADS=3 KBVAULT_READ_PIECES=0 kbv snapshot -q
	[ "$(count)" -gt "$before" ]
}

@test "gc's --keep-* counts and bench's --zstd-level are whole numbers alone: a sign, a space or a suffix is a usage error" {
	kbv snapshot -q
	for a in "--keep-last= 5" "--keep-last=+5" "--keep-daily=5d" "--keep-weekly=-1" "--keep-monthly=" "--keep-yearly=1000001"; do
		run kbv gc "$a"
		[ "$status" -eq 2 ]
		[[ "$output" == *"needs a whole number, not '${a#*=}'"* ]]
	done
	[ "$(kbv snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -eq 1 ] # nothing removed
	printf 'x' > "$BATS_TEST_TMPDIR/d.sql"
	for l in "+3" " 3" "3x" "20"; do
		run "$KBVAULT" bench chunking --zstd-level "$l" "$BATS_TEST_TMPDIR/d.sql"
		[ "$status" -eq 2 ]
		[[ "$output" == *"--zstd-level takes 0 (no compression) to 19, not '$l'"* ]]
	done
}

@test "sizes and percentages are plain decimals: nan, inf, an exponent, hex, a sign or an overflow is a usage error" {
	kbv snapshot -q
	for a in "--max-unused=nan" "--max-unused=1e1" "--max-unused=-0" "--max-unused=0x10" "--max-repack=inf" \
		"--max-repack=1e30" "--max-repack=17179869184G" "--max-repack=-1K" "--max-repack=1.5.2G" "--max-repack=."; do
		run kbv gc --keep-all "$a"
		[ "$status" -eq 2 ]
		[[ "$output" == *"${a%%=*} takes a "*", not '${a#*=}'"* ]]
	done
	for a in nan "1e1%" " 10%" "-5%"; do
		run kbv check --read-data-subset "$a"
		[ "$status" -eq 2 ]
		[[ "$output" == *"--read-data-subset takes a percentage"* ]]
	done
	kbv gc --keep-all --max-unused .5 --max-repack 2.5G > /dev/null
	kbv check --read-data-subset 12.5% > /dev/null
}

@test "check --read-data names the snapshots and sources the damage reaches, and says the rest are intact" {
	head -c 400000 /dev/urandom > "$TMPD/x"
	kbv snapshot -q --stdin x < "$TMPD/x"
	sleep 1.1
	head -c 400000 /dev/urandom > "$TMPD/db.txt"
	kbv snapshot -q --source kb
	# the newest pack holds the second snapshot's data
	pack=$(ls -t "$KBVAULT_REPO"/data/*/*.pack | head -1)
	flip_byte "$pack" 100000
	run kbv check --read-data
	[ "$status" -eq 5 ]
	second=$(snap_id 2)
	first=$(snap_id 1)
	[[ "$output" == *"snapshot ${second:0:12} of "*"(sources kb): cannot be restored whole: 'kb/dump' uses damaged or missing blobs"* ]]
	[[ "$output" == *"damage reaches 1 of 2 snapshots (${second:0:12}); every other snapshot is intact"* ]]
	[[ "$output" != *"snapshot ${first:0:12} of"* ]]
	kbv restore "$first" --stdout | cmp - "$TMPD/x"
}

@test "a repository copied without index/ is a warning with the remedy, not damage" {
	kbv snapshot -q
	printf 'abc' | kbv snapshot -q --stdin s
	rm -rf "$KBVAULT_REPO/index"
	run kbv check
	[ "$status" -eq 0 ]
	[[ "$output" != *"problem:"* ]]
	[[ "$output" == *"the index is missing or stale"*"nothing is damaged; run 'kbvault repair index'"* ]]
	kbv repair index -q
	run kbv check --read-data
	[ "$status" -eq 0 ]
	[[ "$output" != *"warning:"* ]]
}

@test "a password file others can read gets a warning; what kbvault creates is private" {
	kbv snapshot -q
	chmod 644 "$TMPD/pw"
	run kbv snapshots
	[ "$status" -eq 0 ]
	[[ "$output" == *"password file '$TMPD/pw' can be read by every user (mode 0644): 'chmod 600 $TMPD/pw'"* ]]
	chmod 640 "$TMPD/pw"
	run kbv snapshots
	[[ "$output" == *"can be read by its group (mode 0640)"* ]]
	chmod 600 "$TMPD/pw"
	run kbv snapshots
	[[ "$output" != *"password file"* ]]
	# The repository: directories 0700, files 0600, whatever the umask
	(umask 000 && kbv init -q -r "$TMPD/r2" --kdf-ops 1 --kdf-mem-mib 8 && printf x | kbv -r "$TMPD/r2" snapshot -q --stdin x)
	[ -z "$(find "$TMPD/r2" -type d ! -perm 0700)" ]
	[ -z "$(find "$TMPD/r2" -type f ! -perm 0600)" ]
	# the log file is not world-readable; the metrics file is (node-exporter reads it, it holds no secret)
	cat >> "$KBVAULT_CONFIG" <<EOF2
[monitor]
log-file = $TMPD/kbvault.log
metrics-file = $TMPD/kbvault.prom
EOF2
	(umask 000 && kbv snapshot -q)
	[ "$(stat -c %a "$TMPD/kbvault.log")" = 640 ]
	[ "$(stat -c %a "$TMPD/kbvault.prom")" = 644 ]
}

@test "drill-load-command knows its scratch name, drill-cleanup-command removes it; normal output is INFO" {
	mkdir -p "$TMPD/scratch"
	cat > "$KBVAULT_CONFIG" <<EOF2
[source kb]
type = command
dump-command = cat $TMPD/db.txt
restore-command = cat > /dev/null
drill-load-command = mkdir $TMPD/scratch/\$KBVAULT_DRILL_NAME && cat > $TMPD/scratch/\$KBVAULT_DRILL_NAME/dump &&
   echo CREATE TABLE && echo "\$KBVAULT_DRILL_SOURCE \$KBVAULT_DRILL_SNAPSHOT" > $TMPD/seen
drill-cleanup-command = rm -r $TMPD/scratch/\$KBVAULT_DRILL_NAME

[monitor]
log-file = $TMPD/kbvault.log
EOF2
	kbv snapshot -q
	for i in 1 2; do
		run kbv drill
		[ "$status" -eq 0 ]
		[[ "$output" != *"WARN"* ]] || { echo "$output"; false; }
		[ -z "$(ls "$TMPD/scratch")" ]
	done
	[ "$(cat "$TMPD/seen")" = "kb $(snap_id 1)" ]
	grep -q 'INFO  kbvault drill\[[0-9]*\]: output: CREATE TABLE' "$TMPD/kbvault.log"
	# a cleanup that fails is named and fails the drill
	sed -i 's|^drill-cleanup-command = .*|drill-cleanup-command = exit 3|' "$KBVAULT_CONFIG"
	run kbv drill
	[ "$status" -ne 0 ]
	[[ "$output" == *"the drill-cleanup-command of source 'kb' exited with status 3"* ]]
}

@test "a configuration line too long for the parser is named, with the way out" {
	printf '[source kb]\ntype = command\ndump-command = echo %0300d\nrestore-command = cat\n' 0 > "$KBVAULT_CONFIG"
	run kbv snapshot
	[ "$status" -eq 2 ]
	[[ "$output" == *"kbvault.conf:3: a line longer than"*"continue a long value on indented lines"* ]]
}

@test "path sources keep owners (by name and number, restored as root) and honour exclude patterns" {
	[ "$(id -u)" = 0 ] || skip "needs root to own files as another user"
	id postgres > /dev/null # installed with PostgreSQL by make deps
	mkdir -p "$TMPD/files/cache" "$TMPD/files/data"
	echo pgdata > "$TMPD/files/data/pg.conf"
	chown postgres:postgres "$TMPD/files/data" "$TMPD/files/data/pg.conf"
	echo junk > "$TMPD/files/cache/junk.bin"
	echo tmp > "$TMPD/files/a.tmp"
	echo "exclude = *.tmp $TMPD/files/cache" >> "$KBVAULT_CONFIG"
	kbv snapshot -q --source uploads
	kbv snapshots --json | python3 -c "
import json, sys
e = {x['name'].rsplit('/', 1)[-1]: x for x in json.load(sys.stdin)[0]['streams']}
assert e['pg.conf']['owner']['user'] == 'postgres' and e['pg.conf']['owner']['group'] == 'postgres', e['pg.conf']
assert 'junk.bin' not in e and 'cache' not in e and 'a.tmp' not in e, sorted(e)
assert 'a.txt' in e, sorted(e)"
	rm -rf "$TMPD/files/data"
	kbv restore latest --source uploads --in-place
	[ "$(stat -c %U:%G "$TMPD/files/data/pg.conf")" = postgres:postgres ]
	[ "$(stat -c %U:%G "$TMPD/files/data")" = postgres:postgres ]
	[ "$(cat "$TMPD/files/data/pg.conf")" = pgdata ]
}

@test "drill metrics are per source: a later pass of one source does not hide another's failure" {
	echo "[monitor]" >> "$KBVAULT_CONFIG"
	echo "metrics-file = $TMPD/kbvault.prom" >> "$KBVAULT_CONFIG"
	kbv snapshot -q
	echo "changed" > "$TMPD/db.txt" # kb's drill-load-command (cmp) now fails
	run kbv drill
	[ "$status" -ne 0 ]
	kbv drill --source uploads
	grep -qx 'kbvault_last_attempt_success{command="drill",source="kb"} 0' "$TMPD/kbvault.prom"
	grep -qx 'kbvault_last_attempt_success{command="drill",source="uploads"} 1' "$TMPD/kbvault.prom"
}
