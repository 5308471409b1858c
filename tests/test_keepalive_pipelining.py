"""Persistent connections and pipelining (RFC 9112 sections 9.3 and 9.3.2)."""
from conftest import (ANY_2XX_RE, H11Client, RawConn, app_call_log, app_calls, chunked,
                      request_bytes, status_lines)


def test_sequential_requests_share_one_connection(port):
    with H11Client(port) as c:
        clients = set()
        for i in range(10):
            r = c.request("GET", f"/seq/{i}")
            assert r.status == 200
            info = r.json()
            assert info["path"] == f"/seq/{i}"
            clients.add(tuple(info["client"]))
            assert "close" not in r.connection_tokens()
        local_port = c.local_port
    # The app saw every request coming from the same client address and port.
    assert len(clients) == 1
    assert list(clients)[0][1] == local_port


def test_keep_alive_after_post_bodies_of_each_framing(port):
    with H11Client(port) as c:
        r = c.request("POST", "/a", body=b"first")
        assert r.json()["body"] == "first"
        r = c.request("POST", "/b", chunks=[b"sec", b"ond"])
        assert r.json()["body"] == "second"
        r = c.request("GET", "/c")
        assert r.json()["path"] == "/c"


def test_keep_alive_after_streamed_response(port):
    with H11Client(port) as c:
        r = c.request("GET", "/t/stream?n=4&size=100")
        assert r.status == 200 and len(r.body) == 400
        r = c.request("GET", "/after-stream")
        assert r.json()["path"] == "/after-stream"


def test_pipelined_requests_answered_in_order(port):
    n = 20
    data = b"".join(request_bytes("GET", f"/pipe/{i}") for i in range(n))
    with RawConn(port) as c:
        c.send(data)
        paths = [c.read_response().json()["path"] for _ in range(n)]
    assert paths == [f"/pipe/{i}" for i in range(n)]


def test_pipelined_requests_with_bodies(port):
    reqs = [
        request_bytes("POST", "/p/0", body=b"zero"),
        request_bytes("POST", "/p/1", [("Transfer-Encoding", "chunked")], body=chunked(b"o", b"ne")),
        request_bytes("GET", "/p/2"),
        request_bytes("PUT", "/p/3", body=b"x" * 70000),
        request_bytes("POST", "/p/4", [("Transfer-Encoding", "chunked")], body=chunked(b"")),
    ]
    with RawConn(port) as c:
        c.send(b"".join(reqs))
        got = [c.read_response().json() for _ in reqs]
    assert [g["path"] for g in got] == [f"/p/{i}" for i in range(5)]
    assert [g["body_len"] for g in got] == [4, 3, 0, 70000, 0]


def test_pipelined_slow_first_response_keeps_order(port):
    """The first request is slow and the second is fast: responses still come in order."""
    data = request_bytes("GET", "/t/sleep?ms=300") + request_bytes("GET", "/fast")
    with RawConn(port) as c:
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.json()["path"] == "/t/sleep"
    assert r2.json()["path"] == "/fast"


def test_pipelined_streamed_then_plain(port):
    data = request_bytes("GET", "/t/stream?n=5&size=1000") + request_bytes("GET", "/next")
    with RawConn(port) as c:
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
    assert len(r1.body) == 5000
    assert r2.json()["path"] == "/next"


def test_request_after_connection_close_is_not_processed(port):
    before = app_calls(port)
    data = (request_bytes("GET", "/closing", [("Connection", "close")])
            + request_bytes("GET", "/must-not-run"))
    with RawConn(port) as c:
        c.send(data)
        r = c.read_response()
        rest, closed = c.read_until_close()
    assert r.json()["path"] == "/closing"
    assert closed
    assert rest == b""
    assert app_calls(port) == before + 1
    assert "/must-not-run" not in [x["path"] for x in app_call_log(port)]


def test_invalid_request_pipelined_behind_valid_one(port):
    """The valid request is answered, the invalid one gets 400 and a closed connection, and
    the app never sees it (issue 4: smuggling and framing)."""
    before = app_calls(port)
    data = (request_bytes("GET", "/valid-first")
            + b"GET /smuggled HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    with RawConn(port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/valid-first"
        rest, closed = c.read_until_close()
    assert closed
    assert status_lines(rest) == [400]
    assert not ANY_2XX_RE.search(rest)
    assert app_calls(port) == before + 1


def test_many_keepalive_connections_interleaved(port):
    conns = [H11Client(port) for _ in range(20)]
    try:
        for rnd in range(3):
            for i, c in enumerate(conns):
                r = c.request("GET", f"/il/{i}/{rnd}")
                assert r.json()["path"] == f"/il/{i}/{rnd}"
    finally:
        for c in conns:
            c.close()


def test_http10_without_keepalive_closes(port):
    with RawConn(port) as c:
        c.send(b"GET /ten HTTP/1.0\r\n\r\n")
        r = c.read_response()
        rest, closed = c.read_until_close()
    assert r.status == 200 and r.json()["http_version"] == "1.0"
    assert closed and rest == b""
