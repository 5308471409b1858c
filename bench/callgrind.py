"""Instructions per request of the server's hello path, counted by valgrind's callgrind.

Counts are repeatable for the same build whatever else the machine is doing, so they compare
two builds of the hot path where requests/s would drown in noise.

    .venv/bin/python bench/callgrind.py [--requests N] [--interface asgi|wsgi]
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
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drive(port: int, n: int, conns: int = 10) -> None:
    """n keep-alive requests over `conns` connections, each answered before the next."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(conns)]
    for _ in range(n // conns):
        for s in socks:
            s.sendall(REQUEST)
        for s in socks:
            data = b""
            while not data.endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                data += chunk
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
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is needed: apt-get install valgrind")
    port = free_port()
    out = Path(tempfile.mkdtemp()) / "cg.out"
    target = "asgi_apps:hello" if args.interface == "asgi" else "wsgi_apps:hello"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
           "flask_restful_async", "run", target, "--app-dir", str(ROOT / "bench" / "apps"),
           "--port", str(port), "--no-access-log", "--loop", "asyncio", "--interface", args.interface]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 120)
        drive(port, 1000)                      # warm: imports, caches, free lists
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        drive(port, args.requests)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(out.parent.glob("cg.out.*"))
    text = subprocess.run(["callgrind_annotate", str(dumps[0])], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
    print(f"{args.interface} hello: {total / args.requests:,.0f} instructions per request "
          f"({total:,} for {args.requests} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
