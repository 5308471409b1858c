"""A flask-restful app whose AsyncResource routes take our server's one-coroutine path (the
request pipeline, pipeline.handle_request, driven by the server itself).  Served with
--interface auto, as a user would run it.

Bookkeeping: GET /__state__ (a sync resource, answered from the pool) returns `state`.
Each async resource reports `path`: the name of the outermost coroutine running it
("handle_request" on the one-coroutine path; "_after_body" when the handler waited for the
rest of the body first).
"""
import asyncio
import collections
import inspect
import sys
import threading

from flask import Flask, after_this_request, appcontext_tearing_down, g, request, session

from flask_restful_async import Api, AsyncResource, Resource, abort, fields, marshal, reqparse

from shared_resources import hang_resource  # (tests/apps_api/)

app = Flask(__name__)
state = {"events": [], "teardown": [], "appctx_teardown": 0}
_lock = threading.Lock()


def event(name):
    with _lock:
        state["events"].append(name)


def caller():
    """The outermost coroutine running the resource method (see the module docstring)."""
    frame, name = sys._getframe(1), None
    while frame is not None:
        if frame.f_code.co_flags & inspect.CO_COROUTINE:
            name = frame.f_code.co_name
        frame = frame.f_back
    return name


class Unavailable(Exception):
    pass


api = Api(app, errors={"Unavailable": {"status": 503, "message": "try later"}})
parser = reqparse.RequestParser()
parser.add_argument("verbose", type=int, location="args", default=0)
body_parser = reqparse.RequestParser()
body_parser.add_argument("name", type=str, location="json", required=True)
ITEM = {"id": fields.Integer, "name": fields.String, "verbose": fields.Integer}


@app.teardown_request
def teardown(exc):
    with _lock:
        state["teardown"].append((request.path, type(exc).__name__ if exc else None))


def on_appctx_teardown(sender, **extra):
    with _lock:
        state["appctx_teardown"] += 1


appcontext_tearing_down.connect(on_appctx_teardown, app)


class State(Resource):
    def get(self):
        with _lock:
            return {k: v for k, v in state.items() if k != "later_task"}


class Item(AsyncResource):
    async def get(self, item_id):
        path = caller()
        args = parser.parse_args()
        await asyncio.sleep(0.001)
        return {**marshal({"id": item_id, "name": "item", "verbose": args["verbose"]}, ITEM),
                "path": path}

    async def post(self, item_id):
        path = caller()
        args = body_parser.parse_args()
        await asyncio.sleep(0)
        return {"id": item_id, "name": args["name"], "size": len(request.get_data()),
                "path": path}, 201

    async def put(self, item_id):
        """Echoes the size of the body, read whole however it arrived."""
        await asyncio.sleep(0)
        return {"size": len(request.get_data()), "path": caller()}


Answer = collections.namedtuple("Answer", "data code")


class Shaped(AsyncResource):
    """Results that need Flask's Response object: headers, after_this_request, session."""

    async def get(self, kind):
        path = caller()
        await asyncio.sleep(0)
        if kind == "headers":
            return {"kind": kind, "path": path}, 202, {"X-Extra": "1"}
        if kind == "after":
            @after_this_request
            def tag(response):
                response.headers["X-After-This"] = "yes"
                return response
            return {"kind": kind, "path": path}
        if kind == "namedtuple":  # a tuple subclass is unpacked, as flask-restful does
            return Answer({"kind": kind, "path": path}, 203)
        if kind == "session":
            session["n"] = session.get("n", 0) + 1
            return {"kind": kind, "n": session["n"], "path": path}
        g.seen = kind
        return {"kind": g.seen, "path": path}


class Later(AsyncResource):
    """Starts a task that reads the request after the response has gone."""

    async def get(self):
        async def later():
            await asyncio.sleep(0.05)
            with _lock:
                state["later"] = {"q": request.args.get("q"), "path": request.path,
                                  "ua": request.headers.get("user-agent")}

        state["later_task"] = asyncio.get_running_loop().create_task(later())
        return {"started": True}


class Failing(AsyncResource):
    async def get(self, kind):
        await asyncio.sleep(0)
        if kind == "abort":
            abort(404, message="no such thing")
        if kind == "errors-dict":
            raise Unavailable()
        raise RuntimeError("boom in direct path")


Hang = hang_resource(event)


class Slow(AsyncResource):
    timeout = 0.2

    async def get(self):
        try:
            await asyncio.sleep(30)
        finally:
            event("slow:finally")


api.add_resource(State, "/__state__")
api.add_resource(Item, "/items/<int:item_id>")
api.add_resource(Shaped, "/shaped/<kind>")
api.add_resource(Later, "/later")
api.add_resource(Failing, "/fail/<kind>")
api.add_resource(Hang, "/hang")
api.add_resource(Slow, "/slow")

# a session needs a key; set after the routes, as apps often do from their config
app.secret_key = "direct-secret"
