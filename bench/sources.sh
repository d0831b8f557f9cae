#!/bin/bash
# Qdrant snapshots and Neo4j dumps over nights, through the STAND-INS of tests/standins
# (no Qdrant or Neo4j server can be installed here): how much each night adds to a
# kbvault repository, next to restic on the same bytes.
#   bench/sources.sh   (make bench-sources, ~1 minute)
# Writes bench/results/sources.md. The stand-ins' data is random bytes (like stored
# vectors: incompressible); each night rewrites 2% of one segment of each collection, and
# 2% of the Neo4j store.
set -euo pipefail
K=${KBVAULT:?}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=${BENCH_WORK:-/tmp/kbvault-bench-sources}
NIGHTS=7
rm -rf "$W"
mkdir -p "$W" bench/results
export KBVAULT_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/restic-cache"

python3 tests/standins/qdrant_standin.py --port-file "$W/port" --collections docs,chunks --segments 8 --segment-kb 2048 &
QPID=$!
trap 'kill $QPID 2> /dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.05; done
QURL="http://127.0.0.1:$(cat "$W/port")"

export NEO4J_STANDIN_HOME="$W/neo4j"
store="$NEO4J_STANDIN_HOME/data/databases/neo4j"
mkdir -p "$store"
# A store that compresses like a graph store does (structured records, about 3:1).
python3 - "$store" <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1] + "/neostore.nodestore.db", "wb") as f:
    for i in range(400000):
        f.write(b"node%08d|label:%s|%s\n" % (i, r.choice([b"Doc", b"Entity", b"Topic"]), r.randbytes(12).hex().encode()))
PY

cat > "$W/kbvault.conf" <<CONF
[repository]
path = $W/kbv
[source vectors]
type = qdrant
url = $QURL
[source graph]
type = neo4j
dump-command = $ROOT/tests/standins/neo4j-admin database dump neo4j --to-stdout
load-command = $ROOT/tests/standins/neo4j-admin database load neo4j --from-stdin --overwrite-destination=true
CONF
export KBVAULT_CONFIG="$W/kbvault.conf"
"$K" init -q --kdf-ops 1 --kdf-mem-mib 8
restic -r "$W/restic" init -q > /dev/null

# The same bytes for restic and for the uncompressed comparison: one more dump per night.
echo "night,qdrant_raw,neo4j_raw,kbv_qdrant_new,kbv_neo4j_new,restic_qdrant_new,restic_neo4j_new,tar_new" > "$W/series.csv"
for night in $(seq 0 $((NIGHTS - 1))); do
	if [ "$night" -gt 0 ]; then
		for c in docs chunks; do curl -sf -X POST "$QURL/__standin/mutate?collection=$c&fraction=0.02&seed=$night" > /dev/null; done
		python3 - "$store/neostore.nodestore.db" "$night" <<'PY'
import random, sys
path, night = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
r = random.Random(night)
for _ in range(200):  # 200 scattered edits, ~2% of the store
    off = r.randrange(0, len(data) - 200)
    data[off:off + 200] = r.randbytes(100).hex().encode()
open(path, "wb").write(data)
PY
	fi
	"$K" snapshot --json > "$W/snap.json"
	id=$(python3 -c 'import json; print(json.load(open("'"$W"'/snap.json"))["id"])')
	# Per source: what the night added to the repository (new chunk bytes of its streams).
	"$K" restore "$id" --source vectors --target "$W/q" -q
	"$K" restore "$id" --source graph --stdout > "$W/neo4j.dump"
	qraw=$(cat "$W"/q/vectors/*.snapshot | wc -c)
	nraw=$(stat -c %s "$W/neo4j.dump")
	# kbvault: the new bytes of each source, measured by storing it alone in a scratch copy
	# would double the work; instead snapshot each source separately into two repositories.
	for src in vectors graph; do
		[ -d "$W/kbv-$src" ] || KBVAULT_REPO="$W/kbv-$src" "$K" init -q --kdf-ops 1 --kdf-mem-mib 8
		case $src in
		vectors) KBVAULT_REPO="$W/kbv-$src" "$K" snapshot --json --source vectors > "$W/s-$src.json" ;;
		graph) KBVAULT_REPO="$W/kbv-$src" "$K" snapshot --json --source graph > "$W/s-$src.json" ;;
		esac
	done
	kq=$(python3 -c 'import json; print(json.load(open("'"$W"'/s-vectors.json"))["stored_bytes"])')
	kn=$(python3 -c 'import json; print(json.load(open("'"$W"'/s-graph.json"))["stored_bytes"])')
	# restic on the same files.
	before=$(du -sb "$W/restic" | cut -f1)
	cat "$W"/q/vectors/*.snapshot | restic -r "$W/restic" backup -q --stdin --stdin-filename qdrant.tar > /dev/null
	mid=$(du -sb "$W/restic" | cut -f1)
	restic -r "$W/restic" backup -q --stdin --stdin-filename neo4j.dump < "$W/neo4j.dump" > /dev/null
	after=$(du -sb "$W/restic" | cut -f1)
	# What the same Neo4j store would add uncompressed (its tar), to show what the zstd
	# layer of the dump format costs deduplication.
	[ -d "$W/kbv-tar" ] || KBVAULT_REPO="$W/kbv-tar" "$K" init -q --kdf-ops 1 --kdf-mem-mib 8
	tn=$(tar -C "$store" -cf - . | KBVAULT_REPO="$W/kbv-tar" "$K" snapshot --json --stdin store.tar | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
	echo "$night,$qraw,$nraw,$kq,$kn,$((mid - before)),$((after - mid)),$tn" >> "$W/series.csv"
	echo "night $night: $(tail -1 "$W/series.csv")"
	rm -rf "$W/q"
done
cp "$W/series.csv" bench/results/sources.csv
python3 - "$W/series.csv" bench/results/sources.md "$NIGHTS" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
mb = lambda v: int(v) / 1e6
L = [f"# Qdrant snapshots and Neo4j dumps over {sys.argv[3]} nights (stand-ins)", "",
     "Command: `make bench-sources` (bench/sources.sh). Bytes each night added (MB, after compression and encryption): a kbvault repository holding only that source, and restic, on the same bytes.", "",
     "| night | Qdrant snapshots (raw) | kbvault | restic | Neo4j dump (raw) | kbvault | restic | same store as plain tar, kbvault |", "|---|---|---|---|---|---|---|---|"]
for r in rows:
    L.append(f"| {r['night']} | {mb(r['qdrant_raw']):.1f} | {mb(r['kbv_qdrant_new']):.2f} | {mb(r['restic_qdrant_new']):.2f} | {mb(r['neo4j_raw']):.1f} | {mb(r['kbv_neo4j_new']):.2f} | {mb(r['restic_neo4j_new']):.2f} | {mb(r['tar_new']):.2f} |")
later = rows[1:]
avg = lambda k: sum(int(r[k]) for r in later) / len(later) / 1e6
L += ["", f"Mean per night after the first: Qdrant {avg('kbv_qdrant_new'):.2f} MB kbvault vs {avg('restic_qdrant_new'):.2f} MB restic of {avg('qdrant_raw'):.1f} MB; "
      f"Neo4j dump {avg('kbv_neo4j_new'):.2f} MB kbvault vs {avg('restic_neo4j_new'):.2f} MB restic of {avg('neo4j_raw'):.1f} MB; the same Neo4j store as an uncompressed tar would add {avg('tar_new'):.2f} MB."]
open(sys.argv[2], "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
