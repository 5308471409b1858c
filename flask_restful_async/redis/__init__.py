"""An async Redis client on hiredis, with redis-py's asyncio interface::

    from flask_restful_async.redis import Redis
    redis = Redis.from_url("redis://localhost:6379/0")     # or Redis.from_url(): REDIS_URL

    class Counter(AsyncResource):
        async def post(self, name):
            return {"value": await redis.incr(f"counter:{name}")}

It runs on our server's libuv loop and on any asyncio loop (uvicorn, a Celery worker, a
script); commands from many coroutines are pipelined on one connection per loop.  See
docs/redis.md."""
from flask_restful_async.redis import exceptions
from flask_restful_async.redis.client import DEFAULT_URL, Redis, StrictRedis, from_url
from flask_restful_async.redis.exceptions import (AuthenticationError, ConnectionError, DataError,
                                                  NoScriptError, PubSubError, RedisError,
                                                  ResponseError, TimeoutError, WatchError)
from flask_restful_async.redis.pipeline import Pipeline
from flask_restful_async.redis.pubsub import PubSub
from flask_restful_async.redis.scripts import Script

__all__ = ["Redis", "StrictRedis", "from_url", "DEFAULT_URL", "Pipeline", "PubSub", "Script",
           "exceptions", "RedisError", "ConnectionError", "TimeoutError", "ResponseError",
           "DataError", "WatchError", "NoScriptError", "PubSubError", "AuthenticationError"]
