"""Exceptions and misbehaving apps: 500 before the response starts, a closed connection after;
logged with a traceback; the server keeps serving."""
import uuid

from conftest import ANY_2XX_RE, H11Client, Malformed, RawConn, h11_get, parse_response, request_bytes


def test_exception_before_response_is_500_and_logged(asgi_server):
    port = asgi_server.port
    rid = uuid.uuid4().hex
    r = h11_get(port, f"/t/raise-before?id={rid}")
    assert r.status == 500
    assert asgi_server.wait_log(r"Traceback \(most recent call last\).*RuntimeError: boom-before-" + rid), (
        "no traceback in the server log:\n" + asgi_server.log[-3000:])
    assert "boom-before-" + rid not in r.body.decode("latin-1"), "traceback leaked to the client"
    # The server keeps serving, on a new connection ...
    assert h11_get(port, "/after-error").status == 200


def test_500_then_same_connection_usable_or_closed(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/raise-before?id=x") + request_bytes("GET", "/next"))
        r = c.read_response()
        assert r.status == 500
        if "close" in r.connection_tokens():
            _, closed = c.read_until_close()
            assert closed
        else:
            r2 = c.read_response()
            assert r2.status == 200 and r2.json()["path"] == "/next"


def test_exception_after_response_started_closes_connection(asgi_server):
    port = asgi_server.port
    rid = uuid.uuid4().hex
    with RawConn(port) as c:
        c.send(request_bytes("GET", f"/t/raise-after?id={rid}"))
        data, closed = c.read_until_close()
    assert closed, "connection left open after the app failed mid-response"
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    # The response must not look complete: the client has to be able to tell it was cut.
    try:
        resp, rest = parse_response(data, eof=True)
    except Malformed:
        pass
    else:
        raise AssertionError(f"a failed response looked complete: {data[:400]!r}")
    assert asgi_server.wait_log(r"RuntimeError: boom-after-" + rid), asgi_server.log[-3000:]
    assert h11_get(port, "/after-error").status == 200


def test_app_returning_without_response_is_500(asgi_server):
    port = asgi_server.port
    r = h11_get(port, "/t/no-response")
    assert r.status == 500
    assert h11_get(port, "/after-no-response").status == 200


def test_many_errors_do_not_hurt_the_server(port):
    with H11Client(port) as c:
        for i in range(50):
            r = c.request("GET", f"/t/raise-before?id=many{i}")
            assert r.status == 500
            if "close" in r.connection_tokens():
                c.close()
                c = H11Client(port)
    c.close()
    assert h11_get(port, "/still-fine").status == 200


def test_header_injection_from_app_refused(port):
    """CR or LF in a header name or value from the app must never reach the wire (issue 4:
    response side).  The server answers 500 or drops the connection, never the injected
    header."""
    for kind in ("value", "name"):
        with RawConn(port) as c:
            c.send(request_bytes("GET", f"/t/bad-header?kind={kind}", [("Connection", "close")]))
            data, closed = c.read_until_close()
        assert b"X-Injected" not in data, data[:400]
        assert not ANY_2XX_RE.search(data), data[:400]
        assert closed
        if data:
            assert data.startswith(b"HTTP/1.1 500"), data[:200]
    assert h11_get(port, "/after-injection").status == 200


def test_body_shorter_than_app_content_length_closes(port):
    """The app declares Content-Length 10 and sends 5 bytes: the connection is closed so the
    client sees a truncated response (issue 4: response side)."""
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/status?code=200&cl=10&body=12345") + request_bytes("GET", "/next"))
        data, closed = c.read_until_close()
    assert closed
    # Never a second response parsed out of a mis-framed first one.
    assert data.count(b"HTTP/1.1 ") <= 1, data[:400]


def test_body_longer_than_app_content_length_closes(port):
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/t/status?code=200&cl=3&body=1234567890") + request_bytes("GET", "/next"))
        data, closed = c.read_until_close()
    assert closed
    # Either a 500 (the mismatch was caught before anything was written), or a response the
    # client can tell was cut short, or exactly the declared 3 bytes and a close; never the
    # extra bytes where the next response should start.
    assert data.count(b"HTTP/1.1 ") <= 1, data[:400]
    if data.startswith(b"HTTP/1.1 200"):
        try:
            r, rest = parse_response(data, eof=True)
        except Malformed:
            return
        assert r.body == b"123"
        assert rest == b"", rest[:100]
    elif data:
        assert data.startswith(b"HTTP/1.1 500"), data[:200]
