"""What an idle Server-Sent Events stream costs our server in RSS, above an idle keep-alive
connection (issue 10: at most 4 KiB, for 10,000 streams on one worker).

Two fresh server processes serve tests/apps_api/streaming_app.py (one worker).  Each gets the
same warm-up (a few keep-alive requests and streams opened and closed), then N connections:
in the first, each makes one plain request and stays open (idle keep-alive); in the second,
each opens an SSE stream and stays open (its source silent: GET /events/idle, or a Broadcast
subscription: --kind broadcast).  Printed: the RSS growth per connection of each, and their
difference (what the stream adds).

    .venv/bin/python bench/sse_memory.py [-n 2000] [--kind idle|broadcast]
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "tests", "apps_api")


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_server():
    cmd = [sys.executable, "-m", "flask_restful_async", "run", "streaming_app:app", "--host",
           "127.0.0.1", "--port", "0", "--app-dir", APPS, "--no-access-log"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    for raw in iter(proc.stdout.readline, b""):
        m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", raw)
        if m:
            return proc, int(m.group(1))
    raise RuntimeError("server did not start")


def open_conn(port, target):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed before the head")
        buf += chunk
    if target == "/state":  # read the (small) whole body: the connection is then idle
        head, _, body = buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        while len(body) < length:
            body += s.recv(65536)
    return s


def measure(n, target):
    proc, port = start_server()
    try:
        # warm-up: the code paths, the free lists and the allocator's first arenas
        for _ in range(3):
            warm = [open_conn(port, "/state") for _ in range(50)]
            warm += [open_conn(port, target) for _ in range(50)]
            for s in warm:
                s.close()
            time.sleep(0.3)
        before = rss(proc.pid)
        held = [open_conn(port, target) for _ in range(n)]
        time.sleep(1.0)
        after = rss(proc.pid)
        for s in held:
            s.close()
        return (after - before) / n
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="connections held (default 2000)")
    ap.add_argument("--kind", choices=["idle", "broadcast"], default="idle",
                    help="idle: a silent EventStream source; broadcast: a Broadcast subscription")
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times (median)")
    args = ap.parse_args()
    target = "/events/idle" if args.kind == "idle" else "/events/broadcast/plain"
    ka, st = [], []
    for _ in range(args.repeat):
        ka.append(measure(args.n, "/state"))
        st.append(measure(args.n, target))
    ka.sort()
    st.sort()
    k, s = ka[len(ka) // 2], st[len(st) // 2]
    print("idle keep-alive connection: %8.0f bytes RSS each (N=%d)" % (k, args.n))
    print("idle SSE stream (%s):%s %8.0f bytes RSS each" % (args.kind, " " * (9 - len(args.kind)), s))
    print("the stream adds:            %8.0f bytes (target: at most 4096)" % (s - k))


if __name__ == "__main__":
    main()
