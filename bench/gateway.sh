# What the benchmarks on Debian's radosgw (tests/cli/ceph.bash, started by the caller)
# share: the requests it served, from its access log, and the proxy that puts it a round
# trip away. Needs CEPH_DIR and W (the work directory).
LOG=$CEPH_DIR/log/client.rgw.a.log

# lagproxy_start RTT_MS: bench/lagproxy.py in front of the radosgw (S3_ENDPOINT), adding a
# round trip of RTT_MS to every request; sets PROXY_PID (the caller's trap kills it) and
# LAG_EP, the endpoint to use instead.
lagproxy_start() {
	rm -f "$W/proxy.port"
	python3 "$(dirname "${BASH_SOURCE[0]}")/lagproxy.py" "${S3_ENDPOINT##*:}" "$1" "$W/proxy.port" &
	PROXY_PID=$!
	for _ in $(seq 100); do [ -f "$W/proxy.port" ] && break; sleep 0.1; done
	LAG_EP=http://127.0.0.1:$(cat "$W/proxy.port")
}

# requests BUCKET: "put get head list delete" served for BUCKET since the last call (it
# runs in a subshell: where it got to is kept in a file)
requests() {
	local b=$1 n from=0
	[ -f "$W/seen-$b" ] && from=$(cat "$W/seen-$b")
	n=$(grep -c "beast: .*\"[A-Z]* /$b[/?\" ]" "$LOG" || true)
	echo "$n" > "$W/seen-$b"
	grep "beast: .*\"[A-Z]* /$b[/?\" ]" "$LOG" | tail -n +"$((from + 1))" | python3 -c '
import re, sys
c = {"PUT": 0, "GET": 0, "HEAD": 0, "LIST": 0, "DELETE": 0, "POST": 0}
for line in sys.stdin:
    m = re.search(r"\"([A-Z]+) (\S+) HTTP", line)
    if not m:
        continue
    meth, path = m.groups()
    if meth == "GET" and ("list-type" in path or "?" in path and path.split("?")[0].count("/") == 1):
        meth = "LIST"
    c[meth] = c.get(meth, 0) + 1
print(c["PUT"], c["GET"], c["HEAD"], c["LIST"], c["DELETE"] + c["POST"])'
}
