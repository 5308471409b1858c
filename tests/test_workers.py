"""Processes: several workers on one socket, a killed worker replaced, SIGHUP rolling the
workers with no failed request, SIGTERM/SIGINT draining in-flight requests, --reload."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from _util_cli import (APPS, app_args, clean_env, connect, launch, read_response,  # noqa: F401
                       request, send_request, wait_until, worker_pids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids_answering(addr, n: int = 20) -> set[int]:
    return {request(addr).json()["pid"] for _ in range(n)}


def test_two_workers_serve_and_a_killed_worker_is_replaced(launch):
    server = launch(*app_args("raw_asgi:app", "--workers", "2"))
    addr = server.address()
    first = worker_pids(server, 2)
    assert len(set(first)) == 2 and os.getpid() not in first
    assert pids_answering(addr) <= set(first)

    victim, survivor = first
    os.kill(victim, signal.SIGKILL)
    server.wait_for(rf"worker {victim} died \(signal SIGKILL\); replacing it")
    replacement = worker_pids(server, 3)[2]
    assert replacement not in first
    wait_until(lambda: not alive(victim), what="the killed worker to be reaped")
    assert pids_answering(addr) <= {survivor, replacement}


@pytest.mark.parametrize("spec", ["raw_asgi:app", "flask_app:app"])
def test_sighup_rolls_workers_without_a_failed_request(launch, spec):
    server = launch(*app_args(spec, "--workers", "2"))
    addr = server.address()
    old = set(worker_pids(server, 2))
    stop = threading.Event()
    ok: list[int] = []
    failures: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                response = request(addr, timeout=10)
                assert response.status == 200, response.status
                ok.append(response.json()["pid"])
            except Exception as exc:   # any failure at all is what this test is about
                failures.append(repr(exc))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        wait_until(lambda: len(ok) >= 20 or failures, what="requests before SIGHUP")
        server.send_signal(signal.SIGHUP)
        server.wait_for(r"all workers replaced")
        new = set(worker_pids(server, 4)) - old
        assert len(new) == 2
        wait_until(lambda: all(not alive(p) for p in old), what="the old workers to exit")
        served_before = len(ok)
        wait_until(lambda: len(ok) >= served_before + 20 or failures,
                   what="requests after the roll")
    finally:
        stop.set()
        for t in clients:
            t.join(60)
    assert failures == []
    assert set(ok[-10:]) <= new and set(ok) & old


@pytest.mark.parametrize("spec", ["raw_asgi:app", "flask_app:app"])
@pytest.mark.parametrize("workers,sig", [("1", signal.SIGTERM), ("1", signal.SIGINT),
                                         ("2", signal.SIGTERM), ("2", signal.SIGINT)])
def test_stop_signal_lets_the_request_in_flight_finish(launch, tmp_path, spec, workers, sig):
    server = launch(*app_args(spec, "--workers", workers),
                    env=clean_env(CLI_TEST_DIR=str(tmp_path)))
    addr = server.address()
    if workers != "1":
        worker_pids(server, int(workers))
    idle = connect(addr)
    idle_conn = send_request(idle, path="/", close=False)
    assert read_response(idle, idle_conn).status == 200     # now an idle keep-alive connection
    busy = connect(addr)
    busy_conn = send_request(busy, path="/slow", close=False)
    wait_until(lambda: any(tmp_path.glob("started-*")), what="the slow request to start")

    server.send_signal(sig)
    server.wait_for(r"INFO SIG(TERM|INT): shutting down", count=int(workers))
    assert idle.recv(1) == b""          # idle keep-alive connections are closed at once
    assert server.proc.poll() is None   # ... while the request in flight holds the worker

    (tmp_path / "release").write_text("")
    response = read_response(busy, busy_conn)
    assert response.status == 200 and response.json()["path"] == "/slow"
    assert response.headers.get("connection", "").lower() == "close"
    assert busy.recv(1) == b""
    assert server.wait() == 0
    idle.close()
    busy.close()


def test_graceful_timeout_cancels_what_is_left(launch, tmp_path):
    server = launch(*app_args("raw_asgi:app", "--timeout-graceful", "0.2"),
                    env=clean_env(CLI_TEST_DIR=str(tmp_path)))
    busy = connect(server.address())
    send_request(busy, path="/slow")
    wait_until(lambda: any(tmp_path.glob("started-*")), what="the slow request to start")
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert busy.recv(1) == b""          # cancelled: closed with no response
    assert "cancelling 1 connection(s) still open" in server.log
    busy.close()


def test_reload_restarts_workers_on_a_source_change(launch, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    module = src / "reloadable.py"

    def write(version: str) -> None:
        module.write_text(
            "async def app(scope, receive, send):\n"
            "    if scope['type'] != 'http':\n"
            "        raise RuntimeError('no lifespan')\n"
            "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
            f"    await send({{'type': 'http.response.body', 'body': b'{version}'}})\n")

    write("v1")
    server = launch("reloadable:app", "--app-dir", str(src), "--port", "0", "--reload")
    addr = server.address()
    assert request(addr).text == "v1"
    write("v2")
    st = module.stat()   # make sure the mtime moves even on a coarse clock
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    server.wait_for(r"changed: reloadable\.py; restarting workers")
    server.wait_for(r"all workers replaced")
    # The old worker may accept a last connection before it sees its SIGTERM.
    wait_until(lambda: request(addr).text == "v2", what="the new code to answer")
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0


def test_reload_keeps_old_worker_when_the_new_code_is_broken(launch, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    module = src / "reloadable.py"
    module.write_text((APPS / "raw_asgi.py").read_text().replace("from _control import "
                                                                  "wait_released_async\n", ""))
    server = launch("reloadable:app", "--app-dir", str(src), "--port", "0", "--reload")
    addr = server.address()
    before = request(addr).json()["pid"]
    module.write_text("this is not python\n")
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    server.wait_for(r"replacement aborted; the old workers keep serving")
    assert request(addr).json()["pid"] == before


def test_supervisor_exit_code_is_0_after_sigterm_with_no_traffic(launch):
    server = launch(*app_args("starlette_app:app", "--workers", "3"))
    server.address()
    pids = worker_pids(server, 3)
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not any(alive(p) for p in pids)



def test_sighup_without_a_supervisor_is_ignored(launch):
    server = launch(*app_args("raw_asgi:app"))
    addr = server.address()
    server.send_signal(signal.SIGHUP)
    server.wait_for(r"WARNING SIGHUP ignored")
    assert request(addr).status == 200
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0


def test_graceful_timeout_0_under_the_supervisor_cancels_at_once(launch, tmp_path):
    # The request is never released: only the cancellation can end it.
    server = launch(*app_args("raw_asgi:app", "--workers", "2", "--timeout-graceful", "0"),
                    env=clean_env(CLI_TEST_DIR=str(tmp_path)))
    addr = server.address()
    worker_pids(server, 2)
    busy = connect(addr)
    send_request(busy, path="/slow")
    wait_until(lambda: any(tmp_path.glob("started-*")), what="the slow request to start")
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert busy.recv(1) == b""
    busy.close()
