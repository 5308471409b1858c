"""The example `make run` serves (examples/app.py) works as its docstring says."""
import hashlib
import os
from pathlib import Path

from _redis_server import free_port
from conftest import RawConn, h11_get, serve

ROOT = Path(__file__).resolve().parents[1]


def test_example_app_resources(redis_url):
    with serve("examples.app:app", "--app-dir", str(ROOT), env={"REDIS_URL": redis_url}) as srv:
        r = h11_get(srv.port, "/")
        assert r.status == 200 and r.json() == {"hello": "world"}
        r = h11_get(srv.port, "/items/1")
        assert r.status == 200 and r.json() == {"id": 1, "name": "apple", "uri": "/items/1"}
        r = h11_get(srv.port, "/items/9")
        assert r.status == 404 and "does not exist" in r.json()["message"]
        r = h11_get(srv.port, "/items", method="POST", body=b"name=plum",
                    headers=[("content-type", "application/x-www-form-urlencoded")])
        assert r.status == 201 and r.json()["name"] == "plum"
        r = h11_get(srv.port, "/items", method="POST")
        assert r.status == 400 and "name" in r.json()["message"]
        for expected in (1, 2):
            r = h11_get(srv.port, "/counters/hits", method="POST")
            assert r.status == 200 and r.json() == {"name": "hits", "value": expected}
        r = h11_get(srv.port, "/counters/hits")
        assert r.status == 200 and r.json() == {"name": "hits", "value": 2}


def test_example_app_counters_in_redis_under_the_app_name(redis_url, redis_server):
    env = {"REDIS_URL": redis_url, "APP_NAME": "shop"}
    with serve("examples.app:app", "--app-dir", str(ROOT), env=env) as srv:
        assert h11_get(srv.port, "/counters/visits", method="POST").json()["value"] == 1
    assert redis_server.cli("GET", "shop:counter:visits") == "1"


def test_example_app_without_redis_answers_503_and_keeps_serving():
    env = {"REDIS_URL": "redis://127.0.0.1:%d/0" % free_port()}  # nothing listens there
    with serve("examples.app:app", "--app-dir", str(ROOT), env=env) as srv:
        r = h11_get(srv.port, "/counters/hits", method="POST")
        assert r.status == 503 and r.json()["message"].startswith("Redis is unavailable: ")
        assert h11_get(srv.port, "/").json() == {"hello": "world"}


def _sse(port, target):
    """A raw connection that has asked for an event stream and read its response head."""
    c = RawConn(port)
    c.send(b"GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" % target.encode())
    c.read_until(lambda buf: b"\r\n\r\n" in buf)
    assert c.buf.startswith(b"HTTP/1.1 200") and b"text/event-stream" in c.buf
    return c


def test_example_app_streams(redis_url, tmp_path):
    csv = (ROOT / "examples" / "files" / "prices.csv").read_bytes()
    body = os.urandom(3 << 20)
    env = {"REDIS_URL": redis_url, "EXAMPLE_ACTIVITY_LOG": str(tmp_path / "activity.log")}
    with serve("examples.app:app", "--app-dir", str(ROOT), env=env) as srv:
        r = h11_get(srv.port, "/files/prices.csv", headers=[("range", "bytes=0-99")])
        assert r.status == 206 and r.body == csv[:100]
        assert r.header("content-range") == b"bytes 0-99/%d" % len(csv)
        assert h11_get(srv.port, "/files/../app.py").status == 404
        log = _sse(srv.port, "/activity")
        news = [_sse(srv.port, "/news") for _ in range(2)]
        r = h11_get(srv.port, "/uploads/blob.bin", method="PUT", body=body)
        assert r.status == 201
        assert r.json() == {"name": "blob.bin", "size": len(body),
                            "sha256": hashlib.sha256(body).hexdigest()}
        log.read_until(lambda buf: b"upload blob.bin: %d bytes" % len(body) in buf)
        r = h11_get(srv.port, "/news", method="POST", body=b"text=hi",
                    headers=[("content-type", "application/x-www-form-urlencoded")])
        assert r.status == 200 and r.json() == {"delivered": 2}
        for c in news:
            c.read_until(lambda buf: b'id: 1\ndata: {"text":"hi"}\n\n' in buf)
