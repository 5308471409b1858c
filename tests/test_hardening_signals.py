"""Hardening: signals under load.  tests/test_workers.py already covers one request in flight
at SIGTERM/SIGINT, SIGHUP rolling two workers under four client threads with zero failures,
and a SIGKILLed worker being replaced; these add many requests in flight at SIGTERM with new
connections refused, and a SIGKILL in the middle of a request loop."""
from __future__ import annotations

import functools
import os
import re
import signal
import socket
import threading
import time

import conftest
from conftest import _LIVE, HOST, RawConn, h11_get, request_bytes, serve


# worker start-ups (under ASan too) get longer than one network event
wait_for = functools.partial(conftest.wait_for, timeout=15.0)


def test_sigterm_with_many_requests_in_flight(tmp_path):
    with serve("hardening_app:asgi", "--interface", "asgi", "--no-access-log",
               env={"HARDEN_DIR": str(tmp_path)}) as srv:
        port = srv.port
        idle = RawConn(port)
        idle.send(request_bytes("GET", "/fast"))
        assert idle.read_response().status == 200          # now idle keep-alive
        busy = []
        for i in range(30):
            c = RawConn(port)
            c.send(request_bytes("GET", f"/gated?i={i}"))
            busy.append(c)
        wait_for(lambda: h11_get(port, "/__state__?key=gated").json()["value"] == 30,
                 "30 requests in the app")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_log(r"shutting down"), srv.log[-2000:]
        assert idle.closed_by_peer(), "an idle keep-alive connection was kept at shutdown"
        # new connections are refused (the listener is closed)
        refused = False
        for _ in range(100):
            try:
                s = socket.create_connection((HOST, port), timeout=2)
            except ConnectionRefusedError:
                refused = True
                break
            # accepted just before the listener closed: it must not be served
            s.sendall(request_bytes("GET", "/late"))
            s.settimeout(10)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            s.close()
            assert not data.startswith(b"HTTP/1.1 2"), data
            time.sleep(0.05)
        assert refused, "new connections were still accepted during the drain"
        assert srv.alive()
        (tmp_path / "release").write_text("")
        for c in busy:
            r = c.read_response()
            assert r.status == 200 and r.body == b"released"
            assert "close" in r.connection_tokens()
            assert c.closed_by_peer()
            c.close()
        idle.close()
        assert srv.proc.wait(30) == 0
        _LIVE.discard(srv)    # it exited as asked: not a crash for serve() to report


def test_sigkill_of_a_worker_under_load_others_keep_serving():
    with serve("hardening_app:asgi", "--interface", "asgi", "--workers", "2",
               "--no-access-log") as srv:
        port = srv.port
        wait_for(lambda: len(srv.pids()) >= 3, "two workers")
        wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log)) >= 2, "both workers ready")
        workers = [p for p in srv.pids() if p != srv.proc.pid]
        stop = threading.Event()
        ok, failures = [0], []

        def client():
            while not stop.is_set():
                try:
                    with RawConn(port, timeout=10) as c:
                        c.send(request_bytes("GET", "/fast", [("Connection", "close")]))
                        r = c.read_response()
                        assert r.status == 200 and r.body == b"ok"
                    ok[0] += 1
                except Exception as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: ok[0] >= 200, "requests before the kill")
            os.kill(workers[0], signal.SIGKILL)
            assert srv.wait_log(rf"worker {workers[0]} died"), srv.log[-2000:]
            at_kill = ok[0]
            wait_for(lambda: ok[0] >= at_kill + 500, "requests after the kill", timeout=30)
            wait_for(lambda: len([p for p in srv.pids() if p != srv.proc.pid]) >= 2,
                     "the replacement worker")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        # only a request the killed worker had already accepted can fail: one per client
        assert len(failures) <= len(threads), (failures[:3], srv.log[-3000:])
        assert re.search(r"replacing it", srv.log)
        assert srv.alive()


def test_replacement_worker_serves_connections_queued_before_it_started():
    """While the only other worker is stopped, connections queue on the shared socket; the
    worker that replaces a killed one must answer them like any other request (not 500)."""
    with serve("hardening_app:asgi", "--interface", "asgi", "--workers", "2",
               "--no-access-log") as srv:
        port = srv.port
        wait_for(lambda: len(srv.pids()) >= 3, "two workers")
        # killed before the supervisor saw it ready, a worker counts as failing to start
        wait_for(lambda: len(re.findall(r"worker \d+ ready", srv.log)) >= 2, "both workers ready")
        victim, survivor = [p for p in srv.pids() if p != srv.proc.pid][:2]
        os.kill(survivor, signal.SIGSTOP)
        conns = []
        try:
            os.kill(victim, signal.SIGKILL)
            assert srv.wait_log(rf"worker {victim} died"), srv.log[-2000:]
            for i in range(8):     # queued in the kernel until a worker accepts them
                c = RawConn(port)
                c.send(request_bytes("GET", "/fast", [("Connection", "close")]))
                conns.append(c)
            statuses = [c.read_response(timeout=30).status for c in conns]
        finally:
            os.kill(survivor, signal.SIGCONT)
            for c in conns:
                c.close()
        assert statuses == [200] * 8, (statuses, srv.log[-3000:])
