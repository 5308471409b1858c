"""A response sent before the request body has arrived (a 404 on an upload).

RFC 9112 9.6: a server that closes after a response must say so in it (Connection: close);
clients that reuse connections (http.client, urllib) otherwise send their next request into a
connection that is closing.  The server keeps the connection and drops the rest of the body
when that rest is known and small (at most 1 MiB of a Content-Length body), and announces the
close otherwise: a chunked body whose end has not arrived, a larger rest, or Expect:
100-continue with no 100 sent.
"""
import http.client
import time

import pytest

from conftest import HOST, RawConn, chunked, request_bytes, serve

MIB = 1024 * 1024


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def server(request):
    with serve(f"lifecycle_app:{request.param}", "--interface", request.param,
               "--no-access-log") as srv:
        yield srv


def post_head(conn: http.client.HTTPConnection, path: str, headers: dict) -> None:
    conn.putrequest("POST", path)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()


def test_http_client_reuses_the_connection_after_a_404_on_an_upload(server):
    """The 404 comes before the body; the body follows; the next request on the same
    connection is answered."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        body = b"x" * 100_000
        for i in range(3):
            post_head(conn, f"/nowhere/{i}", {"Content-Length": str(len(body))})
            time.sleep(0.2)          # the 404 is written while the body has not arrived
            conn.send(body)
            r = conn.getresponse()
            assert r.status == 404 and r.read() == b"no such path"
            assert (r.getheader("connection") or "").lower() != "close"
            conn.request("GET", "/fast")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b"ok"
        sock = conn.sock
        conn.request("POST", "/upload", body=b"y" * 1000)   # still the same connection
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"1000"
        assert conn.sock is sock
    finally:
        conn.close()


def test_the_dropped_body_is_still_parsed_and_the_next_request_follows_it(server):
    """The rest of the body and a pipelined request arrive in one write after the 404."""
    with RawConn(server.port) as c:
        c.send(request_bytes("POST", "/nowhere", [("Content-Length", "10")]) + b"01234")
        r = c.read_response()
        assert r.status == 404 and "close" not in r.connection_tokens()
        c.send(b"56789" + request_bytes("GET", "/fast"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"


def test_a_large_rest_of_the_body_is_announced_as_a_close(server):
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        post_head(conn, "/nowhere", {"Content-Length": str(4 * MIB)})
        conn.send(b"x" * 1000)
        r = conn.getresponse()
        assert r.status == 404
        assert r.getheader("connection", "").lower() == "close"
        r.read()
    finally:
        conn.close()


def test_a_chunked_body_whose_end_has_not_arrived_is_announced_as_a_close(server):
    with RawConn(server.port) as c:
        c.send(request_bytes("POST", "/nowhere", [("Transfer-Encoding", "chunked")]) +
               b"5\r\nhello\r\n")
        r = c.read_response()
        assert r.status == 404 and "close" in r.connection_tokens()
        try:
            c.send(chunked(b"world"))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.closed_by_peer()


def test_expect_100_continue_without_the_100_is_announced_as_a_close(server):
    """The client may never send the body it announced: what it sends next could be read as
    that body, so the connection cannot be kept."""
    with RawConn(server.port) as c:
        c.send(request_bytes("POST", "/nowhere", [("Content-Length", "5"),
                                                  ("Expect", "100-continue")]))
        r = c.read_response(skip_interim=False)
        assert r.status == 404 and "close" in r.connection_tokens()
        assert c.closed_by_peer()


def test_a_framing_error_in_the_dropped_body_closes(server):
    """The dropped bytes go through the parser: what follows the body is parsed as the next
    request, and garbage there gets 400 and the close."""
    with RawConn(server.port) as c:
        c.send(request_bytes("POST", "/nowhere", [("Content-Length", "4")]) + b"ab")
        r = c.read_response()
        assert r.status == 404 and "close" not in r.connection_tokens()
        c.send(b"cd" + b"NOT HTTP\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and "close" in r.connection_tokens()
        assert c.closed_by_peer()
