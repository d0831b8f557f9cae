# A one-node Ceph with an S3 gateway (Debian's radosgw) for the object-storage tests
# (s3.bats), started as root without systemd on free loopback ports,
# data in RAM (memstore), authentication off inside the cluster (S3 requests are still
# signed and checked by radosgw). Packages: ceph-mon ceph-osd radosgw ceph-common
# (--no-install-recommends). Measured here: up in ~15 s (the gateway takes ~10 of them);
# a wrong secret gets 403 SignatureDoesNotMatch, a second PUT with If-None-Match: * 412.
# Once in six starts, right after another instance was stopped, a start took 320 s (the
# gateway's 300 s initialization timeout), and about one in six fails on a loaded machine
# ("wrong fsid"): ceph_start tries three times.
#   ceph_start: sets CEPH_DIR, S3_ENDPOINT (http://127.0.0.1:PORT), AWS_ACCESS_KEY_ID,
#   AWS_SECRET_ACCESS_KEY; ceph_stop stops every daemon it started, by PID.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Up to three tries: on a loaded machine a start sometimes failed (the OSD told "wrong
# fsid" by the monitor; see [osd.0] below); each try begins from nothing.
# With KBV_CEPH_SHARED=1 (scripts/run-tests.sh started one Ceph for every suite that needs
# it, and exported what ceph_start sets), ceph_start only makes sure the gateway answers
# (a suite before may have stopped it) and ceph_stop leaves the cluster up.
ceph_start() {
	local try
	if [ -n "${KBV_CEPH_SHARED:-}" ]; then
		curl -s -o /dev/null "$S3_ENDPOINT" || ceph_rgw_start
		return
	fi
	for try in 1 2 3; do
		if ceph_start_once; then
			return 0
		fi
		echo "ceph: start $try failed ($CEPH_DIR/log):" >&2
		tail -n 3 "$CEPH_DIR"/log/* >&2 2>/dev/null || true
		ceph_stop
	done
	return 1
}

# Start a daemon with no descriptor open but 0-2. One it inherited from bats or a $(...)
# (the suite's output pipe) would keep that reader waiting until the daemon exits; a
# shared cluster outlives the suite, and a gateway restarted by a test outlives the test.
ceph_daemon() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-"
		done
		exec "$@"
	)
}

ceph_start_once() {
	CEPH_DIR=$(mktemp -d /tmp/kbv-ceph-XXXXXX)
	local d=$CEPH_DIR mon_port rgw_port fsid uuid
	mon_port=$(free_port)
	rgw_port=$(free_port)
	fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
	mkdir -p "$d/mon" "$d/osd" "$d/run" "$d/log" "$d/rgw"
	cat > "$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
ms bind ipv6 = false
public addr = 127.0.0.1
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $d/run
log file = $d/log/\$name.log
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
[mon.a]
mon data = $d/mon
[osd.0]
osd data = $d/osd
# At start the OSD asks the monitor to set its device class and its place in the CRUSH
# map; under load those commands can leave before the OSD knows the cluster's fsid, the
# monitor refuses them ("wrong fsid") and the OSD's start fails. The class is not needed,
# and ceph_start places the OSD itself (osd crush add, before the OSD starts).
osd class update on start = false
osd crush update on start = false
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $d/rgw
rgw dns name = 127.0.0.1
EOF
	local c="-c $d/ceph.conf"
	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$d/monmap" > /dev/null
	ceph-mon $c --mkfs -i a --monmap "$d/monmap" > "$d/log/mkfs-mon" 2>&1
	ceph_daemon ceph-mon $c -i a > "$d/log/start-mon" 2>&1
	local i
	for i in $(seq 1 100); do # the monitor answers
		timeout 10 ceph $c mon stat > /dev/null 2>&1 && break
		sleep 0.2
	done
	uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
	# On a loaded machine the monitor may take a while to accept commands: a few tries.
	for i in 1 2 3 4 5; do
		timeout 60 ceph $c osd new "$uuid" > "$d/log/osd-new" 2>&1 && break
		sleep 2
	done
	timeout 30 ceph $c osd ls 2> /dev/null | grep -qx 0 || {
		echo "ceph: osd new failed:" >&2
		tail -n 5 "$d/log/osd-new" "$d/log/mon.a.log" >&2
		return 1
	}
	timeout 60 ceph $c osd crush add osd.0 1.0 root=default > "$d/log/crush-add" 2>&1 || return 1
	ceph-osd $c -i 0 --mkfs --no-mon-config --osd-uuid "$uuid" > "$d/log/mkfs-osd" 2>&1 || return 1
	# Its exit status is not trusted either way: the OSD being up is what counts.
	ceph_daemon ceph-osd $c -i 0 > "$d/log/start-osd" 2>&1 || true
	for i in $(seq 1 150); do # the OSD is up
		timeout 10 ceph $c osd stat 2> /dev/null | grep -q '1 up' && break
		sleep 0.2
	done
	timeout 10 ceph $c osd stat 2> /dev/null | grep -q '1 up' || return 1
	ceph_daemon radosgw $c -n client.rgw.a > "$d/log/start-rgw" 2>&1 || return 1
	S3_ENDPOINT=http://127.0.0.1:$rgw_port
	AWS_ACCESS_KEY_ID=KBVTESTACCESSKEY000
	AWS_SECRET_ACCESS_KEY=kbvtestsecretkey0000000000000000000000
	export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY CEPH_DIR
	for i in $(seq 1 600); do # the gateway answers (it waits for the OSD)
		curl -s -o /dev/null "$S3_ENDPOINT" && break
		sleep 0.1
	done
	curl -s -o /dev/null "$S3_ENDPOINT" || { echo "ceph: radosgw did not start ($d/log)" >&2; return 1; }
	timeout 60 radosgw-admin $c user create --uid kbvtest --display-name kbvtest --access-key "$AWS_ACCESS_KEY_ID" \
		--secret "$AWS_SECRET_ACCESS_KEY" > /dev/null || { echo "ceph: radosgw-admin user create failed" >&2; return 1; }
}

# Stop and start the gateway alone (the cluster stays): a server that goes away mid-request.
ceph_rgw_stop() {
	local p="$CEPH_DIR/run/client.rgw.a.pid"
	[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
	rm -f "$p"
}

ceph_rgw_start() {
	ceph_daemon radosgw -c "$CEPH_DIR/ceph.conf" -n client.rgw.a >> "$CEPH_DIR/log/start-rgw" 2>&1
	local i
	for i in $(seq 1 600); do
		curl -s -o /dev/null "$S3_ENDPOINT" && return 0
		sleep 0.1
	done
	echo "ceph: radosgw did not start again ($CEPH_DIR/log)" >&2
	return 1
}

ceph_stop() {
	[ -z "${KBV_CEPH_SHARED:-}" ] || return 0
	[ -n "${CEPH_DIR:-}" ] || return 0
	for p in "$CEPH_DIR"/run/*.pid; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
	done
	sleep 0.5
	for p in "$CEPH_DIR"/run/*.pid; do
		[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
	done
	# a daemon of a failed start may have written no pid file
	pkill -9 -f -- "-c $CEPH_DIR/ceph.conf" 2>/dev/null || true
	rm -rf "$CEPH_DIR"
}
