"""The ASGI entry point under uvicorn, over real sockets (asyncio and uvloop loops).

Nothing asserts on elapsed time: the waits below only stop a broken server from hanging
the suite.  Concurrency is asserted on what the handlers observed.
"""
import asyncio
import contextlib
import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
from flask import Flask, Response, request, stream_with_context
from werkzeug.exceptions import GatewayTimeout

from flask_restful_async import Api, AsyncResource, Resource, abort, asgi, reqparse, run_async
from flask_restful_async.compat import run_sync

WAIT = 10.0  # seconds: a safety net only, never an assertion
CONCURRENT = 20


def _build():
    app = Flask(__name__)
    api = Api(app, catch_all_404s=False)
    state = {"active": 0, "max_active": 0, "cancelled": 0, "finally": 0, "teardown": [],
             "started": 0,
             "sync_active": 0, "sync_max": 0}
    lock = threading.Lock()
    all_in = asyncio.Event()
    sync_all_in = threading.Event()
    state["all_in"] = all_in
    state["server_thread"] = None
    parser = reqparse.RequestParser()
    parser.add_argument("name", required=True)

    @app.teardown_request
    def teardown(exc):
        state["teardown"].append(type(exc).__name__ if exc else None)

    class Where(AsyncResource):
        async def get(self):
            return {"thread": threading.get_ident(),
                    "loop": type(asyncio.get_running_loop()).__module__}

    class SyncWhere(Resource):
        def get(self):
            return {"thread": threading.get_ident(), "name": threading.current_thread().name}

    class Gather(AsyncResource):
        async def get(self, n):
            state["active"] += 1
            state["max_active"] = max(state["max_active"], state["active"])
            if state["active"] >= n:
                all_in.set()
            try:
                await asyncio.wait_for(all_in.wait(), WAIT)
            finally:
                state["active"] -= 1
            return {"max_active": state["max_active"], "path": request.path}

    class SyncGather(Resource):
        def get(self, n):
            with lock:
                state["sync_active"] += 1
                state["sync_max"] = max(state["sync_max"], state["sync_active"])
                if state["sync_active"] >= n:
                    sync_all_in.set()
            sync_all_in.wait(WAIT)
            with lock:
                state["sync_active"] -= 1
            return {"sync_max": state["sync_max"]}

    class Hang(AsyncResource):
        timeout = None

        async def get(self):
            state["started"] += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                state["cancelled"] += 1
                raise
            finally:
                state["finally"] += 1

    class Slow(Hang):
        timeout = 0.05

    class State(Resource):
        def get(self):
            return {k: state[k] for k in ("cancelled", "finally", "teardown")}

    class Echo(AsyncResource):
        async def post(self):
            args = parser.parse_args()
            return {"name": args.name, "ctype": request.mimetype}, 201

    class Fail(AsyncResource):
        async def get(self, how):
            await asyncio.sleep(0)
            if how == "abort":
                abort(409, message="conflict")
            raise RuntimeError("boom")

    class Bridges(AsyncResource):
        async def get(self):
            worker = await run_sync(lambda: (threading.current_thread().name, request.path))
            return {"worker": worker[0], "path": worker[1]}

    class SyncToLoop(Resource):
        def get(self):
            async def on_loop():
                return threading.get_ident()
            return {"loop_thread": run_async(on_loop()),
                    "caller": threading.current_thread().name}

    @app.route("/stream")
    def stream():
        def generate():
            for i in range(5):
                yield "chunk-%d;" % i
        return Response(stream_with_context(generate()), mimetype="text/plain")

    for resource, url in ((Where, "/where"), (SyncWhere, "/sync-where"),
                          (Gather, "/gather/<int:n>"), (SyncGather, "/sync-gather/<int:n>"),
                          (Hang, "/hang"), (Slow, "/slow"), (State, "/state"), (Echo, "/echo"),
                          (Fail, "/fail/<how>"), (Bridges, "/bridges"),
                          (SyncToLoop, "/sync-to-loop")):
        api.add_resource(resource, url)
    return app, api, state


@contextlib.contextmanager
def _serve(asgi_app, loop):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(asgi_app, loop=loop, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if server.started:
            started.set()
            break
        threading.Event().wait(0.01)
    assert started.is_set(), "uvicorn did not start"
    try:
        yield sock.getsockname()[1], thread
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def served(request):
    app, api, state = _build()
    with _serve(api.asgi_app, request.param) as (port, thread):
        yield port, thread, state, request.param


def _wait_for(condition):
    """Poll `condition` until true (or the safety net runs out)."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        threading.Event().wait(0.01)


def _request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def _json(port, method, path, **kwargs):
    status, headers, data = _request(port, method, path, **kwargs)
    return status, json.loads(data) if data else None


def test_async_resource_runs_on_the_server_loop_and_sync_in_the_pool(served):
    port, thread, state, loop = served
    status, where = _json(port, "GET", "/where")
    assert status == 200
    assert where["thread"] == thread.ident
    assert where["loop"].startswith("uvloop" if loop == "uvloop" else "asyncio")
    status, sync = _json(port, "GET", "/sync-where")
    assert sync["thread"] != thread.ident and sync["name"].startswith("fra-worker")


def test_many_async_requests_overlap_on_one_loop(served):
    port, _, state, _ = served
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(lambda i: _json(port, "GET", "/gather/%d" % CONCURRENT),
                                range(CONCURRENT)))
    assert [status for status, _ in results] == [200] * CONCURRENT
    assert max(body["max_active"] for _, body in results) == CONCURRENT


def test_sync_requests_overlap_in_the_thread_pool(served):
    port, _, _, _ = served
    n = 4
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: _json(port, "GET", "/sync-gather/%d" % n), range(n)))
    assert max(body["sync_max"] for _, body in results) == n


def test_timeout_is_a_504_json_and_the_handler_cleans_up(served):
    port, _, state, _ = served
    status, body = _json(port, "GET", "/slow")
    assert (status, body) == (504, {"message": GatewayTimeout.description})
    status, seen = _json(port, "GET", "/state")
    assert seen["cancelled"] == 1 and seen["finally"] == 1


def test_client_disconnect_cancels_the_handler(served):
    port, _, state, _ = served
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    _wait_for(lambda: state["started"] == 1)  # the handler is awaiting: now leave
    sock.close()
    _wait_for(lambda: state["finally"] == 1)
    assert state["cancelled"] == 1 and state["finally"] == 1
    assert "CancelledError" in state["teardown"]


def test_request_body_reqparse_and_errors(served):
    port, _, _, _ = served
    status, body = _json(port, "POST", "/echo", body=json.dumps({"name": "ann"}),
                         headers={"Content-Type": "application/json"})
    assert (status, body) == (201, {"name": "ann", "ctype": "application/json"})
    status, body = _json(port, "POST", "/echo", body="name=bob",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body) == (201, {"name": "bob", "ctype": "application/x-www-form-urlencoded"})
    status, body = _json(port, "POST", "/echo", body="", headers={"Content-Type": "text/plain"})
    assert status == 400 and "name" in body["message"]
    assert _json(port, "GET", "/fail/abort") == (409, {"message": "conflict"})
    assert _json(port, "GET", "/fail/raise") == (500, {"message": "Internal Server Error"})
    status, headers, _ = _request(port, "GET", "/nowhere")
    assert status == 404 and headers["content-type"].startswith("text/html")


def test_streamed_response_arrives_whole(served):
    port, _, _, _ = served
    status, headers, data = _request(port, "GET", "/stream")
    assert status == 200
    assert data == b"".join(b"chunk-%d;" % i for i in range(5))


def test_run_sync_and_run_async_bridge_the_loop_and_the_pool(served):
    port, thread, _, _ = served
    status, body = _json(port, "GET", "/bridges")
    assert body["worker"].startswith("fra-worker") and body["path"] == "/bridges"
    status, body = _json(port, "GET", "/sync-to-loop")
    assert body["loop_thread"] == thread.ident and body["caller"].startswith("fra-worker")


def test_asgi_helper_accepts_the_app_or_the_api():
    app, api, _ = _build()
    assert asgi(app).app is app
    assert asgi(api).app is app
    assert api.asgi_app is api.asgi_app
