"""Timeouts, client disconnects and the blocked-loop report on the native path, against our
server over real sockets.  Waits are safety nets; nothing asserts on elapsed time."""
import socket
import struct
import sys
import time

import pytest

from conftest import NATIVE_APP_DIR, RawConn, h11_get, poll, request_bytes, serve

APP_DIR = NATIVE_APP_DIR
sys.path.insert(0, APP_DIR)


@pytest.fixture(scope="module")
def srv(native_server):
    return native_server


def events(port):
    return h11_get(port, "/__state__").json()["events"]


def wait_events(port, pred):
    return poll(lambda: events(port), pred, what="the app's events")


def test_resource_timeout_gives_504_and_cancels_the_handler(srv):
    r = h11_get(srv.port, "/slow")
    assert r.status == 504
    assert r.header("content-type") == b"application/json"
    assert set(r.json()) == {"message"}
    evs = wait_events(srv.port, lambda e: "slow:finally" in e)
    assert evs.index("slow:start") < evs.index("slow:cancelled") < evs.index("slow:finally")


def test_api_wide_timeout_gives_504(srv):
    r = h11_get(srv.port, "/v2/api/slow")
    assert r.status == 504 and "message" in r.json()
    assert "bpslow:finally" in wait_events(srv.port, lambda e: "bpslow:finally" in e)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_cancels_the_handler(srv, how):
    tag = "%s-%s" % (how, time.monotonic_ns())
    mark = len(srv.log)
    c = RawConn(srv.port)
    c.send(request_bytes("GET", "/hang?tag=" + tag))
    wait_events(srv.port, lambda e: "hang:start:" + tag in e)
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    evs = wait_events(srv.port, lambda e: "hang:finally:" + tag in e)
    assert "hang:cancelled:" + tag in evs        # CancelledError reached user code
    assert "hang:finally:" + tag in evs          # and its cleanup ran
    teardown = h11_get(srv.port, "/__state__").json()["teardown"]
    assert ["/hang", "CancelledError"] in teardown
    # nothing logged as an error, and the server keeps serving
    assert h11_get(srv.port, "/items/1").status == 200
    later = srv.log[mark:]
    assert "ERROR" not in later and "Traceback" not in later and "Cancelled" not in later


def test_blocked_loop_is_reported_with_endpoint_and_stack():
    with serve("native_app:asgi_app", "--interface", "asgi", "--app-dir", APP_DIR,
               env={"FRA_BLOCKED_LOOP_MS": "100"}) as server:
        assert h11_get(server.port, "/items/1").status == 200
        assert "blocked the event loop" not in server.log
        assert h11_get(server.port, "/blocker").json() == {"blocked": True}
        assert server.wait_log(r"blocked the event loop.*block_the_loop_here")
        report = server.log[server.log.index("blocked the event loop") - 80:]
        assert "'blocker'" in report
        assert "time.sleep(0.4)" in report


def test_blocked_loop_report_is_off_by_default(srv):
    assert h11_get(srv.port, "/blocker").status == 200
    assert not srv.wait_log("blocked the event loop", timeout=1.0)
