"""The Redis scenarios' apps: a GET, and ten GETs with asyncio.gather, answered as JSON.

  GET /redis/get        {"value": <value of bench:key:0>}
  GET /redis/gather10   {"values": [<values of bench:key:0..9>]}

Factories (our server calls `redis_app:NAME()`):
  ours_app()        flask-restful on our server, AsyncResources using our client
                    (flask_restful_async.redis; FRA_BENCH_REDIS_CLIENT names another module
                    with the same API, e.g. redis.asyncio, to check the harness without it)
  redis_py_app()    the same resources using redis-py's asyncio client (hiredis parser,
                    a blocking pool of 100 connections)
Attribute (uvicorn imports `redis_app:starlette_app`):
  starlette_app     the same two endpoints in Starlette, with redis-py's asyncio client
The Redis URL comes from BENCH_REDIS_URL, set by the bench for the redis-server it started.
Nothing connects at import: each client connects on first use, on the server's own loop.
"""
import asyncio
import importlib
import os

from redis_data import KEYS

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
OURS_MODULE = os.environ.get("FRA_BENCH_REDIS_CLIENT") or "flask_restful_async.redis"
KEY = KEYS[0]
POOL_SIZE = 100  # redis-py's connections per process (redis-py 8's default pool size)


def _redis_py():
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:  # the peer the issue names is redis-py *with* hiredis
        raise RuntimeError("hiredis is not installed: redis-py would parse in Python")
    # 100 HTTP connections times 10 gathered GETs is more than redis-py's default pool of 100
    # connections, which then raises MaxConnectionsError; its blocking pool waits for a free
    # connection instead (measured no slower than a pool of 1000 here)
    pool = BlockingConnectionPool.from_url(REDIS_URL, max_connections=POOL_SIZE, timeout=20)
    return Redis(connection_pool=pool)


def _ours():
    if OURS_MODULE == "redis.asyncio":  # checking the harness: the peer's own configuration
        return _redis_py()
    return importlib.import_module(OURS_MODULE).Redis.from_url(REDIS_URL)


def _api_app(client):
    from flask import Flask

    from flask_restful_async import Api, AsyncResource

    class RedisGet(AsyncResource):
        async def get(self):
            return {"value": (await client.get(KEY)).decode()}

    class RedisGather10(AsyncResource):
        async def get(self):
            values = await asyncio.gather(*[client.get(k) for k in KEYS])
            return {"values": [v.decode() for v in values]}

    app = Flask(__name__)
    api = Api(app)
    api.add_resource(RedisGet, "/redis/get")
    api.add_resource(RedisGather10, "/redis/gather10")
    return app


def ours_app():
    return _api_app(_ours())


def redis_py_app():
    return _api_app(_redis_py())


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    client = _redis_py()

    async def get(request):
        return JSONResponse({"value": (await client.get(KEY)).decode()})

    async def gather10(request):
        values = await asyncio.gather(*[client.get(k) for k in KEYS])
        return JSONResponse({"values": [v.decode() for v in values]})

    return Starlette(routes=[Route("/redis/get", get), Route("/redis/gather10", gather10)])


def __getattr__(name):
    # built on first access so that importing this module for one app never needs the others'
    # packages (PEP 562)
    if name == "starlette_app":
        globals()[name] = app = _starlette_app()
        return app
    raise AttributeError(name)
