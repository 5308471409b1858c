"""Leak check of the C extension under a request-heavy load (valgrind memcheck).

Runs the real server (ASGI, WSGI, then a flask-restful Api app on the native path: the loop,
the pool through run_wsgi and submit, the Redis client against a redis-server of its own, and
streams: files by sendfile on both roads, a generated stream, an upload read as it arrives, a
Broadcast subscriber with pings, a followed file) under valgrind with PYTHONMALLOC=malloc, sends a mix of
keep-alive and pipelined requests, bodies (Content-Length and chunked), app errors, malformed
requests and clients that vanish mid-request, stops it with SIGTERM, and fails if valgrind
reports memory definitely or indirectly lost from a stack that passes through
flask_restful_async._core.  CPython's own allocations at exit are not ours and are not counted.

    .venv/bin/python scripts/leakcheck.py [--requests N]     (make leakcheck)
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = '''
import asyncio
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            await send({"type": m["type"] + ".complete"})
            if m["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] == "/sleep":
        await asyncio.sleep(0.001)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok:%d" % len(body)})

def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok:%d" % len(body)]

from flask import Flask, request
from flask_restful_async import Api, AsyncResource, Resource
from flask_restful_async.compat import run_sync

native = Flask("leakapp")
native_api = Api(native)

class Any(AsyncResource):                       # on the loop
    async def get(self, path=""):
        if path == "boom":
            raise RuntimeError("boom")
        return "ok:0"

class Sleep(AsyncResource):                     # on the loop, a call in the pool (submit)
    async def get(self):
        await asyncio.sleep(0.001)
        return "ok:%d" % await run_sync(lambda: 0)

import os
from flask_restful_async.redis import Redis, ResponseError
redis = Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)

class RedisUse(AsyncResource):                  # the Redis client on the server's loop
    async def get(self):
        await redis.incr("n")
        await redis.rpush("l", "x" * 100)
        await redis.ltrim("l", 0, 9)
        await redis.lrange("l", 0, -1)
        await redis.set("s", "text")
        try:
            await redis.incr("s")                   # an error reply
        except ResponseError:
            pass
        async with redis.pipeline() as p:
            p.incr("n").get("n").hgetall("missing")
            await p.execute()
        return "ok:0"

class Post(Resource):                           # in the pool, called directly (run_wsgi)
    def post(self):
        return "ok:%d" % len(request.get_data())

from flask_restful_async.streaming import (Broadcast, Event, EventStream, body_chunks, follow,
                                           send_file)
STREAM_DIR = os.environ["LEAKCHECK_STREAM_DIR"]
news = Broadcast(history=4)

class File(AsyncResource):                      # sendfile from the loop (zerocopy), ranges
    async def get(self):
        return send_file(os.path.join(STREAM_DIR, "file.bin"))

class SyncFile(Resource):                       # sendfile through wsgi.file_wrapper
    def get(self):
        return send_file(os.path.join(STREAM_DIR, "file.bin"))

class Gen(AsyncResource):                       # a generated stream, chunked
    async def get(self):
        async def chunks():
            for i in range(5):
                yield b"%d" % i * 1000
        return chunks()

class Up(AsyncResource):                        # a body read as it arrives
    async def put(self):
        n = 0
        async for chunk in body_chunks():
            n += len(chunk)
        return "ok:%d" % n

class News(AsyncResource):                      # a Broadcast subscriber: StreamGroup, pings
    async def get(self):
        return EventStream(news.subscribe(), ping=0.05)

class Publish(AsyncResource):
    async def post(self):
        return "ok:%d" % news.publish(Event(data="hi", id="1"))

class Follow(AsyncResource):                    # FileEvents on the server's loop
    async def get(self):
        lines = follow(os.path.join(STREAM_DIR, "log.txt"))
        return EventStream((Event(data=line) async for line in lines), ping=0.05)

native_api.add_resource(File, "/file")
native_api.add_resource(SyncFile, "/sync-file")
native_api.add_resource(Gen, "/gen")
native_api.add_resource(Up, "/up")
native_api.add_resource(News, "/news")
native_api.add_resource(Publish, "/publish")
native_api.add_resource(Follow, "/follow")
native_api.add_resource(Sleep, "/sleep")
native_api.add_resource(RedisUse, "/redis")
native_api.add_resource(Post, "/p")
native_api.add_resource(Any, "/", "/<path:path>")
'''

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /redis HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
]


def read_responses(s, n):
    data = b""
    # (the native app answers JSON: "ok:5" and {"message": "Internal Server Error"})
    while data.count(b"HTTP/1.1 ") < n or not data.rstrip().rstrip(b'"}').endswith(
            (b"ok:0", b"ok:5", b"ok:3", b"Error")):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def drive(port, rounds):
    """Returns the number of 200 responses seen (each round should give 8)."""
    ok = 0
    for i in range(rounds):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            for req in REQUESTS:                      # keep-alive, one at a time
                s.sendall(req)
                ok += read_responses(s, 1).count(b" 200 OK")
            s.sendall(b"".join(REQUESTS[:3]))         # pipelined
            ok += read_responses(s, 3).count(b" 200 OK")
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  b\r\n\r\n")   # malformed: 400
            s.recv(65536)
        s = socket.create_connection(("127.0.0.1", port), timeout=60)    # vanishes mid-request
        s.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        s.close()
    return ok


FILE_SIZE = 300_000


def _read_until(s, pred):
    data = b""
    while not pred(data):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection early: %r" % data[-200:])
        data += chunk
    return data


def _whole(s):
    """One response with a Content-Length or chunked body; returns it."""
    def done(d):
        head, sep, body = d.partition(b"\r\n\r\n")
        if not sep:
            return False
        m = re.search(rb"(?i)content-length: (\d+)", head)
        return len(body) >= int(m.group(1)) if m else body.endswith(b"0\r\n\r\n")
    return _read_until(s, done)


def drive_streams(port, rounds, stream_dir):
    """The native app's streams: files (both roads, a range, a client leaving mid-file), a
    generated stream, an upload read as it arrives, a Broadcast subscriber fed and dropped, a
    followed file.  Returns how many came back right (each round should give 8)."""
    ok = 0
    log = Path(stream_dir) / "log.txt"
    for i in range(rounds):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            for path in (b"/file", b"/sync-file"):
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                ok += len(_whole(s).partition(b"\r\n\r\n")[2]) == FILE_SIZE
            s.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,-10\r\n\r\n")
            ok += b" 206 " in _whole(s)
            s.sendall(b"GET /gen HTTP/1.1\r\nHost: x\r\n\r\n")
            ok += b"4444" in _whole(s)
            s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
                      + b"u" * 200000)
            ok += b"ok:200000" in _whole(s)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sub:
            sub.sendall(b"GET /news HTTP/1.1\r\nHost: x\r\n\r\n")
            _read_until(sub, lambda d: b"\r\n\r\n" in d)
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                ok += b"ok:" in _whole(s)
            ok += b"data: hi" in _read_until(sub, lambda d: b"data: hi" in d)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as f:
            f.sendall(b"GET /follow HTTP/1.1\r\nHost: x\r\n\r\n")
            _read_until(f, lambda d: b"\r\n\r\n" in d)
            line = b"line %d" % i
            deadline = time.monotonic() + 30
            data = b""
            f.settimeout(0.5)
            while line not in data and time.monotonic() < deadline:
                with open(log, "ab") as out:  # (again until the watch is there)
                    out.write(line + b"\n")
                try:
                    data += f.recv(65536)
                except socket.timeout:
                    pass
            ok += line in data
        s = socket.create_connection(("127.0.0.1", port), timeout=60)    # leaves mid-file
        s.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        s.close()
    return ok


TARGETS = {"asgi": ("leakapp:app", "asgi"), "wsgi": ("leakapp:wsgi", "wsgi"),
           "native": ("leakapp:native", "auto")}


def run(kind, rounds, workdir):
    interface = kind
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()
    log = workdir / f"valgrind-{interface}.log"
    logpat = workdir / f"valgrind-{interface}-%p.log"
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONPATH=str(ROOT))
    target, iface = TARGETS[kind]
    cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
           f"--log-file={logpat}", "--num-callers=40", sys.executable, "-m", "flask_restful_async",
           "run", target, "--app-dir", str(workdir), "--port", str(p), "--interface", iface,
           "--loop", "asyncio", "--no-access-log", "--log-level", "critical", "--threads", "4"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{interface}: the server did not start under valgrind")
                time.sleep(0.5)
        ok = drive(p, rounds)
        if ok != rounds * 8:
            raise RuntimeError(f"{interface}: {ok} of {rounds * 8} expected 200 responses")
        if kind == "native":
            ok = drive_streams(p, rounds // 3, os.environ["LEAKCHECK_STREAM_DIR"])
            if ok != rounds // 3 * 8:
                raise RuntimeError(f"streams: {ok} of {rounds // 3 * 8} came back right")
            print(f"native: {rounds // 3} rounds of streams (files on both roads, a range, a "
                  "generated stream, an upload, a Broadcast subscriber, a followed file, a "
                  "client leaving mid-file) all came back right")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    logs = sorted(workdir.glob(f"valgrind-{interface}-*.log"))
    text = max(logs, key=lambda l: l.stat().st_size).read_text()
    if "Memcheck" not in text or "LEAK SUMMARY" not in text:
        raise RuntimeError(f"{interface}: valgrind wrote no leak summary:\n{text[-2000:]}")
    records = re.split(r"\n==\d+== \n", text)
    ours = [r for r in records if re.search(r"(definitely|indirectly) lost in loss record", r)
            and re.search(r"_core\.cpython|csrc/|\bfra_\w+ \(", r)]
    heap = re.search(r"total heap usage: [^\n]*", text)
    print(f"{interface}: {heap.group(0) if heap else '?'}")
    summary = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    print(f"{interface}: {rounds * 10} requests, {rounds} dropped connections; valgrind: "
          f"{summary.group(0) if summary else 'no leak summary'} in the whole process, "
          f"{len(ours)} loss record(s) through _core")
    for r in ours:
        print(r)
    if os.environ.get("LEAKCHECK_SHOW"):
        for r in records:
            if "definitely lost in loss record" in r:
                print(r)
    return len(ours)


def start_redis(workdir):
    """A redis-server of our own for the native app's Redis resource (tests/_redis_server.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from _redis_server import RedisServer
    return RedisServer(workdir / "redis").start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=150, help="each round: 10 requests + 1 dropped connection")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("LEAKCHECK_DIR")) as d:
        workdir = Path(d)
        (workdir / "leakapp.py").write_text(APP)
        (workdir / "file.bin").write_bytes(os.urandom(FILE_SIZE))
        (workdir / "log.txt").write_bytes(b"")
        os.environ["LEAKCHECK_STREAM_DIR"] = str(workdir)
        redis = start_redis(workdir)
        os.environ["REDIS_URL"] = "redis://127.0.0.1:%d/0" % redis.port
        try:
            bad = sum(run(kind, args.rounds, workdir) for kind in ("asgi", "wsgi", "native"))
        finally:
            redis.kill()
    print("leakcheck: " + ("clean" if not bad else f"{bad} leak(s) through the extension"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
