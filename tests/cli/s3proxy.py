#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the test S3 server (tests/cli/s3.bats).

    s3proxy.py UPSTREAM_PORT RULES_FILE PORT_FILE

Listens on a free loopback port (written to PORT_FILE), forwards every request unchanged
(Host header included, so SigV4 signatures stay valid) to 127.0.0.1:UPSTREAM_PORT, and
before each one reads RULES_FILE, one rule per line, applied to the n-th request since the
rules last changed (counting from 1):

    every N 503      answer 503 SlowDown instead of forwarding, every N-th request
    every N 500      the same with 500 InternalError
    every N reset    read the request, then close the connection without an answer
    every N cut      forward a PUT, but close the connection after half of its body
    METHOD STATUS CODE  answer every METHOD request (PUT, GET, ...) with that HTTP status
                     and S3 error code (PUT 403 QuotaExceeded, PUT 503 SlowDown)
    METHOD STATUS CODE TEXT  the same for the METHOD requests whose path holds TEXT
    always 503       every request 503 SlowDown
    lag TEXT MS      hold every request whose path or Range header holds TEXT for MS
                     milliseconds before forwarding it (beside the other rules; the holds of
                     several matching rules add up): requests a client sends side by side
                     are then in flight together whatever the machine's speed
    together N       hold each of the first N requests until all N have arrived (at most
                     3 s), then forward them; each is logged to RULES_FILE.together as
                     "METHOD PATH together" or, when the wait ran out, "METHOD PATH alone":
                     requests a client sends side by side arrive together, requests it
                     sends one after the other never do

An empty file forwards everything. Served requests are counted in RULES_FILE.count, and
each one is logged to RULES_FILE.log as "METHOD PATH RANGE EXPECT CONTENT-TYPE" (a header
the request did not send is "-"), and to RULES_FILE.inflight as "METHOD PATH RANGE N": N
requests were being served when it arrived, itself included (N > 1: a client sent it while
others were still on their way), and to RULES_FILE.times as "SECONDS METHOD PATH", the
proxy's monotonic clock when it arrived.
"""
import http.client
import http.server
import os
import socketserver
import sys
import threading
import time

UPSTREAM = int(sys.argv[1])
RULES = sys.argv[2]
lock = threading.Lock()
state = {"rules": None, "n": 0, "served": 0, "inflight": 0}
held = threading.Condition()  # requests held by "together N"
gate = {"arrived": 0}

ERR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
       "<Message>injected by s3proxy</Message></Error>")


def next_action(method, path):
    try:
        with open(RULES) as f:
            rules = f.read()
    except OSError:
        rules = ""
    with lock:
        if rules != state["rules"]:
            state["rules"], state["n"] = rules, 0
            with held:
                gate["arrived"] = 0
        state["n"] += 1
        state["served"] += 1
        n = state["n"]
        with open(RULES + ".count", "w") as f:
            f.write(str(state["served"]))
    for line in rules.splitlines():
        w = line.split()
        if len(w) == 3 and w[0] == "every" and n % int(w[1]) == 0:
            return w[2], None
        if len(w) == 2 and w[0] == "always":
            return w[1], None
        if len(w) == 2 and w[0] == "together" and n <= int(w[1]):
            return "together", int(w[1])
        if len(w) in (3, 4) and w[0] == method and (len(w) == 3 or w[3] in path):
            return "status", (int(w[1]), w[2])
    return None, None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, code):
        body = ERR.format(code=code).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        with lock, open(RULES + ".inflight", "a") as f:
            state["inflight"] += 1
            f.write(f"{self.command} {self.path} {self.headers.get('Range', '-').replace(' ', '')} {state['inflight']}\n")
            with open(RULES + ".times", "a") as t:
                t.write(f"{time.monotonic():.6f} {self.command} {self.path}\n")
        try:
            self.serve_one()
        finally:
            with lock:
                state["inflight"] -= 1

    def serve_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        with lock, open(RULES + ".log", "a") as log:
            log.write(" ".join([self.command, self.path] + [self.headers.get(h, "-").replace(" ", "")
                                                             for h in ("Range", "Expect", "Content-Type")]) + "\n")
        try:
            with open(RULES) as f:
                for w in (line.split() for line in f):
                    if len(w) == 3 and w[0] == "lag" and (w[1] in self.path or w[1] in self.headers.get("Range", "")):
                        time.sleep(int(w[2]) / 1000)
        except OSError:
            pass
        action, code = next_action(self.command, self.path)
        if action == "together":
            with held:
                gate["arrived"] += 1
                held.notify_all()
                met = held.wait_for(lambda: gate["arrived"] >= code, timeout=3)
            with lock, open(RULES + ".together", "a") as f:
                f.write(f"{self.command} {self.path} {'together' if met else 'alone'}\n")
            action = None
        if action == "cut" and self.command == "PUT" and length > 1:
            self.rfile.read(length // 2)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        body = self.rfile.read(length) if length else b""
        if action == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if action in ("503", "500"):
            self.answer(int(action), "SlowDown" if action == "503" else "InternalError")
            return
        if action == "status":
            self.answer(*code)
            return
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
        up.request(self.command, self.path, body=body, headers=headers)
        r = up.getresponse()
        data = r.read()
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        # a HEAD reply keeps the object's length; others say what is sent
        self.send_header("Content-Length", r.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        up.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Proxy)
tmp = sys.argv[3] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[3])
srv.serve_forever()
