"""The redis-server the Redis scenarios use: started by the bench on a free port (never the
machine's 6379), filled with bench/apps/redis_data.py, stopped at the end of the scenario.

Pinning: the machine has two cores; the server under test (or the client process of
bench/redis_client.py) gets core 0 to itself, as in every scenario, and redis-server goes on
core 1 beside wrk.  Redis does the same work per request for every row, so on core 0 it would
be a fixed cost added to each server's and shrink every ratio towards 1; on core 1 it competes
only with the load generator, whose core use the report shows (with Redis's own CPU beside it).
"""

import socket
import subprocess
import tempfile
import time
from pathlib import Path

from apps import redis_data

from . import load, procs
from .procs import HOST

REDIS_CPU = load.WRK_CPU
START_TIMEOUT = 10.0


class ServiceError(Exception):
    """redis-server could not be started or filled."""


def command(*args):
    """One command in RESP (arrays of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def simple_replies(sock, count, timeout=10.0):
    """Read `count` one-line replies (+OK, :N, -ERR); returns them without CRLF."""
    sock.settimeout(timeout)
    buf = b""
    while buf.count(b"\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ServiceError("redis-server closed the connection")
        buf += chunk
    return buf.split(b"\r\n")[:count]


def redis_server_version():
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        return out.stdout.strip().split(" sha=")[0]
    except OSError:
        return None


class RedisService:
    """Context manager: a running, filled redis-server; `.url`, `.env` for the servers it
    serves, `.cpu_seconds()` for the report."""

    name = "redis-server"

    def __init__(self, logdir=None):
        self.logdir = Path(logdir or tempfile.mkdtemp(prefix="bench-redis-"))
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=self.logdir))
        self.log = self.logdir / "redis-server.log"
        self.port = None
        self.proc = None

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}/0"

    @property
    def env(self):
        return {"BENCH_REDIS_URL": self.url}

    def cpu_seconds(self):
        return procs.tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def __enter__(self):
        try:
            self.start()
            self.fill()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.port = procs.free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
                "--logfile", str(self.log)]  # fmt: skip
        try:
            self.proc = procs.spawn(argv, cpu=REDIS_CPU)
        except OSError as e:
            raise ServiceError(f"redis-server could not be executed: {e} (Debian package "
                               "redis-server; `make bench` installs it)")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"redis-server did not answer PING: {self._tail()}")
            time.sleep(0.02)

    def ping(self):
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return simple_replies(s, 1, 1.0) == [b"+PONG"]
        except (OSError, ServiceError):
            return False

    def fill(self):
        """The keys and the list of redis_data, checked by their replies."""
        mset = [x for k, v in zip(redis_data.KEYS, redis_data.VALUES) for x in (k, v)]
        cmds = [command("FLUSHALL"), command("MSET", *mset), command("DEL", redis_data.LIST_KEY),
                command("RPUSH", redis_data.LIST_KEY, *redis_data.ELEMENTS)]
        with socket.create_connection((HOST, self.port), timeout=10) as s:
            s.sendall(b"".join(cmds))
            replies = simple_replies(s, len(cmds))
        want = [b"+OK", b"+OK", b":0", b":%d" % len(redis_data.ELEMENTS)]
        if replies != want:
            raise ServiceError(f"filling redis-server: replies {replies}, expected {want}")

    def stop(self):
        if self.proc is not None:
            procs.stop(self.proc)

    def _tail(self):
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"
