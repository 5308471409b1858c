"""Shared fixtures and helpers for the black-box tests.

Every test talks to a real server process (`python -m flask_restful_async run ...`) over
loopback sockets.  The server is started with `--port 0`; it logs one line on stderr,
`listening on http://127.0.0.1:PORT`, and the fixture reads stderr until that line.

Helpers (imported by the test modules with `from conftest import ...`):
  serve(...)          context manager: start a server, yield it, kill it, fail if it crashed
  RawConn             a socket with a read buffer: send exact bytes, read responses or until close
  parse_response      strict-enough HTTP/1.x response parser used by RawConn
  H11Client           h11-based client: checks that our responses are well-formed HTTP/1.1
  app_calls / app_state / open_gate   query the test apps' bookkeeping endpoints
No test asserts on elapsed time: timeouts below only stop a broken server from hanging the suite.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional
from urllib.parse import quote

import h11
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
APPS = TESTS / "apps"
HOST = "127.0.0.1"
PYTHON = sys.executable
LOOPS = ("asyncio", "uvloop")
# The module run as `python -m MODULE run ...`.  Another value runs the suite against a
# stand-in server that takes the same options (for comparing behaviour); normally unset.
SERVER_MODULE = os.environ.get("FRA_TEST_SERVER_MODULE", "flask_restful_async")

START_TIMEOUT = 30.0     # seconds to wait for the "listening on" line
IO_TIMEOUT = 10.0        # seconds to wait for any single network event
STOP_TIMEOUT = 10.0      # seconds between SIGTERM and SIGKILL at teardown

LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
STATUS_LINE_RE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?\r\n")
ANY_2XX_RE = re.compile(rb"HTTP/\d\.\d 2\d\d ")
ERROR_STATUSES = {400, 413, 414, 431, 501, 505}


# --------------------------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------------------------

_LIVE: set = set()


def _kill_leftovers() -> None:
    for srv in list(_LIVE):
        srv.stop()


atexit.register(_kill_leftovers)


class ServerProcess:
    """One `python -m flask_restful_async run` process with its output captured."""

    #: the log line that gives the port
    listen_re = LISTEN_RE

    def __init__(self, target: str, *args: str, env: Optional[dict] = None):
        self.target = target
        self.args = [str(a) for a in args]
        self.env = dict(os.environ)
        self.env["PYTHONUNBUFFERED"] = "1"
        # The checkout goes last on the path: the package is found whether or not it is
        # installed, and a build chosen by PYTHONPATH (make test-asan) still comes first.
        path = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join(path + [str(ROOT)])
        if env:
            self.env.update(env)
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.crashed: Optional[int] = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._readers: list[threading.Thread] = []

    @property
    def cmd(self) -> list[str]:
        return [PYTHON, "-m", SERVER_MODULE, "run", self.target,
                "--host", HOST, "--port", "0", "--app-dir", str(APPS), *self.args]

    def _reader(self, stream, tag: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._cond:
                self._lines.append(f"{tag}{line}")
                if self.port is None and tag == "":
                    m = self.listen_re.search(line)
                    if m:
                        self.port = int(m.group(1))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def start(self) -> "ServerProcess":
        # A new session makes the server the leader of its own process group, so teardown
        # can signal exactly the processes this fixture started (the server and any workers).
        # The working directory is not the checkout: `python -m` puts it first on sys.path, and
        # from the checkout it would hide a build chosen by PYTHONPATH (make test-asan).
        self.proc = subprocess.Popen(self.cmd, cwd=str(APPS), env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        _LIVE.add(self)
        for stream, tag in ((self.proc.stderr, ""), (self.proc.stdout, "[stdout] ")):
            t = threading.Thread(target=self._reader, args=(stream, tag), daemon=True)
            t.start()
            self._readers.append(t)
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while self.port is None:
                if self.proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        if self.port is None:
            rc = self.proc.poll()
            self.stop()
            raise RuntimeError(
                f"server did not log 'listening on http://127.0.0.1:PORT' "
                f"(exit code {rc}); command: {' '.join(self.cmd)}\n--- output ---\n{self.log}")
        return self

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_log(self, pattern: str, timeout: float = IO_TIMEOUT) -> bool:
        """Wait until the output matches `pattern` (a regex); True if it did."""
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not rx.search("".join(self._lines)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server process and all its descendants."""
        if not self.proc:
            return []
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
        return out

    def rss(self) -> int:
        """Resident set size in bytes, summed over the server and its descendants."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            if self.crashed is None and self in _LIVE:
                self.crashed = self.proc.returncode
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(STOP_TIMEOUT)
        # Workers (if any) share the group; make sure none outlives the fixture.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for t in self._readers:
            t.join(2)
        _LIVE.discard(self)


class UvicornProcess(ServerProcess):
    """The same, with uvicorn serving an ASGI app (`--app-dir`, as for ours, is an argument);
    for tests that check an app behaves the same under another ASGI server."""

    listen_re = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

    @property
    def cmd(self) -> list[str]:
        return [PYTHON, "-m", "uvicorn", self.target, "--host", HOST, "--port", "0",
                "--log-level", "info", *self.args]


@contextlib.contextmanager
def serve_uvicorn(target: str, *args: str, env: Optional[dict] = None):
    """uvicorn serving `target` for the duration of the block."""
    srv = UvicornProcess(target, *args, env=env).start()
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def serve(target: str, *args: str, env: Optional[dict] = None):
    """Run a server for the duration of the block.  Fails the block's owner if the server
    exited on its own (a crash) before teardown."""
    srv = ServerProcess(target, *args, env=env).start()
    try:
        yield srv
    finally:
        srv.stop()
    if srv.crashed is not None:
        pytest.fail(f"server exited by itself with code {srv.crashed} while tests ran; "
                    f"output:\n{srv.log[-6000:]}")


def serve_streaming_app(kind: str, *args: str, env: Optional[dict] = None):
    """tests/apps_api/streaming_app.py served by `kind`: "ours" (the native path), "ours-asgi"
    (our server through its ASGI entry) or "uvicorn"."""
    if kind == "ours":
        return serve("streaming_app:app", "--app-dir", NATIVE_APP_DIR, *args, env=env)
    if kind == "ours-asgi":
        return serve("streaming_app:asgi_app", "--app-dir", NATIVE_APP_DIR, "--interface", "asgi",
                     *args, env=env)
    return serve_uvicorn("streaming_app:asgi_app", "--app-dir", NATIVE_APP_DIR, *args, env=env)


def send_until_stalled(sock: socket.socket, block: bytes, total: int, idle: float = 1.5) -> int:
    """Sends up to `total` bytes (repeating `block`) on a non-blocking socket until the peer
    has taken nothing for `idle` seconds; returns how many were sent.  (A peer that kept
    reading would take everything, so a test asserting it stopped can only fail, not pass, on
    a slow machine.)"""
    sock.setblocking(False)
    sent = 0
    idle_since = time.monotonic()
    while sent < total and time.monotonic() - idle_since < idle:
        _, w, _ = select.select([], [sock], [], 0.1)
        if not w:
            continue
        try:
            n = sock.send(block[:min(len(block), total - sent)])
        except BlockingIOError:
            continue
        if n:
            sent += n
            idle_since = time.monotonic()
    return sent


def kernel_buffer_max(kind: str) -> int:
    """Largest TCP buffer the kernel may autotune a socket to ('rmem' or 'wmem'), in bytes:
    bytes a stalled peer can hold without the server buffering them itself."""
    try:
        with open(f"/proc/sys/net/ipv4/tcp_{kind}") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 32 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Raw wire helpers
# --------------------------------------------------------------------------------------------

@dataclass
class Response:
    version: bytes
    status: int
    reason: bytes
    headers: list            # [(lowercase name bytes, value bytes)] in wire order
    body: bytes = b""
    chunked: bool = False
    raw_head: bytes = b""
    trailers: list = field(default_factory=list)

    def header(self, name: str | bytes) -> Optional[bytes]:
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name: str | bytes) -> list[bytes]:
        n = name.encode() if isinstance(name, str) else name
        n = n.lower()
        return [v for k, v in self.headers if k == n]

    def json(self):
        return json.loads(self.body)

    def connection_tokens(self) -> set[str]:
        toks = set()
        for v in self.header_all("connection"):
            toks.update(t.strip().lower() for t in v.decode("latin-1").split(",") if t.strip())
        return toks


class Incomplete(Exception):
    pass


class Malformed(AssertionError):
    pass


def _no_body(method: str, status: int) -> bool:
    return method == "HEAD" or 100 <= status < 200 or status in (204, 304) or (
        method == "CONNECT" and 200 <= status < 300)


def parse_response(buf: bytes, method: str = "GET", eof: bool = False) -> tuple[Response, bytes]:
    """Parse one response from the front of `buf`.  Returns (response, rest).
    Raises Incomplete when more bytes are needed, Malformed when the bytes are not HTTP."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if eof:
            raise Malformed(f"connection closed inside a response head: {buf[:300]!r}")
        raise Incomplete
    head, rest = buf[:end + 2], buf[end + 4:]
    m = STATUS_LINE_RE.match(head)
    if not m:
        raise Malformed(f"bad status line: {head[:200]!r}")
    version = b"HTTP/%s.%s" % (m.group(1), m.group(2))
    status = int(m.group(3))
    headers = []
    for line in head[m.end():].split(b"\r\n"):
        if not line:
            continue
        if b":" not in line or line[:1] in (b" ", b"\t"):
            raise Malformed(f"bad header line {line!r}")
        name, _, value = line.partition(b":")
        if not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            raise Malformed(f"bad header name {name!r}")
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
            raise Malformed(f"control character in header value {value!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    resp = Response(version, status, m.group(4) or b"", headers, raw_head=buf[:end + 4])
    if _no_body(method, status):
        return resp, rest
    te = b",".join(resp.header_all("transfer-encoding")).lower()
    if te:
        codings = [c.strip() for c in te.split(b",")]
        if codings[-1] != b"chunked":
            raise Malformed(f"response transfer-encoding without final chunked: {te!r}")
        if resp.header("content-length") is not None:
            raise Malformed("response has both Content-Length and Transfer-Encoding")
        resp.chunked = True
        body = bytearray()
        pos = 0
        while True:
            le = rest.find(b"\r\n", pos)
            if le < 0:
                if eof:
                    raise Malformed("connection closed inside a chunk-size line")
                raise Incomplete
            size_s = rest[pos:le].split(b";", 1)[0]
            if not re.fullmatch(rb"[0-9A-Fa-f]+", size_s):
                raise Malformed(f"bad chunk size line {rest[pos:le]!r}")
            size = int(size_s, 16)
            pos = le + 2
            if size == 0:
                # trailer section, then the final CRLF
                while True:
                    le = rest.find(b"\r\n", pos)
                    if le < 0:
                        if eof:
                            raise Malformed("connection closed inside the trailer section")
                        raise Incomplete
                    line = rest[pos:le]
                    pos = le + 2
                    if not line:
                        resp.body = bytes(body)
                        return resp, rest[pos:]
                    resp.trailers.append(line)
            if len(rest) < pos + size + 2:
                if eof:
                    raise Malformed(f"connection closed inside a chunk ({len(body)} body bytes so far)")
                raise Incomplete
            body += rest[pos:pos + size]
            if rest[pos + size:pos + size + 2] != b"\r\n":
                raise Malformed("chunk data not followed by CRLF")
            pos += size + 2
    cls = resp.header_all("content-length")
    if cls:
        if len(set(cls)) != 1 or not cls[0].isdigit():
            raise Malformed(f"bad response Content-Length {cls!r}")
        n = int(cls[0])
        if len(rest) < n:
            if eof:
                raise Malformed(f"connection closed after {len(rest)} of {n} body bytes")
            raise Incomplete
        resp.body = rest[:n]
        return resp, rest[n:]
    # No framing: the body runs to the end of the connection.
    if not eof:
        raise Incomplete
    resp.body = rest
    return resp, b""


class _Client:
    """What both test clients share: a connected socket (`self.sock`), closed on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]


class RawConn(_Client):
    """A client socket with a receive buffer, for exact-bytes tests."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT, rcvbuf: Optional[int] = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False


    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shut_wr(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline: float) -> bool:
        """Read once more into the buffer.  False on EOF (or reset) or at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, method: str = "GET", timeout: Optional[float] = None,
                      skip_interim: bool = True) -> Response:
        """Read and return the next response (skipping 1xx unless told not to)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                resp, rest = parse_response(self.buf, method, eof=self.eof)
            except Incomplete:
                if not self._fill(deadline):
                    if self.eof:
                        continue        # parse again with eof=True
                    raise AssertionError(
                        f"no complete response within {timeout or self.timeout}s; "
                        f"got {self.buf[:300]!r}")
                continue
            self.buf = rest
            if skip_interim and 100 <= resp.status < 200:
                continue
            return resp

    def read_until(self, pred: Callable[[bytes], bool], timeout: Optional[float] = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not pred(self.buf):
            if not self._fill(deadline):
                break
        return self.buf

    def read_until_close(self, timeout: Optional[float] = None) -> tuple[bytes, bool]:
        """Read everything until the peer closes.  Returns (all unread bytes, closed?)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        data, self.buf = self.buf, b""
        return data, self.eof

    def closed_by_peer(self, timeout: Optional[float] = None) -> bool:
        """True if the server closes the connection (any pending bytes are kept)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        return self.eof


def exchange(port: int, data: bytes, *, shut_wr: bool = False,
             timeout: float = IO_TIMEOUT) -> tuple[bytes, bool]:
    """Send `data` on a fresh connection and read until the server closes it.
    Returns (everything received, closed?)."""
    with RawConn(port, timeout) as c:
        try:
            c.send(data)
            if shut_wr:
                c.shut_wr()
        except (BrokenPipeError, ConnectionResetError):
            pass
        return c.read_until_close(timeout)


def status_lines(data: bytes) -> list[int]:
    return [int(m.group(3)) for m in STATUS_LINE_RE.finditer(data)]


def first_status(data: bytes) -> Optional[int]:
    m = STATUS_LINE_RE.match(data)
    return int(m.group(3)) if m else None


def request_bytes(method: str, target: str, headers: Iterable = (), body: bytes = b"",
                  version: str = "HTTP/1.1", host: Optional[str] = "test") -> bytes:
    """Build request bytes.  Adds Host (unless host=None) and Content-Length when there is a
    body and no framing header was given."""
    lines = [f"{method} {target} {version}".encode()]
    names = set()
    if host is not None:
        lines.append(b"Host: " + host.encode())
    for k, v in headers:
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        names.add(k.lower())
        lines.append(k + b": " + v)
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts: bytes, trailers: bytes = b"") -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n" + trailers + b"\r\n"


# --------------------------------------------------------------------------------------------
# h11 client: every response it returns was accepted by h11's strict parser
# --------------------------------------------------------------------------------------------

class H11Client(_Client):
    def __init__(self, port: int, timeout: float = IO_TIMEOUT):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h11.Connection(our_role=h11.CLIENT)


    def _next_event(self):
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                data = self.sock.recv(262144)
                self.conn.receive_data(data)
                continue
            return ev

    def request(self, method: str, target: str, headers: Iterable = (), body: bytes = b"",
                chunks: Optional[list] = None) -> Response:
        """Send one request and return the parsed response; the connection is reused when
        both sides allow it."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        hdrs = [(b"host", b"test")]
        for k, v in headers:
            hdrs.append((k.encode() if isinstance(k, str) else k,
                         v.encode() if isinstance(v, str) else v))
        names = {k.lower() for k, _ in hdrs}
        if chunks is not None and b"transfer-encoding" not in names:
            hdrs.append((b"transfer-encoding", b"chunked"))
        elif body and b"content-length" not in names:
            hdrs.append((b"content-length", str(len(body)).encode()))
        out = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if chunks is not None:
            for c in chunks:
                out += self.conn.send(h11.Data(data=c))
        elif body:
            out += self.conn.send(h11.Data(data=body))
        out += self.conn.send(h11.EndOfMessage())
        self.sock.sendall(out)
        ev = self._next_event()
        while isinstance(ev, h11.InformationalResponse):
            ev = self._next_event()
        assert isinstance(ev, h11.Response), ev
        resp = Response(b"HTTP/" + ev.http_version, ev.status_code, ev.reason,
                        [(k.lower(), v) for k, v in ev.headers])
        body_parts = []
        while True:
            ev = self._next_event()
            if isinstance(ev, h11.Data):
                body_parts.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                resp.trailers = list(ev.headers)
                break
            else:
                raise AssertionError(f"unexpected h11 event {ev!r}")
        resp.body = b"".join(body_parts)
        resp.chunked = b"chunked" in b",".join(resp.header_all("transfer-encoding")).lower()
        return resp

    def server_closed(self) -> bool:
        """After a response that ended the connection: True if the server closed it."""
        self.sock.settimeout(self.timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.conn.receive_data(data)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def h11_get(port: int, target: str, headers: Iterable = (), method: str = "GET",
            body: bytes = b"") -> Response:
    with H11Client(port) as c:
        return c.request(method, target, headers=list(headers) + [("connection", "close")],
                         body=body)


# --------------------------------------------------------------------------------------------
# Test-app bookkeeping endpoints (see tests/apps/*.py)
# --------------------------------------------------------------------------------------------

def app_calls(port: int) -> int:
    """How many requests the app has been called for (bookkeeping requests excluded)."""
    r = h11_get(port, "/__calls__")
    assert r.status == 200, r
    return r.json()["count"]


def app_call_log(port: int) -> list:
    return h11_get(port, "/__calls__").json()["calls"]


def app_state(port: int, key: str):
    r = h11_get(port, "/__state__?key=" + quote(key))
    assert r.status == 200, r
    return r.json()["value"]


def open_gate(port: int, name: str) -> None:
    r = h11_get(port, "/__gate__?name=" + quote(name))
    assert r.status == 200, r


def poll(fetch: Callable, pred: Callable = bool, timeout: float = IO_TIMEOUT,
         what: str = "the condition", interval: float = 0.02):
    """Call fetch() until pred(value) holds and return that value; asserts on timeout (a
    safety net: tests never assert on how long it took)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if pred(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(interval)


def wait_for(pred: Callable, what: str, timeout: float = IO_TIMEOUT) -> None:
    """Wait until pred() is true (asserts on timeout)."""
    poll(pred, bool, timeout, what)


def wait_state(port: int, key: str, pred: Callable = bool, timeout: float = IO_TIMEOUT):
    """Poll the app's state until pred(value) holds; return the value (asserts on timeout)."""
    return poll(lambda: app_state(port, key), pred, timeout, f"app state {key!r}", 0.05)


def wait_stalled(port: int, key: str, polls: int = 6, interval: float = 0.25,
                 timeout: float = 30.0):
    """Poll a progress counter until it stops changing for `polls` polls; return it."""
    deadline = time.monotonic() + timeout
    last, same = None, 0
    while time.monotonic() < deadline:
        v = app_state(port, key)
        if v == last:
            same += 1
            if same >= polls:
                return v
        else:
            last, same = v, 0
        time.sleep(interval)
    return last


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=LOOPS)
def loop_name(request) -> str:
    """The asyncio loop the server runs: core protocol modules run under both."""
    return request.param


@pytest.fixture(scope="module")
def asgi_server(loop_name):
    """The main raw-ASGI test app (tests/apps/asgi_app.py), default limits."""
    with serve("asgi_app:app", "--interface", "asgi", "--loop", loop_name) as srv:
        yield srv


@pytest.fixture(scope="module")
def port(asgi_server) -> int:
    return asgi_server.port


NATIVE_APP_DIR = str(TESTS / "apps_api")


@pytest.fixture(scope="module")
def native_server(loop_name):
    """The flask-restful test app (tests/apps_api/native_app.py) on the native path."""
    with serve("native_app:asgi_app", "--interface", "asgi", "--app-dir", NATIVE_APP_DIR,
               "--loop", loop_name) as server:
        yield server


# --------------------------------------------------------------------------------------------
# Redis: redis-server processes the tests start themselves on free ports (tests/_redis_server.py
# has the class).  None depends on the machine's Redis at 6379.
#   redis_server        session: TCP server; .host .port .url .pid, kill/stop/restart, cli(...)
#   redis_url           function: redis_server's URL, database flushed first
#                       (FRA_TEST_REDIS_URL=redis://... runs those tests against another Redis,
#                       which is then not flushed)
#   redis_tls_server    session: TLS only (rediss://), .tls_files has the CA and certificates
#   redis_unix_server   session: Unix socket only (unix://PATH), .path
#   make_redis_server   function: factory make_redis_server(kind="tcp"|"tls"|"unix",
#                       password=None, tls_auth_clients="no", args=()) -> a started server,
#                       killed at the end of the test; for tests that kill, freeze or configure
#   fresh_redis_server  function: make_redis_server() (kill and restart it freely)
# --------------------------------------------------------------------------------------------

from _redis_server import RedisServer, make_tls_files  # noqa: E402


@pytest.fixture(scope="session")
def redis_tls_files(tmp_path_factory):
    """A test CA with a server (localhost, 127.0.0.1) and a client certificate."""
    return make_tls_files(tmp_path_factory.mktemp("redis-tls"))


@contextlib.contextmanager
def _running_redis(tmp_path_factory, name, **kwargs):
    srv = RedisServer(tmp_path_factory.mktemp(name), **kwargs).start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with _running_redis(tmp_path_factory, "redis") as srv:
        yield srv


@pytest.fixture
def redis_url(redis_server) -> str:
    other = os.environ.get("FRA_TEST_REDIS_URL")
    if other:
        return other
    if not redis_server.alive():  # a test killed the shared server: later tests still get one
        redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_tls_server(tmp_path_factory, redis_tls_files):
    with _running_redis(tmp_path_factory, "redis-tls", kind="tls",
                        tls_files=redis_tls_files) as srv:
        yield srv


@pytest.fixture(scope="session")
def redis_unix_server(tmp_path_factory):
    with _running_redis(tmp_path_factory, "redis-unix", kind="unix") as srv:
        yield srv


@pytest.fixture
def make_redis_server(tmp_path_factory, request):
    started = []

    def make(kind: str = "tcp", password: Optional[str] = None,
             tls_auth_clients: str = "no", args: Iterable = ()) -> RedisServer:
        srv = RedisServer(tmp_path_factory.mktemp("redis-own"), kind=kind, password=password,
                          tls_files=(request.getfixturevalue("redis_tls_files")
                                     if kind == "tls" else None),
                          tls_auth_clients=tls_auth_clients, args=list(args))
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.kill()


@pytest.fixture
def fresh_redis_server(make_redis_server) -> RedisServer:
    return make_redis_server()
