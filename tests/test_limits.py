"""Limits: request line (414), header size and count (431), body size (413), concurrency (503).

The exact byte a limit counts (spaces, CRLFs, ": ") is the server's to document; every test
here stays a few bytes clear of such details so it checks the limit, not the counting.
"""
import time

import pytest

from conftest import (ANY_2XX_RE, RawConn, app_calls, chunked, request_bytes, serve, status_lines)

LINE, HDR_SIZE, HDR_COUNT, BODY = 200, 2000, 12, 1000


@pytest.fixture(scope="module")
def limited():
    with serve("asgi_app:app", "--interface", "asgi",
               "--limit-request-line", str(LINE), "--limit-header-size", str(HDR_SIZE),
               "--limit-header-count", str(HDR_COUNT), "--limit-body-size", str(BODY)) as srv:
        yield srv


@pytest.fixture(scope="module")
def defaults():
    with serve("asgi_app:app", "--interface", "asgi") as srv:
        yield srv


def refused(port, data, status, send_all=True):
    before = app_calls(port)
    with RawConn(port) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, closed = c.read_until_close()
    assert status_lines(received)[:1] == [status], received[:300]
    assert len(status_lines(received)) == 1
    assert not ANY_2XX_RE.search(received)
    assert closed
    assert app_calls(port) == before
    return received


def accepted(port, data, method="GET"):
    with RawConn(port) as c:
        c.send(data)
        r = c.read_response(method)
    assert 200 <= r.status < 300, (r.status, r.body[:200])
    return r


def line_of(length):
    """A request whose request line (without CRLF) is exactly `length` bytes."""
    fixed = len("GET / HTTP/1.1")
    return b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def one_big_header(total_line):
    """A request with Host: t and one more field line; both field lines with their CRLFs
    make `total_line` bytes."""
    host = len("Host: t\r\n")
    value = b"v" * (total_line - host - len("X-Big: ") - 2)
    return b"GET /big-header HTTP/1.1\r\nHost: t\r\nX-Big: " + value + b"\r\n\r\n"


def with_headers(count):
    """`count` header fields in all, Host included."""
    extra = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(count - 1))
    return b"GET /count HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


# ----------------------------------------------------------------------------- request line

def test_request_line_under_limit(limited):
    accepted(limited.port, line_of(LINE - 2))


def test_request_line_over_limit_414(limited):
    refused(limited.port, line_of(LINE + 3), 414)


def test_request_line_far_over_limit_414(limited):
    refused(limited.port, line_of(LINE * 50), 414)


def test_request_line_over_limit_without_end_414(limited):
    """The line has no end yet: the server must not wait for one."""
    refused(limited.port, b"GET /" + b"a" * (LINE * 2), 414)


# ----------------------------------------------------------------------------- header size

def test_header_size_under_limit(limited):
    accepted(limited.port, one_big_header(HDR_SIZE - 10))


def test_header_size_over_limit_431(limited):
    refused(limited.port, one_big_header(HDR_SIZE + 20), 431)


def test_header_size_over_limit_spread_over_fields_431(limited):
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 300) for i in range(8))
    refused(limited.port, b"GET /spread HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n", 431)


def test_header_size_over_limit_without_end_431(limited):
    refused(limited.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * (HDR_SIZE * 3), 431)


# ----------------------------------------------------------------------------- header count

def test_header_count_at_limit(limited):
    accepted(limited.port, with_headers(HDR_COUNT))


def test_header_count_over_limit_431(limited):
    refused(limited.port, with_headers(HDR_COUNT + 1), 431)


# ----------------------------------------------------------------------------- body size

def test_body_at_limit(limited):
    r = accepted(limited.port, request_bytes("POST", "/t/read-sha", body=b"b" * BODY), "POST")
    assert r.json()["body_len"] == BODY


def test_body_over_limit_by_content_length_413(limited):
    # Known from the header section: refused before the app is called.
    refused(limited.port, request_bytes("POST", "/t/read-sha", body=b"b" * (BODY + 1)), 413)


def test_body_over_limit_with_expect_gets_no_100(limited):
    data = (b"POST /t/read-sha HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
            b"Expect: 100-continue\r\n\r\n" % (BODY * 10))
    received = refused(limited.port, data, 413)
    assert not received.startswith(b"HTTP/1.1 100")


def test_chunked_body_at_limit(limited):
    data = request_bytes("POST", "/t/read-sha", [("Transfer-Encoding", "chunked")],
                         body=chunked(b"c" * (BODY // 2), b"c" * (BODY - BODY // 2)))
    r = accepted(limited.port, data, "POST")
    assert r.json()["body_len"] == BODY


def test_chunked_body_over_limit_413(limited):
    """Only the chunks tell the size: the app may already run, but its body read fails and
    the client gets 413 and a closed connection, never a 2xx."""
    port = limited.port
    data = request_bytes("POST", "/t/read-sha", [("Transfer-Encoding", "chunked")],
                         body=chunked(b"c" * BODY, b"c"))
    with RawConn(port) as c:
        c.send(data)
        received, closed = c.read_until_close()
    assert status_lines(received) == [413], received[:300]
    assert not ANY_2XX_RE.search(received)
    assert closed


def test_server_still_serves_after_limits(limited):
    accepted(limited.port, request_bytes("GET", "/fine"))


# ----------------------------------------------------------------------------- defaults
# Documented defaults (flask_restful_async/_core.pyi): request line 8190 bytes, all header
# fields 32768 bytes, 100 header fields, body unlimited.

def test_default_request_line_limit(defaults):
    accepted(defaults.port, line_of(8190 - 2))
    refused(defaults.port, line_of(8190 + 3), 414)


def test_default_header_count_limit(defaults):
    accepted(defaults.port, with_headers(100))
    refused(defaults.port, with_headers(101), 431)


def test_default_header_size_limit(defaults):
    accepted(defaults.port, one_big_header(32768 - 10))
    refused(defaults.port, one_big_header(32768 + 20), 431)


def test_default_body_unlimited(defaults):
    body = b"z" * (16 * 1024 * 1024)
    r = accepted(defaults.port, request_bytes("POST", "/t/read-sha", body=body), "POST")
    assert r.json()["body_len"] == len(body)


# ----------------------------------------------------------------------------- concurrency

def test_concurrency_limit_503():
    with serve("asgi_app:app", "--interface", "asgi", "--limit-concurrency", "2") as srv:
        port = srv.port
        a, b = RawConn(port), RawConn(port)
        try:
            for i, c in enumerate((a, b)):
                c.send(request_bytes("GET", f"/held/{i}"))
                assert c.read_response().status == 200
            # Two open connections: a third one is over the limit.
            with RawConn(port) as c:
                try:
                    c.send(request_bytes("GET", "/third"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                received, closed = c.read_until_close()
            assert status_lines(received) == [503], received[:300]
            assert closed
            # The held connections still work.
            b.send(request_bytes("GET", "/held/again"))
            assert b.read_response().status == 200
            # Once one closes, a new connection is served.  The server learns of the close
            # asynchronously, so allow a few attempts (each refused one must be a 503).
            a.close()
            served = None
            for _ in range(100):
                with RawConn(port) as c:
                    try:
                        c.send(request_bytes("GET", "/after-free", [("Connection", "close")]))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    data, _ = c.read_until_close()
                st = status_lines(data)
                assert st in ([200], [503]), data[:300]
                if st == [200]:
                    served = data
                    break
                time.sleep(0.05)
            assert served is not None, "a freed connection slot was never reused"
        finally:
            a.close()
            b.close()
        assert srv.alive()
