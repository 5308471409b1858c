"""WSGI (PEP 3333): environ, streaming wsgi.input, streamed iterables, close(), exc_info,
threads, errors, backpressure."""
import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (H11Client, HOST, RawConn, app_state, h11_get, kernel_buffer_max,
                      request_bytes, serve, wait_stalled, wait_state)


@pytest.fixture(scope="module", params=("asyncio", "uvloop"))
def wsgi(request):
    with serve("wsgi_app:app", "--interface", "wsgi", "--threads", "4",
               "--loop", request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def port(wsgi):
    return wsgi.port


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ----------------------------------------------------------------------------- environ

def test_environ_required_keys(port):
    r = h11_get(port, "/environ/a%20b/%C3%A9?x=1&y=%20",
                headers=[("X-Custom", "v1"), ("Content-Type", "text/plain")],
                method="POST", body=b"hello")
    assert r.status == 200
    e = r.json()
    cgi = e["cgi"]
    assert cgi["REQUEST_METHOD"] == "POST"
    assert cgi["SCRIPT_NAME"] == ""
    # PEP 3333: PATH_INFO is percent-decoded and carried as latin-1 "bytes in a str".
    assert cgi["PATH_INFO"] == "/environ/a b/\u00c3\u00a9"
    assert cgi["QUERY_STRING"] == "x=1&y=%20"
    assert cgi["CONTENT_TYPE"] == "text/plain"
    assert cgi["CONTENT_LENGTH"] == "5"
    assert cgi["SERVER_NAME"]
    assert cgi["SERVER_PORT"] == str(port)
    assert cgi["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert cgi["REMOTE_ADDR"] == HOST
    assert all(t == "str" for t in e["cgi_types"].values()), e["cgi_types"]
    assert e["all_str_keys"]
    assert e["http"]["HTTP_X_CUSTOM"] == "v1"
    assert e["http"]["HTTP_HOST"] == "test"
    # Content-Type and Content-Length are not repeated as HTTP_ variables.
    assert "HTTP_CONTENT_TYPE" not in e["http"] and "HTTP_CONTENT_LENGTH" not in e["http"]
    assert e["wsgi.version"] == [1, 0] and e["wsgi.version_type"] == "tuple"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"] is True
    assert isinstance(e["wsgi.multiprocess"], bool)
    assert e["wsgi.run_once"] is False
    assert set(e["input_methods"]) == {"read", "readline", "readlines", "__iter__"}
    assert set(e["errors_methods"]) == {"write", "writelines", "flush"}
    assert e["body"] == "hello"


def test_environ_duplicate_headers_joined(port):
    e = h11_get(port, "/environ", headers=[("X-Dup", "a"), ("X-Dup", "b")]).json()
    assert [p.strip() for p in e["http"]["HTTP_X_DUP"].split(",")] == ["a", "b"]


def test_environ_http10(port):
    with RawConn(port) as c:
        c.send(b"GET /environ HTTP/1.0\r\n\r\n")
        r = c.read_response()
    assert r.json()["cgi"]["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_wsgi_errors_reaches_server_log(wsgi):
    h11_get(wsgi.port, "/environ")
    assert wsgi.wait_log("wsgi-errors-marker")


def test_runs_in_a_pool_thread_not_the_loop_thread(port):
    info = h11_get(port, "/thread").json()
    assert info["is_main_thread"] is False
    assert info["running_loop_in_thread"] is False


def test_thread_pool_runs_requests_concurrently(port):
    """Four requests wait for each other at a barrier: they only finish if --threads 4 runs
    them at the same time."""
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda i: h11_get(port, f"/barrier?id={key}&n=4").json(), range(4)))
    assert all(r["ok"] for r in results)
    assert len({r["thread"] for r in results}) == 4


# ----------------------------------------------------------------------------- wsgi.input

@pytest.mark.parametrize("mode", ["read", "read_all", "readline", "readline_sized", "iter", "readlines"])
def test_input_read_modes(port, mode):
    body = b"line one\nline two\n\nthird line without newline" + os.urandom(3000).replace(b"\n", b"x")
    r = h11_get(port, f"/input?mode={mode}", method="POST", body=body)
    assert r.json() == {"len": len(body), "sha256": sha(body)}


@pytest.mark.parametrize("mode", ["read", "read_all", "readline"])
def test_input_chunked_request(port, mode):
    parts = [b"abc\n", b"defgh", b"\nij" * 1000]
    with H11Client(port) as c:
        r = c.request("POST", f"/input?mode={mode}", chunks=parts)
    body = b"".join(parts)
    assert r.json() == {"len": len(body), "sha256": sha(body)}


def test_input_large(port):
    body = os.urandom(8 * 1024 * 1024)
    r = h11_get(port, "/input?mode=read", method="POST", body=body)
    assert r.json() == {"len": len(body), "sha256": sha(body)}


def test_input_is_streamed(port):
    """The app reads the first 1000 bytes while the rest of the body has not been sent: the
    server hands wsgi.input over as the body arrives, not after collecting all of it."""
    key = uuid.uuid4().hex
    with RawConn(port) as c:
        c.send(b"POST /input-stream?id=%s&first=1000 HTTP/1.1\r\nHost: t\r\n"
               b"Content-Length: 5000\r\n\r\n" % key.encode() + b"a" * 1000)
        assert wait_state(port, key) == 1000
        c.send(b"b" * 4000)
        r = c.read_response()
    assert r.json()["len"] == 5000


# ----------------------------------------------------------------------------- responses

def test_iterable_streamed_chunked_and_closed(port):
    key = uuid.uuid4().hex
    r = h11_get(port, f"/iter?id={key}&n=5&size=1000")
    assert r.status == 200
    assert r.header("transfer-encoding") == b"chunked"
    assert r.body == b"w" * 5000
    st = wait_state(port, key, lambda v: v and v["closed"])
    assert st["yielded"] == 5


def test_iterable_with_content_length(port):
    key = uuid.uuid4().hex
    r = h11_get(port, f"/iter?id={key}&n=4&size=10&cl=1")
    assert r.header("content-length") == b"40"
    assert r.header("transfer-encoding") is None
    assert r.body == b"w" * 40
    wait_state(port, key, lambda v: v and v["closed"])


def test_close_called_when_client_leaves_mid_stream(port):
    key = uuid.uuid4().hex
    c = RawConn(port, rcvbuf=64 * 1024)
    c.send(request_bytes("GET", f"/iter?id={key}&n=100000&size=65536"))
    c.read_until(lambda b: b"\r\n\r\n" in b)
    c.close()
    st = wait_state(port, key, lambda v: v and v["closed"], timeout=30)
    assert st["yielded"] < 100000


def test_write_callable(port):
    r = h11_get(port, "/write")
    assert r.status == 200
    assert r.body == b"written directly then returned"


def test_head_request(port):
    with RawConn(port) as c:
        c.send(request_bytes("HEAD", "/environ") + request_bytes("GET", "/after"))
        r = c.read_response("HEAD")
        r2 = c.read_response()
    assert r.status == 200 and r.body == b""
    assert r2.json()["path"] == "/after"


def test_start_response_exc_info_before_body(port):
    r = h11_get(port, "/exc-info-before")
    assert r.status == 503
    assert r.header("x-first") is None
    assert r.body == b"replaced by error page"


def test_start_response_exc_info_after_body_reraises(wsgi):
    port = wsgi.port
    key = uuid.uuid4().hex
    with RawConn(port) as c:
        c.send(request_bytes("GET", f"/exc-info-after?id={key}"))
        data, closed = c.read_until_close()
    assert closed
    assert data.startswith(b"HTTP/1.1 200")
    assert b"never" not in data
    assert not data.endswith(b"0\r\n\r\n"), "a failed response was terminated as if complete"
    assert app_state(port, "exc_after_reraised:" + key) is True
    assert wsgi.wait_log("late-failure-" + key)


def test_exception_is_500_logged_and_server_keeps_serving(wsgi):
    port = wsgi.port
    rid = uuid.uuid4().hex
    r = h11_get(port, f"/raise?id={rid}")
    assert r.status == 500
    assert wsgi.wait_log(r"Traceback \(most recent call last\).*wsgi-boom-" + rid)
    for i in range(10):
        assert h11_get(port, f"/after/{i}").status == 200


def test_keepalive_and_pipelining(port):
    data = b"".join(request_bytes("POST", f"/p/{i}", body=b"x" * i) for i in range(10))
    with RawConn(port) as c:
        c.send(data)
        got = [c.read_response().json() for _ in range(10)]
    assert [g["path"] for g in got] == [f"/p/{i}" for i in range(10)]
    assert [len(g["body"]) for g in got] == list(range(10))


# ----------------------------------------------------------------------------- backpressure

def test_iterable_backpressure(wsgi):
    """A client that reads nothing: the iterable is not drained into memory."""
    port = wsgi.port
    key = uuid.uuid4().hex
    allowed = kernel_buffer_max("wmem") + 16 * 1024 * 1024
    chunk = 65536
    count = max(2048, (allowed + 64 * 1024 * 1024) // chunk)     # at least 128 MiB
    rss0 = wsgi.rss()
    with RawConn(port, rcvbuf=64 * 1024) as c:
        c.send(request_bytes("GET", f"/progress?id={key}&chunk={chunk}&count={count}"))
        stalled = wait_stalled(port, key)
        rss_stalled = wsgi.rss()
        assert stalled is not None and stalled < count, "the server drained the whole iterable"
        assert stalled * chunk < allowed
        assert rss_stalled - rss0 < 16 * 1024 * 1024
        head = c.read_until(lambda b: b"\r\n\r\n" in b)
        got = len(head) - head.find(b"\r\n\r\n") - 4
        c.buf = b""
        c.sock.settimeout(60)
        while got < chunk * count:
            d = c.sock.recv(1 << 20)
            if not d:
                break
            got += len(d)
    assert got == chunk * count
