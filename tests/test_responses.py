"""Response framing and the headers the server adds."""
import email.utils
import re
import time

import pytest

from conftest import H11Client, RawConn, h11_get, parse_response, request_bytes

IMF_FIXDATE = re.compile(rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                         rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                         rb"\d\d:\d\d:\d\d GMT")


def pattern_body(n, size):
    return b"".join(bytes([65 + (i % 26)]) * size for i in range(n))


def test_single_body_message_gets_content_length(port):
    r = h11_get(port, "/t/big?size=12345")
    assert r.status == 200
    assert r.header("content-length") == b"12345"
    assert r.header("transfer-encoding") is None
    assert r.body == bytes(range(256)) * (12345 // 256) + bytes(range(12345 % 256))


def test_empty_single_body_gets_content_length_zero(port):
    r = h11_get(port, "/t/status?code=200")
    assert r.header("content-length") == b"0"
    assert r.header("transfer-encoding") is None
    assert r.body == b""


def test_large_single_body(port):
    size = 8 * 1024 * 1024 + 3
    r = h11_get(port, f"/t/big?size={size}")
    assert r.header("content-length") == str(size).encode()
    assert len(r.body) == size


@pytest.mark.parametrize("final", ["empty", "data"])
def test_several_body_messages_are_chunked(port, final):
    r = h11_get(port, f"/t/stream?n=5&size=1000&final={final}")
    assert r.status == 200
    assert r.header("content-length") is None
    assert r.header("transfer-encoding") == b"chunked"
    assert r.body == pattern_body(5, 1000)


def test_chunked_framing_on_the_wire(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/stream?n=3&size=16"))
        r = c.read_response()
    assert r.chunked
    assert r.body == pattern_body(3, 16)
    # Nothing after the terminating chunk: the connection is at a message boundary.
    assert c.buf == b""


def test_app_content_length_with_several_messages_is_kept(port):
    r = h11_get(port, "/t/stream?n=4&size=250&cl=1")
    assert r.header("content-length") == b"1000"
    assert r.header("transfer-encoding") is None
    assert r.body == pattern_body(4, 250)


@pytest.mark.parametrize("path", ["/t/big?size=5000", "/t/stream?n=3&size=100", "/echo"])
def test_head_has_no_body(port, path):
    """A HEAD response ends after its header section even when the app sends a body.  A
    pipelined GET behind it shows no stray body bytes or chunk framing were written."""
    with RawConn(port) as c:
        c.send(request_bytes("HEAD", path) + request_bytes("GET", "/after-head"))
        head = c.read_response("HEAD")
        nxt = c.read_response("GET")
    assert head.status == 200
    assert head.body == b""
    assert nxt.status == 200 and nxt.json()["path"] == "/after-head"


def test_head_content_length_matches_get(port):
    # RFC 9110 section 9.3.2: the server SHOULD send the same header fields as for GET.
    get = h11_get(port, "/t/big?size=5000")
    head = h11_get(port, "/t/big?size=5000", method="HEAD")
    assert head.body == b""
    assert head.header("content-length") in (None, get.header("content-length"))


def test_http10_request_gets_no_chunked_response(port):
    """RFC 9112 section 6.1: a server MUST NOT send Transfer-Encoding to an HTTP/1.0 request;
    a streamed body is delimited by closing the connection instead."""
    with RawConn(port) as c:
        c.send(b"GET /t/stream?n=4&size=100 HTTP/1.0\r\n\r\n")
        data, closed = c.read_until_close()
    assert closed
    r, rest = parse_response(data, eof=True)
    assert r.status == 200
    assert r.header("transfer-encoding") is None
    assert r.body == pattern_body(4, 100)
    assert r.version in (b"HTTP/1.0", b"HTTP/1.1")


def test_http10_single_body(port):
    with RawConn(port) as c:
        c.send(b"GET /t/big?size=777 HTTP/1.0\r\n\r\n")
        data, closed = c.read_until_close()
    assert closed
    r, rest = parse_response(data, eof=True)
    assert r.header("content-length") == b"777" and len(r.body) == 777 and rest == b""


def test_connection_close_honoured(port):
    """RFC 9112 section 9.6: the server closes after the response to a request with the
    close option and SHOULD say so in that response."""
    with H11Client(port) as c:
        r = c.request("GET", "/bye", headers=[("connection", "close")])
        assert r.status == 200
        assert "close" in r.connection_tokens()
        assert c.server_closed()


def test_connection_close_among_other_tokens(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/bye2", [("Connection", "keep-alive, close")]))
        r = c.read_response()
        rest, closed = c.read_until_close()
    assert r.status == 200 and closed and rest == b""


def test_connection_close_with_streamed_response(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/stream?n=3&size=10", [("Connection", "close")]))
        r = c.read_response()
        rest, closed = c.read_until_close()
    assert r.body == pattern_body(3, 10)
    assert closed and rest == b""


def test_date_and_server_headers(port):
    r = h11_get(port, "/dated")
    dates = r.header_all("date")
    servers = r.header_all("server")
    assert len(dates) == 1, r.headers
    assert IMF_FIXDATE.fullmatch(dates[0]), dates[0]
    # Loose sanity bound (a day): catches a garbage or frozen-at-epoch cache, never flaky.
    when = email.utils.parsedate_to_datetime(dates[0].decode()).timestamp()
    assert abs(when - time.time()) < 86400
    assert len(servers) == 1, r.headers
    assert servers[0].startswith(b"flask-restful-async")


def test_date_and_server_on_every_kind_of_response(port):
    for path in ("/t/stream?n=2&size=5", "/t/status?code=204", "/t/status?code=404"):
        r = h11_get(port, path)
        assert len(r.header_all("date")) == 1, (path, r.headers)
        assert len(r.header_all("server")) == 1, (path, r.headers)


def test_status_line_reason_phrase(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/status?code=404"))
        r = c.read_response()
    assert r.raw_head.startswith(b"HTTP/1.1 404 ")
