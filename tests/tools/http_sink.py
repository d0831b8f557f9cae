#!/usr/bin/env python3
"""A loopback HTTP server that records every request, for the ping tests.

Not a stand-in for healthchecks.io: it answers any path, and writes one JSON line per
request (method, path, query, body) to --log. --mode ok answers 200 "OK" like
healthchecks.io; --mode error answers 500; --mode hang never answers.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--mode", choices=["ok", "error", "hang"], default="ok")
args = ap.parse_args()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        u = urlsplit(self.path)
        with lock, open(args.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": u.path, "query": parse_qs(u.query),
                                "body": body, "agent": self.headers.get("User-Agent", "")}) + "\n")
        if args.mode == "hang":
            time.sleep(3600)
            return
        code = 200 if args.mode == "ok" else 500
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = handle_any

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(args.port_file + ".tmp", args.port_file)
srv.serve_forever()
