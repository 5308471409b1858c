"""Reload and shutdown without a lost request.

A load client keeps 20 keep-alive connections busy (each: send a request, read the whole
response, reconnect when the response says Connection: close) against --workers 2, and counts
every socket error (reset, EOF before a full response, refused) and every non-2xx.  A SIGHUP
to the supervisor (it rolls the workers) and a SIGTERM to one worker (the supervisor replaces
it) must cost nothing: a draining worker answers each connection's next request with
Connection: close instead of closing connections that look idle while the client's next
request is on its way."""
from __future__ import annotations

import functools
import os
import re
import selectors
import signal
import socket
import threading

import conftest
from conftest import HOST, Incomplete, Malformed, parse_response, request_bytes, serve

# worker start-ups (under ASan too) take longer than one network event
wait_for = functools.partial(conftest.wait_for, timeout=30.0)

CONNECTIONS = 20
REQUEST = request_bytes("GET", "/fast")


class Load:
    """CONNECTIONS keep-alive clients driven by one selector thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.errors: list[str] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Load":
        for _ in range(CONNECTIONS):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()

    def _open(self) -> None:
        while True:
            try:
                s = socket.create_connection((HOST, self.port), timeout=10)
                break
            except OSError as exc:     # refused: counted, and tried again
                self.errors.append(f"connect: {exc!r}")
                if len(self.errors) > 1000:
                    raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        s.sendall(REQUEST)
        self._sel.register(s, selectors.EVENT_READ, bytearray())

    def _replace(self, s: socket.socket) -> None:
        self._sel.unregister(s)
        s.close()
        self.reconnects += 1
        self._open()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.5):
                s, buf = key.fileobj, key.data
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self.errors.append(f"recv: {exc!r}")
                    self._replace(s)
                    continue
                if not chunk:
                    try:
                        parse_response(bytes(buf), eof=True)
                        self.errors.append("EOF after a response without Connection: close")
                    except (Incomplete, Malformed):
                        self.errors.append(f"EOF before a full response ({len(buf)} bytes)")
                    self._replace(s)
                    continue
                buf += chunk
                try:
                    resp, rest = parse_response(bytes(buf))
                except Incomplete:
                    continue
                del buf[:]
                if not 200 <= resp.status < 300:
                    self.errors.append(f"status {resp.status}")
                else:
                    self.ok += 1
                if rest:
                    self.errors.append(f"bytes after the response: {rest[:50]!r}")
                if "close" in resp.connection_tokens():
                    self._replace(s)
                    continue
                try:
                    s.sendall(REQUEST)
                except OSError as exc:
                    self.errors.append(f"send: {exc!r}")
                    self._replace(s)


def workers_of(srv) -> list[int]:
    return [p for p in srv.pids() if p != srv.proc.pid]


def start_two_workers():
    srv = serve("lifecycle_app:asgi", "--interface", "asgi", "--workers", "2",
                "--no-access-log")
    return srv


def test_sighup_roll_under_keep_alive_load_loses_no_request():
    with start_two_workers() as srv:
        wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log)) >= 2, "both workers ready")
        old = set(workers_of(srv))
        with Load(srv.port) as load:
            wait_for(lambda: load.ok >= 500, "requests before the roll")
            srv.proc.send_signal(signal.SIGHUP)
            assert srv.wait_log(r"all workers replaced", timeout=60), srv.log[-3000:]
            wait_for(lambda: not old & set(workers_of(srv)), "the old workers to exit")
            at_roll = load.ok
            wait_for(lambda: load.ok >= at_roll + 500, "requests after the roll")
        assert load.errors == [], (load.errors[:5], len(load.errors), srv.log[-3000:])
        assert load.reconnects >= CONNECTIONS   # every connection of the old workers moved
        assert srv.alive()


def test_sigterm_of_one_worker_under_keep_alive_load_loses_no_request():
    with start_two_workers() as srv:
        wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log)) >= 2, "both workers ready")
        victim = workers_of(srv)[0]
        with Load(srv.port) as load:
            wait_for(lambda: load.ok >= 500, "requests before the SIGTERM")
            os.kill(victim, signal.SIGTERM)
            assert srv.wait_log(rf"worker {victim} died", timeout=60), srv.log[-3000:]
            wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log)) >= 3,
                     "the replacement worker")
            at_exit = load.ok
            wait_for(lambda: load.ok >= at_exit + 500, "requests after the replacement")
        assert load.errors == [], (load.errors[:5], len(load.errors), srv.log[-3000:])
        assert srv.alive()
