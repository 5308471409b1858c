"""One request seen by each way our server serves a Flask app with an Api, for
tests/test_one_environ.py: each endpoint answers with the PEP 3333 environ it got (the keys a
builder sets, wsgi.input and friends left out).

  GET /plain            a plain Flask view: Flask's own wsgi_app in the thread pool
  GET /resource         a sync Resource: called directly in the thread pool (RouteKind.SYNC)
  GET /loop             an AsyncResource: on the loop (RouteKind.DIRECT); it also answers
                        with the environ the other ASGI servers' builder (asgi_environ) makes
                        from the same request's scope
  GET /pool-thread      which thread a sync Resource, and run_sync from an AsyncResource, ran on
  GET /stream           an AsyncResource returning a streamed response (stream_with_context)
  POST /upload          a sync Resource reading the whole body (in the pool, as it arrives)
"""
import threading

from flask import Flask, Response, request, stream_with_context
from flask.globals import request_ctx

from flask_restful_async import Api, AsyncResource, Resource
from flask_restful_async.asgi_environ import environ_from_scope
from flask_restful_async.compat import run_sync

# what a builder sets itself (wsgi.input, wsgi.errors and werkzeug's own keys are not compared)
SKIP = {"wsgi.input", "wsgi.errors", "werkzeug.request", "asgi.scope", "werkzeug.proxy_fix.orig"}


def visible(environ):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in environ.items()
            if k not in SKIP and isinstance(v, (str, bool, int, tuple))}


def caller_names():
    """The names of the functions running this view, outermost last."""
    import sys
    frame, names = sys._getframe(1), []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


app = Flask(__name__)
api = Api(app)


@app.route("/plain", methods=["GET", "POST"])
def plain():
    return {"environ": visible(request.environ)}


class SyncEnv(Resource):
    def get(self):
        return {"environ": visible(request.environ), "callers": caller_names()}

    post = get


class LoopEnv(AsyncResource):
    async def get(self):
        scope = request_ctx.scope
        return {"environ": visible(request.environ),
                "from_scope": visible(environ_from_scope(scope, request.get_data()))}

    post = get


class Threads(AsyncResource):
    async def get(self):
        in_pool = await run_sync(lambda: threading.current_thread().name)
        return {"loop": threading.current_thread().name, "run_sync": in_pool}


class SyncThread(Resource):
    def get(self):
        return {"thread": threading.current_thread().name}


class Upload(Resource):
    def post(self):
        return {"size": len(request.get_data())}


class Stream(AsyncResource):
    async def get(self):
        tag = request.args.get("tag", "")

        @stream_with_context
        def parts():
            for i in range(3):
                yield "part%d:%s:%s;" % (i, request.path, tag)
        return Response(parts(), mimetype="text/plain")


api.add_resource(SyncEnv, "/resource")
api.add_resource(LoopEnv, "/loop")
api.add_resource(Threads, "/threads")
api.add_resource(SyncThread, "/sync-thread")
api.add_resource(Stream, "/stream")
api.add_resource(Upload, "/upload")
