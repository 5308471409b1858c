"""Helpers for the CLI / process tests: start `python -m flask_restful_async run ...` as a real
process, follow its stderr log, talk HTTP/1.1 to it over TCP or a Unix socket (h11 checks
that every response is well-formed), and always kill it (and its workers) at the end."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import h11
import pytest

REPO = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "cli_apps"
PROG_PREFIX = "flask-restful-async: error: "
WAIT = 30.0           # upper bound for anything a test waits for; never a timing assertion

Address = Union[tuple[str, int], str]   # (host, port) or a Unix socket path


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without FRA_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRA_")}
    env.update(extra)
    return env


def run_cli(args: Sequence[str], env: Optional[dict[str, str]] = None,
            timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Run the CLI to completion (for commands that exit by themselves, e.g. errors)."""
    return subprocess.run([sys.executable, "-m", "flask_restful_async", *args], cwd=REPO,
                          env=env if env is not None else clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class ServerProcess:
    """A running server; its stderr log is collected line by line as it arrives."""

    def __init__(self, args: Sequence[str], env: Optional[dict[str, str]] = None,
                 pass_fds: Sequence[int] = (), stdout_path: Optional[Path] = None) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask_restful_async", "run", *self.args], cwd=REPO,
            env=env if env is not None else clean_env(), stdin=subprocess.DEVNULL,
            stdout=self._stdout, stderr=subprocess.PIPE, pass_fds=tuple(pass_fds),
            start_new_session=True)   # own process group: kill() reaches every worker
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[re.Match]:
        """Wait until `count` log lines match `pattern`; fails (with the log) otherwise."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(rx.search, self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {count} log line(s) matching {pattern!r}; "
                                         f"exit code {self.proc.poll()}; log:\n" + "\n".join(self.lines))
                self._cond.wait(min(left, 0.2))

    def address(self) -> Address:
        """Where the server said it listens (its 'listening on ...' log line)."""
        m = self.wait_for(r"listening on (?:http://\[?([^\]\s]*?)\]?:(\d+)|unix:(\S+))")[0]
        if m.group(3):
            return m.group(3)
        return (m.group(1), int(m.group(2)))

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit; returns its exit code."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """Kill the server and every process in its group; idempotent."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            pass
        if self._stdout is not subprocess.DEVNULL:
            self._stdout.close()
        if self.proc.stderr is not None:
            self._reader.join(WAIT)
            self.proc.stderr.close()


@pytest.fixture
def launch() -> Iterator:
    """launch(*args, env=..., pass_fds=..., stdout_path=...) -> ServerProcess, killed at the end."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs) -> ServerProcess:
        server = ServerProcess(args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        import json
        return json.loads(self.body)


def connect(addr: Address, timeout: float = WAIT) -> socket.socket:
    if isinstance(addr, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
    sock.settimeout(timeout)
    sock.connect(addr)
    return sock


def send_request(sock: socket.socket, method: str = "GET", path: str = "/",
                 body: bytes = b"", headers: Sequence[tuple[str, str]] = (),
                 close: bool = True) -> h11.Connection:
    """Write one request on `sock` (with Connection: close unless close=False); returns the
    h11 state to read the response with."""
    conn = h11.Connection(h11.CLIENT)
    hdrs = [("Host", "test"), *headers] + ([("Connection", "close")] if close else [])
    if body:
        hdrs.append(("Content-Length", str(len(body))))
    data = conn.send(h11.Request(method=method, target=path, headers=hdrs))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    sock.sendall(data)
    return conn


def read_response(sock: socket.socket, conn: h11.Connection) -> Response:
    """Read one whole response with h11 (which rejects malformed ones)."""
    status, headers, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return Response(status, headers, body)
        else:
            raise AssertionError(f"unexpected h11 event {event!r}")


def request(addr: Address, path: str = "/", method: str = "GET", body: bytes = b"",
            timeout: float = WAIT) -> Response:
    """One request on a new connection."""
    with connect(addr, timeout) as sock:
        return read_response(sock, send_request(sock, method, path, body))


def app_args(spec: str, *more: str) -> list[str]:
    """Arguments to serve `spec` from tests/cli_apps on a free port."""
    return [spec, "--app-dir", str(APPS), "--port", "0", *more]


def single_error_line(result: subprocess.CompletedProcess) -> str:
    """The one stderr line of a failed CLI run (asserting it is exactly one)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    assert lines[0].startswith(PROG_PREFIX), lines[0]
    return lines[0]


def worker_pids(server: ServerProcess, count: int) -> list[int]:
    """PIDs of the first `count` workers the supervisor reported ready."""
    return [int(m.group(1)) for m in server.wait_for(r"worker (\d+) ready", count)]


def wait_until(predicate, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
