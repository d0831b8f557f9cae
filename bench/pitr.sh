#!/bin/bash
# Point-in-time recovery against pgBackRest 2.45 (Debian), one server, one run: the evolving
# knowledge base of bench/pg-evolve.sh archives every WAL file into both (archive_command
# runs kbvault wal-push, then pgbackrest archive-push); each night a kbvault base backup
# (mode = physical) and a pgBackRest backup (full the first night, incr after) are taken.
# Measured: bytes each base backup adds, repository size with the WAL, wal-push and
# archive-push per segment (wall and CPU, on copies of the same segments into fresh
# repositories), and the time to restore to a moment of the last night and have the
# server recovered there.
#   bench/pitr.sh quick   (~3 minutes)     bench/pitr.sh full   (~10 minutes)
# Needs KBVAULT; `make bench-pitr` sets it. Writes bench/results/pitr-<mode>.md and .csv.
set -euo pipefail
MODE=${1:-quick}
K=${KBVAULT:?}
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
W=${BENCH_WORK:-/tmp/kbvault-bench-pitr}
if [ "$MODE" = full ]; then DOCS=20000; NIGHTS=6; SCALE=10; SEGS=48; else DOCS=4000; NIGHTS=4; SCALE=4; SEGS=16; fi

# shellcheck source=../tests/cli/pg.bash
. tests/cli/pg.bash
# shellcheck source=pg/lib.sh
. bench/pg/lib.sh
rm -rf "$W"
mkdir -p "$W/segs" "$OUT"
chmod 755 "$W"
pg_start
cleanup() {
	for d in "$W"/r-*; do [ -d "$d" ] && pg_as "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop > /dev/null 2>&1; done
	pg_stop
}
trap cleanup EXIT

# Everything runs as the server's user: the archive_command does.
printf 'bench\n' > "$W/pw"
chmod 600 "$W/pw"
cat > "$W/kbvault.conf" <<CONF
[repository]
path = $W/kbv
password-file = $W/pw
[source kbp]
type = postgres
mode = physical
dsn = host=127.0.0.1 port=$PGPORT user=postgres
CONF
pgbr_conf() { # REPO
	cat <<CONF
[global]
repo1-path=$1
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
log-level-console=warn
log-level-file=off
start-fast=y
[kb]
pg1-path=$PGDIR/data
pg1-port=$PGPORT
pg1-socket-path=$PGDIR
CONF
}
pgbr_conf "$W/pgbr" > "$W/pgbackrest.conf"
mkdir -p "$W/pgbr" "$W/pgbr-log" "$W/pgbr-lock" "$W/cache"
[ "$(id -u)" = 0 ] && chown -R postgres "$W"
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); else AS=(); fi
as_pg() { "${AS[@]}" env HOME="$W" XDG_CACHE_HOME="$W/cache" "$@"; }
kbv() { as_pg "$K" -c "$W/kbvault.conf" "$@"; }
pgbr() { as_pg pgbackrest --config="$W/pgbackrest.conf" --stanza=kb "$@"; }

kbv init -q
cat >> "$PGDIR/data/postgresql.conf" <<CONF
archive_mode = on
archive_command = 'XDG_CACHE_HOME=$W/cache $K -c $W/kbvault.conf wal-push %p && pgbackrest --config=$W/pgbackrest.conf --stanza=kb archive-push %p'
CONF
pg_ctl_stop
pg_ctl_start
pgbr stanza-create > /dev/null
echo "== machine: $(nproc) cores; $("$K" version); $(pgbackrest version); $(pg_dump --version)"
echo "== night 0: $DOCS documents, pgbench scale $SCALE"
kb_create "$DOCS" "$SCALE"

size() { du -sb "$1" | cut -f1; }
CSV=$OUT/pitr-$MODE.csv
echo "night,cluster_bytes,kbv_backup_stored,pgbr_backup_bytes,pgbr_type,kbv_repo,pgbr_repo,kbv_s,pgbr_s" > "$CSV"
for night in $(seq 0 $((NIGHTS - 1))); do
	[ "$night" -gt 0 ] && kb_night "$night" "$SCALE" 0
	cluster=$(psql -XAtc "SELECT sum(pg_database_size(datname)) FROM pg_database")
	t0=$(date +%s.%N)
	stored=$(kbv snapshot --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
	t1=$(date +%s.%N)
	type=incr
	[ "$night" = 0 ] && type=full
	before=$(size "$W/pgbr/backup/kb" 2> /dev/null || echo 0)
	pgbr backup --type=$type > /dev/null
	t2=$(date +%s.%N)
	# the new backup's own directory (pgBackRest keeps one per backup, plus its manifest copies)
	last=$(ls -d "$W/pgbr/backup/kb/"*[FDI] | tail -1)
	pgbr_bytes=$(size "$last")
	row="$night,$cluster,$stored,$pgbr_bytes,$type,$(size "$W/kbv"),$(size "$W/pgbr")"
	row="$row,$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f,%.2f", b - a, c - b }')"
	echo "$row" >> "$CSV"
	echo "night $night: $row"
	if [ "$night" = $((NIGHTS - 1)) ]; then
		# a moment of the last night to recover to, with committed work on both sides
		psql_q -d kb -c "CREATE TABLE marker AS SELECT 'before' AS v" > /dev/null
		sleep 1.1
		TARGET=$(psql -XAtc "SELECT now()")
		sleep 1.1
		psql_q -d kb -c "INSERT INTO marker VALUES ('after')" > /dev/null
		"$PGBIN/pgbench" -n -c 1 -t 2000 kb > /dev/null 2>&1
		seg=$(psql -XAtc "SELECT pg_walfile_name(pg_switch_wal())")
		for i in $(seq 1 300); do
			[ "$(psql -XAtc "SELECT last_archived_wal >= '$seg' FROM pg_stat_archiver")" = t ] && break
			sleep 0.2
		done
	fi
done

# ---- restore to TARGET and recover: kbvault, then pgBackRest ----
recover() { # DIR PORT: start, wait until recovery has ended
	pg_as "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 600 -o "-c listen_addresses=127.0.0.1 -p $2 -c unix_socket_directories=$W" start > /dev/null
	for i in $(seq 1 6000); do
		[ "$(psql -XAt -h "$W" -p "$2" -d kb -c 'SELECT pg_is_in_recovery()' 2> /dev/null)" = f ] && return 0
		sleep 0.1
	done
	return 1
}
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p1=$(port)
t0=$(date +%s.%N)
kbv restore latest --source kbp --target-dir "$W/r-kbv" --target-time "$TARGET" -q
t1=$(date +%s.%N)
recover "$W/r-kbv" "$p1"
t2=$(date +%s.%N)
kbv_marker=$(psql -XAt -h "$W" -p "$p1" -d kb -c "SELECT string_agg(v, ',') FROM marker")
pg_as "$PGBIN/pg_ctl" -D "$W/r-kbv" -m fast -w stop > /dev/null
p2=$(port)
mkdir -p "$W/r-pgbr"
chmod 700 "$W/r-pgbr"
[ "$(id -u)" = 0 ] && chown postgres "$W/r-pgbr"
t3=$(date +%s.%N)
pgbr restore --pg1-path="$W/r-pgbr" --type=time --target="$TARGET" --target-action=promote > /dev/null
# the restored server must not archive into the benchmark's repositories
echo "archive_mode = off" >> "$W/r-pgbr/postgresql.auto.conf"
t4=$(date +%s.%N)
recover "$W/r-pgbr" "$p2"
t5=$(date +%s.%N)
pgbr_marker=$(psql -XAt -h "$W" -p "$p2" -d kb -c "SELECT string_agg(v, ',') FROM marker")
pg_as "$PGBIN/pg_ctl" -D "$W/r-pgbr" -m fast -w stop > /dev/null
[ "$kbv_marker" = before ] && [ "$pgbr_marker" = before ] ||
	{ echo "recovery to $TARGET did not stop there: kbvault '$kbv_marker', pgBackRest '$pgbr_marker'" >&2; exit 1; }
RESTORE="$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" 'BEGIN { printf "%.2f,%.2f,%.2f,%.2f", b - a, c - b, e - d, f - e }')"
echo "restore to $TARGET (kbvault restore, recovery; pgBackRest restore, recovery): $RESTORE"

# ---- archiving one segment at a time: the same segments into fresh repositories ----
psql_q -c "ALTER SYSTEM SET archive_command = 'cp %p $W/segs/%f'" > /dev/null
psql_q -c "SELECT pg_reload_conf()" > /dev/null
while [ "$(ls "$W/segs" | grep -c '^[0-9A-F]\{24\}$' || true)" -lt "$SEGS" ]; do
	"$PGBIN/pgbench" -n -c 2 -t 2000 kb > /dev/null 2>&1
	psql -XAtc "SELECT pg_switch_wal()" > /dev/null
	sleep 0.5
done
sed "s|^path = .*|path = $W/kbv2|" "$W/kbvault.conf" > "$W/kbvault2.conf"
pgbr_conf "$W/pgbr2" > "$W/pgbackrest2.conf"
mkdir -p "$W/pgbr2"
[ "$(id -u)" = 0 ] && chown -R postgres "$W"
as_pg "$K" -c "$W/kbvault2.conf" init -q
as_pg pgbackrest --config="$W/pgbackrest2.conf" --stanza=kb stanza-create > /dev/null
ls "$W/segs" | grep '^[0-9A-F]\{24\}$' | head -"$SEGS" > "$W/seglist"
segbytes=$(cd "$W/segs" && cat $(cat "$W/seglist") | wc -c)
gzbytes=$(cd "$W/segs" && cat $(cat "$W/seglist") | gzip -6 | wc -c)
timed() { # OUTFILE CMD...: wall, user and system seconds of the loop over the segments
	local out=$1
	shift
	SEGDIR="$W/segs" SEGLIST="$W/seglist" /usr/bin/time -f "%e,%U,%S" -o "$out" \
		bash -c 'while read -r f; do "$@" "$SEGDIR/$f" || exit 1; done < "$SEGLIST"' _ "$@"
}
timed "$W/t-kbv" "${AS[@]}" env HOME="$W" XDG_CACHE_HOME="$W/cache" "$K" -c "$W/kbvault2.conf" wal-push
timed "$W/t-pgbr" "${AS[@]}" env HOME="$W" pgbackrest --config="$W/pgbackrest2.conf" --stanza=kb archive-push
KBV_PUSH=$(cat "$W/t-kbv")
PGBR_PUSH=$(cat "$W/t-pgbr")
KBV_ARCH=$(size "$W/kbv2")
PGBR_ARCH=$(size "$W/pgbr2/archive")
echo "$SEGS segments ($segbytes bytes, gzip -6 $gzbytes): kbvault wal-push $KBV_PUSH -> $KBV_ARCH bytes; pgbackrest archive-push $PGBR_PUSH -> $PGBR_ARCH bytes"

python3 - "$CSV" "$OUT/pitr-$MODE.md" "$MODE" "$SEGS" "$segbytes" "$gzbytes" "$KBV_PUSH" "$PGBR_PUSH" "$KBV_ARCH" "$PGBR_ARCH" "$RESTORE" "$TARGET" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, mode, segs, segbytes, gzbytes = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
kp, pp = [float(x) for x in sys.argv[7].split(",")], [float(x) for x in sys.argv[8].split(",")]
karch, parch = int(sys.argv[9]), int(sys.argv[10])
r = [float(x) for x in sys.argv[11].split(",")]
target = sys.argv[12]
mb = lambda b: int(b) / 1e6
L = [f"# Point-in-time recovery: kbvault and pgBackRest 2.45 ({mode})", "",
     f"Command: `make bench-pitr{'-quick' if mode == 'quick' else ''}` (bench/pitr.sh {mode}). One PostgreSQL 15 server, the evolving knowledge base of bench/pg-evolve.sh; its archive_command pushes every WAL file into both. kbvault encrypts, pgBackRest (default settings: gz compression) does not.", "",
     "## Base backups, each night", "",
     "| night | cluster MB | kbvault base backup stored MB | pgBackRest backup MB (type) | kbvault repository MB | pgBackRest repository MB | kbvault s | pgBackRest s |",
     "|---|---|---|---|---|---|---|---|"]
for x in rows:
    L.append(f"| {x['night']} | {mb(x['cluster_bytes']):.1f} | {mb(x['kbv_backup_stored']):.2f} | {mb(x['pgbr_backup_bytes']):.2f} ({x['pgbr_type']}) | {mb(x['kbv_repo']):.1f} | {mb(x['pgbr_repo']):.1f} | {x['kbv_s']} | {x['pgbr_s']} |")
later = rows[1:]
kb = sum(int(x["kbv_backup_stored"]) for x in later) / max(len(later), 1)
pb = sum(int(x["pgbr_backup_bytes"]) for x in later) / max(len(later), 1)
L += ["", f"Mean bytes a nightly base backup adds after the first: kbvault {kb/1e6:.2f} MB, pgBackRest incr {pb/1e6:.2f} MB: **x{pb/kb if kb else 0:.1f}** in kbvault's favour." if kb else "",
      f"First night: kbvault {mb(rows[0]['kbv_backup_stored']):.1f} MB, pgBackRest full {mb(rows[0]['pgbr_backup_bytes']):.1f} MB. Repository with all WAL after the last night: kbvault {mb(rows[-1]['kbv_repo']):.1f} MB, pgBackRest {mb(rows[-1]['pgbr_repo']):.1f} MB.", "",
      "## Archiving: the same segments, one process per segment, fresh repositories", "",
      f"{segs} segments of pgbench WAL ({segbytes/1e6:.0f} MB; gzip -6 makes {gzbytes/1e6:.1f} MB of them).", "",
      "| | wall s | segments/s | CPU ms per segment (user+sys) | archive MB |", "|---|---|---|---|---|",
      f"| kbvault wal-push | {kp[0]:.2f} | {segs/kp[0]:.1f} | {1000*(kp[1]+kp[2])/segs:.0f} | {karch/1e6:.1f} |",
      f"| pgbackrest archive-push | {pp[0]:.2f} | {segs/pp[0]:.1f} | {1000*(pp[1]+pp[2])/segs:.0f} | {parch/1e6:.1f} |",
      f"| ratio (pgBackRest time / kbvault time) | x{pp[0]/kp[0]:.2f} | | x{(pp[1]+pp[2])/(kp[1]+kp[2]):.2f} | |", "",
      f"## Restore to a time of the last night ({target}), until the server has left recovery", "",
      "| | restore s | recovery s | total s |", "|---|---|---|---|",
      f"| kbvault restore --target-dir --target-time | {r[0]:.2f} | {r[1]:.2f} | {r[0]+r[1]:.2f} |",
      f"| pgbackrest restore --type=time | {r[2]:.2f} | {r[3]:.2f} | {r[2]+r[3]:.2f} |", "",
      "Both recovered clusters hold the row committed before the target and not the one after it (checked)."]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
