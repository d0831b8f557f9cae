#!/usr/bin/env python3
"""A TCP proxy that adds network latency, for benchmarks (bench/s3.sh RTT_MS=N).

    lagproxy.py UPSTREAM_PORT RTT_MS PORT_FILE

Listens on a free loopback port (written to PORT_FILE) and relays every connection to
127.0.0.1:UPSTREAM_PORT, holding each piece of data RTT_MS / 2 milliseconds in each
direction: a request and its reply then take one more round trip of RTT_MS, as they do
to a storage service across a network. Bandwidth is what loopback and this process give.
The proxy acknowledges what it reads at once (TCP_QUICKACK): a delayed acknowledgement
would hold the server's next write back by up to 40 ms, which no real network adds here.
"""
import asyncio
import os
import socket
import sys
import time

UPSTREAM, DELAY, PORT_FILE = int(sys.argv[1]), float(sys.argv[2]) / 2000, sys.argv[3]


def quickack(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass


async def relay(reader, peer_of_reader, writer):
    """Copy reader to writer, each piece sent DELAY after it arrived."""
    queue = asyncio.Queue()

    async def take():
        while True:
            data = await reader.read(1 << 20)
            quickack(peer_of_reader)
            await queue.put((time.monotonic() + DELAY, data))
            if not data:
                return

    async def give():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(take(), give(), return_exceptions=True)


async def serve(client_r, client_w):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(relay(client_r, client_w, up_w), relay(up_r, up_w, client_w),
                         return_exceptions=True)
    client_w.close()
    up_w.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    tmp = PORT_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.rename(tmp, PORT_FILE)
    async with server:
        await server.serve_forever()


asyncio.run(main())
