#!/usr/bin/env bash
# A fuzz campaign: each named target (default: all) runs under libFuzzer (ASan+UBSan) until
# it has used FUZZ_CPU_SECONDS of CPU time (default 3600), at nice 10 so that it can share
# the machine. One line per target goes to build/fuzz/campaign.log:
#   date target cpu_seconds wall_seconds executions corpus_before corpus_after findings
# A finding (crash, leak, timeout, OOM, undefined behaviour) leaves build/fuzz/crash-*|leak-*|timeout-*|oom-*.
# Build the targets first with `make fuzz FUZZ_SECONDS=1`.
set -u
cd "$(dirname "$0")/../.."
CPU=${FUZZ_CPU_SECONDS:-3600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||'))
log=build/fuzz/campaign.log
for t in "${targets[@]}"; do
	bin=build/fuzz/fuzz_$t corpus=build/fuzz/corpus-$t
	[ -x "$bin" ] || { echo "campaign: $bin missing (make fuzz FUZZ_SECONDS=1)" >&2; exit 2; }
	mkdir -p "$corpus"
	before=$(ls "$corpus" | wc -l)
	found_before=$(ls build/fuzz | grep -cE '^(crash|leak|timeout|oom)-')
	start=$(date +%s)
	nice -n 10 "$bin" -artifact_prefix=build/fuzz/ -print_final_stats=1 "$corpus" \
		>"build/fuzz/campaign-$t.out" 2>&1 &
	pid=$!
	# stop it (SIGINT: libFuzzer prints its final stats) once it used CPU seconds of CPU
	tck=$(getconf CLK_TCK) used=0
	while kill -0 $pid 2>/dev/null; do
		sleep 10
		read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat 2>/dev/null) || break
		used=$(( (ut + st) / tck ))
		if [ "$used" -ge "$CPU" ]; then kill -INT $pid; break; fi
	done
	wait $pid
	wall=$(( $(date +%s) - start ))
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/fuzz/campaign-$t.out" | grep -o '[0-9]*$' | tail -1)
	[ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "build/fuzz/campaign-$t.out" | tail -1 | tr -d '#')
	after=$(ls "$corpus" | wc -l)
	found=$(( $(ls build/fuzz | grep -cE '^(crash|leak|timeout|oom)-') - found_before ))
	# undefined behaviour is a finding too (the targets are built with -fno-sanitize-recover,
	# so it also stops the run and leaves a crash-* input; counted here in case it did not)
	ub=$(grep -c 'runtime error:' "build/fuzz/campaign-$t.out")
	[ "$ub" -eq 0 ] || found=$(( found > ub ? found : ub ))
	echo "$(date -u +%FT%TZ) $t cpu=${used}s wall=${wall}s execs=${execs:-?} corpus=$before->$after findings=$found" | tee -a "$log"
done
