"""What a Broadcast publish costs on our server: N subscribers (raw sockets drained by a
thread of this script), then one request that publishes `count` events of `size` bytes in a
loop on the server (POST /events/publish of tests/apps_api/streaming_app.py); printed: that
request's time per publish and per subscriber write.  It includes Event.encode and the request
itself, so compare runs: N=1 against N=1000 gives the C fan-out per subscriber.

    .venv/bin/python bench/sse_fanout.py [-n 1000] [--count 2000] [--size 100]
"""
import argparse
import json
import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sse_memory import open_conn, start_server  # noqa: E402


def drain(socks, stop, got):
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            try:
                got[0] += len(key.fileobj.recv(1 << 20))
            except BlockingIOError:
                pass


def publish(port, data, count):
    body = json.dumps({"data": data, "count": count}).encode()
    s = socket.create_connection(("127.0.0.1", port))
    t = time.perf_counter()
    s.sendall(b"POST /events/publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    out = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    elapsed = time.perf_counter() - t
    s.close()
    return elapsed, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    proc, port = start_server()
    try:
        socks = [open_conn(port, "/events/broadcast/plain") for _ in range(args.n)]
        stop, got = threading.Event(), [0]
        t = threading.Thread(target=drain, args=(socks, stop, got), daemon=True)
        t.start()
        publish(port, "w" * args.size, 10)  # warm-up
        elapsed, out = publish(port, "x" * args.size, args.count)
        assert b" 200 " in out.split(b"\r\n", 1)[0], out[:200]
        per = elapsed / args.count
        print("N=%d, %d publishes of %d bytes: %.1f us per publish, %.3f us per subscriber"
              % (args.n, args.count, args.size, per * 1e6, per * 1e6 / args.n))
        stop.set()
        t.join()
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
