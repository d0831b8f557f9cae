# The Qdrant STAND-IN (tests/standins/qdrant_standin.py) on 127.0.0.1: start one per test.
# qdrant_start [ARGS...] sets QPORT and QURL; qdrant_stop ends it.
qdrant_start() {
	local pf="$BATS_TEST_TMPDIR/qdrant.port.$RANDOM"
	python3 "$BATS_TEST_DIRNAME/../standins/qdrant_standin.py" --port-file "$pf" "$@" &
	QPID=$!
	for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
	QPORT=$(cat "$pf")
	QURL="http://127.0.0.1:$QPORT"
	export QPID QPORT QURL
}
qdrant_stop() { [ -n "${QPID:-}" ] && kill "$QPID" 2> /dev/null; wait "$QPID" 2> /dev/null || true; QPID=; }
# Stand-in controls (not part of Qdrant's API).
qdrant_fault() { curl -sf -X POST "$QURL/__standin/fault?mode=$1&count=${2:-1}" > /dev/null; }
qdrant_mutate() { curl -sf -X POST "$QURL/__standin/mutate?collection=$1&fraction=${2:-0.05}&points=${3:-10}" > /dev/null; }
qdrant_state() { curl -sf "$QURL/__standin/state"; }
