"""Sending after the client has gone raises `_core.ClientDisconnected` (an OSError, as ASGI
spec 2.4 asks), so a producer stops instead of running for nobody; an app that ends by that
error (or by one raised from or while handling it) is not logged as an application error.
Under both loops; waits are safety nets, nothing asserts on elapsed time."""
import re
import uuid

import pytest

from conftest import RawConn, h11_get, poll, request_bytes, serve, wait_state


def new_id(tag):
    return "%s-%s" % (tag, uuid.uuid4().hex[:12])


def log_before_control(srv, mark, control_path, control_text):
    """The server's output since `mark` up to the error that a request to `control_path`
    (a handler that raises, `control_text` in its traceback) logs: once that is in, all that
    was logged before it has been read, so what is missing was not logged.  Checks the
    control is logged at ERROR."""
    assert h11_get(srv.port, control_path).status == 500
    assert srv.wait_log(re.escape(control_text)), srv.log[mark:]
    later = srv.log[mark:]
    head = later[:later.index(control_text)]
    m = list(re.finditer(r"\] (\w+) Exception in ASGI application", head))[-1]
    assert m.group(1) == "ERROR", m.group(0)
    return later[:head.rfind("\n", 0, m.start()) + 1]


# ----------------------------------------------------------------------------- Starlette

@pytest.fixture(scope="module")
def starlette(loop_name):
    with serve("starlette_app:app", "--interface", "asgi", "--loop", loop_name) as srv:
        yield srv


def test_starlette_stream_stops_when_the_client_leaves(starlette):
    """Starlette (>= 0.37) relies on send()'s OSError with spec 2.4: without it the
    generator of a StreamingResponse whose client left runs forever."""
    port, key = starlette.port, new_id("endless")
    mark = len(starlette.log)

    def state():
        return h11_get(port, "/__state__?id=" + key).json()

    with RawConn(port) as c:
        c.send(request_bytes("GET", "/endless?id=" + key))
        c.read_until(lambda b: len(b) > 64 * 1024)
        assert c.buf.startswith(b"HTTP/1.1 200 ")
    final = poll(state, lambda v: v and v["finally"], what="the generator's finally")
    assert [state() for _ in range(3)] == [final] * 3  # and it yields no more
    before = log_before_control(starlette, mark, "/fail", "RuntimeError: starlette-boom")
    assert "ERROR" not in before and "Traceback" not in before, before


# ----------------------------------------------------------------------------- raw ASGI

@pytest.mark.parametrize("how", ["propagate", "context", "cause"])
def test_app_ended_by_the_disconnect_is_not_an_app_error(asgi_server, how):
    """The app lets send()'s error end it: as it is, or with another error raised while
    handling it or from it.  Only the client left: no ERROR line, no traceback."""
    port, key = asgi_server.port, new_id("dc-" + how)
    mark = len(asgi_server.log)
    c = RawConn(port)
    c.send(request_bytes("GET", f"/t/disconnect?id={key}&send_after={how}"))
    wait_state(port, key, bool)
    c.close()
    wait_state(port, key, lambda v: v and v[-1] == "done")
    before = log_before_control(asgi_server, mark, f"/t/raise-before?id={key}",
                                f"RuntimeError: boom-before-{key}")
    assert "ERROR" not in before and "Traceback" not in before, before


# ----------------------------------------------------------------------------- native entry

@pytest.fixture(scope="module")
def native_entry(loop_name):
    with serve("native_entry_app:app", "--interface", "native", "--loop", loop_name) as srv:
        yield srv


def native_state(port, key):
    return h11_get(port, "/__state__?id=" + key).json()["value"]


def test_native_respond_after_the_client_left_raises_client_disconnected(native_entry):
    port, key = native_entry.port, new_id("respond")
    c = RawConn(port)
    c.send(request_bytes("GET", f"/respond-after-gone?id={key}&catch=1"))
    poll(lambda: native_state(port, key), lambda v: v == "waiting", what="the handler")
    c.close()
    assert poll(lambda: native_state(port, key), lambda v: v not in ("waiting", "gone"),
                what="respond()'s outcome") == "ClientDisconnected"


def test_native_respond_error_left_to_the_server_is_not_logged(native_entry):
    port, key = native_entry.port, new_id("respond-uncaught")
    mark = len(native_entry.log)
    c = RawConn(port)
    c.send(request_bytes("GET", f"/respond-after-gone?id={key}"))
    poll(lambda: native_state(port, key), lambda v: v == "waiting", what="the handler")
    c.close()
    poll(lambda: native_state(port, key), lambda v: v == "gone", what="the disconnect")
    before = log_before_control(native_entry, mark, "/fail?id=" + key,
                                "RuntimeError: native-entry-boom " + key)
    assert "ERROR" not in before and "Traceback" not in before, before
