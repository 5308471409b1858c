"""The access log is written off the loop: a stdout nobody reads never stalls serving.

Each server here gets a stdout pipe that the test reads only when it chooses to (conftest's
serve() drains stdout at once, which would hide a stalled log), shrunk to one page so a few
6 KB request targets fill it.  The lines that could not be buffered are dropped, counted and
reported once on stderr when the log moves again; every other line arrives complete and in
order, the last ones at SIGTERM included.
"""
from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, HOST, IO_TIMEOUT, STOP_TIMEOUT, RawConn, ServerProcess, _LIVE

F_SETPIPE_SZ = 1031           # fcntl.F_SETPIPE_SZ (Python 3.10+ on Linux)
TARGET_LEN = 6000             # bytes of request target per line: ~6 KB lines
# More lines than the pipe and the log's buffer (512 KiB, docs/security.md) hold together.
OVERFLOW = 250
LINE_RE = re.compile(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                     r'"GET (/\S+) HTTP/1\.1" 200 \d+')
DROPPED_RE = r"\[(\d+)\] WARNING access log: (\d+) lines dropped \(stdout was not being read\)"
AT_EXIT_RE = r"\[(\d+)\] WARNING access log: (\d+) lines not written at exit"


def target(i: int) -> str:
    head = f"/line/{i:05d}/"
    return head + "x" * (TARGET_LEN - len(head))


class HeldStdoutServer(ServerProcess):
    """A server whose stdout is a one-page pipe that nobody reads until read_stdout()."""

    @property
    def cmd(self) -> list[str]:
        # the socket is bound here and inherited: with --log-level error there is no
        # "listening on" line to read the port from
        return [*super().cmd[:5], "--fd", str(self.listener.fileno()), "--app-dir", str(APPS),
                *self.args]

    def start(self) -> "HeldStdoutServer":
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
        self.out_fd, self.out = r, bytearray()
        self.proc = subprocess.Popen(self.cmd, cwd=str(APPS), env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=w, stderr=subprocess.PIPE,
                                     pass_fds=[self.listener.fileno()], start_new_session=True)
        os.close(w)
        _LIVE.add(self)
        t = threading.Thread(target=self._reader, args=(self.proc.stderr, ""), daemon=True)
        t.start()
        self._readers.append(t)
        return self

    def read_stdout(self) -> threading.Thread:
        """Start reading stdout to EOF, as a log shipper that caught up would."""
        def drain():
            while chunk := os.read(self.out_fd, 65536):
                self.out += chunk
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        self._readers.append(t)
        return t

    def wait_stdout_lines(self, n: int) -> bool:
        """Wait until n complete lines came out of stdout; True if they did."""
        deadline = time.monotonic() + IO_TIMEOUT
        while bytes(self.out).count(b"\n") < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return bytes(self.out).count(b"\n") == n

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        super().stop()
        os.close(self.out_fd)
        self.listener.close()


def held_server(*args: str) -> HeldStdoutServer:
    return HeldStdoutServer("asgi_app:app", "--interface", "asgi", *args).start()


def get_ok(conn: RawConn, i: int) -> None:
    conn.send(f"GET {target(i)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert conn.read_response().status == 200, f"request {i}"


def logged_targets(out: bytes) -> list[str]:
    """The targets of the access lines, checking that every line is complete."""
    text = out.decode()
    assert not text or text.endswith("\n"), text[-200:]
    lines = text.splitlines()
    for line in lines:
        assert LINE_RE.fullmatch(line), line[:200]
    return [LINE_RE.fullmatch(line).group(1) for line in lines]


def test_unread_stdout_drops_lines_but_never_stalls_serving():
    srv = held_server()
    try:
        conn = RawConn(srv.port)
        for i in range(OVERFLOW):   # each answered although stdout is full from the first few
            get_ok(conn, i)
        srv.read_stdout()
        assert srv.wait_log(DROPPED_RE), srv.log
        (pid, dropped), = re.findall(DROPPED_RE, srv.log)
        assert int(pid) == srv.proc.pid and int(dropped) > 0
        # the backlog is written out; only then is there room again for every new line
        assert srv.wait_stdout_lines(OVERFLOW - int(dropped)), len(srv.out.splitlines())
        more = range(OVERFLOW, OVERFLOW + 20)
        for i in more:
            get_ok(conn, i)
        conn.sock.close()
        assert srv.terminate() == 0
        for t in srv._readers:
            t.join(STOP_TIMEOUT)
        got = logged_targets(bytes(srv.out))
        # every request is either logged, in order, or counted in the one warning
        assert len(got) + int(dropped) == OVERFLOW + len(more), srv.log
        assert got == sorted(got) and len(set(got)) == len(got)
        assert got[-len(more):] == [target(i) for i in more]
        assert len(re.findall("WARNING access log", srv.log)) == 1, srv.log
    finally:
        srv.stop()


def test_lines_arrive_complete_and_in_order_after_the_reader_pauses():
    srv = held_server()
    try:
        conn = RawConn(srv.port)
        paused = 40                   # ~240 KB: far more than the pipe, less than the buffer
        for i in range(paused):
            get_ok(conn, i)
        srv.read_stdout()
        for i in range(paused, paused + 10):
            get_ok(conn, i)
        conn.sock.close()
        assert srv.terminate() == 0   # at once: the last lines are written at shutdown
        for t in srv._readers:
            t.join(STOP_TIMEOUT)
        assert logged_targets(bytes(srv.out)) == [target(i) for i in range(paused + 10)]
        assert "WARNING" not in srv.log, srv.log
    finally:
        srv.stop()


@pytest.mark.parametrize("level", ["info", "error"])
def test_exit_is_not_held_by_a_stdout_nobody_reads(level):
    srv = held_server("--log-level", level)
    try:
        conn = RawConn(srv.port)
        sent = 30
        for i in range(sent):
            get_ok(conn, i)
        conn.sock.close()
        assert srv.terminate() == 0    # stdout still full: the writer is given up on
        srv.read_stdout().join(STOP_TIMEOUT)
        complete = bytes(srv.out)[:bytes(srv.out).rfind(b"\n") + 1]
        got = logged_targets(complete)
        assert got == [target(i) for i in range(len(got))]
        for t in srv._readers:
            t.join(STOP_TIMEOUT)
        found = re.findall(AT_EXIT_RE, srv.log)
        if level == "error":           # the warning honours --log-level
            assert found == [], srv.log
        else:
            (pid, lost), = found
            assert int(pid) == srv.proc.pid
            # lines partly written into the pipe count as not written
            assert int(lost) > 0 and len(got) + int(lost) >= sent
    finally:
        srv.stop()
