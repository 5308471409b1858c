"""A Flask app with an Api served natively by our server (flask_restful_async.server_app):
AsyncResource on the loop, sync resources and plain views in the pool, the features of
flask-restful across awaits, and the direct (no Response object) path.  Over real sockets;
nothing asserts on elapsed time."""
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

from conftest import NATIVE_APP_DIR, H11Client, h11_get, serve

APP_DIR = NATIVE_APP_DIR
sys.path.insert(0, APP_DIR)


@pytest.fixture(scope="module")
def srv(native_server):
    return native_server


def state(port):
    r = h11_get(port, "/__state__")
    assert r.status == 200, r
    return r.json()


def test_parse_and_marshal_answers_like_flask(srv):
    """The direct path's bytes are what Flask's own pipeline gives for the same request."""
    import native_app

    r = h11_get(srv.port, "/items/5?verbose=3")
    expected = native_app.app.test_client().get("/items/5?verbose=3")
    assert r.status == 200 == expected.status_code
    assert r.body == expected.data == b'{"id": 5, "name": "item", "verbose": 3}\n'
    assert r.header("content-type") == b"application/json"
    bad = h11_get(srv.port, "/items/5?verbose=x")
    assert bad.status == 400
    assert "verbose" in bad.json()["message"]


def test_async_resource_on_loop_thread_sync_and_plain_view_in_pool(srv):
    loop_thread = h11_get(srv.port, "/where/async").json()["thread"]
    assert state(srv.port)["loop_thread"] == loop_thread
    sync = h11_get(srv.port, "/where/sync").json()
    plain = h11_get(srv.port, "/plain").json()
    for answer in (sync, plain):
        assert answer["thread"] != loop_thread
        assert answer["name"].startswith("fra-pool-")


def test_many_awaiting_requests_overlap(srv):
    n = 25
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: h11_get(srv.port, "/gather/%d" % n), range(n)))
    assert [a.status for a in answers] == [200] * n
    assert state(srv.port)["max_active"] >= n


def test_run_sync_uses_the_pool_with_the_request_context(srv):
    r = h11_get(srv.port, "/run-sync?q=hello").json()
    assert r["thread"] != r["loop_thread"]
    assert r["arg"] == "hello" and r["tag"] == "t1" and r["app"] == "native_app"


def test_run_async_from_a_sync_resource_runs_on_the_server_loop(srv):
    loop_thread = h11_get(srv.port, "/where/async").json()["thread"]
    r = h11_get(srv.port, "/run-async?q=there").json()
    assert r["thread"] == loop_thread
    assert r["caller_thread"] != loop_thread
    assert r["arg"] == "there"


def test_flask_features_across_awaits(srv):
    with H11Client(srv.port) as c:
        first = c.request("GET", "/everything")
        assert first.status == 200, first
        cookie = first.header("set-cookie").split(b";")[0]
        second = c.request("GET", "/everything", headers=[("cookie", cookie)])
    body = second.json()
    assert body == {"path": "/everything", "before": "/everything", "app": "native_app",
                    "visits": 2, "url": "/everything", "same_g": True}
    assert second.header("x-decorated") == b"yes"          # method_decorators, async
    assert b"Cookie" in second.header("vary")


def test_errors_take_the_api_error_path(srv):
    r = h11_get(srv.port, "/fail/abort")
    assert (r.status, r.json()) == (404, {"message": "no such item"})
    r = h11_get(srv.port, "/fail/errors-dict")
    assert (r.status, r.json()) == (410, {"message": "gone for good", "status": 410})
    r = h11_get(srv.port, "/fail/boom")
    assert (r.status, r.json()) == (500, {"message": "Internal Server Error"})
    r = h11_get(srv.port, "/no/such/url")                  # catch_all_404s
    assert r.status == 404 and "message" in r.json()
    r = h11_get(srv.port, "/items/1", method="POST")      # 405 from the Api
    assert r.status == 405 and b"GET" in r.header("allow")


def test_blueprint_prefix_and_after_request_hook(srv):
    before = state(srv.port)["after"]
    r = h11_get(srv.port, "/v2/api/hello")
    assert r.status == 200
    assert r.json() == {"url": "/v2/api/hello", "blueprint": "v2"}
    assert r.header("x-after") == b"bp"
    assert state(srv.port)["after"] == before + 1
    assert h11_get(srv.port, "/items/1").header("x-after") is None


def test_head_and_options(srv):
    r = h11_get(srv.port, "/items/2", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert int(r.header("content-length")) == len(h11_get(srv.port, "/items/2").body)
    r = h11_get(srv.port, "/items/2", method="OPTIONS")
    assert r.status == 200 and b"GET" in r.header("allow")


def test_teardown_runs_for_native_requests(srv):
    h11_get(srv.port, "/items/77")
    assert ["/items/77", None] in state(srv.port)["teardown"]


def test_sync_pool_is_bounded_by_fra_threads():
    with serve("native_app:asgi_app", "--interface", "asgi", "--app-dir", APP_DIR,
               env={"FRA_THREADS": "2"}) as server:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: h11_get(server.port, "/sync-gather/3"),
                                    range(6)))
        assert [a.status for a in answers] == [200] * 6
        assert state(server.port)["sync_max"] == 2
        assert {a.json()["thread"] for a in answers} <= {"fra-pool-0", "fra-pool-1"}


def test_server_app_is_made_only_for_api_apps():
    from flask_restful_async import Api, asgi
    from flask_restful_async.server_app import ServerApp

    plain = Flask("plain")
    assert ServerApp.for_app(plain) is None
    assert ServerApp.for_app(lambda environ, start_response: None) is None
    with_api = Flask("with_api")
    api = Api(with_api)
    for given in (with_api, api, asgi(with_api)):
        assert ServerApp.for_app(given).app is with_api
    # --interface asgi: only the ASGI adapter around such an app is served natively
    assert ServerApp.for_app(with_api, adapter_only=True) is None
    assert ServerApp.for_app(asgi(with_api), adapter_only=True).app is with_api