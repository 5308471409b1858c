"""Basic request/response exchanges, checked with h11 (strict HTTP/1.1) and raw bytes."""

import pytest

from conftest import H11Client, RawConn, app_calls, h11_get, request_bytes


def test_get_is_served_and_well_formed(port):
    with H11Client(port) as c:
        r = c.request("GET", "/hello?x=1", headers=[("accept", "application/json")])
    assert r.status == 200
    assert r.version == b"HTTP/1.1"
    assert r.header("content-type") == b"application/json"
    info = r.json()
    assert info["method"] == "GET"
    assert info["path"] == "/hello"
    assert info["query_string"] == "x=1"
    assert info["http_version"] == "1.1"
    assert ["accept", "application/json"] in info["headers"]
    assert info["body"] == ""


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_reach_the_app(port, method):
    body = b'{"k": "v"}' if method in ("POST", "PUT", "PATCH") else b""
    r = h11_get(port, "/m", method=method, body=body)
    assert r.status == 200
    info = r.json()
    assert info["method"] == method
    assert info["body"] == body.decode()


def test_app_is_called_once_per_request(port):
    before = app_calls(port)
    with H11Client(port) as c:
        for i in range(5):
            assert c.request("GET", f"/count/{i}").status == 200
    assert app_calls(port) == before + 5


@pytest.mark.parametrize("code", [201, 202, 299, 400, 404, 418, 500, 503, 599])
def test_status_codes_pass_through(port, code):
    r = h11_get(port, f"/t/status?code={code}&body=x")
    assert r.status == code
    assert r.body == b"x"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(port, code):
    # RFC 9110 sections 15.3.5 and 15.4.5: 204 and 304 responses end after the header section.
    # Sent raw and pipelined with a second request: a stray body or chunk terminator would
    # corrupt the second response.
    with RawConn(port) as c:
        c.send(request_bytes("GET", f"/t/status?code={code}") + request_bytes("GET", "/after"))
        r = c.read_response()
        assert r.status == code
        assert r.header("transfer-encoding") is None
        if code == 204:
            # RFC 9110 section 8.6: "A server MUST NOT send a Content-Length header field in
            # any response with a status code of 1xx (Informational) or 204 (No Content)."
            assert r.header("content-length") is None
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["path"] == "/after"


def test_app_headers_preserved(port):
    r = h11_get(port, "/t/headers")
    assert r.status == 200
    assert r.header_all("set-cookie") == [b"a=1; Path=/", b"b=2; Path=/"]
    assert r.header("x-custom") == b"custom value"
    assert r.header("x-mixed-case") == b"Mixed"
    assert r.body == b"headers"


def test_request_headers_reach_app_in_order_with_duplicates(port):
    hdrs = [("X-One", "1"), ("x-dup", "a"), ("X-Two", "2"), ("X-DUP", "b")]
    r = h11_get(port, "/h", headers=hdrs)
    got = [h for h in r.json()["headers"] if h[0] in ("x-one", "x-two", "x-dup")]
    assert got == [["x-one", "1"], ["x-dup", "a"], ["x-two", "2"], ["x-dup", "b"]]


def test_request_split_into_single_bytes(port):
    """The parser keeps its state across reads: every byte in its own write."""
    data = request_bytes("POST", "/bytes?q=1", [("X-Split", "yes")], body=b"0123456789")
    with RawConn(port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        r = c.read_response()
    assert r.status == 200
    info = r.json()
    assert info["path"] == "/bytes" and info["query_string"] == "q=1"
    assert ["x-split", "yes"] in info["headers"]
    assert info["body"] == "0123456789"


def test_long_but_legal_url_and_headers(port):
    path = "/" + "a" * 4000
    hdrs = [(f"X-H{i}", "v" * 100) for i in range(50)]
    r = h11_get(port, path + "?" + "q" * 1000, headers=hdrs)
    assert r.status == 200
    info = r.json()
    assert info["path"] == path
    assert len(info["query_string"]) == 1000


def test_response_to_unknown_path_is_app_decision(port):
    r = h11_get(port, "/t/status?code=404&body=nope")
    assert r.status == 404 and r.body == b"nope"


def test_server_survives_many_short_connections(port):
    for i in range(50):
        with RawConn(port) as c:
            c.send(request_bytes("GET", f"/short/{i}", [("Connection", "close")]))
            r = c.read_response()
            assert r.status == 200
            assert c.closed_by_peer()


def test_client_closing_early_does_not_hurt_server(port):
    # Half a request line, then gone; then a full request on a new connection.
    for _ in range(5):
        with RawConn(port) as c:
            c.send(b"GET /par")
    for _ in range(5):
        with RawConn(port) as c:
            c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    assert h11_get(port, "/still-alive").status == 200
