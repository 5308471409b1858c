"""Streamed responses and request bodies (flask_restful_async.streaming) on our server and
under uvicorn: what a resource returns as an iterator, EventStream, body_chunks().  The app is
tests/apps_api/streaming_app.py; every test talks to the real server over a socket."""
import hashlib
import json
import os
import time

import pytest

from conftest import H11Client, RawConn, h11_get, serve_streaming_app

WAIT = 30.0  # seconds: a safety net for a slow machine, never a measurement


@pytest.fixture(scope="module", params=["ours", "uvicorn"])
def server(request, tmp_path_factory):
    files = tmp_path_factory.mktemp("files")
    env = {"FRA_TEST_FILES": str(files), "FRA_TEST_LOG": str(files / "app.log")}
    with serve_streaming_app(request.param, env=env) as srv:
        srv.kind = request.param
        srv.files = files
        yield srv


def state(port):
    return h11_get(port, "/state").json()


def wait_state(port, key, pred):
    deadline = time.monotonic() + WAIT
    while True:
        value = state(port)[key]
        if pred(value):
            return value
        assert time.monotonic() < deadline, "state %s never reached the condition: %r" % (key, value)
        time.sleep(0.02)


# ---- iterators returned by resources ---------------------------------------------------------

def test_async_generator_is_streamed_chunked(server):
    with RawConn(server.port) as c:
        c.send(b"GET /stream/chunks/3/4 HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert r.header("transfer-encoding") == b"chunked"
    assert r.header("content-type") == b"application/octet-stream"
    assert r.body == b"aaaabbbbcccc"


def test_status_and_headers_given_with_the_iterator(server):
    r = h11_get(server.port, "/stream/csv")
    assert r.status == 200 and r.header("content-type") == b"text/csv"
    assert r.body == b"id,name\n0,row0\n1,row1\n2,row2\n"
    r = h11_get(server.port, "/stream/sized")  # Content-Length set by the resource: no chunks
    assert r.header("content-length") == b"11" and r.header("transfer-encoding") is None
    assert r.body == b"hello world"


def test_sync_generator_from_a_sync_resource(server):
    r = h11_get(server.port, "/stream/sync")
    assert r.status == 200 and r.body == b"".join(b"sync %d\n" % i for i in range(5))


@pytest.mark.parametrize("path", ["/stream/fails", "/stream/fails-sync"])
def test_a_stream_that_fails_before_its_first_chunk_is_the_resources_error(server, path):
    # flask-restful's JSON error, as if the resource itself had raised (not a plain 500 or a
    # head with a cut body), and the server goes on serving
    r = h11_get(server.port, path + "/raise")
    assert r.status == 500 and r.header("content-type") == b"application/json"
    assert r.json() == {"message": "Internal Server Error"}
    r = h11_get(server.port, path + "/abort")
    assert r.status == 404 and r.json()["message"] == "no such stream"
    assert h11_get(server.port, "/stream/sync").status == 200


def test_large_stream_on_a_keep_alive_connection(server):
    with H11Client(server.port) as c:
        r = c.request("GET", "/stream/chunks/200/65536")
        assert r.status == 200 and len(r.body) == 200 * 65536
        assert r.body[-65536:] == bytes([97 + 199 % 26]) * 65536
        assert c.request("GET", "/stream/csv").status == 200  # the connection goes on


def test_head_sends_no_body(server):
    with RawConn(server.port) as c:
        c.send(b"HEAD /stream/chunks/3/4 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /stream/csv HTTP/1.1\r\nHost: t\r\n\r\n")
        head = c.read_response(method="HEAD")
        follow = c.read_response()
    assert head.status == 200 and head.body == b""
    assert follow.status == 200 and follow.body.startswith(b"id,name")


def test_client_that_leaves_closes_the_generator(server):
    before = state(server.port)
    with RawConn(server.port) as c:
        c.send(b"GET /stream/forever HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while got.count(b"line ") < 5:
            got += c.sock.recv(65536)
    # the generator's finally ran: it was closed, not left running for nobody
    wait_state(server.port, "closed", lambda n: n > before["closed"])
    assert state(server.port)["started"] == before["started"] + 1


# ---- body_chunks() --------------------------------------------------------------------------

def test_upload_read_as_it_arrives(server):
    body = os.urandom(3 * 1024 * 1024 + 17)
    r = h11_get(server.port, "/upload", method="PUT", body=body,
                headers=[("content-length", str(len(body)))])
    got = r.json()
    assert r.status == 201
    assert got["size"] == len(body) and got["sha256"] == hashlib.sha256(body).hexdigest()
    assert got["max_chunk"] <= 1024 * 1024  # handed over in bounded pieces


def test_chunked_upload(server):
    pieces = [os.urandom(n) for n in (1, 70000, 3, 200000)]
    with RawConn(server.port) as c:
        c.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for p in pieces:
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    body = b"".join(pieces)
    assert r.status == 201
    assert json.loads(r.body) == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                                  "chunks": json.loads(r.body)["chunks"],
                                  "max_chunk": json.loads(r.body)["max_chunk"]}


def test_upload_is_consumed_before_it_is_complete(server):
    """The resource runs while the body is still arriving: half an upload sent, the app has
    already read it (the rest is sent only after)."""
    before = state(server.port)["upload_bytes"]
    half = b"x" * 600_000
    with RawConn(server.port) as c:
        c.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (2 * len(half)))
        c.send(half)
        wait_state(server.port, "upload_bytes", lambda n: n >= before + len(half))
        c.send(half)
        r = c.read_response()
    assert r.status == 201 and json.loads(r.body)["size"] == 2 * len(half)


def test_expect_100_continue_is_answered_when_the_resource_reads(server):
    body = b"y" * 5000
    with RawConn(server.port) as c:
        c.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(body)
        r = c.read_response()
    assert r.status == 201 and json.loads(r.body)["size"] == len(body)


# ---- EventStream ------------------------------------------------------------------------------

def read_events(c, n):
    """n events (as dicts of their fields) from a raw connection after the response head."""
    events = []
    while len(events) < n:
        while b"\n\n" not in c.buf:
            chunk = c.sock.recv(65536)
            assert chunk, "the stream ended"
            c.buf += chunk
        raw, c.buf = c.buf.split(b"\n\n", 1)
        fields = {}
        for line in raw.split(b"\n"):
            if b"\r\n" in line or not line:  # chunk framing lines
                continue
            name, _, value = line.partition(b":")
            fields.setdefault(name.decode(), []).append(value[1:].decode() if value.startswith(b" ") else value.decode())
        events.append(fields)
    return events


def test_a_stream_that_blocks_the_loop_is_reported():
    # the blocked-loop watchdog watches the stream's steps as it does the handler's
    with serve_streaming_app("ours", env={"FRA_BLOCKED_LOOP_MS": "100"}) as srv:
        assert h11_get(srv.port, "/stream/blocking").body == b"before after"
        assert srv.wait_log(r"blocked the event loop.*block_the_loop_in_a_stream")
