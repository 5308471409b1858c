"""http.disconnect: delivered to an app awaiting receive() when the client goes away."""
import socket
import uuid

import pytest

from conftest import RawConn, app_state, h11_get, request_bytes, wait_state


def new_id():
    return "dc-" + uuid.uuid4().hex


def test_disconnect_after_full_body(port):
    """The body is complete; the next receive() waits, and returns http.disconnect once the
    client closes.  receive() after that keeps returning http.disconnect."""
    key = new_id()
    c = RawConn(port)
    c.send(request_bytes("POST", f"/t/disconnect?id={key}", body=b"hello"))
    wait_state(port, key, lambda v: v and v[0].startswith("http.request"))
    c.close()
    log = wait_state(port, key, lambda v: v and v[-1] == "done")
    assert log[0] == "http.request"                  # the whole body, more_body False
    assert "http.disconnect" in log
    assert log[log.index("http.disconnect") + 1] == "again:http.disconnect"


def test_disconnect_while_body_incomplete(port):
    key = new_id()
    c = RawConn(port)
    c.send(f"POST /t/disconnect?id={key} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
           .encode() + b"x" * 10)
    c.shut_wr()
    c.close()
    log = wait_state(port, key, lambda v: v and v[-1] == "done")
    assert log[-3:] == ["http.disconnect", "again:http.disconnect", "done"]
    # Whatever body arrived was announced as incomplete.
    assert all(m == "http.request:more" for m in log[:-3]), log


def test_disconnect_after_response_started(port):
    key = new_id()
    c = RawConn(port)
    c.send(request_bytes("GET", f"/t/disconnect?id={key}&start=1"))
    c.read_until(lambda b: b"started" in b)
    wait_state(port, key, lambda v: v and "response-started" in v)
    c.close()
    log = wait_state(port, key, lambda v: v and v[-1] == "done")
    assert "http.disconnect" in log


def test_disconnect_by_reset(port):
    key = new_id()
    c = RawConn(port)
    c.send(request_bytes("GET", f"/t/disconnect?id={key}"))
    wait_state(port, key, lambda v: bool(v))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    log = wait_state(port, key, lambda v: v and v[-1] == "done")
    assert "http.disconnect" in log


@pytest.mark.parametrize("start", ["0", "1"])
def test_send_after_disconnect_raises_oserror(port, start):
    """ASGI spec 2.4 (which the scope announces): send() on a closed connection raises a
    server-specific OSError subclass, http.response.start and http.response.body alike."""
    key = new_id()
    c = RawConn(port)
    c.send(request_bytes("GET", f"/t/disconnect?id={key}&send_after=1&start={start}"))
    wait_state(port, key, lambda v: bool(v))
    c.close()
    log = wait_state(port, key, lambda v: v and v[-1] == "done")
    outcome = [m for m in log if m.startswith("send-after-disconnect")]
    sends = 1 if start == "1" else 2
    assert outcome == ["send-after-disconnect:OSError:ClientDisconnected"] * sends, log
    assert h11_get(port, "/alive").status == 200


def test_no_disconnect_while_client_stays(port):
    """A client that keeps its connection open gets its response; http.disconnect is not
    invented: the app's receive() after the body only returns once the client leaves."""
    key = new_id()
    with RawConn(port) as c:
        c.send(request_bytes("POST", f"/t/disconnect?id={key}", body=b"abc"))
        wait_state(port, key, lambda v: bool(v))
        # Another full exchange on another connection, then check the log again.
        assert h11_get(port, "/other").status == 200
        assert app_state(port, key) == ["http.request"]
    wait_state(port, key, lambda v: v and v[-1] == "done")
