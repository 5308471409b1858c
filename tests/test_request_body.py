"""Request bodies: Content-Length, chunked, Expect: 100-continue, and backpressure on reading."""
import hashlib
import os
import select
import socket
import uuid

from conftest import (H11Client, RawConn, chunked, h11_get, kernel_buffer_max,
                      open_gate, request_bytes, send_until_stalled, wait_state)

MiB = 1024 * 1024


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_content_length_body(port):
    body = os.urandom(1000)
    r = h11_get(port, "/t/read-sha", method="POST", body=body)
    assert r.json()["body_len"] == 1000
    assert r.json()["body_sha256"] == sha(body)


def test_large_content_length_body_in_pieces(port):
    body = os.urandom(4 * 1024 * 1024 + 17)
    with RawConn(port) as c:
        c.send(request_bytes("POST", "/t/read-sha", body=b"")[:-2]
               + b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 100_000):
            c.send(body[i:i + 100_000])
        r = c.read_response()
    info = r.json()
    assert info["body_len"] == len(body)
    assert info["body_sha256"] == sha(body)
    # Every message but the last says more_body=True, the last says False.
    flags = info["more_body_flags"]
    assert flags[-1] is False and all(flags[:-1])


def test_empty_body_is_one_message(port):
    r = h11_get(port, "/t/read-sha", method="POST", headers=[("content-length", "0")])
    info = r.json()
    assert info["body_len"] == 0
    assert info["messages"] == 1
    assert info["more_body_flags"] == [False]


def test_get_without_body_gets_one_empty_message(port):
    r = h11_get(port, "/t/read-sha")
    assert r.json()["messages"] == 1 and r.json()["body_len"] == 0


def test_body_bytes_type(port):
    r = h11_get(port, "/echo", method="POST", body=b"abc")
    msgs = r.json()["messages"]
    assert all(m["type"] == "http.request" and m["body_type"] == "bytes" for m in msgs)


def test_chunked_body(port):
    parts = [os.urandom(n) for n in (1, 15, 16, 255, 4096, 70000, 3)]
    with H11Client(port) as c:
        r = c.request("POST", "/t/read-sha", chunks=parts)
    assert r.json()["body_len"] == sum(map(len, parts))
    assert r.json()["body_sha256"] == sha(b"".join(parts))


def test_chunked_body_with_extensions_and_trailers(port):
    body = (b"5;name=value\r\nhello\r\n"
            b"6;quoted=\"a b\"\r\n world\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n")
    data = request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")], body=body)
    with RawConn(port) as c:
        c.send(data)
        r = c.read_response()
        # The connection is still in step afterwards.
        c.send(request_bytes("GET", "/after"))
        r2 = c.read_response()
    assert r.json()["body"] == "hello world"
    assert r2.json()["path"] == "/after"


def test_chunked_body_sent_byte_by_byte(port):
    data = request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")],
                         body=chunked(b"abc", b"defgh", b"ij"))
    with RawConn(port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        r = c.read_response()
    assert r.json()["body"] == "abcdefghij"


def test_many_small_chunks(port):
    parts = [bytes([i % 256]) * (i % 7 + 1) for i in range(2000)]
    with H11Client(port) as c:
        r = c.request("POST", "/t/read-sha", chunks=parts)
    assert r.json()["body_sha256"] == sha(b"".join(parts))


# ----------------------------------------------------------------------------- 100-continue

def expect_request(path, length):
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n"
            f"Expect: 100-continue\r\n\r\n").encode()


def test_expect_100_continue_answered_when_app_reads(port):
    """RFC 9110 section 10.1.1: the client waits for 100 Continue before sending the body.
    The app reads only after gate G opens; 100 Continue must not come before that."""
    gate = "exp-" + uuid.uuid4().hex
    body = b"x" * 5000
    with RawConn(port) as c:
        c.send(expect_request(f"/t/gated-read?gate={gate}", len(body)))
        # The app has been called and is waiting at its gate, not reading yet.
        wait_state(port, gate + ":at_gate")
        sock = c.sock
        r, _, _ = select.select([sock], [], [], 0.3)
        early = sock.recv(4096) if r else b""
        assert early == b"", f"server answered before the app read the body: {early!r}"
        open_gate(port, gate)
        head = c.read_until(lambda b: b"\r\n\r\n" in b)
        assert head.startswith(b"HTTP/1.1 100 "), head[:100]
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(body)
        r = c.read_response()
    assert r.status == 200
    assert r.json()["body_len"] == len(body)


def test_expect_100_continue_not_sent_when_app_does_not_read(port):
    with RawConn(port) as c:
        c.send(expect_request("/t/noread", 10))
        first = c.read_response(skip_interim=False)
    # The final response comes without any 100 Continue in front of it.
    assert first.status == 200
    assert first.body == b"not read"


def test_expect_100_continue_sent_once_for_streamed_body(port):
    body = os.urandom(300_000)
    with RawConn(port) as c:
        c.send(expect_request("/t/read-sha", len(body)))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(body)
        r = c.read_response(skip_interim=False)
    assert r.status == 200
    assert r.json()["body_sha256"] == sha(body)


def test_expect_100_continue_http10_ignored(port):
    # RFC 9110 section 10.1.1: "A server that receives a 100-continue expectation in an
    # HTTP/1.0 request MUST ignore that expectation."
    with RawConn(port) as c:
        c.send(b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
        data, closed = c.read_until_close()
    assert not data.startswith(b"HTTP/1.1 100"), data[:100]
    assert b" 200 " in data.split(b"\r\n", 1)[0]


# ----------------------------------------------------------------------------- backpressure

def test_request_body_backpressure(asgi_server):
    """While the app does not consume the body the server stops reading it: the client's
    sends block once the kernel buffers are full (plus at most 16 MiB the server may hold),
    and the server's memory does not grow by the size of the body.  Once the app reads, the
    whole body arrives intact."""
    port = asgi_server.port
    allowed = kernel_buffer_max("rmem") + 16 * MiB   # kernel receive buffer + server's share
    total = max(64 * MiB, allowed + 32 * MiB)
    gate = "bp-" + uuid.uuid4().hex
    block = b"\xab" * 65536
    rss0 = asgi_server.rss()
    with RawConn(port) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        c.send(request_bytes("POST", f"/t/gated-read?gate={gate}", body=b"")[:-2]
               + b"Content-Length: %d\r\n\r\n" % total)
        wait_state(port, gate + ":at_gate")
        sent = stalled_at = send_until_stalled(c.sock, block, total)
        rss_stalled = asgi_server.rss()
        assert stalled_at < allowed, (
            f"the server kept reading a body nobody consumed ({stalled_at} of {total} bytes)")
        assert rss_stalled - rss0 < 16 * MiB, (
            f"server RSS grew by {(rss_stalled - rss0) >> 20} MiB while the body was unread")
        open_gate(port, gate)
        c.sock.setblocking(True)
        c.sock.settimeout(30)
        while sent < total:
            n = c.sock.send(block[: min(len(block), total - sent)])
            sent += n
        r = c.read_response(timeout=30)
    info = r.json()
    assert info["body_len"] == total
    assert info["body_sha256"] == hashlib.sha256(b"\xab" * total).hexdigest()
