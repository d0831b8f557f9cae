#!/usr/bin/env bats
# Monitoring: the Prometheus textfile metrics (format/metrics.md, checked with Debian's
# promtool), healthchecks.io-style pings to a loopback HTTP sink, and the event log.
load helpers

setup() {
	setup_repo
	unset KBVAULT_CONFIG
	cd "$TMPD"
	[ -x "$PROMTOOL" ] || { echo "promtool missing: run make deps" >&2; return 1; }
	SINK_PID=
}

teardown() {
	[ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2> /dev/null
	wait 2> /dev/null || true
}

# sink_start MODE: a loopback HTTP server recording requests in $TMPD/pings.jsonl.
sink_start() {
	local pf="$TMPD/sink.port.$RANDOM"
	python3 "$BATS_TEST_DIRNAME/../tools/http_sink.py" --port-file "$pf" --log "$TMPD/pings.jsonl" --mode "$1" &
	SINK_PID=$!
	for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
	SINK_URL="http://127.0.0.1:$(cat "$pf")"
}

# A configuration with two command sources and the [monitor] section given as $1.
write_config() {
	cat > "$TMPD/kbvault.conf" <<CONF
[repository]
path = $KBVAULT_REPO
password-file = $TMPD/pw

[source alpha]
type = command
dump-command = cat $TMPD/alpha.txt
restore-command = cat > $TMPD/alpha.out

[source beta]
type = command
dump-command = cat $TMPD/beta.txt
restore-command = cat > $TMPD/beta.out

[retention]
keep-last = 2

[monitor]
$1
CONF
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
}

# metric NAME_WITH_LABELS: its value in the metrics file ("" when absent).
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TMPD/kbvault.prom"; }

@test "metrics after a successful snapshot: valid per promtool, per source and for the run" {
	head -c 300000 /dev/urandom > alpha.txt
	seq 1 20000 > beta.txt
	write_config "metrics-file = $TMPD/kbvault.prom"
	kbv snapshot -q
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot"}')" = 1 ]
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot",source="alpha"}')" = 1 ]
	[ "$(metric 'kbvault_last_attempt_exit_code{command="snapshot"}')" = 0 ]
	[ "$(metric 'kbvault_errors_total{command="snapshot"}')" = 0 ]
	[ "$(metric 'kbvault_snapshot_raw_bytes{source="alpha"}')" = 300000 ]
	[ "$(metric 'kbvault_snapshot_raw_bytes{source="beta"}')" = "$(stat -c %s beta.txt)" ]
	[ "$(metric 'kbvault_repository_snapshots')" = 1 ]
	[ "$(metric 'kbvault_repository_size_bytes')" = "$(find repo/data -name '*.pack' -printf '%s\n' | awk '{s+=$1} END {print s}')" ]
	now=$(date +%s)
	t=$(metric 'kbvault_last_success_timestamp_seconds{command="snapshot",source="beta"}')
	python3 -c "import sys; assert abs(float('$t') - $now) < 60"
	# The same bytes again: nothing new, dedup ratio +Inf, still valid.
	kbv snapshot -q
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_snapshot_new_bytes{source="alpha"}')" = 0 ]
	[ "$(metric 'kbvault_snapshot_dedup_ratio{source="alpha"}')" = "+Inf" ]
	[ "$(metric 'kbvault_repository_snapshots')" = 2 ]
	# Only whole files ever appear: no temporary file is left beside it.
	[ -z "$(find . -maxdepth 1 -name 'kbvault.prom.tmp*')" ]
}

@test "metrics after a failed snapshot: attempt failed, errors counted, last success kept" {
	echo one > alpha.txt
	echo two > beta.txt
	write_config "metrics-file = $TMPD/kbvault.prom"
	kbv snapshot -q
	good=$(metric 'kbvault_last_success_timestamp_seconds{command="snapshot",source="alpha"}')
	rm beta.txt
	sleep 1
	run kbv snapshot -q
	[ "$status" -eq 7 ]
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot"}')" = 0 ]
	[ "$(metric 'kbvault_last_attempt_exit_code{command="snapshot"}')" = 7 ]
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot",source="beta"}')" = 0 ]
	# all or nothing: alpha was dumped, but no snapshot of it was recorded either
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot",source="alpha"}')" = 0 ]
	[ "$(metric 'kbvault_errors_total{command="snapshot"}')" = 1 ]
	[ "$(metric 'kbvault_errors_total{command="snapshot",source="beta"}')" = 1 ]
	[ "$(metric 'kbvault_last_success_timestamp_seconds{command="snapshot",source="alpha"}')" = "$good" ]
	# A wrong password is a failure too, and is counted.
	echo wrong > "$TMPD/pw"
	run kbv snapshot -q
	[ "$status" -eq 4 ]
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_errors_total{command="snapshot"}')" = 2 ]
	[ "$(metric 'kbvault_last_attempt_exit_code{command="snapshot"}')" = 4 ]
}

@test "gc and drill keep the snapshot's metrics and add their own" {
	echo one > alpha.txt
	echo two > beta.txt
	write_config "metrics-file = $TMPD/kbvault.prom"
	for i in 1 2 3; do echo "$i" >> alpha.txt; kbv snapshot -q; done
	raw=$(metric 'kbvault_snapshot_raw_bytes{source="alpha"}')
	kbv gc -q
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_last_attempt_success{command="gc"}')" = 1 ]
	[ "$(metric 'kbvault_gc_removed_snapshots')" = 1 ]
	[ "$(metric 'kbvault_gc_condemned_packs')" = 0 ] # the default --keep-delete 0 deleted them
	[ "$(metric 'kbvault_repository_snapshots')" = 2 ]
	[ "$(metric 'kbvault_snapshot_raw_bytes{source="alpha"}')" = "$raw" ]
	# a dry run is not a run to monitor
	before=$(cat kbvault.prom)
	kbv gc -q --dry-run
	[ "$(cat kbvault.prom)" = "$before" ]
	# drill of command sources without drill-load-command: nothing to check is a usage error
	run kbv drill
	[ "$status" -eq 2 ]
	"$PROMTOOL" check metrics < kbvault.prom
	[ "$(metric 'kbvault_last_attempt_success{command="drill"}')" = 0 ]
	[ "$(metric 'kbvault_last_attempt_success{command="gc"}')" = 1 ]
}

@test "a file that is not ours is replaced, with a warning" {
	echo one > alpha.txt
	echo two > beta.txt
	write_config "metrics-file = $TMPD/kbvault.prom"
	echo 'garbage here' > kbvault.prom
	run kbv snapshot -q
	[ "$status" -eq 0 ]
	[[ "$output" == *"WARN"*"not a kbvault metrics file"* ]]
	"$PROMTOOL" check metrics < kbvault.prom
	if grep -q garbage kbvault.prom; then false; fi
}

@test "pings: /start, then success, with a run id; /fail with the log's tail" {
	sink_start ok
	echo one > alpha.txt
	echo two > beta.txt
	write_config "ping-url = $SINK_URL/ping/0b1c2d3e"
	kbv snapshot -q
	python3 - "$TMPD/pings.jsonl" <<'PY'
import json, sys
p = [json.loads(l) for l in open(sys.argv[1])]
assert [x["path"] for x in p] == ["/ping/0b1c2d3e/start", "/ping/0b1c2d3e"], p
assert p[0]["query"]["rid"] == p[1]["query"]["rid"] and len(p[0]["query"]["rid"][0]) == 36, p
assert p[1]["agent"].startswith("kbvault/"), p
assert "snapshot finished" in p[1]["body"], p
PY
	rm "$TMPD/pings.jsonl"
	rm beta.txt
	run kbv snapshot -q
	[ "$status" -eq 7 ]
	python3 - "$TMPD/pings.jsonl" <<'PY'
import json, sys
p = [json.loads(l) for l in open(sys.argv[1])]
assert [x["path"] for x in p] == ["/ping/0b1c2d3e/start", "/ping/0b1c2d3e/fail"], p
body = p[1]["body"]
assert "source 'beta' failed, no snapshot recorded" in body and "ERROR" in body, body
assert "beta.txt" in body, body
PY
	# A URL with a query string keeps it, after the suffix.
	rm "$TMPD/pings.jsonl"
	echo two > beta.txt
	write_config "ping-url = $SINK_URL/ping/0b1c2d3e?create=1"
	kbv snapshot -q
	python3 - "$TMPD/pings.jsonl" <<'PY'
import json, sys
p = [json.loads(l) for l in open(sys.argv[1])]
assert [x["path"] for x in p] == ["/ping/0b1c2d3e/start", "/ping/0b1c2d3e"], p
assert all(x["query"]["create"] == ["1"] and len(x["query"]["rid"][0]) == 36 for x in p), p
PY
	write_config "ping-url = $SINK_URL/ping/0b1c2d3e"
	# gc pings too
	rm "$TMPD/pings.jsonl"
	echo two > beta.txt
	kbv snapshot -q
	kbv gc -q
	[ "$(grep -c '"/ping/0b1c2d3e/start"' "$TMPD/pings.jsonl")" = 2 ]
	[ "$(grep -c '"/ping/0b1c2d3e"' "$TMPD/pings.jsonl")" = 2 ]
}

@test "a ping server that is down, failing or hanging never fails the backup" {
	echo one > alpha.txt
	echo two > beta.txt
	# nothing listens there
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	write_config "ping-url = http://127.0.0.1:$port/abc
ping-timeout = 2"
	run kbv snapshot -q
	[ "$status" -eq 0 ]
	[[ "$output" == *"WARN"*"ping (start) to http://127.0.0.1:$port failed"*"the run itself is not affected"* ]]
	[[ "$output" == *"ping (success) to http://127.0.0.1:$port failed"* ]]
	[ "$(snap_count)" = 1 ]
	# 500 every time: retried, three requests per ping, then logged
	sink_start error
	write_config "ping-url = $SINK_URL/abc
ping-timeout = 2"
	run kbv snapshot -q
	[ "$status" -eq 0 ]
	[[ "$output" == *"failed: HTTP 500"* ]]
	[ "$(wc -l < "$TMPD/pings.jsonl")" = 6 ]
	kill "$SINK_PID"; wait "$SINK_PID" 2> /dev/null || true
	# accepts the connection and never answers: the timeout ends it
	rm "$TMPD/pings.jsonl"
	sink_start hang
	write_config "ping-url = $SINK_URL/abc
ping-timeout = 1"
	start=$(date +%s)
	run kbv snapshot -q
	[ "$status" -eq 0 ]
	[[ "$output" == *"ping (start)"*"failed"* ]]
	[ "$(snap_count)" = 3 ]
	[ $(($(date +%s) - start)) -lt 30 ]
}

@test "the event log: one timestamped line per event in log-file; -v shows INFO on stderr" {
	echo one > alpha.txt
	echo two > beta.txt
	write_config "log-file = $TMPD/kbvault.log"
	run kbv snapshot -q
	[ "$status" -eq 0 ]
	[ -z "$output" ] # nothing to warn about: stderr stays quiet
	grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z INFO  kbvault snapshot\[[0-9]+\]: snapshot started$' kbvault.log
	grep -E "INFO  kbvault snapshot\[[0-9]+\]: source 'alpha': 4 bytes read" kbvault.log
	grep -E 'INFO  kbvault snapshot\[[0-9]+\]: snapshot [0-9a-f]{8} saved' kbvault.log
	rm beta.txt
	run kbv snapshot -q
	[ "$status" -eq 7 ]
	grep -E "ERROR kbvault snapshot\[[0-9]+\]: source 'beta' failed" kbvault.log
	# the error also reaches stderr, as the same line
	[[ "$output" == *"ERROR kbvault snapshot["*"source 'beta' failed"* ]]
	# every line has a time and a level
	[ -z "$(grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z (DEBUG|INFO |WARN |ERROR) kbvault [a-z]+\[[0-9]+\]: ' kbvault.log)" ]
	echo two > beta.txt
	run kbv -v snapshot -q
	[[ "$output" == *"INFO  kbvault snapshot["*"snapshot started"* ]]
}

@test "passwords, API keys and conninfo passwords never appear in a log, an error, a metric or a ping" {
	sink_start ok
	echo 's3cret-api-key-42' > "$TMPD/qkey"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat > "$TMPD/kbvault.conf" <<CONF
[repository]
path = $KBVAULT_REPO
password-file = $TMPD/pw

[source kb]
type = postgres
dsn = host=127.0.0.1 port=$port dbname=kb user=kb password=pg-s3cret-pw connect_timeout=2

[source uri]
type = postgres
dsn = postgresql://kb:uri-s3cret-pw@127.0.0.1:$port/kb

[source vectors]
type = qdrant
url = http://127.0.0.1:$port
api-key-file = $TMPD/qkey

[source dump]
type = command
dump-command = echo "connecting with password=cmd-s3cret-pw" >&2; PGPASSWORD=cmd-s3cret-pw false
restore-command = cat > /dev/null

[monitor]
log-file = $TMPD/kbvault.log
metrics-file = $TMPD/kbvault.prom
ping-url = http://hc:ping-s3cret-pw@127.0.0.1:${SINK_URL##*:}/p/uuid
CONF
	export KBVAULT_CONFIG="$TMPD/kbvault.conf"
	: > "$TMPD/stderr.all"
	for s in kb uri vectors dump; do
		run kbv -vv snapshot --source "$s"
		[ "$status" -ne 0 ]
		echo "$output" >> "$TMPD/stderr.all"
	done
	# the failures were reported, naming the source
	grep -q "source 'kb' failed" "$TMPD/stderr.all"
	grep -q "source 'dump' failed" "$TMPD/stderr.all"
	grep -q "output: connecting with password=\*\*\*" kbvault.log
	for f in "$TMPD/stderr.all" kbvault.log kbvault.prom pings.jsonl; do
		[ -s "$f" ]
		if grep -E 's3cret|correct horse' "$f"; then echo "a secret in $f"; false; fi
	done
	# the sink did get the failure pings (so their bodies were checked above)
	grep -q '"/p/uuid/fail"' pings.jsonl
}

@test "golden: a version 1 metrics file is read and merged, its counters continued" {
	echo one > alpha.txt
	echo two > beta.txt
	write_config "metrics-file = $TMPD/kbvault.prom"
	cp "$BATS_TEST_DIRNAME/../golden/metrics/v1.prom" kbvault.prom
	"$PROMTOOL" check metrics < kbvault.prom
	rm beta.txt
	run kbv snapshot -q
	[ "$status" -eq 7 ]
	"$PROMTOOL" check metrics < kbvault.prom
	# the failed attempt continues the counters and keeps the last success
	[ "$(metric 'kbvault_errors_total{command="snapshot"}')" = 4 ]
	[ "$(metric 'kbvault_errors_total{command="snapshot",source="alpha"}')" = 4 ]
	[ "$(metric 'kbvault_errors_total{command="snapshot",source="beta"}')" = 1 ]
	[ "$(metric 'kbvault_last_success_timestamp_seconds{command="snapshot",source="alpha"}')" = 1795545600 ]
	# gc's samples are not this run's: kept as they were
	[ "$(metric 'kbvault_gc_freed_bytes')" = 123456789 ]
	[ "$(metric 'kbvault_last_duration_seconds{command="gc"}')" = 0.75 ]
	[ "$(metric 'kbvault_last_success_timestamp_seconds{command="gc"}')" = 1795635600.5 ]
	echo two > beta.txt
	kbv snapshot -q
	[ "$(metric 'kbvault_errors_total{command="snapshot"}')" = 4 ]
	[ "$(metric 'kbvault_last_attempt_success{command="snapshot",source="alpha"}')" = 1 ]
	[ "$(metric 'kbvault_gc_removed_snapshots')" = 4 ]
}

@test "alerting rules: promtool checks and unit-tests them, and every metric they use is in the metrics spec" {
	dir="$BATS_TEST_DIRNAME/../../docs/prometheus"
	run "$PROMTOOL" check rules "$dir/kbvault-rules.yml"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	(cd "$dir" && "$PROMTOOL" test rules kbvault-rules.test.yml)
	for m in $(grep -o 'kbvault_[a-z_]*' "$dir/kbvault-rules.yml" | sort -u); do
		grep -q "\`$m\`" "$BATS_TEST_DIRNAME/../../format/metrics.md" || { echo "$m is not in format/metrics.md"; false; }
	done
}
