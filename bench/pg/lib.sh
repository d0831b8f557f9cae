# The knowledge base of the benchmarks (bench/kb.sh, bench/pg-evolve.sh), on the server of
# tests/cli/pg.bash. Source after pg_start.

# kb_create DOCS SCALE: database kb with DOCS documents (bench/pg/kb-init.sql) and the
# pgbench tables at SCALE.
kb_create() {
	createdb kb
	psql_q -d kb -v docs="$1" -f bench/pg/kb-init.sql > /dev/null
	"$PGBIN/pgbench" -i -q -s "$2" kb > /dev/null 2>&1
}

# kb_night DAY SCALE REWRITE_DAY: one night of churn (bench/pg/kb-day.sql), SCALE x 2000
# pgbench transactions, VACUUM ANALYZE, and on REWRITE_DAY a CLUSTER that rewrites the
# chunks table in another order.
kb_night() {
	psql_q -d kb -v day="$1" -f bench/pg/kb-day.sql > /dev/null
	"$PGBIN/pgbench" -n -c 1 -t $(($2 * 2000)) --random-seed="$1" kb > /dev/null 2>&1
	psql_q -d kb -c "VACUUM ANALYZE" > /dev/null
	if [ "$1" = "$3" ]; then psql_q -d kb -c "CLUSTER chunks USING chunks_doc" > /dev/null; fi
}
