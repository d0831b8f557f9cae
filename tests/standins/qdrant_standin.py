#!/usr/bin/env python3
"""STAND-IN for Qdrant's REST API, for kbvault's tests only (no Qdrant server can be
installed on the test machines). It implements the endpoints kbvault uses, with the paths,
JSON shapes, status codes and checksum semantics of Qdrant's published OpenAPI spec:

  GET    /                                           {"title", "version", "commit"}
  GET    /collections                                {"result": {"collections": [{"name"}]}, "status": "ok", "time"}
  GET    /collections/{c}                            {"result": {"status", "points_count", ...}} or 404
  DELETE /collections/{c}                            {"result": true}
  POST   /collections/{c}/snapshots?wait=true        {"result": {"name", "creation_time", "size", "checksum"}}
  GET    /collections/{c}/snapshots                  {"result": [snapshot descriptions]}
  GET    /collections/{c}/snapshots/{name}           the snapshot file (an uncompressed tar)
  DELETE /collections/{c}/snapshots/{name}           {"result": true}
  POST   /collections/{c}/snapshots/upload?priority=snapshot&checksum=SHA256
         multipart/form-data, field "snapshot"       {"result": true}; 400 on a checksum mismatch

Errors are {"status": {"error": "..."}, "time": ...}. With --api-key, every request needs
the header `api-key`. A collection is a few "segment" files of random bytes (like stored
vectors) plus its point count; snapshots are tars of them. Test controls (not Qdrant's):

  POST /__standin/mutate?collection=c&fraction=F&points=N   rewrite a fraction F of one
        segment in place and add N points (segments change partially between snapshots)
  POST /__standin/fault?mode=M[&count=K]    the next K matching requests fail:
        create-500, download-500, drop (close the connection halfway through a download),
        bad-checksum (create reports a wrong SHA-256), slow (stall a download)
  GET  /__standin/state                      collections, points, snapshots left on the server

Usage: qdrant_standin.py --port-file FILE [--api-key KEY] [--collections a,b] [--seed N]
                         [--segments N] [--segment-kb N]
"""
import argparse
import hashlib
import io
import json
import random
import tarfile
import threading
import time
import urllib.parse
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COLLECTIONS = {}  # name -> {"segments": {file: bytearray}, "points": int}
SNAPSHOTS = {}    # name -> {snapshot name: bytes}
FAULTS = {}       # mode -> remaining count
ARGS = None
SEQ = [0]


def new_collection(rng, points):
    segs = {}
    for i in range(ARGS.segments):
        segs[f"segments/{i:02d}/vectors.bin"] = bytearray(rng.randbytes(ARGS.segment_kb * 1024))
    return {"segments": segs, "points": points}


def tar_of(coll):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(bytes(data)))
        add("config.json", json.dumps({"points_count": coll["points"]}).encode())
        for name in sorted(coll["segments"]):
            add(name, coll["segments"][name])
    return buf.getvalue()


def from_tar(data):
    segs, points = {}, None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as t:
        for m in t.getmembers():
            content = t.extractfile(m).read()
            if m.name == "config.json":
                points = json.loads(content)["points_count"]
            else:
                segs[m.name] = bytearray(content)
    if points is None:
        raise ValueError("not a collection snapshot (no config.json)")
    return {"segments": segs, "points": points}


def take_fault(mode):
    with LOCK:
        n = FAULTS.get(mode, 0)
        if n > 0:
            FAULTS[mode] = n - 1
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def ok(self, result):
        self.reply(200, {"result": result, "status": "ok", "time": 0.001})

    def error(self, code, msg):
        self.reply(code, {"status": {"error": msg}, "time": 0.001})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if parts[:1] == ["__standin"]:
            return self.control(method, parts[1:], q)
        if ARGS.api_key and self.headers.get("api-key") != ARGS.api_key:
            # Read what the client sends first: closing with its upload unread makes the
            # kernel reset the connection, and the client may see the reset, not the 403.
            self.body()
            return self.error(403, "Invalid api-key")
        if method == "GET" and parts == []:
            return self.reply(200, {"title": "qdrant - vector search engine", "version": "1.12.4-standin", "commit": "standin"})
        if parts[:1] != ["collections"]:
            return self.error(404, "Not found")
        if method == "GET" and len(parts) == 1:
            return self.ok({"collections": [{"name": n} for n in sorted(COLLECTIONS)]})
        c = parts[1] if len(parts) > 1 else None
        if len(parts) == 2:
            if c not in COLLECTIONS:
                return self.error(404, f"Not found: Collection `{c}` doesn't exist!")
            if method == "GET":
                coll = COLLECTIONS[c]
                return self.ok({"status": "green", "optimizer_status": "ok", "points_count": coll["points"],
                                "indexed_vectors_count": coll["points"], "segments_count": len(coll["segments"])})
            if method == "DELETE":
                with LOCK:
                    del COLLECTIONS[c]
                return self.ok(True)
        if len(parts) >= 3 and parts[2] == "snapshots":
            return self.snapshots(method, c, parts[3:], q)
        return self.error(404, "Not found")

    def snapshots(self, method, c, rest, q):
        if method == "POST" and rest == ["upload"]:
            return self.upload(c, q)
        if c not in COLLECTIONS:
            return self.error(404, f"Not found: Collection `{c}` doesn't exist!")
        snaps = SNAPSHOTS.setdefault(c, {})
        if method == "POST" and not rest:
            if take_fault("create-500"):
                return self.error(500, "Service internal error: stand-in told to fail")
            with LOCK:
                SEQ[0] += 1
                data = tar_of(COLLECTIONS[c])
                name = f"{c}-{SEQ[0]}-2026-11-25-12-00-00.snapshot"
                snaps[name] = data
            checksum = hashlib.sha256(data).hexdigest()
            if take_fault("bad-checksum"):
                checksum = hashlib.sha256(b"something else").hexdigest()
            return self.ok({"name": name, "creation_time": "2026-11-25T12:00:00", "size": len(data), "checksum": checksum})
        if method == "GET" and not rest:
            return self.ok([{"name": n, "size": len(d), "checksum": hashlib.sha256(d).hexdigest()} for n, d in snaps.items()])
        if len(rest) == 1 and rest[0] in snaps:
            data = snaps[rest[0]]
            if method == "DELETE":
                with LOCK:
                    del snaps[rest[0]]
                return self.ok(True)
            if method == "GET":
                if take_fault("download-500"):
                    return self.error(500, "Service internal error: stand-in told to fail")
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if take_fault("drop"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if take_fault("slow"):
                    self.wfile.write(data[:1000])
                    self.wfile.flush()
                    time.sleep(30)
                    return None
                for off in range(0, len(data), 1 << 16):
                    self.wfile.write(data[off:off + (1 << 16)])
                return None
        return self.error(404, "Not found: snapshot")

    def upload(self, c, q):
        if q.get("priority") not in (None, "snapshot", "replica", "no_sync"):
            return self.error(400, "Bad request: priority")
        raw = self.body()
        msg = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + self.headers.get("Content-Type", "").encode() + b"\r\n\r\n" + raw)
        data = None
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "snapshot":
                data = part.get_payload(decode=True)
        if data is None:
            return self.error(400, "Bad request: no multipart field 'snapshot'")
        if "checksum" in q and hashlib.sha256(data).hexdigest() != q["checksum"]:
            return self.error(400, "Bad request: Snapshot checksum mismatch: expected "
                              f"{q['checksum']}, got {hashlib.sha256(data).hexdigest()}")
        try:
            coll = from_tar(data)
        except Exception as e:  # a damaged upload is the client's error, as in Qdrant
            return self.error(400, f"Bad request: {e}")
        with LOCK:
            COLLECTIONS[c] = coll
        return self.ok(True)

    def control(self, method, parts, q):
        if method == "GET" and parts == ["state"]:
            return self.reply(200, {"collections": {n: c["points"] for n, c in COLLECTIONS.items()},
                                    "snapshots_on_server": sum(len(s) for s in SNAPSHOTS.values())})
        if method == "POST" and parts == ["fault"]:
            FAULTS[q["mode"]] = int(q.get("count", 1))
            return self.reply(200, {"ok": True})
        if method == "POST" and parts == ["mutate"]:
            c = COLLECTIONS[q["collection"]]
            rng = random.Random(q.get("seed", "0") + q["collection"] + str(c["points"]))
            seg = c["segments"][sorted(c["segments"])[rng.randrange(len(c["segments"]))]]
            n = int(len(seg) * float(q.get("fraction", "0.05")))
            off = rng.randrange(0, len(seg) - n + 1)
            with LOCK:
                seg[off:off + n] = rng.randbytes(n)
                c["points"] += int(q.get("points", "10"))
            return self.reply(200, {"ok": True})
        return self.error(404, "unknown stand-in control")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--api-key")
    p.add_argument("--collections", default="docs,chunks")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--segment-kb", type=int, default=256)
    ARGS = p.parse_args()
    rng = random.Random(ARGS.seed)
    for i, name in enumerate(ARGS.collections.split(",")):
        COLLECTIONS[name] = new_collection(rng, 1000 * (i + 1))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
