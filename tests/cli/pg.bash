# A private PostgreSQL server for tests: Debian's postgresql package, initdb into a fresh
# directory, listening on 127.0.0.1 only, on a free port. Real pg_dump, psql, pg_restore.
# Use pg_start in setup_file and pg_stop in teardown_file.

pg_start() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server not installed (make deps)" >&2; return 1; }
	export PGBIN
	export PGDIR
	PGDIR=$(mktemp -d /tmp/kbvault-pg.XXXXXX)
	chmod 755 "$PGDIR"
	export PGPORT
	PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres
	[ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
	pg_as "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync > "$PGDIR/initdb.log" 2>&1 ||
		{ cat "$PGDIR/initdb.log" >&2; return 1; }
	pg_ctl_start
}

# The server refuses to run as root; as root, run it as the package's postgres user.
pg_as() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ctl_start() {
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=$PGDIR -c fsync=off" start > /dev/null ||
		{ cat "$PGDIR/server.log" >&2; return 1; }
}

pg_ctl_stop() {
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop > /dev/null 2>&1 || true
}

pg_stop() {
	[ -n "${PGDIR:-}" ] || return 0
	pg_ctl_stop
	rm -rf "$PGDIR"
}

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# pg_password_role NAME PASSWORD: a superuser that must log in with its password over TCP
# (scram-sha-256 in pg_hba.conf); pg_password_role_end removes the pg_hba line again.
pg_password_role() {
	psql_q -c "CREATE ROLE $1 LOGIN SUPERUSER PASSWORD '$2'" > /dev/null
	sed -i "1i host all $1 127.0.0.1/32 scram-sha-256" "$PGDIR/data/pg_hba.conf"
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" reload > /dev/null
	sleep 0.3
}

pg_password_role_end() {
	sed -i "/^host all $1 127.0.0.1\/32 scram-sha-256$/d" "$PGDIR/data/pg_hba.conf"
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" reload > /dev/null
}
