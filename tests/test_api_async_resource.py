"""AsyncResource through the WSGI path (Flask's test client: coroutines on the worker
thread's own loop) and the ASGI path (the adapter on a loop thread, as under uvicorn)."""
import asyncio
import functools
import threading

import pytest
from flask import Blueprint, Flask, current_app, g, make_response, request, session, url_for

from flask_restful_async import (Api, AsyncResource, Resource, abort, fields, marshal,
                                 marshal_with, marshal_with_field, reqparse)
from flask_restful_async.compat import dual_decorator
from flask_restful_async.testing import asgi_test_client


@pytest.fixture(params=["wsgi", "asgi"])
def client_for(request):
    """Build a test client for an app, over the WSGI or the ASGI path."""
    bridges = []

    def make(app):
        if request.param == "wsgi":
            return app.test_client()
        client = asgi_test_client(app)
        bridges.append(client.bridge)
        return client

    make.path = request.param
    yield make
    for bridge in bridges:
        bridge.close()


def _app():
    app = Flask(__name__)
    app.secret_key = "test"
    return app, Api(app)


def test_flask_context_survives_awaits(client_for):
    app, api = _app()

    class Ctx(AsyncResource):
        async def get(self, id):
            g.before = request.path
            session["visits"] = session.get("visits", 0) + 1
            await asyncio.sleep(0)

            async def in_a_task():
                await asyncio.sleep(0)
                return request.args["q"]

            from_task = await asyncio.create_task(in_a_task())
            await asyncio.sleep(0)
            return {"path": request.path, "g": g.before, "app": current_app.name,
                    "url": url_for("ctx", id=id + 1), "task": from_task,
                    "visits": session["visits"]}

    api.add_resource(Ctx, "/ctx/<int:id>", endpoint="ctx")
    client = client_for(app)
    assert client.get("/ctx/1?q=x").json == {"path": "/ctx/1", "g": "/ctx/1", "app": app.name,
                                             "url": "/ctx/2", "task": "x", "visits": 1}
    assert client.get("/ctx/1?q=y").json["visits"] == 2  # the session cookie came back


def test_reqparse_marshal_and_abort_inside(client_for):
    app, api = _app()
    parser = reqparse.RequestParser()
    parser.add_argument("n", type=int, required=True, location="args")
    parser.add_argument("name", location="json")
    item = {"id": fields.Integer, "name": fields.String, "url": fields.Url("item")}

    class Item(AsyncResource):
        @marshal_with(item, envelope="item")
        async def get(self, id):
            await asyncio.sleep(0)
            if id == 0:
                abort(404, message="no such item")
            return {"id": id, "name": "n%d" % parser.parse_args().n, "secret": 1}

        async def post(self, id):
            await asyncio.sleep(0)
            args = parser.parse_args()
            return marshal({"id": id, "name": args.name}, item), 201

        @marshal_with_field(fields.List(fields.Integer))
        async def put(self, id):
            await asyncio.sleep(0)
            return ["1", 2.0, id], 202

    api.add_resource(Item, "/items/<int:id>", endpoint="item")
    client = client_for(app)
    assert client.get("/items/3?n=4").json == {
        "item": {"id": 3, "name": "n4", "url": "/items/3"}}
    resp = client.get("/items/3")
    assert resp.status_code == 400
    assert resp.json == {"message": {"n": "Missing required parameter in the query string"}}
    resp = client.get("/items/0?n=1")
    assert (resp.status_code, resp.json) == (404, {"message": "no such item"})
    resp = client.post("/items/5?n=1", json={"name": "five"})
    assert (resp.status_code, resp.json) == (201, {"id": 5, "name": "five", "url": "/items/5"})
    resp = client.put("/items/6")
    assert (resp.status_code, resp.json) == (202, [1, 2, 6])


def test_head_falls_back_to_get_and_options_is_automatic(client_for):
    app, api = _app()
    calls = []

    class Thing(AsyncResource):
        async def get(self):
            calls.append(request.method)
            return {"thing": 1}

    api.add_resource(Thing, "/thing")
    client = client_for(app)
    resp = client.head("/thing")
    assert (resp.status_code, resp.data, resp.content_type) == (200, b"", "application/json")
    assert calls == ["HEAD"]
    resp = client.options("/thing")
    assert resp.status_code == 200
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert client.delete("/thing").status_code == 405


def test_request_hooks_sync_and_async(client_for):
    app, api = _app()
    events = []

    @app.before_request
    def sync_before():
        events.append("before-sync")
        g.user = "ann"

    @app.before_request
    async def async_before():
        await asyncio.sleep(0)
        events.append("before-async")
        if request.args.get("deny"):
            return {"message": "denied by hook"}, 403

    @app.after_request
    def after(resp):
        events.append("after")
        resp.headers["X-After"] = "1"
        return resp

    @app.teardown_request
    def teardown(exc):
        events.append(("teardown", exc))

    class Me(AsyncResource):
        async def get(self):
            await asyncio.sleep(0)
            events.append("view")
            return {"user": g.user}

    api.add_resource(Me, "/me")
    client = client_for(app)
    resp = client.get("/me")
    assert resp.json == {"user": "ann"} and resp.headers["X-After"] == "1"
    assert events == ["before-sync", "before-async", "view", "after", ("teardown", None)]
    events.clear()
    resp = client.get("/me?deny=1")
    assert (resp.status_code, resp.json) == (403, {"message": "denied by hook"})
    assert "view" not in events


def _recording_decorators(log):
    def sync_deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            log.append("sync-api-deco")
            return f(*args, **kwargs)
        return wrapper

    def async_deco(f):
        @functools.wraps(f)
        async def wrapper(*args, **kwargs):
            await asyncio.sleep(0)
            log.append("async-api-deco")
            if request.headers.get("X-Block"):
                return {"message": "blocked"}, 401
            rv = f(*args, **kwargs)
            return await rv if asyncio.iscoroutine(rv) else rv
        return wrapper
    return sync_deco, async_deco


def test_api_decorators_sync_and_async_on_async_and_sync_resources(client_for):
    app = Flask(__name__)
    log = []
    sync_deco, async_deco = _recording_decorators(log)
    api = Api(app, decorators=[sync_deco, async_deco])

    class Async(AsyncResource):
        async def get(self):
            await asyncio.sleep(0)
            return {"kind": "async"}

    class Sync(Resource):
        def get(self):
            return {"kind": "sync"}

    api.add_resource(Async, "/a")
    api.add_resource(Sync, "/s")
    client = client_for(app)
    for path, kind in (("/a", "async"), ("/s", "sync")):
        log.clear()
        assert client.get(path).json == {"kind": kind}
        assert log == ["async-api-deco", "sync-api-deco"]
        resp = client.get(path, headers={"X-Block": "1"})
        assert (resp.status_code, resp.json) == (401, {"message": "blocked"})


def test_method_decorators_list_and_dict_sync_and_async(client_for):
    app, api = _app()
    log = []

    def sync_deco(f):
        def wrapper(*args, **kwargs):
            log.append("sync")
            return f(*args, **kwargs)
        return wrapper

    def async_deco(f):
        async def wrapper(*args, **kwargs):
            log.append("async")
            result = await f(*args, **kwargs)
            return {"wrapped": result}
        return wrapper

    @dual_decorator
    def counted(func, *args, **kwargs):
        log.append("dual")
        result = yield
        return result

    class Listed(AsyncResource):
        method_decorators = [sync_deco, async_deco, counted]

        async def get(self):
            return "listed"

    class Mapped(AsyncResource):
        method_decorators = {"get": [async_deco]}

        async def get(self):
            return "mapped-get"

        async def post(self):
            return "mapped-post"

    api.add_resource(Listed, "/listed")
    api.add_resource(Mapped, "/mapped")
    client = client_for(app)
    assert client.get("/listed").json == {"wrapped": "listed"}
    assert log == ["dual", "async", "sync"]  # the last decorator listed is the outermost
    assert client.get("/mapped").json == {"wrapped": "mapped-get"}
    assert client.post("/mapped").json == "mapped-post"


def test_representations_api_and_resource_level(client_for):
    app, api = _app()

    @api.representation("text/csv")
    def csv(data, code, headers):
        resp = make_response(",".join(str(v) for v in data.values()), code)
        resp.headers.extend(headers or {})
        return resp

    class Row(AsyncResource):
        async def get(self):
            return {"a": 1, "b": 2}, 200, {"X-Row": "yes"}

    class Text(AsyncResource):
        representations = {"text/plain": lambda data, code, headers:
                           make_response("text:%s" % data, code, headers)}

        async def get(self):
            return "hi"

    api.add_resource(Row, "/row")
    api.add_resource(Text, "/text")
    client = client_for(app)
    resp = client.get("/row", headers={"Accept": "text/csv"})
    assert (resp.data, resp.content_type, resp.headers["X-Row"]) == (b"1,2", "text/csv", "yes")
    assert client.get("/row").json == {"a": 1, "b": 2}
    resp = client.get("/text", headers={"Accept": "text/plain"})
    assert (resp.data, resp.content_type) == (b"text:hi", "text/plain")


def test_blueprint_with_prefixes_and_url_for(client_for):
    bp = Blueprint("v1", __name__, url_prefix="/bp")
    api = Api(bp, prefix="/api")

    class Node(AsyncResource):
        async def get(self, id):
            await asyncio.sleep(0)
            return {"self": url_for("v1.node", id=id), "api": api.url_for(Node, id=id + 1),
                    "endpoint": request.endpoint}

    api.add_resource(Node, "/nodes/<int:id>", endpoint="node")
    app = Flask(__name__)
    app.register_blueprint(bp, url_prefix="/reg")
    resp = client_for(app).get("/reg/api/nodes/4")
    assert resp.json == {"self": "/reg/api/nodes/4", "api": "/reg/api/nodes/5",
                         "endpoint": "v1.node"}


def test_resource_added_after_blueprint_registration_keeps_the_api_prefix(client_for):
    bp = Blueprint("late", __name__)
    api = Api(bp, prefix="/api")
    app = Flask(__name__)
    app.register_blueprint(bp, url_prefix="/reg")

    class Late(AsyncResource):
        async def get(self):
            return "late"

    api.add_resource(Late, "/late")
    assert client_for(app).get("/reg/api/late").json == "late"


def test_same_errors_as_the_sync_path(client_for):
    class Oops(Exception):
        pass

    app = Flask(__name__)
    api = Api(app, errors={"Oops": {"status": 422, "message": "oops"}})

    def make(base, asynchronous):
        if asynchronous:
            class R(base):
                async def get(self, what):
                    await asyncio.sleep(0)
                    return self.fail(what)
        else:
            class R(base):
                def get(self, what):
                    return self.fail(what)

        def fail(self, what):
            if what == "value":
                raise ValueError("x")
            if what == "oops":
                raise Oops()
            if what == "abort":
                abort(418, message="teapot", extra=[1])
            return {"ok": what}
        R.fail = fail
        return R

    api.add_resource(make(Resource, False), "/sync/<what>", endpoint="sync")
    api.add_resource(make(AsyncResource, True), "/async/<what>", endpoint="async")
    client = client_for(app)
    for what in ("value", "oops", "abort", "fine"):
        sync, async_ = client.get("/sync/" + what), client.get("/async/" + what)
        assert (async_.status_code, async_.data, async_.content_type) == \
            (sync.status_code, sync.data, sync.content_type), what


def test_sync_methods_on_async_resource_and_async_methods_on_resource(client_for):
    app, api = _app()

    class SyncOnAsync(AsyncResource):
        def get(self):
            return {"sync": "on async"}

    class AsyncOnPlain(Resource):
        async def get(self):
            await asyncio.sleep(0)
            return {"async": "on plain"}

    api.add_resource(SyncOnAsync, "/a")
    api.add_resource(AsyncOnPlain, "/b")
    client = client_for(app)
    assert client.get("/a").json == {"sync": "on async"}
    assert client.get("/b").json == {"async": "on plain"}


def test_plain_async_flask_view_and_errorhandler_without_asgiref(client_for):
    app, api = _app()

    @app.route("/view")
    async def view():
        await asyncio.sleep(0)
        return {"view": request.path}

    class Bad(Exception):
        pass

    @app.route("/bad")
    def bad():
        raise Bad()

    @app.errorhandler(Bad)
    async def handle_bad(e):
        await asyncio.sleep(0)
        return {"handled": True}, 409

    client = client_for(app)
    assert client.get("/view").json == {"view": "/view"}
    resp = client.get("/bad")
    assert (resp.status_code, resp.json) == (409, {"handled": True})


# -- timeouts ------------------------------------------------------------------------------

def _timeout_app(api_timeout=None, resource_timeout=None):
    app = Flask(__name__)
    api = Api(app, timeout=api_timeout)
    state = {"cleaned": 0, "cancelled": 0}

    class Slow(AsyncResource):
        timeout = resource_timeout

        async def get(self, mode):
            try:
                if mode == "hang":
                    await asyncio.Event().wait()  # never set: only the timeout ends it
                if mode == "own":
                    raise TimeoutError("the handler's own timeout")
                return {"done": True}
            except asyncio.CancelledError:
                state["cancelled"] += 1
                raise
            finally:
                state["cleaned"] += 1

    api.add_resource(Slow, "/slow/<mode>")
    return app, state


@pytest.mark.parametrize("api_timeout,resource_timeout", [(None, 0.05), (0.05, None),
                                                          (60.0, 0.05)])
def test_timeout_gives_504_json_and_cancels_the_handler(client_for, api_timeout,
                                                        resource_timeout):
    from werkzeug.exceptions import GatewayTimeout

    app, state = _timeout_app(api_timeout, resource_timeout)
    client = client_for(app)
    resp = client.get("/slow/hang")
    assert resp.status_code == 504
    assert resp.json == {"message": GatewayTimeout.description}
    assert state == {"cleaned": 1, "cancelled": 1}
    assert client.get("/slow/fast").json == {"done": True}


def test_resource_timeout_wins_over_api_default(client_for):
    app, state = _timeout_app(api_timeout=0.05, resource_timeout=60.0)
    # would hang for 60 s if the Api default applied; finishes at once instead
    assert client_for(app).get("/slow/fast").json == {"done": True}
    app2, _ = _timeout_app(api_timeout=60.0, resource_timeout=0.05)
    assert client_for(app2).get("/slow/hang").status_code == 504


def test_handlers_own_timeout_error_is_not_a_504(client_for):
    app, state = _timeout_app(resource_timeout=60.0)
    resp = client_for(app).get("/slow/own")
    assert resp.status_code == 500
    assert state["cancelled"] == 0


# -- the WSGI path's loops -----------------------------------------------------------------

def test_wsgi_path_reuses_one_loop_per_thread():
    app, api = _app()

    class Loop(AsyncResource):
        async def get(self):
            return {"loop": id(asyncio.get_running_loop()),
                    "thread": threading.get_ident()}

    api.add_resource(Loop, "/loop")
    first = app.test_client().get("/loop").json
    second = app.test_client().get("/loop").json
    assert first == second  # same thread, same loop, not a loop per request

    other = {}

    def in_thread():
        other.update(app.test_client().get("/loop").json)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other["thread"] != first["thread"] and other["loop"] != first["loop"]


def test_direct_dispatch_request_call_returns_the_result():
    app = Flask(__name__)

    class Direct(AsyncResource):
        async def get(self):
            await asyncio.sleep(0)
            return "direct"

    with app.test_request_context("/"):
        assert Direct().dispatch_request() == "direct"


def test_asgi_path_runs_async_on_the_loop_and_sync_in_the_pool():
    app, api = _app()

    class OnLoop(AsyncResource):
        async def get(self):
            return threading.current_thread().name

    class InPool(Resource):
        def get(self):
            return threading.current_thread().name

    api.add_resource(OnLoop, "/loop")
    api.add_resource(InPool, "/pool")
    client = asgi_test_client(app)
    try:
        assert client.get("/loop").json == "fra-test-loop"
        assert client.get("/pool").json.startswith("fra-worker")
    finally:
        client.bridge.close()


def test_nested_blueprints(client_for):
    parent = Blueprint("parent", __name__, url_prefix="/parent")
    child = Blueprint("child", __name__, url_prefix="/child")
    api = Api(child, prefix="/api")

    class Leaf(AsyncResource):
        async def get(self):
            await asyncio.sleep(0)
            return {"endpoint": request.endpoint, "url": api.url_for(Leaf),
                    "owned": api.owns_endpoint(request.endpoint)}

    api.add_resource(Leaf, "/leaf")
    parent.register_blueprint(child)
    app = Flask(__name__)
    app.register_blueprint(parent)
    assert client_for(app).get("/parent/child/api/leaf").json == {
        "endpoint": "parent.child.leaf", "url": "/parent/child/api/leaf", "owned": True}
