"""Header timeout and keep-alive idle timeout.

The server runs with one-second timeouts.  Tests wait for the server to act (bounded by
generous limits so a broken server cannot hang the suite); none measures how long it took.
"""
import socket
import time

import pytest

from conftest import ANY_2XX_RE, H11Client, RawConn, request_bytes, serve, status_lines


@pytest.fixture(scope="module")
def server():
    with serve("asgi_app:app", "--interface", "asgi",
               "--timeout-header", "1", "--timeout-keep-alive", "1") as srv:
        yield srv


def assert_cut_without_answer(data):
    # Closing silently or with 408 (RFC 9110 section 15.5.9) are both right; a 2xx is not.
    assert not ANY_2XX_RE.search(data), data[:300]
    assert status_lines(data) in ([], [408]), data[:300]


def test_slow_header_client_is_cut_while_others_are_served(server):
    port = server.port
    slow = RawConn(port, timeout=15)
    try:
        slow.send(b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Partial: ")
        # Others are served promptly while the slow client holds its connection.
        for i in range(10):
            with H11Client(port) as c:
                r = c.request("GET", f"/others/{i}")
                assert r.status == 200 and r.json()["path"] == f"/others/{i}"
        data, closed = slow.read_until_close(timeout=15)
        assert closed, "a client that never finished its headers was not disconnected"
        assert_cut_without_answer(data)
    finally:
        slow.close()


def test_header_timeout_is_not_reset_by_each_byte(server):
    """A client that sends one header byte at a time (slowloris) is cut even though it never
    stays silent for a whole timeout period."""
    c = RawConn(server.port, timeout=15)
    try:
        c.send(b"GET /dribble HTTP/1.1\r\nHost: t\r\n")
        closed = False
        deadline = time.monotonic() + 20
        i = 0
        while time.monotonic() < deadline:
            try:
                c.send(b"X-D%d: v\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            i += 1
            c.sock.settimeout(0.25)
            try:
                chunk = c.sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            c.buf += chunk
        assert closed, "a dribbling client kept its connection"
        assert_cut_without_answer(c.buf)
        # It never got past the header limit either: it is the timeout that cut it.
        assert i < 100
    finally:
        c.close()


def test_silent_new_connection_is_closed(server):
    with RawConn(server.port, timeout=15) as c:
        data, closed = c.read_until_close(timeout=15)
    assert closed
    assert_cut_without_answer(data)


def test_idle_keep_alive_connection_is_closed(server):
    with RawConn(server.port, timeout=15) as c:
        c.send(request_bytes("GET", "/ka"))
        r = c.read_response()
        assert r.status == 200 and "close" not in r.connection_tokens()
        data, closed = c.read_until_close(timeout=15)
    assert closed, "idle keep-alive connection never closed"
    assert data == b""


def test_timeouts_do_not_cut_a_request_in_progress(server):
    """The app takes longer than both timeouts; its response still arrives."""
    with H11Client(server.port, timeout=15) as c:
        r = c.request("GET", "/t/sleep?ms=2500")
        assert r.status == 200 and r.json()["path"] == "/t/sleep"
        # The connection is still usable afterwards.
        assert c.request("GET", "/after-slow").status == 200


def test_slow_body_upload_not_cut(server):
    """A body uploaded in pieces with pauses shorter than the timeouts is not cut by the
    header timeout (headers were complete) and reaches the app whole."""
    with RawConn(server.port, timeout=15) as c:
        c.send(b"POST /t/read-sha HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n\r\n")
        for _ in range(3):
            time.sleep(0.6)
            c.send(b"x" * 10)
        r = c.read_response()
    assert r.status == 200 and r.json()["body_len"] == 30
