"""ASGI lifespan: the Lifespan driver against fake apps, then the real server process running
startup before it serves, shutdown after it drains, and stopping on a failed startup."""
from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from _util_cli import app_args, clean_env, launch, request, worker_pids  # noqa: F401
from flask_restful_async.server.lifespan import Lifespan

# --- the driver, against fake apps (no server process) ------------------------------------


def drive(app, shutdown_timeout=5.0):
    """Run startup then shutdown; returns (startup ok, shutdown ok, lifespan, log records)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("test_lifespan")
    log.handlers[:] = [Keep()]
    log.setLevel(logging.DEBUG)
    log.propagate = False

    async def main():
        lifespan = Lifespan(app, log)
        started = await asyncio.wait_for(lifespan.startup(), 10)
        stopped = await asyncio.wait_for(lifespan.shutdown(shutdown_timeout), 10) \
            if started else None
        return started, stopped, lifespan

    started, stopped, lifespan = asyncio.run(main())
    return started, stopped, lifespan, records


def messages(records, level=logging.DEBUG):
    return [r.getMessage() for r in records if r.levelno >= level]


def test_startup_and_shutdown_complete_with_state():
    seen = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    started, stopped, lifespan, records = drive(app)
    assert (started, stopped) == (True, True)
    assert lifespan.supported and lifespan.state == {"db": "connected"}
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
    assert not messages(records, logging.WARNING)


def test_startup_failed_logs_the_message():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    started, _, _, records = drive(app)
    assert started is False
    assert "application startup failed: no database" in messages(records, logging.ERROR)


def test_exception_after_receiving_startup_is_a_failed_startup():
    async def app(scope, receive, send):
        await receive()
        raise ConnectionError("cache down")

    started, _, _, records = drive(app)
    assert started is False
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info and "cache down" in str(errors[0].exc_info[1])


@pytest.mark.parametrize("kind", ["raises", "returns"])
def test_app_without_lifespan_is_served_anyway(kind):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            if kind == "raises":
                raise ValueError("http only")
            return

    started, stopped, lifespan, records = drive(app)
    assert (started, stopped) == (True, True)
    assert not lifespan.supported
    info = messages(records, logging.INFO)
    assert len(info) == 1 and "lifespan not supported" in info[0]
    assert not messages(records, logging.WARNING)


def test_shutdown_failed_is_logged():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    started, stopped, _, records = drive(app)
    assert (started, stopped) == (True, False)
    assert "application shutdown failed: flush failed" in messages(records, logging.ERROR)


def test_shutdown_that_never_answers_is_cancelled():
    cancelled = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.Event().wait()      # never answers the shutdown
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    started, stopped, _, records = drive(app, shutdown_timeout=0.05)
    assert (started, stopped) == (True, False)
    assert cancelled == [True]
    assert any("did not finish" in m for m in messages(records, logging.WARNING))


def test_out_of_order_message_is_an_error():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.shutdown.complete"})   # before startup.complete

    started, _, _, records = drive(app)
    assert started is False
    assert any("out of order" in str(r.exc_info[1]) for r in records if r.exc_info)


# --- the real server process --------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_startup_before_serving_and_shutdown_after(launch, tmp_path, workers):
    server = launch(*app_args("lifespan_app:app", "--workers", workers),
                    env=clean_env(CLI_TEST_DIR=str(tmp_path)))
    addr = server.address()
    if workers != "1":
        worker_pids(server, int(workers))   # all started, so all must shut down
    response = request(addr)
    assert response.json() == {"token": "set-at-startup"}   # lifespan state reaches requests
    events = (tmp_path / "events").read_text().split()[::2]
    assert events.count("startup") >= 1 and "shutdown" not in events
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    lines = (tmp_path / "events").read_text().splitlines()
    started = {pid for ev, pid in map(str.split, lines) if ev == "startup"}
    stopped = {pid for ev, pid in map(str.split, lines) if ev == "shutdown"}
    assert len(started) == int(workers) and started == stopped


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("spec,needle", [
    ("lifespan_app:failing", "application startup failed: database unreachable (test)"),
    ("lifespan_app:raising", "ConnectionError: cache unreachable (test)"),
])
def test_failed_startup_stops_with_exit_3(launch, tmp_path, spec, needle, workers):
    server = launch(*app_args(spec, "--workers", workers),
                    env=clean_env(CLI_TEST_DIR=str(tmp_path)))
    assert server.wait() == 3
    assert needle in server.log
    assert "listening on" not in server.log


def test_app_without_lifespan_serves(launch):
    server = launch(*app_args("raw_asgi:app"))
    assert request(server.address()).status == 200
    server.wait_for(r"INFO ASGI lifespan not supported by the app")
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
