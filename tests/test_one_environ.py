"""One environ builder and one response writer for every way our server serves a request:
a WSGI app, a Flask app's plain view and sync Resource (thread pool), an AsyncResource (loop).
The environ is right by PEP 3333 and RFC 6265 on every path and matches what the builder for
other ASGI servers makes; header names the server writes itself are in one case, the app's as
the app wrote them.  Over real sockets."""
import sys

import pytest

from conftest import NATIVE_APP_DIR, RawConn, h11_get, request_bytes, serve

sys.path.insert(0, NATIVE_APP_DIR)

HEADERS = [("Cookie", "a=1"), ("Accept", "text/html"), ("cookie", "b=2"),
           ("Accept", "application/json"), ("X_Smuggled", "no"), ("X-Trace", "t1")]


@pytest.fixture(scope="module")
def api_srv():
    with serve("environ_app:app", "--app-dir", NATIVE_APP_DIR, "--root-path", "/api") as srv:
        yield srv


def environ_of(port, path, headers=HEADERS):
    r = h11_get(port, path + "?q=%20x&r=1", headers=headers)
    assert r.status == 200, r
    return r.json()


def test_every_path_gets_the_same_environ(api_srv):
    got = {path: environ_of(api_srv.port, "/api" + path)["environ"]
           for path in ("/plain", "/resource", "/loop")}
    for path, env in got.items():
        assert env["SCRIPT_NAME"] == "/api" and env["PATH_INFO"] == path, path
        assert env["RAW_URI"] == "/api%s?q=%%20x&r=1" % path
        assert env["QUERY_STRING"] == "q=%20x&r=1"
        # RFC 6265 5.4: cookie pairs are separated by "; " (a comma is not a separator)
        assert env["HTTP_COOKIE"] == "a=1; b=2"
        assert env["HTTP_ACCEPT"] == "text/html,application/json"  # RFC 9110 5.3
        assert "HTTP_X_SMUGGLED" not in env and env["HTTP_X_TRACE"] == "t1"
        # PEP 3333: one worker process
        assert env["wsgi.multiprocess"] is False and env["wsgi.multithread"] is True
    same = [{k: v for k, v in env.items() if k not in ("PATH_INFO", "RAW_URI", "REMOTE_PORT")}
            for env in got.values()]
    assert same[0] == same[1] == same[2]


def test_the_other_servers_builder_agrees(api_srv):
    answer = environ_of(api_srv.port, "/api/loop")
    ours, theirs = answer["environ"], answer["from_scope"]
    # (another server may run several processes and does not say; only ours knows)
    assert theirs.pop("wsgi.multiprocess") is True
    assert ours.pop("wsgi.multiprocess") is False
    assert ours.pop("SERVER_SOFTWARE").startswith("flask-restful-async")
    assert ours == theirs


def test_several_workers_are_multiprocess():
    with serve("wsgi_app:app", "--interface", "wsgi", "--workers", "2") as srv:
        env = h11_get(srv.port, "/environ", headers=HEADERS).json()
    assert env["wsgi.multiprocess"] is True
    assert env["http"]["HTTP_COOKIE"] == "a=1; b=2"


def test_wsgi_app_cookie_fields_joined_as_rfc_6265(port_wsgi):
    env = h11_get(port_wsgi, "/environ", headers=HEADERS).json()
    assert env["http"]["HTTP_COOKIE"] == "a=1; b=2"
    assert env["http"]["HTTP_ACCEPT"] == "text/html,application/json"
    assert env["wsgi.multiprocess"] is False


@pytest.fixture(scope="module")
def port_wsgi():
    with serve("wsgi_app:app", "--interface", "wsgi") as srv:
        yield srv.port


def raw_head(port, method, target):
    with RawConn(port) as c:
        c.send(request_bytes(method, target, headers=[("Connection", "close")]))
        r = c.read_response(method)
    return r.raw_head


def test_header_names_in_one_case(api_srv):
    # the server's own: Content-Type of a direct answer, Date, Server, Content-Length, Connection
    head = raw_head(api_srv.port, "GET", "/api/loop")
    for name in (b"Content-Type", b"Date", b"Server", b"Content-Length", b"Connection"):
        assert b"\r\n" + name + b": " in head, (name, head)
    # a Flask response keeps Flask's names (OPTIONS: Allow, from the loop and from the pool)
    for target in ("/api/loop", "/api/resource", "/api/plain"):
        head = raw_head(api_srv.port, "OPTIONS", target)
        assert b"\r\nAllow: " in head and b"\r\nContent-Type: " in head, (target, head)


def test_sync_resource_is_called_directly_in_the_pool(api_srv):
    answer = environ_of(api_srv.port, "/api/resource")
    callers = answer["callers"]
    assert callers[:2] == ["get", "_call"] and "serve_sync" in callers
    assert "wsgi_app" not in callers and "full_dispatch_request" not in callers
    assert h11_get(api_srv.port, "/api/sync-thread").json()["thread"].startswith("fra-pool-")


def test_run_sync_uses_the_server_pool(api_srv):
    answer = h11_get(api_srv.port, "/api/threads").json()
    assert answer["loop"] != answer["run_sync"]
    assert answer["run_sync"].startswith("fra-pool-")


def test_streamed_response_from_the_loop_keeps_its_context(api_srv):
    r = h11_get(api_srv.port, "/api/stream?tag=x")
    assert r.status == 200 and r.chunked
    assert r.body == b"part0:/stream:x;part1:/stream:x;part2:/stream:x;"
