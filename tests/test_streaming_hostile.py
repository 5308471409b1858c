"""Clients that misbehave against streams, on our real server: one that stops reading a large
response, one that leaves in the middle of it, an upload that stalls, and a thousand event
streams that never end.  The server's memory stays bounded, the app's code is told (its
generator closed, its body read failing), and other clients are still served.  The app is
tests/apps_api/hostile_app.py.  No test asserts on elapsed time."""
import resource
import select

import pytest

from conftest import (NATIVE_APP_DIR, RawConn, app_state, first_status, h11_get, serve,
                      wait_stalled, wait_state)

MIB = 1 << 20
BIG_MIB = 512  # a non-reader's response: far more than the server may ever hold for it
RSS_MARGIN = 64 * MIB  # growth allowed while a client reads nothing (unbounded: ~512 MiB)
SSE_CLIENTS = 1000


@pytest.fixture(scope="module")
def server():
    with serve("hostile_app:app", "--app-dir", NATIVE_APP_DIR) as srv:
        yield srv


def closed_or_readable(clients):
    """How many of these idle streams have something to read now (an end, an error, bytes)."""
    poller = select.poll()
    for c in clients:
        poller.register(c.sock, select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return len(poller.poll(0))


def hello(port):
    r = h11_get(port, "/hello")
    assert r.status == 200 and r.json() == {"hello": "world"}


def test_a_client_that_stops_reading_does_not_grow_the_server(server):
    port = server.port
    # warm every path first (a whole 1 MiB stream), so that the baseline includes them
    r = h11_get(port, "/big/1")
    assert r.status == 200 and len(r.body) == MIB
    rss0 = server.rss()
    produced0 = app_state(port, "produced")
    closed0 = app_state(port, "closed")
    with RawConn(port, rcvbuf=4096) as c:
        c.send(b"GET /big/%d HTTP/1.1\r\nHost: t\r\n\r\n" % BIG_MIB)
        c.read_until(lambda buf: b"\r\n\r\n" in buf)
        # ... and reads nothing more: the generator must pause, not run to the end
        produced = wait_stalled(port, "produced") - produced0
        grown = server.rss() - rss0
        assert produced < BIG_MIB * MIB // 2, "the whole response was produced for a non-reader"
        assert grown < RSS_MARGIN, "RSS grew by %d MiB for a client that reads nothing" % (
            grown // MIB)
        assert app_state(port, "closed") == closed0  # paused, still open
        hello(port)  # others are served meanwhile
    # the client left: the paused generator is closed (its finally ran)
    wait_state(port, "closed", lambda n: n == closed0 + 1)
    hello(port)


def test_a_client_that_leaves_mid_stream(server):
    port = server.port
    closed0 = app_state(port, "closed")
    with RawConn(port) as c:
        c.send(b"GET /big/%d HTTP/1.1\r\nHost: t\r\n\r\n" % BIG_MIB)
        c.read_until(lambda buf: len(buf) > 2 * MIB)
    wait_state(port, "closed", lambda n: n == closed0 + 1)
    hello(port)
    r = h11_get(port, "/big/3")  # a whole stream still works after it
    assert r.status == 200 and r.body == b"z" * (3 * MIB)


def test_a_stalled_upload_times_out_and_the_server_goes_on():
    with serve("hostile_app:app", "--app-dir", NATIVE_APP_DIR, "--timeout-body", "1") as srv:
        port = srv.port
        with RawConn(port) as c:
            c.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % MIB)
            c.send(b"u" * 100_000)  # a tenth of it, then nothing
            data, closed = c.read_until_close()
        assert closed, "the connection of a stalled upload was left open"
        if data:  # the server may answer before closing: then with 408
            assert first_status(data) == 408, data[:200]
        # the resource reading the body was told (its read failed), not left waiting
        errors = wait_state(port, "upload_errors", lambda e: len(e) == 1)
        assert errors[0], errors
        assert app_state(port, "uploads") == 0
        hello(port)
        r = h11_get(port, "/upload", method="PUT", body=b"v" * 5000,
                    headers=[("content-length", "5000")])
        assert r.status == 201 and r.json() == {"size": 5000}


def test_a_thousand_idle_event_streams_then_a_normal_request(server):
    port = server.port
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SSE_CLIENTS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * SSE_CLIENTS), hard))
    open0 = app_state(port, "sse_open")
    clients = []
    try:
        for _ in range(SSE_CLIENTS):
            c = RawConn(port)
            clients.append(c)
            c.send(b"GET /events/idle HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        for c in clients:
            c.read_until(lambda buf: b"retry: 1000" in buf)
            assert first_status(c.buf) == 200
        wait_state(port, "sse_open", lambda n: n == open0 + SSE_CLIENTS)
        hello(port)
        r = h11_get(port, "/big/1")
        assert r.status == 200 and len(r.body) == MIB
        assert not closed_or_readable(clients), "streams were closed (or sent something)"
    finally:
        for c in clients:
            c.close()
    # every stream ended when its client left
    wait_state(port, "sse_open", lambda n: n == open0)
    hello(port)
