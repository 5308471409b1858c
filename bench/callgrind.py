"""Instructions per request of the server's hot paths, counted by valgrind's callgrind.

Counts are repeatable for the same build whatever else the machine is doing, so they compare
two builds of the hot path where requests/s would drown in noise.

    .venv/bin/python bench/callgrind.py [--requests N] [--interface asgi|wsgi]
    .venv/bin/python bench/callgrind.py --scenario api-io10   # AsyncResource awaiting 10 ms,
                                                              # 300 requests in flight
    .venv/bin/python bench/callgrind.py --scenario upload-chunks --requests 200
                                    # a 1 MiB POST read with body_chunks() (AsyncResource)
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b"GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
POST = b"POST %s HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nContent-Length: %d\r\n\r\n"
# name -> (app target, --interface, path, connections in flight[, request body bytes: a POST])
SCENARIOS = {
    "hello": (None, None, "/", 10),
    "api-io10": ("api_app:app", "auto", "/io10", 300),
    "api-item": ("api_app:app", "auto", "/items/3?verbose=2", 10),
    "api-sync": ("api_app:app", "auto", "/sync/3?verbose=2", 10),
    "download-wsgi": ("wsgi_apps:download", "wsgi", "/", 4),
    "upload-chunks": ("upload_stream_apps:app", "auto", "/", 4, 1024 * 1024),
    "upload-asgi": ("asgi_apps:upload", "asgi", "/", 4, 1024 * 1024),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_response(s: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("unexpected response: %r" % head[:80])
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        body += chunk


def drive(port: int, n: int, conns: int, path: str, body: int = 0) -> None:
    """n keep-alive requests over `conns` connections: one request on each, then every
    answer, so `conns` requests are in flight at once (a POST of `body` bytes if body)."""
    request = POST % (path.encode(), body) + b"x" * body if body else REQUEST % path.encode()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=120) for _ in range(conns)]
    for _ in range(max(n // conns, 1)):
        for s in socks:
            s.sendall(request)
        for s in socks:
            _read_response(s)
    for s in socks:
        s.close()


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start under valgrind")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--interface", choices=["asgi", "wsgi"], default="asgi")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="hello")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--app", help="module:attr to serve instead of the scenario's app")
    ap.add_argument("--annotate", type=int, default=0, metavar="N",
                    help="also print the N functions with the most inclusive instructions")
    args = ap.parse_args()
    target, interface, path, conns, *rest = SCENARIOS[args.scenario]
    body = rest[0] if rest else 0
    target = args.app or target
    if target is None:
        target = "asgi_apps:hello" if args.interface == "asgi" else "wsgi_apps:hello"
        interface = args.interface
    elif interface is None:
        interface = args.interface
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is needed: apt-get install valgrind")
    port = free_port()
    out = Path(tempfile.mkdtemp()) / "cg.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
           "flask_restful_async", "run", target, "--app-dir", str(ROOT / "bench" / "apps"),
           "--port", str(port), "--no-access-log", "--loop", args.loop, "--interface", interface,
           "--backlog", "1024"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 120)
        drive(port, max(1000 if not body else 50, 2 * conns), conns, path, body)  # warm: imports, caches
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        drive(port, args.requests, conns, path, body)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(out.parent.glob("cg.out.*"))
    text = subprocess.run(["callgrind_annotate", str(dumps[0])], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
    if args.annotate:
        for mode in ("no", "yes"):
            listing = subprocess.run(["callgrind_annotate", f"--inclusive={mode}", str(dumps[0])],
                                     capture_output=True, text=True).stdout
            rows = [line for line in listing.splitlines() if re.match(r"\s*[\d,]+ \(", line)]
            print(("exclusive" if mode == "no" else "inclusive") + ":")
            print("\n".join(rows[1:args.annotate + 1]))
    label = f"{interface} {args.scenario}" if args.scenario != "hello" else f"{interface} hello"
    print(f"{label}: {total / args.requests:,.0f} instructions per request "
          f"({total:,} for {args.requests} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
