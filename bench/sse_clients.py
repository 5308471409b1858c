"""Many HTTP clients in one process (asyncio, uvloop when installed), driven over stdin/stdout
by the bench (harness/streams.py, scenario sse-10k).

    python bench/sse_clients.py --port P --path /sse/sub --count 10000 [--mode sse|idle]

It opens `count` connections (at most --in-flight being set up at a time) and sends one GET on
each.  Mode `idle`: waits for each whole response (Content-Length) and keeps the connection
open (an idle keep-alive connection).  Mode `sse`: waits for each response's head (200) and
keeps reading the stream.  Then it prints one JSON line {"ready": n, "failed": n, "sample": [..]}
and obeys commands, one per line on stdin, answering each with one JSON line:

    publish N   POST /sse/publish with the body "ev-N" on a connection of its own; the time
                each stream receives "ev-N" is taken as it arrives (time.monotonic(), read in
                data_received); answers when every open stream has it (or after --wait s):
                {"received", "streams", "first_ms", "p50_ms", "p99_ms", "last_ms", "answer"}
                (ms after the POST was written: the client's own reading of 10,000 sockets
                is included, so the figures are upper bounds)
    alive       {"alive": connections the server has not closed}
    quit        closes everything and exits
"""
import argparse
import asyncio
import json
import resource
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Client(asyncio.Protocol):
    __slots__ = ("mode", "request", "buf", "ready", "closed", "marker", "got", "transport",
                 "waiting")

    def __init__(self, mode, request, ready):
        self.mode, self.request, self.ready = mode, request, ready
        self.buf = b""
        self.closed = False
        self.marker = None
        self.got = None
        self.transport = None
        self.waiting = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.monotonic()
        if self.ready is not None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            if not head.startswith("HTTP/1.1 200"):
                self._fail("status " + head.split("\r\n", 1)[0])
                return
            if self.mode == "idle":
                length = None
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length is None:
                    self._fail("no content-length")
                    return
                if len(self.buf) - end - 4 < length:
                    return
            ready, self.ready = self.ready, None
            self.buf = b""
            if not ready.done():
                ready.set_result(True)
            return
        marker = self.marker
        if marker is not None and self.got is None:
            self.buf = (self.buf + data)[-64:]  # an event may arrive split
            if marker in self.buf:
                self.got = now
                if self.waiting is not None:
                    self.waiting[0] -= 1
                    if self.waiting[0] == 0 and not self.waiting[1].done():
                        self.waiting[1].set_result(None)

    def _fail(self, why):
        ready, self.ready = self.ready, None
        if ready is not None and not ready.done():
            ready.set_exception(ConnectionError(why))
        self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the response"))
        if self.waiting is not None and self.marker is not None and self.got is None:
            self.waiting[0] -= 1
            if self.waiting[0] == 0 and not self.waiting[1].done():
                self.waiting[1].set_result(None)


async def open_all(args):
    loop = asyncio.get_running_loop()
    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    sem = asyncio.Semaphore(args.in_flight)
    clients, failures = [], []

    async def one():
        async with sem:
            ready = loop.create_future()
            try:
                _, proto = await loop.create_connection(
                    lambda: Client(args.mode, request, ready), "127.0.0.1", args.port)
                await asyncio.wait_for(ready, args.wait)
                clients.append(proto)
            except (OSError, asyncio.TimeoutError) as e:
                failures.append(repr(e)[:120])

    await asyncio.gather(*(one() for _ in range(args.count)))
    return clients, failures


async def publish(args, clients, n):
    loop = asyncio.get_running_loop()
    marker = b"ev-%d" % n
    live = [c for c in clients if not c.closed]
    waiting = [len(live), loop.create_future()]
    for c in live:
        c.marker, c.got, c.buf, c.waiting = marker, None, b"", waiting
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    t0 = time.monotonic()
    writer.write(b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(marker), marker))
    answer = b""
    try:
        if live:
            await asyncio.wait_for(waiting[1], args.wait)
    except asyncio.TimeoutError:
        pass
    try:
        answer = await asyncio.wait_for(reader.read(), args.wait)
    except asyncio.TimeoutError:
        pass
    writer.close()
    times = sorted((c.got - t0) * 1000 for c in live if c.got is not None)
    for c in live:
        c.marker, c.waiting = None, None

    def at(q):
        return round(times[min(len(times) - 1, int(q * len(times)))], 2) if times else None

    body = answer.partition(b"\r\n\r\n")[2].decode("latin-1", "replace")
    return {"received": len(times), "streams": len(live), "first_ms": at(0.0),
            "p50_ms": at(0.5), "p99_ms": at(0.99), "last_ms": at(1.0), "answer": body[:200]}


async def main(args):
    raise_nofile(args.count + 100)
    clients, failures = await open_all(args)
    out = {"ready": len(clients), "failed": len(failures), "sample": sorted(set(failures))[:3]}
    print(json.dumps(out), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        if line[0] == "publish":
            print(json.dumps(await publish(args, clients, int(line[1]))), flush=True)
        elif line[0] == "alive":
            print(json.dumps({"alive": sum(not c.closed for c in clients)}), flush=True)
    for c in clients:
        c.transport.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/sse/sub")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--mode", choices=("sse", "idle"), default="sse")
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for any one step")
    a = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(a))
    else:
        uvloop.run(main(a))
