#!/bin/bash
# Run the unit test binaries (cmocka) and the CLI tests (bats), then print one summary line
# "tests: N passed, M failed, K skipped" (a skipped test is shown and never counted as
# passed). Usage:
#   run-tests.sh [--unit BIN...] [--cli FILE.bats...] [--cli-s3 FILE.bats...]
# --cli-s3 runs those suites again with their repositories on object storage (a one-node
# Ceph S3 gateway, tests/cli/ceph.bash, started once here); their lines say "s3".
set -u
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
skipped=0
mode=""
unit=()
cli=()
clis3=()
for a in "$@"; do
	case "$a" in
	--unit) mode=unit ;;
	--cli) mode=cli ;;
	--cli-s3) mode=clis3 ;;
	*) case "$mode" in unit) unit+=("$a") ;; clis3) clis3+=("$a") ;; *) cli+=("$a") ;; esac ;;
	esac
done
for t in "${unit[@]}"; do
	out=$("$t" 2>&1)
	rc=$?
	echo "$out" | grep -E '^\[  (PASSED|FAILED)  \]|^\[  FAILED  \]|FAILED|ERROR' | sed "s|^|$(basename "$t"): |"
	p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ "$rc" != 0 ] && [ -z "$f" ]; then
		echo "$out" | tail -20
		failed=$((failed + 1))
	fi
done
# run_bats LABEL PREFIX CMD...: CMD runs bats --tap; every line but the passes is shown
# (with PREFIX; skips too), and a run in which no test ran at all counts as a failure.
run_bats() {
	local label=$1 prefix=$2 out p f s ok_re='^ok [0-9]+ ' skip_re='^ok [0-9]+ .* # skip'
	shift 2
	out=$("$@" 2>&1)
	echo "$out" | grep -v -E "$ok_re" | grep -v '^1\.\.' | sed "s/^/$prefix/"
	echo "$out" | grep -E "$skip_re" | sed "s/^/$prefix/"
	s=$(echo "$out" | grep -c -E "$skip_re")
	p=$(($(echo "$out" | grep -c -E "$ok_re") - s))
	f=$(echo "$out" | grep -c '^not ok ')
	[ "$p$f$s" != 000 ] || { echo "$out" | tail -5; f=1; }
	echo "$label: $p ok, $f not ok, $s skipped"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}
# The suites that start a Ceph of their own (ceph_start in setup_file) run after the rest,
# and they and the --cli-s3 pass share one Ceph started here (~15 s a start): ceph.bash's
# ceph_start and ceph_stop leave a shared cluster up, and every test uses its own bucket.
plain=()
ceph=()
for f in "${cli[@]}"; do
	if grep -q 'ceph_start' "$f"; then ceph+=("$f"); else plain+=("$f"); fi
done
[ "${#plain[@]}" -eq 0 ] || run_bats cli "" bats --tap "${plain[@]}"
if [ "${#ceph[@]}" -gt 0 ] || [ "${#clis3[@]}" -gt 0 ]; then
	# shellcheck source=../tests/cli/ceph.bash
	. tests/cli/ceph.bash
	if ceph_start > /dev/null; then
		trap 'KBV_CEPH_SHARED="" ceph_stop > /dev/null 2>&1' EXIT
		export KBV_CEPH_SHARED=1
		[ "${#ceph[@]}" -eq 0 ] || run_bats "cli on ceph" "" bats --tap "${ceph[@]}"
		# the gateway answers again, should a suite have failed while it was stopped
		ceph_start > /dev/null || true
		[ "${#clis3[@]}" -eq 0 ] || run_bats "cli on s3" "s3 " env KBV_TEST_BACKEND=s3 bats --tap "${clis3[@]}"
	else
		echo "the S3 gateway did not start: ${ceph[*]} ${clis3[*]} not run"
		failed=$((failed + 1))
	fi
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
