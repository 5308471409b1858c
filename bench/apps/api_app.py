"""flask-restful-async Api app for the bench: the same endpoints as the peers serve.

  GET /items/<int:item_id>?verbose=<int>   AsyncResource: parses one query argument with
                                           reqparse, marshals three fields
  GET /io10                                AsyncResource awaiting 10 ms (stands for I/O)
  GET /sync/<int:item_id>?verbose=<int>    sync Resource, same work as /items (thread pool)

Attributes:
  app         the Flask app (WSGI: gunicorn, or our server's WSGI pool)
  asgi_app    flask_restful_async.asgi(app): any ASGI server (uvicorn), or ours explicitly
  native_app  what our server runs natively for `app` (flask_restful_async.server_app)
  starlette_app  the same three endpoints written for Starlette (the comparison peer)
"""
import asyncio
import time

from flask import Flask

from flask_restful_async import Api, AsyncResource, Resource, asgi, fields, marshal, reqparse
from flask_restful_async.server_app import ServerApp

ITEM_FIELDS = {"id": fields.Integer, "name": fields.String, "verbose": fields.Integer}

parser = reqparse.RequestParser()
parser.add_argument("verbose", type=int, location="args", default=0)


def _item(item_id: int, verbose: int) -> dict:
    return {"id": item_id, "name": "item", "verbose": verbose, "secret": "not marshalled"}


class Item(AsyncResource):
    async def get(self, item_id):
        args = parser.parse_args()
        return marshal(_item(item_id, args["verbose"]), ITEM_FIELDS)


class Io10(AsyncResource):
    async def get(self):
        await asyncio.sleep(0.010)
        return {"hello": "world"}


class SyncItem(Resource):
    def get(self, item_id):
        args = parser.parse_args()
        return marshal(_item(item_id, args["verbose"]), ITEM_FIELDS)


class SyncIo10(Resource):
    """The 10 ms wait in a sync resource (stock flask-restful on gunicorn serves this)."""

    def get(self):
        time.sleep(0.010)
        return {"hello": "world"}


app = Flask(__name__)
api = Api(app)
api.add_resource(Item, "/items/<int:item_id>")
api.add_resource(Io10, "/io10")
api.add_resource(SyncItem, "/sync/<int:item_id>")
api.add_resource(SyncIo10, "/sync-io10")

asgi_app = asgi(app)
native_app = ServerApp.for_app(app)


def _starlette_app():
    """The /items endpoint in Starlette, doing the same work by hand."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request):
        raw = request.query_params.get("verbose")
        try:
            verbose = int(raw) if raw is not None else 0
        except ValueError:
            return JSONResponse({"message": {"verbose": "invalid literal"}}, status_code=400)
        data = _item(request.path_params["item_id"], verbose)
        return JSONResponse({"id": int(data["id"]), "name": str(data["name"]),
                             "verbose": int(data["verbose"])})

    async def io10(request):
        await asyncio.sleep(0.010)
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/items/{item_id:int}", item), Route("/io10", io10)])


try:
    starlette_app = _starlette_app()
except ImportError:  # Starlette is only needed by the comparison peer
    starlette_app = None

