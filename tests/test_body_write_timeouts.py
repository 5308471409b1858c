"""--timeout-body and --timeout-write: a client that stops sending a body the app waits for
gets 408 and the close; a client that stops reading a response is closed and the app sees the
disconnect, while the server keeps serving others.  Progress at any steady pace is never cut.

The server runs with short timeouts; tests wait for the server to act (bounded generously so
a broken server cannot hang the suite) and never measure how long it took."""
import socket
import time

import pytest

from conftest import (H11Client, RawConn, app_state, request_bytes, serve, status_lines,
                      wait_for)

TIMEOUT = "1"


@pytest.fixture(scope="module")
def server():
    with serve("lifecycle_app:asgi", "--interface", "asgi", "--no-access-log",
               "--timeout-body", TIMEOUT, "--timeout-write", TIMEOUT) as srv:
        yield srv


@pytest.fixture(scope="module")
def wsgi_server():
    with serve("lifecycle_app:wsgi", "--interface", "wsgi", "--no-access-log",
               "--timeout-body", TIMEOUT) as srv:
        yield srv


def stops_mid_body(port):
    with RawConn(port, timeout=15) as c:
        c.send(request_bytes("POST", "/upload", [("Content-Length", "1000")]) + b"x" * 100)
        data, closed = c.read_until_close(timeout=15)
    assert closed, "a client that stopped sending its body kept the connection"
    assert status_lines(data) == [408], data[:300]


def test_client_that_stops_mid_body_gets_408_and_the_close(server):
    stops_mid_body(server.port)


def test_wsgi_client_that_stops_mid_body_gets_408_and_the_close(wsgi_server):
    stops_mid_body(wsgi_server.port)


def test_a_slow_steady_body_is_not_cut(server):
    """Ten pieces, each well within the timeout of the previous one: the upload as a whole
    takes longer than the timeout and still completes."""
    with RawConn(server.port, timeout=15) as c:
        c.send(request_bytes("POST", "/upload", [("Content-Length", "100")]))
        for _ in range(10):
            time.sleep(0.1)
            c.send(b"y" * 10)
        r = c.read_response()
    assert r.status == 200 and r.body == b"100"


def test_a_dropped_body_rest_is_bounded_by_the_body_timeout(server):
    """After an early 404 the rest of the body is read and dropped; a client that never
    sends it is closed (without a 408: its response was already given)."""
    with RawConn(server.port, timeout=15) as c:
        c.send(request_bytes("POST", "/nowhere", [("Content-Length", "1000")]) + b"z" * 10)
        r = c.read_response()
        assert r.status == 404 and "close" not in r.connection_tokens()
        data, closed = c.read_until_close(timeout=15)
    assert closed and data == b""


def small_window_client(port):
    """A connected socket with a small receive buffer: what it does not read backs up fast."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(15)
    s.connect(("127.0.0.1", port))
    return s


def test_client_that_stops_reading_is_closed_and_the_app_sees_it(server):
    port = server.port
    s = small_window_client(port)
    try:
        s.sendall(request_bytes("GET", "/stall?id=w1"))
        # it never reads: the kernel buffers fill, then the server's write queue
        for i in range(5):          # others are served meanwhile
            with H11Client(port) as c:
                assert c.request("GET", "/fast").status == 200
        wait_for(lambda: app_state(port, "w1") == "gone", "the app to see the disconnect",
                 timeout=15)
        # the connection was closed by the server: reading drains what the kernels hold, then EOF
        total, eof = 0, False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            total += len(chunk)
        assert eof, f"connection still open after {total} bytes"
    finally:
        s.close()
    with H11Client(port) as c:
        assert c.request("GET", "/fast").status == 200


def test_a_slow_steady_reader_is_not_cut(server):
    """A reader taking 64 KiB every 0.1 s never goes a whole timeout without progress; it
    reads for longer than the timeout."""
    port = server.port
    s = small_window_client(port)
    try:
        s.sendall(request_bytes("GET", "/stall?id=w2"))
        got = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            chunk = s.recv(65536)
            assert chunk, "closed while the client was still reading"
            got += len(chunk)
            time.sleep(0.1)
        assert app_state(port, "w2") == "streaming"
    finally:
        s.close()
