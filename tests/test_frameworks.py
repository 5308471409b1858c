"""Real frameworks on the server: Starlette and Quart as ASGI, Flask as WSGI."""
import hashlib
import json

import pytest

from conftest import H11Client, RawConn, h11_get, request_bytes, serve

MULTIPART = (b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="field"\r\n\r\n'
             b"value one\r\n"
             b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="upload"; filename="a.txt"\r\n'
             b"Content-Type: text/plain\r\n\r\n"
             b"file contents\r\n"
             b"--XyZ--\r\n")
MULTIPART_TYPE = "multipart/form-data; boundary=XyZ"


@pytest.fixture(scope="module", params=("asyncio", "uvloop"))
def loop(request):
    return request.param


@pytest.fixture(scope="module")
def starlette(loop):
    with serve("starlette_app:app", "--interface", "asgi", "--loop", loop) as srv:
        yield srv


@pytest.fixture(scope="module")
def quart(loop):
    with serve("quart_app:app", "--interface", "asgi", "--loop", loop) as srv:
        yield srv


@pytest.fixture(scope="module")
def flask(loop):
    with serve("flask_app:app", "--interface", "wsgi", "--loop", loop) as srv:
        yield srv


# ----------------------------------------------------------------------------- Starlette

def test_starlette_hello_with_lifespan_state(starlette):
    r = h11_get(starlette.port, "/hello")
    assert r.status == 200
    assert r.json() == {"hello": "starlette", "state": "starlette-lifespan"}


def test_starlette_path_and_query(starlette):
    r = h11_get(starlette.port, "/items/42?q=x%20y")
    assert r.json() == {"id": 42, "q": "x y"}
    assert h11_get(starlette.port, "/items/notint").status == 404


def test_starlette_body_and_chunked(starlette):
    r = h11_get(starlette.port, "/echo", method="POST", body=b"x" * 100000,
                headers=[("content-type", "application/octet-stream")])
    assert r.json()["len"] == 100000
    with H11Client(starlette.port) as c:
        r = c.request("POST", "/echo", chunks=[b"ab", b"cd"])
    assert r.json()["text"] == "abcd"


def test_starlette_form(starlette):
    r = h11_get(starlette.port, "/form", method="POST", body=b"a=1&b=two",
                headers=[("content-type", "application/x-www-form-urlencoded")])
    assert r.json() == {"a": "1", "b": "two"}


def test_starlette_streaming(starlette):
    r = h11_get(starlette.port, "/stream")
    assert r.body == b"part0;part1;part2;part3;part4;"
    assert r.header("transfer-encoding") == b"chunked"


def test_starlette_file_response_goes_by_sendfile(starlette):
    # the scope announces http.response.pathsend, so Starlette's FileResponse hands the path
    # to the server, which sends it with sendfile(2)
    before = h11_get(starlette.port, "/file/stats").json()
    r = h11_get(starlette.port, "/file")
    assert r.status == 200 and len(r.body) == before["size"] == 1 << 20
    assert hashlib.sha256(r.body).hexdigest() == before["sha256"]
    after = h11_get(starlette.port, "/file/stats").json()
    assert after["sendfile"] - before["sendfile"] == 1 << 20


def test_sse_starlette_event_source_response(starlette):
    r = h11_get(starlette.port, "/sse")
    assert r.status == 200 and r.header("content-type").startswith(b"text/event-stream")
    events = [block for block in r.body.replace(b"\r\n", b"\n").split(b"\n\n") if block]
    assert [e.split(b"\n") for e in events] == [
        [b"id: %d" % i, b"event: tick", b"data: event %d" % i] for i in range(3)]


def test_starlette_cookies_and_head(starlette):
    r = h11_get(starlette.port, "/cookies")
    assert len(r.header_all("set-cookie")) == 2
    with RawConn(starlette.port) as c:
        c.send(request_bytes("HEAD", "/hello") + request_bytes("GET", "/hello"))
        h = c.read_response("HEAD")
        g = c.read_response()
    assert h.status == 200 and h.body == b""
    assert g.json()["hello"] == "starlette"


def test_starlette_asyncio_timeout(starlette):
    assert h11_get(starlette.port, "/timeout").body == b"timed out properly"


def test_starlette_error_is_500_and_server_continues(starlette):
    r = h11_get(starlette.port, "/fail")
    assert r.status == 500
    assert starlette.wait_log("starlette-boom")
    assert h11_get(starlette.port, "/hello").status == 200


def test_starlette_method_not_allowed(starlette):
    assert h11_get(starlette.port, "/echo").status == 405


# ----------------------------------------------------------------------------- Quart

def test_quart_hello_after_before_serving(quart):
    r = h11_get(quart.port, "/hello")
    assert r.status == 200
    assert r.json() == {"hello": "quart", "before_serving": True}


def test_quart_path_query_json(quart):
    assert h11_get(quart.port, "/items/7?q=z").json() == {"id": 7, "q": "z"}
    r = h11_get(quart.port, "/json", method="POST", body=json.dumps({"k": [1, 2]}).encode(),
                headers=[("content-type", "application/json")])
    assert r.json() == {"got": {"k": [1, 2]}}


def test_quart_body(quart):
    with H11Client(quart.port) as c:
        r = c.request("POST", "/echo", chunks=[b"q" * 5000, b"r" * 5000])
        assert r.json()["len"] == 10000
        r = c.request("POST", "/echo", body=b"plain")
        assert r.json()["text"] == "plain"


def test_quart_streaming(quart):
    r = h11_get(quart.port, "/stream")
    assert r.body == b"part0;part1;part2;part3;part4;"


def test_quart_concurrent_sleepers(quart):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as ex:
        bodies = list(ex.map(lambda i: h11_get(quart.port, "/sleep").body, range(16)))
    assert bodies == [b"slept"] * 16


def test_quart_error_and_404(quart):
    assert h11_get(quart.port, "/fail").status == 500
    assert h11_get(quart.port, "/nope").status == 404
    assert h11_get(quart.port, "/hello").status == 200


# ----------------------------------------------------------------------------- Flask (WSGI)

def test_flask_hello_in_worker_thread(flask):
    r = h11_get(flask.port, "/hello")
    assert r.json() == {"hello": "flask", "thread_is_main": False}


def test_flask_path_query_json(flask):
    assert h11_get(flask.port, "/items/9?q=%C3%A9").json() == {"id": 9, "q": "\u00e9"}
    r = h11_get(flask.port, "/json", method="POST", body=b'{"a": 1}',
                headers=[("content-type", "application/json")])
    assert r.json() == {"got": {"a": 1}}


def test_flask_body_and_chunked(flask):
    r = h11_get(flask.port, "/echo", method="POST", body=b"f" * 200000)
    assert r.json()["len"] == 200000
    with H11Client(flask.port) as c:
        r = c.request("POST", "/echo", chunks=[b"12", b"345"])
    assert r.json()["text"] == "12345"


def test_flask_multipart(flask):
    r = h11_get(flask.port, "/form", method="POST", body=MULTIPART,
                headers=[("content-type", MULTIPART_TYPE)])
    assert r.json() == {"form": {"field": "value one"}, "files": {"upload": "file contents"}}


def test_flask_streaming_with_context(flask):
    r = h11_get(flask.port, "/stream?tag=t")
    assert r.body == b"part0;tpart1;tpart2;tpart3;tpart4;t"


def test_flask_errors(flask):
    r = h11_get(flask.port, "/missing")
    assert r.status == 404 and r.json() == {"error": "not found"}
    assert h11_get(flask.port, "/fail").status == 500
    assert h11_get(flask.port, "/hello").status == 200


def test_flask_keepalive(flask):
    with H11Client(flask.port) as c:
        for i in range(10):
            assert c.request("GET", f"/items/{i}").json()["id"] == i
