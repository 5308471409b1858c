"""A Flask app with a flask_restful_async Api, served natively by our server: `asgi_app` is the
ASGI adapter around it (run with --interface asgi, our server serves the Flask app natively).

Bookkeeping: GET /__state__ (a plain view) returns the shared `state` as JSON.
"""
import asyncio
import threading
import time

from flask import Blueprint, Flask, current_app, g, jsonify, request, session, url_for

from flask_restful_async import (Api, AsyncResource, Resource, abort, asgi, fields, marshal,
                                 marshal_with, reqparse)
from flask_restful_async.compat import run_async, run_sync

from shared_resources import hang_resource  # (tests/apps_api/)
from task_resources import add_task_resources  # (tests/apps_api/)

app = Flask(__name__)
app.secret_key = "test-secret"

state = {"active": 0, "max_active": 0, "loop_thread": None, "events": [], "teardown": [],
         "after": 0}
_lock = threading.Lock()
_gates = {}


def event(name):
    with _lock:
        state["events"].append(name)


def _gate(n):
    """An asyncio.Event set once `n` requests are waiting on it (per n)."""
    gate = _gates.get(n)
    if gate is None:
        gate = _gates[n] = asyncio.Event()
    return gate


class MissingThing(Exception):
    pass


api = Api(app, catch_all_404s=True,
          errors={"MissingThing": {"status": 410, "message": "gone for good"}})

ITEM = {"id": fields.Integer, "name": fields.String, "verbose": fields.Integer}
parser = reqparse.RequestParser()
parser.add_argument("verbose", type=int, location="args", default=0)


@app.before_request
def before():
    g.before = request.path


@app.teardown_request
def teardown(exc):
    with _lock:
        state["teardown"].append((request.path, type(exc).__name__ if exc else None))


@app.get("/__state__")
def get_state():
    with _lock:
        return jsonify({k: v for k, v in state.items()})


@app.get("/plain")
def plain_view():
    return jsonify(thread=threading.get_ident(), name=threading.current_thread().name)


def _record_loop_thread():
    state["loop_thread"] = threading.get_ident()


class Item(AsyncResource):
    async def get(self, item_id):
        _record_loop_thread()
        args = parser.parse_args()
        return marshal({"id": item_id, "name": "item", "verbose": args["verbose"],
                        "hidden": 1}, ITEM)


class Gather(AsyncResource):
    """Waits until `n` requests are inside at once (then all answer)."""

    async def get(self, n):
        _record_loop_thread()
        with _lock:
            state["active"] += 1
            state["max_active"] = max(state["max_active"], state["active"])
            if state["active"] >= n:
                _gate(n).set()
        try:
            await asyncio.wait_for(_gate(n).wait(), 10)
        except asyncio.TimeoutError:
            pass
        finally:
            with _lock:
                state["active"] -= 1
        return {"seen": state["max_active"]}


_sync_cond = threading.Condition()


class SyncGather(Resource):
    """Sync: waits (at most 1 s) until `n` pool threads are inside at once."""

    def get(self, n):
        with _sync_cond:
            state["sync_active"] = state.get("sync_active", 0) + 1
            state["sync_max"] = max(state.get("sync_max", 0), state["sync_active"])
            _sync_cond.notify_all()
            _sync_cond.wait_for(lambda: state["sync_active"] >= n, timeout=1.0)
            state["sync_active"] -= 1
        return {"thread": threading.current_thread().name}


class AsyncWhere(AsyncResource):
    async def get(self):
        _record_loop_thread()
        return {"thread": threading.get_ident()}


class SyncWhere(Resource):
    def get(self):
        return {"thread": threading.get_ident(), "name": threading.current_thread().name}


def blocking_lookup(tag):
    # runs in a pool thread with the request context copied in
    return {"thread": threading.get_ident(), "tag": tag, "arg": request.args.get("q"),
            "app": current_app.name}


class RunSync(AsyncResource):
    async def get(self):
        _record_loop_thread()
        result = await run_sync(blocking_lookup, "t1")
        result["loop_thread"] = threading.get_ident()
        return result


class RunAsync(Resource):
    def get(self):
        async def on_loop():
            await asyncio.sleep(0)
            return {"thread": threading.get_ident(),
                    "loop": type(asyncio.get_running_loop()).__module__,
                    "arg": request.args.get("q")}
        result = run_async(on_loop(), timeout=10)
        result["caller_thread"] = threading.get_ident()
        return result


class Slow(AsyncResource):
    timeout = 0.2

    async def get(self):
        event("slow:start")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            event("slow:cancelled")
            raise
        finally:
            event("slow:finally")
        return {"never": True}


Hang = hang_resource(event)


def block_the_loop_here():
    time.sleep(0.4)  # the mistake the watchdog reports


class Blocker(AsyncResource):
    async def get(self):
        await asyncio.sleep(0)
        block_the_loop_here()
        return {"blocked": True}


def add_header_decorator(func):
    async def wrapper(*args, **kwargs):
        result = await func(*args, **kwargs)
        return result, 200, {"X-Decorated": "yes"}
    return wrapper


class Everything(AsyncResource):
    """Flask and flask-restful features used across awaits."""

    method_decorators = {"get": [add_header_decorator]}

    @marshal_with({"path": fields.String, "before": fields.String, "app": fields.String,
                   "visits": fields.Integer, "url": fields.String, "same_g": fields.Boolean})
    async def get(self):
        g.marker = object()
        marker = g.marker
        await asyncio.sleep(0.001)
        session["visits"] = session.get("visits", 0) + 1
        await asyncio.sleep(0)
        return {"path": request.path, "before": g.before, "app": current_app.name,
                "visits": session["visits"], "url": url_for("everything"),
                "same_g": g.marker is marker, "dropped": "by marshal_with"}


class Failing(AsyncResource):
    async def get(self, kind):
        await asyncio.sleep(0)
        if kind == "abort":
            abort(404, message="no such item")
        if kind == "errors-dict":
            raise MissingThing()
        raise RuntimeError("boom")


api.add_resource(Item, "/items/<int:item_id>")
api.add_resource(Gather, "/gather/<int:n>")
api.add_resource(AsyncWhere, "/where/async")
api.add_resource(SyncGather, "/sync-gather/<int:n>")
api.add_resource(SyncWhere, "/where/sync")
api.add_resource(RunSync, "/run-sync")
api.add_resource(RunAsync, "/run-async")
api.add_resource(Slow, "/slow")
api.add_resource(Hang, "/hang")
api.add_resource(Blocker, "/blocker")
api.add_resource(Everything, "/everything")
api.add_resource(Failing, "/fail/<kind>")
add_task_resources(api, state)

# A blueprint with its own Api: a prefix and an Api-wide timeout.
bp = Blueprint("v2", __name__)
bp_api = Api(bp, prefix="/api", timeout=0.2)


class BpSlow(AsyncResource):
    async def get(self):
        event("bpslow:start")
        try:
            await asyncio.sleep(30)
        finally:
            event("bpslow:finally")


class BpHello(AsyncResource):
    async def get(self):
        await asyncio.sleep(0)
        return {"url": url_for("v2.bphello"), "blueprint": request.blueprint}


@bp.after_request
def count_after(response):
    # only the blueprint has an after-request hook: the app's own routes keep the
    # direct path (no Response object), these build one
    with _lock:
        state["after"] += 1
    response.headers["X-After"] = "bp"
    return response


bp_api.add_resource(BpSlow, "/slow")
bp_api.add_resource(BpHello, "/hello")
app.register_blueprint(bp, url_prefix="/v2")

asgi_app = asgi(app)
