"""The example served by `make run`: a flask-restful app with a sync and an async resource.

    flask-restful-async run examples.app:app --port 8000
    curl localhost:8000/                      # AsyncResource
    curl localhost:8000/items/1               # sync Resource (runs in the thread pool)
    curl -d name=plum localhost:8000/items    # reqparse + marshal
    curl -X POST localhost:8000/counters/hits # a counter in Redis (REDIS_URL)
"""
import asyncio
import functools
import os

from flask import Flask

from flask_restful_async import Api, AsyncResource, Resource, abort, fields, marshal_with, reqparse
from flask_restful_async.redis import Redis, RedisError

app = Flask(__name__)
api = Api(app)

ITEMS = {1: {"item_id": 1, "name": "apple"}, 2: {"item_id": 2, "name": "pear"}}
item_fields = {"id": fields.Integer(attribute="item_id"), "name": fields.String, "uri": fields.Url("item")}

parser = reqparse.RequestParser()
parser.add_argument("name", required=True, help="the item's name")


class Hello(AsyncResource):
    async def get(self):
        await asyncio.sleep(0)  # any awaitable: a database call, an HTTP request...
        return {"hello": "world"}


class Item(Resource):
    @marshal_with(item_fields)
    def get(self, item_id: int):
        if item_id not in ITEMS:
            abort(404, message=f"item {item_id} does not exist")
        return ITEMS[item_id]


class ItemList(AsyncResource):
    @marshal_with(item_fields)
    async def get(self):
        return list(ITEMS.values())

    @marshal_with(item_fields)
    async def post(self):
        args = parser.parse_args()
        item = {"item_id": max(ITEMS) + 1, "name": args["name"]}
        ITEMS[item["item_id"]] = item
        return item, 201


# REDIS_URL names the server (`make run` starts one when none answers); APP_NAME prefixes every
# key, so that several apps can share one Redis.
redis = Redis.from_url(key_prefix=os.environ.get("APP_NAME", "example") + ":",
                       socket_connect_timeout=2, socket_timeout=5)


def redis_or_503(method):
    """Redis down or slow: 503 with the reason, not a 500."""
    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            abort(503, message=f"Redis is unavailable: {exc}")
    return wrapper


class Counter(AsyncResource):
    method_decorators = [redis_or_503]

    async def get(self, name: str):
        return {"name": name, "value": int(await redis.get(f"counter:{name}") or 0)}

    async def post(self, name: str):
        return {"name": name, "value": await redis.incr(f"counter:{name}")}


api.add_resource(Hello, "/")
api.add_resource(ItemList, "/items")
api.add_resource(Item, "/items/<int:item_id>", endpoint="item")
api.add_resource(Counter, "/counters/<name>")
