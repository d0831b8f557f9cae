#!/usr/bin/env python3
"""The Qdrant-like and Neo4j-like data of bench/kb.sh, evolving night by night.

  streams.py init DIR SEGMENTS SEGMENT_KB STORE_RECORDS
  streams.py night DIR NIGHT

DIR/qdrant/<collection>/segment-N.bin: random bytes, like stored float vectors (they do
not compress); each night rewrites 2% of one segment of each collection and appends a
little to the last one (new points). DIR/neo4j/neostore.db: structured records that
compress about 3:1 like a graph store's; each night 200 scattered edits. bench/kb.sh turns
them into a tar snapshot (what Qdrant's snapshot API returns) and a DZV1 + zstd dump (what
`neo4j-admin database dump --to-stdout` writes). Deterministic from the night number."""
import os
import random
import sys

COLLECTIONS = ("docs", "chunks")


def init(d, segments, seg_kb, records):
    r = random.Random(1)
    for c in COLLECTIONS:
        os.makedirs(f"{d}/qdrant/{c}", exist_ok=True)
        for s in range(segments):
            with open(f"{d}/qdrant/{c}/segment-{s}.bin", "wb") as f:
                f.write(r.randbytes(seg_kb * 1024))
    os.makedirs(f"{d}/neo4j", exist_ok=True)
    with open(f"{d}/neo4j/neostore.db", "wb") as f:
        for i in range(records):
            f.write(b"node%08d|label:%s|%s\n" % (i, r.choice([b"Doc", b"Entity", b"Topic"]), r.randbytes(12).hex().encode()))


def night(d, n):
    r = random.Random(1000 + n)
    for c in COLLECTIONS:
        segs = sorted(os.listdir(f"{d}/qdrant/{c}"))
        path = f"{d}/qdrant/{c}/{r.choice(segs)}"
        data = bytearray(open(path, "rb").read())
        span = len(data) // 50
        off = r.randrange(0, len(data) - span)
        data[off:off + span] = r.randbytes(span)
        open(path, "wb").write(data)
        with open(f"{d}/qdrant/{c}/{segs[-1]}", "ab") as f:
            f.write(r.randbytes(16 * 1024))
    path = f"{d}/neo4j/neostore.db"
    data = bytearray(open(path, "rb").read())
    for _ in range(200):
        off = r.randrange(0, len(data) - 200)
        data[off:off + 200] = r.randbytes(100).hex().encode()
    open(path, "wb").write(data)


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        night(sys.argv[2], int(sys.argv[3]))
