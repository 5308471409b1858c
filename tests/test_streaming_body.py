"""Request bodies read as they arrive with body_chunks() on the native path (and under uvicorn
where the behaviour is the server's business too): byte-identical uploads with Content-Length
and chunked, bodies read whole, an early answer without reading, `Expect: 100-continue`
answered only when the resource starts reading, reading paused while the resource does not
consume (bounded server memory), and a stalled upload ended by --timeout-body.  The app is
tests/apps_api/streaming_app.py; every test talks to the real server over a socket."""
import hashlib
import os
import select
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from _redis_server import tool_env
from conftest import (NATIVE_APP_DIR, RawConn, h11_get, kernel_buffer_max, send_until_stalled, serve,
                      serve_streaming_app)

MiB = 1024 * 1024
WAIT = 30.0  # seconds: a safety net for a slow machine, never a measurement


@pytest.fixture(scope="module", params=["ours", "uvicorn"])
def server(request):
    with serve_streaming_app(request.param) as srv:
        srv.kind = request.param
        yield srv


@pytest.fixture(scope="module")
def ours():
    with serve("streaming_app:app", "--app-dir", NATIVE_APP_DIR) as srv:
        yield srv


def state(port):
    return h11_get(port, "/state").json()


def wait_for(port, pred, what):
    deadline = time.monotonic() + WAIT
    while True:
        st = state(port)
        if pred(st):
            return st
        assert time.monotonic() < deadline, f"never happened: {what}; state {st!r}"
        time.sleep(0.02)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def put_head(path, length=None, expect=False, chunked=False):
    head = f"PUT {path} HTTP/1.1\r\nHost: t\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    else:
        head += f"Content-Length: {length}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    return (head + "\r\n").encode()


# ---- the bytes arrive intact --------------------------------------------------------------

def test_content_length_upload_is_byte_identical(server):
    body = os.urandom(5 * MiB + 3)
    with RawConn(server.port) as c:
        c.send(put_head("/upload", len(body)) + body)
        r = c.read_response(timeout=WAIT)
    assert r.status == 201
    got = r.json()
    assert got["size"] == len(body) and got["sha256"] == sha(body)
    assert got["max_chunk"] <= 1024 * 1024  # handed over in bounded pieces, as they came


def test_chunked_upload_is_byte_identical(server):
    sizes = [1, 65535, 65536, 65537, 3, 1 << 20, 7, 300_000, 2 * MiB, 11]
    pieces = [os.urandom(n) for n in sizes]
    with RawConn(server.port) as c:
        c.send(put_head("/upload", chunked=True))
        for p in pieces:
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
        c.send(b"0\r\n\r\n")
        r = c.read_response(timeout=WAIT)
    body = b"".join(pieces)
    assert r.status == 201
    assert r.json()["size"] == len(body) and r.json()["sha256"] == sha(body)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_read_whole_is_byte_identical(server, chunked):
    body = os.urandom(3 * MiB + 5)
    with RawConn(server.port) as c:
        if chunked:
            c.send(put_head("/upload/whole", chunked=True))
            for i in range(0, len(body), 700_001):
                part = body[i:i + 700_001]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
        else:
            c.send(put_head("/upload/whole", len(body)))
            c.send(body[:1000])  # the head and a little, then the rest in one go
            c.send(body[1000:])
        r = c.read_response(timeout=WAIT)
    assert r.status == 201
    assert r.json() == {"size": len(body), "sha256": sha(body)}


def test_small_bodies_on_one_keep_alive_connection(ours):
    """Bodies that come in the same read as their head (taken at dispatch), one after another
    on one connection, pipelined."""
    bodies = [os.urandom(n) for n in (0, 1, 100, 4000, 60_000)]
    with RawConn(ours.port) as c:
        c.send(b"".join(put_head("/upload", len(b)) + b for b in bodies))
        for b in bodies:
            r = c.read_response(timeout=WAIT)
            assert r.status == 201 and r.json()["size"] == len(b) and r.json()["sha256"] == sha(b)


# ---- an answer without reading ------------------------------------------------------------

def test_early_answer_without_reading_sends_no_100_and_closes(ours):
    with RawConn(ours.port) as c:
        c.send(put_head("/upload/early", 10 * MiB, expect=True))
        data, closed = c.read_until_close(timeout=WAIT)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert b"100 Continue" not in data
    assert b"\r\nconnection: close\r\n" in data.lower().split(b"\r\n\r\n")[0] + b"\r\n"
    assert closed


def test_early_answer_to_a_large_body_closes_and_the_server_goes_on(ours):
    with RawConn(ours.port) as c:
        c.send(put_head("/upload/early", 50 * MiB) + b"z" * 100_000)
        r = c.read_response(timeout=WAIT)
        assert r.status == 200 and r.json() == {"early": True}
        assert r.header("connection").lower() == b"close"
        assert c.closed_by_peer(timeout=WAIT)
    assert h11_get(ours.port, "/state").status == 200  # still serving


# ---- Expect: 100-continue -----------------------------------------------------------------

def test_100_continue_comes_when_the_resource_starts_reading(ours):
    name = "c-" + uuid.uuid4().hex
    body = os.urandom(200_000)
    with RawConn(ours.port) as c:
        c.send(put_head(f"/upload/gated/{name}", len(body), expect=True))
        wait_for(ours.port, lambda st: name in st["at_gate"], "the resource waits at its gate")
        ready, _, _ = select.select([c.sock], [], [], 0.3)
        early = c.sock.recv(4096) if ready else b""
        assert early == b"", f"answered before the resource read: {early!r}"
        assert h11_get(ours.port, f"/gate/{name}", method="POST").status == 200
        interim = c.read_response(skip_interim=False, timeout=WAIT)
        assert interim.status == 100
        c.send(body)
        r = c.read_response(timeout=WAIT)
    assert r.status == 201 and r.json()["sha256"] == sha(body)


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_curl_expect_100_continue(ours, tmp_path):
    body = os.urandom(3 * MiB)
    src = tmp_path / "upload.bin"
    src.write_bytes(body)
    # curl would send the body anyway after --expect100-timeout: a long one, so the 100 is
    # what lets it go on (its verbose log shows it).
    out = subprocess.run(
        ["curl", "-sv", "--expect100-timeout", "60", "-H", "Expect: 100-continue", "-T", str(src),
         f"http://127.0.0.1:{ours.port}/upload"],
        capture_output=True, timeout=120, env=tool_env())
    log = out.stderr.decode("latin-1")
    assert "< HTTP/1.1 100 Continue" in log, log[-2000:]
    assert log.index("< HTTP/1.1 100 Continue") < log.index("< HTTP/1.1 201")
    got = __import__("json").loads(out.stdout)
    assert got["size"] == len(body) and got["sha256"] == sha(body)


# ---- backpressure -------------------------------------------------------------------------

def test_unconsumed_body_stops_reading_and_bounds_memory(ours):
    """While the resource does not consume (it waits at a gate) the server stops reading: the
    client's sends block once the kernel buffers are full, and the server's RSS does not grow
    by the body's size.  Opened, the resource reads it all, intact."""
    port = ours.port
    allowed = kernel_buffer_max("rmem") + 16 * MiB
    total = max(64 * MiB, allowed + 32 * MiB)
    name = "bp-" + uuid.uuid4().hex
    block = b"\xab" * 65536  # (one byte value: partial sends need no bookkeeping)
    rss0 = ours.rss()
    with RawConn(port) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        c.send(put_head(f"/upload/gated/{name}", total))
        wait_for(port, lambda st: name in st["at_gate"], "the resource waits at its gate")
        sent = send_until_stalled(c.sock, block, total)
        rss_stalled = ours.rss()
        assert sent < allowed, f"the server kept reading a body nobody consumed ({sent} of {total})"
        assert rss_stalled - rss0 < 16 * MiB, (
            f"server RSS grew by {(rss_stalled - rss0) >> 20} MiB while the body was unread")
        assert h11_get(port, f"/gate/{name}", method="POST").status == 200
        c.sock.setblocking(True)
        c.sock.settimeout(WAIT)
        while sent < total:
            sent += c.sock.send(block[:min(len(block), total - sent)])
        r = c.read_response(timeout=WAIT)
    assert r.status == 201
    assert r.json()["size"] == total and r.json()["sha256"] == sha(b"\xab" * total)


# ---- a stalled upload ---------------------------------------------------------------------

def test_stalled_upload_hits_timeout_body_and_the_handler_sees_it():
    with serve("streaming_app:app", "--app-dir", NATIVE_APP_DIR, "--timeout-body", "1") as srv:
        before = len(state(srv.port)["upload_errors"])
        with RawConn(srv.port) as c:
            c.send(put_head("/upload", MiB) + b"q" * 1000)
            data, closed = c.read_until_close(timeout=WAIT)
        assert closed
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
        st = wait_for(srv.port, lambda st: len(st["upload_errors"]) > before,
                      "the handler saw the upload end")
        assert st["upload_errors"][-1] in ("ClientDisconnected", "CancelledError")
        # and the server goes on serving uploads
        body = os.urandom(100_000)
        r = h11_get(srv.port, "/upload", method="PUT", body=body,
                    headers=[("content-length", str(len(body)))])
        assert r.status == 201 and r.json()["sha256"] == sha(body)
